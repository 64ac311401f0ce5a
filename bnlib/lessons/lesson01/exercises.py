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
    # several channels in the first cases (with one channel, per channel = whole batch),
    # N from 2 to 6, non-square images
    cases = [(rng.normal(20.0, 5.0, size=(6, 4, 3, 3)) + rng.integers(0, 30, (6, 1, 1, 3)),),
             (rng.uniform(-3.0, 8.0, size=(5, 3, 2, 2)),),
             (rng.normal(0.0, 1.0, size=(2, 2, 5, 1)),)]

    def per_pixel(x, axis=0):
        lo, hi = x.min(axis=axis, keepdims=True), x.max(axis=axis, keepdims=True)
        return (x - lo) / (hi - lo)

    return check_exercise(
        "min_max_per_pixel", answer, per_pixel, cases,
        mistakes=[(lambda x: per_pixel(x, axis=None),
                   "that uses one minimum and maximum for the whole batch: take them across "
                   "the images only (axis=0), one per pixel position"),
                  (lambda x: per_pixel(x, axis=(0, 1, 2)),
                   "that uses one minimum and maximum per channel, over all images and "
                   "positions (as convolutional batch norm does with its statistics): here "
                   "take them across the images only (axis=0), one per pixel position"),
                  (lambda x: per_pixel(x, axis=(1, 2, 3)),
                   "that scales each image on its own: the statistics must be taken across "
                   "the N images (axis=0), not across the pixels of one image"),
                  (lambda x: (x - x.min(axis=0)) / x.max(axis=0),
                   "divide by the range (max - min), not by the maximum"),
                  (lambda x: x / (x.max(axis=0) - x.min(axis=0)),
                   "subtract the minimum before dividing by the range")])


def check_standardize_new(answer: Callable) -> bool | None:
    """Exercise 01.2: standardize new rows with the training data's statistics and eps."""
    rng = np.random.default_rng(12)
    constant = np.column_stack([rng.normal(1.0, 2.0, size=9), np.full(9, 3.0)])
    # eps from 1e-8 to 2 (large enough that inside or outside the root differ), D from 1 to 3,
    # M from 1 to 7, a feature constant in the training data
    cases = [(rng.normal([1.0, -4.0, 10.0], [2.0, 0.5, 7.0], size=(40, 3)),
              rng.normal([3.0, -4.0, 0.0], [1.0, 2.0, 3.0], size=(7, 3)), 0.5),
             (rng.uniform(0.0, 5.0, size=(12, 2)), rng.uniform(2.0, 9.0, size=(5, 2)), 2.0),
             (constant, rng.normal(2.0, 1.0, size=(4, 2)), 1e-3),
             (rng.normal(-2.0, 0.1, size=(6, 1)), rng.normal(-2.0, 0.3, size=(1, 1)), 1e-8)]

    def reference(x_train, x_new, eps):
        return (x_new - x_train.mean(axis=0)) / np.sqrt(x_train.var(axis=0) + eps)

    def fitted(mean, var, eps, new):
        return (new - mean) / np.sqrt(var + eps)

    mistakes = [(lambda tr, new, eps: fitted(new.mean(axis=0), new.var(axis=0), eps, new),
                 "that uses the new data's own statistics: apply the mean and variance fitted "
                 "on x_train, so new data goes through the same map"),
                (lambda tr, new, eps: reference(np.concatenate([tr, new]), new, eps),
                 "that fits the statistics on x_train and x_new together: fit them on "
                 "x_train only, so new data cannot change the map"),
                (lambda tr, new, eps: fitted(tr.mean(axis=0), tr.var(axis=0, ddof=1), eps, new),
                 "use the population variance (divide by N, NumPy's default), not ddof=1"),
                (lambda tr, new, eps: fitted(tr.mean(), tr.var(), eps, new),
                 "compute one mean and variance per feature (axis=0), not over all values"),
                (lambda tr, new, eps: (new - tr.mean(axis=0)) / (tr.std(axis=0) + eps),
                 "eps goes inside the square root: divide by sqrt(var + eps), not std + eps"),
                (lambda tr, new, eps: (new - tr.mean(axis=0)) / (tr.var(axis=0) + eps),
                 "divide by the square root of (var + eps), not by the variance"),
                (lambda tr, new, eps: new / np.sqrt(tr.var(axis=0) + eps),
                 "subtract the training mean first: the result must be centred"),
                (lambda tr, new, eps: (new - tr.mean(axis=0)) / np.sqrt(tr.var(axis=0)),
                 "your function leaves eps out: divide by sqrt(var + eps), so a constant "
                 "feature does not divide by 0")]
    for fixed in (1e-5, 1e-3, 1e-8):
        mistakes.append((lambda tr, new, eps, f=fixed: reference(tr, new, f),
                         f"your function ignores its eps argument (it behaves like eps = "
                         f"{fixed:g} for every case): use the eps it is given"))
    return check_exercise("standardize_new", answer, reference, cases, mistakes=mistakes)


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
