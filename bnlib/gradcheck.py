"""Numerical gradients by centred differences, and the relative error used to compare them."""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib._validate import as_float_array, check_real, describe

__all__ = ["numerical_gradient", "rel_error"]

_STEP_TOLERANCE = 1e-3  # the largest relative rounding of the step 2h that is accepted


def numerical_gradient(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout,
                       h: float = 1e-5) -> np.ndarray:
    """Gradient of sum(f(x) * dout) with respect to x, by centred differences.

    For each entry i: (L(x + h e_i) - L(x - h e_i)) / (2 h) with L(x) = sum(f(x) * dout).
    ``x`` is perturbed in place and restored (also when ``f`` raises), so ``f``
    may close over it.

    Parameters
    ----------
    f : callable
        Maps an array shaped like ``x`` to an array shaped like ``dout``
        (or to a number, with a scalar ``dout``).
    x : ndarray of float64 (or float32)
        The point; use float64, centred differences in float32 are too coarse.
        float16 is refused, and so is any x next to which the step h is lost
        to rounding (h = 1e-5 at x = 1e30): choose h of about 1e-5 * max|x|.
    dout : array_like
        The upstream gradient dL/df(x).
    h : float > 0, default 1e-5
        Step size.

    Returns
    -------
    ndarray, shape of x
    """
    if not callable(f):
        raise ValueError(f"f must be a function of x (e.g. lambda v: layer(v)); got {describe(f)}")
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise ValueError(f"x must be a floating-point ndarray (it is perturbed in place); "
                         f"got {type(x).__name__}"
                         + (f" of dtype {x.dtype}" if isinstance(x, np.ndarray) else ""))
    if x.dtype == np.float16:
        raise ValueError("x must be float64 (or float32): float16 keeps 3 digits, too few for "
                         "centred differences; got float16")
    as_float_array("x", x)  # finite
    h = check_real("h", h, minimum=0, open_min=True, hint=", e.g. 1e-5")
    dout = as_float_array("dout", dout)
    if x.size:
        step = (x + h) - (x - h)  # in x's dtype: what the perturbation really is
        worst = float(np.max(np.abs(step - 2.0 * h))) / (2.0 * h)
        if worst > _STEP_TOLERANCE:
            biggest = float(np.max(np.abs(x)))
            suggested = max(biggest, 1.0) * np.sqrt(np.finfo(x.dtype).eps)
            raise ValueError(f"h must be large enough to survive rounding next to x in {x.dtype}: "
                             f"with |x| up to {biggest:.1e}, the step 2h = {2 * h:.1e} is off by "
                             f"{worst:.0%}; try h of about {suggested:.0e}; got h={h:g}")
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        saved = x[i]
        try:
            x[i] = saved + h
            plus = _loss(f, x, dout)
            x[i] = saved - h
            minus = _loss(f, x, dout)
        finally:
            x[i] = saved
        if not (np.isfinite(plus) and np.isfinite(minus)):
            raise ValueError(f"f must return finite values near x; got a non-finite "
                             f"sum(f(x) * dout) at x{list(i)} +- h")
        grad[i] = (plus - minus) / (2.0 * h)
    return grad


def _loss(f, x: np.ndarray, dout: np.ndarray):
    fx = f(x)
    try:
        kind = np.asarray(fx).dtype.kind
    except (TypeError, ValueError):
        kind = "O"
    if kind not in "biuf":
        raise ValueError(f"f must return an array of real numbers; got {describe(fx)}")
    if np.shape(fx) != dout.shape and dout.ndim:
        raise ValueError(f"dout must have the shape of f(x), {np.shape(fx)} (or be a number); "
                         f"got {dout.shape}")
    return np.sum(fx * dout)


def rel_error(a, b) -> float:
    """Largest elementwise relative error |a - b| / max(1e-8, |a| + |b|).

    Computed from a / 2 and b / 2 (the same value, exactly), so that values
    near the largest float do not overflow: rel_error(1e308, 1.5e308) is 0.2.
    """
    a = as_float_array("a", a)
    b = as_float_array("b", b)
    if a.shape != b.shape:
        raise ValueError(f"b must have the same shape as a, {a.shape}; got {b.shape}")
    if a.size == 0:
        raise ValueError(f"a and b must hold at least one value; got shape {a.shape}")
    half_a, half_b = 0.5 * a, 0.5 * b
    return float(np.max(np.abs(half_a - half_b)
                        / np.maximum(0.5e-8, np.abs(half_a) + np.abs(half_b))))
