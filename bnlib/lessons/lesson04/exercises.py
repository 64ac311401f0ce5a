"""Lesson 04 (Batch norm: backward): the exercise checkers.

Each wraps :func:`bnlib.course.checks.check_exercise` with a reference, cases that
vary every setting, and the common mistakes it names.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib.course.references import bn_cases
from bnlib.course.checks import check_exercise


def _bn_backward(dout, x, gamma, eps, mean_path=True, var_path=True, with_gamma=True):
    n = x.shape[0]
    inv_std = 1.0 / np.sqrt(x.var(0) + eps)
    x_hat = (x - x.mean(0)) * inv_std
    g = dout * gamma if with_gamma else dout
    dx_hat = g.copy()
    if mean_path:
        dx_hat = dx_hat - g.sum(0) / n
    if var_path:
        dx_hat = dx_hat - x_hat * (g * x_hat).sum(0) / n
    return dx_hat * inv_std, (dout * x_hat).sum(0), dout.sum(0)


def _grad_cases(seed: int):
    rng = np.random.default_rng(seed)
    return [(rng.normal(0.0, 1.0, x.shape), x, gamma, eps)
            for x, gamma, _, eps in bn_cases(seed)]


def check_batchnorm_backward(answer: Callable) -> bool | None:
    """Exercise 04a: answer(dout, x, gamma, eps) -> (dx, dgamma, dbeta), training mode."""
    def dgamma_without_x_hat(dout, x, gamma, eps):
        dx, _, dbeta = _bn_backward(dout, x, gamma, eps)
        return dx, dout.sum(0), dbeta

    return check_exercise(
        "bn_backward", answer, _bn_backward, _grad_cases(8),
        mistakes=[(lambda d, x, g, e: _bn_backward(d, x, g, e, mean_path=False, var_path=False),
                   "the batch mean and variance depend on x too: add the paths through "
                   "them (a correct dx sums to zero over the batch)"),
                  (lambda d, x, g, e: _bn_backward(d, x, g, e, var_path=False),
                   "you kept the path through the mean but not the one through the variance"),
                  (lambda d, x, g, e: _bn_backward(d, x, g, e, mean_path=False),
                   "you kept the path through the variance but not the one through the mean"),
                  (lambda d, x, g, e: _bn_backward(d, x, g, e, with_gamma=False),
                   "dx_hat = dout * gamma: the gradient reaches x_hat through γ"),
                  (dgamma_without_x_hat, "dgamma is the sum over the batch of dout * x_hat "
                                         "(dbeta is the plain sum of dout)")],
        tol=1e-8)


def check_inference_backward(answer: Callable) -> bool | None:
    """Exercise 04b: answer(dout, gamma, moving_variance, eps) -> dx in inference mode."""
    rng = np.random.default_rng(9)
    cases = [(rng.normal(0.0, 1.0, (n, d)), rng.uniform(0.5, 2.0, d),
              rng.uniform(0.0005, 3.0, d), 1e-3) for n, d in ((5, 3), (1, 4))]
    return check_exercise(
        "bn_inference_backward", answer, lambda d, g, mv, e: d * g / np.sqrt(mv + e), cases,
        mistakes=[(lambda d, g, mv, e: d / np.sqrt(mv + e), "multiply by γ as well"),
                  (lambda d, g, mv, e: d * g / (mv + e),
                   "divide by the standard deviation sqrt(moving_variance + ε), "
                   "not by the variance"),
                  (lambda d, g, mv, e: d * g / np.sqrt(mv),
                   "ε stays inside the square root in the backward pass too"),
                  (lambda d, g, mv, e: d * g,
                   "the forward pass divides by sqrt(moving_variance + ε), so dx does too")])
