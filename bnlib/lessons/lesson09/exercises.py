"""Lesson 09 (batch norm in convolutional networks): the exercise checkers.

Each wraps :func:`bnlib.course.checks.check_exercise` with a reference, cases that vary
every setting (batch size, spatial size, channels, eps, gamma and beta) and the
common mistakes it names.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib.course.checks import check_exercise


EPS_HINT = ("use the eps you are given: the cases vary it (1e-3 is only Keras's default)")


def _or_none(mistake: Callable) -> Callable:
    """The mistake, or None where it cannot run (e.g. a wrong axis whose sizes do not match)."""
    def run(*args):
        try:
            return mistake(*args)
        except ValueError:
            return None
    return run


def _normalize(x, axes, gamma, beta, eps, ddof=0, eps_inside=True):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, ddof=ddof, keepdims=True)
    scale = np.sqrt(var + eps) if eps_inside else np.sqrt(var) + eps
    return gamma * (x - mean) / scale + beta


def _image_cases(seed: int, channels_first: bool = False):
    """Batches whose channels differ in offset and spread; one channel is nearly flat (spread
    0.03), so where eps goes shows. Shapes and eps vary from case to case."""
    rng = np.random.default_rng(seed)
    cases = []
    for (n, h, w, c), eps in (((4, 3, 5, 3), 1e-3), ((2, 4, 4, 4), 0.1), ((3, 2, 6, 2), 1e-5)):
        spread = rng.uniform(0.5, 3.0, c)
        spread[1] = 0.03
        x = rng.normal(size=(n, h, w, c)) * spread + rng.normal(0, 4, c)
        gamma, beta = rng.uniform(0.5, 2.0, c), rng.normal(size=c)
        if channels_first:
            x = x.transpose(0, 3, 1, 2).copy()
        cases.append((x, gamma, beta, eps))
    return cases


def check_spatial_batchnorm(answer: Callable) -> bool | None:
    """Exercise 09.1: ``answer(x, gamma, beta, eps)`` for x of shape (N, H, W, C), training mode.

    One mean and (biased) variance per channel, over N, H and W; gamma and beta of shape (C,).
    """
    def with_axes(axes, **kw):
        return lambda x, g, b, e: _normalize(x, axes, g, b, e, **kw)

    return check_exercise(
        "spatial_batchnorm", answer, with_axes((0, 1, 2)), _image_cases(91), mistakes=[
            (with_axes(0), "those are per-pixel statistics (axis=0, the worksheet's case 3): "
                           "after a convolution, batch norm keeps one mean and variance per "
                           "channel, over N, H and W: axis=(0, 1, 2)"),
            (with_axes((1, 2)), "that normalizes each image's channel on its own (instance "
                                "norm): include the batch axis, axis=(0, 1, 2)"),
            (with_axes((1, 2, 3)), "that normalizes each image over all its values (layer "
                                   "norm): batch norm averages over the batch, axis=(0, 1, 2)"),
            (with_axes((0, 1, 2, 3)), "one mean for every value mixes the channels: keep one "
                                      "per channel, axis=(0, 1, 2)"),
            (with_axes((0, 1, 2), ddof=1), "your variance divides by N·H·W − 1: batch norm "
                                           "uses the biased variance (divide by N·H·W)"),
            (with_axes((0, 1, 2), eps_inside=False), "ε must be inside the square root: "
                                                     "sqrt(var + ε), not sqrt(var) + ε"),
            (lambda x, g, b, e: _normalize(x, (0, 1, 2), 1.0, 0.0, e),
             "finish with the per-channel scale and shift: gamma * x_hat + beta"),
            (lambda x, g, b, e: _normalize(x, (0, 1, 2), g, b, 1e-3), EPS_HINT),
        ])


def _fold_reference(kernel, bias, gamma, beta, mean, var, eps):
    scale = gamma / np.sqrt(var + eps)
    return kernel * scale, (bias - mean) * scale + beta


def _fold_cases():
    rng = np.random.default_rng(92)
    cases = []
    # the first case has as many input as output channels, so scaling the wrong axis runs
    for (kh, kw, c_in, c_out), eps in (((3, 3, 4, 4), 1e-3), ((3, 3, 2, 5), 0.5),
                                       ((1, 1, 3, 2), 1e-5)):
        cases.append((rng.normal(size=(kh, kw, c_in, c_out)), rng.normal(size=c_out),
                      rng.uniform(0.5, 2.0, c_out), rng.normal(size=c_out),
                      rng.normal(size=c_out), rng.uniform(0.01, 0.3, c_out), eps))
    return cases


def check_fold_conv(answer: Callable) -> bool | None:
    """Exercise 09.2: fold an inference-mode batch norm into the convolution before it.

    ``answer(kernel, bias, gamma, beta, moving_mean, moving_variance, eps)`` with kernel
    of shape (KH, KW, C_in, C_out) and vectors of shape (C_out,) returns
    ``(new_kernel, new_bias)``.
    """
    def wrong_axis(k, b, g, be, mu, var, eps):
        scale = g / np.sqrt(var + eps)
        return k * scale.reshape(1, 1, -1, 1), (b - mu) * scale + be

    def eps_outside(k, b, g, be, mu, var, eps):
        scale = g / (np.sqrt(var) + eps)
        return k * scale, (b - mu) * scale + be

    def by_variance(k, b, g, be, mu, var, eps):
        scale = g / (var + eps)
        return k * scale, (b - mu) * scale + be

    def no_beta(k, b, g, be, mu, var, eps):
        scale = g / np.sqrt(var + eps)
        return k * scale, (b - mu) * scale

    def no_mean(k, b, g, be, mu, var, eps):
        scale = g / np.sqrt(var + eps)
        return k * scale, b * scale + be

    def bias_unscaled(k, b, g, be, mu, var, eps):
        scale = g / np.sqrt(var + eps)
        return k * scale, b - mu + be

    return check_exercise("fold_conv", answer, _fold_reference, _fold_cases(), mistakes=[
        (_or_none(wrong_axis), "you scaled the input-channel axis (2) of the kernel: each OUTPUT "
                     "channel's filter gets its own factor γ/σ, the last axis (kernel * scale "
                     "broadcasts along it)"),
        (eps_outside, "ε goes inside the square root: σ = sqrt(moving_variance + ε)"),
        (by_variance, "divide by the standard deviation sqrt(moving_variance + ε), not by "
                      "the variance"),
        (no_beta, "add β to the folded bias: b' = γ(b − μ)/σ + β"),
        (no_mean, "the folded bias must subtract the moving mean: b' = γ(b − μ)/σ + β"),
        (bias_unscaled, "scale the centred bias too: b' = γ(b − μ)/σ + β"),
        (lambda k, b, g, be, mu, var, eps: _fold_reference(k, b, g, be, mu, var, 1e-3), EPS_HINT),
    ])


def check_channels_first_batchnorm(answer: Callable) -> bool | None:
    """Exercise 09.3: ``answer(x, gamma, beta, eps)`` for channels-first x of shape (N, C, H, W).

    The same per-channel batch norm as 09.1 in the layout of PyTorch and of
    Keras's ``data_format="channels_first"`` (where ``BatchNormalization(axis=1)``).
    """
    def reference(x, g, b, e):
        return _normalize(x, (0, 2, 3), g.reshape(1, -1, 1, 1), b.reshape(1, -1, 1, 1), e)

    def channels_last_habit(x, g, b, e):   # gamma then broadcasts along W
        return _normalize(x, (0, 1, 2), g, b, e)

    def flat_gamma(x, g, b, e):
        return _normalize(x, (0, 2, 3), g, b, e)

    def eps_outside(x, g, b, e):
        return _normalize(x, (0, 2, 3), g.reshape(1, -1, 1, 1), b.reshape(1, -1, 1, 1), e,
                          eps_inside=False)

    def unbiased(x, g, b, e):
        return _normalize(x, (0, 2, 3), g.reshape(1, -1, 1, 1), b.reshape(1, -1, 1, 1), e,
                          ddof=1)

    # the first case has W = C, so answers that treat the last axis as the channels run
    rng = np.random.default_rng(93)
    cases = [(rng.normal(size=(3, 4, 2, 4)) * [[[[1.0]], [[0.03]], [[2.0]], [[0.5]]]]
              + [[[[3.0]], [[-1.0]], [[0.0]], [[5.0]]]], rng.uniform(0.5, 2, 4),
              rng.normal(size=4), 1e-3)] + _image_cases(94, channels_first=True)
    return check_exercise("channels_first_batchnorm", answer, reference, cases, mistakes=[
        (_or_none(channels_last_habit), "in (N, C, H, W) the channels are axis 1: average over "
                              "axes (0, 2, 3) (Keras: BatchNormalization(axis=1))"),
        (_or_none(flat_gamma), "gamma and beta of shape (C,) broadcast along the LAST axis "
                               "(W): reshape them to (1, C, 1, 1)"),
        (eps_outside, "ε must be inside the square root: sqrt(var + ε)"),
        (unbiased, "use the biased variance (divide by N·H·W, np.var's default)"),
        (lambda x, g, b, e: reference(x, g, b, 1e-3), EPS_HINT),
    ])
