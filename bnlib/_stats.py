"""Accurate means and variances for batch norm, layer norm and group norm.

The numerical care lives here, so that the forward and backward passes read
like the formulas: :func:`accurate_sum` adds accurately (float32 included),
:func:`moments` uses it for the mean and variance. float16 input is worked on
in float32 (as Keras does), and a statistic that float32 cannot hold is
computed again in float64; a variance beyond even float64 is refused with a
ValueError rather than returned as inf.
"""
from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["accurate_sum", "moments", "working_dtype"]

_WIDE = 2048  # the most columns of the wide view, and the most values one column adds


def working_dtype(dtype) -> np.dtype:
    """The dtype the arithmetic is done in: float32 for float16 data, else the dtype itself."""
    return np.dtype(np.float32) if np.dtype(dtype) == np.float16 else np.dtype(dtype)


def accurate_sum(a: np.ndarray, axes: tuple) -> np.ndarray:
    """Sum of ``a`` over ``axes`` (kept as size 1), in float64, accurate for float32 input.

    A float32 running sum of a million numbers keeps only about four of its
    seven digits, because each addition rounds to the precision of the
    running total. So when the summed axes lead (features last, the usual
    case), ``a`` is viewed as a wide (rows / k, k * features) matrix, k the
    largest divisor of rows with k * features <= 2048 (k = 512 for 262,144
    rows of 4 channels). Each column then adds only rows / k numbers in a's
    dtype, and the k partial sums of each feature are added in float64. This
    is also the fast way to sum a narrow channel axis. When the columns would
    still be longer than 2048, for another layout, or when the partial sums
    overflow, NumPy sums with a float64 accumulator instead. Either way the
    result is float64. float16 input is first converted to float32.
    """
    if a.dtype == np.float16:
        a = a.astype(np.float32)
    if a.size == 0 or axes != tuple(range(len(axes))) or not a.flags.c_contiguous:
        return np.sum(a, axis=axes, dtype=np.float64, keepdims=True)
    keep_shape = tuple(1 if ax in axes else n for ax, n in enumerate(a.shape))
    features = math.prod(keep_shape)
    rows = a.size // features
    k = next(d for d in range(min(max(1, _WIDE // features), rows), 0, -1) if rows % d == 0)
    if rows // k > _WIDE:
        return np.sum(a, axis=axes, dtype=np.float64, keepdims=True)
    partial = a.reshape(rows // k, k * features).sum(axis=0)  # (callers silence overflow)
    total = partial.reshape(k, features).sum(axis=0, dtype=np.float64).reshape(keep_shape)
    if a.dtype != np.float64 and not np.isfinite(total).all():  # float32 partial sums overflowed
        return np.sum(a, axis=axes, dtype=np.float64, keepdims=True)
    return total


@functools.lru_cache(maxsize=64)
def _first(ndim: int, axes: tuple) -> tuple:
    """The index of the first value along ``axes`` (kept as size 1)."""
    return tuple(slice(0, 1) if a in axes else slice(None) for a in range(ndim))


def _shifted_moments(x: np.ndarray, axes: tuple, m: int):
    x0 = x[_first(x.ndim, axes)]
    shifted = x - x0
    shifted_mean = accurate_sum(shifted, axes) / m
    x_mu = shifted - shifted_mean.astype(x.dtype)
    var = accurate_sum(x_mu * x_mu, axes) / m
    return x0 + shifted_mean, var, x_mu


def moments(x: np.ndarray, axes: tuple):
    """Mean and biased variance over ``axes``, and x - mean, accurate in float32.

    Parameters
    ----------
    x : ndarray of float
        Finite values (the callers check, and silence NumPy's overflow warnings
        with ``np.errstate``: an overflow is detected here and handled).
    axes : tuple of int
        The axes to reduce; together they must hold at least one value.

    Returns
    -------
    mean, var : float64 ndarray, ``axes`` kept as size 1
    x_mu : ndarray, shape of x
        x - mean, in :func:`working_dtype` of x, or in float64 if float32
        could not hold the deviations or their squares.

    Raises
    ------
    ValueError
        If the variance overflows float64 (float64 values spread over more
        than about 1e154).

    The statistics are computed from x - x0, x0 the first value along the
    reduced axes: the shift moves the mean by x0 and leaves the variance
    unchanged, float32 subtracts nearby numbers exactly, and the sums (by
    :func:`accurate_sum`) then add small numbers. x - mean is formed as
    (x - x0) - (mean - x0), from the small shifted mean. Without the shift,
    for float32 data at 1e4 +- 1e-2, the mean rounded to float32 is off by up
    to half a float32 step at 1e4 (5e-4, a twentieth of the spread), and so
    is every x - mean.
    """
    m = math.prod(x.shape[a] for a in axes)
    work = x.astype(np.float32) if x.dtype == np.float16 else x
    mean, var, x_mu = _shifted_moments(work, axes, m)  # (callers silence overflow warnings)
    finite = np.isfinite(mean).all() and np.isfinite(var).all()
    if not finite and work.dtype != np.float64:
        mean, var, x_mu = _shifted_moments(x.astype(np.float64), axes, m)
        finite = np.isfinite(mean).all() and np.isfinite(var).all()
    if not finite:
        with np.errstate(over="ignore"):
            spread = float(np.max(x)) - float(np.min(x))
        raise ValueError(f"x must have a variance that float64 can hold (values spread over "
                         f"less than about 1e154); got values spread over {spread:.1e}")
    return mean, var, x_mu
