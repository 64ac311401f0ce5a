"""Batch normalization: forward (training and inference), backward, a layer, folding.

Shapes follow Keras: ``axis`` names the *kept* feature axes. ``axis=-1`` keeps
the last axis, which is per feature for x of shape (N, D) and per channel for
(N, H, W, C); ``axis=(1, 2, 3)`` keeps every pixel and channel of (N, H, W, C)
images (per-pixel normalization). The statistics are taken over all the
other axes, which always include the batch axis 0. gamma, beta and the moving
statistics have the shape of the kept axes, e.g. (D,), (C,) or (H, W, C).

Momentum is the weight on the old value (Keras, CS231n):
``new_moving = momentum * moving + (1 - momentum) * batch_statistic``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bnlib._validate import (as_float_array, check_eps, check_momentum, check_shape)
from bnlib.ema import ema_update


class BatchNormCache(NamedTuple):
    """What the backward pass needs from the forward pass.

    x_hat : ndarray, shape of x
        The normalized input (x - mean) * inv_std.
    inv_std : ndarray, broadcastable against x
        1 / sqrt(var + eps) with the statistics used (batch or moving).
    gamma : ndarray, broadcastable against x
    reduce_axes : tuple of int
        The axes the statistics were taken over.
    training : bool
        True if the batch statistics were used (they then depend on x).
    """

    x_hat: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray
    reduce_axes: tuple
    training: bool


def _axes(ndim: int, axis) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split range(ndim) into (kept axes, reduced axes), validating ``axis``."""
    if ndim < 2:
        raise ValueError(f"x must have a batch axis and at least one feature axis, e.g. shape "
                         f"(N, D) or (N, H, W, C); got {ndim} dimension(s)")
    kept = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if not all(isinstance(a, (int, np.integer)) for a in kept):
        raise ValueError(f"axis must be an int or a tuple of ints (the kept feature axes); "
                         f"got {axis!r}")
    if not kept:
        raise ValueError("axis must name at least one feature axis to keep; got ()")
    normalized = []
    for a in kept:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for x with {ndim} dimensions")
        normalized.append(a % ndim)
    if 0 in normalized:
        raise ValueError(f"axis must not include the batch axis 0 (batch norm averages over "
                         f"the batch); got axis={axis}")
    kept = tuple(sorted(set(normalized)))
    reduced = tuple(a for a in range(ndim) if a not in kept)
    return kept, reduced


def _param(name: str, value, x: np.ndarray, kept: tuple, reduced: tuple) -> np.ndarray:
    """Validate a per-feature vector and reshape it to broadcast against x."""
    expected = tuple(x.shape[a] for a in kept)
    arr = as_float_array(name, value).astype(x.dtype, copy=False)
    check_shape(name, arr, expected, f"the sizes of the kept axes {kept} of x")
    shape = [1 if a in reduced else x.shape[a] for a in range(x.ndim)]
    return arr.reshape(shape)


def _sum(a: np.ndarray, reduced: tuple, b: np.ndarray | None = None) -> np.ndarray:
    """Sum of ``a`` (or of ``a * b``) over the reduced axes, keeping them as size 1.

    When the reduced axes lead (the usual case: features last), the data is
    viewed as a wide (rows, k * features) matrix so NumPy sums long contiguous
    rows: much faster than summing a narrow channel axis, and more accurate in
    float32 because each partial sum adds fewer numbers. The k partial sums are
    then added in float64.
    """
    keep_shape = tuple(1 if ax in reduced else n for ax, n in enumerate(a.shape))
    leading = reduced == tuple(range(len(reduced)))
    if not (leading and a.flags.c_contiguous and (b is None or b.flags.c_contiguous)):
        total = np.sum(a if b is None else a * b, axis=reduced, dtype=np.float64)
        return total.reshape(keep_shape)
    features = int(np.prod(keep_shape))
    rows = a.size // features
    k = max(d for d in range(1, max(1, _WIDE // features) + 1) if rows % d == 0)
    wide = a.reshape(rows // k, k * features)
    partial = (wide.sum(axis=0) if b is None
               else np.einsum("ij,ij->j", wide, b.reshape(rows // k, k * features)))
    return partial.reshape(k, features).sum(axis=0, dtype=np.float64).reshape(keep_shape)


_WIDE = 2048  # columns of the wide view used by _sum


def batchnorm_forward(x, gamma, beta, moving_mean, moving_variance, *, training: bool,
                      momentum: float = 0.99, eps: float = 1e-3, axis=-1,
                      unbiased_moving_variance: bool = False):
    """Batch-normalize ``x``: y = gamma * (x - mean) / sqrt(var + eps) + beta.

    Parameters
    ----------
    x : array_like of shape (N, D), (N, H, W, C) or any (N, ...)
        A batch. Integer input is converted to float64.
    gamma, beta : array_like of the kept-axes shape, e.g. (D,) or (C,)
        Learned scale and shift.
    moving_mean, moving_variance : array_like of the kept-axes shape
        Running statistics used in inference mode and updated in training mode.
    training : bool
        True: normalize with this batch's mean and biased variance and update the
        moving statistics. False: normalize with the moving statistics.
    momentum : float in [0, 1), default 0.99
        Weight on the old moving value (Keras convention).
    eps : float > 0, default 1e-3
        Added to the variance inside the square root.
    axis : int or tuple of int, default -1
        The kept feature axes (Keras meaning). Must not include axis 0.
    unbiased_moving_variance : bool, default False
        Update the moving variance with the unbiased (n - 1) batch variance,
        as PyTorch does; Keras and the normalization itself use the biased one.

    Returns
    -------
    out : ndarray, shape of x
    cache : BatchNormCache
        Pass to :func:`batchnorm_backward`.
    new_moving_mean, new_moving_variance : ndarray of the kept-axes shape
        Updated in training mode, returned unchanged in inference mode.
    """
    x = as_float_array("x", x)
    kept, reduced = _axes(x.ndim, axis)
    eps = check_eps(eps)
    momentum = check_momentum(momentum)
    gamma_b = _param("gamma", gamma, x, kept, reduced)
    beta_b = _param("beta", beta, x, kept, reduced)
    mean_b = _param("moving_mean", moving_mean, x, kept, reduced)
    var_b = _param("moving_variance", moving_variance, x, kept, reduced)
    if np.any(var_b < 0):
        raise ValueError("moving_variance must be >= 0 everywhere; got a negative entry")
    param_shape = tuple(x.shape[a] for a in kept)

    if not training:
        inv_std = 1.0 / np.sqrt(var_b + eps)
        x_hat = (x - mean_b) * inv_std
        out = gamma_b * x_hat + beta_b
        cache = BatchNormCache(x_hat, inv_std, gamma_b, reduced, False)
        return out, cache, mean_b.reshape(param_shape), var_b.reshape(param_shape)

    if x.shape[0] < 2:
        raise ValueError(f"training mode needs a batch of at least 2 examples to compute batch "
                         f"statistics; got a batch of {x.shape[0]} (x shape {x.shape}). "
                         f"Use training=False to normalize a single example.")
    # Shift by the first example before averaging: the sums then stay small and
    # accurate even for float32 data far from zero (e.g. offset 1e4, spread 1e-2).
    shift = x[(slice(0, 1),) + tuple(slice(0, 1) if a in reduced else slice(None)
                                      for a in range(1, x.ndim))]
    n = x.size // int(np.prod(param_shape))
    centred = x - shift
    shifted_mean = _sum(centred, reduced) / n
    centred -= shifted_mean.astype(x.dtype)
    var = _sum(centred, reduced, centred) / n
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    x_hat = centred
    x_hat *= inv_std
    out = x_hat * gamma_b
    out += beta_b

    moving_var_update = var * n / (n - 1) if unbiased_moving_variance else var
    new_mean = ema_update(mean_b, shift + shifted_mean, momentum).astype(x.dtype, copy=False)
    new_var = ema_update(var_b, moving_var_update, momentum).astype(x.dtype, copy=False)
    cache = BatchNormCache(x_hat, inv_std, gamma_b, reduced, True)
    return out, cache, new_mean.reshape(param_shape), new_var.reshape(param_shape)


def batchnorm_backward(dout, cache: BatchNormCache):
    """Gradients of batch normalization, from the compact closed form.

    In training mode, with m values per statistic and g = dout * gamma::

        dx = inv_std / m * (m * g - sum(g) - x_hat * sum(g * x_hat))

    (sums over the reduced axes). In inference mode the statistics are
    constants and dx = g * inv_std.

    Parameters
    ----------
    dout : array_like, shape of x
        Upstream gradient dL/dout.
    cache : BatchNormCache
        From :func:`batchnorm_forward`.

    Returns
    -------
    dx : ndarray, shape of x
    dgamma, dbeta : ndarray of the kept-axes shape
    """
    x_hat, inv_std, gamma, axes, training = cache
    dout = as_float_array("dout", dout)
    check_shape("dout", dout, x_hat.shape, "the shape of x in the forward pass")
    param_shape = tuple(s for a, s in enumerate(x_hat.shape) if a not in axes)
    dbeta = _sum(dout, axes)
    dgamma = _sum(dout, axes, x_hat)
    scale = gamma * inv_std
    if training:
        m = x_hat.size // dbeta.size
        # dx = scale * (dout - dbeta / m - x_hat * dgamma / m), in place where possible
        dx = x_hat * (-scale * dgamma / m).astype(x_hat.dtype)
        dx += dout * scale
        dx -= (scale * dbeta / m).astype(x_hat.dtype)
    else:
        dx = dout * scale
    dgamma, dbeta = dgamma.astype(x_hat.dtype), dbeta.astype(x_hat.dtype)
    return dx, dgamma.reshape(param_shape), dbeta.reshape(param_shape)


class BatchNorm:
    """A batch-norm layer holding gamma, beta, moving_mean and moving_variance.

    gamma and beta are learned by gradient descent (``dgamma``/``dbeta`` are
    stored by :meth:`backward`); the moving statistics are updated by
    exponential smoothing on every training-mode call.

    Parameters
    ----------
    shape : int or tuple of int
        The kept-axes shape: D for (N, D) input with ``axis=-1``.
    momentum, eps, axis, unbiased_moving_variance
        As in :func:`batchnorm_forward` (Keras defaults).
    dtype : numpy dtype, default float64

    Examples
    --------
    >>> layer = BatchNorm(3)
    >>> out = layer(np.arange(12.0).reshape(4, 3), training=True)
    >>> layer.moving_mean.round(3).tolist()
    [0.045, 0.055, 0.065]
    """

    def __init__(self, shape, *, momentum: float = 0.99, eps: float = 1e-3, axis=-1,
                 unbiased_moving_variance: bool = False, dtype=np.float64):
        shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
        self.momentum = check_momentum(momentum)
        self.eps = check_eps(eps)
        self.axis = axis
        self.unbiased_moving_variance = unbiased_moving_variance
        self.gamma = np.ones(shape, dtype)
        self.beta = np.zeros(shape, dtype)
        self.moving_mean = np.zeros(shape, dtype)
        self.moving_variance = np.ones(shape, dtype)
        self.dgamma = self.dbeta = None
        self._cache = None

    def __call__(self, x, *, training: bool) -> np.ndarray:
        """Normalize a batch; in training mode also update the moving statistics."""
        out, self._cache, self.moving_mean, self.moving_variance = batchnorm_forward(
            x, self.gamma, self.beta, self.moving_mean, self.moving_variance,
            training=training, momentum=self.momentum, eps=self.eps, axis=self.axis,
            unbiased_moving_variance=self.unbiased_moving_variance)
        return out

    def backward(self, dout) -> np.ndarray:
        """Return dx for the last call and store ``dgamma`` and ``dbeta``."""
        if self._cache is None:
            raise ValueError("backward called before any forward call")
        dx, self.dgamma, self.dbeta = batchnorm_backward(dout, self._cache)
        return dx


def fold_into_dense(W, b, gamma, beta, moving_mean, moving_variance, eps: float = 1e-3):
    """Fold an inference-mode batch norm into the dense layer before it.

    dense then batch norm computes gamma * (x @ W + b - mu) / sigma + beta with
    sigma = sqrt(moving_variance + eps); that is x @ W' + b' with
    W' = W * gamma / sigma and b' = gamma * (b - mu) / sigma + beta.

    Parameters
    ----------
    W : array_like of shape (D_in, D_out)
    b : array_like of shape (D_out,) or None
        None for a dense layer without bias (``use_bias=False``).
    gamma, beta, moving_mean, moving_variance : array_like of shape (D_out,)
    eps : float > 0, default 1e-3

    Returns
    -------
    W_folded : ndarray of shape (D_in, D_out)
    b_folded : ndarray of shape (D_out,)
    """
    W = as_float_array("W", W, ndim=2)
    d_out = W.shape[1]
    b = np.zeros(d_out, W.dtype) if b is None else as_float_array("b", b)
    vectors = {"b": b, "gamma": gamma, "beta": beta, "moving_mean": moving_mean,
               "moving_variance": moving_variance}
    for name, value in vectors.items():
        vectors[name] = as_float_array(name, value)
        check_shape(name, vectors[name], (d_out,), "the number of columns of W")
    if np.any(vectors["moving_variance"] < 0):
        raise ValueError("moving_variance must be >= 0 everywhere; got a negative entry")
    scale = vectors["gamma"] / np.sqrt(vectors["moving_variance"] + check_eps(eps))
    return W * scale, (vectors["b"] - vectors["moving_mean"]) * scale + vectors["beta"]
