"""Lesson 08's exercise checkers accept a correct answer (also bnlib's, and lists), report the
stub and a missing return, and name each mistake (the contract,
tests/lessons/checker_contract.py); their cases vary every setting.

Every wrong answer below is written out here, independently of the checkers' own
mistake functions, the way a learner might write it.
"""
from __future__ import annotations

import numpy as np

from bnlib import layernorm
from bnlib.lessons.lesson08 import exercises

from checker_contract import contract  # tests/lessons/: every checker's tests


# ---------------------------------------------------------------- layer norm

def _ln(x, g, b, eps, *, axis=1, ddof=0):
    mean = x.mean(axis, keepdims=True)
    return g * (x - mean) / np.sqrt(x.var(axis, ddof=ddof, keepdims=True) + eps) + b


LAYER_NORM_MISTAKES = [
    (lambda x, g, b, eps: _ln(x, g, b, eps, axis=0), "that is batch norm"),
    (lambda x, g, b, eps: g * (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + eps) + b,
     "inside the square root"),
    (lambda x, g, b, eps: g * (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True) + b,
     "ε is missing"),
    (lambda x, g, b, eps: _ln(x, g, b, eps, ddof=1), "biased variance"),
    (lambda x, g, b, eps: _ln(x, 1.0, 0.0, eps), "γ · x̂ + β"),
    (lambda x, g, b, eps: _ln(x, g, 0.0, eps), "β is missing"),
    (lambda x, g, b, eps: g * _ln(x, 1.0, 0.0, eps), "β is missing"),
    (lambda x, g, b, eps: _ln(x, 1.0, 0.0, eps) + b, "γ is missing"),
    (lambda x, g, b, eps: _ln(x, g, b, 1e-3), "use the eps argument"),
    (lambda x, g, b, eps: _ln(x, g, b, 1e-5), "use the eps argument"),
]


def test_layer_norm_accepts_bnlib_and_lists(capsys):
    assert exercises.check_layer_norm(
        lambda x, g, b, eps: layernorm.layer_norm_forward(x, g, b, eps)[0]) is True
    assert exercises.check_layer_norm(lambda x, g, b, eps: _ln(x, g, b, eps).tolist()) is True
    assert capsys.readouterr().out.count("passed") == 2


def test_layer_norm_cases_vary_every_setting():
    cases = exercises._layer_norm_cases()
    assert len({x.shape for x, *_ in cases}) == len(cases)
    assert any(x.shape[0] == 1 for x, *_ in cases), "N = 1 must work for layer norm"
    assert len({eps for *_, eps in cases}) == len(cases)
    assert any(not np.allclose(g, 1) for _, g, _, _ in cases)
    assert any(not np.allclose(b, 0) for _, _, b, _ in cases)


# ---------------------------------------------------------------- group norm

def _gn(x, g, b, groups, eps, *, strided=False, ddof=0):
    n, c = x.shape
    shape = (n, c // groups, groups) if strided else (n, groups, c // groups)
    axis = 1 if strided else 2
    xg = x.reshape(shape)
    x_hat = (xg - xg.mean(axis, keepdims=True)) / np.sqrt(xg.var(axis, ddof=ddof, keepdims=True)
                                                          + eps)
    return g * x_hat.reshape(n, c) + b


def _gn_group_size(x, g, b, groups, eps):
    """Reads ``groups`` as the number of channels per group."""
    n, c = x.shape
    blocks = [x[:, i:i + groups] for i in range(0, c, groups)]
    out = np.concatenate([(blk - blk.mean(1, keepdims=True))
                          / np.sqrt(blk.var(1, keepdims=True) + eps) for blk in blocks], axis=1)
    return g * out + b


def _gn_eps_outside(x, g, b, groups, eps):
    n, c = x.shape
    xg = x.reshape(n, groups, -1)
    x_hat = (xg - xg.mean(2, keepdims=True)) / (xg.std(2, keepdims=True) + eps)
    return g * x_hat.reshape(n, c) + b


def test_group_norm_accepts_bnlib_and_lists(capsys):
    assert exercises.check_group_norm(
        lambda x, g, b, groups, eps: layernorm.group_norm_forward(x, g, b, groups, eps)[0]) is True
    assert exercises.check_group_norm(
        lambda x, g, b, groups, eps: _gn(x, g, b, groups, eps).tolist()) is True
    assert capsys.readouterr().out.count("passed") == 2


CHECKERS = {
    "layer_norm": (exercises.check_layer_norm, _ln, LAYER_NORM_MISTAKES),
    "group_norm": (exercises.check_group_norm, _gn, [
        (lambda x, g, b, groups, eps: _gn(x, g, b, groups, eps, strided=True),
         "consecutive channels"),
        (_gn_group_size, "not their size"),
        (lambda x, g, b, groups, eps: _gn(x, g, b, 1, eps), "per group"),
        (_gn_eps_outside, "inside the square root"),
        (lambda x, g, b, groups, eps: _gn(x, g, b, groups, eps, ddof=1), "biased variance"),
        (lambda x, g, b, groups, eps: _gn(x, np.ones_like(g), np.zeros_like(b), groups, eps),
         "γ · x̂ + β"),
        (lambda x, g, b, groups, eps: _gn(x, g, b, 2, eps), "use the groups argument"),
        (lambda x, g, b, groups, eps: _gn(x, g, b, groups, 1e-3), "use the eps argument"),
        (lambda x, g, b, groups, eps: _gn(x, g, b, groups, 1e-5), "use the eps argument")]),
}
(test_checker_accepts_a_correct_answer, test_checker_reports_the_stub_as_not_attempted,
 test_checker_reports_a_missing_return, test_checker_names_the_mistake) = contract(CHECKERS)


def test_group_norm_cases_vary_every_setting():
    cases = exercises._group_norm_cases()
    assert len({x.shape for x, *_ in cases}) == len(cases)
    assert any(x.shape[0] == 1 for x, *_ in cases)
    assert len({c[3] for c in cases}) == len(cases) and len({c[4] for c in cases}) == len(cases)
    assert all(groups != x.shape[1] // groups for x, _, _, groups, _ in cases)
