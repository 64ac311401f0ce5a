"""Lesson 07's exercise checkers accept a correct answer (also a list, a loop), report the stub
and a missing return, and name each mistake (the contract, tests/lessons/checker_contract.py);
their cases vary every setting, and the moving update's reference is Keras's own.

Every wrong answer here is written out on its own, from the formula it gets wrong,
not copied from the checker's mistake list.
"""
from __future__ import annotations

import numpy as np
import pytest

from bnlib.lessons.lesson07 import exercises

from checker_contract import contract  # tests/lessons/: every checker's tests


# ---------------------------------------------------------------- fold_bn

def _fold_ok(W, b, g, be, mu, var, eps):
    s = g / np.sqrt(var + eps)
    return W * s, (b - mu) * s + be


def _fold_ok_list(W, b, g, be, mu, var, eps):
    return list(_fold_ok(W, b, g, be, mu, var, eps))


def _fold_ok_loop(W, b, g, be, mu, var, eps):
    """Column by column, as a learner might write it."""
    W_f, b_f = np.empty_like(W), np.empty_like(b)
    for j in range(W.shape[1]):
        std = (var[j] + eps) ** 0.5
        W_f[:, j] = W[:, j] * g[j] / std
        b_f[j] = g[j] * (b[j] - mu[j]) / std + be[j]
    return W_f, b_f


def _fold_eps_outside(W, b, g, be, mu, var, eps):
    s = g / (np.sqrt(var) + eps)
    return W * s, (b - mu) * s + be


def _fold_no_eps(W, b, g, be, mu, var, eps):
    s = g / np.sqrt(var)
    return W * s, (b - mu) * s + be


def _fold_eps_hard_coded(W, b, g, be, mu, var, eps):
    s = g / np.sqrt(var + 0.001)
    return W * s, (b - mu) * s + be


def _fold_by_var(W, b, g, be, mu, var, eps):
    s = g / (var + eps)
    return W * s, (b - mu) * s + be


def _fold_no_mean(W, b, g, be, mu, var, eps):
    s = g / np.sqrt(var + eps)
    return W * s, b * s + be


def _fold_ignores_b(W, b, g, be, mu, var, eps):
    s = g / np.sqrt(var + eps)
    return W * s, be - mu * s


def _fold_mu_minus_b(W, b, g, be, mu, var, eps):
    s = g / np.sqrt(var + eps)
    return W * s, (mu - b) * s + be


def _fold_w_without_gamma(W, b, g, be, mu, var, eps):
    std = np.sqrt(var + eps)
    return W / std, g * (b - mu) / std + be


def _fold_no_beta(W, b, g, be, mu, var, eps):
    s = g / np.sqrt(var + eps)
    return W * s, (b - mu) * s


def _fold_swapped(W, b, g, be, mu, var, eps):
    s = g / np.sqrt(var + eps)
    return (b - mu) * s + be, W * s


@pytest.mark.parametrize("answer", [_fold_ok_list, _fold_ok_loop])
def test_fold_bn_accepts_a_list_and_a_loop(capsys, answer):
    assert exercises.check_fold_bn(answer) is True
    assert "passed" in capsys.readouterr().out


def test_fold_bn_says_when_one_array_is_returned(capsys):
    assert exercises.check_fold_bn(lambda *args: _fold_ok(*args)[0]) is False
    assert "expected a tuple of 2 values" in capsys.readouterr().out


FOLD_MISTAKES = [
    (_fold_eps_outside, "inside the square root"),
    (_fold_no_eps, "the ε is missing"),
    (_fold_eps_hard_coded, "use the eps argument"),
    (_fold_by_var, "not by the variance"),
    (_fold_no_mean, "subtract the moving mean"),
    (_fold_ignores_b, "own bias b"),
    (_fold_mu_minus_b, "b minus μ, not μ minus b"),
    (_fold_w_without_gamma, "not by 1/σ alone"),
    (_fold_no_beta, "add β"),
    (_fold_swapped, "the kernel first, then the bias"),
]


def test_fold_bn_cases_vary_every_setting():
    cases = exercises._fold_cases()
    assert len({case[-1] for case in cases}) == len(cases)          # eps
    assert len({case[0].shape for case in cases}) == len(cases)     # (D_in, D_out)
    assert {1} <= {case[0].shape[0] for case in cases} and {1} <= {case[0].shape[1] for case in cases}
    assert all(np.all(case[1] != 0) for case in cases)              # b
    assert any(np.any(case[1] > case[4]) and np.any(case[1] < case[4]) for case in cases)


# ---------------------------------------------------------------- keras_moving_update

def _mov_ok(mm, mv, x, m):
    return m * mm + (1 - m) * x.mean(0), m * mv + (1 - m) * x.var(0)


def _mov_ok_by_hand(mm, mv, x, m):
    n = x.shape[0]
    mean = x.sum(axis=0) / n
    var = ((x - mean) ** 2).sum(axis=0) / n
    return [mm * m + mean * (1 - m), mv * m + var * (1 - m)]


def _mov_pytorch_weights(mm, mv, x, m):
    return (1 - m) * mm + m * x.mean(0), (1 - m) * mv + m * x.var(0)


def _mov_pytorch_full(mm, mv, x, m):
    n = x.shape[0]
    var = x.var(0) * n / (n - 1) if n > 1 else np.full(x.shape[1], np.nan)
    return (1 - m) * mm + m * x.mean(0), (1 - m) * mv + m * var


def _mov_unbiased(mm, mv, x, m):
    n = x.shape[0]
    var = x.var(0) * n / (n - 1) if n > 1 else np.full(x.shape[1], np.nan)
    return m * mm + (1 - m) * x.mean(0), m * mv + (1 - m) * var


def _mov_around_moving_mean(mm, mv, x, m):
    return m * mm + (1 - m) * x.mean(0), m * mv + (1 - m) * np.mean((x - mm) ** 2, axis=0)


def _mov_around_new_mean(mm, mv, x, m):
    mean = m * mm + (1 - m) * x.mean(0)
    return mean, m * mv + (1 - m) * np.mean((x - mean) ** 2, axis=0)


def _mov_momentum_hard_coded(mm, mv, x, m):
    return 0.99 * mm + 0.01 * x.mean(0), 0.99 * mv + 0.01 * x.var(0)


def _mov_std(mm, mv, x, m):
    return m * mm + (1 - m) * x.mean(0), m * mv + (1 - m) * x.std(0)


def _mov_all_values(mm, mv, x, m):
    return m * mm + (1 - m) * np.mean(x), m * mv + (1 - m) * np.var(x)


CHECKERS = {
    "fold_bn": (exercises.check_fold_bn, _fold_ok, FOLD_MISTAKES),
    "moving_update": (exercises.check_keras_moving_update, _mov_ok, [
        (_mov_pytorch_weights, "weights the OLD value"),
        (_mov_pytorch_full, "that is PyTorch's rule"),
        (_mov_unbiased, "biased batch variance"),
        (_mov_around_moving_mean, "not around the moving mean"),
        (_mov_around_new_mean, "not around the (updated) moving mean"),
        (_mov_momentum_hard_coded, "use the momentum argument"),
        (_mov_std, "not the standard deviation"),
        (_mov_all_values, "per feature")]),
}
(test_checker_accepts_a_correct_answer, test_checker_reports_the_stub_as_not_attempted,
 test_checker_reports_a_missing_return, test_checker_names_the_mistake) = contract(CHECKERS)


def test_moving_update_accepts_an_answer_by_hand(capsys):
    assert exercises.check_keras_moving_update(_mov_ok_by_hand) is True
    assert "passed" in capsys.readouterr().out


def test_moving_update_cases_vary_every_setting():
    cases = exercises._moving_cases()
    assert len({case[3] for case in cases}) == len(cases)          # momentum
    assert cases[0][3] == 0.99 and 1 in {case[2].shape[0] for case in cases}   # N = 1 too
    assert len({case[2].shape for case in cases}) == len(cases)
    assert all(np.all(np.abs(case[0] - case[2].mean(0)) > 0.05) for case in cases[1:])


def test_moving_update_matches_keras():
    """The checker's reference is Keras's own update (one training call of a fresh layer)."""
    from bnlib import tf_compare

    for mm, mv, x, m in exercises._moving_cases():
        d = x.shape[1]
        _, k_mean, k_var = tf_compare.keras_batchnorm(x, np.ones(d), np.zeros(d), mm, mv,
                                                      training=True, momentum=m, dtype="float64")
        ref_mean, ref_var = exercises.moving_update(mm, mv, x, m)
        np.testing.assert_allclose(k_mean, ref_mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(k_var, ref_var, rtol=1e-12, atol=1e-12)
