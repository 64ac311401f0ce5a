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
  placeholder (returns None or raises NotImplementedError on the first
  case) prints "not attempted yet" and does not fail the notebook; None on
  a later case is a wrong answer.
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

def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def check_min_max_per_pixel(answer: Callable) -> bool | None:
    """Exercise 01.1: min-max scale (N, H, W, C) images with one min and max per pixel."""
    rng = np.random.default_rng(11)
    cases = [(rng.normal(20.0, 5.0, size=(6, 4, 4, 1)) + rng.integers(0, 30, (6, 1, 1, 1)),),
             (rng.uniform(-3.0, 8.0, size=(5, 3, 2, 2)),)]

    def per_pixel(x, axis=0):
        lo, hi = x.min(axis=axis, keepdims=True), x.max(axis=axis, keepdims=True)
        return (x - lo) / (hi - lo)

    return check_exercise(
        "min_max_per_pixel", answer, per_pixel, cases,
        mistakes=[(lambda x: per_pixel(x, axis=None),
                   "that uses one minimum and maximum for the whole batch: take them across "
                   "the images only (axis=0), one per pixel position"),
                  (lambda x: per_pixel(x, axis=(1, 2, 3)),
                   "that scales each image on its own: the statistics must be taken across "
                   "the N images (axis=0), not across the pixels of one image"),
                  (lambda x: (x - x.min(axis=0)) / x.max(axis=0),
                   "divide by the range (max - min), not by the maximum"),
                  (lambda x: x / (x.max(axis=0) - x.min(axis=0)),
                   "subtract the minimum before dividing by the range")])


def check_standardize_new(answer: Callable) -> bool | None:
    """Exercise 01.2: standardize new rows with the training data's statistics."""
    rng = np.random.default_rng(12)
    cases = [(rng.normal([1.0, -4.0, 10.0], [2.0, 0.5, 7.0], size=(40, 3)),
              rng.normal([3.0, -4.0, 0.0], [1.0, 2.0, 3.0], size=(7, 3))),
             (rng.uniform(0.0, 5.0, size=(12, 2)), rng.uniform(2.0, 9.0, size=(5, 2)))]

    def reference(x_train, x_new):
        return (x_new - x_train.mean(axis=0)) / x_train.std(axis=0)

    return check_exercise(
        "standardize_new", answer, reference, cases,
        mistakes=[(lambda tr, new: (new - new.mean(axis=0)) / new.std(axis=0),
                   "that uses the new data's own statistics: apply the mean and std fitted "
                   "on x_train, so new data goes through the same map"),
                  (lambda tr, new: (new - tr.mean(axis=0)) / tr.std(axis=0, ddof=1),
                   "use the population standard deviation (divide by N, NumPy's default), "
                   "not ddof=1"),
                  (lambda tr, new: (new - tr.mean()) / tr.std(),
                   "compute one mean and std per feature (axis=0), not over all values"),
                  (lambda tr, new: (new - tr.mean(axis=0)) / tr.var(axis=0),
                   "divide by the standard deviation, not the variance")])


def check_sigmoid_slope(answer: Callable) -> bool | None:
    """Exercise 01.3: the derivative of the logistic sigmoid, elementwise."""
    cases = [(np.linspace(-6.0, 6.0, 25),), (np.array([[0.0, 2.5], [-1.0, 10.0]]),)]

    def reference(z):
        s = _sigmoid(z)
        return s * (1.0 - s)

    return check_exercise(
        "sigmoid_slope", answer, reference, cases,
        mistakes=[(lambda z: z * (1.0 - z),
                   "apply s (1 - s) to s = sigmoid(z), not to z itself"),
                  (lambda z: 1.0 - _sigmoid(z) ** 2,
                   "1 - s^2 is the pattern of tanh's slope; the sigmoid's is s (1 - s)"),
                  (lambda z: _sigmoid(z),
                   "that is the sigmoid itself; its slope is s (1 - s)"),
                  (lambda z: 1.0 - np.tanh(z) ** 2, "that is tanh's slope, not the sigmoid's")])


def _ema_loop(x, weight_new, y0=0.0):
    y, out = y0, np.empty(len(x))
    for t, value in enumerate(x):
        y = (1.0 - weight_new) * y + weight_new * value
        out[t] = y
    return out


def check_streaming_mean(answer: Callable) -> bool | None:
    """Exercise 02.1: the running mean of a 1-D stream by the 1/t update."""
    rng = np.random.default_rng(21)
    cases = [(rng.normal(5.0, 2.0, size=40),), (np.array([4.0, -2.0, 7.0, 7.0, 0.5]),)]

    def off_by_one(x):
        y, out = 0.0, np.empty(len(x))
        for t, value in enumerate(x, start=1):
            y = (1.0 - 1.0 / (t + 1)) * y + value / (t + 1)
            out[t - 1] = y
        return out

    return check_exercise(
        "streaming_mean", answer, lambda x: np.cumsum(x) / np.arange(1, len(x) + 1), cases,
        mistakes=[(off_by_one,
                   "your first average is half the first value: count t from 1, so the first "
                   "update uses 1/t = 1 and gives Y_1 = X_1"),
                  (lambda x: np.mean(x),
                   "return the whole sequence of averages (one per step), not only the last"),
                  (np.cumsum, "divide the running sum by t: that is what the 1/t weights do"),
                  (lambda x: _ema_loop(x, 0.5),
                   "that is a constant weight; the running mean's weight on the new value "
                   "is 1/t, which shrinks as t grows")])


def check_ema_corrected(answer: Callable) -> bool | None:
    """Exercise 02.2: an EMA from Y_0 = 0, divided by 1 - (1 - alpha)^t."""
    rng = np.random.default_rng(22)
    cases = [(rng.normal(2.0, 1.0, size=30), 0.1), (rng.normal(-1.0, 3.0, size=12), 0.3),
             (np.linspace(0.0, 5.0, 8), 0.5)]

    def corrected(x, alpha, weight_new=None, power_shift=0):
        w = alpha if weight_new is None else weight_new
        t = np.arange(1, len(x) + 1) + power_shift
        return _ema_loop(x, w) / (1.0 - (1.0 - w) ** t)

    return check_exercise(
        "ema_corrected", answer, corrected, cases,
        mistakes=[(lambda x, a: _ema_loop(x, a),
                   "that is the raw EMA: divide Y_t by 1 - (1 - alpha)^t to remove the "
                   "start-up bias"),
                  (lambda x, a: corrected(x, a, weight_new=1.0 - a),
                   "alpha is the weight on the NEW value here: Y_t = (1 - alpha) Y_(t-1) + "
                   "alpha X_t (Keras's momentum is the weight on the old one)"),
                  (lambda x, a: corrected(x, a, power_shift=1),
                   "off by one in the exponent: the first corrected value must equal X_1, "
                   "so use (1 - alpha)^t with t starting at 1"),
                  (lambda x, a: _ema_loop(x, a) / (1.0 - a ** np.arange(1, len(x) + 1)),
                   "the correction divides by 1 - (1 - alpha)^t, not 1 - alpha^t")])


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
        "bn_backward", answer, _bn_backward, _grad_cases(8),
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
        "bn_inference_backward", answer, lambda d, g, mv, e: d * g / np.sqrt(mv + e), cases,
        mistakes=[(lambda d, g, mv, e: d / np.sqrt(mv + e), "multiply by γ as well"),
                  (lambda d, g, mv, e: d * g / (mv + e),
                   "divide by the standard deviation sqrt(moving_variance + ε), "
                   "not by the variance"),
                  (lambda d, g, mv, e: d * g / np.sqrt(mv),
                   "ε stays inside the square root in the backward pass too"),
                  (lambda d, g, mv, e: d * g,
                   "the forward pass divides by sqrt(moving_variance + ε), so dx does too")])



# ----- Lessons 05 and 06 -----

def _network_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _network_layer_cases(seed: int = 5):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 1.0, (8, 4))
    W = rng.normal(0.0, 0.7, (4, 3))
    gamma, beta = rng.uniform(0.5, 2.0, 3), rng.normal(0.0, 0.5, 3)
    return x, W, gamma, beta


def _network_bn(z, mean, var, gamma, beta, eps=1e-3):
    return gamma * (z - mean) / np.sqrt(var + eps) + beta


def check_network_hidden_layer(answer: Callable) -> bool | None:
    """Exercise 05.1: ``answer(x, W, gamma, beta)`` = sigmoid(BN(x @ W)), training mode, eps 1e-3."""
    def reference(x, W, gamma, beta):
        z = x @ W
        return _network_sigmoid(_network_bn(z, z.mean(0), z.var(0), gamma, beta))

    def per_example(x, W, gamma, beta):
        z = x @ W
        return _network_sigmoid(_network_bn(z, z.mean(1, keepdims=True), z.var(1, keepdims=True),
                                            gamma, beta))

    def after(x, W, gamma, beta):
        a = _network_sigmoid(x @ W)
        return _network_bn(a, a.mean(0), a.var(0), gamma, beta)

    def eps_outside(x, W, gamma, beta):
        z = x @ W
        return _network_sigmoid(gamma * (z - z.mean(0)) / (z.std(0) + 1e-3) + beta)

    def no_scale_shift(x, W, gamma, beta):
        z = x @ W
        return _network_sigmoid(_network_bn(z, z.mean(0), z.var(0), 1.0, 0.0))

    cases = [_network_layer_cases(5), _network_layer_cases(6)]
    return check_exercise("network_hidden_layer", answer, reference, cases, mistakes=[
        (per_example, "take the mean and variance over the batch (axis 0), one pair per unit, "
                      "not over the units of each example"),
        (after, "normalize the pre-activation x @ W, then apply the sigmoid (batch norm goes "
                "before the activation here)"),
        (eps_outside, "eps goes inside the square root: sqrt(var + eps)"),
        (no_scale_shift, "after normalizing, scale by gamma and shift by beta"),
    ])


def check_network_inference_layer(answer: Callable) -> bool | None:
    """Exercise 05.2: ``answer(x, W, gamma, beta, moving_mean, moving_variance)``, inference mode."""
    def with_moving(seed):
        x, W, gamma, beta = _network_layer_cases(seed)
        rng = np.random.default_rng(seed + 10)
        return x, W, gamma, beta, rng.normal(0.0, 0.5, 3), rng.uniform(0.3, 2.0, 3)

    def reference(x, W, gamma, beta, mean, var):
        return _network_sigmoid(_network_bn(x @ W, mean, var, gamma, beta))

    def batch_stats(x, W, gamma, beta, mean, var):
        z = x @ W
        return _network_sigmoid(_network_bn(z, z.mean(0), z.var(0), gamma, beta))

    def variance_as_std(x, W, gamma, beta, mean, var):
        return _network_sigmoid(gamma * (x @ W - mean) / (var + 1e-3) + beta)

    def no_eps(x, W, gamma, beta, mean, var):
        return _network_sigmoid(_network_bn(x @ W, mean, var, gamma, beta, eps=0.0))

    cases = [with_moving(7), with_moving(8)]
    return check_exercise("network_inference_layer", answer, reference, cases, mistakes=[
        (batch_stats, "at test time use the moving mean and variance, not the statistics of "
                      "the test batch (one example alone would give all zeros)"),
        (variance_as_std, "divide by the square root of (moving_variance + eps): the moving "
                          "variance is a variance, not a standard deviation"),
        (no_eps, "keep eps = 1e-3 inside the square root at test time too"),
    ])


def check_network_gamma_beta_step(answer: Callable) -> bool | None:
    """Exercise 05.3: ``answer(dout, x_hat, gamma, beta, lr) -> (new_gamma, new_beta)``."""
    def reference(dout, x_hat, gamma, beta, lr):
        return gamma - lr * np.sum(dout * x_hat, axis=0), beta - lr * np.sum(dout, axis=0)

    def mean_not_sum(dout, x_hat, gamma, beta, lr):
        return gamma - lr * np.mean(dout * x_hat, axis=0), beta - lr * np.mean(dout, axis=0)

    def uphill(dout, x_hat, gamma, beta, lr):
        return gamma + lr * np.sum(dout * x_hat, axis=0), beta + lr * np.sum(dout, axis=0)

    def no_x_hat(dout, x_hat, gamma, beta, lr):
        return gamma - lr * np.sum(dout, axis=0), beta - lr * np.sum(dout, axis=0)

    def wrong_axis(dout, x_hat, gamma, beta, lr):
        return (gamma - lr * np.sum(dout * x_hat, axis=1).mean(),
                beta - lr * np.sum(dout, axis=1).mean())

    rng = np.random.default_rng(9)
    cases = [(rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), rng.uniform(0.5, 2, 3),
              rng.normal(size=3), 0.1) for _ in range(2)]
    return check_exercise("network_gamma_beta_step", answer, reference, cases, mistakes=[
        (mean_not_sum, "the loss already averages over the batch (dout carries the 1/N): sum "
                       "dout over the batch, do not average it again"),
        (uphill, "step against the gradient: gamma - lr * dgamma"),
        (no_x_hat, "dgamma is the sum of dout * x_hat (gamma multiplies x_hat); only dbeta "
                   "is the plain sum of dout"),
        (wrong_axis, "sum over the batch axis 0, keeping one value per unit"),
    ])



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
