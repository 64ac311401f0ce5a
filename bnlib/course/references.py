"""Plain-NumPy references and cases that several lessons' exercise checkers share.

Written from the formulas, independently of the core, so a checker never
compares a learner's answer with the code it teaches.
"""
from __future__ import annotations

import numpy as np

__all__ = ["bn_cases", "moving_update"]


def bn_cases(seed: int, eps=(1e-3, 1e-3)):
    """Batches whose features differ in scale; one feature has a tiny spread
    (0.02), so where eps goes changes the answer visibly.

    Returns two cases ``(x, gamma, beta, eps)``, x of shapes (8, 3) and (16, 4);
    ``eps`` gives each case's epsilon (vary it, so that an answer that ignores
    its eps argument fails).
    """
    rng = np.random.default_rng(seed)
    cases = []
    for (n, scales, shifts), e in zip(((8, [1.0, 0.02, 5.0], [0.0, 3.0, -2.0]),
                                       (16, [2.0, 0.5, 0.02, 1.0], [1.0, -1.0, 4.0, 0.0])), eps):
        d = len(scales)
        x = rng.standard_normal((n, d)) * scales + shifts
        cases.append((x, rng.uniform(0.5, 2.0, d), rng.normal(0.0, 1.0, d), e))
    return cases


def moving_update(moving_mean, moving_variance, x, momentum, ddof=0):
    """One moving-statistics update with momentum the weight on the old value (Keras, CS231n).

    x : ndarray of shape (N, D); the batch variance divides by N - ddof.
    """
    return (momentum * moving_mean + (1 - momentum) * x.mean(axis=0),
            momentum * moving_variance + (1 - momentum) * x.var(axis=0, ddof=ddof))
