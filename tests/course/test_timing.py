"""bnlib.course.timing: best-of-rounds wall times, interleaved."""
import time

import pytest

from bnlib.course import timing


def test_best_times_are_each_functions_shortest_call_and_calls_are_interleaved():
    calls = []
    delays = {"short": iter([0.030, 0.002, 0.010]), "long": iter([0.020, 0.040, 0.025])}

    def sleeper(name):
        def fn():
            calls.append(name)
            time.sleep(next(delays[name]))
        return fn

    best = timing.best_times({"short": sleeper("short"), "long": sleeper("long")}, repeats=3)
    assert calls == ["short", "long"] * 3
    assert list(best) == ["short", "long"]
    # time.sleep never returns early; the scheduler may add a few milliseconds.
    assert 0.002 <= best["short"] < 0.009
    assert 0.020 <= best["long"] < 0.025


def test_best_time_is_the_shortest_of_its_repeats():
    delays = iter([0.015, 0.004, 0.012])
    assert 0.004 <= timing.best_time(lambda: time.sleep(next(delays)), repeats=3) < 0.012


@pytest.mark.parametrize("repeats", [0, -1, 2.5, "3"])
def test_repeats_must_be_a_positive_int(repeats):
    with pytest.raises(ValueError, match=r"repeats: expected an int of at least 1, got"):
        timing.best_times({"f": lambda: None}, repeats)
