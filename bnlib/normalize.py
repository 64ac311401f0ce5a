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

from bnlib._validate import as_float_array

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


def _check_spread(name: str, spread: np.ndarray, what: str) -> None:
    flat = spread == 0
    if np.any(flat):
        raise ValueError(f"{name}: {int(np.count_nonzero(flat))} of {spread.size} positions have "
                         f"zero {what} (constant values), so the transform would divide by "
                         f"zero; expected data that varies along the chosen axes")


def min_max_scale(x, axis=0) -> tuple[np.ndarray, MinMaxStats]:
    """Scale ``x`` to the range [0, 1]: (x - min) / (max - min).

    Parameters
    ----------
    x : array_like of shape (N, ...)
        The data.
    axis : int or tuple of int, default 0
        Axes over which the minimum and maximum are taken.

    Returns
    -------
    scaled : ndarray, same shape as ``x``
    stats : MinMaxStats
        ``minimum`` and ``maximum`` with the reduced axes kept as size 1.
    """
    x = as_float_array("x", x, min_ndim=1)
    stats = MinMaxStats(x.min(axis=axis, keepdims=True), x.max(axis=axis, keepdims=True))
    _check_spread("min_max_scale", stats.maximum - stats.minimum, "range")
    return apply_min_max(x, stats), stats


def apply_min_max(x, stats: MinMaxStats) -> np.ndarray:
    """Apply a min-max scaling fitted earlier (values outside the fit range leave [0, 1])."""
    x = as_float_array("x", x, min_ndim=1)
    return (x - stats.minimum) / (stats.maximum - stats.minimum)


def standardize(x, axis=0) -> tuple[np.ndarray, StandardStats]:
    """Shift and scale ``x`` to mean 0 and standard deviation 1: (x - mean) / std.

    The standard deviation is the population one (divides by N), as in
    batch normalization.

    Parameters
    ----------
    x : array_like of shape (N, ...)
        The data.
    axis : int or tuple of int, default 0
        Axes over which the mean and standard deviation are taken.

    Returns
    -------
    z : ndarray, same shape as ``x``
    stats : StandardStats
        ``mean`` and ``std`` with the reduced axes kept as size 1.
    """
    x = as_float_array("x", x, min_ndim=1)
    stats = StandardStats(x.mean(axis=axis, keepdims=True), x.std(axis=axis, keepdims=True))
    _check_spread("standardize", stats.std, "standard deviation")
    return apply_standardize(x, stats), stats


def apply_standardize(x, stats: StandardStats) -> np.ndarray:
    """Apply a standardization fitted earlier."""
    x = as_float_array("x", x, min_ndim=1)
    return (x - stats.mean) / stats.std
