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

from bnlib._stats import accurate_sum, moments, working_dtype
from bnlib._validate import (as_float_array, check_axis_spec, check_bool, check_eps,
                             check_float_dtype, check_layer_shape, check_momentum, check_shape,
                             in_dtype, parse_axis)
from bnlib.ema import ema_step

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


def _param(name: str, value, x: np.ndarray, kept: tuple) -> np.ndarray:
    """Validate a per-feature vector and reshape it to broadcast against x."""
    expected = tuple(x.shape[a] for a in kept)
    arr = in_dtype(name, as_float_array(name, value), x.dtype)
    check_shape(name, arr, expected, f"the sizes of the kept axes {kept} of x")
    return arr.reshape([x.shape[a] if a in kept else 1 for a in range(x.ndim)])


def _check_finite_statistic(name: str, value: np.ndarray, dtype) -> None:
    if not np.isfinite(value).all():
        raise ValueError(f"x must have a batch {name} that {np.dtype(dtype).name} can hold (the "
                         f"moving statistics are stored in the dtype of x, up to "
                         f"{np.finfo(dtype).max:.2e}); got a batch {name} that overflows it: "
                         f"rescale x or use float64")


def _check_finite_output(out: np.ndarray, x: np.ndarray) -> None:
    if out.size and not np.isfinite(out).all():
        bad = int(out.size - np.count_nonzero(np.isfinite(out)))
        raise ValueError(f"x, gamma and beta must give an output that {out.dtype} can hold "
                         f"(up to {np.finfo(out.dtype).max:.2e}); got {bad} overflowing entries "
                         f"(largest |x| {np.abs(x).max():.2e})")


# ---------------------------------------------------------------- batch norm

def batchnorm_forward(x, gamma, beta, moving_mean, moving_variance, *, training: bool,
                      momentum: float = 0.99, eps: float = 1e-3, axis=-1,
                      unbiased_moving_variance: bool = False):
    """Batch-normalize ``x``: y = gamma * (x - mean) / sqrt(var + eps) + beta.

    Parameters
    ----------
    x : array_like of shape (N, D), (N, H, W, C) or any (N, ...)
        A batch. Integer input (and lists) are converted to float64; float16
        is computed in float32 and returned as float16.
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

    Raises
    ------
    ValueError
        For a bad argument, and in training mode for fewer than 2 values per
        statistic (m = x.size / gamma.size: a batch of one (N, D) example is
        refused, one (1, H, W, C) image is not) or a batch variance that the
        dtype of x cannot hold.
    """
    x = as_float_array("x", x)
    kept, reduced = parse_axis(x.ndim, axis)
    training = check_bool("training", training)
    eps, momentum = check_eps(eps), check_momentum(momentum)
    unbiased_moving_variance = check_bool("unbiased_moving_variance", unbiased_moving_variance)
    gamma, beta, moving_mean, moving_variance = (
        _param(name, value, x, kept) for name, value in (
            ("gamma", gamma), ("beta", beta), ("moving_mean", moving_mean),
            ("moving_variance", moving_variance)))
    if np.any(moving_variance < 0):
        raise ValueError(f"moving_variance must be >= 0 everywhere; got "
                         f"{int(np.count_nonzero(moving_variance < 0))} negative entries")
    if gamma.size == 0:
        raise ValueError(f"x must have at least one feature on the kept axes {kept}; got shape "
                         f"{x.shape}")
    m = x.size // gamma.size                          # values behind each statistic
    if training and m < 2:
        raise ValueError(f"x must hold at least 2 values per statistic in training mode (here "
                         f"m = x.size / gamma.size, the values averaged for each feature); got "
                         f"a batch of {x.shape[0]} (x shape {x.shape}, m = {m}). "
                         f"Use training=False to normalize a single example.")

    if training:
        with np.errstate(over="ignore", invalid="ignore"):
            mean, var, x_mu = moments(x, reduced)     # biased variance; x_mu = x - mean
        var_for_moving = var * m / (m - 1) if unbiased_moving_variance else var
        with np.errstate(over="ignore"):
            moving_mean = ema_step(moving_mean, mean, momentum).astype(x.dtype, copy=False)
            moving_variance = ema_step(moving_variance, var_for_moving,
                                       momentum).astype(x.dtype, copy=False)
        _check_finite_statistic("variance", moving_variance, x.dtype)
    else:
        work = working_dtype(x.dtype)
        var = moving_variance.astype(work, copy=False)
        with np.errstate(over="ignore"):
            x_mu = x.astype(work, copy=False) - moving_mean.astype(work, copy=False)
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x_mu.dtype, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        x_hat = x_mu * inv_std
        out = gamma.astype(x_mu.dtype, copy=False) * x_hat + beta.astype(x_mu.dtype, copy=False)
        out = out.astype(x.dtype, copy=False)
    _check_finite_output(out, x)

    cache = BatchNormCache(x_hat.astype(x.dtype, copy=False), inv_std.astype(x.dtype, copy=False),
                           gamma, reduced, training)
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
        All three in the dtype of x (float16 is computed in float32).
    """
    if not isinstance(cache, BatchNormCache):
        raise ValueError(f"cache must be the BatchNormCache returned by batchnorm_forward; got "
                         f"{type(cache).__name__}")
    x_hat, inv_std, gamma, reduced, training = cache
    dout = as_float_array("dout", dout)
    check_shape("dout", dout, x_hat.shape, "the shape of x in the forward pass")
    dtype = x_hat.dtype
    work = working_dtype(dtype)
    if work != dtype:
        x_hat, inv_std, gamma = (a.astype(work) for a in (x_hat, inv_std, gamma))
        dout = dout.astype(work, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        dbeta = accurate_sum(dout, reduced).astype(work)
        dgamma = accurate_sum(dout * x_hat, reduced).astype(work)
        if training:
            m = x_hat.size // dbeta.size
            dx = gamma * inv_std / m * (m * dout - dbeta - x_hat * dgamma)
        else:
            dx = gamma * inv_std * dout
        dx, dgamma, dbeta = (a.astype(dtype, copy=False) for a in (dx, dgamma, dbeta))
    if not (np.isfinite(dgamma).all() and np.isfinite(dbeta).all() and np.isfinite(dx).all()):
        raise ValueError(f"dout must give gradients that {dtype} can hold (up to "
                         f"{np.finfo(dtype).max:.2e}); got gradients that overflow (largest "
                         f"|dout| {np.abs(dout).max():.2e})")
    param_shape = tuple(n for a, n in enumerate(x_hat.shape) if a not in reduced)
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

    _backward_pass = staticmethod(batchnorm_backward)  # FastBatchNorm swaps in its own

    def __init__(self, shape, *, momentum: float = 0.99, eps: float = 1e-3, axis=-1,
                 unbiased_moving_variance: bool = False, dtype=np.float64):
        shape = check_layer_shape("shape", shape)
        self.momentum = check_momentum(momentum)
        self.eps = check_eps(eps)
        check_axis_spec(axis)
        self.axis = axis
        self.unbiased_moving_variance = check_bool("unbiased_moving_variance",
                                                   unbiased_moving_variance)
        dtype = check_float_dtype("dtype", dtype)
        self.gamma = np.ones(shape, dtype)
        self.beta = np.zeros(shape, dtype)
        self.moving_mean = np.zeros(shape, dtype)
        self.moving_variance = np.ones(shape, dtype)
        self.dgamma = self.dbeta = None
        self._cache = None

    def __call__(self, x, *, training: bool) -> np.ndarray:
        """Normalize a batch; in training mode also update the moving statistics."""
        x = as_float_array("x", x)
        kept, _ = parse_axis(x.ndim, self.axis)
        if tuple(x.shape[a] for a in kept) != self.gamma.shape:
            raise ValueError(f"x must have sizes {self.gamma.shape} on the kept axes {kept} (the "
                             f"layer's shape); got shape {x.shape}")
        out, self._cache, self.moving_mean, self.moving_variance = batchnorm_forward(
            x, self.gamma, self.beta, self.moving_mean, self.moving_variance,
            training=training, momentum=self.momentum, eps=self.eps, axis=self.axis,
            unbiased_moving_variance=self.unbiased_moving_variance)
        return out

    def backward(self, dout) -> np.ndarray:
        """Return dx for the last call and store ``dgamma`` and ``dbeta``."""
        if self._cache is None:
            raise ValueError("backward must follow a forward call (it needs that call's cache); "
                             "got no forward call yet")
        dx, self.dgamma, self.dbeta = self._backward_pass(dout, self._cache)
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
        raise ValueError(f"moving_variance must be >= 0 everywhere; got "
                         f"{int(np.count_nonzero(vectors['moving_variance'] < 0))} negative "
                         f"entries")
    eps = check_eps(eps)
    with np.errstate(over="ignore", invalid="ignore"):
        scale = vectors["gamma"] / np.sqrt(vectors["moving_variance"] + eps)
        W_folded = W * scale
        b_folded = (vectors["b"] - vectors["moving_mean"]) * scale + vectors["beta"]
    if not (np.isfinite(W_folded).all() and np.isfinite(b_folded).all()):
        raise ValueError(f"W and the batch-norm parameters must give folded weights that "
                         f"{W_folded.dtype} can hold; got an overflow (largest |gamma / sigma| "
                         f"{np.abs(scale).max():.2e}, largest |W| {np.abs(W).max():.2e})")
    return W_folded, b_folded
