"""Lesson 02's exercise checkers pass correct answers and name each mistake.

Every mistake is written here independently of the checker's own versions.
"""
from __future__ import annotations

import numpy as np
import pytest

from bnlib.course import checks
from bnlib.lessons.lesson02 import exercises


def _placeholder(*args):
    """The placeholder a lesson hands out."""
    raise NotImplementedError("replace with your code")


def _run(checker, answer, capsys):
    result = checker(answer)
    return result, capsys.readouterr().out


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


@pytest.mark.parametrize("answer, hint", [
    (lambda x: 2 * np.asarray(x), None),      # no known mistake: the generic message
    (lambda x: [sum(x[:t + 1]) / (t + 2) for t in range(len(x))], "count t from 1"),
    (_streaming_last_only, "whole sequence of averages"),
    (_running_sum, "divide the running sum by t"),
    (_t_from_zero_python, "t started at 0"),
    (_t_from_zero_numpy, "contains inf or nan"),
    (lambda x: np.mean(x), "np.mean"),
    (lambda x: x.mean() * np.ones(len(x)), "np.mean"),
    (lambda x: np.cumsum(x) / np.arange(1, len(x) + 1), "np.cumsum"),
    (lambda x: x[:3].cumsum(), "np.cumsum"),
])
def test_streaming_mean_names_mistakes(answer, hint, capsys):
    result, out = _run(exercises.check_streaming_mean, answer, capsys)
    assert result is False
    assert (hint or "differs from the expected one") in out


@pytest.mark.parametrize("weight", [0.5, 0.1, 0.37])
@pytest.mark.parametrize("start_at_first", [False, True])
def test_streaming_mean_names_an_ema_of_any_weight(weight, start_at_first, capsys):
    result, out = _run(exercises.check_streaming_mean, _constant(weight, start_at_first), capsys)
    assert result is False and "constant weight" in out and "1/t, which shrinks" in out


def test_streaming_mean_accepts_correct_and_stub(capsys):
    assert _run(exercises.check_streaming_mean, _streaming_right, capsys)[0] is True
    result, out = _run(exercises.check_streaming_mean, _placeholder, capsys)
    assert result is None and checks.NOT_ATTEMPTED in out


def test_streaming_mean_answer_that_works_only_for_long_streams_fails(capsys):
    """The cases include a stream of one value."""
    result, _ = _run(exercises.check_streaming_mean,
                     lambda x: _streaming_right(x) if len(x) > 1 else np.array([0.0]), capsys)
    assert result is False


def test_streaming_mean_forgotten_return(capsys):
    def no_return(x):
        _streaming_right(x)
    result, out = _run(exercises.check_streaming_mean, no_return, capsys)
    assert result is False and "returned None" in out


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


def _fed_back(x, a):
    y, out = 0.0, []
    for t, value in enumerate(x, start=1):
        y = ((1 - a) * y + a * value) / (1 - (1 - a) ** t)
        out.append(y)
    return np.array(out)


@pytest.mark.parametrize("answer, hint", [
    (lambda x, a: _ema(x, a), "raw EMA"),
    (lambda x, a: _ema(x, 1 - a) / (1 - a ** _t(x)), "weight on the NEW value"),
    (lambda x, a: _ema(x, 1 - a) / (1 - (1 - a) ** _t(x)), "but the correction uses alpha"),
    (lambda x, a: _ema(x, a) / (1 - (1 - a) ** (_t(x) + 1)), "off by one"),
    (lambda x, a: _ema(x, a) / (1 - (1 - a) ** (_t(x) - 1)), "1 - (1 - alpha)^0 = 0"),
    (lambda x, a: _ema(x, a) / (1 - a ** _t(x)), "not 1 - alpha^t"),
    (lambda x, a: _ema(x, a, x[0]) / (1 - (1 - a) ** _t(x)), "not from the first value"),
    (lambda x, a: _ema(x, a, x[0]), "starting at X_1"),
    (_fed_back, "feeding the corrected value back"),
    (lambda x, a: _right(x, 0.1), "ignores its alpha argument (it behaves like alpha = 0.1"),
    (lambda x, a: _right(x, 0.01), "ignores its alpha argument (it behaves like alpha = 0.01"),
    (lambda x, a: _right(x, 0.3), "ignores its alpha argument (it behaves like alpha = 0.3"),
])
def test_ema_corrected_names_mistakes(answer, hint, capsys):
    result, out = _run(exercises.check_ema_corrected, answer, capsys)
    assert result is False and hint in out


def test_ema_corrected_accepts_correct(capsys):
    from bnlib.ema import bias_correct, ema

    assert _run(exercises.check_ema_corrected,
                lambda x, a: bias_correct(ema(x, a), a), capsys)[0] is True
    assert _run(exercises.check_ema_corrected, _right, capsys)[0] is True


def test_ema_corrected_stub_is_not_attempted(capsys):
    result, out = _run(exercises.check_ema_corrected, _placeholder, capsys)
    assert result is None and checks.NOT_ATTEMPTED in out


def test_ema_corrected_generator_is_told_what_was_expected(capsys):
    result, out = _run(exercises.check_ema_corrected, lambda x, a: (v for v in x), capsys)
    assert result is False and "returned a generator" in out and "expected an array" in out
