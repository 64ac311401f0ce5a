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


def test_image_panels_share_one_scale_and_compute_the_title():
    from bnlib import data

    x = data.random_images()
    fig = en.image_panels(x, "raw images")
    shown = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(shown) == 2 and all(im.get_clim() == (x.min(), x.max()) for im in shown)
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    assert fig._suptitle.get_text() == f"raw images: values from {x.min():.2f} to {x.max():.2f}"


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
    explorer.controls["rate"].value = 1.05
    assert "diverges -> diverges" in explorer.readout.value
    assert "diverges" in raw_axis.get_title()


def _descend_by_loop(x, y, lr, steps):
    """Independent reference: plain gradient steps on 0.5 mean((x w - y)^2)."""
    w, path = np.zeros(x.shape[1]), [np.zeros(x.shape[1])]
    for _ in range(steps):
        w = w - lr * x.T @ (x @ w - y) / len(x)
        path.append(w)
    return np.array(path)


@pytest.mark.parametrize("rate", [None, 0.1, 0.5, 0.9, 1.05])
def test_gradient_descent_path_matches_a_loop(rate):
    x, y = en.regression_data(5.0)
    eig = np.linalg.eigvalsh(x.T @ x / len(x))
    lr = 2 / (eig[0] + eig[-1]) if rate is None else rate * 2 / eig[-1]
    path, steps, _ = en.gradient_descent(x, y, rate=rate)
    n = min(len(path) - 1, 200)
    np.testing.assert_allclose(path[:n + 1], _descend_by_loop(x, y, lr, n), atol=1e-9)
    loss = 0.5 * np.mean((x @ path[-1] - y) ** 2)
    if rate is not None and rate > 1:
        assert steps == 20_000 and len(path) == en.SHOWN_STEPS + 1
        assert loss > 0.5 * np.mean(y ** 2)       # worse than where it started
    else:
        assert steps < 20_000


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_whitening_gives_the_identity_covariance_and_a_round_bowl(rho):
    x, _ = en.correlated_data(rho, 10.0, n=2000)
    w = en.whiten(x)
    np.testing.assert_allclose(np.cov(w.T, bias=True), np.eye(2), atol=1e-10)
    assert en.condition_number(w) == pytest.approx(1.0)
    k = en.condition_number(en.standardize(x)[0])
    assert k == pytest.approx((1 + rho) / (1 - rho), rel=0.1)    # the population value


def test_condition_number_against_numpy():
    x = np.random.default_rng(9).normal(size=(50, 3)) * [1.0, 3.0, 0.5]
    assert en.condition_number(x) == pytest.approx(np.linalg.cond(x) ** 2)


def points_under(artist, xy, transform) -> int:
    """How many of the points ``xy`` (data coordinates) a drawn ``artist`` covers."""
    (x0, y0), (x1, y1) = artist.get_window_extent().get_points()
    x, y = transform.transform(np.reshape(xy, (-1, 2))).T
    return int(np.sum((x0 <= x) & (x <= x1) & (y0 <= y) & (y <= y1)))


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("mean, scale", [(-8.0, 0.25), (8.0, 0.25), (-8.0, 8.0), (8.0, 8.0),
                                         (0.0, 0.25)])
def test_saturation_scene_shows_all_at_the_slider_ends(activation, mean, scale):
    """The curves and the whole histogram fit the fixed axes, clear of the legend,
    and the inputs beyond the axes are counted, not dropped and renormalized away."""
    fig, _ = en.SaturationScene().render(activation=activation, mean=mean, scale=scale)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert (ax.get_xlim(), ax.get_ylim()) == ((-10.0, 10.0), (-1.05, 1.05))
    for line in ax.lines:
        assert -10 <= np.min(line.get_xdata()) and np.max(line.get_xdata()) <= 10
        assert -1.05 < np.min(line.get_ydata()) and np.max(line.get_ydata()) < 1.05
    heights, edges = ax.patches[0].get_data().values, ax.patches[0].get_data().edges
    assert edges[0] == -10 and edges[-1] == 10 and heights.max() == pytest.approx(1.0)
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 > ax.get_window_extent().x1     # beside the axes, over nothing
    z = en._standard_normal(en.HIST_SAMPLE) * scale + mean
    outside = np.mean(np.abs(z) > 10)
    shown = " ".join(t.get_text() for t in ax.texts)
    assert (f"{outside:.0%} of the inputs lie beyond" in shown) if outside else "beyond" not in shown


def test_input_histogram_counts_against_numpy():
    heights, edges, outside = en.input_histogram(8.0, 8.0)
    z = en._standard_normal(en.HIST_SAMPLE) * 8.0 + 8.0
    inside = z[np.abs(z) <= 10]
    counts = np.array([np.sum((inside >= a) & ((inside < b) | (b == 10)))
                       for a, b in zip(edges[:-1], edges[1:])])
    np.testing.assert_allclose(heights, counts / counts.max())
    assert outside == pytest.approx(1 - len(inside) / len(z))
    assert 0.3 < outside < 0.5          # at N(8, 8^2) much of the mass is beyond +10


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
    fig, _ = en.LossScene().render(ratio=ratio, rate=0.0)
    fig.canvas.draw()
    (x0, x1), (y0, y1) = en.LOSS_WINDOW
    for ax in fig.axes[:2]:           # the third is the colour bar
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
    assert en.LOSS_CLIM[0] <= levels.min() and levels.max() <= en.LOSS_CLIM[1]
    distinct = np.unique(levels)
    assert 8 <= len(distinct) <= en.LOSS_LEVELS + 1
    np.testing.assert_allclose(np.diff(distinct), distinct[1] - distinct[0])
    if ratio == 1.0:     # a round bowl, smooth on the grid: interpolation is nearly exact
        for line, level in zip(lines, levels):
            d = line - w_best
            log_loss = np.log10(0.5 * np.einsum("...i,ij,...j->...", d, hessian, d) + loss_min)
            np.testing.assert_allclose(log_loss, level, atol=0.02)


def _seeds_drift_claim(result):
    assert np.all(result["std_high"] < 0.95) and np.all(result["std_low"] < 0.5)
    assert np.all(result["growth_high"] > 2) and np.all(result["shift"] > 0.3)


def test_preactivation_history_against_a_forward_pass_by_hand():
    """The recorded statistics at step 0 are those of tanh(x W1) W2 at the initial weights."""
    from bnlib import nn

    split = en.standardized_digits()
    model = nn.MLP((split.x_train.shape[1], 32, 32, 10), activation="tanh", seed=0)
    z2 = np.tanh(split.x_train @ model.weights[0]) @ model.weights[1]
    h = en.preactivation_history(0)
    np.testing.assert_allclose(h["mean2"][0], z2.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(h["std2"][0], z2.std(axis=0), atol=1e-12)
    assert h["saturated2"][0] == pytest.approx(np.mean(np.abs(np.tanh(z2)) > 0.97))
    assert split.x_train.shape[1] == 60
    np.testing.assert_allclose(split.x_train.mean(axis=0), 0, atol=1e-12)


@pytest.mark.slow
def test_preactivation_drift_on_the_test_seeds():
    """The lesson's claim, on the five seeds it does not use."""
    from bnlib.course.seeds import TEST_SEEDS

    _seeds_drift_claim(en.preactivation_drift(TEST_SEEDS))
