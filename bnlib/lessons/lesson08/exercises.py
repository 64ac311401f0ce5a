"""Lesson 08 (Noise, batch size and pitfalls): the exercise checkers.

Each wraps :func:`bnlib.course.checks.check_exercise` with a reference, cases that
vary every setting (shapes, N = 1, ε, γ and β, the number of groups), and the
common mistakes it names.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib.course.checks import check_exercise

_USUAL_EPS = (1e-3, 1e-5)   # Keras's and PyTorch's defaults: what a hard-coded ε would be
_EPS_HINT = ("use the eps argument: the cases change ε (from 1e-5 to 0.5), so a fixed "
             "value fails")


def _layer_norm_reference(x, gamma, beta, eps):
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def _layer_norm_cases():
    rng = np.random.default_rng(9)
    # small variances (0.04, 1) so that a missing or fixed ε shows; N = 1 must work
    return [(rng.normal(3.0, 0.2, size=(6, 5)), rng.uniform(0.5, 2, 5), rng.normal(size=5), 0.05),
            (rng.normal(size=(3, 8)), rng.uniform(0.5, 2, 8), np.zeros(8), 1e-5),
            (rng.normal(-1.0, 1.5, size=(1, 7)), np.ones(7), rng.normal(size=7), 0.5)]


def check_layer_norm(answer: Callable) -> bool | None:
    """Exercise 08: layer norm of x of shape (N, D): statistics per example, over the features."""
    ref = _layer_norm_reference

    def over_batch(x, g, b, eps):
        return g * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + b

    def eps_outside(x, g, b, eps):
        return g * (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + eps) + b

    def unbiased(x, g, b, eps):
        return g * (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, ddof=1, keepdims=True)
                                                             + eps) + b

    def no_beta(x, g, b, eps):
        return ref(x, g, 0.0, eps)

    def no_gamma(x, g, b, eps):
        return ref(x, 1.0, b, eps)

    def no_affine(x, g, b, eps):
        return ref(x, 1.0, 0.0, eps)

    mistakes = [
        (over_batch, "that is batch norm: layer norm takes the mean and variance of each "
                     "example over its features (axis=1, keepdims=True)"),
        (eps_outside, "ε goes inside the square root: sqrt(var + ε)"),
        (lambda x, g, b, eps: ref(x, g, b, 0.0),
         "ε is missing: add it to the variance, inside the square root"),
        (unbiased, "use the biased variance (divide by D, np.var's default)"),
        (no_affine, "finish with the learned scale and shift: γ · x̂ + β"),
        (no_beta, "β is missing: the last step is γ · x̂ + β"),
        (no_gamma, "γ is missing: the last step is γ · x̂ + β"),
    ] + [(lambda x, g, b, eps, e=e: ref(x, g, b, e), _EPS_HINT) for e in _USUAL_EPS]
    return check_exercise("layer_norm_rows", answer, ref, _layer_norm_cases(), mistakes=mistakes)


def _group_norm_reference(x, gamma, beta, groups, eps):
    n, c = x.shape
    xg = x.reshape(n, groups, c // groups)
    x_hat = (xg - xg.mean(2, keepdims=True)) / np.sqrt(xg.var(2, keepdims=True) + eps)
    return gamma * x_hat.reshape(n, c) + beta


def _group_norm_cases():
    rng = np.random.default_rng(10)
    # groups never equal to C // groups, so reading groups as the group size shows
    return [(rng.normal(1.0, 0.3, size=(4, 6)), rng.uniform(0.5, 2, 6), rng.normal(size=6), 2,
             0.1),
            (rng.normal(size=(3, 8)), rng.uniform(0.5, 2, 8), rng.normal(size=8), 4, 1e-5),
            (rng.normal(2.0, 2.0, size=(1, 12)), rng.uniform(0.5, 2, 12), rng.normal(size=12), 3,
             0.5)]


def check_group_norm(answer: Callable) -> bool | None:
    """Exercise 08: group norm of x of shape (N, C) with ``groups`` groups of consecutive channels."""
    ref = _group_norm_reference

    def strided(x, g, b, groups, eps):
        n, c = x.shape
        xg = x.reshape(n, c // groups, groups)
        x_hat = (xg - xg.mean(1, keepdims=True)) / np.sqrt(xg.var(1, keepdims=True) + eps)
        return g * x_hat.reshape(n, c) + b

    def eps_outside(x, g, b, groups, eps):
        n, c = x.shape
        xg = x.reshape(n, groups, c // groups)
        x_hat = (xg - xg.mean(2, keepdims=True)) / (xg.std(2, keepdims=True) + eps)
        return g * x_hat.reshape(n, c) + b

    def unbiased(x, g, b, groups, eps):
        n, c = x.shape
        xg = x.reshape(n, groups, c // groups)
        x_hat = (xg - xg.mean(2, keepdims=True)) / np.sqrt(xg.var(2, ddof=1, keepdims=True) + eps)
        return g * x_hat.reshape(n, c) + b

    mistakes = [
        (strided, "a group is a block of consecutive channels: reshape to (N, groups, C // groups)"),
        (lambda x, g, b, groups, eps: ref(x, g, b, 2, eps),
         "use the groups argument: the cases change it (2, 4 and 3 groups)"),
        (lambda x, g, b, groups, eps: ref(x, g, b, x.shape[1] // groups, eps),
         "groups is the number of groups, not their size: reshape to (N, groups, C // groups)"),
        (lambda x, g, b, groups, eps: ref(x, g, b, 1, eps),
         "take the statistics per group, not over all the channels (that is layer norm)"),
        (eps_outside, "ε goes inside the square root: sqrt(var + ε)"),
        (unbiased, "use the biased variance (divide by the group size, np.var's default)"),
        (lambda x, g, b, groups, eps: ref(x, 1.0, 0.0, groups, eps),
         "finish with the learned per-channel scale and shift: γ · x̂ + β"),
    ] + [(lambda x, g, b, groups, eps, e=e: ref(x, g, b, groups, e), _EPS_HINT)
         for e in _USUAL_EPS]
    return check_exercise("group_norm_rows", answer, ref, _group_norm_cases(), mistakes=mistakes)
