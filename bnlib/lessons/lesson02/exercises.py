"""Lesson 02 (Exponentially smoothed averages): the exercise checkers.

Each wraps :func:`bnlib.course.checks.check_exercise` with a reference, cases that
vary every setting, and the common mistakes it names.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib.course.checks import check_exercise


def _ema_loop(x, weight_new, y0=0.0):
    y, out = y0, np.empty(len(x))
    for t, value in enumerate(x):
        y = (1.0 - weight_new) * y + weight_new * value
        out[t] = y
    return out


def check_streaming_mean(answer: Callable) -> bool | None:
    """Exercise 02.1: the running mean of a 1-D stream by the 1/t update."""
    rng = np.random.default_rng(21)
    cases = [(rng.normal(5.0, 2.0, size=40),), (np.array([4.0, -2.0, 7.0, 7.0, 0.5]),)]

    def off_by_one(x):
        y, out = 0.0, np.empty(len(x))
        for t, value in enumerate(x, start=1):
            y = (1.0 - 1.0 / (t + 1)) * y + value / (t + 1)
            out[t - 1] = y
        return out

    return check_exercise(
        "streaming_mean", answer, lambda x: np.cumsum(x) / np.arange(1, len(x) + 1), cases,
        mistakes=[(off_by_one,
                   "your first average is half the first value: count t from 1, so the first "
                   "update uses 1/t = 1 and gives Y_1 = X_1"),
                  (lambda x: np.mean(x),
                   "return the whole sequence of averages (one per step), not only the last"),
                  (np.cumsum, "divide the running sum by t: that is what the 1/t weights do"),
                  (lambda x: _ema_loop(x, 0.5),
                   "that is a constant weight; the running mean's weight on the new value "
                   "is 1/t, which shrinks as t grows")])


def check_ema_corrected(answer: Callable) -> bool | None:
    """Exercise 02.2: an EMA from Y_0 = 0, divided by 1 - (1 - alpha)^t."""
    rng = np.random.default_rng(22)
    cases = [(rng.normal(2.0, 1.0, size=30), 0.1), (rng.normal(-1.0, 3.0, size=12), 0.3),
             (np.linspace(0.0, 5.0, 8), 0.5)]

    def corrected(x, alpha, weight_new=None, power_shift=0):
        w = alpha if weight_new is None else weight_new
        t = np.arange(1, len(x) + 1) + power_shift
        return _ema_loop(x, w) / (1.0 - (1.0 - w) ** t)

    return check_exercise(
        "ema_corrected", answer, corrected, cases,
        mistakes=[(lambda x, a: _ema_loop(x, a),
                   "that is the raw EMA: divide Y_t by 1 - (1 - alpha)^t to remove the "
                   "start-up bias"),
                  (lambda x, a: corrected(x, a, weight_new=1.0 - a),
                   "alpha is the weight on the NEW value here: Y_t = (1 - alpha) Y_(t-1) + "
                   "alpha X_t (Keras's momentum is the weight on the old one)"),
                  (lambda x, a: corrected(x, a, power_shift=1),
                   "off by one in the exponent: the first corrected value must equal X_1, "
                   "so use (1 - alpha)^t with t starting at 1"),
                  (lambda x, a: _ema_loop(x, a) / (1.0 - a ** np.arange(1, len(x) + 1)),
                   "the correction divides by 1 - (1 - alpha)^t, not 1 - alpha^t")])
