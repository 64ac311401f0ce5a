"""Claims about training, made over several seeds.

A training outcome printed from one seed is an anecdote, and a chaotic one
(a run that a 1e-15 nudge of its weights changes) is not even reproducible
across CPUs. Every lesson claim about training therefore runs on
:data:`LESSON_SEEDS` in the notebook, and the tests run the same function on
:data:`TEST_SEEDS`, seeds no lesson uses. What is printed is either a verdict
with a wide margin or a median with its range, rounded coarsely enough that
another CPU's round-off cannot change the digits.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = ["over_seeds", "spread", "diverged", "LESSON_SEEDS", "TEST_SEEDS", "DIVERGED_LOSS"]

LESSON_SEEDS = (0, 1, 2)
TEST_SEEDS = (101, 102, 103, 104, 105)

# A softmax over 10 classes starts near ln 10 = 2.3; ten times that is far
# beyond any training that is merely slow.
DIVERGED_LOSS = 10 * np.log(10)


def over_seeds(run: Callable[[int], float], seeds: Iterable[int]) -> np.ndarray:
    """Evaluate ``run(seed)`` for every seed.

    Returns
    -------
    ndarray of shape (n_seeds,) or (n_seeds, ...)
    """
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    return np.array([run(int(s)) for s in seeds])


def spread(values: Sequence[float], fmt: str = ".2f") -> str:
    """``"median 0.93 (0.91 to 0.95, 3 seeds)"`` for a set of per-seed values."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values: expected a non-empty 1-D sequence, got shape {values.shape}")
    return (f"median {np.median(values):{fmt}} "
            f"({values.min():{fmt}} to {values.max():{fmt}}, {values.size} seeds)")


def diverged(losses: Sequence[float], threshold: float = DIVERGED_LOSS) -> bool:
    """True if a loss curve left the range any sane training stays in.

    Parameters
    ----------
    losses : sequence of float, shape (n_records,)
        The recorded training losses.
    threshold : float
        A loss above this (default ``10 ln 10``) or a non-finite one counts as diverged.
    """
    losses = np.asarray(losses, dtype=np.float64)
    if losses.size == 0:
        raise ValueError("losses: expected at least one recorded loss, got none")
    return bool(not np.all(np.isfinite(losses)) or np.max(losses) > threshold)
