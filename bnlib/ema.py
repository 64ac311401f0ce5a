"""Averages of a stream: the running sample mean and the exponential moving average.

Notation: the stream is x_1, x_2, ..., x_T and the average after t values is y_t.

* running sample mean:  y_t = (1 - 1/t) y_{t-1} + (1/t) x_t      (equals mean(x_1..x_t))
* exponential average:  y_t = (1 - alpha) y_{t-1} + alpha x_t     (alpha fixed, y_0 given)

Batch normalization keeps its moving mean and variance with the second
update. Frameworks describe it with a "momentum", which bnlib always reads
as the weight on the *old* value (Keras, TensorFlow, CS231n):
new = momentum * old + (1 - momentum) * batch, i.e. alpha = 1 - momentum.
PyTorch's ``momentum`` is the weight on the *new* value (alpha itself);
:func:`convert_momentum` translates between the two.
"""
from __future__ import annotations

import numpy as np

from bnlib._validate import (as_float_array, check_alpha, check_choice, check_int,
                             check_momentum, check_real)

__all__ = ["CONVENTIONS", "MAX_WEIGHTS", "running_mean", "ema", "ema_weights", "bias_correct",
           "effective_window", "ema_update", "ema_step", "convert_momentum"]

MAX_WEIGHTS = 10**8  # the most weights ema_weights returns (800 MB of float64)

CONVENTIONS = {
    "keras": "weight on the old value: new = m * old + (1 - m) * batch",
    "cs231n": "weight on the old value: new = m * old + (1 - m) * batch",
    "pytorch": "weight on the new value: new = (1 - m) * old + m * batch",
}


def running_mean(x) -> np.ndarray:
    """Streaming sample mean with the 1/t update, one value at a time.

    Parameters
    ----------
    x : array_like of shape (T,) or (T, ...)
        The stream; axis 0 is time.

    Returns
    -------
    ndarray of the same shape
        ``y[t-1]`` is the mean of the first ``t`` values.
    """
    x = as_float_array("x", x, min_ndim=1)
    y = np.empty_like(x)
    if not len(x):
        return y  # an empty stream has no means
    current = np.zeros_like(x[0])
    for t, value in enumerate(x, start=1):
        current = (1.0 - 1.0 / t) * current + value / t
        y[t - 1] = current
    return y


def ema(x, alpha: float, y0=0.0) -> np.ndarray:
    """Exponential moving average with a constant weight ``alpha`` on the new value.

    Parameters
    ----------
    x : array_like of shape (T,) or (T, ...)
        The stream; axis 0 is time.
    alpha : float in (0, 1]
        Weight on the newest value (1 - momentum in Keras's terms).
    y0 : float or array_like, default 0.0
        The starting value y_0; 0 gives the start-up bias that
        :func:`bias_correct` removes.

    Returns
    -------
    ndarray of the same shape
        ``y[t-1]`` is y_t.
    """
    x = as_float_array("x", x, min_ndim=1)
    alpha = check_alpha(alpha)
    y = np.empty_like(x)
    y0_checked = as_float_array("y0", y0)
    with np.errstate(over="ignore"):
        y0 = y0_checked.astype(x.dtype)
    if not np.isfinite(y0).all():
        raise ValueError(f"y0 must fit in {x.dtype}, the dtype of x; got values up to "
                         f"{np.abs(y0_checked).max():.2e}")
    if y0.ndim and y0.shape != x.shape[1:]:
        raise ValueError(f"y0 must be a number or have the shape of one value of the stream, "
                         f"{x.shape[1:]}; got shape {y0.shape}")
    current = np.broadcast_to(y0, x.shape[1:]).copy()
    for t, value in enumerate(x):
        current = (1.0 - alpha) * current + alpha * value
        y[t] = current
    return y


def ema_weights(alpha: float, t: int) -> np.ndarray:
    """Weights of x_t, x_{t-1}, ..., x_1 in y_t when y_0 = 0.

    Unrolling the update gives y_t = sum over tau of alpha (1 - alpha)^tau x_{t-tau}:
    the weight decays geometrically (exponentially) with the age tau.

    Returns
    -------
    ndarray of shape (t,)
        ``w[tau] = alpha * (1 - alpha) ** tau``; they sum to 1 - (1 - alpha)^t.
    """
    alpha = check_alpha(alpha)
    t = check_int("t", t, minimum=1, maximum=MAX_WEIGHTS,
                  hint=" (a positive number of steps; one weight per step)")
    return alpha * (1.0 - alpha) ** np.arange(t)


def bias_correct(y, alpha: float) -> np.ndarray:
    """Undo the start-up bias of an EMA started at y_0 = 0 (as Adam does).

    Parameters
    ----------
    y : array_like of shape (T,) or (T, ...)
        Output of ``ema(x, alpha, y0=0)``.
    alpha : float in (0, 1]

    Returns
    -------
    ndarray of the same shape
        y_t / (1 - (1 - alpha)^t) for t = 1..T.

    The divisor is computed as -expm1(t * log1p(-alpha)), which keeps its
    digits for a tiny alpha (1 - (1 - 1e-300)^t rounds to 0).
    """
    y = as_float_array("y", y, min_ndim=1)
    alpha = check_alpha(alpha)
    t = np.arange(1, y.shape[0] + 1).reshape((-1,) + (1,) * (y.ndim - 1))
    with np.errstate(divide="ignore"):  # alpha = 1: log1p(-1) = -inf, and the divisor is 1
        divisor = -np.expm1(t * np.log1p(-alpha))
    with np.errstate(over="ignore"):
        out = y / divisor
    if not np.isfinite(out).all():
        raise ValueError(f"y must be small enough that y / (1 - (1 - alpha)^t) fits in "
                         f"{out.dtype}; got an overflow (alpha={alpha:g} divides the first "
                         f"value by {divisor.flat[0]:.2e})")
    return out


def effective_window(alpha: float) -> float:
    """Roughly how many recent values an EMA averages over: 1 / alpha."""
    return 1.0 / check_alpha(alpha)


def ema_update(old, new, momentum: float):
    """One moving-average step in the Keras convention: momentum * old + (1 - momentum) * new.

    Parameters
    ----------
    old : float or array_like
        The moving value.
    new : float or array_like, broadcastable to the shape of ``old``
        The new observation (e.g. a batch mean).
    momentum : float in [0, 1)
        Weight on the old value.

    Returns
    -------
    float or ndarray of the shape of ``old``
    """
    momentum = check_momentum(momentum)
    old_arr, new_arr = as_float_array("old", old), as_float_array("new", new)
    try:
        shape = np.broadcast_shapes(old_arr.shape, new_arr.shape)
    except ValueError:
        shape = None
    if shape != old_arr.shape:
        raise ValueError(f"new must have the shape of old, {old_arr.shape} (or broadcast to it); "
                         f"got shape {new_arr.shape}")
    with np.errstate(over="ignore"):
        out = ema_step(old_arr, new_arr, momentum)
    if not np.isfinite(out).all():
        raise ValueError(f"old and new must give an average that {out.dtype} can hold; got an "
                         f"overflow")
    return out[()] if out.ndim == 0 else out


def ema_step(old, new, momentum: float):
    """:func:`ema_update` without the checks, for callers that checked (a float momentum)."""
    return momentum * old + (1.0 - momentum) * new


def convert_momentum(value: float, *, source: str, target: str) -> float:
    """Translate a ``momentum`` setting from one framework's convention to another's.

    Keras/TensorFlow and CS231n weight the old value (Keras default 0.99);
    PyTorch weights the new batch value (default 0.1). The same smoother is
    ``keras_m = 1 - pytorch_m``.

    Parameters
    ----------
    value : float in [0, 1]
        The setting in the ``source`` convention.
    source, target : {"keras", "cs231n", "pytorch"}

    Returns
    -------
    float
        The setting that gives the same smoother in the ``target`` convention.
    """
    for name, convention in (("source", source), ("target", target)):
        check_choice(name, convention, tuple(sorted(CONVENTIONS)))
    value = check_real("value", value, minimum=0, maximum=1, hint=" (a momentum)")
    weight_on_old = value if source != "pytorch" else 1.0 - value
    return weight_on_old if target != "pytorch" else 1.0 - weight_on_old
