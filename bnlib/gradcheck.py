"""Numerical gradients by centred differences, and the relative error used to compare them."""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib._validate import as_float_array

__all__ = ["numerical_gradient", "rel_error"]


def numerical_gradient(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout,
                       h: float = 1e-5) -> np.ndarray:
    """Gradient of sum(f(x) * dout) with respect to x, by centred differences.

    For each entry i: (L(x + h e_i) - L(x - h e_i)) / (2 h) with L(x) = sum(f(x) * dout).
    ``x`` is perturbed in place and restored, so ``f`` may close over it.

    Parameters
    ----------
    f : callable
        Maps an array shaped like ``x`` to an array shaped like ``dout``.
    x : ndarray of float64
        The point; use float64, centred differences in float32 are too coarse.
    dout : array_like
        The upstream gradient dL/df(x).
    h : float, default 1e-5
        Step size.

    Returns
    -------
    ndarray, shape of x
    """
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise ValueError(f"x must be a floating-point ndarray (it is perturbed in place); "
                         f"got {type(x).__name__}")
    dout = as_float_array("dout", dout)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + h
        plus = np.sum(f(x) * dout)
        x[i] = saved - h
        minus = np.sum(f(x) * dout)
        x[i] = saved
        grad[i] = (plus - minus) / (2.0 * h)
    return grad


def rel_error(a, b) -> float:
    """Largest elementwise relative error |a - b| / max(1e-8, |a| + |b|)."""
    a = as_float_array("a", a)
    b = as_float_array("b", b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape; got {a.shape} and {b.shape}")
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))
