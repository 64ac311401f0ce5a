"""Batch norm across devices: per-replica statistics combined, and ghost batch norm.

Data-parallel training splits a global batch of N examples into R replica
batches. Each replica can compute its own statistics (count n_r, mean mu_r,
biased variance var_r, per feature). Two questions follow, and this module
answers both in NumPy.

* **Combining.** Synchronized batch norm needs the mean and variance of the
  *global* batch. They follow exactly from the per-replica ones (Chan, Golub
  and LeVeque's parallel formula)::

      n   = sum_r n_r
      mu  = sum_r n_r mu_r / n
      var = sum_r n_r (var_r + (mu_r - mu)**2) / n

  The second term of ``var`` is the spread *between* replicas: averaging the
  variances alone leaves it out. :func:`combine_moments` computes this.
  The other common form all-reduces three sums, count, sum(x) and sum(x**2),
  and takes ``var = sum(x**2)/n - mu**2`` (:func:`moments_from_sums`). It is
  exact in real numbers but subtracts two nearly equal numbers when the mean
  is large next to the spread: in float32 (about 7 digits) its relative error
  grows like ``6e-8 * (mu / sigma)**2``, so with mu/sigma = 1e4 nothing is
  left. Subtracting a shared shift first (:func:`shifted_sums`; bnlib's
  batch norm shifts by the first example for the same reason) or combining
  (count, mean, variance) with Chan's formula avoids it.

* **Ghost batch norm** (Hoffer, Hubara and Soudry 2017) normalizes each
  consecutive block of ``ghost_size`` examples with its own statistics, on
  purpose, inside one large batch. It is exactly what per-replica batch norm
  computes when each replica holds ``ghost_size`` examples of the global
  batch. :func:`ghost_batchnorm_forward` and :func:`ghost_batchnorm_backward`
  reshape the batch into ghost batches and call
  :func:`bnlib.batchnorm.batchnorm_forward` / ``batchnorm_backward``.

Shapes: statistics have a leading replica axis, ``(R, D)`` for (N, D) data
(or ``(R, C)``, ``(R, H, W, C)``: the kept-axes shape of batch norm's ``axis``).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bnlib._validate import (as_float_array, check_eps, check_momentum, check_shape,
                             parse_axis)
from bnlib.batchnorm import batchnorm_backward, batchnorm_forward

__all__ = ["Moments", "local_moments", "split_replicas", "combine_moments",
           "moments_from_sums", "shifted_sums", "moments_from_shifted_sums",
           "GhostCache", "ghost_batchnorm_forward", "ghost_batchnorm_backward",
           "GhostBatchNorm"]


class Moments(NamedTuple):
    """Count, mean and biased variance of one batch, per kept feature.

    count : int
        Values per statistic (the batch size for (N, D) data, N*H*W per channel).
    mean, variance : ndarray of the kept-axes shape, e.g. (D,)
    """

    count: int
    mean: np.ndarray
    variance: np.ndarray


def local_moments(x, axis=-1) -> Moments:
    """What one replica computes from its own batch: count, mean, biased variance.

    Two passes (mean first, then the mean squared deviation), so the result is
    accurate in the dtype of x even for data far from zero.

    Parameters
    ----------
    x : array_like of shape (n, D) or (n, H, W, C), ...
    axis : int or tuple of int, default -1
        The kept feature axes (batch norm's meaning).

    Returns
    -------
    Moments
    """
    x = as_float_array("x", x)
    _, reduced = parse_axis(x.ndim, axis)
    mean = x.mean(axis=reduced, keepdims=True)
    variance = np.mean(np.square(x - mean), axis=reduced)
    count = int(np.prod([x.shape[a] for a in reduced]))
    return Moments(count, mean.squeeze(reduced), variance)


def split_replicas(x, replicas: int) -> list:
    """Split a global batch as ``tf.distribute`` does: R consecutive, equal slices.

    Parameters
    ----------
    x : array_like of shape (N, ...)
    replicas : int
        R >= 1, dividing N.

    Returns
    -------
    list of R ndarrays of shape (N // R, ...)
    """
    x = np.asarray(x)
    replicas = int(replicas)
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1; got {replicas}")
    if x.ndim < 1 or x.shape[0] % replicas:
        raise ValueError(f"replicas ({replicas}) must divide the global batch size; "
                         f"got x of shape {x.shape}")
    return list(x.reshape((replicas, x.shape[0] // replicas) + x.shape[1:]))


def _replica_arrays(counts, means, variances):
    counts = as_float_array("counts", counts, ndim=1)
    if counts.size == 0 or np.any(counts <= 0) or np.any(counts != np.round(counts)):
        raise ValueError(f"counts must hold one positive whole number per replica; got {counts}")
    means = as_float_array("means", means, min_ndim=1)
    check_shape("means", means, (counts.size,) + means.shape[1:],
                "one row of means per replica, like counts")
    if variances is None:
        return counts, means, None
    variances = as_float_array("variances", variances)
    check_shape("variances", variances, means.shape, "the shape of means")
    if np.any(variances < 0):
        raise ValueError("variances must be >= 0 everywhere; got a negative entry")
    return counts, means, variances


def combine_moments(counts, means, variances) -> Moments:
    """The global batch's moments from per-replica ones (Chan's parallel formula).

    Parameters
    ----------
    counts : array_like of shape (R,)
        Values per statistic on each replica (they may differ).
    means, variances : array_like of shape (R, D) (or (R, *kept_shape))
        Each replica's mean and *biased* variance (divided by its count).

    Returns
    -------
    Moments
        count = sum(counts); mean = the count-weighted mean;
        variance = sum_r n_r (var_r + (mu_r - mean)**2) / count: the average
        within-replica variance plus the variance between replica means.
        Same dtype as ``means``.
    """
    counts, means, variances = _replica_arrays(counts, means, variances)
    w = (counts / counts.sum()).reshape((-1,) + (1,) * (means.ndim - 1)).astype(means.dtype)
    mean = np.sum(w * means, axis=0)
    variance = np.sum(w * (variances + np.square(means - mean)), axis=0)
    return Moments(int(counts.sum()), mean, variance)


def moments_from_sums(count, total, total_sq) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance from all-reduced sums: sum(x)/n and sum(x**2)/n - mean**2.

    This is the form Keras's ``BatchNormalization(synchronized=True)`` uses
    (three all-reduces: count, sum, sum of squares; the variance is clipped at
    0). It is computed here in the dtype of ``total``. The subtraction cancels
    catastrophically when |mean| >> std: the relative error of the variance is
    about ``eps_dtype * (mean / std)**2`` (eps_float32 = 6e-8).

    Parameters
    ----------
    count : int or float
        Number of values summed, n > 0.
    total, total_sq : array_like of shape (D,)
        sum(x) and sum(x**2) over the global batch.

    Returns
    -------
    mean, variance : ndarray of shape (D,)
    """
    total = as_float_array("total", total)
    total_sq = as_float_array("total_sq", total_sq).astype(total.dtype)
    check_shape("total_sq", total_sq, total.shape, "the shape of total")
    if not float(count) > 0:
        raise ValueError(f"count must be > 0; got {count}")
    n = total.dtype.type(count)
    mean = total / n
    return mean, np.maximum(total_sq / n - mean * mean, total.dtype.type(0))


def shifted_sums(x, shift, axis=-1) -> tuple[int, np.ndarray, np.ndarray]:
    """One replica's count, sum(x - K) and sum((x - K)**2) for a shift K shared by all.

    With K near the mean (the moving mean, or one example broadcast from replica
    0), the sums of :func:`moments_from_shifted_sums` stay small and the
    cancellation of :func:`moments_from_sums` disappears.

    Parameters
    ----------
    x : array_like of shape (n, D), ...
    shift : array_like of the kept-axes shape, e.g. (D,)
    axis : int or tuple of int, default -1

    Returns
    -------
    count : int
    total, total_sq : ndarray of the kept-axes shape, in the dtype of x
    """
    x = as_float_array("x", x)
    kept, reduced = parse_axis(x.ndim, axis)
    shape = tuple(x.shape[a] for a in kept)
    shift = as_float_array("shift", shift).astype(x.dtype)
    check_shape("shift", shift, shape, f"the sizes of the kept axes {kept} of x")
    centred = x - shift.reshape([1 if a in reduced else x.shape[a] for a in range(x.ndim)])
    count = int(np.prod([x.shape[a] for a in reduced]))
    return count, centred.sum(axis=reduced), np.square(centred).sum(axis=reduced)


def moments_from_shifted_sums(count, total, total_sq, shift) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance from all-reduced shifted sums (see :func:`shifted_sums`).

    Returns
    -------
    mean, variance : ndarray of the shape of ``total``
        mean = K + total/n; variance = total_sq/n - (total/n)**2, clipped at 0.
    """
    shifted_mean, variance = moments_from_sums(count, total, total_sq)
    shift = as_float_array("shift", shift).astype(shifted_mean.dtype)
    check_shape("shift", shift, shifted_mean.shape, "the shape of total")
    return shift + shifted_mean, variance


# ---------------------------------------------------------------- ghost batch norm

class GhostCache(NamedTuple):
    """What :func:`ghost_batchnorm_backward` needs.

    bn : object
        The cache of :func:`bnlib.batchnorm.batchnorm_forward` over the
        regrouped array of shape (ghost_size, G, ...).
    shape : tuple of int
        The shape of x.
    ghost_size : int
    training : bool
    """

    bn: object
    shape: tuple
    ghost_size: int
    training: bool


def _regroup(x: np.ndarray, ghost_size: int) -> np.ndarray:
    """(N, ...) -> (ghost_size, G, ...): example j of ghost batch g at [j, g]."""
    g = x.shape[0] // ghost_size
    grouped = x.reshape((g, ghost_size) + x.shape[1:])
    return np.ascontiguousarray(np.swapaxes(grouped, 0, 1))   # contiguous: faster sums


def _ungroup(y: np.ndarray) -> np.ndarray:
    """Undo :func:`_regroup`."""
    back = np.swapaxes(y, 0, 1)
    return back.reshape((back.shape[0] * back.shape[1],) + back.shape[2:])


def ghost_batchnorm_forward(x, gamma, beta, moving_mean, moving_variance, *, ghost_size: int,
                            training: bool, momentum: float = 0.99, eps: float = 1e-3,
                            axis=-1):
    """Batch norm with each block of ``ghost_size`` consecutive examples normalized alone.

    Parameters
    ----------
    x : array_like of shape (N, D), (N, H, W, C), ...
        In training mode, N must be a multiple of ghost_size.
    gamma, beta, moving_mean, moving_variance : array_like of the kept-axes shape
        As in :func:`bnlib.batchnorm.batchnorm_forward`; shared by every ghost batch.
    ghost_size : int
        Examples per ghost batch, >= 2 in training mode. ghost_size = N is plain
        batch norm.
    training : bool
        False: the inference formula with the moving statistics (no ghosts).
    momentum, eps, axis
        As in :func:`bnlib.batchnorm.batchnorm_forward`.

    Returns
    -------
    out : ndarray, shape of x
    cache : GhostCache
    new_moving_mean, new_moving_variance : ndarray of the kept-axes shape
        In training mode, one exponential-smoothing step towards the *average*
        of the G ghost means (the batch mean) and of the G ghost variances
        (the average within-ghost variance, the spread the network trained on).
    """
    x = as_float_array("x", x)
    kept, _ = parse_axis(x.ndim, axis)
    check_eps(eps)
    check_momentum(momentum)
    if isinstance(ghost_size, bool) or not isinstance(ghost_size, (int, np.integer)):
        raise ValueError(f"ghost_size must be an int (examples per ghost batch); "
                         f"got {ghost_size!r}")
    ghost_size = int(ghost_size)
    if ghost_size < 1:
        raise ValueError(f"ghost_size must be >= 1; got {ghost_size}")
    if not training:
        out, cache, mm, mv = batchnorm_forward(x, gamma, beta, moving_mean, moving_variance,
                                               training=False, momentum=momentum, eps=eps,
                                               axis=axis)
        return out, GhostCache(cache, x.shape, x.shape[0], False), mm, mv
    if x.shape[0] % ghost_size:
        raise ValueError(f"ghost_size must divide the batch size {x.shape[0]} in training "
                         f"mode; got {ghost_size}")
    if ghost_size < 2:
        raise ValueError("ghost_size must be >= 2 in training mode (a ghost batch of one "
                         "example has no variance); got 1")
    ghosts = x.shape[0] // ghost_size
    grouped = _regroup(x, ghost_size)                     # (ghost_size, G, ...)
    new_axis = (1,) + tuple(a + 1 for a in kept)          # keep the ghost index too
    params = {}
    for name, value in (("gamma", gamma), ("beta", beta), ("moving_mean", moving_mean),
                        ("moving_variance", moving_variance)):
        arr = as_float_array(name, value).astype(x.dtype, copy=False)
        check_shape(name, arr, tuple(x.shape[a] for a in kept),
                    f"the sizes of the kept axes {kept} of x")
        params[name] = np.broadcast_to(arr, (ghosts,) + arr.shape)
    out, cache, mm, mv = batchnorm_forward(grouped, params["gamma"], params["beta"],
                                           params["moving_mean"], params["moving_variance"],
                                           training=True, momentum=momentum, eps=eps,
                                           axis=new_axis)
    # the smoothing step is linear, so averaging the G updated copies averages the statistics
    return (_ungroup(out), GhostCache(cache, x.shape, ghost_size, True),
            mm.mean(axis=0), mv.mean(axis=0))


def ghost_batchnorm_backward(dout, cache: GhostCache):
    """Gradients of :func:`ghost_batchnorm_forward`.

    Parameters
    ----------
    dout : array_like, shape of x
    cache : GhostCache

    Returns
    -------
    dx : ndarray, shape of x
        Each ghost batch's batch-norm gradient: it couples only the examples
        of the same ghost batch.
    dgamma, dbeta : ndarray of the kept-axes shape
        Summed over the ghost batches (gamma and beta are shared).
    """
    if not isinstance(cache, GhostCache):
        raise ValueError("cache must be the GhostCache returned by ghost_batchnorm_forward")
    dout = as_float_array("dout", dout)
    check_shape("dout", dout, cache.shape, "the shape of x in the forward pass")
    if not cache.training:
        return batchnorm_backward(dout, cache.bn)
    dx, dgamma, dbeta = batchnorm_backward(_regroup(dout, cache.ghost_size), cache.bn)
    return _ungroup(dx), dgamma.sum(axis=0), dbeta.sum(axis=0)


class GhostBatchNorm:
    """A ghost-batch-norm layer for (N, D) input, usable as ``nn.MLP(norm=...)``.

    Holds gamma, beta, moving_mean and moving_variance like
    :class:`bnlib.batchnorm.BatchNorm`; training-mode calls normalize each
    block of ``ghost_size`` consecutive rows alone.

    Parameters
    ----------
    width : int
    ghost_size : int
    momentum, eps : float
        Keras convention and defaults.
    """

    def __init__(self, width: int, ghost_size: int, *, momentum: float = 0.99,
                 eps: float = 1e-3, dtype=np.float64):
        self.ghost_size = int(ghost_size)
        self.momentum = check_momentum(momentum)
        self.eps = check_eps(eps)
        self.gamma = np.ones(int(width), dtype)
        self.beta = np.zeros(int(width), dtype)
        self.moving_mean = np.zeros(int(width), dtype)
        self.moving_variance = np.ones(int(width), dtype)
        self.dgamma = self.dbeta = None
        self._cache = None

    def __call__(self, x, *, training: bool) -> np.ndarray:
        out, self._cache, self.moving_mean, self.moving_variance = ghost_batchnorm_forward(
            x, self.gamma, self.beta, self.moving_mean, self.moving_variance,
            ghost_size=self.ghost_size, training=training,
            momentum=self.momentum, eps=self.eps)
        return out

    def backward(self, dout) -> np.ndarray:
        if self._cache is None:
            raise ValueError("backward called before any forward call")
        dx, self.dgamma, self.dbeta = ghost_batchnorm_backward(dout, self._cache)
        return dx
