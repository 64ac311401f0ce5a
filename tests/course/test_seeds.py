"""bnlib.course.seeds: per-seed evaluation, the printed spread and the divergence verdict."""
import math

import numpy as np
import pytest

from bnlib.course import seeds


def test_lesson_and_test_seeds_are_disjoint_and_five_for_tests():
    assert not set(seeds.LESSON_SEEDS) & set(seeds.TEST_SEEDS)
    assert len(seeds.TEST_SEEDS) >= 5


def test_over_seeds_calls_once_per_seed_in_order():
    calls = []
    out = seeds.over_seeds(lambda s: calls.append(s) or s * 2.0, (3, 1, 2))
    assert calls == [3, 1, 2]
    np.testing.assert_array_equal(out, [6.0, 2.0, 4.0])


def test_over_seeds_refuses_no_seeds():
    with pytest.raises(ValueError, match="seeds"):
        seeds.over_seeds(float, ())


def test_spread_reports_median_and_range():
    assert seeds.spread([0.9, 0.95, 0.91]) == "median 0.91 (0.90 to 0.95, 3 seeds)"
    assert seeds.spread([1, 2, 3, 4], fmt=".0f") == "median 2 (1 to 4, 4 seeds)"  # median 2.5 rounds to even


@pytest.mark.parametrize("bad", [[], [[1.0, 2.0]]])
def test_spread_refuses_empty_or_2d(bad):
    with pytest.raises(ValueError, match="values"):
        seeds.spread(bad)


@pytest.mark.parametrize("losses, expected", [
    ([2.3, 1.0, 0.2], False),
    ([2.3, 10 * math.log(10) - 1e-9], False),
    ([2.3, 10 * math.log(10) + 1e-9], True),
    ([2.3, float("nan")], True),
    ([2.3, float("inf")], True),
])
def test_diverged_verdict(losses, expected):
    assert seeds.diverged(losses) is expected
