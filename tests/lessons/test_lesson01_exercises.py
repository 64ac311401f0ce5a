"""Lesson 01's exercise checkers pass correct answers and name each mistake."""
from __future__ import annotations
import numpy as np
import pytest
from bnlib.course import checks
from bnlib.lessons.lesson01 import exercises


def _placeholder(*args):
    """The placeholder a lesson hands out."""
    raise NotImplementedError("replace with your code")


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _run(checker, answer, capsys):
    result = checker(answer)
    return result, capsys.readouterr().out


def _mm_right(x):
    return (x - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0))


@pytest.mark.parametrize("answer, hint", [
    (lambda x: (x - x.min()) / (x.max() - x.min()), "whole batch"),
    (lambda x: (x - x.min(axis=(1, 2, 3), keepdims=True))
     / np.ptp(x, axis=(1, 2, 3), keepdims=True), "each image on its own"),
    (lambda x: (x - x.min(axis=0)) / x.max(axis=0), "divide by the range"),
    (lambda x: x / (x.max(axis=0) - x.min(axis=0)), "subtract the minimum"),
    (lambda x: (x - x.min(axis=(0, 1, 2))) / np.ptp(x, axis=(0, 1, 2)), "one minimum and maximum per channel"),
])
def test_min_max_per_pixel_names_mistakes(answer, hint, capsys):
    result, out = _run(exercises.check_min_max_per_pixel, answer, capsys)
    assert result is False and hint in out


def test_min_max_per_pixel_accepts_correct_and_stub(capsys):
    assert _run(exercises.check_min_max_per_pixel, _mm_right, capsys)[0] is True
    result, out = _run(exercises.check_min_max_per_pixel, _placeholder, capsys)
    assert result is None and checks.NOT_ATTEMPTED in out


def _fit_apply(mean, var, eps, new):
    return (new - mean) / np.sqrt(var + eps)


@pytest.mark.parametrize("answer, hint", [
    (lambda tr, new, eps: _fit_apply(new.mean(0), new.var(0), eps, new), "new data's own statistics"),
    (lambda tr, new, eps: _fit_apply(np.vstack([tr, new]).mean(0), np.vstack([tr, new]).var(0),
                                     eps, new), "x_train and x_new together"),
    (lambda tr, new, eps: _fit_apply(tr.mean(0), tr.var(0, ddof=1), eps, new), "population variance"),
    (lambda tr, new, eps: _fit_apply(tr.mean(), tr.var(), eps, new), "one mean and variance per feature"),
    (lambda tr, new, eps: (new - tr.mean(0)) / (np.sqrt(tr.var(0)) + eps), "eps goes inside the square root"),
    (lambda tr, new, eps: (new - tr.mean(0)) / (tr.var(0) + eps), "not by the variance"),
    (lambda tr, new, eps: new / np.sqrt(tr.var(0) + eps), "subtract the training mean"),
    (lambda tr, new, eps: (new - tr.mean(0)) / tr.std(0), "leaves eps out"),
    (lambda tr, new, eps: _fit_apply(tr.mean(0), tr.var(0), 1e-5, new), "ignores its eps argument (it behaves like eps = 1e-05"),
    (lambda tr, new, eps: _fit_apply(tr.mean(0), tr.var(0), 1e-3, new), "ignores its eps argument (it behaves like eps = 0.001"),
])
def test_standardize_new_names_mistakes(answer, hint, capsys):
    with np.errstate(divide="ignore", invalid="ignore"):
        result, out = _run(exercises.check_standardize_new, answer, capsys)
    assert result is False and hint in out


def test_standardize_new_accepts_correct(capsys):
    def answer(x_train, x_new, eps):
        mean = np.mean(x_train, axis=0)
        var = np.mean((x_train - mean) ** 2, axis=0)
        return (x_new - mean) / np.sqrt(var + eps)

    assert _run(exercises.check_standardize_new, answer, capsys)[0] is True


def test_standardize_new_wrong_kinds_are_named(capsys):
    result, out = _run(exercises.check_standardize_new, lambda tr, new, eps: {"z": new}, capsys)
    assert result is False and "returned a dict" in out
    def no_return(tr, new, eps):
        (new - tr.mean(0)) / np.sqrt(tr.var(0) + eps)
    result, out = _run(exercises.check_standardize_new, no_return, capsys)
    assert result is False and "returned None" in out


@pytest.mark.parametrize("answer, hint", [
    (lambda z: z * (1 - z), "not to z itself"),
    (lambda z: 1 - _sigmoid(z) ** 2, "pattern of tanh"),
    (_sigmoid, "the sigmoid itself"),
    (lambda z: 1 - np.tanh(z) ** 2, "tanh's slope"),
])
def test_sigmoid_slope_names_mistakes(answer, hint, capsys):
    result, out = _run(exercises.check_sigmoid_slope, answer, capsys)
    assert result is False and hint in out


def test_sigmoid_slope_accepts_correct(capsys):
    assert _run(exercises.check_sigmoid_slope,
                lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2, capsys)[0] is True


@pytest.mark.parametrize("checker", [exercises.check_standardize_new, exercises.check_sigmoid_slope])
def test_other_01_stubs_are_not_attempted(checker, capsys):
    result, out = _run(checker, _placeholder, capsys)
    assert result is None and checks.NOT_ATTEMPTED in out
