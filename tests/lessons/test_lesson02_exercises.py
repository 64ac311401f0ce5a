"""Lesson 02's exercise checkers accept a correct answer, report the stub and a missing return,
and name each mistake (the contract, tests/lessons/checker_contract.py); an unknown mistake,
an EMA of any constant weight and a wrong kind of answer are told what went wrong.

Every mistake is written here independently of the checker's own versions.
"""
from __future__ import annotations

import numpy as np
import pytest

from bnlib.ema import bias_correct, ema
from bnlib.lessons.lesson02 import exercises

from checker_contract import contract  # tests/lessons/: every checker's tests


def _streaming_right(x):
    y, out = 0.0, []
    for t, value in enumerate(x, start=1):
        y += (value - y) / t
        out.append(y)
    return np.array(out)


def _streaming_last_only(x):
    y = 0.0
    for t, value in enumerate(x, start=1):
        y += (value - y) / t
    return y


def _running_sum(x):
    total, out = 0.0, []
    for value in x:
        total += value
        out.append(total)
    return np.array(out)


def _t_from_zero_python(x):
    y, out = 0.0, []
    for t, value in enumerate(x):          # t = 0 first: 1 / 0 for Python floats
        y = (1 - 1 / t) * y + value / t
        out.append(y)
    return out


def _t_from_zero_numpy(x):
    y, out = 0.0, []
    with np.errstate(divide="ignore", invalid="ignore"):
        for t, value in enumerate(x):      # numpy: inf and nan instead of an error
            y = (1 - 1 / np.float64(t)) * y + value / np.float64(t)
            out.append(y)
    return np.array(out)


def _constant(weight, start_at_first=False):
    def answer(x):
        y, out = (float(x[0]) if start_at_first else 0.0), []
        for i, value in enumerate(x):
            y = y if (start_at_first and i == 0) else (1 - weight) * y + weight * value
            out.append(y)
        return np.array(out)
    return answer


STREAMING_MISTAKES = [
    (lambda x: [sum(x[:t + 1]) / (t + 2) for t in range(len(x))], "count t from 1"),
    (_streaming_last_only, "whole sequence of averages"),
    (_running_sum, "divide the running sum by t"),
    (_t_from_zero_python, "t started at 0"),
    (_t_from_zero_numpy, "contains inf or nan"),
    (lambda x: np.mean(x), "np.mean"),
    (lambda x: x.mean() * np.ones(len(x)), "np.mean"),
    (lambda x: np.cumsum(x) / np.arange(1, len(x) + 1), "np.cumsum"),
    (lambda x: x[:3].cumsum(), "np.cumsum"),
]


def test_streaming_mean_gives_an_unknown_mistake_the_generic_message(capsys):
    assert exercises.check_streaming_mean(lambda x: 2 * np.asarray(x)) is False
    assert "differs from the expected one" in capsys.readouterr().out


@pytest.mark.parametrize("weight", [0.5, 0.1, 0.37])
@pytest.mark.parametrize("start_at_first", [False, True])
def test_streaming_mean_names_an_ema_of_any_weight(weight, start_at_first, capsys):
    assert exercises.check_streaming_mean(_constant(weight, start_at_first)) is False
    out = capsys.readouterr().out
    assert "constant weight" in out and "1/t, which shrinks" in out


def test_streaming_mean_answer_that_works_only_for_long_streams_fails(capsys):
    """The cases include a stream of one value."""
    assert exercises.check_streaming_mean(
        lambda x: _streaming_right(x) if len(x) > 1 else np.array([0.0])) is False


def _ema(x, w, y0=0.0):
    y, out = y0, []
    for value in x:
        y = (1 - w) * y + w * value
        out.append(y)
    return np.array(out)


def _t(x):
    return np.arange(1, len(x) + 1)


def _right(x, a):
    return _ema(x, a) / (1 - (1 - a) ** _t(x))


def _divides_by_zero_at_t1(x, a):
    """The correction one step behind: 1 - (1 - alpha)^0 = 0 at t = 1 (inf, as a learner's
    code would give, without NumPy's warning in the test log)."""
    with np.errstate(divide="ignore"):
        return _ema(x, a) / (1 - (1 - a) ** (_t(x) - 1))


def _fed_back(x, a):
    y, out = 0.0, []
    for t, value in enumerate(x, start=1):
        y = ((1 - a) * y + a * value) / (1 - (1 - a) ** t)
        out.append(y)
    return np.array(out)


CHECKERS = {
    "streaming_mean": (exercises.check_streaming_mean, _streaming_right, STREAMING_MISTAKES),
    "ema_corrected": (exercises.check_ema_corrected, _right, [
        (lambda x, a: _ema(x, a), "raw EMA"),
        (lambda x, a: _ema(x, 1 - a) / (1 - a ** _t(x)), "weight on the NEW value"),
        (lambda x, a: _ema(x, 1 - a) / (1 - (1 - a) ** _t(x)), "but the correction uses alpha"),
        (lambda x, a: _ema(x, a) / (1 - (1 - a) ** (_t(x) + 1)), "off by one"),
        (_divides_by_zero_at_t1, "1 - (1 - alpha)^0 = 0"),
        (lambda x, a: _ema(x, a) / (1 - a ** _t(x)), "not 1 - alpha^t"),
        (lambda x, a: _ema(x, a, x[0]) / (1 - (1 - a) ** _t(x)), "not from the first value"),
        (lambda x, a: _ema(x, a, x[0]), "starting at X_1"),
        (_fed_back, "feeding the corrected value back"),
        (lambda x, a: _right(x, 0.1), "ignores its alpha argument (it behaves like alpha = 0.1"),
        (lambda x, a: _right(x, 0.01),
         "ignores its alpha argument (it behaves like alpha = 0.01"),
        (lambda x, a: _right(x, 0.3), "ignores its alpha argument (it behaves like alpha = 0.3")]),
}
(test_checker_accepts_a_correct_answer, test_checker_reports_the_stub_as_not_attempted,
 test_checker_reports_a_missing_return, test_checker_names_the_mistake) = contract(CHECKERS)


def test_ema_corrected_accepts_bnlib(capsys):
    assert exercises.check_ema_corrected(lambda x, a: bias_correct(ema(x, a), a)) is True
    assert "passed" in capsys.readouterr().out


def test_ema_corrected_generator_is_told_what_was_expected(capsys):
    assert exercises.check_ema_corrected(lambda x, a: (v for v in x)) is False
    out = capsys.readouterr().out
    assert "returned a generator" in out and "expected an array" in out
