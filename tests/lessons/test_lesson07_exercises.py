"""Lesson 07's exercise checkers pass correct answers and name each mistake."""
from __future__ import annotations
import numpy as np
import pytest
from bnlib.course import checks
from bnlib.lessons.lesson07 import exercises


def _placeholder(*args):
    """The placeholder a lesson hands out."""
    raise NotImplementedError("replace with your code")


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
    assert exercises.check_fold_bn(_fold_ok) is True
    assert "passed" in capsys.readouterr().out


def test_fold_bn_not_attempted(capsys):
    assert exercises.check_fold_bn(_placeholder) is None
    assert checks.NOT_ATTEMPTED in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (_fold_eps_outside, "inside the square root"),
    (_fold_by_var, "not by the variance"),
    (_fold_no_mean, "subtract the moving mean"),
    (_fold_no_beta, "add β"),
])
def test_fold_bn_names_mistake(capsys, wrong, hint):
    assert exercises.check_fold_bn(wrong) is False
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
    assert exercises.check_keras_moving_update(wrong) is False
    assert hint in capsys.readouterr().out


def test_moving_update_accepts_correct_and_stub(capsys):
    assert exercises.check_keras_moving_update(_mov_ok) is True
    assert exercises.check_keras_moving_update(_placeholder) is None
    out = capsys.readouterr().out
    assert "passed" in out and checks.NOT_ATTEMPTED in out
