"""Lesson 01's exercise checkers accept a correct answer, report the stub and a missing return,
and name each mistake (the contract, tests/lessons/checker_contract.py); a wrong kind of
answer is told what was expected.

The answers below are written independently of the checkers, with NumPy.
"""
from __future__ import annotations

import numpy as np

from bnlib.lessons.lesson01 import exercises

from checker_contract import contract  # tests/lessons/: every checker's tests


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def min_max_ok(x):
    return (x - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0))


def standardize_new_ok(x_train, x_new, eps):
    mean = np.mean(x_train, axis=0)
    var = np.mean((x_train - mean) ** 2, axis=0)
    return (x_new - mean) / np.sqrt(var + eps)


def sigmoid_slope_ok(z):
    return np.exp(-z) / (1 + np.exp(-z)) ** 2


def _fit_apply(mean, var, eps, new):
    return (new - mean) / np.sqrt(var + eps)


CHECKERS = {
    "min_max": (exercises.check_min_max_per_pixel, min_max_ok, [
        (lambda x: (x - x.min()) / (x.max() - x.min()), "whole batch"),
        (lambda x: (x - x.min(axis=(1, 2, 3), keepdims=True))
         / np.ptp(x, axis=(1, 2, 3), keepdims=True), "each image on its own"),
        (lambda x: (x - x.min(axis=0)) / x.max(axis=0), "divide by the range"),
        (lambda x: x / (x.max(axis=0) - x.min(axis=0)), "subtract the minimum"),
        (lambda x: (x - x.min(axis=(0, 1, 2))) / np.ptp(x, axis=(0, 1, 2)),
         "one minimum and maximum per channel")]),
    "standardize_new": (exercises.check_standardize_new, standardize_new_ok, [
        (lambda tr, new, eps: _fit_apply(new.mean(0), new.var(0), eps, new),
         "new data's own statistics"),
        (lambda tr, new, eps: _fit_apply(np.vstack([tr, new]).mean(0),
                                         np.vstack([tr, new]).var(0), eps, new),
         "x_train and x_new together"),
        (lambda tr, new, eps: _fit_apply(tr.mean(0), tr.var(0, ddof=1), eps, new),
         "population variance"),
        (lambda tr, new, eps: _fit_apply(tr.mean(), tr.var(), eps, new),
         "one mean and variance per feature"),
        (lambda tr, new, eps: (new - tr.mean(0)) / (np.sqrt(tr.var(0)) + eps),
         "eps goes inside the square root"),
        (lambda tr, new, eps: (new - tr.mean(0)) / (tr.var(0) + eps), "not by the variance"),
        (lambda tr, new, eps: new / np.sqrt(tr.var(0) + eps), "subtract the training mean"),
        (lambda tr, new, eps: (new - tr.mean(0)) / tr.std(0), "leaves eps out"),
        (lambda tr, new, eps: _fit_apply(tr.mean(0), tr.var(0), 1e-5, new),
         "ignores its eps argument (it behaves like eps = 1e-05"),
        (lambda tr, new, eps: _fit_apply(tr.mean(0), tr.var(0), 1e-3, new),
         "ignores its eps argument (it behaves like eps = 0.001")]),
    "sigmoid_slope": (exercises.check_sigmoid_slope, sigmoid_slope_ok, [
        (lambda z: z * (1 - z), "not to z itself"),
        (lambda z: 1 - _sigmoid(z) ** 2, "pattern of tanh"),
        (_sigmoid, "the sigmoid itself"),
        (lambda z: 1 - np.tanh(z) ** 2, "tanh's slope")]),
}
(test_checker_accepts_a_correct_answer, test_checker_reports_the_stub_as_not_attempted,
 test_checker_reports_a_missing_return, test_checker_names_the_mistake) = contract(CHECKERS)


def test_standardize_new_names_a_wrong_kind_of_answer(capsys):
    assert exercises.check_standardize_new(lambda tr, new, eps: {"z": new}) is False
    assert "returned a dict" in capsys.readouterr().out
