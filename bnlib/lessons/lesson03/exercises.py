"""Lesson 03 (Batch norm: forward and inference): the exercise checkers.

Each wraps :func:`bnlib.course.checks.check_exercise` with a reference, cases that
vary every setting (ε, γ, β, momentum, shapes, a single example where the
exercise says it must work), and the common mistakes it names, including an
answer that ignores an argument and uses its usual value instead.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib.course.references import bn_cases, moving_update
from bnlib.course.checks import check_exercise

# the values an answer that ignores its eps argument most likely hard-codes: Keras's and
# PyTorch's defaults
USUAL_EPS = (1e-3, 1e-5)
IGNORES_EPS = ("your answer ignores its eps argument (it gives the result for eps = {:g}): "
               "use the eps it is given, the cases vary it")


def _bn_train(x, gamma, beta, eps, ddof=0, axis=0):
    mean = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, ddof=ddof, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def _ignores_eps(reference: Callable, eps_position: int):
    """Mistakes: ``reference`` with its eps argument replaced by each usual value."""
    def with_eps(value):
        def wrong(*args):
            args = list(args)
            args[eps_position] = value
            return reference(*args)
        return wrong
    return [(with_eps(value), IGNORES_EPS.format(value)) for value in USUAL_EPS]


def check_batchnorm_train(answer: Callable) -> bool | None:
    """Exercise 03a: answer(x, gamma, beta, eps) -> training-mode output, x of shape (N, D)."""
    def eps_outside(x, gamma, beta, eps):
        return gamma * (x - x.mean(0)) / (x.std(0) + eps) + beta

    return check_exercise(
        "batchnorm_train", answer, _bn_train, bn_cases(3, eps=(1e-2, 1e-4)),
        mistakes=[(lambda x, g, b, e: _bn_train(x, g, b, e, ddof=1),
                   "your variance divides by N - 1: batch norm uses the biased variance "
                   "(divide by N, NumPy's default)"),
                  (eps_outside, "ε must be inside the square root: sqrt(var + ε), "
                                "not sqrt(var) + ε"),
                  (lambda x, g, b, e: g * (x - x.mean(0)) / x.std(0) + b,
                   "add ε to the variance before taking the square root"),
                  (lambda x, g, b, e: _bn_train(x, g, b, e, axis=1),
                   "take the statistics over the batch axis 0: one mean and one variance "
                   "per feature (column), not per example"),
                  (lambda x, g, b, e: _bn_train(x, 1.0, 0.0, e),
                   "finish with the scale and shift: gamma * x_hat + beta"),
                  (lambda x, g, b, e: _bn_train(x, g, 0.0, e),
                   "you scaled by γ but forgot to add the shift β: gamma * x_hat + beta"),
                  (lambda x, g, b, e: _bn_train(x, 1.0, b, e),
                   "you added β but forgot to scale by γ: gamma * x_hat + beta"),
                  *_ignores_eps(_bn_train, 3)])


def _bn_inference(x, gamma, beta, moving_mean, moving_variance, eps):
    return gamma * (x - moving_mean) / np.sqrt(moving_variance + eps) + beta


def _inference_cases():
    rng = np.random.default_rng(4)
    cases = []
    # the second case is a single example; eps differs between the cases
    for (x, gamma, beta, eps), n in zip(bn_cases(5, eps=(1e-2, 1e-4)), (6, 1)):
        d = x.shape[1]
        moving_mean = rng.normal(0.0, 2.0, d)
        moving_variance = rng.uniform(0.0005, 3.0, d)
        cases.append((x[:n], gamma, beta, moving_mean, moving_variance, eps))
    return cases


def check_batchnorm_inference(answer: Callable) -> bool | None:
    """Exercise 03b: answer(x, gamma, beta, moving_mean, moving_variance, eps) -> output."""
    return check_exercise(
        "batchnorm_inference", answer, _bn_inference, _inference_cases(),
        mistakes=[(lambda x, g, b, mm, mv, e: _bn_train(x, g, b, e),
                   "at inference, normalize with the moving statistics, not with the "
                   "statistics of the batch you were given"),
                  (lambda x, g, b, mm, mv, e: g * (x - mm) / np.sqrt(mv) + b,
                   "add ε to the moving variance inside the square root"),
                  (lambda x, g, b, mm, mv, e: g * (x - mm) / (np.sqrt(mv) + e) + b,
                   "ε must be inside the square root: sqrt(moving_variance + ε), "
                   "not sqrt(moving_variance) + ε"),
                  (lambda x, g, b, mm, mv, e: g * (x - mm) / (mv + e) + b,
                   "moving_variance is a variance: divide by its square root "
                   "sqrt(moving_variance + ε)"),
                  (lambda x, g, b, mm, mv, e: _bn_inference(x, 1.0, 0.0, mm, mv, e),
                   "finish with the learned scale and shift: gamma * x_hat + beta"),
                  (lambda x, g, b, mm, mv, e: _bn_inference(x, g, 0.0, mm, mv, e),
                   "you scaled by γ but forgot to add the shift β: gamma * x_hat + beta"),
                  (lambda x, g, b, mm, mv, e: _bn_inference(x, 1.0, b, mm, mv, e),
                   "you added β but forgot to scale by γ: gamma * x_hat + beta"),
                  *_ignores_eps(_bn_inference, 5)])


def check_moving_update(answer: Callable) -> bool | None:
    """Exercise 03c: answer(moving_mean, moving_variance, x, momentum) -> (new_mean, new_var)."""
    rng = np.random.default_rng(6)
    cases = [(rng.normal(0.0, 1.0, x.shape[1]), rng.uniform(0.5, 2.0, x.shape[1]), x, m)
             for (x, *_), m in zip(bn_cases(7), (0.9, 0.75))]
    return check_exercise(
        "moving_update", answer, moving_update, cases,
        mistakes=[(lambda mm, mv, x, m: moving_update(mm, mv, x, 1 - m),
                   "Keras's momentum is the weight on the OLD value: "
                   "new = momentum * old + (1 - momentum) * batch statistic"),
                  (lambda mm, mv, x, m: moving_update(mm, mv, x, m, ddof=1),
                   "update the moving variance with the biased batch variance (divide by N), "
                   "as Keras does; N - 1 is PyTorch's choice"),
                  (lambda mm, mv, x, m: (moving_update(mm, mv, x, m)[0],
                                         m * mv + (1 - m) * x.std(0)),
                   "smooth the batch variance, not the standard deviation"),
                  (lambda mm, mv, x, m: moving_update(mm, mv, x, 0.99),
                   "your answer ignores its momentum argument (it gives the result for 0.99, "
                   "Keras's default): use the momentum it is given, the cases vary it")])
