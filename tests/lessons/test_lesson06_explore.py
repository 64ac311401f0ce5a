"""Lesson 06: weighted line fits, density-ratio estimation, the shift and layer-input explorers."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import PIL.Image
import pytest

from bnlib import data
from bnlib.course import plots, seeds, widgets
from bnlib.lessons.lesson06 import experiments, explore

SMALL_RUN = {"steps": 40, "eval_every": 20}  # a short training: the scene's logic, quickly


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_line_matches_polyfit(seed):
    rng = np.random.default_rng(seed)
    x, y, w = rng.normal(size=40), rng.normal(size=40), rng.uniform(0.1, 3, size=40)
    # np.polyfit's weights multiply the residuals (not their squares): pass sqrt(w).
    expected = np.polyfit(x, y, 1, w=np.sqrt(w))
    np.testing.assert_allclose(explore.fit_line(x, y, w), expected, rtol=1e-10)
    np.testing.assert_allclose(explore.fit_line(x, y), np.polyfit(x, y, 1), rtol=1e-10)


def test_fit_line_recovers_exact_line():
    x = np.linspace(-1, 1, 9)
    np.testing.assert_allclose(explore.fit_line(x, 3 * x - 2), [3, -2], atol=1e-12)


def test_importance_weights_are_the_density_ratio():
    d = data.covariate_shift(1.0, seed=3)
    w = explore.importance_weights(d.x_source, d.source_pdf, d.target_pdf)
    from scipy.stats import norm
    expected = norm.pdf(d.x_source, 1.0, 0.5) / norm.pdf(d.x_source, 0.0, 0.7)
    np.testing.assert_allclose(w, expected, rtol=1e-12)


def test_classifier_ratio_approaches_true_ratio_on_a_large_sample():
    d = data.covariate_shift(1.0, n_source=20000, n_target=10000, seed=4)
    predict = explore.fit_domain_classifier(d.x_source, d.x_target)
    x = np.linspace(-0.5, 1.5, 21)  # where both densities have mass
    est = explore.odds_weights(predict(x), 20000, 10000)
    true = d.target_pdf(x) / d.source_pdf(x)
    np.testing.assert_allclose(est, true, rtol=0.1)


@pytest.mark.parametrize("p, ns, nt, expected", [(0.5, 100, 100, 1.0), (0.5, 300, 100, 3.0),
                                                 (0.8, 100, 100, 4.0), (0.2, 50, 100, 0.125)])
def test_odds_weights(p, ns, nt, expected):
    assert explore.odds_weights(p, ns, nt) == pytest.approx(expected)


@pytest.mark.parametrize("w, expected", [(np.ones(10), 10.0), (np.r_[1.0, np.zeros(9)], 1.0),
                                         (np.array([1.0, 1.0, 2.0, 2.0]), 3.6)])
def test_effective_sample_size(w, expected):
    assert explore.effective_sample_size(w) == pytest.approx(expected)


def test_weighting_repairs_the_shifted_fit():
    e = explore.shift_experiment(1.5)["errors"]
    assert e["plain"][0] < 0.5 < 2.0 < e["plain"][1]          # good on source, bad on target
    assert e["known"][1] < e["plain"][1] / 5
    assert e["estimated"][1] < e["plain"][1] / 5
    assert e["best"][1] <= min(e["known"][1], e["estimated"][1]) + 1e-12


def test_no_shift_no_harm():
    e = explore.shift_experiment(0.0)["errors"]
    assert e["known"][1] <= e["plain"][1]


def test_shift_explorer_updates_readout():
    explorer = explore.shift_explorer()
    before, updates = explorer.readout.value, explorer.updates
    explorer.controls["shift"].value = 2.5
    assert explorer.updates == updates + 1
    assert explorer.readout.value != before
    e = explore.shift_experiment(2.5)["errors"]
    assert f"plain {e['plain'][1]:.3f}" in explorer.readout.value
    assert f"{e['known'][1]:.3f}" in explorer.readout.value
    xs = explorer.figure.axes[0].collections[1].get_offsets()[:, 0]
    np.testing.assert_allclose(xs, data.covariate_shift(2.5).x_target)


@pytest.fixture(autouse=True)
def course_style():
    with matplotlib.rc_context(plots.STYLE):
        yield


def slider_settings(control) -> np.ndarray:
    """Every value a slider can take."""
    return np.arange(control.min, control.max + control.step / 2, control.step)


def assert_inside(ax, xy):
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    xy = np.asarray(xy)
    assert len(xy) and np.all((x0 <= xy[:, 0]) & (xy[:, 0] <= x1)), (ax.get_title(), x0, x1)
    assert np.all((y0 <= xy[:, 1]) & (xy[:, 1] <= y1)), (ax.get_title(), y0, y1)


def frame_differs(explorer, fresh_fig) -> float:
    """Fraction of pixels where the explorer's frame and a full draw of ``fresh_fig`` differ."""
    try:
        reference = widgets.figure_png(fresh_fig)
    finally:
        plt.close(fresh_fig)
    a, b = (np.asarray(PIL.Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
            for png in (explorer.image.value, reference))
    return float(np.mean(np.abs(a - b).max(axis=2) > 0))


def test_shift_scene_limits_hold_the_samples_and_densities_at_every_shift():
    shifts = slider_settings(explore.shift_explorer().controls["shift"])
    scene = explore.ShiftScene()
    ax, ax2 = scene.fig.axes
    limits = [(a.get_xlim(), a.get_ylim()) for a in scene.fig.axes]
    for shift in shifts:
        scene.update(shift=shift)
        for sample in scene.samples.values():
            assert_inside(ax, sample.get_offsets())
        for density in scene.densities:
            assert_inside(ax2, density.get_xydata())
    assert [(a.get_xlim(), a.get_ylim()) for a in scene.fig.axes] == limits
    plt.close(scene.fig)


@pytest.mark.parametrize("shift", [0.0, 3.0])
def test_shift_explorer_frame_at_the_slider_ends_matches_a_full_draw(shift):
    explorer = explore.shift_explorer()
    explorer.controls["shift"].value = shift
    assert frame_differs(explorer, explore.ShiftScene().render(shift=shift)[0]) <= 0.002


def test_layer_input_scene_limits_hold_every_unit():
    explorer = explore.layer_input_explorer(**SMALL_RUN)
    scene = explorer.scene
    limits = [(a.get_xlim(), a.get_ylim()) for a in scene.fig.axes]
    for unit in slider_settings(explorer.controls["unit"]):
        scene.update(unit=int(unit))
        for ax, band, median in zip(scene.fig.axes, scene.bands, scene.medians):
            assert_inside(ax, band.get_paths()[0].vertices)
            assert_inside(ax, median.get_xydata())
    assert [(a.get_xlim(), a.get_ylim()) for a in scene.fig.axes] == limits


@pytest.mark.parametrize("unit", [0, 50, 99])
def test_layer_input_explorer_frame_matches_a_full_draw(unit):
    # the legend is live with loc="best": it moves with the unit's band, on top of it
    explorer = explore.layer_input_explorer(**SMALL_RUN)
    explorer.controls["unit"].value = unit
    fresh_fig, _ = explore.LayerInputScene(**SMALL_RUN).render(unit=unit)
    assert frame_differs(explorer, fresh_fig) <= 0.002


def test_layer_input_scene_names_the_unit_and_draws_one_panel_per_net():
    fig, text = explore.LayerInputScene(("batch",), **SMALL_RUN).render(unit=3)
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "batch norm"
    assert "input of unit 3, last hidden layer" in [t.get_text() for t in fig.axes[0].texts]
    assert text.startswith("       batch norm: unit 3 moved")
    plt.close(fig)


def test_drift_figure_draws_every_seed_and_lists_both_measures():
    fig, text = explore.drift_figure(seeds=(0, 1), nets=("none", "batch"), **SMALL_RUN)
    ax, ax1, ax2 = fig.axes
    # per net: a line per seed, the median
    assert len(ax.lines) == len(ax1.lines) == len(ax2.lines) == 2 * (2 + 1)
    runs = experiments.shift_runs("none", (0, 1), **SMALL_RUN)
    for line, jumps, r in zip(ax.lines, ax1.lines, runs):
        np.testing.assert_allclose(line.get_ydata(), r["movement"]["path"])
        q = r["quantiles"]
        np.testing.assert_allclose(jumps.get_ydata(),
                                   np.abs(np.diff(q, axis=0)).mean(axis=(1, 2)))
    np.testing.assert_allclose(ax.lines[2].get_ydata(),
                               np.median([r["movement"]["path"] for r in runs], axis=0))
    np.testing.assert_allclose(ax2.lines[0].get_ydata(), runs[0]["history"].test_accuracy)
    drifts = "".join(f"{r['movement']['total']:7.2f}" for r in runs)
    jitters = "".join(f"{r['movement']['per_step']:7.2f}" for r in runs)
    assert f"no batch norm: drift{drifts}" in text and f"jitter{jitters}" in text
    plt.close(fig)


def test_learning_rate_figure_gives_one_verdict_per_rate():
    fig, text = explore.learning_rate_figure(seeds=(0, 1), lrs=(0.4, 0.8), steps=150)
    v = experiments.learning_rate_verdicts((0, 1), lrs=(0.4, 0.8), steps=150)
    for lr in (0.4, 0.8):
        assert f"learning rate {lr}: settled on {v[lr]['settled'].sum()} of 2 seeds" in text
    assert [len(ax.lines) for ax in fig.axes] == [3, 3]     # two seeds and the threshold
    assert "accuracy" not in text                          # chaotic runs: verdicts only
    plt.close(fig)


def test_compounding_figure_draws_every_seed():
    fig, _ = explore.compounding_figure(seeds=(0, 1, 2), depth=3, width=16)
    lines = fig.axes[0].lines
    assert len(lines) == 2 * (3 + 1)
    np.testing.assert_allclose(lines[1].get_ydata(),
                               experiments.compounding_shift("none", depth=3, width=16, seed=1))
    plt.close(fig)


def test_weighting_over_seeds_reads_each_samples_experiment():
    r = explore.weighting_over_seeds(seeds=(0, 7), shift=1.0)
    for i, seed in enumerate((0, 7)):
        d = data.covariate_shift(1.0, seed=seed)
        w = d.target_pdf(d.x_source) / d.source_pdf(d.x_source)
        weighted = np.polyfit(d.x_source, d.y_source, 1, w=np.sqrt(w))
        plain, best = np.polyfit(d.x_source, d.y_source, 1), np.polyfit(d.x_target, d.y_target, 1)
        target_mse = {k: np.mean((np.polyval(c, d.x_target) - d.y_target) ** 2)
                      for k, c in (("weighted", weighted), ("plain", plain), ("best", best))}
        assert r["vs_plain"][i] == pytest.approx(target_mse["weighted"] / target_mse["plain"])
        assert r["vs_best"][i] == pytest.approx(target_mse["weighted"] / target_mse["best"])
        assert r["ess"][i] == pytest.approx(w.sum() ** 2 / (w ** 2).sum())


@pytest.mark.slow
def test_claim_weighting_repairs_the_shift_on_other_samples():
    """The lesson's claims over samples (seeds 0-4), on the samples of TEST_SEEDS."""
    r0, r15, r3 = (explore.weighting_over_seeds(seeds.TEST_SEEDS, shift)
                   for shift in (0.0, 1.5, 3.0))
    assert np.all(np.maximum(r15["vs_plain"], r15["vs_plain_estimated"]) < 0.1)
    assert np.all(r15["vs_best"] < 1.3), r15["vs_best"]
    assert np.all(r0["vs_plain"] < 1), r0["vs_plain"]
    assert np.all(r3["ess"] < 10) and np.all(r3["vs_best"] > 10), (r3["ess"], r3["vs_best"])


@pytest.mark.parametrize("values, expected", [([3.0, 1.0, 2.0, 5.0], [2.0, 2.0]),
                                              ([4.0, 1.0], [4.0, 1.0])])
def test_running_median(values, expected):
    np.testing.assert_array_equal(explore._running_median(values, window=3), expected)


def test_gradient_shift_figure_draws_layer_3_of_every_seed():
    fig, text = explore.gradient_shift_figure(seeds=(0, 1), nets=("none", "batch"), split=30,
                                              **SMALL_RUN)
    ax, ax1 = fig.axes
    assert len(ax.lines) == len(ax1.lines) == 2 * (2 + 1)
    runs = experiments.shift_runs("batch", (0, 1), **SMALL_RUN)
    np.testing.assert_allclose(ax1.lines[3].get_ydata(), runs[0]["history"].recorded["cos3"][1:])
    # records at steps 0, 20, 40: the early phase (1-29) is step 20, the late one (30+) step 40
    early = [r["history"].recorded["cos3"][1] for r in runs]
    late = [r["history"].recorded["cos3"][2] for r in runs]
    for phase, values in (("steps 1-29", early), ("steps 30+", late)):
        assert f"{'batch norm':>16}, {phase:>11}: cos(G, G') {seeds.spread(values)}" in text
    plt.close(fig)


def test_curvature_figure_draws_every_seed_and_the_stability_line():
    options = {"steps": 20, "every": 10}
    fig, text = explore.curvature_figure(seeds=(0, 1), lr=0.4, **options)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 * (2 + 1) + 1
    assert ax.lines[-1].get_ydata()[0] == pytest.approx(5.0)
    run = experiments.curvature_run("none", seed=1, lr=0.4, **options)
    np.testing.assert_allclose(ax.lines[1].get_ydata(), run["curvature"])
    assert "largest" in text
    plt.close(fig)
