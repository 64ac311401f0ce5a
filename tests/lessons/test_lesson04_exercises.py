"""Lesson 04's checkers accept a correct answer (also as a list where a tuple is expected),
report the placeholder as not attempted, and name every mistake they list.

The answers and the mistakes below are written independently of the checkers: the correct
ones through bnlib, the wrong ones step by step, as a learner would write them.
"""
from __future__ import annotations

import numpy as np
import pytest

from bnlib.batchnorm import batchnorm_backward, batchnorm_forward
from bnlib.gradcheck import numerical_gradient, rel_error
from bnlib.lessons.lesson04 import exercises

from checker_contract import contract  # tests/lessons/: every checker's tests


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


# ----- 04.1: the training-mode backward pass -----

def _parts(x, eps):
    inv_std = 1 / np.sqrt(x.var(0) + eps)
    return (x - x.mean(0)) * inv_std, inv_std


def bw_constant_stats(dout, x, gamma, eps):
    x_hat, inv_std = _parts(x, eps)
    return dout * gamma * inv_std, (dout * x_hat).sum(0), dout.sum(0)


def bw_mean_path_only(dout, x, gamma, eps):
    x_hat, inv_std = _parts(x, eps)
    g = dout * gamma
    return (g - g.mean(0)) * inv_std, (dout * x_hat).sum(0), dout.sum(0)


def bw_var_path_only(dout, x, gamma, eps):
    x_hat, inv_std = _parts(x, eps)
    g = dout * gamma
    return (g - x_hat * (g * x_hat).mean(0)) * inv_std, (dout * x_hat).sum(0), dout.sum(0)


def bw_no_gamma(dout, x, gamma, eps):
    return backward_ok(dout, x, np.ones_like(gamma), eps)[0], *backward_ok(dout, x, gamma, eps)[1:]


def bw_dgamma_plain_sum(dout, x, gamma, eps):
    dx, _, dbeta = backward_ok(dout, x, gamma, eps)
    return dx, dout.sum(0), dbeta


def bw_swapped(dout, x, gamma, eps):
    dx, dgamma, dbeta = backward_ok(dout, x, gamma, eps)
    return dx, dbeta, dgamma


def bw_unbiased_compact(dout, x, gamma, eps):
    """The compact formula, with x_hat and inv_std from the N - 1 variance."""
    n = x.shape[0]
    inv_std = 1 / np.sqrt(x.var(0, ddof=1) + eps)
    x_hat = (x - x.mean(0)) * inv_std
    dgamma, dbeta = (dout * x_hat).sum(0), dout.sum(0)
    return gamma * inv_std / n * (n * dout - dbeta - x_hat * dgamma), dgamma, dbeta


def _staged(dout, x, gamma, denom, std_of, dstd_dvar):
    """A learner's staged backward through a forward whose variance divides by ``denom``
    and whose standard deviation is ``std_of(var)``."""
    n = x.shape[0]
    c = x - x.mean(0)
    var = (c ** 2).sum(0) / denom
    std = std_of(var)
    x_hat = c / std
    dx_hat = dout * gamma
    d_std = np.sum(dx_hat * c * -1.0 / std ** 2, axis=0)
    d_var = d_std * dstd_dvar(var)
    d_c = dx_hat / std + d_var * 2 * c / denom
    d_mu = -d_c.sum(0)
    return d_c + d_mu / n, (dout * x_hat).sum(0), dout.sum(0)


def bw_unbiased_staged(dout, x, gamma, eps):
    return _staged(dout, x, gamma, x.shape[0] - 1, lambda v: np.sqrt(v + eps),
                   lambda v: 0.5 / np.sqrt(v + eps))


def bw_eps_outside_compact(dout, x, gamma, eps):
    n = x.shape[0]
    inv_std = 1 / (x.std(0) + eps)
    x_hat = (x - x.mean(0)) * inv_std
    dgamma, dbeta = (dout * x_hat).sum(0), dout.sum(0)
    return gamma * inv_std / n * (n * dout - dbeta - x_hat * dgamma), dgamma, dbeta


def bw_eps_outside_staged(dout, x, gamma, eps):
    return _staged(dout, x, gamma, x.shape[0], lambda v: np.sqrt(v) + eps,
                   lambda v: 0.5 / np.sqrt(v))


def bw_no_one_over_n(dout, x, gamma, eps):
    x_hat, inv_std = _parts(x, eps)
    n = x.shape[0]
    dgamma, dbeta = (dout * x_hat).sum(0), dout.sum(0)
    return gamma * inv_std * (n * dout - dbeta - x_hat * dgamma), dgamma, dbeta


def bw_fixed_eps(value):
    def wrong(dout, x, gamma, eps):
        return backward_ok(dout, x, gamma, value)
    wrong.__name__ = f"bw_eps_{value:g}"
    return wrong


def test_the_staged_mistakes_are_true_gradients_of_their_wrong_forwards():
    """The learner's staged variants differentiate their forward correctly (only the
    forward is wrong): checked against numerical gradients."""
    dout, x, gamma, eps = exercises._grad_cases(8)[0]
    for wrong, forward in (
            (bw_unbiased_staged,
             lambda v: gamma * (v - v.mean(0)) / np.sqrt(v.var(0, ddof=1) + eps)),
            (bw_eps_outside_staged, lambda v: gamma * (v - v.mean(0)) / (v.std(0) + eps))):
        dx_num = numerical_gradient(forward, x.copy(), dout)
        error = np.max(np.abs(wrong(dout, x, gamma, eps)[0] - dx_num))
        assert error < 1e-5 * np.max(np.abs(dx_num))


# ----- 04.2: the inference-mode backward pass -----

def ib_no_gamma(d, g, mv, e):
    return d / np.sqrt(mv + e)


def ib_variance(d, g, mv, e):
    return d * g / (mv + e)


def ib_no_eps(d, g, mv, e):
    return d * g / np.sqrt(mv)


def ib_eps_outside(d, g, mv, e):
    return d * g / (np.sqrt(mv) + e)


def ib_no_division(d, g, mv, e):
    return d * g


def ib_fixed_eps(value):
    def wrong(d, g, mv, e):
        return d * g / np.sqrt(mv + value)
    wrong.__name__ = f"ib_eps_{value:g}"
    return wrong


CHECKERS = {
    "backward": (exercises.check_batchnorm_backward, backward_ok, [
        (bw_constant_stats, "depend on x too"),
        (bw_mean_path_only, "not the one through the variance"),
        (bw_var_path_only, "not the one through the mean"), (bw_no_gamma, "through γ"),
        (bw_dgamma_plain_sum, "dout * x_hat"), (bw_swapped, "dgamma and dbeta are swapped"),
        (bw_unbiased_compact, "divides by N - 1"), (bw_unbiased_staged, "divides by N - 1"),
        (bw_eps_outside_compact, "inside the square root"),
        (bw_eps_outside_staged, "inside the square root"),
        (bw_no_one_over_n, "N times too large"),
        *[(bw_fixed_eps(v), f"ignores its eps argument (it gives the result for eps = {v:g})")
          for v in (1e-3, 1e-5, 1e-8)]]),
    "inference_backward": (exercises.check_inference_backward, inference_backward_ok, [
        (ib_no_gamma, "multiply by γ"), (ib_variance, "not by the variance"),
        (ib_no_eps, "ε stays inside"), (ib_eps_outside, "not sqrt(moving_variance) + ε"),
        (ib_no_division, "so dx does too"), (ib_fixed_eps(1e-8), "ε stays inside"),
        *[(ib_fixed_eps(v), f"ignores its eps argument (it gives the result for eps = {v:g})")
          for v in (1e-3, 1e-5)]]),
}
(test_checker_accepts_a_correct_answer, test_checker_reports_the_stub_as_not_attempted,
 test_checker_reports_a_missing_return, test_checker_names_the_mistake) = contract(CHECKERS)


def test_backward_accepts_a_list(capsys):
    assert exercises.check_batchnorm_backward(lambda *a: list(backward_ok(*a))) is True
    assert "passed" in capsys.readouterr().out


def test_backward_names_a_wrong_kind_of_answer(capsys):
    assert exercises.check_batchnorm_backward(lambda *a: backward_ok(*a)[:2]) is False
    assert "expected a tuple of 3 values" in capsys.readouterr().out


def test_the_cases_vary_eps_and_include_a_single_example(monkeypatch):
    grad_eps = {case[-1] for case in exercises._grad_cases(8)}
    assert len(grad_eps) == 2 and not grad_eps & set(exercises.USUAL_EPS)
    seen = []
    monkeypatch.setattr(exercises, "check_exercise",
                        lambda name, answer, reference, cases, **kw: seen.extend(cases))
    exercises.check_inference_backward(inference_backward_ok)
    inference_eps = {case[-1] for case in seen}
    assert len(inference_eps) == 2 and not inference_eps & set(exercises.USUAL_EPS)
    assert min(case[0].shape[0] for case in seen) == 1


@pytest.mark.parametrize("seed", [8, 11])
def test_backward_reference_matches_numerical_gradients(seed):
    """The reference the backward checker compares against is itself right."""
    for dout, x, gamma, eps in exercises._grad_cases(seed):
        dx, dgamma, dbeta = exercises._bn_backward(dout, x, gamma, eps)
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
