"""Lesson 04: the batch-norm backward pass, staged and compact, and where dx goes.

Pure compute functions return arrays; :func:`backward_view` draws a figure and
returns ``(fig, text)``; :func:`backward_explorer` wires it to controls.
The comparison with Keras's automatic gradients lives in :mod:`bnlib.tf_compare`.
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np

from bnlib import widgets
from bnlib.batchnorm import batchnorm_backward, batchnorm_forward

PATTERNS = ("random", "all ones", "one-hot", "equal to x_hat")

__all__ = ["batchnorm_backward_staged", "upstream_gradient", "backward_example",
           "backward_view", "backward_explorer"]


def batchnorm_backward_staged(dout, x, gamma, eps: float = 1e-3):
    """Training-mode batch-norm gradients, node by node through the computational graph.

    Recomputes the forward pass in small stages (mean, centred, square,
    variance, std, inv_std, x_hat, scale, shift) and walks them backwards,
    as in ``images/bn-graph.png``. Slower than the compact
    :func:`bnlib.batchnorm.batchnorm_backward`, but each line is one chain-rule step.

    Parameters
    ----------
    dout : ndarray of shape (N, D)
        Upstream gradient.
    x : ndarray of shape (N, D)
        The batch the forward pass saw.
    gamma : ndarray of shape (D,)
    eps : float

    Returns
    -------
    dx : ndarray of shape (N, D)
    dgamma, dbeta : ndarray of shape (D,)
    """
    n = x.shape[0]
    mu = x.mean(axis=0)
    centred = x - mu
    sq = centred ** 2
    var = sq.mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = centred * inv_std
    # backwards, from the output to the input
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    d_inv_std = (dx_hat * centred).sum(axis=0)
    d_centred = dx_hat * inv_std             # first path into centred: through x_hat
    d_std = -d_inv_std / std ** 2
    d_var = d_std / (2.0 * std)              # d sqrt(v) / dv = 1 / (2 sqrt(v)); eps is a constant
    d_sq = np.broadcast_to(d_var / n, sq.shape)
    d_centred = d_centred + 2.0 * centred * d_sq   # second path: through the variance
    d_mu = -d_centred.sum(axis=0)
    dx = d_centred + d_mu / n                # x reaches the output directly and through mu
    return dx, dgamma, dbeta


def upstream_gradient(pattern: str, n: int, seed: int = 0, x_hat=None) -> np.ndarray:
    """An upstream gradient dout of shape (n, 1) following a named pattern.

    Parameters
    ----------
    pattern : {"random", "all ones", "one-hot", "equal to x_hat"}
        Standard normal; constant 1; 1 for example 0 and 0 elsewhere; or a copy of
        ``x_hat`` (which must then be given).
    n : int
        Batch size.
    """
    if pattern == "random":
        return np.random.default_rng(seed).standard_normal((n, 1))
    if pattern == "all ones":
        return np.ones((n, 1))
    if pattern == "one-hot":
        return np.eye(n, 1)
    if pattern == "equal to x_hat":
        return np.array(x_hat, dtype=np.float64).reshape(n, 1)
    raise ValueError(f"pattern must be one of {PATTERNS}; got {pattern!r}")


class BackwardExample(NamedTuple):
    """One feature's batch, its upstream gradient and the gradients (arrays of shape (N, 1))."""

    x: np.ndarray
    x_hat: np.ndarray
    dout: np.ndarray
    dx: np.ndarray
    dgamma: float
    dbeta: float


@lru_cache(maxsize=128)
def backward_example(pattern: str = "random", batch_size: int = 8, gamma: float = 1.5,
                     seed: int = 0) -> BackwardExample:
    """Run one feature x ~ N(2, 1.5^2) of ``batch_size`` examples forward and backward."""
    x = np.random.default_rng(seed + 100).normal(2.0, 1.5, size=(batch_size, 1))
    g = np.array([gamma])
    _, cache, _, _ = batchnorm_forward(x, g, np.zeros(1), np.zeros(1), np.ones(1), training=True)
    dout = upstream_gradient(pattern, batch_size, seed, x_hat=cache.x_hat)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    return BackwardExample(x, cache.x_hat, dout, dx, float(dgamma[0]), float(dbeta[0]))


def backward_view(pattern: str = "random", batch_size: int = 8):
    """Bars of the upstream gradient and of dx, example by example, for one feature.

    Returns
    -------
    fig : matplotlib Figure
    text : str
        dgamma, dbeta, the batch sum of dx and the largest |dx|.
    """
    ex = backward_example(pattern, batch_size)
    i = np.arange(batch_size)
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    # thick vertical lines instead of ax.bar: one collection each, several times faster to draw
    lw = max(1.5, 100.0 / batch_size)
    ax.vlines(i - 0.2, 0, ex.dout.ravel(), lw=lw, color="tab:blue", label="upstream dout")
    ax.vlines(i + 0.2, 0, ex.dx.ravel(), lw=lw, color="tab:orange", label="dx")
    ax.set_xlim(-0.8, batch_size - 0.2)
    ax.axhline(0, color="black", lw=0.8)
    ax.set(xlabel="example in the batch", ylabel="gradient",
           title=f"dout = {pattern}, batch of {batch_size}, γ = 1.5")
    if batch_size <= 16:
        ax.set_xticks(i)
    # legend outside the axes, so it never hides the tallest bars
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    # fixed margins: tight_layout would cost most of an explorer update
    fig.subplots_adjust(left=0.1, right=0.8, bottom=0.17, top=0.88)
    text = (f"dgamma = {_fmt(ex.dgamma)}   dbeta = {_fmt(ex.dbeta)}   "
            f"sum of dx = {_fmt(ex.dx.sum())}   largest |dx| = {_fmt(np.abs(ex.dx).max())}")
    return fig, text


def _fmt(value: float) -> str:
    """Three decimals; anything round-off-sized prints as 0 (never as -0.000 or 3e-16)."""
    return "0 (to round-off)" if abs(value) < 1e-9 else f"{value:.3f}"


def backward_explorer() -> widgets.Explorer:
    """Controls for the upstream-gradient pattern and the batch size."""
    return widgets.Explorer(backward_view, {
        "pattern": widgets.choice(list(PATTERNS), "random", "upstream dout"),
        "batch_size": widgets.int_slider(8, 2, 64, 1, "batch size"),
    }, title="Where the gradient goes")
