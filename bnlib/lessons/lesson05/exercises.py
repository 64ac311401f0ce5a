"""Lesson 05 (Batch norm inside a network): the exercise checkers.

Each wraps :func:`bnlib.course.checks.check_exercise` with a reference, cases that
vary every setting, and the common mistakes it names.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib.course.checks import check_exercise
from bnlib.nn import sigmoid


def _network_layer_cases(seed: int = 5, n: int = 8, d_in: int = 4, d: int = 3):
    """x (n, d_in), W (d_in, d), gamma and beta (d,): the shapes vary from case to case."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 1.0, (n, d_in))
    W = rng.normal(0.0, 0.7, (d_in, d))
    gamma, beta = rng.uniform(0.5, 2.0, d), rng.normal(0.0, 0.5, d)
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

    def no_gamma(x, W, gamma, beta):
        z = x @ W
        return sigmoid(_network_bn(z, z.mean(0), z.var(0), 1.0, beta))

    def no_beta(x, W, gamma, beta):
        z = x @ W
        return sigmoid(_network_bn(z, z.mean(0), z.var(0), gamma, 0.0))

    def unbiased(x, W, gamma, beta):
        z = x @ W
        return sigmoid(_network_bn(z, z.mean(0), z.var(0, ddof=1), gamma, beta))

    def other_eps(x, W, gamma, beta):
        z = x @ W
        return sigmoid(_network_bn(z, z.mean(0), z.var(0), gamma, beta, eps=1e-5))

    def no_eps(x, W, gamma, beta):
        z = x @ W
        return sigmoid(_network_bn(z, z.mean(0), z.var(0), gamma, beta, eps=0.0))

    cases = [_network_layer_cases(5), _network_layer_cases(6, n=5, d_in=6, d=2),
             _network_layer_cases(4, n=3, d_in=2, d=5)]
    return check_exercise("network_hidden_layer", answer, reference, cases, mistakes=[
        (per_example, "take the mean and variance over the batch (axis 0), one pair per unit, "
                      "not over the units of each example"),
        (after, "normalize the pre-activation x @ W, then apply the sigmoid (batch norm goes "
                "before the activation here)"),
        (eps_outside, "eps goes inside the square root: sqrt(var + eps)"),
        (no_scale_shift, "after normalizing, scale by gamma and shift by beta"),
        (no_gamma, "gamma is missing: scale the normalized value by gamma before adding beta"),
        (no_beta, "beta is missing: add beta after scaling by gamma"),
        (unbiased, "use the batch's own (biased) variance, dividing by N: np.var's default, "
                   "not ddof=1"),
        (other_eps, "eps is 1e-3 here (Keras's default), not 1e-5"),
        (no_eps, "eps = 1e-3 belongs inside the square root: sqrt(var + eps)"),
    ])


def check_network_inference_layer(answer: Callable) -> bool | None:
    """Exercise 05.2: ``answer(x, W, gamma, beta, moving_mean, moving_variance)``, inference mode."""
    def with_moving(seed, **shape):
        x, W, gamma, beta = _network_layer_cases(seed, **shape)
        rng = np.random.default_rng(seed + 10)
        d = len(gamma)
        return x, W, gamma, beta, rng.normal(0.0, 0.5, d), rng.uniform(0.3, 2.0, d)

    def reference(x, W, gamma, beta, mean, var):
        return sigmoid(_network_bn(x @ W, mean, var, gamma, beta))

    def batch_stats(x, W, gamma, beta, mean, var):
        z = x @ W
        return sigmoid(_network_bn(z, z.mean(0), z.var(0), gamma, beta))

    def variance_as_std(x, W, gamma, beta, mean, var):
        return sigmoid(gamma * (x @ W - mean) / (var + 1e-3) + beta)

    def no_eps(x, W, gamma, beta, mean, var):
        return sigmoid(_network_bn(x @ W, mean, var, gamma, beta, eps=0.0))

    def other_eps(x, W, gamma, beta, mean, var):
        return sigmoid(_network_bn(x @ W, mean, var, gamma, beta, eps=1e-5))

    def eps_outside(x, W, gamma, beta, mean, var):
        return sigmoid(gamma * (x @ W - mean) / (np.sqrt(var) + 1e-3) + beta)

    def no_gamma(x, W, gamma, beta, mean, var):
        return sigmoid(_network_bn(x @ W, mean, var, 1.0, beta))

    def no_beta(x, W, gamma, beta, mean, var):
        return sigmoid(_network_bn(x @ W, mean, var, gamma, 0.0))

    # the last case is a single example: the layer must work for N = 1
    cases = [with_moving(7), with_moving(8, n=4, d_in=5, d=2), with_moving(9, n=1, d_in=3, d=4)]
    return check_exercise("network_inference_layer", answer, reference, cases, mistakes=[
        (batch_stats, "at test time use the moving mean and variance, not the statistics of "
                      "the test batch (one example alone would give all zeros)"),
        (variance_as_std, "divide by the square root of (moving_variance + eps): the moving "
                          "variance is a variance, not a standard deviation"),
        (no_eps, "keep eps = 1e-3 inside the square root at test time too"),
        (other_eps, "eps is 1e-3 here (Keras's default), not 1e-5"),
        (eps_outside, "eps goes inside the square root: sqrt(moving_variance + eps)"),
        (no_gamma, "gamma is missing: scale the normalized value by gamma before adding beta"),
        (no_beta, "beta is missing: add beta after scaling by gamma"),
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

    def swapped(dout, x_hat, gamma, beta, lr):
        return gamma - lr * np.sum(dout, axis=0), beta - lr * np.sum(dout * x_hat, axis=0)

    def beta_first(dout, x_hat, gamma, beta, lr):
        return reference(dout, x_hat, gamma, beta, lr)[::-1]

    def beta_kept(dout, x_hat, gamma, beta, lr):
        return reference(dout, x_hat, gamma, beta, lr)[0], beta

    def gamma_kept(dout, x_hat, gamma, beta, lr):
        return gamma, reference(dout, x_hat, gamma, beta, lr)[1]

    def fixed_lr(dout, x_hat, gamma, beta, lr):
        return reference(dout, x_hat, gamma, beta, 0.1)

    rng = np.random.default_rng(9)
    cases = [(rng.normal(size=(n, d)), rng.normal(size=(n, d)), rng.uniform(0.5, 2, d),
              rng.normal(size=d), lr) for n, d, lr in ((6, 3, 0.1), (4, 5, 0.5), (1, 2, 0.03))]
    return check_exercise("network_gamma_beta_step", answer, reference, cases, mistakes=[
        (mean_not_sum, "the loss already averages over the batch (dout carries the 1/N): sum "
                       "dout over the batch, do not average it again"),
        (uphill, "step against the gradient: gamma - lr * dgamma"),
        (no_x_hat, "dgamma is the sum of dout * x_hat (gamma multiplies x_hat); only dbeta "
                   "is the plain sum of dout"),
        (wrong_axis, "sum over the batch axis 0, keeping one value per unit"),
        (swapped, "dgamma and dbeta are swapped: dgamma = sum of dout * x_hat, dbeta = sum "
                  "of dout"),
        (beta_first, "return (new_gamma, new_beta) in that order"),
        (beta_kept, "beta is not updated: step it too, beta - lr * dbeta"),
        (gamma_kept, "gamma is not updated: step it too, gamma - lr * dgamma"),
        (fixed_lr, "use the learning rate passed as lr (it changes from case to case)"),
    ])
