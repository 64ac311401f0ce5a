"""Lessons 07 and 08 checkers: each accepts a correct answer and names each mistake it knows."""
from __future__ import annotations

import numpy as np
import pytest

from bnlib import checks


def _fold_ok(W, b, g, be, mu, var, eps):
    s = g / np.sqrt(var + eps)
    return W * s, (b - mu) * s + be


def _fold_eps_outside(W, b, g, be, mu, var, eps):
    s = g / (np.sqrt(var) + eps)
    return W * s, (b - mu) * s + be


def _fold_by_var(W, b, g, be, mu, var, eps):
    s = g / (var + eps)
    return W * s, (b - mu) * s + be


def _fold_no_mean(W, b, g, be, mu, var, eps):
    s = g / np.sqrt(var + eps)
    return W * s, b * s + be


def _fold_no_beta(W, b, g, be, mu, var, eps):
    s = g / np.sqrt(var + eps)
    return W * s, (b - mu) * s


def test_fold_bn_accepts_correct(capsys):
    assert checks.check_fold_bn(_fold_ok) is True
    assert "passed" in capsys.readouterr().out


def test_fold_bn_not_attempted(capsys):
    assert checks.check_fold_bn(lambda *a: None) is None
    assert checks.NOT_ATTEMPTED in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (_fold_eps_outside, "inside the square root"),
    (_fold_by_var, "not by the variance"),
    (_fold_no_mean, "subtract the moving mean"),
    (_fold_no_beta, "add β"),
])
def test_fold_bn_names_mistake(capsys, wrong, hint):
    assert checks.check_fold_bn(wrong) is False
    assert hint in capsys.readouterr().out


def _mov_ok(mm, mv, x, m):
    return m * mm + (1 - m) * x.mean(0), m * mv + (1 - m) * x.var(0)


@pytest.mark.parametrize("wrong, hint", [
    (lambda mm, mv, x, m: _mov_ok(mm, mv, x, 1 - m), "weights the OLD value"),
    (lambda mm, mv, x, m: (m * mm + (1 - m) * x.mean(0), m * mv + (1 - m) * x.var(0, ddof=1)),
     "biased batch variance"),
    (lambda mm, mv, x, m: (m * mm + (1 - m) * x.mean(0), m * mv + (1 - m) * x.std(0)),
     "not the standard deviation"),
    (lambda mm, mv, x, m: (m * mm + (1 - m) * x.mean(), m * mv + (1 - m) * x.var()),
     "per feature"),
])
def test_moving_update_names_mistake(capsys, wrong, hint):
    assert checks.check_keras_moving_update(wrong) is False
    assert hint in capsys.readouterr().out


def test_moving_update_accepts_correct_and_stub(capsys):
    assert checks.check_keras_moving_update(_mov_ok) is True
    assert checks.check_keras_moving_update(lambda *a: None) is None
    out = capsys.readouterr().out
    assert "passed" in out and checks.NOT_ATTEMPTED in out


def _ln_ok(x, g, b, eps):
    return g * (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + eps) + b


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, g, b, eps: g * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + b, "that is batch norm"),
    (lambda x, g, b, eps: g * (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + eps) + b,
     "inside the square root"),
    (lambda x, g, b, eps: g * (x - x.mean(1, keepdims=True))
     / np.sqrt(x.var(1, ddof=1, keepdims=True) + eps) + b, "biased variance"),
    (lambda x, g, b, eps: _ln_ok(x, 1.0, 0.0, eps), "γ · x̂ + β"),
])
def test_layer_norm_names_mistake(capsys, wrong, hint):
    assert checks.check_layer_norm(wrong) is False
    assert hint in capsys.readouterr().out


def test_layer_norm_accepts_correct_and_stub(capsys):
    assert checks.check_layer_norm(_ln_ok) is True
    assert checks.check_layer_norm(lambda *a: None) is None
    out = capsys.readouterr().out
    assert "passed" in out and checks.NOT_ATTEMPTED in out


def _gn(x, g, b, groups, eps, strided=False):
    n, c = x.shape
    shape = (n, c // groups, groups) if strided else (n, groups, c // groups)
    axis = 1 if strided else 2
    xg = x.reshape(shape)
    x_hat = (xg - xg.mean(axis, keepdims=True)) / np.sqrt(xg.var(axis, keepdims=True) + eps)
    return g * x_hat.reshape(n, c) + b


def test_group_norm_accepts_correct_and_bnlib(capsys):
    from bnlib import layernorm
    assert checks.check_group_norm(_gn) is True
    assert checks.check_group_norm(
        lambda x, g, b, groups, eps: layernorm.group_norm_forward(x, g, b, groups, eps)[0]) is True
    assert checks.check_group_norm(lambda *a: None) is None
    assert checks.NOT_ATTEMPTED in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, g, b, groups, eps: _gn(x, g, b, groups, eps, strided=True), "consecutive channels"),
    (lambda x, g, b, groups, eps: _gn(x, g, b, 1, eps), "per group"),
    (lambda x, g, b, groups, eps: (lambda n, c: g * ((x.reshape(n, groups, -1) - x.reshape(
        n, groups, -1).mean(2, keepdims=True)) / (x.reshape(n, groups, -1).std(2, keepdims=True)
                                                   + eps)).reshape(n, c) + b)(*x.shape),
     "inside the square root"),
])
def test_group_norm_names_mistake(capsys, wrong, hint):
    assert checks.check_group_norm(wrong) is False
    assert hint in capsys.readouterr().out
