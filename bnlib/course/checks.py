"""Checked claims and exercise checkers.

The check framework; each lesson's exercise checkers live in its own
``bnlib.lessons.lessonNN.exercises`` module and are built on it.

* Claims: :func:`assert_close`, :func:`assert_below` and :func:`assert_true`
  print the claim a lesson relies on and raise ``AssertionError`` if it is
  wrong, so no claim is judged by eye. A round-off-sized difference is
  printed as its bound, ``below 1e-07 ✓``: its own digits differ from one CPU
  to the next, and a lesson's committed output must not. A quantity that is
  a lesson's number (a statistic, not round-off) is printed with ``show``, a
  format precise enough to teach and coarse enough to be the same everywhere.
* Exercises: :func:`check_exercise` runs a learner's function on cases,
  compares with a reference, and when the answer is wrong, tries the
  common mistakes to print a specific hint. The placeholder a lesson hands
  out raises ``NotImplementedError``: on the first case that prints "not
  attempted yet" and does not fail the notebook. An answer that returns
  None (a forgotten ``return``) or something of the wrong kind is told so.
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

def assert_close(name: str, a, b, tol: float, show: str | None = None) -> float:
    """Print ``max |a - b|`` against ``tol`` and assert it is within.

    ``show`` as in :func:`assert_below`. Returns the difference, so a lesson
    can use it further.
    """
    diff = max_abs_diff(a, b)
    return assert_below(name, diff, tol, show)

def assert_below(name: str, value: float, tol: float, show: str | None = None) -> float:
    """Print a non-negative quantity against its bound and assert it is within.

    Parameters
    ----------
    name : str
        What the quantity is, as the lesson's output shows it.
    value, tol : float
        The quantity and its bound.
    show : str, optional
        A format spec (``".2f"``, ``".1e"``) to print the value itself: for a
        lesson's number, rounded so that round-off cannot change it. Without
        it only the bound is printed (``name below 1e-07 ✓``), as for
        round-off, whose digits differ between CPUs.
    """
    ok = bool(value <= tol)
    mark = "✓" if ok else "✗"
    if show is None:
        print(f"{name} below {tol:.0e} {mark}" if ok else f"{name} = {value:.1e} {mark}")
    else:
        print(f"{name} = {value:{show}} (bound {tol:g}) {mark}")
    if not ok:
        raise AssertionError(f"{name} = {value:.3e} exceeds the tolerance {tol:.0e}")
    return value

def assert_true(claim: str, condition: bool, detail: str = "") -> None:
    """Print a claim with the numbers behind it and assert that it holds."""
    ok = bool(condition)
    print(f"{claim}{': ' + detail if detail else ''} {'✓' if ok else '✗'}")
    if not ok:
        raise AssertionError(f"claim failed: {claim} ({detail})")

def _numeric(x) -> np.ndarray | None:
    """``x`` as a float64 array, or None if it is not numbers (a string, a dict, a generator)."""
    if x is None or isinstance(x, (str, bytes, dict)):
        return None
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        return None

def _same(a, b, tol: float) -> bool:
    a, b = _numeric(a), _numeric(b)
    return (a is not None and b is not None and a.shape == b.shape
            and np.allclose(a, b, rtol=tol, atol=tol))

def _copies(case):
    return [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in case]

def _as_tuple(outputs):
    return outputs if isinstance(outputs, tuple) else (outputs,)

def _shaped_like(got, expected):
    """The answer in the expected form: a list of the right length counts as a tuple."""
    if isinstance(expected, tuple) and isinstance(got, list) and len(got) == len(expected):
        return tuple(got)
    return got

def _describe(x) -> str:
    """What a value is, in a learner's words: "an array of shape (4, 3)", "a tuple of 2 values"."""
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of {len(x)} values"
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape}"
    if isinstance(x, (int, float, np.number)) and not isinstance(x, bool):
        return "a number"
    return f"a {type(x).__name__}"

def _wrong_kind(got, expected) -> bool:
    """True if ``got`` cannot be compared with ``expected`` at all (not the values: the form)."""
    if isinstance(expected, tuple):
        return not isinstance(got, tuple) or len(got) != len(expected) or any(
            _numeric(g) is None for g in got)
    return isinstance(got, tuple) or _numeric(got) is None

def _matches(answer_out, expected_out, tol: float) -> bool:
    answer_out = _as_tuple(_shaped_like(answer_out, expected_out))
    expected_out = _as_tuple(expected_out)
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
        The learner's function. If it raises NotImplementedError on the first
        case (the placeholder does), the exercise counts as not attempted.
        Returning None, or a value of another kind than the reference's (a
        string, a dict, a tuple of the wrong length), is a wrong answer and
        the verdict says what was expected; a list where a tuple is expected
        is accepted.
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
        expected = reference(*args)
        if got is None:
            print(f"{name}: not yet. On case {i + 1} your function returned None "
                  f"(is a return statement missing?); expected {_describe(expected)}.")
            return False
        got = _shaped_like(got, expected)
        if _wrong_kind(got, expected):
            print(f"{name}: not yet. On case {i + 1} your function returned {_describe(got)}; "
                  f"expected {_describe(expected)}.")
            return False
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
