"""Lesson 05 (Batch norm inside a network): the exercise checkers.

Each wraps :func:`bnlib.course.checks.check_exercise` with a reference, cases that
vary every setting, and the common mistakes it names.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib.course.checks import check_exercise
from bnlib.nn import sigmoid


def _network_layer_cases(seed: int = 5):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 1.0, (8, 4))
    W = rng.normal(0.0, 0.7, (4, 3))
    gamma, beta = rng.uniform(0.5, 2.0, 3), rng.normal(0.0, 0.5, 3)
    return x, W, gamma, beta


def _network_bn(z, mean, var, gamma, beta, eps=1e-3):
    return gamma * (z - mean) / np.sqrt(var + eps) + beta


def check_network_hidden_layer(answer: Callable) -> bool | None:
    """Exercise 05.1: ``answer(x, W, gamma, beta)`` = sigmoid(BN(x @ W)), training mode, eps 1e-3."""
    def reference(x, W, gamma, beta):
        z = x @ W
        return sigmoid(_network_bn(z, z.mean(0), z.var(0), gamma, beta))

    def per_example(x, W, gamma, beta):
        z = x @ W
        return sigmoid(_network_bn(z, z.mean(1, keepdims=True), z.var(1, keepdims=True),
                                            gamma, beta))

    def after(x, W, gamma, beta):
        a = sigmoid(x @ W)
        return _network_bn(a, a.mean(0), a.var(0), gamma, beta)

    def eps_outside(x, W, gamma, beta):
        z = x @ W
        return sigmoid(gamma * (z - z.mean(0)) / (z.std(0) + 1e-3) + beta)

    def no_scale_shift(x, W, gamma, beta):
        z = x @ W
        return sigmoid(_network_bn(z, z.mean(0), z.var(0), 1.0, 0.0))

    cases = [_network_layer_cases(5), _network_layer_cases(6)]
    return check_exercise("network_hidden_layer", answer, reference, cases, mistakes=[
        (per_example, "take the mean and variance over the batch (axis 0), one pair per unit, "
                      "not over the units of each example"),
        (after, "normalize the pre-activation x @ W, then apply the sigmoid (batch norm goes "
                "before the activation here)"),
        (eps_outside, "eps goes inside the square root: sqrt(var + eps)"),
        (no_scale_shift, "after normalizing, scale by gamma and shift by beta"),
    ])


def check_network_inference_layer(answer: Callable) -> bool | None:
    """Exercise 05.2: ``answer(x, W, gamma, beta, moving_mean, moving_variance)``, inference mode."""
    def with_moving(seed):
        x, W, gamma, beta = _network_layer_cases(seed)
        rng = np.random.default_rng(seed + 10)
        return x, W, gamma, beta, rng.normal(0.0, 0.5, 3), rng.uniform(0.3, 2.0, 3)

    def reference(x, W, gamma, beta, mean, var):
        return sigmoid(_network_bn(x @ W, mean, var, gamma, beta))

    def batch_stats(x, W, gamma, beta, mean, var):
        z = x @ W
        return sigmoid(_network_bn(z, z.mean(0), z.var(0), gamma, beta))

    def variance_as_std(x, W, gamma, beta, mean, var):
        return sigmoid(gamma * (x @ W - mean) / (var + 1e-3) + beta)

    def no_eps(x, W, gamma, beta, mean, var):
        return sigmoid(_network_bn(x @ W, mean, var, gamma, beta, eps=0.0))

    cases = [with_moving(7), with_moving(8)]
    return check_exercise("network_inference_layer", answer, reference, cases, mistakes=[
        (batch_stats, "at test time use the moving mean and variance, not the statistics of "
                      "the test batch (one example alone would give all zeros)"),
        (variance_as_std, "divide by the square root of (moving_variance + eps): the moving "
                          "variance is a variance, not a standard deviation"),
        (no_eps, "keep eps = 1e-3 inside the square root at test time too"),
    ])


def check_network_gamma_beta_step(answer: Callable) -> bool | None:
    """Exercise 05.3: ``answer(dout, x_hat, gamma, beta, lr) -> (new_gamma, new_beta)``."""
    def reference(dout, x_hat, gamma, beta, lr):
        return gamma - lr * np.sum(dout * x_hat, axis=0), beta - lr * np.sum(dout, axis=0)

    def mean_not_sum(dout, x_hat, gamma, beta, lr):
        return gamma - lr * np.mean(dout * x_hat, axis=0), beta - lr * np.mean(dout, axis=0)

    def uphill(dout, x_hat, gamma, beta, lr):
        return gamma + lr * np.sum(dout * x_hat, axis=0), beta + lr * np.sum(dout, axis=0)

    def no_x_hat(dout, x_hat, gamma, beta, lr):
        return gamma - lr * np.sum(dout, axis=0), beta - lr * np.sum(dout, axis=0)

    def wrong_axis(dout, x_hat, gamma, beta, lr):
        return (gamma - lr * np.sum(dout * x_hat, axis=1).mean(),
                beta - lr * np.sum(dout, axis=1).mean())

    rng = np.random.default_rng(9)
    cases = [(rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), rng.uniform(0.5, 2, 3),
              rng.normal(size=3), 0.1) for _ in range(2)]
    return check_exercise("network_gamma_beta_step", answer, reference, cases, mistakes=[
        (mean_not_sum, "the loss already averages over the batch (dout carries the 1/N): sum "
                       "dout over the batch, do not average it again"),
        (uphill, "step against the gradient: gamma - lr * dgamma"),
        (no_x_hat, "dgamma is the sum of dout * x_hat (gamma multiplies x_hat); only dbeta "
                   "is the plain sum of dout"),
        (wrong_axis, "sum over the batch axis 0, keeping one value per unit"),
    ])
