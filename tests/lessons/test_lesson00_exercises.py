"""Lesson 00's exercise checker: accepts a correct answer, names each mistake, spots the stub
and a missing return (the contract, tests/lessons/checker_contract.py), and tells a generic
or wrong-kind answer what went wrong.

The answers below are written independently of the checker, with NumPy.
"""
from __future__ import annotations

import numpy as np

from bnlib.lessons.lesson00 import exercises

from checker_contract import contract  # tests/lessons/: every checker's tests


def standardize_ok(x):
    return (x - np.mean(x)) / np.sqrt(np.mean((x - np.mean(x)) ** 2))


CHECKERS = {
    "standardize": (exercises.check_standardize_column, standardize_ok, [
        (lambda x: (x - x.mean()) / x.std(ddof=1), "population standard deviation (N)"),
        (lambda x: x - x.mean(), "also divide by the std"),
        (lambda x: x / x.std(), "subtract the mean before dividing"),
        (lambda x: (x - np.mean(x)) / np.mean((x - np.mean(x)) ** 2), "not by the variance")]),
}
(test_checker_accepts_a_correct_answer, test_checker_reports_the_stub_as_not_attempted,
 test_checker_reports_a_missing_return, test_checker_names_the_mistake) = contract(CHECKERS)


def test_an_unknown_mistake_gets_the_generic_message(capsys):
    assert exercises.check_standardize_column(lambda x: (x - x.mean()) / (2 * x.std())) is False
    assert "differs from the expected one" in capsys.readouterr().out


def test_a_string_answer_is_told_what_was_expected(capsys):
    assert exercises.check_standardize_column(lambda x: "standardized") is False
    out = capsys.readouterr().out
    assert "returned a str" in out and "expected an array" in out
