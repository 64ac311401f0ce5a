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
    # lengths 50, 10 and 2, spreads from 0.3 to 2.9: no single length or scale fits all
    cases = [(rng.normal(3.0, 2.0, size=50),), (np.arange(10.0),),
             (np.array([-1.2, -0.6]),)]
    return check_exercise(
        "standardize_column", answer, lambda x: (x - x.mean()) / x.std(), cases,
        mistakes=[(lambda x: (x - x.mean()) / x.std(ddof=1),
                   "divide by the population standard deviation (N), not the sample one (N - 1)"),
                  (lambda x: (x - x.mean()) / x.var(),
                   "divide by the standard deviation (the square root of the variance), "
                   "not by the variance"),
                  (lambda x: x - x.mean(), "after subtracting the mean, also divide by the std"),
                  (lambda x: x / x.std(), "subtract the mean before dividing")])
