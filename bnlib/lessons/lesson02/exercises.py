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


class ShortcutRefused(Exception):
    """Raised when an answer to exercise 02.1 calls np.mean or np.cumsum."""


class _Stream(np.ndarray):
    """The stream as exercise 02.1 hands it to the answer: np.mean and np.cumsum refuse it.

    ``np.mean(x)`` and ``np.cumsum(x)`` call the array's own ``mean`` and
    ``cumsum`` methods for a subclass, so both spellings (and those of any
    slice of ``x``) end here.
    """

    def mean(self, *args, **kwargs):
        raise ShortcutRefused("the exercise asks for the 1/t update in a loop, so np.mean "
                              "(and x.mean()) are not allowed")

    def cumsum(self, *args, **kwargs):
        raise ShortcutRefused("the exercise asks for the 1/t update in a loop, so np.cumsum "
                              "(and x.cumsum()) are not allowed")


def _guarded(answer: Callable, t_hint: str) -> Callable:
    """The answer with 02.x's own hints for a division by zero and a non-finite result."""

    def run(*args):
        try:
            out = answer(*args)
        except ZeroDivisionError as exc:
            raise ZeroDivisionError(f"{exc} ({t_hint})") from None
        values = np.asarray(out, dtype=np.float64) if isinstance(out, (np.ndarray, list)) else None
        if values is not None and values.size and not np.isfinite(values).all():
            raise FloatingPointError(f"your result contains inf or nan ({t_hint})")
        return out

    return run


def _constant_weight(answer: Callable, x) -> float | None:
    """The constant weight alpha an answer behaves like, from its first two outputs (or None)."""
    try:
        out = np.asarray(answer(np.array(x, copy=True).view(_Stream)), dtype=np.float64)
    except Exception:
        return None
    if out.shape != (len(x),) or len(x) < 2 or not np.isfinite(out[:2]).all():
        return None
    if np.isclose(out[0], x[0]):         # started at Y_1 = X_1: Y_2 = (1 - a) X_1 + a X_2
        gap = x[1] - x[0]
        return float((out[1] - x[0]) / gap) if gap else None
    return float(out[0] / x[0]) if x[0] else None   # from Y_0 = 0: Y_1 = a X_1


def check_streaming_mean(answer: Callable) -> bool | None:
    """Exercise 02.1: the running mean of a 1-D stream by the 1/t update (no np.mean, np.cumsum)."""
    rng = np.random.default_rng(21)
    # lengths 40, 5 and 1 (a single value is its own mean)
    cases = [(rng.normal(5.0, 2.0, size=40),), (np.array([4.0, -2.0, 7.0, 7.0, 0.5]),),
             (np.array([-3.5]),)]

    def reference(x):
        return np.cumsum(x) / np.arange(1, len(x) + 1)

    def off_by_one(x):
        y, out = 0.0, np.empty(len(x))
        for t, value in enumerate(x, start=1):
            y = (1.0 - 1.0 / (t + 1)) * y + value / (t + 1)
            out[t - 1] = y
        return out

    guarded = _guarded(lambda x: answer(x.view(_Stream)),
                       "with the 1/t update that means t started at 0: count t from 1, so the "
                       "first update uses 1/1 and gives Y_1 = X_1")
    mistakes = [(off_by_one,
                 "your first average is half the first value: count t from 1, so the first "
                 "update uses 1/t = 1 and gives Y_1 = X_1"),
                (lambda x: reference(x)[-1],
                 "return the whole sequence of averages (one per step), not only the last"),
                (np.cumsum, "divide the running sum by t: that is what the 1/t weights do")]
    alpha = _constant_weight(answer, cases[0][0])
    if alpha is not None and 0 < alpha < 1:
        for y0_first in (False, True):
            mistakes.append((lambda x, a=alpha, f=y0_first: _ema_loop(x, a, x[0] if f else 0.0),
                             f"that is an EMA with a constant weight (alpha = {alpha:.3g}); the "
                             f"running mean's weight on the new value is 1/t, which shrinks as "
                             f"t grows"))
    return check_exercise("streaming_mean", guarded, reference, cases, mistakes=mistakes)


def check_ema_corrected(answer: Callable) -> bool | None:
    """Exercise 02.2: an EMA from Y_0 = 0, divided by 1 - (1 - alpha)^t."""
    rng = np.random.default_rng(22)
    # alpha from 0.02 to 0.5, lengths 30, 12, 8 and 1: no hard-coded alpha or length fits all
    cases = [(rng.normal(2.0, 1.0, size=30), 0.1), (rng.normal(-1.0, 3.0, size=12), 0.3),
             (np.linspace(0.0, 5.0, 8), 0.5), (rng.normal(4.0, 1.0, size=30), 0.02),
             (np.array([2.5]), 0.2)]

    def corrected(x, alpha, weight_new=None, power_shift=0, y0=0.0):
        w = alpha if weight_new is None else weight_new
        t = np.arange(1, len(x) + 1) + power_shift
        return _ema_loop(x, w, y0) / (1.0 - (1.0 - w) ** t)

    def fed_back(x, alpha):
        y, out = 0.0, np.empty(len(x))
        for t, value in enumerate(x, start=1):
            y = ((1.0 - alpha) * y + alpha * value) / (1.0 - (1.0 - alpha) ** t)
            out[t - 1] = y
        return out

    def mixed(x, alpha):
        t = np.arange(1, len(x) + 1)
        return _ema_loop(x, 1.0 - alpha) / (1.0 - (1.0 - alpha) ** t)

    mistakes = [(lambda x, a: _ema_loop(x, a),
                 "that is the raw EMA: divide Y_t by 1 - (1 - alpha)^t to remove the "
                 "start-up bias"),
                (lambda x, a: corrected(x, a, weight_new=1.0 - a),
                 "alpha is the weight on the NEW value here: Y_t = (1 - alpha) Y_(t-1) + "
                 "alpha X_t (Keras's momentum is the weight on the old one)"),
                (mixed,
                 "your update weights the new value by 1 - alpha (the momentum convention) "
                 "but the correction uses alpha: here alpha is the weight on the new value, in "
                 "both the update and the correction 1 - (1 - alpha)^t"),
                (lambda x, a: corrected(x, a, power_shift=1),
                 "off by one in the exponent: the first corrected value must equal X_1, "
                 "so use (1 - alpha)^t with t starting at 1"),
                (lambda x, a: _ema_loop(x, a) / (1.0 - a ** np.arange(1, len(x) + 1)),
                 "the correction divides by 1 - (1 - alpha)^t, not 1 - alpha^t"),
                (lambda x, a: corrected(x, a, y0=x[0]),
                 "start from Y_0 = 0, not from the first value: the correction undoes the "
                 "pull toward 0 and would distort an EMA started at X_1"),
                (lambda x, a: _ema_loop(x, a, x[0]),
                 "start from Y_0 = 0 and divide by 1 - (1 - alpha)^t; starting at X_1 "
                 "instead is another (uncorrected) estimator"),
                (fed_back,
                 "keep the uncorrected Y_t in the recursion and divide only the value you "
                 "return: feeding the corrected value back corrects the bias again at every "
                 "step")]
    for fixed in (0.1, 0.01, 0.05, 0.2, 0.3, 0.5, 0.9, 0.99):
        mistakes.append((lambda x, a, f=fixed: corrected(x, f),
                         f"your function ignores its alpha argument (it behaves like alpha = "
                         f"{fixed:g} for every case): use the alpha it is given"))
    guarded = _guarded(answer, "the first divisor is 1 - (1 - alpha)^0 = 0 if the exponent "
                               "starts at 0: use (1 - alpha)^t with t = 1, 2, ..., T")
    return check_exercise("ema_corrected", guarded, corrected, cases, mistakes=mistakes)
