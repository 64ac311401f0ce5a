"""Lesson 05's compute functions, its table of runs and its explorer."""
import ipywidgets
import numpy as np
import pytest

from bnlib import explore_network as en
from bnlib import nn


def _history(p15, p50, p85):
    n = len(p15)
    return nn.History(step=np.arange(1, n), loss=np.zeros(n - 1), eval_step=np.arange(n),
                      test_accuracy=np.zeros(n),
                      recorded={"p15": np.array(p15), "p50": np.array(p50), "p85": np.array(p85)})


def test_band_drift_measures_range_and_width():
    d = en.band_drift(_history([-1.0, -2.0, -1.5], [0.0, 0.5, 0.0], [1.0, 1.0, 1.5]))
    np.testing.assert_allclose(d["range"], [1.0, 0.5, 0.5])
    assert d["width"] == pytest.approx(3.0)
    assert d["drift"] == pytest.approx(1.0 / 3.0)


@pytest.mark.parametrize("acc,expected", [
    ([[0.95, 0.92, 0.5], [0.96, 0.91, 0.95]], 0.3),   # lr 1 fails on seed 0
    ([[0.95, 0.92, 0.93], [0.96, 0.91, 0.95]], 1.0),
    ([[0.5, 0.6, 0.7]], None),
])
def test_largest_that_trains_needs_every_seed(acc, expected):
    assert en.largest_that_trains((0.1, 0.3, 1.0), np.array(acc)) == expected


def test_smooth_is_a_trailing_mean():
    x = np.arange(10.0) ** 2
    expected = [x[max(0, i - 2):i + 1].mean() for i in range(10)]
    np.testing.assert_allclose(en.smooth(x, window=3), expected)


def test_final_accuracies_shape_and_values():
    acc = en.final_accuracies("batch", (0.1, 1.0), vary="lr", seeds=(0, 1), steps=20)
    assert acc.shape == (2, 2)
    assert acc[1, 0] == en.run("batch", lr=0.1, steps=20, seed=1)[1].final_accuracy


def test_sigmoid_input_percentiles_use_batch_statistics_and_restore_moving_ones():
    model = nn.MLP((64, 20, 20, 10), norm="batch", seed=0)
    x = en.digits().x_test[:100]
    nn.train(model, en.digits(), steps=30)
    before = [(n.moving_mean.copy(), n.moving_variance.copy()) for n in model.norms]
    p = en.sigmoid_input_percentiles(model, x, unit=3)
    for n, (mean, var) in zip(model.norms, before):
        np.testing.assert_array_equal(n.moving_mean, mean)
        np.testing.assert_array_equal(n.moving_variance, var)
    z1 = x @ model.weights[0]
    z1 = model.norms[0].gamma * (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + 1e-3) + model.norms[0].beta
    z2 = (1 / (1 + np.exp(-z1))) @ model.weights[1]
    z2 = model.norms[1].gamma * (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + 1e-3) + model.norms[1].beta
    np.testing.assert_allclose(p, np.percentile(z2[:, 3], [15, 50, 85]), rtol=1e-10)


def test_mode_accuracies_restore_statistics_and_batch_of_one_is_constant():
    model, _ = en.run("batch", lr=0.5, steps=100)
    mean = model.norms[0].moving_mean.copy()
    modes = en.mode_accuracies(model, en.digits(), batch_sizes=(450, 1))
    np.testing.assert_array_equal(model.norms[0].moving_mean, mean)
    assert modes["inference"] == nn.accuracy(model, en.digits().x_test, en.digits().y_test)
    # a batch of one is normalized to beta: every example gets the same class
    counts = np.bincount(en.digits().y_test, minlength=10) / len(en.digits().y_test)
    assert any(modes["training, batch 1"] == pytest.approx(c) for c in counts)


def test_figure1_records_the_three_percentiles():
    h = en.figure1(None, steps=40)
    assert set(h.recorded) == {"p15", "p50", "p85"}
    assert h.eval_step.tolist() == [0, 20, 40]
    assert np.all(h.recorded["p15"] <= h.recorded["p50"])
    assert np.all(h.recorded["p50"] <= h.recorded["p85"])


def test_run_view_readout_matches_the_run():
    fig, text = en.run_view(lr=1.0, init_scale=1.0, batch_norm=True)
    h = en.run("batch", lr=1.0)[1]
    assert text == en.run_readout("with BN, lr 1, init scale 1", h)
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 1
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), h.test_accuracy)


STALE = "the explorer's run table does not match the code: run `make tables`"


def test_run_table_holds_every_setting_trained_with_the_defaults_of_run():
    with np.load(en.RUN_TABLE) as npz:
        saved = {name[len("run_"):]: npz[name].tolist() for name in npz.files
                 if name.startswith("run_")}
    defaults = {name: np.asarray(value).tolist() for name, value in en.run_defaults().items()}
    assert saved == defaults, STALE
    assert {"sizes", "steps", "seed", "eval_every"} <= set(defaults)
    assert len(en.explorer_settings()) == 70
    assert set(en.run_table()) == set(en.explorer_settings()), STALE


@pytest.mark.parametrize("lr, init_scale, batch_norm", [
    (1.0, 1.0, True),      # the explorer's starting point
    (3.0, 0.1, False),
    (10.0, 1.0, True),     # a large learning rate that batch norm keeps stable
])
def test_run_table_equals_a_fresh_training(lr, init_scale, batch_norm):
    # Training is deterministic (fixed seeds, one BLAS thread), so on the machine that made
    # the table this matches to the last bit. rtol 1e-9 leaves room for another CPU's
    # rounding, no more. Only stable settings are compared: 20 of the 70 (large learning
    # rates, init scale 100) are chaotic, where a last-bit difference grows into a different
    # curve (test_sensitivity_separates_stable_and_chaotic_training).
    table = en.run_table()[(lr, init_scale, batch_norm)]
    fresh = en.run("batch" if batch_norm else None, lr=lr, init_scale=init_scale)[1]
    for name in ("step", "loss", "eval_step", "test_accuracy"):
        np.testing.assert_allclose(getattr(table, name), getattr(fresh, name), rtol=1e-9,
                                   atol=0, err_msg=f"{name}: {STALE}")
    assert table.diverged == fresh.diverged, STALE
    assert en.sensitivity("batch" if batch_norm else None, lr=lr, init_scale=init_scale) < 1e-9


def test_sensitivity_separates_stable_and_chaotic_training():
    assert en.sensitivity("batch", lr=10.0, init_scale=1.0) < 1e-9
    assert en.sensitivity(None, lr=10.0, init_scale=1.0) > 0.01
    assert en.sensitivity(None, lr=1.0, init_scale=1.0, nudge=0.0) == 0.0


def _run_history(n_steps, diverged):
    loss = np.linspace(2.0, 1.0, n_steps)
    if diverged:
        loss[-1] = np.nan
    evals = np.arange(0, n_steps + 1, 2)
    return nn.History(step=np.arange(1, n_steps + 1), loss=loss, eval_step=evals,
                      test_accuracy=evals / 10, diverged=diverged)


def test_run_table_file_keeps_a_run_that_stopped_early(tmp_path):
    grid = [(0.1, 1.0, True), (30.0, 10.0, False)]
    hists = [_run_history(6, False), _run_history(3, True)]
    en._save_table(tmp_path / "runs.npz", grid, hists)
    table = en.run_table(tmp_path / "runs.npz")
    assert list(table) == grid
    for saved, h in zip(table.values(), hists):
        for name in ("step", "loss", "eval_step", "test_accuracy"):
            np.testing.assert_array_equal(getattr(saved, name), getattr(h, name))
        assert saved.diverged == h.diverged


def test_a_table_made_with_other_training_settings_is_not_used(tmp_path):
    with np.load(en.RUN_TABLE) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["run_steps"] = np.array(200)
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.warns(UserWarning, match="run `make tables`"):
        assert en.run_table(tmp_path / "old.npz") == {}


def test_a_setting_off_the_sliders_is_trained():
    assert (0.5, 1.0, True) not in en.run_table()
    text = en.RunScene().update(lr=0.5, init_scale=1.0, batch_norm=True)
    assert text == en.run_readout("with BN, lr 0.5, init scale 1", en.run("batch", lr=0.5)[1])


def test_run_explorer_answers_every_control_without_a_button():
    explorer = en.run_explorer()
    assert not any(isinstance(w, ipywidgets.Button) for w in vars(explorer).values())
    assert explorer.updates == 1
    for updates, (name, value) in enumerate(
            [("lr", 10.0), ("init_scale", 0.1), ("batch_norm", False)], start=2):
        explorer.controls[name].value = value
        assert explorer.updates == updates, name
        lr, scale, bn = (explorer.controls[k].value for k in ("lr", "init_scale", "batch_norm"))
        label = f"{'with' if bn else 'without'} BN, lr {lr:g}, init scale {scale:g}"
        fresh = en.run("batch" if bn else None, lr=lr, init_scale=scale)[1]
        assert explorer.readout.value == f"<pre>{en.run_readout(label, fresh)}</pre>"
    assert "without BN, lr 10, init scale 0.1" in explorer.readout.value


def test_run_scene_limits_hold_every_curve():
    scene = en.RunScene()
    limits = [(ax.get_xlim(), ax.get_ylim()) for ax in scene.fig.axes]
    assert limits == [(en.STEP_LIMITS, en.LOSS_LIMITS), (en.STEP_LIMITS, (0.0, 1.0))]
    for lr, init_scale, batch_norm in en.explorer_settings():
        scene.update(lr=lr, init_scale=init_scale, batch_norm=batch_norm)
        for line, (xlim, ylim) in zip(scene.lines, limits):
            x, y = line.get_xdata(), line.get_ydata()
            setting = (lr, init_scale, batch_norm)
            assert np.all(np.isfinite(y)), setting
            assert xlim[0] < x.min() and x.max() < xlim[1], setting
            assert ylim[0] <= y.min() and y.max() <= ylim[1], setting
    assert [(ax.get_xlim(), ax.get_ylim()) for ax in scene.fig.axes] == limits
