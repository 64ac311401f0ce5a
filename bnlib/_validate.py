"""Argument checks shared by the bnlib modules.

Every check raises ``ValueError`` with a message that names the argument,
says what it got and what was expected, so a learner can fix the call.
"""
from __future__ import annotations

import numpy as np


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
