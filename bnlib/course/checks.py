"""Checked claims and exercise checkers.

The check framework; each lesson's exercise checkers live in its own
``bnlib.lessons.lessonNN.exercises`` module and are built on it.

* Claims: :func:`assert_close` and :func:`assert_true` print the number a
  lesson relies on and raise ``AssertionError`` if it is wrong, so no claim
  is judged by eye. Round-off-sized differences are printed in one fixed
  format, ``= 3.6e-15 (tolerance 1e-07) ✓``, whose value nbval's sanitize
  file masks (it may differ in the last digits on another CPU).
* Exercises: :func:`check_exercise` runs a learner's function on cases,
  compares with a reference, and when the answer is wrong, tries the
  common mistakes to print a specific hint. An answer that is still the
  placeholder (returns None or raises NotImplementedError on the first
  case) prints "not attempted yet" and does not fail the notebook; None on
  a later case is a wrong answer.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = ["max_abs_diff", "assert_close", "assert_below", "assert_true", "check_exercise",
           "NOT_ATTEMPTED"]

NOT_ATTEMPTED = "not attempted yet"

def max_abs_diff(a, b) -> float:
    """Largest absolute elementwise difference between two arrays of the same shape."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0

def assert_close(name: str, a, b, tol: float) -> float:
    """Print ``max |a - b|`` against ``tol`` and assert it is within.

    Returns the difference, so a lesson can use it further.
    """
    diff = max_abs_diff(a, b)
    return assert_below(name, diff, tol)

def assert_below(name: str, value: float, tol: float) -> float:
    """Print a small non-negative quantity (an error) against its bound and assert it."""
    ok = bool(value <= tol)
    print(f"{name} = {value:.1e} (tolerance {tol:.0e}) {'✓' if ok else '✗'}")
    if not ok:
        raise AssertionError(f"{name} = {value:.3e} exceeds the tolerance {tol:.0e}")
    return value

def assert_true(claim: str, condition: bool, detail: str = "") -> None:
    """Print a claim with the numbers behind it and assert that it holds."""
    ok = bool(condition)
    print(f"{claim}{': ' + detail if detail else ''} {'✓' if ok else '✗'}")
    if not ok:
        raise AssertionError(f"claim failed: {claim} ({detail})")

def _same(a, b, tol: float) -> bool:
    if a is None or b is None:
        return False
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.allclose(a, b, rtol=tol, atol=tol)

def _copies(case):
    return [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in case]

def _as_tuple(outputs):
    return outputs if isinstance(outputs, tuple) else (outputs,)

def _matches(answer_out, expected_out, tol: float) -> bool:
    answer_out, expected_out = _as_tuple(answer_out), _as_tuple(expected_out)
    return len(answer_out) == len(expected_out) and all(
        _same(a, e, tol) for a, e in zip(answer_out, expected_out))

def check_exercise(name: str, answer: Callable, reference: Callable,
                   cases: Iterable[Sequence], mistakes: Sequence[tuple[Callable, str]] = (),
                   tol: float = 1e-6) -> bool | None:
    """Check a learner's function against a reference and print the verdict.

    Parameters
    ----------
    name : str
        Shown in the verdict.
    answer : callable
        The learner's function. If it returns None or raises
        NotImplementedError on the first case, the exercise counts as not attempted;
        None on a later case is a wrong answer ("your function returned None").
    reference : callable
        A correct implementation with the same signature.
    cases : iterable of argument tuples
        Each is passed as ``answer(*case)``; inputs are copied first.
    mistakes : sequence of (callable, hint)
        Wrong implementations of common mistakes; if the answer agrees with
        one of them on a failing case, its hint is printed.
    tol : float
        Absolute and relative tolerance of the comparison.

    Returns
    -------
    True if every case passed, False if one failed, None if not attempted.
    """
    for i, case in enumerate(cases):
        args = _copies(case)
        try:
            got = answer(*_copies(args))  # the learner's own copies: in-place edits are harmless
        except NotImplementedError:
            if i == 0:  # the placeholder
                print(f"{name}: {NOT_ATTEMPTED}")
                return None
            print(f"{name}: not yet. On case {i + 1} your function raised NotImplementedError.")
            return False
        except Exception as exc:  # the learner's code raised: report it as a hint
            print(f"{name}: your function raised {type(exc).__name__}: {exc}")
            return False
        if got is None and i == 0:  # the placeholder
            print(f"{name}: {NOT_ATTEMPTED}")
            return None
        if got is None:  # the first case was answered, so this is a wrong answer
            print(f"{name}: not yet. On case {i + 1} your function returned None "
                  f"(is a return statement missing on some path?).")
            return False
        expected = reference(*args)
        if _matches(got, expected, tol):
            continue
        for wrong, hint in mistakes:
            if _matches(got, wrong(*args), tol):
                print(f"{name}: not yet. Hint: {hint}")
                return False
        print(f"{name}: not yet. On case {i + 1} your result differs from the expected one "
              f"(check shapes and the formula step by step).")
        return False
    print(f"{name}: passed on every case ✓")
    return True
