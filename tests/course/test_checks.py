"""Tests of bnlib.course.checks: claims raise when wrong; exercise checkers give the right verdict."""
import numpy as np
import pytest

from bnlib.course.checks import (assert_below, assert_close, assert_true, check_exercise,
                          max_abs_diff)


# -------------------------------------------------------------------- claims
def test_max_abs_diff_is_the_largest_absolute_difference():
    assert max_abs_diff([1.0, 2.0, 3.0], [1.5, 2.0, 0.0]) == 3.0
    assert max_abs_diff(np.zeros((0, 3)), np.zeros((0, 3))) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        max_abs_diff(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("a, b, tol", [([1.0, 2.0], [1.0, 2.0 + 1e-9], 1e-7),
                                       (np.eye(2), np.eye(2), 0.0),
                                       (3.0, 3.5, 0.5)])
def test_assert_close_passes_and_prints(capsys, a, b, tol):
    diff = assert_close("max abs diff", a, b, tol)
    assert diff == pytest.approx(np.max(np.abs(np.subtract(a, b))))
    out = capsys.readouterr().out
    assert out == f"max abs diff below {tol:.0e} ✓\n", out


@pytest.mark.parametrize("a, b, tol", [([1.0, 2.0], [1.0, 2.1], 1e-3), (0.0, 1e-6, 1e-7)])
def test_assert_close_raises_when_too_far(capsys, a, b, tol):
    with pytest.raises(AssertionError, match="exceeds the tolerance"):
        assert_close("outputs", a, b, tol)
    out = capsys.readouterr().out
    assert out.startswith("outputs = ") and "✗" in out, out


def test_assert_below_prints_round_off_as_its_bound(capsys):
    """Round-off's own digits differ between CPUs: only the bound is printed."""
    assert assert_below("relative error", 3.6e-15, 1e-7) == 3.6e-15
    assert assert_below("relative error", 9.9e-8, 1e-7) == 9.9e-8
    assert capsys.readouterr().out == "relative error below 1e-07 ✓\n" * 2


def test_assert_below_shows_a_lessons_number_in_the_given_format(capsys):
    assert assert_below("gap", 0.0234, 0.05, show=".3f") == 0.0234
    assert_close("spread", 1.0, 1.3, 0.5, show=".2f")
    assert capsys.readouterr().out == "gap = 0.023 (bound 0.05) ✓\nspread = 0.30 (bound 0.5) ✓\n"


@pytest.mark.parametrize("value", [2e-7, 1.0, np.inf, np.nan])
def test_assert_below_raises_above_the_bound(capsys, value):
    with pytest.raises(AssertionError):
        assert_below("relative error", value, 1e-7)
    assert "✗" in capsys.readouterr().out


def test_assert_true_passes_and_prints(capsys):
    assert_true("loss decreased", True, "2.30 -> 0.41")
    assert capsys.readouterr().out == "loss decreased: 2.30 -> 0.41 ✓\n"


@pytest.mark.parametrize("condition", [False, np.bool_(False), 0])
def test_assert_true_raises_when_false(capsys, condition):
    with pytest.raises(AssertionError, match="claim failed: loss decreased"):
        assert_true("loss decreased", condition, "2.30 -> 2.31")
    assert capsys.readouterr().out == "loss decreased: 2.30 -> 2.31 ✗\n"


# ----------------------------------------------------------------- exercises
HINT_DDOF = "your variance divides by N-1: batch norm uses the biased variance"
HINT_EPS = "eps must be inside the square root"
EPS = 1e-3


def reference(x):
    return (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + EPS)


MISTAKES = [
    (lambda x: (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0, ddof=1) + EPS), HINT_DDOF),
    (lambda x: (x - x.mean(axis=0)) / (np.sqrt(x.var(axis=0)) + EPS), HINT_EPS),
]


def cases():
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(8, 3)),), (5.0 + 0.1 * rng.normal(size=(4, 2)),)]


def check(answer):
    return check_exercise("normalize a batch", answer, reference, cases(), MISTAKES)


def test_check_exercise_accepts_a_correct_answer(capsys):
    def answer(x):     # written differently from the reference on purpose
        centred = x - np.sum(x, axis=0) / len(x)
        return centred / np.sqrt(np.mean(centred ** 2, axis=0) + EPS)

    assert check(answer) is True
    assert capsys.readouterr().out == "normalize a batch: passed on every case ✓\n"


def test_check_exercise_placeholder_is_not_attempted(capsys):
    def placeholder(x):
        raise NotImplementedError("replace with your code")

    assert check(placeholder) is None
    assert capsys.readouterr().out == "normalize a batch: not attempted yet\n"


def test_check_exercise_a_forgotten_return_is_named(capsys):
    def answer(x):
        _ = reference(x)      # computed, never returned

    assert check(answer) is False
    assert capsys.readouterr().out == (
        "normalize a batch: not yet. On case 1 your function returned None (is a return "
        "statement missing?); expected an array of shape (8, 3).\n")


@pytest.mark.parametrize("answer, kind", [
    (lambda x: "done", "a str"), (lambda x: {"x": x}, "a dict"),
    (lambda x: (row for row in x), "a generator"), (lambda x: (x, x), "a tuple of 2 values")])
def test_check_exercise_names_an_answer_of_the_wrong_kind(capsys, answer, kind):
    assert check(answer) is False
    assert capsys.readouterr().out == (
        f"normalize a batch: not yet. On case 1 your function returned {kind}; "
        "expected an array of shape (8, 3).\n")


def test_check_exercise_none_on_a_later_case_is_a_wrong_answer(capsys):
    def answer(x):     # right on the first case, forgets to return on the second
        if x.shape == (8, 3):
            return reference(x)

    assert check(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("normalize a batch: not yet. On case 2 your function returned None"), out
    assert "not attempted" not in out


def test_check_exercise_not_implemented_on_a_later_case_is_a_wrong_answer(capsys):
    def answer(x):
        if x.shape == (8, 3):
            return reference(x)
        raise NotImplementedError("only the first case")

    assert check(answer) is False
    out = capsys.readouterr().out
    assert out == ("normalize a batch: not yet. On case 2 your function raised "
                   "NotImplementedError.\n"), out


# The learner's versions of the two mistakes, written independently of MISTAKES.
def _ddof_answer(x):
    centred = x - np.sum(x, axis=0) / len(x)
    sample_var = np.sum(centred * centred, axis=0) / (len(x) - 1)
    return centred / (sample_var + EPS) ** 0.5


def _eps_outside_answer(x):
    centred = x - np.sum(x, axis=0) / len(x)
    std = np.mean(centred * centred, axis=0) ** 0.5
    return centred / (std + EPS)


@pytest.mark.parametrize("answer, hint, other", [(_ddof_answer, HINT_DDOF, HINT_EPS),
                                                 (_eps_outside_answer, HINT_EPS, HINT_DDOF)],
                         ids=["ddof", "eps-outside"])
def test_check_exercise_names_the_mistake(capsys, answer, hint, other):
    assert check(answer) is False
    out = capsys.readouterr().out
    assert out == f"normalize a batch: not yet. Hint: {hint}\n", out
    assert other not in out


@pytest.mark.parametrize("offset, verdict", [(0.5e-6, True), (1.5e-6, True), (3e-6, False)])
def test_check_exercise_tolerance(capsys, offset, verdict):
    """tol=1e-6 is absolute and relative: outputs near 1 pass within about 2e-6, not beyond."""
    ones = [(np.zeros(3),)]
    assert check_exercise("ones", lambda x: np.ones(3) + offset, lambda x: np.ones(3), ones,
                          tol=1e-6) is verdict


@pytest.mark.parametrize("answer", [
    lambda x: x - x.mean(axis=0),                      # forgot to divide
    lambda x: reference(x)[:, :1],                     # wrong shape
    lambda x: reference(x) + 1e-3,                     # just off
], ids=["no-division", "wrong-shape", "offset"])
def test_check_exercise_generic_message_for_other_wrong_answers(capsys, answer):
    assert check(answer) is False
    out = capsys.readouterr().out
    assert "not yet. On case 1 your result differs" in out, out
    assert "Hint" not in out


def test_check_exercise_reports_the_failing_case(capsys):
    def right_only_on_first_case(x):
        return reference(x) if x.shape == (8, 3) else np.zeros_like(x)

    assert check(right_only_on_first_case) is False
    assert "On case 2 your result differs" in capsys.readouterr().out


def test_check_exercise_reports_an_exception(capsys):
    def answer(x):
        return x @ np.ones((5, 5))          # shapes do not fit

    assert check(answer) is False
    assert capsys.readouterr().out.startswith("normalize a batch: your function raised ValueError")


def test_check_exercise_copies_inputs_so_mutation_cannot_fool_it(capsys):
    def answer(x):
        out = reference(x)
        x[...] = 0.0                        # a learner's in-place edit of the input
        return out

    assert check(answer) is True


def test_check_exercise_tuple_outputs(capsys):
    def ref(x):
        return x.mean(axis=0), x.var(axis=0)

    def mistake(x):
        return x.var(axis=0), x.mean(axis=0)

    def learner_right(x):
        m = np.sum(x, axis=0) / len(x)
        return m, np.sum((x - m) ** 2, axis=0) / len(x)

    def learner_swapped(x):
        mean, var = learner_right(x)
        return var, mean

    args = [(np.arange(6.0).reshape(3, 2) ** 2,)]
    mistakes = [(mistake, "mean first, then variance")]
    assert check_exercise("moments", learner_right, ref, args, mistakes) is True
    assert check_exercise("moments", learner_swapped, ref, args, mistakes) is False
    assert check_exercise("moments", lambda x: learner_right(x)[0], ref, args, mistakes) is False
    assert check_exercise("moments", lambda x: list(learner_right(x)), ref, args, mistakes) is True
    assert check_exercise("moments", lambda x: [*learner_right(x), x], ref, args, mistakes) is False
    out = capsys.readouterr().out.splitlines()
    assert out == ["moments: passed on every case ✓",
                   "moments: not yet. Hint: mean first, then variance",
                   "moments: not yet. On case 1 your function returned an array of shape (2,); "
                   "expected a tuple of 2 values.",
                   "moments: passed on every case ✓",
                   "moments: not yet. On case 1 your function returned a list of 3 values; "
                   "expected a tuple of 2 values."], out
