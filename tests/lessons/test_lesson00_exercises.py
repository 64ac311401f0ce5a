"""Lesson 00's exercise checker: accepts a correct answer, names each mistake, spots the stub."""
from __future__ import annotations

import numpy as np
import pytest

from bnlib.course import checks
from bnlib.lessons.lesson00 import exercises


def _placeholder(*args):
    """The placeholder a lesson hands out."""
    raise NotImplementedError("replace with your code")


def _run(answer, capsys):
    result = exercises.check_standardize_column(answer)
    return result, capsys.readouterr().out


def test_accepts_a_correct_answer(capsys):
    result, out = _run(lambda x: (x - np.mean(x)) / np.sqrt(np.mean((x - np.mean(x)) ** 2)),
                       capsys)
    assert result is True and "passed" in out


def test_the_placeholder_is_not_attempted(capsys):
    result, out = _run(_placeholder, capsys)
    assert result is None and checks.NOT_ATTEMPTED in out


@pytest.mark.parametrize("answer, hint", [
    (lambda x: (x - x.mean()) / x.std(ddof=1), "population standard deviation (N)"),
    (lambda x: x - x.mean(), "also divide by the std"),
    (lambda x: x / x.std(), "subtract the mean before dividing"),
    (lambda x: (x - np.mean(x)) / np.mean((x - np.mean(x)) ** 2), "not by the variance"),
])
def test_names_each_mistake(answer, hint, capsys):
    result, out = _run(answer, capsys)
    assert result is False and hint in out


def test_an_unknown_mistake_gets_the_generic_message(capsys):
    result, out = _run(lambda x: (x - x.mean()) / (2 * x.std()), capsys)
    assert result is False and "differs from the expected one" in out


def test_a_forgotten_return_is_named(capsys):
    def no_return(x):
        (x - x.mean()) / x.std()
    result, out = _run(no_return, capsys)
    assert result is False and "returned None" in out


def test_a_string_answer_is_told_what_was_expected(capsys):
    result, out = _run(lambda x: "standardized", capsys)
    assert result is False and "returned a str" in out and "expected an array" in out
