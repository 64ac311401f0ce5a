"""Layer normalization and group normalization: statistics per example, not per batch.

Batch norm averages each feature over the batch. Layer norm (Ba et al. 2016)
averages over the features of *one example*; group norm (Wu & He 2018) splits
the channels into groups and averages over each group (and over the spatial
positions, for images). Neither depends on the other examples in the batch,
so they behave identically in training and inference and keep no moving
statistics.

Shapes are channels last, as in Keras: x of shape (N, C) or (N, H, W, C).
gamma and beta have shape (C,). ``group_norm(groups=1)`` is layer norm over
all non-batch axes (Keras ``GroupNormalization(groups=1)``; for (N, C) input it
equals Keras ``LayerNormalization()``).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from bnlib._stats import moments, working_dtype
from bnlib._validate import (as_float_array, check_eps, check_float_dtype, check_int,
                             check_shape, in_dtype)

__all__ = ["GroupNormCache", "group_norm_forward", "group_norm_backward",
           "layer_norm_forward", "layer_norm_backward", "GroupNorm", "LayerNorm"]


class GroupNormCache(NamedTuple):
    """What :func:`group_norm_backward` needs.

    x_hat : ndarray, shape of x
    inv_std : ndarray of shape (N, 1, groups, 1)
    gamma : ndarray of shape (C,)
    groups : int
    """

    x_hat: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray
    groups: int


def _grouped(x: np.ndarray, groups: int) -> np.ndarray:
    """View x (N, ..., C) as (N, positions, groups, C // groups)."""
    return x.reshape(x.shape[0], math.prod(x.shape[1:-1]), groups, x.shape[-1] // groups)


def _check_groups(groups, channels: int) -> int:
    groups = check_int("groups", groups, minimum=1, hint=" (the number of channel groups)")
    if channels % groups:
        raise ValueError(f"groups must be a positive divisor of the {channels} channels; "
                         f"got {groups}")
    return groups


def group_norm_forward(x, gamma, beta, groups: int, eps: float = 1e-3):
    """Group-normalize each example: y = gamma * (x - mean_g) / sqrt(var_g + eps) + beta.

    Parameters
    ----------
    x : array_like of shape (N, C) or (N, ..., C)
        Integer input (and lists) are converted to float64; float16 is
        computed in float32 and returned as float16.
    gamma, beta : array_like of shape (C,)
    groups : int
        Number of channel groups; must divide C. 1 gives layer norm, C gives
        instance norm (one channel per group). Each group of each example must
        hold at least 2 values (positions times channels per group).
    eps : float > 0
        Added to the variance inside the square root.

    Returns
    -------
    out : ndarray, shape of x
    cache : GroupNormCache

    The statistics come from the same accurate helper as batch norm's
    (:func:`bnlib._stats.moments`), so float32 data far from zero keeps its
    digits.
    """
    x = as_float_array("x", x)
    if x.ndim < 2:
        raise ValueError(f"x must have shape (N, C) or (N, ..., C); got shape {x.shape}")
    c = x.shape[-1]
    if c == 0:
        raise ValueError(f"x must have at least one channel on its last axis; got shape {x.shape}")
    groups = _check_groups(groups, c)
    eps = check_eps(eps)
    gamma = in_dtype("gamma", as_float_array("gamma", gamma), x.dtype)
    beta = in_dtype("beta", as_float_array("beta", beta), x.dtype)
    check_shape("gamma", gamma, (c,), "the number of channels (last axis of x)")
    check_shape("beta", beta, (c,), "the number of channels (last axis of x)")
    per_group = math.prod(x.shape[1:-1]) * (c // groups)
    if per_group < 2:
        raise ValueError(f"x must give each group at least 2 values to normalize (one value "
                         f"normalizes to 0); got shape {x.shape} with {groups} groups, "
                         f"{per_group} value per group")
    xg = _grouped(x, groups)  # (N, positions, groups, C // groups)
    with np.errstate(over="ignore", invalid="ignore"):
        if xg.shape[1] == 1:  # (N, C): each group is one contiguous run, the fast reduction
            _, var, x_mu = moments(xg[:, 0], (2,))
            var, x_mu = var[:, None], x_mu[:, None]
        else:
            _, var, x_mu = moments(xg, (1, 3))
        inv_std = (1.0 / np.sqrt(var + eps)).astype(x_mu.dtype, copy=False)
        x_hat = (x_mu * inv_std).reshape(x.shape)
        out = (gamma.astype(x_mu.dtype, copy=False) * x_hat
               + beta.astype(x_mu.dtype, copy=False)).astype(x.dtype, copy=False)
    if out.size and not np.isfinite(out).all():
        raise ValueError(f"x, gamma and beta must give an output that {x.dtype} can hold; got "
                         f"an overflow (largest |gamma| {np.abs(gamma).max():.2e}, largest "
                         f"|beta| {np.abs(beta).max():.2e})")
    cache = GroupNormCache(x_hat.astype(x.dtype, copy=False), inv_std.astype(x.dtype, copy=False),
                           gamma, groups)
    return out, cache


def group_norm_backward(dout, cache: GroupNormCache):
    """Gradients of :func:`group_norm_forward`.

    Per example and group, with m values, g = dout * gamma and sums over the group::

        dx = inv_std / m * (m * g - sum(g) - x_hat * sum(g * x_hat))

    Returns
    -------
    dx : ndarray, shape of x
    dgamma, dbeta : ndarray of shape (C,)
        All three in the dtype of x (float16 is computed in float32).
    """
    if not isinstance(cache, GroupNormCache):
        raise ValueError(f"cache must be the GroupNormCache returned by group_norm_forward or "
                         f"layer_norm_forward; got {type(cache).__name__}")
    x_hat, inv_std, gamma, groups = cache
    dout = as_float_array("dout", dout)
    check_shape("dout", dout, x_hat.shape, "the shape of x in the forward pass")
    dtype = x_hat.dtype
    work = working_dtype(dtype)
    if work != dtype:
        x_hat, inv_std, gamma = (a.astype(work) for a in (x_hat, inv_std, gamma))
        dout = dout.astype(work, copy=False)
    batch_axes = tuple(range(dout.ndim - 1))
    with np.errstate(over="ignore", invalid="ignore"):
        dgamma = np.sum(dout * x_hat, axis=batch_axes)
        dbeta = np.sum(dout, axis=batch_axes)
        g = _grouped(dout * gamma, groups)
        xh = _grouped(x_hat, groups)
        m = g.shape[1] * g.shape[3]
        dx = (inv_std / m) * (m * g - g.sum(axis=(1, 3), keepdims=True)
                              - xh * np.sum(g * xh, axis=(1, 3), keepdims=True))
        dx, dgamma, dbeta = (a.astype(dtype, copy=False) for a in (dx, dgamma, dbeta))
    if not (np.isfinite(dx).all() and np.isfinite(dgamma).all() and np.isfinite(dbeta).all()):
        raise ValueError(f"dout must give gradients that {dtype} can hold; got gradients that "
                         f"overflow (largest |dout| {np.abs(dout).max():.2e})")
    return dx.reshape(dout.shape), dgamma, dbeta


def layer_norm_forward(x, gamma, beta, eps: float = 1e-3):
    """Layer norm: each example normalized over all its non-batch values.

    Same as ``group_norm_forward(x, gamma, beta, groups=1, eps)``; see there.
    """
    return group_norm_forward(x, gamma, beta, 1, eps)


def layer_norm_backward(dout, cache: GroupNormCache):
    """Gradients of :func:`layer_norm_forward`: (dx, dgamma, dbeta)."""
    return group_norm_backward(dout, cache)


class GroupNorm:
    """A group-norm layer with the interface of :class:`bnlib.batchnorm.BatchNorm`.

    ``training`` is accepted and ignored: the statistics come from each example
    alone, so training and inference compute the same thing.

    Parameters
    ----------
    channels : int
        C, the size of the last axis.
    groups : int
        Must divide ``channels``.
    eps : float, default 1e-3
    dtype : numpy dtype, default float64
    """

    def __init__(self, channels: int, groups: int, *, eps: float = 1e-3, dtype=np.float64):
        channels = check_int("channels", channels, minimum=1)
        self.groups = _check_groups(groups, channels)
        self.eps = check_eps(eps)
        dtype = check_float_dtype("dtype", dtype)
        self.gamma = np.ones(channels, dtype)
        self.beta = np.zeros(channels, dtype)
        self.dgamma = self.dbeta = None
        self._cache = None

    def __call__(self, x, *, training: bool) -> np.ndarray:
        """Normalize each example (the same in training and inference)."""
        try:
            shape = np.shape(x)  # group_norm_forward checks the values
        except ValueError:  # a ragged list: as_float_array explains
            shape = as_float_array("x", x).shape
        if len(shape) < 2 or shape[-1] != self.gamma.size:
            raise ValueError(f"x must have shape (N, {self.gamma.size}) or (N, ..., "
                             f"{self.gamma.size}), the layer's channels last; got shape {shape}")
        out, self._cache = group_norm_forward(x, self.gamma, self.beta, self.groups, self.eps)
        return out

    def backward(self, dout) -> np.ndarray:
        """Return dx for the last call and store ``dgamma`` and ``dbeta``."""
        if self._cache is None:
            raise ValueError("backward must follow a forward call (it needs that call's cache); "
                             "got no forward call yet")
        dx, self.dgamma, self.dbeta = group_norm_backward(dout, self._cache)
        return dx


class LayerNorm(GroupNorm):
    """A layer-norm layer: :class:`GroupNorm` with one group.

    Examples
    --------
    >>> layer = LayerNorm(4)
    >>> out = layer(np.array([[1.0, 2.0, 3.0, 4.0]]), training=True)
    >>> out.round(3).tolist()
    [[-1.341, -0.447, 0.447, 1.341]]
    """

    def __init__(self, channels: int, *, eps: float = 1e-3, dtype=np.float64):
        super().__init__(channels, 1, eps=eps, dtype=dtype)
