"""Lesson 01 (Normalization): the exercise checkers.

Each wraps :func:`bnlib.course.checks.check_exercise` with a reference, cases that
vary every setting, and the common mistakes it names.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib.course.checks import check_exercise
from bnlib.nn import sigmoid


def check_min_max_per_pixel(answer: Callable) -> bool | None:
    """Exercise 01.1: min-max scale (N, H, W, C) images with one min and max per pixel."""
    rng = np.random.default_rng(11)
    cases = [(rng.normal(20.0, 5.0, size=(6, 4, 4, 1)) + rng.integers(0, 30, (6, 1, 1, 1)),),
             (rng.uniform(-3.0, 8.0, size=(5, 3, 2, 2)),)]

    def per_pixel(x, axis=0):
        lo, hi = x.min(axis=axis, keepdims=True), x.max(axis=axis, keepdims=True)
        return (x - lo) / (hi - lo)

    return check_exercise(
        "min_max_per_pixel", answer, per_pixel, cases,
        mistakes=[(lambda x: per_pixel(x, axis=None),
                   "that uses one minimum and maximum for the whole batch: take them across "
                   "the images only (axis=0), one per pixel position"),
                  (lambda x: per_pixel(x, axis=(1, 2, 3)),
                   "that scales each image on its own: the statistics must be taken across "
                   "the N images (axis=0), not across the pixels of one image"),
                  (lambda x: (x - x.min(axis=0)) / x.max(axis=0),
                   "divide by the range (max - min), not by the maximum"),
                  (lambda x: x / (x.max(axis=0) - x.min(axis=0)),
                   "subtract the minimum before dividing by the range")])


def check_standardize_new(answer: Callable) -> bool | None:
    """Exercise 01.2: standardize new rows with the training data's statistics."""
    rng = np.random.default_rng(12)
    cases = [(rng.normal([1.0, -4.0, 10.0], [2.0, 0.5, 7.0], size=(40, 3)),
              rng.normal([3.0, -4.0, 0.0], [1.0, 2.0, 3.0], size=(7, 3))),
             (rng.uniform(0.0, 5.0, size=(12, 2)), rng.uniform(2.0, 9.0, size=(5, 2)))]

    def reference(x_train, x_new):
        return (x_new - x_train.mean(axis=0)) / x_train.std(axis=0)

    return check_exercise(
        "standardize_new", answer, reference, cases,
        mistakes=[(lambda tr, new: (new - new.mean(axis=0)) / new.std(axis=0),
                   "that uses the new data's own statistics: apply the mean and std fitted "
                   "on x_train, so new data goes through the same map"),
                  (lambda tr, new: (new - tr.mean(axis=0)) / tr.std(axis=0, ddof=1),
                   "use the population standard deviation (divide by N, NumPy's default), "
                   "not ddof=1"),
                  (lambda tr, new: (new - tr.mean()) / tr.std(),
                   "compute one mean and std per feature (axis=0), not over all values"),
                  (lambda tr, new: (new - tr.mean(axis=0)) / tr.var(axis=0),
                   "divide by the standard deviation, not the variance")])


def check_sigmoid_slope(answer: Callable) -> bool | None:
    """Exercise 01.3: the derivative of the logistic sigmoid, elementwise."""
    cases = [(np.linspace(-6.0, 6.0, 25),), (np.array([[0.0, 2.5], [-1.0, 10.0]]),)]

    def reference(z):
        s = sigmoid(z)
        return s * (1.0 - s)

    return check_exercise(
        "sigmoid_slope", answer, reference, cases,
        mistakes=[(lambda z: z * (1.0 - z),
                   "apply s (1 - s) to s = sigmoid(z), not to z itself"),
                  (lambda z: 1.0 - sigmoid(z) ** 2,
                   "1 - s^2 is the pattern of tanh's slope; the sigmoid's is s (1 - s)"),
                  (lambda z: sigmoid(z),
                   "that is the sigmoid itself; its slope is s (1 - s)"),
                  (lambda z: 1.0 - np.tanh(z) ** 2, "that is tanh's slope, not the sigmoid's")])
