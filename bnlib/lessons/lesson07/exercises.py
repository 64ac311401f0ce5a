"""Lesson 07 (Batch norm in TensorFlow and Keras): the exercise checkers.

Each wraps :func:`bnlib.course.checks.check_exercise` with a reference, cases that
vary every setting, and the common mistakes it names.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib.course.references import moving_update
from bnlib.course.checks import check_exercise


def _fold_reference(W, b, gamma, beta, moving_mean, moving_variance, eps):
    sigma = np.sqrt(moving_variance + eps)
    return W * (gamma / sigma), gamma * (b - moving_mean) / sigma + beta


def _fold_cases():
    rng = np.random.default_rng(7)
    cases = []
    for d_in, d_out, eps in ((4, 3, 1e-3), (6, 5, 0.5)):
        cases.append((rng.normal(size=(d_in, d_out)), rng.normal(size=d_out),
                      rng.uniform(0.5, 2.0, d_out), rng.normal(size=d_out),
                      rng.normal(size=d_out), rng.uniform(0.01, 0.2, d_out), eps))
    return cases


def check_fold_bn(answer: Callable) -> bool | None:
    """Exercise 07: fold an inference-mode batch norm into the dense layer before it."""
    def eps_outside(W, b, g, be, mu, var, eps):
        sigma = np.sqrt(var) + eps
        return W * (g / sigma), g * (b - mu) / sigma + be

    def by_variance(W, b, g, be, mu, var, eps):
        return W * (g / (var + eps)), g * (b - mu) / (var + eps) + be

    def bias_not_centred(W, b, g, be, mu, var, eps):
        sigma = np.sqrt(var + eps)
        return W * (g / sigma), g * b / sigma + be

    def forgot_beta(W, b, g, be, mu, var, eps):
        sigma = np.sqrt(var + eps)
        return W * (g / sigma), g * (b - mu) / sigma

    return check_exercise("fold_bn", answer, _fold_reference, _fold_cases(), mistakes=[
        (eps_outside, "ε goes inside the square root: σ = sqrt(moving_variance + ε)"),
        (by_variance, "divide by the standard deviation sqrt(moving_variance + ε), "
                      "not by the variance"),
        (bias_not_centred, "the new bias must subtract the moving mean: γ(b − μ)/σ + β"),
        (forgot_beta, "add β to the folded bias: b' = γ(b − μ)/σ + β")])


def check_keras_moving_update(answer: Callable) -> bool | None:
    """Exercise 07: one Keras moving-mean/variance update from a batch x of shape (N, D)."""
    rng = np.random.default_rng(8)
    cases = [(np.zeros(3), np.ones(3), rng.normal(2.0, 3.0, size=(16, 3)), 0.99),
             (rng.normal(size=4), rng.uniform(0.5, 2, 4), rng.normal(size=(8, 4)), 0.9)]

    def pytorch_weights(mm, mv, x, m):
        return moving_update(mm, mv, x, 1 - m)

    def unbiased(mm, mv, x, m):
        return m * mm + (1 - m) * x.mean(axis=0), m * mv + (1 - m) * x.var(axis=0, ddof=1)

    def with_std(mm, mv, x, m):
        return m * mm + (1 - m) * x.mean(axis=0), m * mv + (1 - m) * x.std(axis=0)

    def wrong_axis(mm, mv, x, m):
        return m * mm + (1 - m) * x.mean(), m * mv + (1 - m) * x.var()

    return check_exercise("keras_moving_update", answer, moving_update, cases, mistakes=[
        (pytorch_weights, "in Keras, momentum weights the OLD value: "
                          "new = momentum * old + (1 - momentum) * batch (PyTorch is the reverse)"),
        (unbiased, "Keras updates the moving variance with the biased batch variance "
                   "(divide by N, np.var's default), not N - 1"),
        (with_std, "smooth the batch variance, not the standard deviation"),
        (wrong_axis, "take the batch statistics per feature, over axis 0")])
