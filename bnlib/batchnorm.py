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

from bnlib._validate import as_float_array, check_eps, check_momentum, check_shape, parse_axis
from bnlib.ema import ema_update

__all__ = ["BatchNormCache", "batchnorm_forward", "batchnorm_backward", "BatchNorm",
           "fold_into_dense"]


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


# ---------------------------------------------------------------- accurate statistics
# The numerical care lives here, so that the forward and backward passes below
# read like the formulas: _sum adds accurately (float32 included), _moments
# uses it for the batch mean and variance.

_WIDE = 2048  # the most columns of the wide view, and the most values one column adds


def _sum(a: np.ndarray, axes: tuple) -> np.ndarray:
    """Sum of ``a`` over ``axes`` (kept as size 1), in float64, accurate for float32 input.

    A float32 running sum of a million numbers keeps only about four of its
    seven digits, because each addition rounds to the precision of the
    running total. So when the summed axes lead (features last, the usual
    case), ``a`` is viewed as a wide (rows / k, k * features) matrix, k the
    largest divisor of rows with k * features <= 2048 (k = 512 for 262,144
    rows of 4 channels). Each column then adds only rows / k numbers in a's
    dtype, and the k partial sums of each feature are added in float64. This
    is also the fast way to sum a narrow channel axis. When the columns would
    still be longer than 2048, or for another layout, NumPy sums with a
    float64 accumulator instead. Either way the result is float64.
    """
    keep_shape = tuple(1 if ax in axes else n for ax, n in enumerate(a.shape))
    features = int(np.prod(keep_shape))
    rows = a.size // features
    k = max(d for d in range(1, max(1, _WIDE // features) + 1) if rows % d == 0)
    if axes != tuple(range(len(axes))) or not a.flags.c_contiguous or rows // k > _WIDE:
        return np.sum(a, axis=axes, dtype=np.float64, keepdims=True)
    partial = a.reshape(rows // k, k * features).sum(axis=0)
    return partial.reshape(k, features).sum(axis=0, dtype=np.float64).reshape(keep_shape)


def _moments(x: np.ndarray, axes: tuple):
    """Batch mean and biased variance over ``axes``, and x - mean, accurate in float32.

    Returns
    -------
    mean, var : float64 ndarray, ``axes`` kept as size 1
    x_mu : ndarray, shape and dtype of x
        x - mean.

    The statistics are computed from x - x0, x0 the first example: the shift
    moves the mean by x0 and leaves the variance unchanged, float32 subtracts
    nearby numbers exactly, and the sums (by :func:`_sum`) then add small
    numbers. x - mean is formed as (x - x0) - (mean - x0), from the small
    shifted mean. Without the shift, for float32 data at 1e4 +- 1e-2, the
    mean rounded to float32 is off by up to half a float32 step at 1e4
    (5e-4, a twentieth of the spread), and so is every x - mean.
    """
    m = x.size // int(np.prod([n for a, n in enumerate(x.shape) if a not in axes]))
    x0 = x[tuple(slice(0, 1) if a in axes else slice(None) for a in range(x.ndim))]
    shifted = x - x0
    shifted_mean = _sum(shifted, axes) / m
    x_mu = shifted - shifted_mean.astype(x.dtype)
    var = _sum(x_mu * x_mu, axes) / m
    return x0 + shifted_mean, var, x_mu


def _param(name: str, value, x: np.ndarray, kept: tuple) -> np.ndarray:
    """Validate a per-feature vector and reshape it to broadcast against x."""
    expected = tuple(x.shape[a] for a in kept)
    arr = as_float_array(name, value).astype(x.dtype, copy=False)
    check_shape(name, arr, expected, f"the sizes of the kept axes {kept} of x")
    return arr.reshape([x.shape[a] if a in kept else 1 for a in range(x.ndim)])


# ---------------------------------------------------------------- batch norm

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
        Update the moving variance with the unbiased (m - 1) batch variance,
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
    kept, reduced = parse_axis(x.ndim, axis)
    eps, momentum = check_eps(eps), check_momentum(momentum)
    gamma, beta, moving_mean, moving_variance = (
        _param(name, value, x, kept) for name, value in (
            ("gamma", gamma), ("beta", beta), ("moving_mean", moving_mean),
            ("moving_variance", moving_variance)))
    if np.any(moving_variance < 0):
        raise ValueError("moving_variance must be >= 0 everywhere; got a negative entry")
    if training and x.shape[0] < 2:
        raise ValueError(f"training mode needs a batch of at least 2 examples to compute batch "
                         f"statistics; got a batch of {x.shape[0]} (x shape {x.shape}). "
                         f"Use training=False to normalize a single example.")

    if training:
        mean, var, x_mu = _moments(x, reduced)        # biased variance; x_mu = x - mean
        m = x.size // gamma.size                      # values behind each statistic
        var_for_moving = var * m / (m - 1) if unbiased_moving_variance else var
        moving_mean = ema_update(moving_mean, mean, momentum).astype(x.dtype, copy=False)
        moving_variance = ema_update(moving_variance, var_for_moving,
                                     momentum).astype(x.dtype, copy=False)
    else:
        var = moving_variance
        x_mu = x - moving_mean
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype, copy=False)
    x_hat = x_mu * inv_std
    out = gamma * x_hat + beta

    cache = BatchNormCache(x_hat, inv_std, gamma, reduced, training)
    param_shape = tuple(x.shape[a] for a in kept)
    return out, cache, moving_mean.reshape(param_shape), moving_variance.reshape(param_shape)


def batchnorm_backward(dout, cache: BatchNormCache):
    """Gradients of batch normalization, from the compact closed form.

    In training mode, with m values per statistic and sums over the reduced axes::

        dbeta  = sum(dout)
        dgamma = sum(dout * x_hat)
        dx     = gamma * inv_std / m * (m * dout - dbeta - x_hat * dgamma)

    In inference mode the statistics are constants and dx = gamma * inv_std * dout.

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
    x_hat, inv_std, gamma, reduced, training = cache
    dout = as_float_array("dout", dout)
    check_shape("dout", dout, x_hat.shape, "the shape of x in the forward pass")
    dtype = x_hat.dtype
    dbeta = _sum(dout, reduced).astype(dtype)
    dgamma = _sum(dout * x_hat, reduced).astype(dtype)
    if training:
        m = x_hat.size // dbeta.size
        dx = gamma * inv_std / m * (m * dout - dbeta - x_hat * dgamma)
    else:
        dx = gamma * inv_std * dout
    param_shape = tuple(n for a, n in enumerate(x_hat.shape) if a not in reduced)
    return dx.astype(dtype, copy=False), dgamma.reshape(param_shape), dbeta.reshape(param_shape)


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
