"""Lesson 10's checkers accept a correct answer, report the stub and a missing return, and name
each mistake they know (the contract, tests/lessons/checker_contract.py); their cases vary
every setting.

Answers and mistakes are written here the way a learner would write them, not
taken from the checkers. Exercise 2's reference is also held against Keras
itself under MirroredStrategy.
"""
from __future__ import annotations

import numpy as np

from bnlib.lessons.lesson10 import exercises

from checker_contract import contract  # tests/lessons/: every checker's tests


# ---------------------------------------------------------------- 1. combining statistics

def combine_ok(counts, means, variances):
    n = np.sum(counts)
    mean = np.einsum("r,rd->d", counts, means) / n
    second = np.einsum("r,rd->d", counts, variances + means ** 2) / n   # E[x^2] per replica
    return mean, second - mean ** 2


def combine_no_between(counts, means, variances):
    n = np.sum(counts)
    return (np.einsum("r,rd->d", counts, means) / n,
            np.einsum("r,rd->d", counts, variances) / n)


def combine_plain_average(counts, means, variances):
    return np.mean(means, axis=0), np.mean(variances, axis=0)


def combine_equal_weights(counts, means, variances):
    mean = np.mean(means, axis=0)
    return mean, np.mean(variances + (means - mean) ** 2, axis=0)


def combine_unbiased(counts, means, variances):
    mean, var = combine_ok(counts, means, variances)
    n = np.sum(counts)
    return mean, var * n / (n - 1)


def test_combine_cases_have_unequal_replicas_and_distinct_centres():
    cases = exercises._combine_cases()
    assert any(len(set(c[0].tolist())) > 1 for c in cases)
    for counts, means, variances in cases:
        assert np.ptp(means, axis=0).min() > 0.1


# ---------------------------------------------------------------- 2. stored moving statistics

def stored_ok(batches, replicas, momentum, synchronized):
    d = batches.shape[2]
    mean, var = np.zeros(d), np.ones(d)
    for x in batches:
        seen = x if synchronized else np.split(x, replicas)[0]
        mean = momentum * mean + (1 - momentum) * seen.mean(axis=0)
        var = momentum * var + (1 - momentum) * seen.var(axis=0)
    return mean, var


def stored_global(batches, replicas, momentum, synchronized):
    return stored_ok(batches, 1, momentum, True)


def stored_average_of_copies(batches, replicas, momentum, synchronized):
    if synchronized:
        return stored_ok(batches, replicas, momentum, True)
    copies = [stored_ok(np.stack([np.split(x, replicas)[k] for x in batches]), 1, momentum, True)
              for k in range(replicas)]
    return np.mean([c[0] for c in copies], axis=0), np.mean([c[1] for c in copies], axis=0)


def stored_last_replica(batches, replicas, momentum, synchronized):
    if synchronized:
        return stored_ok(batches, replicas, momentum, True)
    return stored_ok(np.stack([np.split(x, replicas)[-1] for x in batches]), 1, momentum, True)


def stored_unbiased(batches, replicas, momentum, synchronized):
    d = batches.shape[2]
    mean, var = np.zeros(d), np.ones(d)
    for x in batches:
        seen = x if synchronized else np.split(x, replicas)[0]
        mean = momentum * mean + (1 - momentum) * seen.mean(axis=0)
        var = momentum * var + (1 - momentum) * seen.var(axis=0, ddof=1)
    return mean, var


def stored_torch_momentum(batches, replicas, momentum, synchronized):
    return stored_ok(batches, replicas, 1 - momentum, synchronized)


def test_stored_cases_vary_replicas_momentum_and_mode():
    cases = exercises._stored_cases()
    assert len({c[1] for c in cases}) > 1 and len({c[2] for c in cases}) > 1
    assert {c[3] for c in cases} == {False, True}


def test_stored_reference_is_what_keras_stores_under_mirrored_strategy():
    """The checker's reference against the real engine (Keras, 4 logical CPUs)."""
    from bnlib import tf_distribute
    from bnlib.lessons.lesson10 import experiments

    tf_distribute.configure_cpu_devices(experiments.DEVICES)
    for batches, replicas, momentum, synchronized in exercises._stored_cases()[:3]:
        got = tf_distribute.run_batchnorm(batches.astype(np.float32), replicas,
                                          synchronized=synchronized, momentum=momentum)
        mean, var = exercises._stored_reference(batches.astype(np.float32).astype(np.float64),
                                                replicas, momentum, synchronized)
        np.testing.assert_allclose(got["read_mean"], mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got["read_variance"], var, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- 3. ghost batch norm

def ghost_ok(x, gamma, beta, ghost_size, eps):
    blocks = x.reshape(-1, ghost_size, x.shape[1])
    mean = blocks.mean(axis=1, keepdims=True)
    var = ((blocks - mean) ** 2).mean(axis=1, keepdims=True)
    return (gamma * (blocks - mean) / np.sqrt(var + eps) + beta).reshape(x.shape)


def ghost_whole(x, gamma, beta, ghost_size, eps):
    return gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + beta


def ghost_strided(x, gamma, beta, ghost_size, eps):
    blocks = x.reshape(ghost_size, -1, x.shape[1])       # every G-th row together
    mean = blocks.mean(axis=0, keepdims=True)
    var = blocks.var(axis=0, keepdims=True)
    return (gamma * (blocks - mean) / np.sqrt(var + eps) + beta).reshape(x.shape)


def ghost_unbiased(x, gamma, beta, ghost_size, eps):
    blocks = x.reshape(-1, ghost_size, x.shape[1])
    mean = blocks.mean(axis=1, keepdims=True)
    var = blocks.var(axis=1, ddof=1, keepdims=True)
    return (gamma * (blocks - mean) / np.sqrt(var + eps) + beta).reshape(x.shape)


def ghost_eps_outside(x, gamma, beta, ghost_size, eps):
    blocks = x.reshape(-1, ghost_size, x.shape[1])
    mean = blocks.mean(axis=1, keepdims=True)
    return (gamma * (blocks - mean) / (blocks.std(axis=1, keepdims=True) + eps)
            + beta).reshape(x.shape)


def test_ghost_cases_vary_the_ghost_size_and_eps():
    cases = exercises._ghost_cases()
    assert len({c[3] for c in cases}) == len(cases) and len({c[4] for c in cases}) == len(cases)


# ---------------------------------------------------------------- every checker

CHECKERS = {
    "combine": (exercises.check_combine_replica_stats, combine_ok, [
        (combine_no_between, "spread between the replicas"),
        (combine_plain_average, "weight each replica by its count"),
        (combine_equal_weights, "different numbers of examples"),
        (combine_unbiased, "biased variance")]),
    "stored": (exercises.check_stored_moving_stats, stored_ok, [
        (stored_global, "own copy from its own slice"),
        (stored_average_of_copies, "nothing averages the copies"),
        (stored_last_replica, "not the last"),
        (stored_unbiased, "biased batch variance"),
        (stored_torch_momentum, "weight on the OLD value")]),
    "ghost": (exercises.check_ghost_batchnorm, ghost_ok, [
        (ghost_whole, "normalizes the whole batch"),
        (ghost_strided, "consecutive rows"),
        (ghost_unbiased, "biased variance"),
        (ghost_eps_outside, "inside the square root")]),
}
(test_checker_accepts_a_correct_answer, test_checker_reports_the_stub_as_not_attempted,
 test_checker_reports_a_missing_return, test_checker_names_the_mistake) = contract(CHECKERS)
