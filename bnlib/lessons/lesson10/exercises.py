"""Lesson 10's exercise checkers (built on :func:`bnlib.course.checks.check_exercise`).

The references are plain NumPy on the concatenated batch (exercise 1), the
moving-average recursion written out (exercise 2, checked against Keras
under MirroredStrategy in the tests) and a loop over ghost batches
(exercise 3). Every case varies the setting an answer could ignore: unequal
replica sizes, the number of replicas, momentum, eps, the ghost size.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib.course import checks

# ----- 1. combine per-replica statistics


def _combine_reference(counts, means, variances):
    counts = np.asarray(counts, dtype=np.float64)
    w = counts[:, None] / counts.sum()
    mean = (w * means).sum(axis=0)
    return mean, (w * (variances + (means - mean) ** 2)).sum(axis=0)


def _combine_cases():
    rng = np.random.default_rng(101)
    cases = []
    for counts in ((3, 9, 4), (8, 8), (16, 2, 5, 1)):
        parts = [rng.normal(rng.normal(0, 3, 4), rng.uniform(0.5, 2.0, 4), size=(n, 4))
                 for n in counts]
        cases.append((np.array(counts), np.array([p.mean(axis=0) for p in parts]),
                      np.array([p.var(axis=0) for p in parts])))
    return cases


def check_combine_replica_stats(answer: Callable) -> bool | None:
    """Exercise 10.1: the global mean and biased variance from per-replica ones."""
    def equal_weights(counts, means, variances):
        mean = means.mean(axis=0)
        return mean, (variances + (means - mean) ** 2).mean(axis=0)

    def no_between(counts, means, variances):
        mean, _ = _combine_reference(counts, means, variances)
        w = np.asarray(counts, float)[:, None] / np.sum(counts)
        return mean, (w * variances).sum(axis=0)

    def unbiased(counts, means, variances):
        mean, var = _combine_reference(counts, means, variances)
        n = np.sum(counts)
        return mean, var * n / (n - 1)

    return checks.check_exercise(
        "combine_replica_stats", answer, _combine_reference, _combine_cases(),
        mistakes=[(no_between, "the variance is missing the spread between the replicas: add "
                               "each replica's squared distance (mean_r - mean)**2 to its "
                               "variance before averaging"),
                  (lambda c, m, v: (m.mean(axis=0), v.mean(axis=0)),
                   "averaging the means and the variances is not enough: weight each replica "
                   "by its count, and add the between-replica spread to the variance"),
                  (equal_weights, "the replicas hold different numbers of examples: weight "
                                  "each one by counts[r] / sum(counts), not equally"),
                  (unbiased, "batch norm uses the biased variance of the global batch "
                             "(divide by the total count N, not N - 1)")])


# ----- 2. what a per-replica layer stores


def _stored_reference(batches, replicas, momentum, synchronized):
    moving_mean = np.zeros(batches.shape[2])
    moving_variance = np.ones(batches.shape[2])
    for x in batches:
        rows = x if synchronized else x[:len(x) // replicas]   # replica 0's slice
        moving_mean = momentum * moving_mean + (1 - momentum) * rows.mean(axis=0)
        moving_variance = momentum * moving_variance + (1 - momentum) * rows.var(axis=0)
    return moving_mean, moving_variance


def _stored_cases():
    rng = np.random.default_rng(102)
    return [(rng.normal(2.0, 3.0, size=(6, 8, 3)), 2, 0.9, False),
            (rng.normal(-1.0, 2.0, size=(5, 12, 2)), 4, 0.5, False),
            (rng.normal(0.5, 1.0, size=(4, 8, 3)), 4, 0.8, True),
            (rng.normal(1.0, 0.5, size=(3, 6, 2)), 3, 0.0, False)]


def check_stored_moving_stats(answer: Callable) -> bool | None:
    """Exercise 10.2: what ``moving_mean`` / ``moving_variance`` read after training."""
    def always_global(b, r, m, s):
        return _stored_reference(b, r, m, True)

    def averaged_copies(b, r, m, s):
        if s:
            return _stored_reference(b, r, m, True)
        size = b.shape[1] // r
        copies = [_stored_reference(b[:, k * size:(k + 1) * size], 1, m, True) for k in range(r)]
        return tuple(np.mean([c[i] for c in copies], axis=0) for i in range(2))

    def last_replica(b, r, m, s):
        return (_stored_reference(b, r, m, True) if s else
                _stored_reference(b[:, -(b.shape[1] // r):], 1, m, True))

    def unbiased(b, r, m, s):
        mean, _ = _stored_reference(b, r, m, s)
        var = np.ones(b.shape[2])
        for x in b:
            rows = x if s else x[:len(x) // r]
            var = m * var + (1 - m) * rows.var(axis=0, ddof=1)
        return mean, var

    def torch_momentum(b, r, m, s):
        return _stored_reference(b, r, 1 - m, s)

    return checks.check_exercise(
        "stored_moving_stats", answer, _stored_reference, _stored_cases(),
        mistakes=[(always_global, "with synchronized=False each replica updates its own copy "
                                  "from its own slice: the global batch's statistics never "
                                  "reach the variables"),
                  (averaged_copies, "nothing averages the copies: reading the variable (and "
                                    "get_weights, and saving) returns replica 0's copy"),
                  (last_replica, "the copy you read is replica 0's: the first slice of each "
                                 "global batch (rows 0 to N/R - 1), not the last"),
                  (unbiased, "Keras averages the biased batch variance (divide by the slice's "
                             "size, not size - 1)"),
                  (torch_momentum, "Keras's momentum is the weight on the OLD value: "
                                   "new = momentum * old + (1 - momentum) * statistic")])


# ----- 3. ghost batch norm


def _ghost_reference(x, gamma, beta, ghost_size, eps):
    out = np.empty_like(x)
    for start in range(0, len(x), ghost_size):
        block = x[start:start + ghost_size]
        out[start:start + ghost_size] = (gamma * (block - block.mean(axis=0))
                                         / np.sqrt(block.var(axis=0) + eps) + beta)
    return out


def _ghost_cases():
    rng = np.random.default_rng(103)
    return [(rng.normal(3.0, 2.0, size=(12, 4)), rng.uniform(0.5, 2.0, 4), rng.normal(size=4),
             4, 1e-3),
            (rng.normal(-2.0, 1.0, size=(8, 3)), rng.uniform(0.5, 2.0, 3), rng.normal(size=3),
             2, 1e-5),
            (rng.normal(0.0, 0.1, size=(9, 2)), rng.uniform(0.5, 2.0, 2), rng.normal(size=2),
             3, 1e-2)]


def check_ghost_batchnorm(answer: Callable) -> bool | None:
    """Exercise 10.3: training-mode ghost batch norm of (N, D) rows."""
    def whole_batch(x, gamma, beta, g, eps):
        return _ghost_reference(x, gamma, beta, len(x), eps)

    def strided(x, gamma, beta, g, eps):
        # ghost k taken as rows k, k + G, k + 2G, ... instead of a consecutive block
        ghosts = len(x) // g
        order = np.arange(len(x)).reshape(g, ghosts).T.ravel()
        out = np.empty_like(x)
        out[order] = _ghost_reference(x[order], gamma, beta, g, eps)
        return out

    def unbiased(x, gamma, beta, g, eps):
        out = np.empty_like(x)
        for start in range(0, len(x), g):
            block = x[start:start + g]
            out[start:start + g] = (gamma * (block - block.mean(axis=0))
                                    / np.sqrt(block.var(axis=0, ddof=1) + eps) + beta)
        return out

    def eps_outside(x, gamma, beta, g, eps):
        out = np.empty_like(x)
        for start in range(0, len(x), g):
            block = x[start:start + g]
            out[start:start + g] = (gamma * (block - block.mean(axis=0))
                                    / (block.std(axis=0) + eps) + beta)
        return out

    return checks.check_exercise(
        "ghost_batchnorm", answer, _ghost_reference, _ghost_cases(),
        mistakes=[(whole_batch, "that normalizes the whole batch at once: cut it into blocks "
                                "of ghost_size rows and normalize each block with its own "
                                "mean and variance"),
                  (strided, "a ghost batch is a block of consecutive rows (x[0:g], x[g:2g], "
                            "...), as a replica's slice is; yours takes every G-th row"),
                  (unbiased, "use the biased variance of each ghost batch (divide by "
                             "ghost_size)"),
                  (eps_outside, "eps goes inside the square root: sqrt(var + eps)")])
