"""Lesson 06's exercise checkers accept a correct answer, report the stub and a missing return,
and name each mistake (the contract, tests/lessons/checker_contract.py); hard-coded pool sizes
and an unknown mistake fail, and the gradient-step cases include an overshooting step.

The answers below are written independently of the checkers.
"""
from __future__ import annotations

import numpy as np

from bnlib.lessons.lesson06 import exercises

from checker_contract import contract  # tests/lessons/: every checker's tests


def _correct_odds(p, n_source, n_target):
    return p / (1 - p) * n_source / n_target


def _correct_line(x, y, w):
    # Scale rows by sqrt(w), then ordinary least squares: an independent route.
    s = np.sqrt(w)
    design = np.stack([x, np.ones_like(x)], axis=1) * s[:, None]
    return tuple(np.linalg.lstsq(design, y * s, rcond=None)[0])


def _line(x, y, w, transform=lambda w: w):
    return _correct_line(x, y, transform(w))


def test_odds_weights_hard_coded_pool_sizes_fail(capsys):
    # the lesson's 400 / 400: right on no case of the checker
    assert exercises.check_odds_weights(lambda p, ns, nt: p / (1 - p) * 400 / 400) is False


ODDS_MISTAKES = [
    (lambda p, ns, nt: p / (1 - p), "multiply by n_source / n_target"),
    (lambda p, ns, nt: p / (1 - p) * nt / ns, "upside down"),
    (lambda p, ns, nt: (1 - p) / p * ns / nt, "that is P_S / P_T"),
    (lambda p, ns, nt: p * ns / nt, "not the probability p itself"),
    (lambda p, ns, nt: p / (1 - p) * ns, "n_target is ignored"),
    (lambda p, ns, nt: p / (1 - p) / nt, "n_source is ignored"),
]


LINE_MISTAKES = [
    (lambda x, y, w: _line(x, y, w, np.ones_like), "the weights are ignored"),
    (lambda x, y, w: _line(x, y, w, np.square), "you weighted twice"),
    (lambda x, y, w: _line(x, y, w, np.reciprocal), "the weights are inverted"),
    (lambda x, y, w: _correct_line(x, y, w)[::-1], "(slope, intercept) in that order"),
]


def test_weighted_line_generic_failure(capsys):
    assert exercises.check_weighted_line(lambda x, y, w: (0.0, 0.0)) is False
    assert "differs from the expected" in capsys.readouterr().out


def _correct_steps(loss, grad, theta, lr, multipliers):
    g = grad(theta)
    losses, changes = [loss(theta)], []
    for k in multipliers:
        point = theta - k * lr * g
        losses.append(loss(point))
        changes.append(np.sqrt(np.sum((grad(point) - g) ** 2)))
    return max(losses) - min(losses), max(changes)


def _steps(loss, grad, theta, lr, multipliers, *, sign=-1, scale=True, start=True, diff=True,
           from_start=False, last=False, fixed_ks=False, raw=False):
    """Common wrong answers, written out independently of the checker."""
    g = grad(theta)
    ks = [0.5, 1.0, 2.0, 4.0] if fixed_ks else list(multipliers)
    points = [theta + sign * k * (lr if scale else 1) * g for k in ks]
    losses = [loss(p) for p in points] + ([loss(theta)] if start else [])
    if from_start:
        loss_range = max(abs(loss(p) - loss(theta)) for p in points)
    else:
        loss_range = max(losses) - min(losses)
    if raw:
        changes = [np.sqrt(np.sum(grad(p) ** 2)) for p in points]
    elif diff:
        changes = [np.sqrt(np.sum((grad(p) - g) ** 2)) for p in points]
    else:
        changes = [abs(np.sqrt(np.sum(grad(p) ** 2)) - np.sqrt(np.sum(g ** 2))) for p in points]
    return loss_range, changes[-1] if last else max(changes)


def _wrong_steps(**options):
    return lambda *args: _steps(*args, **options)


CHECKERS = {
    "odds_weights": (exercises.check_odds_weights, _correct_odds, ODDS_MISTAKES),
    "weighted_line": (exercises.check_weighted_line, _correct_line, LINE_MISTAKES),
    "gradient_steps": (exercises.check_gradient_steps, _correct_steps, [
        (_wrong_steps(start=False), "include the starting point"),
        (_wrong_steps(sign=1), "step against the gradient"),
        (_wrong_steps(scale=False), "multiply by lr too"),
        (_wrong_steps(diff=False), "not the difference of the norms"),
        (_wrong_steps(from_start=True), "not the largest distance from the starting loss"),
        (_wrong_steps(last=True), "not the change at the last one"),
        (_wrong_steps(fixed_ks=True), "the multipliers are ignored"),
        (_wrong_steps(raw=True), "not ||g_k||")]),
}
(test_checker_accepts_a_correct_answer, test_checker_reports_the_stub_as_not_attempted,
 test_checker_reports_a_missing_return, test_checker_names_the_mistake) = contract(CHECKERS)


def test_gradient_steps_has_a_case_where_a_step_overshoots():
    """max |L_k - L_0| equals the range when every loss is below the start; one case is not."""
    seen = []

    def spy(loss, grad, theta, lr, multipliers):
        losses = [loss(theta - k * lr * grad(theta)) for k in multipliers]
        seen.append(max(losses) > loss(theta))
        return _correct_steps(loss, grad, theta, lr, multipliers)

    assert exercises.check_gradient_steps(spy) is True
    assert any(seen) and not all(seen)
