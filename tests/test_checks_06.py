"""Lesson 06's exercise checkers: each accepts a correct answer and names each mistake."""
from __future__ import annotations

import numpy as np
import pytest

from bnlib import checks


def _correct_odds(p, n_source, n_target):
    return p / (1 - p) * n_source / n_target


def _correct_line(x, y, w):
    # Scale rows by sqrt(w), then ordinary least squares: an independent route.
    s = np.sqrt(w)
    design = np.stack([x, np.ones_like(x)], axis=1) * s[:, None]
    return tuple(np.linalg.lstsq(design, y * s, rcond=None)[0])


def _line(x, y, w, transform=lambda w: w):
    return _correct_line(x, y, transform(w))


def test_odds_weights_accepts_correct(capsys):
    assert checks.check_odds_weights(_correct_odds) is True
    assert "passed" in capsys.readouterr().out


def test_odds_weights_not_attempted(capsys):
    assert checks.check_odds_weights(lambda p, ns, nt: None) is None
    assert checks.NOT_ATTEMPTED in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda p, ns, nt: p / (1 - p), "multiply by n_source / n_target"),
    (lambda p, ns, nt: p / (1 - p) * nt / ns, "upside down"),
    (lambda p, ns, nt: (1 - p) / p * ns / nt, "that is P_S / P_T"),
    (lambda p, ns, nt: p * ns / nt, "not the probability p itself"),
])
def test_odds_weights_names_mistakes(wrong, hint, capsys):
    assert checks.check_odds_weights(wrong) is False
    assert hint in capsys.readouterr().out


def test_weighted_line_accepts_correct(capsys):
    assert checks.check_weighted_line(_correct_line) is True
    assert "passed" in capsys.readouterr().out


def test_weighted_line_not_attempted(capsys):
    assert checks.check_weighted_line(lambda x, y, w: None) is None
    assert checks.NOT_ATTEMPTED in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, y, w: _line(x, y, w, np.ones_like), "the weights are ignored"),
    (lambda x, y, w: _line(x, y, w, np.square), "you weighted twice"),
    (lambda x, y, w: _line(x, y, w, np.reciprocal), "the weights are inverted"),
    (lambda x, y, w: _correct_line(x, y, w)[::-1], "(slope, intercept) in that order"),
])
def test_weighted_line_names_mistakes(wrong, hint, capsys):
    assert checks.check_weighted_line(wrong) is False
    assert hint in capsys.readouterr().out


def test_weighted_line_generic_failure(capsys):
    assert checks.check_weighted_line(lambda x, y, w: (0.0, 0.0)) is False
    assert "differs from the expected" in capsys.readouterr().out
