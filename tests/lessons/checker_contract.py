"""What every exercise checker must do, as tests a lesson's test module takes in one line.

A module defines ``CHECKERS = {name: (checker, correct_answer, [(wrong_answer, hint), ...])}``
and writes ``test_accepts, test_stub, test_no_return, test_mistakes = contract(CHECKERS)``;
pytest collects the four as that module's tests. Each wrong answer is written in the test
module, independently of the checker's own list of mistakes: a named function, or a lambda,
whose test id is then its hint (``train-train_ddof1``, ``odds-upside down``).
"""
from __future__ import annotations

import pytest

from bnlib.course import checks


def _placeholder(*args):
    raise NotImplementedError("replace with your code")


def _mistake_id(name: str, wrong, hint: str) -> str:
    """The test id of a wrong answer: its function's name, or its hint for a lambda."""
    return f"{name}-{hint if wrong.__name__ == '<lambda>' else wrong.__name__}"


def contract(checkers: dict) -> tuple:
    """The four contract tests over ``checkers`` (see the module docstring)."""
    mistakes = [(name, wrong, hint) for name, (_, _, wrongs) in checkers.items()
                for wrong, hint in wrongs]

    @pytest.mark.parametrize("name", checkers)
    def test_checker_accepts_a_correct_answer(name, capsys):
        checker, correct, _ = checkers[name]
        assert checker(correct) is True
        assert "passed" in capsys.readouterr().out

    @pytest.mark.parametrize("name", checkers)
    def test_checker_reports_the_stub_as_not_attempted(name, capsys):
        assert checkers[name][0](_placeholder) is None
        assert checks.NOT_ATTEMPTED in capsys.readouterr().out

    @pytest.mark.parametrize("name", checkers)
    def test_checker_reports_a_missing_return(name, capsys):
        assert checkers[name][0](lambda *args: None) is False
        assert "returned None (is a return statement missing?)" in capsys.readouterr().out

    @pytest.mark.parametrize("name,wrong,hint", mistakes,
                             ids=[_mistake_id(*mistake) for mistake in mistakes])
    def test_checker_names_the_mistake(name, wrong, hint, capsys):
        assert checkers[name][0](wrong) is False
        assert hint in capsys.readouterr().out

    return (test_checker_accepts_a_correct_answer, test_checker_reports_the_stub_as_not_attempted,
            test_checker_reports_a_missing_return, test_checker_names_the_mistake)
