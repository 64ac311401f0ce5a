"""Lesson 08's exercise checkers pass correct answers and name each mistake."""
from __future__ import annotations
import numpy as np
import pytest
from bnlib.course import checks
from bnlib.lessons.lesson08 import exercises


def _placeholder(*args):
    """The placeholder a lesson hands out."""
    raise NotImplementedError("replace with your code")


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
    assert exercises.check_layer_norm(wrong) is False
    assert hint in capsys.readouterr().out


def test_layer_norm_accepts_correct_and_stub(capsys):
    assert exercises.check_layer_norm(_ln_ok) is True
    assert exercises.check_layer_norm(_placeholder) is None
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
    assert exercises.check_group_norm(_gn) is True
    assert exercises.check_group_norm(
        lambda x, g, b, groups, eps: layernorm.group_norm_forward(x, g, b, groups, eps)[0]) is True
    assert exercises.check_group_norm(_placeholder) is None
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
    assert exercises.check_group_norm(wrong) is False
    assert hint in capsys.readouterr().out
