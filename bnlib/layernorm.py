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

from typing import NamedTuple

import numpy as np

from bnlib._validate import as_float_array, check_eps, check_shape

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
    return x.reshape(x.shape[0], -1, groups, x.shape[-1] // groups)


def group_norm_forward(x, gamma, beta, groups: int, eps: float = 1e-3):
    """Group-normalize each example: y = gamma * (x - mean_g) / sqrt(var_g + eps) + beta.

    Parameters
    ----------
    x : array_like of shape (N, C) or (N, ..., C)
    gamma, beta : array_like of shape (C,)
    groups : int
        Number of channel groups; must divide C. 1 gives layer norm, C gives
        instance norm (one channel per group).
    eps : float > 0
        Added to the variance inside the square root.

    Returns
    -------
    out : ndarray, shape of x
    cache : GroupNormCache
    """
    x = as_float_array("x", x)
    if x.ndim < 2:
        raise ValueError(f"x must have shape (N, C) or (N, ..., C); got shape {x.shape}")
    c = x.shape[-1]
    if not (isinstance(groups, (int, np.integer)) and 1 <= groups <= c and c % groups == 0):
        raise ValueError(f"groups must be a positive divisor of the {c} channels; got {groups}")
    eps = check_eps(eps)
    gamma = as_float_array("gamma", gamma).astype(x.dtype, copy=False)
    beta = as_float_array("beta", beta).astype(x.dtype, copy=False)
    check_shape("gamma", gamma, (c,), "the number of channels (last axis of x)")
    check_shape("beta", beta, (c,), "the number of channels (last axis of x)")
    xg = _grouped(x, groups)
    mean = xg.mean(axis=(1, 3), keepdims=True)
    centred = xg - mean
    var = np.mean(centred * centred, axis=(1, 3), keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (centred * inv_std).reshape(x.shape)
    return gamma * x_hat + beta, GroupNormCache(x_hat, inv_std, gamma, int(groups))


def group_norm_backward(dout, cache: GroupNormCache):
    """Gradients of :func:`group_norm_forward`.

    Per example and group, with m values, g = dout * gamma and sums over the group::

        dx = inv_std / m * (m * g - sum(g) - x_hat * sum(g * x_hat))

    Returns
    -------
    dx : ndarray, shape of x
    dgamma, dbeta : ndarray of shape (C,)
    """
    x_hat, inv_std, gamma, groups = cache
    dout = as_float_array("dout", dout)
    check_shape("dout", dout, x_hat.shape, "the shape of x in the forward pass")
    batch_axes = tuple(range(dout.ndim - 1))
    dgamma = np.sum(dout * x_hat, axis=batch_axes)
    dbeta = np.sum(dout, axis=batch_axes)
    g = _grouped(dout * gamma, groups)
    xh = _grouped(x_hat, groups)
    m = g.shape[1] * g.shape[3]
    dx = (inv_std / m) * (m * g - g.sum(axis=(1, 3), keepdims=True)
                          - xh * np.sum(g * xh, axis=(1, 3), keepdims=True))
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
        channels = int(channels)
        if groups < 1 or channels % groups:
            raise ValueError(f"groups must divide channels={channels}; got {groups}")
        self.groups = int(groups)
        self.eps = check_eps(eps)
        self.gamma = np.ones(channels, dtype)
        self.beta = np.zeros(channels, dtype)
        self.dgamma = self.dbeta = None
        self._cache = None

    def __call__(self, x, *, training: bool) -> np.ndarray:
        """Normalize each example (the same in training and inference)."""
        out, self._cache = group_norm_forward(x, self.gamma, self.beta, self.groups, self.eps)
        return out

    def backward(self, dout) -> np.ndarray:
        """Return dx for the last call and store ``dgamma`` and ``dbeta``."""
        if self._cache is None:
            raise ValueError("backward called before any forward call")
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
