"""Lesson 03's checkers accept a correct answer (also as a list where a tuple is expected),
report the placeholder as not attempted, and name every mistake they list.

The answers and the mistakes below are written independently of the checkers, as a
learner would write them (bnlib for the correct ones, NumPy one step at a time for the
wrong ones).
"""
from __future__ import annotations

import numpy as np
import pytest

from bnlib.batchnorm import batchnorm_forward
from bnlib.course.references import bn_cases
from bnlib.lessons.lesson03 import exercises

from checker_contract import contract  # tests/lessons/: every checker's tests


# ----- correct answers -----

def train_ok(x, gamma, beta, eps):
    d = x.shape[1]
    return batchnorm_forward(x, gamma, beta, np.zeros(d), np.ones(d), training=True, eps=eps)[0]


def inference_ok(x, gamma, beta, moving_mean, moving_variance, eps):
    return batchnorm_forward(x, gamma, beta, moving_mean, moving_variance, training=False,
                             eps=eps)[0]


def moving_ok(moving_mean, moving_variance, x, momentum):
    _, _, mm, mv = batchnorm_forward(x, np.ones_like(moving_mean), np.zeros_like(moving_mean),
                                     moving_mean, moving_variance, training=True,
                                     momentum=momentum)
    return mm, mv


# ----- 03.1: the training-mode forward pass -----

def train_ddof1(x, g, b, e):
    return g * (x - x.mean(0)) / np.sqrt(x.var(0, ddof=1) + e) + b


def train_eps_outside(x, g, b, e):
    return g * (x - x.mean(0)) / (np.sqrt(x.var(0)) + e) + b


def train_no_eps(x, g, b, e):
    return g * (x - x.mean(0)) / np.sqrt(x.var(0)) + b


def train_per_example(x, g, b, e):
    return g * (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + e) + b


def train_no_affine(x, g, b, e):
    return (x - x.mean(0)) / np.sqrt(x.var(0) + e)


def train_no_beta(x, g, b, e):
    return g * ((x - x.mean(0)) / np.sqrt(x.var(0) + e))


def train_no_gamma(x, g, b, e):
    return (x - x.mean(0)) / np.sqrt(x.var(0) + e) + b


def train_keras_eps(x, g, b, e):
    return g * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3) + b


def train_torch_eps(x, g, b, e):
    return g * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) + b


# ----- 03.2: inference -----

def inf_batch_stats(x, g, b, mm, mv, e):
    return g * (x - x.mean(0)) / np.sqrt(x.var(0) + e) + b


def inf_no_eps(x, g, b, mm, mv, e):
    return g * (x - mm) / np.sqrt(mv) + b


def inf_eps_outside(x, g, b, mm, mv, e):
    return g * (x - mm) / (np.sqrt(mv) + e) + b


def inf_no_sqrt(x, g, b, mm, mv, e):
    return g * (x - mm) / (mv + e) + b


def inf_no_affine(x, g, b, mm, mv, e):
    return (x - mm) / np.sqrt(mv + e)


def inf_no_beta(x, g, b, mm, mv, e):
    return g * (x - mm) / np.sqrt(mv + e)


def inf_no_gamma(x, g, b, mm, mv, e):
    return (x - mm) / np.sqrt(mv + e) + b


def inf_keras_eps(x, g, b, mm, mv, e):
    return g * (x - mm) / np.sqrt(mv + 0.001) + b


def inf_torch_eps(x, g, b, mm, mv, e):
    return g * (x - mm) / np.sqrt(mv + 0.00001) + b


# ----- 03.3: the moving statistics -----

def moving_swapped(mm, mv, x, m):
    return (1 - m) * mm + m * x.mean(0), (1 - m) * mv + m * x.var(0)


def moving_unbiased(mm, mv, x, m):
    return m * mm + (1 - m) * x.mean(0), m * mv + (1 - m) * x.var(0, ddof=1)


def moving_std(mm, mv, x, m):
    return m * mm + (1 - m) * x.mean(0), m * mv + (1 - m) * x.std(0)


def moving_fixed_momentum(mm, mv, x, m):
    return 0.99 * mm + 0.01 * x.mean(0), 0.99 * mv + 0.01 * x.var(0)


CHECKERS = {
    "train": (exercises.check_batchnorm_train, train_ok, [
        (train_ddof1, "biased variance"), (train_eps_outside, "inside the square root"),
        (train_no_eps, "add ε to the variance"), (train_per_example, "batch axis 0"),
        (train_no_affine, "finish with the scale and shift"),
        (train_no_beta, "forgot to add the shift β"), (train_no_gamma, "forgot to scale by γ"),
        (train_keras_eps, "ignores its eps argument (it gives the result for eps = 0.001)"),
        (train_torch_eps, "ignores its eps argument (it gives the result for eps = 1e-05)")]),
    "inference": (exercises.check_batchnorm_inference, inference_ok, [
        (inf_batch_stats, "moving statistics"), (inf_no_eps, "add ε"),
        (inf_eps_outside, "inside the square root"), (inf_no_sqrt, "divide by its square root"),
        (inf_no_affine, "learned scale and shift"), (inf_no_beta, "forgot to add the shift β"),
        (inf_no_gamma, "forgot to scale by γ"),
        (inf_keras_eps, "ignores its eps argument (it gives the result for eps = 0.001)"),
        (inf_torch_eps, "ignores its eps argument (it gives the result for eps = 1e-05)")]),
    "moving": (exercises.check_moving_update, moving_ok, [
        (moving_swapped, "OLD value"), (moving_unbiased, "biased batch variance"),
        (moving_std, "not the standard deviation"),
        (moving_fixed_momentum, "ignores its momentum argument")]),
}
(test_checker_accepts_a_correct_answer, test_checker_reports_the_stub_as_not_attempted,
 test_checker_reports_a_missing_return, test_checker_names_the_mistake) = contract(CHECKERS)


def test_moving_update_accepts_a_list(capsys):
    assert exercises.check_moving_update(lambda *a: list(moving_ok(*a))) is True
    assert "passed" in capsys.readouterr().out


def test_checker_reports_an_unknown_mistake_without_a_wrong_hint(capsys):
    assert exercises.check_batchnorm_train(lambda x, g, b, e: 2 * train_ok(x, g, b, e)) is False
    assert "differs from the expected one" in capsys.readouterr().out


def test_moving_update_names_a_wrong_kind_of_answer(capsys):
    assert exercises.check_moving_update(lambda mm, mv, x, m: moving_ok(mm, mv, x, m)[0]) is False
    assert "expected a tuple of 2 values" in capsys.readouterr().out


def test_a_single_example_is_among_the_inference_cases():
    assert min(case[0].shape[0] for case in exercises._inference_cases()) == 1


@pytest.mark.parametrize("cases", [bn_cases(3, eps=(1e-2, 1e-4)), exercises._inference_cases()])
def test_the_cases_vary_eps_away_from_the_usual_values(cases):
    used = {case[-1] for case in cases}
    assert len(used) == len(cases) and not used & set(exercises.USUAL_EPS)


def test_bn_cases_default_keeps_the_old_cases():
    """The eps argument is additive: the default gives the same arrays and eps = 1e-3."""
    old, new = bn_cases(3), bn_cases(3, eps=(0.5, 0.25))
    assert [c[-1] for c in old] == [1e-3, 1e-3] and [c[-1] for c in new] == [0.5, 0.25]
    for a, b in zip(old, new):
        for u, v in zip(a[:3], b[:3]):
            np.testing.assert_array_equal(u, v)
    x = old[0][0]
    assert x.shape == (8, 3) and abs(x[:, 1].std() - 0.02) < 0.01
