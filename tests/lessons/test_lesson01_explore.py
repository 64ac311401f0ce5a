"""Lesson 01's compute functions and explorers, against closed forms and NumPy."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from bnlib.lessons.lesson01 import explore as en


@pytest.fixture(autouse=True)
def close_figures():
    """Views return open pyplot figures (a lesson shows them): close them after each test."""
    yield
    plt.close("all")


def test_describe_matches_numpy():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(5, 4, 4, 1))
    d = en.describe(x)
    assert d == pytest.approx({"max": x.max(), "min": x.min(), "mean": x.mean(), "var": x.var()})


def test_describe_line_prints_no_signed_zero():
    assert "-0.000" not in en.describe_line("z", np.array([-1e-17, 1e-17, -2e-17]))


@pytest.mark.parametrize("shift, scale", [(0.0, 1.0), (-5.0, 3.0), (40.0, 0.2)])
def test_increasing_affine_map_keeps_order_and_rank_correlation_one(shift, scale):
    x = np.random.default_rng(1).normal(size=(4, 6, 6, 1))
    y = shift + scale * x
    assert en.order_kept(en.flatten_images(x), en.flatten_images(y), axis=1)
    np.testing.assert_allclose(en.rank_correlation_per_image(x, y), 1.0)


def test_rank_correlation_matches_pearson_on_ranks():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(3, 50)), rng.normal(size=(3, 50))
    expected = [np.corrcoef(en.ranks(a[i]), en.ranks(b[i]))[0, 1] for i in range(3)]
    np.testing.assert_allclose(en.rank_correlation_per_image(a, b), expected)
    np.testing.assert_allclose(en.rank_correlation_per_image(a, -a), -1.0)


def _average_ranks_by_counting(row):
    """Independent reference: the rank of v is #(values < v) + (#(values == v) - 1) / 2."""
    row = np.asarray(row)
    return np.array([np.sum(row < v) + (np.sum(row == v) - 1) / 2 for v in row])


def _tied_rows(seed=4):
    """Rows with many exact ties, as per-pixel min-max makes them (values clipped to [0, 1])."""
    rng = np.random.default_rng(seed)
    return np.clip(np.round(rng.normal(0.6, 0.5, size=(3, 200)), 1), 0.0, 1.0)


def test_ranks_give_tied_values_their_average_rank():
    np.testing.assert_array_equal(en.ranks(np.array([10.0, 30.0, 20.0, 30.0])), [0, 2.5, 1, 2.5])
    rows = _tied_rows()
    assert all(len(np.unique(r)) < 20 for r in rows)  # the case under test: mostly ties
    for axis, data in ((1, rows), (0, rows.T)):
        expected = np.array([_average_ranks_by_counting(r) for r in rows])
        np.testing.assert_array_equal(en.ranks(data, axis=axis), expected if axis == 1 else expected.T)


def test_rank_correlation_with_ties_matches_scipy_spearman():
    from scipy.stats import spearmanr

    a, b = _tied_rows(5), np.random.default_rng(6).normal(size=(3, 200))
    expected = [spearmanr(a[i], b[i])[0] for i in range(3)]
    np.testing.assert_allclose(en.rank_correlation_per_image(a, b), expected, rtol=1e-12)
    by_counting = [np.corrcoef(_average_ranks_by_counting(a[i]), _average_ranks_by_counting(b[i]))[0, 1]
                   for i in range(3)]
    np.testing.assert_allclose(en.rank_correlation_per_image(a, b), by_counting, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_correlation_does_not_depend_on_where_ties_sit(seed):
    """Shuffling the pixels (the same way in both versions) moves ties around in memory,
    which changes the order a sort leaves them in; the correlation must not change."""
    a, b = _tied_rows(7), np.random.default_rng(8).normal(size=(3, 200))
    perm = np.random.default_rng(seed).permutation(200)
    np.testing.assert_allclose(en.rank_correlation_per_image(a[:, perm], b[:, perm]),
                               en.rank_correlation_per_image(a, b), rtol=1e-12)


def test_lesson_01_images_have_min_max_ties():
    """The lesson's data really has the ties the rule is for (image 9: 66% of pixels at 1.0)."""
    from bnlib import data, normalize

    scaled = en.flatten_images(normalize.min_max_scale(data.random_images(), axis=0)[0])
    assert np.mean(scaled[9] == 1.0) > 0.6


def test_order_kept_detects_a_swap():
    a = np.array([[1.0, 2.0, 3.0]])
    assert not en.order_kept(a, np.array([[2.0, 1.0, 3.0]]), axis=1)


@pytest.mark.parametrize("z", [-3.0, -0.5, 0.0, 1.2, 4.0])
def test_slopes_match_numerical_derivatives(z):
    h = 1e-6
    for f, grad in ((en.sigmoid, en.sigmoid_grad), (np.tanh, en.tanh_grad)):
        numeric = (f(z + h) - f(z - h)) / (2 * h)
        assert grad(z) == pytest.approx(numeric, rel=1e-7)
    assert en.sigmoid(z) == pytest.approx(1 / (1 + np.exp(-z)))


@pytest.mark.parametrize("activation, bound", [("sigmoid", 3.6), ("tanh", 1.8)])
def test_saturation_matches_gaussian_tail(activation, bound):
    """Inputs N(0, 1): the saturated fraction is P(|z| > bound) for the 10%-slope bound."""
    from math import erfc, sqrt

    grad = dict(sigmoid=en.sigmoid_grad, tanh=en.tanh_grad)[activation]
    peak = float(grad(0.0))
    zs = np.linspace(0, 10, 100_001)
    exact_bound = zs[np.argmax(grad(zs) / peak < en.SATURATED_BELOW)]
    assert exact_bound == pytest.approx(bound, abs=0.05)
    expected = erfc(exact_bound / sqrt(2))
    saturated, _ = en.saturation(activation, 0.0, 1.0, n=200_000)
    assert saturated == pytest.approx(expected, abs=0.003)


def test_saturation_grows_away_from_zero():
    near, _ = en.saturation("sigmoid", 0.0, 1.0)
    far, slope = en.saturation("sigmoid", 6.0, 1.0)
    assert near < 0.01 < 0.5 < far and slope < 0.2


def test_quadratic_minimizer_is_least_squares():
    x, y = en.regression_data(5.0)
    hessian, w_best, loss_min = en.quadratic(x, y)
    w_lstsq = np.linalg.lstsq(x, y, rcond=None)[0]
    np.testing.assert_allclose(w_best, w_lstsq, rtol=1e-10)
    np.testing.assert_allclose(hessian, np.cov(x.T, bias=True) + np.outer(x.mean(0), x.mean(0)))
    assert loss_min == pytest.approx(0.5 * np.mean((x @ w_lstsq - y) ** 2))


@pytest.mark.parametrize("ratio", [3.0, 10.0, 20.0])
def test_descent_steps_follow_condition_number(ratio):
    (path, steps, k), (_, std_steps, std_k) = en.descent_comparison(ratio)
    rate = ((k - 1) / (k + 1)) ** 2       # excess loss shrinks at least this fast per step
    assert steps <= np.ceil(np.log(1e-6) / np.log(rate)) + 1
    assert steps > 0.8 * np.log(1e-6) / np.log(rate)
    assert std_k < 1.1 and std_steps <= 3 and len(path) == steps + 1


def test_descent_reaches_the_minimum():
    x, y = en.regression_data(10.0)
    path, _, _ = en.gradient_descent(x, y)
    _, w_best, _ = en.quadratic(x, y)
    np.testing.assert_allclose(path[-1], w_best, atol=1e-2)


def test_saturation_explorer_updates_readout():
    explorer = en.saturation_explorer()
    before, updates = explorer.readout.value, explorer.updates
    assert "saturated units 0.03%" in before
    explorer.controls["mean"].value = 5.0
    assert explorer.updates == updates + 1 and explorer.readout.value != before
    saturated, slope = en.saturation("sigmoid", 5.0, 1.0)
    assert f"saturated units {saturated:.2%}" in explorer.readout.value
    explorer.controls["activation"].value = "tanh"
    assert "tanh" in explorer.readout.value


def test_loss_explorer_updates_readout_and_paths():
    explorer = en.loss_explorer()
    before = explorer.readout.value
    explorer.controls["ratio"].value = 20.0
    (_, steps, _), (_, std_steps, _) = en.descent_comparison(20.0)
    assert explorer.readout.value != before
    assert f"{steps} -> {std_steps}" in explorer.readout.value
    raw_axis = explorer.figure.axes[0]
    assert f"{steps} steps" in raw_axis.get_title()


def points_under(artist, xy, transform) -> int:
    """How many of the points ``xy`` (data coordinates) a drawn ``artist`` covers."""
    (x0, y0), (x1, y1) = artist.get_window_extent().get_points()
    x, y = transform.transform(np.reshape(xy, (-1, 2))).T
    return int(np.sum((x0 <= x) & (x <= x1) & (y0 <= y) & (y <= y1)))


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("mean, scale", [(-8.0, 0.25), (8.0, 0.25), (-8.0, 8.0), (8.0, 8.0)])
def test_saturation_scene_keeps_its_limits_at_the_slider_ends(activation, mean, scale):
    """The curves fit the fixed axes and the histogram spans them at every setting.

    The histogram's height is not checked: a narrow spread (below about 0.4) makes a
    density taller than the axes, whose top is cut off, as in every earlier version.
    """
    fig, _ = en.saturation_view(activation, mean, scale)
    ax = fig.axes[0]
    assert (ax.get_xlim(), ax.get_ylim()) == ((-10.0, 10.0), (-1.05, 1.05))
    for line in ax.lines:
        assert -10 <= np.min(line.get_xdata()) and np.max(line.get_xdata()) <= 10
        assert -1.05 < np.min(line.get_ydata()) and np.max(line.get_ydata()) < 1.05
    edges = ax.patches[0].get_data().edges
    assert edges[0] == -10 and edges[-1] == 10


def test_standardized_problem_does_not_depend_on_the_ratio():
    """Why the loss scene draws the standardized panel once: every ratio gives the same one."""
    x1, y1 = en.regression_data(1.0)
    _, (path1, steps1, k1) = en.descent_comparison(1.0)
    for ratio in np.arange(1.0, 31.0):      # every value of the slider
        x, y = en.regression_data(ratio)
        np.testing.assert_allclose(en.standardize(x)[0], en.standardize(x1)[0], atol=1e-12)
        np.testing.assert_array_equal(y, y1)
        _, (path, steps, k) = en.descent_comparison(ratio)
        np.testing.assert_allclose(path, path1, atol=1e-12)
        assert steps == steps1 and k == pytest.approx(k1, rel=1e-12)


@pytest.mark.parametrize("ratio", np.arange(1.0, 31.0))
def test_loss_window_holds_every_path_and_minimum_clear_of_the_legend(ratio):
    fig, _ = en.loss_view(ratio)
    fig.canvas.draw()
    (x0, x1), (y0, y1) = en.LOSS_WINDOW
    for ax in fig.axes:
        assert (ax.get_xlim(), ax.get_ylim()) == en.LOSS_WINDOW
        for line in ax.lines:          # the shown path and the minimum
            xy = line.get_xydata()
            assert np.all((x0 < xy[:, 0]) & (xy[:, 0] < x1) & (y0 < xy[:, 1]) & (xy[:, 1] < y1))
            assert points_under(ax.get_legend(), xy, ax.transData) == 0, line.get_label()


@pytest.mark.parametrize("ratio", [1.0, 10.0, 30.0])
def test_loss_contours_lie_on_evenly_spaced_levels(ratio):
    x, y = en.regression_data(ratio)
    hessian, w_best, loss_min = en.quadratic(x, y)
    lines, levels = en.loss_contours(x, y)
    assert len(lines) == len(levels)
    distinct = np.unique(levels)
    assert 8 <= len(distinct) <= en.LOSS_LEVELS + 1
    np.testing.assert_allclose(np.diff(distinct), distinct[1] - distinct[0])
    if ratio == 1.0:     # a round bowl, smooth on the grid: interpolation is nearly exact
        for line, level in zip(lines, levels):
            d = line - w_best
            log_loss = np.log10(0.5 * np.einsum("...i,ij,...j->...", d, hessian, d) + loss_min)
            np.testing.assert_allclose(log_loss, level, atol=0.02)
