"""The exercise checkers of lessons 03 and 04: each accepts a correct answer, reports an
untouched stub as not attempted, and names every mistake it lists."""
from __future__ import annotations

import numpy as np
import pytest

from bnlib.course import checks
from bnlib.batchnorm import batchnorm_backward, batchnorm_forward
from bnlib.gradcheck import numerical_gradient, rel_error
from bnlib.lessons.lesson03 import exercises as exercises03
from bnlib.lessons.lesson04 import exercises as exercises04


def _placeholder(*args):
    """The placeholder a lesson hands out."""
    raise NotImplementedError("replace with your code")


# ----- correct answers, written independently of the checkers' references -----

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


def backward_ok(dout, x, gamma, eps):
    d = x.shape[1]
    _, cache, _, _ = batchnorm_forward(x, gamma, np.zeros(d), np.zeros(d), np.ones(d),
                                       training=True, eps=eps)
    return batchnorm_backward(dout, cache)


def inference_backward_ok(dout, gamma, moving_variance, eps):
    d = dout.shape[1]
    _, cache, _, _ = batchnorm_forward(np.zeros_like(dout), gamma, np.zeros(d), np.zeros(d),
                                       moving_variance, training=False, eps=eps)
    return batchnorm_backward(dout, cache)[0]


# ----- common mistakes, as a learner would write them -----

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


def inf_batch_stats(x, g, b, mm, mv, e):
    return g * (x - x.mean(0)) / np.sqrt(x.var(0) + e) + b


def inf_no_eps(x, g, b, mm, mv, e):
    return g * (x - mm) / np.sqrt(mv) + b


def inf_no_sqrt(x, g, b, mm, mv, e):
    return g * (x - mm) / (mv + e) + b


def inf_no_affine(x, g, b, mm, mv, e):
    return (x - mm) / np.sqrt(mv + e)


def moving_swapped(mm, mv, x, m):
    return (1 - m) * mm + m * x.mean(0), (1 - m) * mv + m * x.var(0)


def moving_unbiased(mm, mv, x, m):
    return m * mm + (1 - m) * x.mean(0), m * mv + (1 - m) * x.var(0, ddof=1)


def moving_std(mm, mv, x, m):
    return m * mm + (1 - m) * x.mean(0), m * mv + (1 - m) * x.std(0)


def _parts(x, gamma, eps):
    inv_std = 1 / np.sqrt(x.var(0) + eps)
    return (x - x.mean(0)) * inv_std, inv_std


def bw_constant_stats(dout, x, gamma, eps):
    x_hat, inv_std = _parts(x, gamma, eps)
    return dout * gamma * inv_std, (dout * x_hat).sum(0), dout.sum(0)


def bw_mean_path_only(dout, x, gamma, eps):
    x_hat, inv_std = _parts(x, gamma, eps)
    g = dout * gamma
    return (g - g.mean(0)) * inv_std, (dout * x_hat).sum(0), dout.sum(0)


def bw_var_path_only(dout, x, gamma, eps):
    x_hat, inv_std = _parts(x, gamma, eps)
    g = dout * gamma
    return (g - x_hat * (g * x_hat).mean(0)) * inv_std, (dout * x_hat).sum(0), dout.sum(0)


def bw_no_gamma(dout, x, gamma, eps):
    return backward_ok(dout, x, np.ones_like(gamma), eps)[0], *backward_ok(dout, x, gamma, eps)[1:]


def bw_dgamma_plain_sum(dout, x, gamma, eps):
    dx, _, dbeta = backward_ok(dout, x, gamma, eps)
    return dx, dout.sum(0), dbeta


CHECKERS = {
    "train": (exercises03.check_batchnorm_train, train_ok, [
        (train_ddof1, "biased variance"), (train_eps_outside, "inside the square root"),
        (train_no_eps, "add ε to the variance"), (train_per_example, "batch axis 0"),
        (train_no_affine, "scale and shift")]),
    "inference": (exercises03.check_batchnorm_inference, inference_ok, [
        (inf_batch_stats, "moving statistics"), (inf_no_eps, "add ε"),
        (inf_no_sqrt, "square root"), (inf_no_affine, "learned scale and shift")]),
    "moving": (exercises03.check_moving_update, moving_ok, [
        (moving_swapped, "OLD value"), (moving_unbiased, "biased batch variance"),
        (moving_std, "not the standard deviation")]),
    "backward": (exercises04.check_batchnorm_backward, backward_ok, [
        (bw_constant_stats, "depend on x too"), (bw_mean_path_only, "not the one through the variance"),
        (bw_var_path_only, "not the one through the mean"), (bw_no_gamma, "through γ"),
        (bw_dgamma_plain_sum, "dout * x_hat")]),
    "inference_backward": (exercises04.check_inference_backward, inference_backward_ok, [
        (lambda d, g, mv, e: d / np.sqrt(mv + e), "multiply by γ"),
        (lambda d, g, mv, e: d * g / (mv + e), "not by the variance"),
        (lambda d, g, mv, e: d * g / np.sqrt(mv), "ε stays inside"),
        (lambda d, g, mv, e: d * g, "so dx does too")]),
}
MISTAKES = [(name, wrong, hint) for name, (_, _, wrongs) in CHECKERS.items()
            for wrong, hint in wrongs]


@pytest.mark.parametrize("name", CHECKERS)
def test_checker_accepts_a_correct_answer(name, capsys):
    checker, correct, _ = CHECKERS[name]
    assert checker(correct) is True
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("name", CHECKERS)
def test_checker_reports_the_stub_as_not_attempted(name, capsys):
    checker, _, _ = CHECKERS[name]
    assert checker(_placeholder) is None
    assert checks.NOT_ATTEMPTED in capsys.readouterr().out


@pytest.mark.parametrize("name,wrong,hint", MISTAKES,
                         ids=[f"{n}-{h}" for n, _, h in MISTAKES])
def test_checker_names_the_mistake(name, wrong, hint, capsys):
    checker = CHECKERS[name][0]
    assert checker(wrong) is False
    assert hint in capsys.readouterr().out


def test_checker_reports_an_unknown_mistake_without_a_wrong_hint(capsys):
    assert exercises03.check_batchnorm_train(lambda x, g, b, e: 2 * train_ok(x, g, b, e)) is False
    out = capsys.readouterr().out
    assert "differs from the expected one" in out


@pytest.mark.parametrize("seed", [8, 11])
def test_backward_reference_matches_numerical_gradients(seed):
    """The reference the backward checker compares against is itself right."""
    for dout, x, gamma, eps in exercises04._grad_cases(seed):
        dx, dgamma, dbeta = exercises04._bn_backward(dout, x, gamma, eps)
        d = x.shape[1]

        def forward(x_, gamma_=gamma):
            return batchnorm_forward(x_, gamma_, np.zeros(d), np.zeros(d), np.ones(d),
                                     training=True, eps=eps)[0]

        # one feature has a spread of 0.02, so judge the error against the largest entry
        dx_num = numerical_gradient(forward, x.copy(), dout)
        assert np.max(np.abs(dx - dx_num)) < 1e-6 * np.max(np.abs(dx))
        dgamma_num = numerical_gradient(lambda g: forward(x, g), gamma.copy(), dout)
        assert rel_error(dgamma, dgamma_num) < 1e-7
        np.testing.assert_allclose(dbeta, dout.sum(0))
