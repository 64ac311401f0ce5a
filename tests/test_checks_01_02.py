"""Lessons 01 and 02's exercise checkers: accept a correct answer, name each mistake."""
from __future__ import annotations

import numpy as np
import pytest

from bnlib import checks


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _run(checker, answer, capsys):
    result = checker(answer)
    return result, capsys.readouterr().out


# ----- 01.1 min_max_per_pixel

def _mm_right(x):
    return (x - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0))


@pytest.mark.parametrize("answer, hint", [
    (lambda x: (x - x.min()) / (x.max() - x.min()), "whole batch"),
    (lambda x: (x - x.min(axis=(1, 2, 3), keepdims=True))
     / np.ptp(x, axis=(1, 2, 3), keepdims=True), "each image on its own"),
    (lambda x: (x - x.min(axis=0)) / x.max(axis=0), "divide by the range"),
    (lambda x: x / (x.max(axis=0) - x.min(axis=0)), "subtract the minimum"),
])
def test_min_max_per_pixel_names_mistakes(answer, hint, capsys):
    result, out = _run(checks.check_min_max_per_pixel, answer, capsys)
    assert result is False and hint in out


def test_min_max_per_pixel_accepts_correct_and_stub(capsys):
    assert _run(checks.check_min_max_per_pixel, _mm_right, capsys)[0] is True
    result, out = _run(checks.check_min_max_per_pixel, lambda x: None, capsys)
    assert result is None and checks.NOT_ATTEMPTED in out


# ----- 01.2 standardize_new

@pytest.mark.parametrize("answer, hint", [
    (lambda tr, new: (new - new.mean(0)) / new.std(0), "new data's own statistics"),
    (lambda tr, new: (new - tr.mean(0)) / tr.std(0, ddof=1), "population standard deviation"),
    (lambda tr, new: (new - tr.mean()) / tr.std(), "one mean and std per feature"),
    (lambda tr, new: (new - tr.mean(0)) / tr.var(0), "not the variance"),
])
def test_standardize_new_names_mistakes(answer, hint, capsys):
    result, out = _run(checks.check_standardize_new, answer, capsys)
    assert result is False and hint in out


def test_standardize_new_accepts_correct(capsys):
    from bnlib import normalize

    def answer(x_train, x_new):
        _, stats = normalize.standardize(x_train, axis=0)
        return normalize.apply_standardize(x_new, stats)

    assert _run(checks.check_standardize_new, answer, capsys)[0] is True


# ----- 01.3 sigmoid_slope

@pytest.mark.parametrize("answer, hint", [
    (lambda z: z * (1 - z), "not to z itself"),
    (lambda z: 1 - _sigmoid(z) ** 2, "pattern of tanh"),
    (_sigmoid, "the sigmoid itself"),
    (lambda z: 1 - np.tanh(z) ** 2, "tanh's slope"),
])
def test_sigmoid_slope_names_mistakes(answer, hint, capsys):
    result, out = _run(checks.check_sigmoid_slope, answer, capsys)
    assert result is False and hint in out


def test_sigmoid_slope_accepts_correct(capsys):
    assert _run(checks.check_sigmoid_slope,
                lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2, capsys)[0] is True


# ----- 02.1 streaming_mean

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
    result, out = _run(checks.check_streaming_mean, answer, capsys)
    assert result is False
    assert (hint or "differs from the expected one") in out


def test_streaming_mean_constant_weight_is_named(capsys):
    def constant(x):
        y, out = 0.0, []
        for value in x:
            y = 0.5 * y + 0.5 * value
            out.append(y)
        return np.array(out)

    result, out = _run(checks.check_streaming_mean, constant, capsys)
    assert result is False and "1/t, which shrinks" in out


def test_streaming_mean_accepts_correct_and_stub(capsys):
    assert _run(checks.check_streaming_mean, _streaming_right, capsys)[0] is True
    result, out = _run(checks.check_streaming_mean, lambda x: None, capsys)
    assert result is None and checks.NOT_ATTEMPTED in out


# ----- 02.2 ema_corrected

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
    result, out = _run(checks.check_ema_corrected, answer, capsys)
    assert result is False and hint in out


def test_ema_corrected_accepts_correct(capsys):
    from bnlib.ema import bias_correct, ema

    assert _run(checks.check_ema_corrected,
                lambda x, a: bias_correct(ema(x, a), a), capsys)[0] is True


def test_ema_corrected_stub_is_not_attempted(capsys):
    result, out = _run(checks.check_ema_corrected, lambda x, a: None, capsys)
    assert result is None and checks.NOT_ATTEMPTED in out


@pytest.mark.parametrize("checker", [checks.check_standardize_new, checks.check_sigmoid_slope])
def test_other_01_stubs_are_not_attempted(checker, capsys):
    result, out = _run(checker, lambda *args: None, capsys)
    assert result is None and checks.NOT_ATTEMPTED in out
