"""Lesson 02's exercise checkers pass correct answers and name each mistake."""
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


@pytest.mark.parametrize("answer, hint", [
    (lambda x: x, None),                       # no known mistake: the generic message
    (lambda x: np.cumsum(x) / np.arange(2, len(x) + 2), "count t from 1"),
    (lambda x: x.mean(), "whole sequence of averages"),
    (np.cumsum, "divide the running sum by t"),
])
def test_streaming_mean_names_mistakes(answer, hint, capsys):
    result, out = _run(exercises.check_streaming_mean, answer, capsys)
    assert result is False
    assert (hint or "differs from the expected one") in out


def test_streaming_mean_constant_weight_is_named(capsys):
    def constant(x):
        y, out = 0.0, []
        for value in x:
            y = 0.5 * y + 0.5 * value
            out.append(y)
        return np.array(out)

    result, out = _run(exercises.check_streaming_mean, constant, capsys)
    assert result is False and "1/t, which shrinks" in out


def test_streaming_mean_accepts_correct_and_stub(capsys):
    assert _run(exercises.check_streaming_mean, _streaming_right, capsys)[0] is True
    result, out = _run(exercises.check_streaming_mean, _placeholder, capsys)
    assert result is None and checks.NOT_ATTEMPTED in out


def _ema(x, w):
    y, out = 0.0, []
    for value in x:
        y = (1 - w) * y + w * value
        out.append(y)
    return np.array(out)


def _t(x):
    return np.arange(1, len(x) + 1)


@pytest.mark.parametrize("answer, hint", [
    (lambda x, a: _ema(x, a), "raw EMA"),
    (lambda x, a: _ema(x, 1 - a) / (1 - a ** _t(x)), "weight on the NEW value"),
    (lambda x, a: _ema(x, a) / (1 - (1 - a) ** (_t(x) + 1)), "off by one"),
    (lambda x, a: _ema(x, a) / (1 - a ** _t(x)), "not 1 - alpha^t"),
])
def test_ema_corrected_names_mistakes(answer, hint, capsys):
    result, out = _run(exercises.check_ema_corrected, answer, capsys)
    assert result is False and hint in out


def test_ema_corrected_accepts_correct(capsys):
    from bnlib.ema import bias_correct, ema

    assert _run(exercises.check_ema_corrected,
                lambda x, a: bias_correct(ema(x, a), a), capsys)[0] is True


def test_ema_corrected_stub_is_not_attempted(capsys):
    result, out = _run(exercises.check_ema_corrected, _placeholder, capsys)
    assert result is None and checks.NOT_ATTEMPTED in out
