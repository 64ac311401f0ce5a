"""Argument checks shared by the bnlib modules.

Every check raises ``ValueError`` with a message of one shape,
``"<argument> must <what was expected>; got <what was given>"``, so a
learner can fix the call. Numbers are accepted as Python or NumPy scalars
(or 0-d arrays), never as strings or booleans; arrays as anything
``np.asarray`` turns into real numbers (lists, integers).
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["describe", "as_float_array", "check_shape", "in_dtype", "check_real", "check_int",
           "check_bool", "check_choice", "check_layer_shape", "check_float_dtype", "check_seed",
           "check_labels", "check_eps", "check_momentum", "check_alpha", "check_axis_spec",
           "parse_axis"]


def describe(value) -> str:
    """A short description of ``value`` for the "got ..." part of a message."""
    if isinstance(value, np.ndarray) and value.ndim:
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_float_array(name: str, value, *, ndim: int | tuple[int, ...] | None = None,
                   min_ndim: int | None = None) -> np.ndarray:
    """Return ``value`` as a finite floating-point array.

    Integer and boolean arrays (and lists of them) are converted to float64,
    consistently in every bnlib function; float16/32/64 arrays keep their dtype.

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
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged lists and other non-arrays
        raise ValueError(f"{name} must be an array of real numbers; got {describe(value)}, "
                         f"which NumPy cannot turn into one ({error})") from None
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif arr.dtype.kind != "f":
        raise ValueError(f"{name} must be an array of real numbers; got dtype {arr.dtype} "
                         f"({describe(value)})")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimensions; "
                             f"got shape {arr.shape} ({arr.ndim} dimensions)")
    if min_ndim is not None and arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} must contain only finite values; got {bad} NaN or infinite "
                         f"entries out of {arr.size}")
    return arr


def check_shape(name: str, arr: np.ndarray, expected: tuple[int, ...], why: str) -> None:
    """Raise unless ``arr.shape == expected``; ``why`` says where the shape comes from."""
    if arr.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)} ({why}); got {arr.shape}")


def in_dtype(name: str, arr: np.ndarray, dtype) -> np.ndarray:
    """``arr`` converted to ``dtype`` (the dtype of x), or raise if its values do not fit there."""
    with np.errstate(over="ignore"):
        out = arr.astype(dtype, copy=False)
    if out is not arr and out.size and not np.isfinite(out).all():
        raise ValueError(f"{name} must fit in {np.dtype(dtype).name}, the dtype of x (up to "
                         f"{np.finfo(dtype).max:.2e}); got values up to {np.abs(arr).max():.2e}")
    return out


def _is_real_number(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Real):
        return True
    return isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf"


def check_real(name: str, value, *, minimum: float | None = None, maximum: float | None = None,
               open_min: bool = False, open_max: bool = False, hint: str = "") -> float:
    """Return ``value`` as a float, or raise unless it is a finite real number in range.

    ``minimum``/``maximum`` bound it (excluded with ``open_min``/``open_max``);
    ``hint`` is added to the message (e.g. ", for example 0.1").
    """
    if minimum is not None and maximum is not None:
        expected = (f"a finite number in {'(' if open_min else '['}{minimum:g}, {maximum:g}"
                    f"{')' if open_max else ']'}")
    elif minimum is not None:
        expected = f"a finite number {'>' if open_min else '>='} {minimum:g}"
    elif maximum is not None:
        expected = f"a finite number {'<' if open_max else '<='} {maximum:g}"
    else:
        expected = "a finite number"
    if not _is_real_number(value):
        raise ValueError(f"{name} must be {expected}{hint}; got {describe(value)}")
    number = float(value)
    if (not np.isfinite(number)
            or (minimum is not None and (number <= minimum if open_min else number < minimum))
            or (maximum is not None and (number >= maximum if open_max else number > maximum))):
        raise ValueError(f"{name} must be {expected}{hint}; got {describe(value)}")
    return number


def check_int(name: str, value, *, minimum: int | None = None, maximum: int | None = None,
              hint: str = "") -> int:
    """Return ``value`` as an int, or raise unless it is an integer (not a float, not a bool)."""
    bounds = " and ".join(filter(None, ["" if minimum is None else f">= {minimum}",
                                        "" if maximum is None else f"<= {maximum}"]))
    expected = f"an integer{' ' if bounds else ''}{bounds}{hint}"
    is_int = (isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
              or isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu")
    if not is_int:
        raise ValueError(f"{name} must be {expected}; got {describe(value)}")
    number = int(value)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ValueError(f"{name} must be {expected}; got {number}")
    return number


def check_layer_shape(name: str, shape) -> tuple[int, ...]:
    """Return a layer's parameter shape as a tuple, or raise unless it is a positive int or a
    non-empty tuple/list of them."""
    sizes = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    expected = "a positive integer or a non-empty tuple of them, e.g. 3 or (4, 4, 3)"
    ok = bool(sizes) and all(
        isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)) and s >= 1
        for s in sizes)
    if not ok:
        raise ValueError(f"{name} must be {expected}; got {describe(shape)}")
    return tuple(int(s) for s in sizes)


def check_bool(name: str, value) -> bool:
    """Return ``value`` as a bool, or raise unless it is True or False (NumPy's bools too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {describe(value)}")
    return bool(value)


def check_choice(name: str, value, choices: tuple) -> None:
    """Raise unless ``value`` is one of ``choices`` (compared without NumPy broadcasting)."""
    if not any(isinstance(value, type(c)) and value == c for c in choices):
        raise ValueError(f"{name} must be one of {choices}; got {describe(value)}")


def check_float_dtype(name: str, dtype) -> np.dtype:
    """Return ``np.dtype(dtype)``, or raise unless it is float16, float32 or float64."""
    try:
        result = np.dtype(dtype)
    except TypeError:
        result = None
    if result is None or result.kind != "f" or result.itemsize > 8:
        raise ValueError(f"{name} must be a floating-point dtype (np.float16, np.float32 or "
                         f"np.float64); got {describe(dtype)}")
    return result


def check_seed(name: str, seed):
    """Return ``seed`` if ``np.random.default_rng`` accepts it (no floats, no bools)."""
    if isinstance(seed, (bool, np.bool_, float, str, bytes)):
        raise ValueError(f"{name} must be a non-negative integer (or a sequence of them); "
                         f"got {describe(seed)}")
    try:
        np.random.SeedSequence(seed)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-negative integer (or a sequence of them); "
                         f"got {describe(seed)}") from None
    return seed


def check_labels(name: str, y, n: int, k: int) -> np.ndarray:
    """Return ``y`` as an integer array of shape (n,) with entries in 0..k-1, or raise."""
    try:
        arr = np.asarray(y)
    except (ValueError, TypeError):
        arr = np.asarray(None, dtype=object)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class labels 0..{k - 1}; got "
                         f"{describe(y) if arr.dtype == object else f'dtype {arr.dtype}'}")
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one label per example; got {arr.shape}")
    if n and (arr.min() < 0 or arr.max() >= k):
        bad = arr[(arr < 0) | (arr >= k)]
        raise ValueError(f"{name} must hold class labels in 0..{k - 1} (there are {k} classes); "
                         f"got {bad.size} outside, e.g. {bad[0]}")
    return arr


def check_eps(eps) -> float:
    """Return ``eps`` as a float, or raise unless it is finite and > 0."""
    if not (_is_real_number(eps) and 0.0 < float(eps) < np.inf):
        raise ValueError(f"eps must be a small positive number such as 1e-3 (it keeps the "
                         f"square root away from zero); got {describe(eps)}")
    return float(eps)


def check_momentum(momentum) -> float:
    """Return ``momentum`` as a float, or raise unless 0 <= momentum < 1."""
    if not (_is_real_number(momentum) and 0.0 <= float(momentum) < 1.0):
        raise ValueError(f"momentum is the weight on the old value and must be in [0, 1), "
                         f"for example 0.99; got {describe(momentum)}")
    return float(momentum)


def check_alpha(alpha) -> float:
    """Return ``alpha`` as a float, or raise unless 0 < alpha <= 1."""
    if not (_is_real_number(alpha) and 0.0 < float(alpha) <= 1.0):
        raise ValueError(f"alpha is the weight on the newest value and must be in (0, 1], "
                         f"for example 0.1; got {describe(alpha)}")
    return float(alpha)


def check_axis_spec(axis) -> tuple:
    """The ``axis`` entries as a tuple, or raise unless it is an int or a tuple/list of ints."""
    kept = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if not all(isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_))
               for a in kept):
        raise ValueError(f"axis must be an int or a tuple of ints (the kept feature axes); "
                         f"got {axis!r}")
    if not kept:
        raise ValueError("axis must name at least one feature axis to keep; got ()")
    return kept


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
    kept = check_axis_spec(axis)
    for a in kept:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis must name axes of x, which has {ndim} dimensions "
                             f"({-ndim} to {ndim - 1}); got axis {a} out of range")
    kept = tuple(sorted({int(a) % ndim for a in kept}))
    if 0 in kept:
        raise ValueError(f"axis must not include the batch axis 0 (batch norm averages over "
                         f"the batch); got axis={axis}")
    return kept, tuple(a for a in range(ndim) if a not in kept)
