"""Lesson 06 (Covariate shift): the exercise checkers.

Each wraps :func:`bnlib.course.checks.check_exercise` with a reference, cases that
vary every setting, and the common mistakes it names.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bnlib.course.checks import check_exercise


def check_odds_weights(answer: Callable) -> bool | None:
    """Exercise 06.1: importance weights from a source-vs-target classifier's P(target | x).

    ``answer(p_target, n_source, n_target)`` must return the density ratio
    P_T(x) / P_S(x) = p / (1 - p) * n_source / n_target.
    """
    rng = np.random.default_rng(6)
    cases = [(rng.uniform(0.05, 0.95, size=20), 300, 100),
             (rng.uniform(0.01, 0.6, size=15), 50, 200),
             (np.array([0.3]), 80, 80),                       # one point, equal pools
             (rng.uniform(0.2, 0.9, size=6), 7, 1000)]
    return check_exercise(
        "odds_weights", answer, lambda p, ns, nt: p / (1 - p) * ns / nt, cases,
        mistakes=[(lambda p, ns, nt: p / (1 - p),
                   "the odds still contain the sample sizes: multiply by n_source / n_target"),
                  (lambda p, ns, nt: p / (1 - p) * nt / ns,
                   "the size correction is upside down: multiply by n_source / n_target"),
                  (lambda p, ns, nt: (1 - p) / p * ns / nt,
                   "that is P_S / P_T: the weight of a source point grows with P(target | x)"),
                  (lambda p, ns, nt: p * ns / nt,
                   "use the odds p / (1 - p), not the probability p itself"),
                  (lambda p, ns, nt: p / (1 - p) * ns,
                   "n_target is ignored: divide by it (the correction is n_source / n_target)"),
                  (lambda p, ns, nt: p / (1 - p) / nt,
                   "n_source is ignored: multiply by it (the correction is n_source / n_target)")])


def check_weighted_line(answer: Callable) -> bool | None:
    """Exercise 06.2: weighted least-squares line, returning (slope, intercept)."""
    rng = np.random.default_rng(7)
    cases = []
    for n in (30, 12, 3):
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
                          with_start=True, norm_of_change=True, range_from_start=False,
                          last_only=False, usual_multipliers=False, subtract_start=True):
    g = grad(theta)
    ks = (0.5, 1.0, 2.0, 4.0) if usual_multipliers else multipliers
    points = [theta + sign * k * (lr if use_lr else 1.0) * g for k in ks]
    losses = [loss(p) for p in points]
    if range_from_start:
        loss_range = max(abs(value - loss(theta)) for value in losses)
    else:
        loss_range = np.ptp(([loss(theta)] if with_start else []) + losses)
    if not subtract_start:
        changes = [np.linalg.norm(grad(p)) for p in points]
    elif norm_of_change:
        changes = [np.linalg.norm(grad(p) - g) for p in points]
    else:
        changes = [abs(np.linalg.norm(grad(p)) - np.linalg.norm(g)) for p in points]
    return float(loss_range), float(changes[-1] if last_only else max(changes))


def check_gradient_steps(answer: Callable) -> bool | None:
    """Exercise 06.3: loss range and largest gradient change along the negative gradient.

    ``answer(loss, grad, theta, lr, multipliers)`` must return
    ``(loss_range, grad_change)``: the max minus min of the loss over theta and
    every theta - k * lr * grad(theta), and the largest
    ||grad(theta - k * lr * g) - grad(theta)||.

    The cases vary the function, the dimension (1 to 3), the learning rate and
    the multipliers (their number and order); in the second, long steps
    overshoot, so some losses lie above the starting one, as in the lesson's
    network without batch norm.
    """
    stiff = np.array([1.0, 10.0])

    def bowl(t):
        return 0.5 * float(np.sum(stiff * t * t))

    def logcosh(t):
        return float(np.sum(np.log(np.cosh(3 * t))))

    cases = [(bowl, lambda t: stiff * t, np.array([1.0, 1.0]), 0.05, (0.5, 1.0, 2.0, 4.0)),
             (bowl, lambda t: stiff * t, np.array([1.0, 1.0]), 0.12, (0.5, 1.0, 2.0, 4.0)),
             (logcosh, lambda t: 3 * np.tanh(3 * t), np.array([0.4, -0.2, 0.1]), 0.1,
              (2.0, 0.5, 1.0)),
             (lambda t: float(t[0] ** 4), lambda t: 4 * t ** 3, np.array([0.7]), 0.3, (1.5,))]
    return check_exercise(
        "gradient_steps", answer, _steps_along_gradient, cases,
        mistakes=[(lambda *a: _steps_along_gradient(*a, with_start=False),
                   "include the starting point (k = 0) in the loss range"),
                  (lambda *a: _steps_along_gradient(*a, range_from_start=True),
                   "the loss range is the largest minus the smallest loss over every point, "
                   "k = 0 included, not the largest distance from the starting loss: when a "
                   "long step overshoots, losses above and below the start both count"),
                  (lambda *a: _steps_along_gradient(*a, sign=1.0),
                   "step against the gradient: theta - k * lr * g, not plus"),
                  (lambda *a: _steps_along_gradient(*a, use_lr=False),
                   "each step is k times the learning rate times g: multiply by lr too"),
                  (lambda *a: _steps_along_gradient(*a, usual_multipliers=True),
                   "the multipliers are ignored: step by each k in the multipliers passed in"),
                  (lambda *a: _steps_along_gradient(*a, last_only=True),
                   "grad_change is the largest change over every k, not the change at the "
                   "last one"),
                  (lambda *a: _steps_along_gradient(*a, subtract_start=False),
                   "grad_change measures how the gradient changed: ||g_k - g||, not ||g_k||"),
                  (lambda *a: _steps_along_gradient(*a, norm_of_change=False),
                   "measure the norm of the difference ||g_k - g||, not the difference "
                   "of the norms")])
