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


# ----- Lessons 07 and 08 -----

def _fold_reference(W, b, gamma, beta, moving_mean, moving_variance, eps):
    sigma = np.sqrt(moving_variance + eps)
    return W * (gamma / sigma), gamma * (b - moving_mean) / sigma + beta


def _fold_cases():
    rng = np.random.default_rng(7)
    cases = []
    for d_in, d_out, eps in ((4, 3, 1e-3), (6, 5, 0.5)):
        cases.append((rng.normal(size=(d_in, d_out)), rng.normal(size=d_out),
                      rng.uniform(0.5, 2.0, d_out), rng.normal(size=d_out),
                      rng.normal(size=d_out), rng.uniform(0.01, 0.2, d_out), eps))
    return cases


def check_fold_bn(answer: Callable) -> bool | None:
    """Exercise 07: fold an inference-mode batch norm into the dense layer before it."""
    def eps_outside(W, b, g, be, mu, var, eps):
        sigma = np.sqrt(var) + eps
        return W * (g / sigma), g * (b - mu) / sigma + be

    def by_variance(W, b, g, be, mu, var, eps):
        return W * (g / (var + eps)), g * (b - mu) / (var + eps) + be

    def bias_not_centred(W, b, g, be, mu, var, eps):
        sigma = np.sqrt(var + eps)
        return W * (g / sigma), g * b / sigma + be

    def forgot_beta(W, b, g, be, mu, var, eps):
        sigma = np.sqrt(var + eps)
        return W * (g / sigma), g * (b - mu) / sigma

    return check_exercise("fold_bn", answer, _fold_reference, _fold_cases(), mistakes=[
        (eps_outside, "ε goes inside the square root: σ = sqrt(moving_variance + ε)"),
        (by_variance, "divide by the standard deviation sqrt(moving_variance + ε), "
                      "not by the variance"),
        (bias_not_centred, "the new bias must subtract the moving mean: γ(b − μ)/σ + β"),
        (forgot_beta, "add β to the folded bias: b' = γ(b − μ)/σ + β")])


def _moving_reference(moving_mean, moving_variance, x, momentum):
    return (momentum * moving_mean + (1 - momentum) * x.mean(axis=0),
            momentum * moving_variance + (1 - momentum) * x.var(axis=0))


def check_keras_moving_update(answer: Callable) -> bool | None:
    """Exercise 07: one Keras moving-mean/variance update from a batch x of shape (N, D)."""
    rng = np.random.default_rng(8)
    cases = [(np.zeros(3), np.ones(3), rng.normal(2.0, 3.0, size=(16, 3)), 0.99),
             (rng.normal(size=4), rng.uniform(0.5, 2, 4), rng.normal(size=(8, 4)), 0.9)]

    def pytorch_weights(mm, mv, x, m):
        return _moving_reference(mm, mv, x, 1 - m)

    def unbiased(mm, mv, x, m):
        return m * mm + (1 - m) * x.mean(axis=0), m * mv + (1 - m) * x.var(axis=0, ddof=1)

    def with_std(mm, mv, x, m):
        return m * mm + (1 - m) * x.mean(axis=0), m * mv + (1 - m) * x.std(axis=0)

    def wrong_axis(mm, mv, x, m):
        return m * mm + (1 - m) * x.mean(), m * mv + (1 - m) * x.var()

    return check_exercise("keras_moving_update", answer, _moving_reference, cases, mistakes=[
        (pytorch_weights, "in Keras, momentum weights the OLD value: "
                          "new = momentum * old + (1 - momentum) * batch (PyTorch is the reverse)"),
        (unbiased, "Keras updates the moving variance with the biased batch variance "
                   "(divide by N, np.var's default), not N - 1"),
        (with_std, "smooth the batch variance, not the standard deviation"),
        (wrong_axis, "take the batch statistics per feature, over axis 0")])


def _layer_norm_reference(x, gamma, beta, eps):
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def check_layer_norm(answer: Callable) -> bool | None:
    """Exercise 08: layer norm of x of shape (N, D): statistics per example, over the features."""
    rng = np.random.default_rng(9)
    cases = [(rng.normal(3.0, 2.0, size=(6, 5)), rng.uniform(0.5, 2, 5), rng.normal(size=5), 0.5),
             (rng.normal(size=(3, 8)), np.ones(8), np.zeros(8), 1e-3)]

    def over_batch(x, g, b, eps):
        return g * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + b

    def eps_outside(x, g, b, eps):
        return g * (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + eps) + b

    def unbiased(x, g, b, eps):
        return g * (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, ddof=1, keepdims=True)
                                                             + eps) + b

    def no_affine(x, g, b, eps):
        return _layer_norm_reference(x, 1.0, 0.0, eps)

    return check_exercise("layer_norm_rows", answer, _layer_norm_reference, cases, mistakes=[
        (over_batch, "that is batch norm: layer norm takes the mean and variance of each "
                     "example over its features (axis=1, keepdims=True)"),
        (eps_outside, "ε goes inside the square root: sqrt(var + ε)"),
        (unbiased, "use the biased variance (divide by D, np.var's default)"),
        (no_affine, "finish with the learned scale and shift: γ · x̂ + β")])


def _group_norm_reference(x, gamma, beta, groups, eps):
    n, c = x.shape
    xg = x.reshape(n, groups, c // groups)
    x_hat = (xg - xg.mean(2, keepdims=True)) / np.sqrt(xg.var(2, keepdims=True) + eps)
    return gamma * x_hat.reshape(n, c) + beta


def check_group_norm(answer: Callable) -> bool | None:
    """Exercise 08: group norm of x of shape (N, C) with ``groups`` groups of consecutive channels."""
    rng = np.random.default_rng(10)
    cases = [(rng.normal(1.0, 2.0, size=(4, 6)), rng.uniform(0.5, 2, 6), rng.normal(size=6), 2, 0.1),
             (rng.normal(size=(3, 8)), rng.uniform(0.5, 2, 8), rng.normal(size=8), 4, 1e-3)]

    def strided(x, g, b, groups, eps):
        n, c = x.shape
        xg = x.reshape(n, c // groups, groups)
        x_hat = (xg - xg.mean(1, keepdims=True)) / np.sqrt(xg.var(1, keepdims=True) + eps)
        return g * x_hat.reshape(n, c) + b

    def one_group(x, g, b, groups, eps):
        return _group_norm_reference(x, g, b, 1, eps)

    def eps_outside(x, g, b, groups, eps):
        n, c = x.shape
        xg = x.reshape(n, groups, c // groups)
        x_hat = (xg - xg.mean(2, keepdims=True)) / (xg.std(2, keepdims=True) + eps)
        return g * x_hat.reshape(n, c) + b

    return check_exercise("group_norm_rows", answer, _group_norm_reference, cases, mistakes=[
        (strided, "a group is a block of consecutive channels: reshape to (N, groups, C // groups)"),
        (one_group, "take the statistics per group, not over all the channels (that is layer norm)"),
        (eps_outside, "ε goes inside the square root: sqrt(var + ε)")])
