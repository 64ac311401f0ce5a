"""Batch norm for the training loop: (N, D) input, no argument checks, fewer temporaries.

The same computation as :func:`bnlib.batchnorm.batchnorm_forward` and
:func:`bnlib.batchnorm.batchnorm_backward` with ``axis=-1`` on a 2-D batch
(the tests compare them), for the small batches a from-scratch network
trains on, where the reference's argument checks cost more than the
arithmetic. Read the reference to learn batch norm; this module only
changes how the same formulas are evaluated:

* no validation: x must be a finite float32 or float64 (N, D) array, the
  parameters (D,) arrays of its dtype, N >= 2 in training mode, and the
  batch variance within the dtype's range (:meth:`bnlib.nn.MLP.forward` and
  :func:`bnlib.nn.train` check their input once per call, not per step);
* the sums are NumPy's own (``np.add.reduce`` and ``einsum`` over axis 0),
  which are accurate enough for float64 and for the few dozen rows of a
  minibatch, not for a float32 batch of a million rows (use the reference);
* intermediate arrays are reused in place: ``x - mean`` becomes x_hat, and
  dx is built in one buffer.

The moving statistics follow the rule of :func:`bnlib.ema.ema_update`, like
the reference's (through its unchecked step, :func:`bnlib.ema.ema_step`).
:class:`bnlib.nn.FastBatchNorm` is the layer built on these two functions.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bnlib.ema import ema_step

__all__ = ["FastCache", "batchnorm_forward_fast", "batchnorm_backward_fast"]


class FastCache(NamedTuple):
    """What :func:`batchnorm_backward_fast` needs: x_hat (N, D), inv_std (D,), gamma (D,)."""

    x_hat: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray
    training: bool


def batchnorm_forward_fast(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                           moving_mean: np.ndarray, moving_variance: np.ndarray, *,
                           training: bool, momentum: float = 0.99, eps: float = 1e-3,
                           unbiased_moving_variance: bool = False):
    """Batch norm of an (N, D) batch, unchecked; see :func:`bnlib.batchnorm.batchnorm_forward`.

    Parameters
    ----------
    x : ndarray of shape (N, D), float
    gamma, beta, moving_mean, moving_variance : ndarray of shape (D,)
    training : bool
    momentum, eps, unbiased_moving_variance
        As in the reference (Keras convention and defaults).

    Returns
    -------
    out : ndarray of shape (N, D)
    cache : FastCache
    new_moving_mean, new_moving_variance : ndarray of shape (D,)
        New arrays in training mode (the old ones are left as they were, so a
        caller may keep them); the inputs themselves in inference mode.
    """
    if training:
        n = x.shape[0]
        mean = np.add.reduce(x, axis=0) / n  # what x.mean(axis=0) computes, minus its overhead
        x_mu = x - mean
        var = np.einsum("ij,ij->j", x_mu, x_mu) / n
        inv_std = 1.0 / np.sqrt(var + eps)
        moving_mean = ema_step(moving_mean, mean, momentum)
        moving_variance = ema_step(moving_variance,
                                   var * n / (n - 1) if unbiased_moving_variance else var,
                                   momentum)
    else:
        inv_std = 1.0 / np.sqrt(moving_variance + eps)
        x_mu = x - moving_mean
    x_hat = np.multiply(x_mu, inv_std, out=x_mu)  # x_mu is ours: reuse it
    out = x_hat * gamma
    out += beta
    return out, FastCache(x_hat, inv_std, gamma, training), moving_mean, moving_variance


def batchnorm_backward_fast(dout: np.ndarray, cache: FastCache):
    """Gradients of :func:`batchnorm_forward_fast`: (dx, dgamma, dbeta), unchecked.

    The closed form of :func:`bnlib.batchnorm.batchnorm_backward`, with
    n = N: dx = gamma * inv_std / n * (n * dout - dbeta - x_hat * dgamma).
    """
    x_hat, inv_std, gamma, training = cache
    dbeta = dout.sum(axis=0)
    dgamma = np.einsum("ij,ij->j", dout, x_hat)
    scale = gamma * inv_std
    if not training:
        return dout * scale, dgamma, dbeta
    n = dout.shape[0]
    dx = dout * n  # the bracket, evaluated in one buffer
    dx -= dbeta
    dx -= x_hat * dgamma
    dx *= scale / n
    return dx, dgamma, dbeta
