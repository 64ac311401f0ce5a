"""Lesson 05's exercise checkers accept a correct answer, report the stub and a missing return,
and name each mistake they know (the contract, tests/lessons/checker_contract.py); an unknown
mistake gets the generic hint, and the cases include N = 1 and several shapes.

The correct answers go through bnlib; the mistakes are written out here, independently of
the checkers.
"""
import numpy as np

from bnlib.batchnorm import batchnorm_forward
from bnlib.lessons.lesson05 import exercises

from checker_contract import contract  # tests/lessons/: every checker's tests


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def hidden_layer(x, W, gamma, beta):
    z = x @ W
    out = batchnorm_forward(z, gamma, beta, np.zeros_like(gamma), np.ones_like(gamma),
                            training=True)[0]
    return _sigmoid(out)


def inference_layer(x, W, gamma, beta, moving_mean, moving_variance):
    return _sigmoid(batchnorm_forward(x @ W, gamma, beta, moving_mean, moving_variance,
                                      training=False)[0])


def gamma_beta_step(dout, x_hat, gamma, beta, lr):
    return gamma - lr * (dout * x_hat).sum(0), beta - lr * dout.sum(0)


def _bn(z, mean, var, gamma, beta, eps=1e-3):
    return gamma * (z - mean) / np.sqrt(var + eps) + beta


CHECKERS = {
    "hidden_layer": (exercises.check_network_hidden_layer, hidden_layer, [
        (lambda x, W, g, b: _sigmoid(_bn(x @ W, (x @ W).mean(1, keepdims=True),
                                         (x @ W).var(1, keepdims=True), g, b)),
         "over the batch (axis 0)"),
        (lambda x, W, g, b: _bn(_sigmoid(x @ W), _sigmoid(x @ W).mean(0),
                                _sigmoid(x @ W).var(0), g, b),
         "then apply the sigmoid"),
        (lambda x, W, g, b: _sigmoid(g * (x @ W - (x @ W).mean(0)) / ((x @ W).std(0) + 1e-3)
                                     + b),
         "eps goes inside the square root"),
        (lambda x, W, g, b: _sigmoid(_bn(x @ W, (x @ W).mean(0), (x @ W).var(0), 1.0, 0.0)),
         "scale by gamma and shift by beta"),
        (lambda x, W, g, b: _sigmoid((x @ W - (x @ W).mean(0)) / np.sqrt((x @ W).var(0) + 1e-3)
                                     + b),
         "gamma is missing"),
        (lambda x, W, g, b: _sigmoid(g * (x @ W - (x @ W).mean(0))
                                     / np.sqrt((x @ W).var(0) + 1e-3)),
         "beta is missing"),
        (lambda x, W, g, b: _sigmoid(_bn(x @ W, (x @ W).mean(0),
                                         np.var(x @ W, axis=0, ddof=1), g, b)),
         "not ddof=1"),
        (lambda x, W, g, b: _sigmoid(_bn(x @ W, (x @ W).mean(0), (x @ W).var(0), g, b,
                                         eps=1e-5)),
         "not 1e-5"),
        (lambda x, W, g, b: _sigmoid(g * (x @ W - (x @ W).mean(0)) / (x @ W).std(0) + b),
         "belongs inside the square root")]),
    "inference_layer": (exercises.check_network_inference_layer, inference_layer, [
        (lambda x, W, g, b, m, v: _sigmoid(_bn(x @ W, (x @ W).mean(0), (x @ W).var(0), g, b)),
         "use the moving mean and variance"),
        (lambda x, W, g, b, m, v: _sigmoid(g * (x @ W - m) / (v + 1e-3) + b),
         "not a standard deviation"),
        (lambda x, W, g, b, m, v: _sigmoid(_bn(x @ W, m, v, g, b, eps=0.0)), "keep eps = 1e-3"),
        (lambda x, W, g, b, m, v: _sigmoid(_bn(x @ W, m, v, g, b, eps=1e-5)), "not 1e-5"),
        (lambda x, W, g, b, m, v: _sigmoid(g * (x @ W - m) / (np.sqrt(v) + 1e-3) + b),
         "sqrt(moving_variance + eps)"),
        (lambda x, W, g, b, m, v: _sigmoid((x @ W - m) / np.sqrt(v + 1e-3) + b),
         "gamma is missing"),
        (lambda x, W, g, b, m, v: _sigmoid(g * (x @ W - m) / np.sqrt(v + 1e-3)),
         "beta is missing")]),
    "gamma_beta_step": (exercises.check_network_gamma_beta_step, gamma_beta_step, [
        (lambda d, xh, g, b, lr: (g - lr * (d * xh).mean(0), b - lr * d.mean(0)),
         "do not average it again"),
        (lambda d, xh, g, b, lr: (g + lr * (d * xh).sum(0), b + lr * d.sum(0)),
         "step against the gradient"),
        (lambda d, xh, g, b, lr: (g - lr * d.sum(0), b - lr * d.sum(0)), "sum of dout * x_hat"),
        (lambda d, xh, g, b, lr: (g - lr * (d * xh).sum(1).mean(), b - lr * d.sum(1).mean()),
         "sum over the batch axis 0"),
        (lambda d, xh, g, b, lr: (g - lr * d.sum(0), b - lr * (d * xh).sum(0)), "are swapped"),
        (lambda d, xh, g, b, lr: (b - lr * d.sum(0), g - lr * (d * xh).sum(0)),
         "(new_gamma, new_beta) in that order"),
        (lambda d, xh, g, b, lr: (g - lr * (d * xh).sum(0), b), "beta is not updated"),
        (lambda d, xh, g, b, lr: (g, b - lr * d.sum(0)), "gamma is not updated"),
        (lambda d, xh, g, b, lr: (g - 0.1 * (d * xh).sum(0), b - 0.1 * d.sum(0)),
         "use the learning rate passed as lr")]),
}
(test_checker_accepts_a_correct_answer, test_checker_reports_the_stub_as_not_attempted,
 test_checker_reports_a_missing_return, test_checker_names_the_mistake) = contract(CHECKERS)


def test_unknown_mistake_gets_the_generic_hint(capsys):
    assert exercises.check_network_gamma_beta_step(lambda d, xh, g, b, lr: (g * 0, b * 0)) is False
    assert "differs from the expected one" in capsys.readouterr().out


def test_inference_layer_must_work_for_a_single_example(capsys):
    # an answer that fails only for N = 1 (returns None there) does not pass
    def no_single(x, W, g, b, m, v):
        return None if len(x) == 1 else inference_layer(x, W, g, b, m, v)
    assert exercises.check_network_inference_layer(no_single) is False
    assert "returned None" in capsys.readouterr().out


def test_hidden_layer_answer_that_hard_codes_the_shapes_fails(capsys):
    # the cases vary N, the input width and the number of units
    def fixed_shape(x, W, g, b):
        if x.shape != (8, 4):
            raise ValueError("only (8, 4)")
        return hidden_layer(x, W, g, b)
    assert exercises.check_network_hidden_layer(fixed_shape) is False
