"""Lesson 00 (Start here): the exercise checkers.

Each wraps :func:`bnlib.course.checks.check_exercise` with a reference, cases that
vary every setting, and the common mistakes it names.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib.course.checks import check_exercise


def check_standardize_column(answer: Callable) -> bool | None:
    """Exercise 00: standardize a 1-D array with the population standard deviation."""
    rng = np.random.default_rng(1)
    cases = [(rng.normal(3.0, 2.0, size=50),), (np.arange(10.0),)]
    return check_exercise(
        "standardize_column", answer, lambda x: (x - x.mean()) / x.std(), cases,
        mistakes=[(lambda x: (x - x.mean()) / x.std(ddof=1),
                   "divide by the population standard deviation (N), not the sample one (N - 1)"),
                  (lambda x: x - x.mean(), "after subtracting the mean, also divide by the std"),
                  (lambda x: x / x.std(), "subtract the mean before dividing")])
