"""Argument checks shared by the bnlib modules.

Every check raises ``ValueError`` with a message that names the argument,
says what it got and what was expected, so a learner can fix the call.
"""
from __future__ import annotations

import numpy as np

__all__ = ["as_float_array", "check_shape", "check_eps", "check_momentum", "check_alpha",
           "parse_axis"]


def as_float_array(name: str, value, *, ndim: int | tuple[int, ...] | None = None,
                   min_ndim: int | None = None) -> np.ndarray:
    """Return ``value`` as a finite floating-point array.

    Integer and boolean arrays are converted to float64 (consistently, in
    every bnlib function); float16/32/64 arrays keep their dtype.

    Parameters
    ----------
    name : str
        The argument's name, used in error messages.
    value : array_like
        The value to check.
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    min_ndim : int, optional
        Smallest allowed number of dimensions.

    Returns
    -------
    ndarray
        A floating-point view or copy of ``value``.
    """
    arr = np.asarray(value)
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif arr.dtype.kind != "f":
        raise ValueError(f"{name} must be an array of real numbers; got dtype {arr.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimensions; "
                             f"got shape {arr.shape} ({arr.ndim} dimensions)")
    if min_ndim is not None and arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} must contain only finite values; got {bad} NaN or infinite "
                         f"entries out of {arr.size}")
    return arr


def check_shape(name: str, arr: np.ndarray, expected: tuple[int, ...], why: str) -> None:
    """Raise unless ``arr.shape == expected``; ``why`` says where the shape comes from."""
    if arr.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)} ({why}); got {arr.shape}")


def check_eps(eps: float) -> float:
    """Return ``eps`` as a float, or raise unless it is finite and > 0."""
    eps = float(eps)
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a small positive number such as 1e-3 (it keeps the "
                         f"square root away from zero); got {eps}")
    return eps


def check_momentum(momentum: float) -> float:
    """Return ``momentum`` as a float, or raise unless 0 <= momentum < 1."""
    momentum = float(momentum)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum is the weight on the old value and must be in [0, 1), "
                         f"for example 0.99; got {momentum}")
    return momentum


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as a float, or raise unless 0 < alpha <= 1."""
    alpha = float(alpha)
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha is the weight on the newest value and must be in (0, 1], "
                         f"for example 0.1; got {alpha}")
    return alpha


def parse_axis(ndim: int, axis) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split range(ndim) into (kept axes, reduced axes) for a batch-norm ``axis``.

    ``axis`` has the Keras meaning used everywhere in bnlib: the *kept*
    feature axes (an int or a tuple of ints, negative counted from the end).
    The statistics are taken over the other axes, which always include the
    batch axis 0.

    Parameters
    ----------
    ndim : int
        Number of dimensions of x; at least 2 (a batch axis and a feature axis).
    axis : int or tuple of int

    Returns
    -------
    kept, reduced : tuple of int
        Both sorted, non-negative, together ``range(ndim)``.

    Examples
    --------
    >>> parse_axis(4, -1)
    ((3,), (0, 1, 2))
    >>> parse_axis(4, (1, 2, 3))
    ((1, 2, 3), (0,))
    """
    if ndim < 2:
        raise ValueError(f"x must have a batch axis and at least one feature axis, e.g. shape "
                         f"(N, D) or (N, H, W, C); got {ndim} dimension(s)")
    kept = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in kept):
        raise ValueError(f"axis must be an int or a tuple of ints (the kept feature axes); "
                         f"got {axis!r}")
    if not kept:
        raise ValueError("axis must name at least one feature axis to keep; got ()")
    for a in kept:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for x with {ndim} dimensions")
    kept = tuple(sorted({int(a) % ndim for a in kept}))
    if 0 in kept:
        raise ValueError(f"axis must not include the batch axis 0 (batch norm averages over "
                         f"the batch); got axis={axis}")
    return kept, tuple(a for a in range(ndim) if a not in kept)
