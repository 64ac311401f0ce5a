"""Checked claims and exercise checkers.

Two kinds of helpers live here.

* Claims: :func:`assert_close` and :func:`assert_true` print the number a
  lesson relies on and raise ``AssertionError`` if it is wrong, so no claim
  is judged by eye. Round-off-sized differences are printed in one fixed
  format, ``= 3.6e-15 (tolerance 1e-07) ✓``, whose value nbval's sanitize
  file masks (it may differ in the last digits on another CPU).
* Exercises: :func:`check_exercise` runs a learner's function on cases,
  compares with a reference, and when the answer is wrong, tries the
  common mistakes to print a specific hint. An answer that is still the
  placeholder (returns None or raises NotImplementedError) prints
  "not attempted yet" and does not fail the notebook.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

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
        NotImplementedError on the first case, the exercise counts as not attempted.
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
        args = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in case]
        try:
            got = answer(*[np.array(a, copy=True) if isinstance(a, np.ndarray) else a
                           for a in args])
        except NotImplementedError:
            got = None
        except Exception as exc:  # the learner's code raised: report it as a hint
            print(f"{name}: your function raised {type(exc).__name__}: {exc}")
            return False
        if got is None and i == 0:
            print(f"{name}: {NOT_ATTEMPTED}")
            return None
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


# Exercise checkers, one section per lesson. Each wraps check_exercise with a
# reference, test cases and the common mistakes it recognizes.

# ----- Lesson 00 -----

def check_standardize_column(answer: Callable) -> bool | None:
    """Exercise 00: standardize a 1-D array with the population standard deviation."""
    rng = np.random.default_rng(1)
    cases = [(rng.normal(3.0, 2.0, size=50),), (np.arange(10.0),)]
    return check_exercise(
        "standardize_column", answer, lambda x: (x - x.mean()) / x.std(), cases,
        mistakes=[(lambda x: (x - x.mean()) / x.std(ddof=1),
                   "divide by the population standard deviation (N), not the sample one (N - 1)"),
                  (lambda x: x - x.mean(), "after subtracting the mean, also divide by the std"),
                  (lambda x: x / x.std(), "subtract the mean before dividing")])

# ----- Lessons 01 and 02 -----


# ----- Lessons 03 and 04 -----


# ----- Lessons 05 and 06 -----


# Lesson 06

def check_odds_weights(answer: Callable) -> bool | None:
    """Exercise 06.1: importance weights from a source-vs-target classifier's P(target | x).

    ``answer(p_target, n_source, n_target)`` must return the density ratio
    P_T(x) / P_S(x) = p / (1 - p) * n_source / n_target.
    """
    rng = np.random.default_rng(6)
    cases = [(rng.uniform(0.05, 0.95, size=20), 300, 100),
             (rng.uniform(0.01, 0.6, size=15), 50, 200)]
    return check_exercise(
        "odds_weights", answer, lambda p, ns, nt: p / (1 - p) * ns / nt, cases,
        mistakes=[(lambda p, ns, nt: p / (1 - p),
                   "the odds still contain the sample sizes: multiply by n_source / n_target"),
                  (lambda p, ns, nt: p / (1 - p) * nt / ns,
                   "the size correction is upside down: multiply by n_source / n_target"),
                  (lambda p, ns, nt: (1 - p) / p * ns / nt,
                   "that is P_S / P_T: the weight of a source point grows with P(target | x)"),
                  (lambda p, ns, nt: p * ns / nt,
                   "use the odds p / (1 - p), not the probability p itself")])


def check_weighted_line(answer: Callable) -> bool | None:
    """Exercise 06.2: weighted least-squares line, returning (slope, intercept)."""
    rng = np.random.default_rng(7)
    cases = []
    for n in (30, 12):
        x = rng.normal(size=n)
        y = np.sin(2 * x) + 0.5 * x + 0.1 * rng.normal(size=n)
        cases.append((x, y, rng.uniform(0.1, 5.0, size=n)))

    def solve(x, y, w):
        a = np.stack([x, np.ones_like(x)], axis=1)
        return np.linalg.solve(a.T @ (w[:, None] * a), a.T @ (w * y))

    def as_array(x, y, w):  # a tuple (slope, intercept) and an array compare alike
        out = answer(x, y, w)
        return None if out is None else np.asarray(out, dtype=np.float64)

    return check_exercise(
        "weighted_line", as_array, solve, cases,
        mistakes=[(lambda x, y, w: solve(x, y, np.ones_like(w)),
                   "the weights are ignored: each squared error must be multiplied by its w"),
                  (lambda x, y, w: solve(x, y, w * w),
                   "you weighted twice: scaling the rows of the design matrix and y by w "
                   "squares it; scale them by sqrt(w)"),
                  (lambda x, y, w: solve(x, y, 1.0 / w),
                   "the weights are inverted: multiply each squared error by w, do not divide by it"),
                  (lambda x, y, w: solve(x, y, w)[::-1],
                   "return (slope, intercept) in that order")])


def _steps_along_gradient(loss, grad, theta, lr, multipliers, sign=-1.0, use_lr=True,
                          with_start=True, norm_of_change=True):
    g = grad(theta)
    points = [theta + sign * k * (lr if use_lr else 1.0) * g for k in multipliers]
    losses = ([loss(theta)] if with_start else []) + [loss(p) for p in points]
    if norm_of_change:
        changes = [np.linalg.norm(grad(p) - g) for p in points]
    else:
        changes = [abs(np.linalg.norm(grad(p)) - np.linalg.norm(g)) for p in points]
    return float(np.ptp(losses)), float(max(changes))


def check_gradient_steps(answer: Callable) -> bool | None:
    """Exercise 06.3: loss range and largest gradient change along the negative gradient.

    ``answer(loss, grad, theta, lr, multipliers)`` must return
    ``(loss_range, grad_change)``: the max minus min of the loss over theta and
    every theta - k * lr * grad(theta), and the largest
    ||grad(theta - k * lr * g) - grad(theta)||.
    """
    stiff = np.array([1.0, 10.0])
    cases = [(lambda t: 0.5 * float(np.sum(stiff * t * t)), lambda t: stiff * t,
              np.array([1.0, 1.0]), 0.05, (0.5, 1.0, 2.0, 4.0)),
             (lambda t: float(np.sum(np.log(np.cosh(3 * t)))), lambda t: 3 * np.tanh(3 * t),
              np.array([0.4, -0.2, 0.1]), 0.1, (0.5, 1.0, 2.0))]
    return check_exercise(
        "gradient_steps", answer, _steps_along_gradient, cases,
        mistakes=[(lambda *a: _steps_along_gradient(*a, with_start=False),
                   "include the starting point (k = 0) in the loss range"),
                  (lambda *a: _steps_along_gradient(*a, sign=1.0),
                   "step against the gradient: theta - k * lr * g, not plus"),
                  (lambda *a: _steps_along_gradient(*a, use_lr=False),
                   "each step is k times the learning rate times g: multiply by lr too"),
                  (lambda *a: _steps_along_gradient(*a, norm_of_change=False),
                   "measure the norm of the difference ||g_k - g||, not the difference "
                   "of the norms")])


# ----- Lessons 07 and 08 -----
