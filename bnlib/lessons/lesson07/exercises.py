"""Lesson 07 (Batch norm in TensorFlow and Keras): the exercise checkers.

Each wraps :func:`bnlib.course.checks.check_exercise` with a reference, cases that
vary every setting, and the common mistakes it names.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from bnlib.course.references import moving_update
from bnlib.course.checks import check_exercise


def _fold_reference(W, b, gamma, beta, moving_mean, moving_variance, eps):
    sigma = np.sqrt(moving_variance + eps)
    return W * (gamma / sigma), gamma * (b - moving_mean) / sigma + beta


def _fold_cases():
    """Cases that vary every setting: shapes (D_in = 1 and D_out = 1 too), ε (Keras's 1e-3
    first, then 1e-5 and 0.5, so an ε hard-coded to 1e-3 fails), γ below and above 1, b
    never zero and moving means on both sides of b (so b − μ changes sign)."""
    rng = np.random.default_rng(7)
    cases = []
    for d_in, d_out, eps in ((4, 3, 1e-3), (6, 5, 0.5), (1, 2, 1e-5), (3, 1, 0.1)):
        cases.append((rng.normal(size=(d_in, d_out)), rng.uniform(0.5, 2.0, d_out)
                      * rng.choice([-1.0, 1.0], d_out), rng.uniform(0.3, 2.5, d_out),
                      rng.normal(size=d_out), rng.normal(size=d_out) * 2,
                      rng.uniform(0.01, 0.2, d_out), eps))
    return cases


def check_fold_bn(answer: Callable) -> bool | None:
    """Exercise 07: fold an inference-mode batch norm into the dense layer before it."""
    def sigma(var, eps):
        return np.sqrt(var + eps)

    def eps_outside(W, b, g, be, mu, var, eps):
        s = np.sqrt(var) + eps
        return W * (g / s), g * (b - mu) / s + be

    def no_eps(W, b, g, be, mu, var, eps):
        s = np.sqrt(var)
        return W * (g / s), g * (b - mu) / s + be

    def eps_fixed(W, b, g, be, mu, var, eps):
        return _fold_reference(W, b, g, be, mu, var, 1e-3)

    def by_variance(W, b, g, be, mu, var, eps):
        return W * (g / (var + eps)), g * (b - mu) / (var + eps) + be

    def bias_not_centred(W, b, g, be, mu, var, eps):
        return W * (g / sigma(var, eps)), g * b / sigma(var, eps) + be

    def ignores_b(W, b, g, be, mu, var, eps):
        return W * (g / sigma(var, eps)), -g * mu / sigma(var, eps) + be

    def sign_flipped(W, b, g, be, mu, var, eps):
        return W * (g / sigma(var, eps)), g * (mu - b) / sigma(var, eps) + be

    def w_not_scaled_by_gamma(W, b, g, be, mu, var, eps):
        return W / sigma(var, eps), g * (b - mu) / sigma(var, eps) + be

    def forgot_beta(W, b, g, be, mu, var, eps):
        return W * (g / sigma(var, eps)), g * (b - mu) / sigma(var, eps)

    def swapped(W, b, g, be, mu, var, eps):
        W_f, b_f = _fold_reference(W, b, g, be, mu, var, eps)
        return b_f, W_f

    return check_exercise("fold_bn", answer, _fold_reference, _fold_cases(), mistakes=[
        (eps_outside, "ε goes inside the square root: σ = sqrt(moving_variance + ε)"),
        (no_eps, "σ = sqrt(moving_variance + ε): the ε is missing"),
        (eps_fixed, "use the eps argument, not a fixed 1e-3 (the cases change it)"),
        (by_variance, "divide by the standard deviation sqrt(moving_variance + ε), "
                      "not by the variance"),
        (bias_not_centred, "the new bias must subtract the moving mean: γ(b − μ)/σ + β"),
        (ignores_b, "the dense layer's own bias b goes into the folded bias: γ(b − μ)/σ + β"),
        (sign_flipped, "the folded bias is γ(b − μ)/σ + β: b minus μ, not μ minus b"),
        (w_not_scaled_by_gamma, "scale W's columns by γ/σ, not by 1/σ alone: W' = W·γ/σ"),
        (forgot_beta, "add β to the folded bias: b' = γ(b − μ)/σ + β"),
        (swapped, "return (W_folded, b_folded) in that order: the kernel first, then the bias")])


def _moving_cases():
    """Momentum 0.99 first, then 0.9 and 0.5 (a momentum hard-coded to 0.99 fails); batch
    sizes 16, 8, 5 and 1 (Keras updates even on one example: the batch variance is 0);
    moving means far from the batch mean, so a variance taken around the moving mean
    differs."""
    rng = np.random.default_rng(8)
    return [(np.zeros(3), np.ones(3), rng.normal(2.0, 3.0, size=(16, 3)), 0.99),
            (rng.normal(size=4), rng.uniform(0.5, 2, 4), rng.normal(1.0, 1.5, size=(8, 4)), 0.9),
            (rng.normal(size=2), rng.uniform(0.5, 2, 2), rng.normal(-2.0, 0.5, size=(5, 2)), 0.5),
            (rng.normal(size=3), rng.uniform(0.5, 2, 3), rng.normal(size=(1, 3)), 0.8)]


def check_keras_moving_update(answer: Callable) -> bool | None:
    """Exercise 07: one Keras moving-mean/variance update from a batch x of shape (N, D)."""
    def pytorch_weights(mm, mv, x, m):
        return moving_update(mm, mv, x, 1 - m)

    def pytorch_rule(mm, mv, x, m):
        return moving_update(mm, mv, x, 1 - m, ddof=1)

    def unbiased(mm, mv, x, m):
        return m * mm + (1 - m) * x.mean(axis=0), m * mv + (1 - m) * x.var(axis=0, ddof=1)

    def around_old_moving_mean(mm, mv, x, m):
        return (m * mm + (1 - m) * x.mean(axis=0),
                m * mv + (1 - m) * ((x - mm) ** 2).mean(axis=0))

    def around_new_moving_mean(mm, mv, x, m):
        new_mean = m * mm + (1 - m) * x.mean(axis=0)
        return new_mean, m * mv + (1 - m) * ((x - new_mean) ** 2).mean(axis=0)

    def momentum_fixed(mm, mv, x, m):
        return moving_update(mm, mv, x, 0.99)

    def with_std(mm, mv, x, m):
        return m * mm + (1 - m) * x.mean(axis=0), m * mv + (1 - m) * x.std(axis=0)

    def wrong_axis(mm, mv, x, m):
        return m * mm + (1 - m) * x.mean(), m * mv + (1 - m) * x.var()

    with warnings.catch_warnings():  # a mistake's ddof=1 on one example gives nan, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        return check_exercise("keras_moving_update", answer, moving_update, _moving_cases(),
                              mistakes=[
            (pytorch_weights, "in Keras, momentum weights the OLD value: "
                              "new = momentum * old + (1 - momentum) * batch (PyTorch is the reverse)"),
            (pytorch_rule, "that is PyTorch's rule (momentum on the new value, unbiased variance); "
                           "Keras puts momentum on the OLD value and smooths the biased "
                           "batch variance (divide by N)"),
            (unbiased, "Keras updates the moving variance with the biased batch variance "
                       "(divide by N, np.var's default), not N - 1"),
            (around_old_moving_mean, "take the batch variance around the batch's own mean, "
                                     "not around the moving mean"),
            (around_new_moving_mean, "take the batch variance around the batch's own mean, "
                                     "not around the (updated) moving mean"),
            (momentum_fixed, "use the momentum argument, not a fixed 0.99 (the cases change it)"),
            (with_std, "smooth the batch variance, not the standard deviation"),
            (wrong_axis, "take the batch statistics per feature, over axis 0")])
