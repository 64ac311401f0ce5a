"""Lesson 04 (Batch norm: backward): the exercise checkers.

Each wraps :func:`bnlib.course.checks.check_exercise` with a reference, cases that
vary every setting (ε, γ, shapes, a single example for the inference backward),
and the common mistakes it names, including an answer that ignores its eps
argument and uses a usual value instead.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib.course.references import bn_cases
from bnlib.course.checks import check_exercise

USUAL_EPS = (1e-3, 1e-5, 1e-8)  # Keras's and PyTorch's defaults, and the blog's hard-coded one
IGNORES_EPS = ("your answer ignores its eps argument (it gives the result for eps = {:g}): "
               "use the eps it is given, the cases vary it")


def _bn_backward(dout, x, gamma, eps, mean_path=True, var_path=True, with_gamma=True, ddof=0,
                 eps_outside=False, per_n=True):
    n = x.shape[0]
    std = np.sqrt(x.var(0, ddof=ddof)) + eps if eps_outside else np.sqrt(x.var(0, ddof=ddof) + eps)
    inv_std = 1.0 / std
    x_hat = (x - x.mean(0)) * inv_std
    g = dout * gamma if with_gamma else dout
    dx_hat = g.copy()
    if mean_path:
        dx_hat = dx_hat - g.sum(0) / n
    if var_path:
        dx_hat = dx_hat - x_hat * (g * x_hat).sum(0) / n
    dx = dx_hat * inv_std if per_n else dx_hat * inv_std * n
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def _exact_gradient_of_variant(dout, x, gamma, eps, ddof=0, eps_outside=False):
    """The true gradients of a *wrong* forward pass (variance over N - ddof, or ε outside
    the square root), as a learner who differentiates that forward step by step gets them."""
    n = x.shape[0]
    centred = x - x.mean(0)
    var = (centred ** 2).sum(0) / (n - ddof)
    std = np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps)
    x_hat = centred / std
    dx_hat = dout * gamma
    d_std = -(dx_hat * centred).sum(0) / std ** 2
    d_var = d_std / (2.0 * (std - eps if eps_outside else std))
    d_centred = dx_hat / std + 2.0 * centred * d_var / (n - ddof)
    dx = d_centred - d_centred.mean(0)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def _grad_cases(seed: int):
    rng = np.random.default_rng(seed)
    return [(rng.normal(0.0, 1.0, x.shape), x, gamma, eps)
            for x, gamma, _, eps in bn_cases(seed, eps=(1e-2, 1e-4))]


def check_batchnorm_backward(answer: Callable) -> bool | None:
    """Exercise 04a: answer(dout, x, gamma, eps) -> (dx, dgamma, dbeta), training mode."""
    def dgamma_without_x_hat(dout, x, gamma, eps):
        dx, _, dbeta = _bn_backward(dout, x, gamma, eps)
        return dx, dout.sum(0), dbeta

    def swapped(dout, x, gamma, eps):
        dx, dgamma, dbeta = _bn_backward(dout, x, gamma, eps)
        return dx, dbeta, dgamma

    def with_eps(value):
        return lambda d, x, g, e: _bn_backward(d, x, g, value)

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
                                         "(dbeta is the plain sum of dout)"),
                  (swapped, "dgamma and dbeta are swapped: return (dx, dgamma, dbeta), with "
                            "dgamma = sum of dout * x_hat and dbeta = sum of dout"),
                  *[(wrong, "your variance divides by N - 1: the forward pass uses the biased "
                            "variance (divide by N), and so does its gradient")
                    for wrong in (lambda d, x, g, e: _bn_backward(d, x, g, e, ddof=1),
                                  lambda d, x, g, e: _exact_gradient_of_variant(d, x, g, e, 1))],
                  *[(wrong, "ε must be inside the square root: sqrt(var + ε), not sqrt(var) + ε")
                    for wrong in (lambda d, x, g, e: _bn_backward(d, x, g, e, eps_outside=True),
                                  lambda d, x, g, e: _exact_gradient_of_variant(
                                      d, x, g, e, eps_outside=True))],
                  (lambda d, x, g, e: _bn_backward(d, x, g, e, per_n=False),
                   "your dx is N times too large: the mean and the variance average over the "
                   "batch, so the compact formula has a factor 1/N in front"),
                  *[(with_eps(value), IGNORES_EPS.format(value)) for value in USUAL_EPS]],
        tol=1e-8)


def _inference_backward(dout, gamma, moving_variance, eps):
    return dout * gamma / np.sqrt(moving_variance + eps)


def check_inference_backward(answer: Callable) -> bool | None:
    """Exercise 04b: answer(dout, gamma, moving_variance, eps) -> dx in inference mode."""
    rng = np.random.default_rng(9)
    cases = [(rng.normal(0.0, 1.0, (n, d)), rng.uniform(0.5, 2.0, d),
              rng.uniform(0.0005, 3.0, d), eps) for (n, d), eps in (((5, 3), 1e-2), ((1, 4), 1e-4))]
    return check_exercise(
        "bn_inference_backward", answer, _inference_backward, cases,
        mistakes=[(lambda d, g, mv, e: d / np.sqrt(mv + e), "multiply by γ as well"),
                  (lambda d, g, mv, e: d * g / (mv + e),
                   "divide by the standard deviation sqrt(moving_variance + ε), "
                   "not by the variance"),
                  (lambda d, g, mv, e: d * g / np.sqrt(mv),
                   "ε stays inside the square root in the backward pass too"),
                  (lambda d, g, mv, e: d * g / (np.sqrt(mv) + e),
                   "ε must be inside the square root: sqrt(moving_variance + ε), "
                   "not sqrt(moving_variance) + ε"),
                  (lambda d, g, mv, e: d * g,
                   "the forward pass divides by sqrt(moving_variance + ε), so dx does too"),
                  *[((lambda value: lambda d, g, mv, e: _inference_backward(d, g, mv, value))(v),
                     IGNORES_EPS.format(v)) for v in USUAL_EPS[:2]]])  # 1e-8: "ε stays inside"
