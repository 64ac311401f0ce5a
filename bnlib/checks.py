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

def _bn_cases(seed: int):
    """Batches whose features differ in scale; one feature has a tiny spread
    (0.02), so where eps goes changes the answer visibly."""
    rng = np.random.default_rng(seed)
    cases = []
    for n, scales, shifts in ((8, [1.0, 0.02, 5.0], [0.0, 3.0, -2.0]),
                              (16, [2.0, 0.5, 0.02, 1.0], [1.0, -1.0, 4.0, 0.0])):
        d = len(scales)
        x = rng.standard_normal((n, d)) * scales + shifts
        cases.append((x, rng.uniform(0.5, 2.0, d), rng.normal(0.0, 1.0, d), 1e-3))
    return cases


def _bn_train(x, gamma, beta, eps, ddof=0, axis=0):
    mean = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, ddof=ddof, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def check_batchnorm_train(answer: Callable) -> bool | None:
    """Exercise 03a: answer(x, gamma, beta, eps) -> training-mode output, x of shape (N, D)."""
    def eps_outside(x, gamma, beta, eps):
        return gamma * (x - x.mean(0)) / (x.std(0) + eps) + beta

    return check_exercise(
        "batchnorm_train", answer, _bn_train, _bn_cases(3),
        mistakes=[(lambda x, g, b, e: _bn_train(x, g, b, e, ddof=1),
                   "your variance divides by N - 1: batch norm uses the biased variance "
                   "(divide by N, NumPy's default)"),
                  (eps_outside, "ε must be inside the square root: sqrt(var + ε), "
                                "not sqrt(var) + ε"),
                  (lambda x, g, b, e: g * (x - x.mean(0)) / x.std(0) + b,
                   "add ε to the variance before taking the square root"),
                  (lambda x, g, b, e: _bn_train(x, g, b, e, axis=1),
                   "take the statistics over the batch axis 0: one mean and one variance "
                   "per feature (column), not per example"),
                  (lambda x, g, b, e: _bn_train(x, 1.0, 0.0, e),
                   "finish with the scale and shift: gamma * x_hat + beta")])


def _bn_inference(x, gamma, beta, moving_mean, moving_variance, eps):
    return gamma * (x - moving_mean) / np.sqrt(moving_variance + eps) + beta


def check_batchnorm_inference(answer: Callable) -> bool | None:
    """Exercise 03b: answer(x, gamma, beta, moving_mean, moving_variance, eps) -> output."""
    rng = np.random.default_rng(4)
    cases = []
    for n, d in ((6, 3), (1, 4)):  # the second case is a single example
        x, gamma, beta, eps = _bn_cases(5)[0 if d == 3 else 1]
        moving_mean = rng.normal(0.0, 2.0, d)
        moving_variance = rng.uniform(0.0005, 3.0, d)
        cases.append((x[:n], gamma, beta, moving_mean, moving_variance, eps))
    return check_exercise(
        "batchnorm_inference", answer, _bn_inference, cases,
        mistakes=[(lambda x, g, b, mm, mv, e: _bn_train(x, g, b, e),
                   "at inference, normalize with the moving statistics, not with the "
                   "statistics of the batch you were given"),
                  (lambda x, g, b, mm, mv, e: g * (x - mm) / np.sqrt(mv) + b,
                   "add ε to the moving variance inside the square root"),
                  (lambda x, g, b, mm, mv, e: g * (x - mm) / (mv + e) + b,
                   "moving_variance is a variance: divide by its square root "
                   "sqrt(moving_variance + ε)"),
                  (lambda x, g, b, mm, mv, e: _bn_inference(x, 1.0, 0.0, mm, mv, e),
                   "finish with the learned scale and shift: gamma * x_hat + beta")])


def _moving_update(moving_mean, moving_variance, x, momentum, ddof=0):
    return (momentum * moving_mean + (1 - momentum) * x.mean(0),
            momentum * moving_variance + (1 - momentum) * x.var(0, ddof=ddof))


def check_moving_update(answer: Callable) -> bool | None:
    """Exercise 03c: answer(moving_mean, moving_variance, x, momentum) -> (new_mean, new_var)."""
    rng = np.random.default_rng(6)
    cases = [(rng.normal(0.0, 1.0, x.shape[1]), rng.uniform(0.5, 2.0, x.shape[1]), x, m)
             for (x, *_), m in zip(_bn_cases(7), (0.99, 0.9))]
    return check_exercise(
        "moving_update", answer, _moving_update, cases,
        mistakes=[(lambda mm, mv, x, m: _moving_update(mm, mv, x, 1 - m),
                   "Keras's momentum is the weight on the OLD value: "
                   "new = momentum * old + (1 - momentum) * batch statistic"),
                  (lambda mm, mv, x, m: _moving_update(mm, mv, x, m, ddof=1),
                   "update the moving variance with the biased batch variance (divide by N), "
                   "as Keras does; N - 1 is PyTorch's choice"),
                  (lambda mm, mv, x, m: (_moving_update(mm, mv, x, m)[0],
                                         m * mv + (1 - m) * x.std(0)),
                   "smooth the batch variance, not the standard deviation")])


def _bn_backward(dout, x, gamma, eps, mean_path=True, var_path=True, with_gamma=True):
    n = x.shape[0]
    inv_std = 1.0 / np.sqrt(x.var(0) + eps)
    x_hat = (x - x.mean(0)) * inv_std
    g = dout * gamma if with_gamma else dout
    dx_hat = g.copy()
    if mean_path:
        dx_hat = dx_hat - g.sum(0) / n
    if var_path:
        dx_hat = dx_hat - x_hat * (g * x_hat).sum(0) / n
    return dx_hat * inv_std, (dout * x_hat).sum(0), dout.sum(0)


def _grad_cases(seed: int):
    rng = np.random.default_rng(seed)
    return [(rng.normal(0.0, 1.0, x.shape), x, gamma, eps)
            for x, gamma, _, eps in _bn_cases(seed)]


def check_batchnorm_backward(answer: Callable) -> bool | None:
    """Exercise 04a: answer(dout, x, gamma, eps) -> (dx, dgamma, dbeta), training mode."""
    def dgamma_without_x_hat(dout, x, gamma, eps):
        dx, _, dbeta = _bn_backward(dout, x, gamma, eps)
        return dx, dout.sum(0), dbeta

    return check_exercise(
        "batchnorm_backward", answer, _bn_backward, _grad_cases(8),
        mistakes=[(lambda d, x, g, e: _bn_backward(d, x, g, e, mean_path=False, var_path=False),
                   "the batch mean and variance depend on x too: add the paths through "
                   "them (a correct dx sums to zero over the batch)"),
                  (lambda d, x, g, e: _bn_backward(d, x, g, e, var_path=False),
                   "you kept the path through the mean but not the one through the variance"),
                  (lambda d, x, g, e: _bn_backward(d, x, g, e, mean_path=False),
                   "you kept the path through the variance but not the one through the mean"),
                  (lambda d, x, g, e: _bn_backward(d, x, g, e, with_gamma=False),
                   "dx_hat = dout * gamma: the gradient reaches x_hat through γ"),
                  (dgamma_without_x_hat, "dgamma is the sum over the batch of dout * x_hat "
                                         "(dbeta is the plain sum of dout)")],
        tol=1e-8)


def check_inference_backward(answer: Callable) -> bool | None:
    """Exercise 04b: answer(dout, gamma, moving_variance, eps) -> dx in inference mode."""
    rng = np.random.default_rng(9)
    cases = [(rng.normal(0.0, 1.0, (n, d)), rng.uniform(0.5, 2.0, d),
              rng.uniform(0.0005, 3.0, d), 1e-3) for n, d in ((5, 3), (1, 4))]
    return check_exercise(
        "inference_backward", answer, lambda d, g, mv, e: d * g / np.sqrt(mv + e), cases,
        mistakes=[(lambda d, g, mv, e: d / np.sqrt(mv + e), "multiply by γ as well"),
                  (lambda d, g, mv, e: d * g / (mv + e),
                   "divide by the standard deviation sqrt(moving_variance + ε), "
                   "not by the variance"),
                  (lambda d, g, mv, e: d * g / np.sqrt(mv),
                   "ε stays inside the square root in the backward pass too"),
                  (lambda d, g, mv, e: d * g,
                   "the forward pass divides by sqrt(moving_variance + ε), so dx does too")])



# ----- Lessons 05 and 06 -----


# ----- Lessons 07 and 08 -----
