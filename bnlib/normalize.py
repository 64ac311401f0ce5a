"""Min-max scaling and standardization along chosen axes.

Each transform returns the statistics it used, so the very same transform
can be applied to new data (fit on the training set, apply to the test set).

``axis`` means what it means in NumPy: the axes the statistics are computed
*over*. For a batch of images of shape (N, H, W, C), ``axis=0`` gives one
statistic per pixel and channel (computed across the N images).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bnlib._validate import as_float_array, describe

__all__ = ["MinMaxStats", "StandardStats", "min_max_scale", "apply_min_max", "standardize",
           "apply_standardize"]


class MinMaxStats(NamedTuple):
    """Statistics of a min-max scaling: arrays broadcastable against the data."""

    minimum: np.ndarray
    maximum: np.ndarray


class StandardStats(NamedTuple):
    """Statistics of a standardization: arrays broadcastable against the data."""

    mean: np.ndarray
    std: np.ndarray


def _axes(x: np.ndarray, axis) -> tuple:
    """``axis`` (None, an int or a tuple of ints, NumPy's meaning) as a tuple of distinct axes."""
    given = tuple(range(x.ndim)) if axis is None else (
        tuple(axis) if isinstance(axis, (tuple, list)) else (axis,))
    if not all(isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_))
               for a in given):
        raise ValueError(f"axis must be None, an int or a tuple of ints (the axes the statistics "
                         f"are taken over); got {axis!r}")
    if not given or any(not -x.ndim <= a < x.ndim for a in given):
        raise ValueError(f"axis must name axes of x, which has {x.ndim} dimensions "
                         f"({-x.ndim} to {x.ndim - 1}); got {axis!r}")
    axes = tuple(sorted({int(a) % x.ndim for a in given}))
    if len(axes) != len(given):
        raise ValueError(f"axis must name each axis once; got {axis!r}")
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"x must hold at least one value along axis {axis!r}; got shape "
                         f"{x.shape}")
    return axes


def _check_spread(spread: np.ndarray, axis, what: str, x: np.ndarray, axes: tuple) -> None:
    """Raise if x is constant at some position, or if its spread rounds to 0 in x's dtype."""
    with np.errstate(over="ignore"):
        constant = np.ptp(x, axis=axes, keepdims=True) == 0
    if np.any(constant):  # whatever the rounding of the mean made of the std
        raise ValueError(f"x must vary along axis {axis!r} (the transform divides by its "
                         f"{what}); got {int(np.count_nonzero(constant))} of {constant.size} "
                         f"positions with zero {what} (constant values)")
    unresolved = spread == 0
    if np.any(unresolved):
        raise ValueError(f"x must vary by more than {x.dtype} can resolve along axis {axis!r} "
                         f"(the transform divides by its {what}); got "
                         f"{int(np.count_nonzero(unresolved))} positions whose {what} rounds to 0 "
                         f"in {x.dtype} (use float64)")


def _stats_arrays(stats, names: tuple, cls, x: np.ndarray) -> list:
    """The two arrays of a stats tuple, checked: finite, broadcastable against x."""
    if not (isinstance(stats, tuple) and len(stats) == 2):
        raise ValueError(f"stats must be the {cls.__name__} returned by the fitting function "
                         f"(or a pair of arrays {names}); got {describe(stats)}")
    arrays = [as_float_array(f"stats.{name}", value) for name, value in zip(names, stats)]
    for name, arr in zip(names, arrays):
        try:
            shape = np.broadcast_shapes(x.shape, arr.shape)
        except ValueError:
            shape = None
        if shape != x.shape:
            raise ValueError(f"stats.{name} must broadcast against x of shape {x.shape} (fit on "
                             f"data of the same layout); got shape {arr.shape}")
    return arrays


def _scale(x: np.ndarray, shift: np.ndarray, spread) -> np.ndarray:
    """(x - shift) / spread() in x's dtype, finite.

    Where that overflows (float32 data far apart, or float64 near its limit),
    computed again in float64 from halves, ``(x / 2 - shift / 2) / spread(half=True)``,
    which cannot overflow; a result that x's dtype cannot hold is refused.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        scale = spread()
        out = (x - shift) / scale
        if not (np.isfinite(scale).all() and np.isfinite(out).all()):
            out = ((0.5 * x.astype(np.float64) - 0.5 * shift.astype(np.float64))
                   / spread(half=True)).astype(x.dtype)
    if not np.isfinite(out).all():
        raise ValueError(f"x must give transformed values that {x.dtype} can hold; got "
                         f"{int(out.size - np.count_nonzero(np.isfinite(out)))} that overflow "
                         f"(largest |x| {np.abs(x).max():.2e})")
    return out


def min_max_scale(x, axis=0) -> tuple[np.ndarray, MinMaxStats]:
    """Scale ``x`` to the range [0, 1]: (x - min) / (max - min).

    Parameters
    ----------
    x : array_like of shape (N, ...)
        The data. Integer input (and lists) are converted to float64.
    axis : None, int or tuple of int, default 0
        Axes over which the minimum and maximum are taken (None: all).

    Returns
    -------
    scaled : ndarray, same shape as ``x``
    stats : MinMaxStats
        ``minimum`` and ``maximum`` with the reduced axes kept as size 1.
    """
    x = as_float_array("x", x, min_ndim=1)
    axes = _axes(x, axis)
    stats = MinMaxStats(x.min(axis=axes, keepdims=True), x.max(axis=axes, keepdims=True))
    with np.errstate(over="ignore"):
        _check_spread(stats.maximum - stats.minimum, axis, "range", x, axes)
    return apply_min_max(x, stats), stats


def apply_min_max(x, stats: MinMaxStats) -> np.ndarray:
    """Apply a min-max scaling fitted earlier (values outside the fit range leave [0, 1])."""
    x = as_float_array("x", x, min_ndim=1)
    minimum, maximum = _stats_arrays(stats, ("minimum", "maximum"), MinMaxStats, x)
    if np.any(maximum <= minimum):
        raise ValueError(f"stats.maximum must be > stats.minimum everywhere; got "
                         f"{int(np.count_nonzero(maximum <= minimum))} positions where it is not")
    return _scale(x, minimum, lambda half=False: maximum - minimum if not half
                  else 0.5 * maximum.astype(np.float64) - 0.5 * minimum.astype(np.float64))


def _needs_rescaling(x: np.ndarray, axes: tuple, stats: StandardStats) -> bool:
    """True if NumPy's mean or std overflowed, or the std underflowed to 0 for data that vary."""
    if not (np.isfinite(stats.mean).all() and np.isfinite(stats.std).all()):
        return True
    flat = stats.std == 0
    if not flat.any():
        return False
    with np.errstate(over="ignore"):
        return bool((np.ptp(x, axis=axes, keepdims=True)[flat] > 0).any())


def standardize(x, axis=0) -> tuple[np.ndarray, StandardStats]:
    """Shift and scale ``x`` to mean 0 and standard deviation 1: (x - mean) / std.

    The standard deviation is the population one (divides by N), as in
    batch normalization.

    Parameters
    ----------
    x : array_like of shape (N, ...)
        The data. Integer input (and lists) are converted to float64.
    axis : None, int or tuple of int, default 0
        Axes over which the mean and standard deviation are taken (None: all).

    Returns
    -------
    z : ndarray, same shape as ``x``
    stats : StandardStats
        ``mean`` and ``std`` with the reduced axes kept as size 1.

    The statistics are NumPy's ``mean`` and ``std``; where they overflow the
    dtype of x (float32 values of 1e30 have a variance of 1e60), or where the
    variance underflows to 0 although x varies (float64 values of 1e-289),
    they are computed again in float64 from x scaled by its largest magnitude.
    """
    x = as_float_array("x", x, min_ndim=1)
    axes = _axes(x, axis)
    work = x.astype(np.float32) if x.dtype == np.float16 else x  # float16 squares underflow
    with np.errstate(over="ignore", invalid="ignore"):
        stats = StandardStats(work.mean(axis=axes, keepdims=True).astype(x.dtype),
                              work.std(axis=axes, keepdims=True).astype(x.dtype))
    if _needs_rescaling(x, axes, stats):
        x64 = x.astype(np.float64)
        scale = np.max(np.abs(x64), axis=axes, keepdims=True)
        scale[scale == 0] = 1.0
        with np.errstate(over="ignore"):
            stats = StandardStats(
                (scale * np.mean(x64 / scale, axis=axes, keepdims=True)).astype(x.dtype),
                (scale * np.std(x64 / scale, axis=axes, keepdims=True)).astype(x.dtype))
    _check_spread(stats.std, axis, "standard deviation", x, axes)
    return apply_standardize(x, stats), stats


def apply_standardize(x, stats: StandardStats) -> np.ndarray:
    """Apply a standardization fitted earlier."""
    x = as_float_array("x", x, min_ndim=1)
    mean, std = _stats_arrays(stats, ("mean", "std"), StandardStats, x)
    if np.any(std <= 0):
        raise ValueError(f"stats.std must be > 0 everywhere; got "
                         f"{int(np.count_nonzero(std <= 0))} entries <= 0")
    return _scale(x, mean, lambda half=False: std if not half else 0.5 * std.astype(np.float64))
