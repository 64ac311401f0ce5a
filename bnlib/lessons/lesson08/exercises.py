"""Lesson 08 (Noise, batch size and pitfalls): the exercise checkers.

Each wraps :func:`bnlib.course.checks.check_exercise` with a reference, cases that
vary every setting, and the common mistakes it names.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib.course.checks import check_exercise


def _layer_norm_reference(x, gamma, beta, eps):
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def check_layer_norm(answer: Callable) -> bool | None:
    """Exercise 08: layer norm of x of shape (N, D): statistics per example, over the features."""
    rng = np.random.default_rng(9)
    cases = [(rng.normal(3.0, 2.0, size=(6, 5)), rng.uniform(0.5, 2, 5), rng.normal(size=5), 0.5),
             (rng.normal(size=(3, 8)), np.ones(8), np.zeros(8), 1e-3)]

    def over_batch(x, g, b, eps):
        return g * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + b

    def eps_outside(x, g, b, eps):
        return g * (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + eps) + b

    def unbiased(x, g, b, eps):
        return g * (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, ddof=1, keepdims=True)
                                                             + eps) + b

    def no_affine(x, g, b, eps):
        return _layer_norm_reference(x, 1.0, 0.0, eps)

    return check_exercise("layer_norm_rows", answer, _layer_norm_reference, cases, mistakes=[
        (over_batch, "that is batch norm: layer norm takes the mean and variance of each "
                     "example over its features (axis=1, keepdims=True)"),
        (eps_outside, "ε goes inside the square root: sqrt(var + ε)"),
        (unbiased, "use the biased variance (divide by D, np.var's default)"),
        (no_affine, "finish with the learned scale and shift: γ · x̂ + β")])


def _group_norm_reference(x, gamma, beta, groups, eps):
    n, c = x.shape
    xg = x.reshape(n, groups, c // groups)
    x_hat = (xg - xg.mean(2, keepdims=True)) / np.sqrt(xg.var(2, keepdims=True) + eps)
    return gamma * x_hat.reshape(n, c) + beta


def check_group_norm(answer: Callable) -> bool | None:
    """Exercise 08: group norm of x of shape (N, C) with ``groups`` groups of consecutive channels."""
    rng = np.random.default_rng(10)
    cases = [(rng.normal(1.0, 2.0, size=(4, 6)), rng.uniform(0.5, 2, 6), rng.normal(size=6), 2, 0.1),
             (rng.normal(size=(3, 8)), rng.uniform(0.5, 2, 8), rng.normal(size=8), 4, 1e-3)]

    def strided(x, g, b, groups, eps):
        n, c = x.shape
        xg = x.reshape(n, c // groups, groups)
        x_hat = (xg - xg.mean(1, keepdims=True)) / np.sqrt(xg.var(1, keepdims=True) + eps)
        return g * x_hat.reshape(n, c) + b

    def one_group(x, g, b, groups, eps):
        return _group_norm_reference(x, g, b, 1, eps)

    def eps_outside(x, g, b, groups, eps):
        n, c = x.shape
        xg = x.reshape(n, groups, c // groups)
        x_hat = (xg - xg.mean(2, keepdims=True)) / (xg.std(2, keepdims=True) + eps)
        return g * x_hat.reshape(n, c) + b

    return check_exercise("group_norm_rows", answer, _group_norm_reference, cases, mistakes=[
        (strided, "a group is a block of consecutive channels: reshape to (N, groups, C // groups)"),
        (one_group, "take the statistics per group, not over all the channels (that is layer norm)"),
        (eps_outside, "ε goes inside the square root: sqrt(var + ε)")])
