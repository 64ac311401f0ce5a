"""Lesson 09's experiments, its table of runs, its explorers, its diagram and its Keras side."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.image as mpimg
import numpy as np
import pytest

from bnlib import cnn, nn
from bnlib.course import plots, seeds
from bnlib.lessons.lesson09 import diagram
from bnlib.lessons.lesson09 import explore as ex

REPO = Path(__file__).resolve().parents[2]
STALE = ("lesson 09's run table does not match the code: "
         "run `python -m bnlib.lessons.lesson09.explore`")


@pytest.fixture(autouse=True)
def course_style():
    with matplotlib.rc_context(plots.STYLE):
        yield


# ---------------------------------------------------------------- 1. which axes

@pytest.fixture(scope="module")
def maps():
    return np.random.default_rng(0).normal(2.0, 3.0, size=(5, 4, 3, 6))


def test_statistics_of_each_kind_match_explicit_loops(maps):
    n, h, w, c = maps.shape
    expected = {
        "batch": [maps[..., k].mean() for k in range(c)],
        "per-pixel": [[[maps[:, i, j, k].mean() for k in range(c)] for j in range(w)]
                      for i in range(h)],
        "layer": [maps[e].mean() for e in range(n)],
        "instance": [[maps[e, :, :, k].mean() for k in range(c)] for e in range(n)],
        "group": [[maps[e, :, :, 2 * g:2 * g + 2].mean() for g in range(3)] for e in range(n)],
    }
    counts = {"batch": n * h * w, "per-pixel": n, "layer": h * w * c, "instance": h * w,
              "group": h * w * 2}
    for kind, mean in expected.items():
        got_mean, got_var, count = ex.statistics(maps, kind, groups=3)
        np.testing.assert_allclose(got_mean, mean, rtol=1e-12, err_msg=kind)
        assert count == counts[kind], kind
        assert got_var.shape == got_mean.shape and np.all(got_var > 0), kind
    var = ex.statistics(maps, "instance")[1]
    assert var[1, 2] == pytest.approx(maps[1, :, :, 2].var(), rel=1e-12)


@pytest.mark.parametrize("kind", ex.NORM_KINDS)
def test_bnlib_normalizes_over_the_statistics_of_its_kind(maps, kind):
    np.testing.assert_allclose(ex.bnlib_normalize(maps, kind, groups=3),
                               ex.normalize_by_formula(maps, kind, groups=3), atol=1e-12)


def test_statistics_refuse_a_bad_kind_or_group_count(maps):
    with pytest.raises(ValueError, match="kind"):
        ex.statistics(maps, "pixel")
    with pytest.raises(ValueError, match="groups"):
        ex.statistics(maps, "group", groups=4)


def test_feature_maps_are_a_convolution_of_the_digits():
    fmaps = ex.feature_maps()
    assert fmaps.shape == (1347, 8, 8, 8) and not fmaps.flags.writeable
    x = ex.digit_images().x_train[7, :, :, 0]
    kernel = ex.random_kernel(1, 8, 0)[:, :, 0, 3]
    padded = np.pad(x, 1)
    assert fmaps[7, 2, 5, 3] == pytest.approx(np.sum(padded[2:5, 5:8] * kernel), rel=1e-12)


# ---------------------------------------------------------------- 2. how noisy

def test_batch_noise_matches_a_direct_computation():
    r = ex.batch_noise(4, 3, channel=2, seed=1, n_batches=30)
    values = ex.feature_maps(1)[:, 2:5, 2:5, 2]
    rows = np.random.default_rng([1, 4, 3, 2]).integers(0, 1347, size=(30, 4))
    batches = values[rows]                                     # (30, 4, 3, 3)
    mu, sigma = values.mean(), values.std()
    np.testing.assert_allclose(r["shift"], (batches.mean(axis=(1, 2, 3)) - mu) / sigma)
    np.testing.assert_allclose(r["scale"], sigma / np.sqrt(batches.var(axis=(1, 2, 3)) + ex.EPS))
    k = ex.example_image(2, 1)
    rows[:, 0] = k
    batches = values[rows]
    expected = (values[k, 1, 1] - batches.mean(axis=(1, 2, 3))) / np.sqrt(
        batches.var(axis=(1, 2, 3)) + ex.EPS)
    np.testing.assert_allclose(r["output"], expected, rtol=1e-9)
    assert r["count"] == 36
    assert r["image_spread"] == pytest.approx(values.mean(axis=(1, 2)).std() / sigma)


@pytest.mark.parametrize("n", [2, 16, 256])
def test_one_value_per_image_follows_the_one_over_sqrt_n_law(n):
    s = ex.noise_summary(n, 1)
    assert s["spread"] == pytest.approx(s["per_image_law"], rel=0.1)


@pytest.mark.parametrize("n, size", [(2, 8), (8, 4), (64, 2), (256, 8)])
def test_the_spread_is_the_images_spread_over_sqrt_n(n, size):
    s = ex.noise_summary(n, size)
    assert s["spread"] == pytest.approx(s["image_law"], rel=0.1)


def test_noise_claim_on_the_test_seeds():
    r = ex.noise_claim(seeds=seeds.TEST_SEEDS)
    assert r["to_iid"].shape == (5, 8, 2)
    assert r["to_iid"].max() < 1.5
    assert r["to_per_image"].max() < 0.2
    assert r["output_spread"].max() < 0.2


# ---------------------------------------------------------------- explorers

# Frames equal to a full draw: tests/course/test_scenes.py checks every lesson's explorers;
# their speed is `make bench`'s (tests/benchmarks/bench_explorers.py), not a timed test.


def test_noise_explorer_readout_and_artists_follow_the_controls():
    explorer = ex.noise_explorer()
    before = explorer.updates
    explorer.controls["batch_size"].value = 32
    explorer.controls["size"].value = 4
    assert explorer.updates == before + 2
    s = ex.noise_summary(32, 4)
    assert f"spread of the batch mean: {s['spread']:.3f}" in explorer.readout.value
    assert "N = 32 images x 4x4 positions = 512 values" in explorer.readout.value
    scene = explorer.scene
    np.testing.assert_allclose(scene.point.get_ydata(), [s["spread"]])
    np.testing.assert_allclose(scene.iid.get_ydata(), 1 / np.sqrt(np.array(ex.BATCH_GRID) * 16))
    counts = scene.hist.get_data().values
    inside = np.sum((ex.batch_noise(32, 4)["output"] >= ex.HIST_RANGE[0])
                    & (ex.batch_noise(32, 4)["output"] <= ex.HIST_RANGE[1]))
    assert counts.sum() == inside


def test_noise_scene_limits_hold_for_every_setting():
    scene = ex.NoiseScene()
    limits = [(ax.get_xlim(), ax.get_ylim()) for ax in scene.fig.axes]
    for n in ex.BATCH_GRID:
        for size in ex.SPATIAL_SIZES:
            scene.update(batch_size=n, size=size)
            output = ex.batch_noise(n, size)["output"]
            # nearly every batch lands in the histogram (the rest: N = 2 with one value per image)
            inside = np.mean((output > ex.HIST_RANGE[0]) & (output < ex.HIST_RANGE[1]))
            assert inside > 0.95, (n, size)
            assert scene.hist.get_data().values.max() <= limits[0][1][1]
            spreads = np.asarray(scene.measured.get_ydata())
            assert ex.NOISE_YLIM[0] < spreads.min() and spreads.max() < ex.NOISE_YLIM[1]
            assert ex.NOISE_YLIM[0] < min(scene.iid.get_ydata())
            assert limits[0][0][0] < scene.ideal.get_xdata()[0] < limits[0][0][1]
    assert [(ax.get_xlim(), ax.get_ylim()) for ax in scene.fig.axes] == limits


def test_train_explorer_readout_follows_the_table():
    explorer = ex.train_explorer()
    explorer.controls["lr"].value = 3.0
    assert explorer.readout.value == f"<pre>{ex.train_readout(3.0)}</pre>"
    assert "lr 3, plain     : 5 does not learn" in explorer.readout.value
    scene = explorer.scene
    thin, thick = scene.lines[True, "accuracy"]
    np.testing.assert_allclose(thin[0].get_ydata(), ex.history(True, 3.0, 0).test_accuracy)
    for line in thin + [thick]:
        assert min(line.get_ydata()) >= 0 and max(line.get_ydata()) <= 1


def test_train_scene_limits_hold_for_every_learning_rate():
    scene = ex.TrainScene()
    limits = [(ax.get_xlim(), ax.get_ylim()) for ax in scene.fig.axes]
    for lr in ex.LR_GRID:
        scene.update(lr=lr)
        for (bn, kind), (thin, thick) in scene.lines.items():
            for line in thin + [thick]:
                x, y = (np.asarray(v, float) for v in line.get_data())
                assert limits[0][0][0] < x.min() and x.max() < limits[0][0][1]
                low, high = ex.TRAIN_LOSS_LIMITS if kind == "loss" else (0, 1)
                assert low <= y.min() and y.max() <= high
        for h in ex.histories(True, lr) + ex.histories(False, lr):   # clipping hides nothing big
            assert np.all(plots.smooth(h.loss) > ex.TRAIN_LOSS_LIMITS[0])
    assert [(ax.get_xlim(), ax.get_ylim()) for ax in scene.fig.axes] == limits


# ---------------------------------------------------------------- 3. training and its table

def test_run_table_holds_every_setting_trained_with_the_defaults_of_run():
    with np.load(ex.RUN_TABLE) as npz:
        saved = {name[len("setting_"):]: npz[name].tolist() for name in npz.files
                 if name.startswith("setting_")}
    assert saved == {name: np.asarray(v).tolist() for name, v in ex.run_defaults().items()}, STALE
    assert set(ex.run_defaults()) == {"steps", "batch_size", "momentum", "eval_every"}
    assert set(ex.run_table()) == set(ex.table_settings()), STALE
    assert len(ex.table_settings()) == 60


@pytest.mark.parametrize("batch_norm, lr, seed", [
    (True, 0.3, 0),       # the lesson's own check and its folded network
    (False, 0.3, 1),
    (True, 3.0, 2),       # a large rate batch norm keeps stable
    (False, 3.0, 4),      # a run that learns nothing, stably
])
def test_run_table_equals_a_fresh_training(batch_norm, lr, seed):
    # Training is deterministic (fixed seeds, one BLAS thread): on the machine that made the
    # table this matches to the last bit; rtol 1e-9 leaves room for another CPU's rounding in
    # these stable settings, no more.
    table = ex.run_table()[(lr, batch_norm, seed)]
    fresh = ex.run(batch_norm, lr, seed)[1]
    for name in ("step", "loss", "eval_step", "test_accuracy"):
        np.testing.assert_allclose(getattr(table, name), getattr(fresh, name), rtol=1e-9,
                                   atol=0, err_msg=f"{name}: {STALE}")
    for name, values in fresh.recorded.items():
        np.testing.assert_allclose(table.recorded[name], values, rtol=1e-9, err_msg=STALE)
    assert table.diverged == fresh.diverged, STALE


def test_sensitivity_separates_stable_and_chaotic_training():
    assert ex.sensitivity(True, 0.3, 0) < 1e-9
    assert ex.sensitivity(True, 3.0, 2) < 1e-9
    assert ex.sensitivity(False, 0.3, 0, nudge=0.0) == 0.0


def test_a_table_made_with_other_settings_is_not_used(tmp_path):
    with np.load(ex.RUN_TABLE) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["setting_steps"] = np.array(200)
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.warns(UserWarning, match="lesson09.explore"):
        assert ex.run_table(tmp_path / "old.npz") == {}


def test_verdicts_and_final_loss():
    h = nn.History(step=np.arange(1, 101), loss=np.r_[np.full(50, 3.0), np.full(50, 0.2)],
                   eval_step=np.array([0, 100]), test_accuracy=np.array([0.1, 0.9]))
    assert ex.final_loss(h) == pytest.approx(0.2) and ex.verdict(h) == "trains"
    h.loss[-50:] = 1.0
    assert ex.verdict(h) == "slow"
    h.loss[-50:] = 2.2
    assert ex.verdict(h) == "does not learn"
    h.diverged = True
    assert ex.final_loss(h) == float("inf") and ex.verdict(h) == "does not learn"


def test_relu_census_counts_positive_relu_inputs():
    model = ex.make_model(True)
    census = ex.relu_census(model)
    assert set(census) == {"alive1", "alive2", "alive3"}
    z = model.pre_activations[2]
    assert z.shape == (ex.PROBE, 4, 4, 32)
    assert census["alive3"] == pytest.approx(np.count_nonzero(z > 0) / z.size)


def test_step_time_is_measured():
    assert 0 < ex.step_time(True, steps=3, repeats=1) < 5


# The lesson's claims about training, on seeds no lesson uses (fresh trainings).

@pytest.mark.slow
def test_claim_batch_norm_learns_faster_at_lr_0_3():
    speed = ex.speed_claim(seeds.TEST_SEEDS, lr=0.3, step=100, fresh=True)
    plain, bn = speed["plain"], speed["batch norm"]
    assert bn["loss"].max() < plain["loss"].min()
    assert np.median(bn["accuracy"]) > np.median(plain["accuracy"]) + 0.2
    assert abs(np.median(bn["final_accuracy"]) - np.median(plain["final_accuracy"])) < 0.05


@pytest.mark.slow
def test_claim_at_lr_3_batch_norm_trains_and_the_plain_relus_die():
    losses = ex.lr_claim(seeds.TEST_SEEDS, lrs=(3.0,), fresh=True)
    assert losses["batch norm"].max() < ex.TRAINS_LOSS
    assert losses["plain"].min() > ex.STUCK_LOSS
    alive = ex.relu_claim(seeds.TEST_SEEDS, lr=3.0, fresh=True)
    assert alive["plain"][:, 2].max() < 0.01 and alive["batch norm"].min() > 0.1
    lr3 = ex.precise_claim(seeds.TEST_SEEDS, lr=3.0, fresh=True)
    assert lr3["precise"].min() >= 0.95
    assert np.all(lr3["precise"] >= lr3["inference"] - 0.01)


@pytest.mark.slow
def test_claim_batch_norm_trains_over_a_wider_range_of_learning_rates():
    lrs = (0.1, 0.3, 1.0, 3.0)
    losses = ex.lr_claim(seeds.TEST_SEEDS, lrs=lrs, fresh=True)
    ok = {label: [lr for lr, good in zip(lrs, ex.trains_everywhere(rows)) if good]
          for label, rows in losses.items()}
    assert set(ok["plain"]) <= set(ok["batch norm"])
    assert max(ok["batch norm"]) >= 3 * max(ok["plain"])


# ---------------------------------------------------------------- 4. folding

def test_precise_accuracy_uses_the_training_set_statistics():
    model = ex.run(True, 0.3, 0)[0]
    before = [n.moving_mean.copy() for n in model.norms]
    acc = ex.precise_accuracy_of(model)
    for n, mean in zip(model.norms, before):       # the model itself is left alone
        np.testing.assert_array_equal(n.moving_mean, mean)
    # by hand: a copy whose layers take their moving statistics from one pass, momentum 0
    from bnlib import conv
    x = ex.digit_images().x_train
    z, _ = conv.conv2d_forward(x, model.kernels[0])
    probe = ex.make_model(True)
    for mine, theirs in zip(probe.params(), model.params()):
        mine[...] = theirs
    for n in probe.norms:
        n.momentum = 0.0
    probe.forward(x, training=True)
    np.testing.assert_allclose(probe.norms[0].moving_mean, z.mean(axis=(0, 1, 2)), atol=1e-12)
    test = ex.digit_images()
    assert acc == nn.accuracy(probe, test.x_test, test.y_test)
    plain = ex.run(False, 0.3, 0)[0]
    assert ex.precise_accuracy_of(plain) == nn.accuracy(plain, test.x_test, test.y_test)


def test_precise_accuracy_in_the_table_equals_a_fresh_computation():
    assert ex.precise_accuracy(True, 0.3, 0) == pytest.approx(
        ex.precise_accuracy(True, 0.3, 0, fresh=True), abs=1e-12), STALE


def test_fold_cnn_equals_the_network_in_inference_mode():
    model = ex.run(True, 0.3, 0)[0]
    folded = ex.fold_cnn(model)
    assert all(n is None for n in folded.norms) and folded.param_names()[1] == "bias1"
    x = ex.digit_images().x_test[:100]
    np.testing.assert_allclose(folded.forward(x, training=False),
                               model.forward(x, training=False), atol=1e-9)


def test_fold_cnn_copies_a_network_without_batch_norm():
    model = ex.make_model(False, seed=3)
    folded = ex.fold_cnn(model)
    x = ex.digit_images().x_test[:10]
    np.testing.assert_array_equal(folded.forward(x, training=False),
                                  model.forward(x, training=False))


# ---------------------------------------------------------------- the diagram

@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    first, second = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    return diagram.draw(first), diagram.draw(second)


def test_diagram_is_deterministic_and_committed(drawn):
    first, second = drawn
    assert first.read_bytes() == second.read_bytes()
    committed = REPO / "images" / diagram.FILENAME
    assert committed.is_file(), "run `python -m bnlib.lessons.lesson09.diagram images`"
    fresh, saved = mpimg.imread(first), mpimg.imread(committed)
    assert fresh.shape == saved.shape == (400, 1600, 4)
    assert np.array_equal(fresh, saved), "images/norm-axes.png is stale: redraw it"


def test_diagram_shades_the_expected_number_of_cells():
    counts = {name: sum(1 for p in _patches(name) if p.get_facecolor()[:3] == _shade())
              for name in diagram.PANELS}
    # visible cells: batch norm = a front column + a top strip; layer norm = the whole front,
    # the first top row and the first right column; ...
    n, c, hw = diagram.N, diagram.C, diagram.HW
    assert counts == {"batch norm": hw + n, "per pixel (worksheet)": 1 + n,
                      "layer norm": c * hw + c + hw, "instance norm": hw + 1,
                      "group norm": 3 * hw + 3}


def _shade():
    return matplotlib.colors.to_rgb(diagram.SHADE)


def _patches(name):
    fig = matplotlib.figure.Figure()
    ax = fig.add_axes((0, 0, 1, 1))
    diagram._cube(ax, 0.0, 0.0, diagram.PANELS[name][0])
    return ax.patches


# ---------------------------------------------------------------- Keras

@pytest.fixture(scope="module")
def kc():
    from bnlib.lessons.lesson09 import keras_conv
    return keras_conv


def test_side_by_side_agrees_with_keras(kc):
    rng = np.random.default_rng(0)
    split = ex.digit_images()
    rows = nn.batch_indices(len(split.x_train), 40, 16, seed=2)
    kernel = ex.random_kernel(1, 4, 1)
    r = kc.side_by_side(split.x_train[rows], kernel, rng.uniform(0.5, 2, 4), rng.normal(size=4),
                        rng.normal(size=(16, 8, 8, 4)), momentum=0.9)
    assert r["output_diff"].shape == (40,) and r["output_diff"].max() < 2e-5
    for ours, theirs in zip(r["moving"]["bnlib"], r["moving"]["keras"]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    for name, ours in r["grads"]["bnlib"].items():
        theirs = r["grads"]["keras"][name]
        assert np.abs(ours - theirs).max() < 1e-5 * np.abs(theirs).max(), name
    assert set(r["weight_shapes"].values()) == {(4,)}


def test_channels_first_needs_axis_1(kc):
    maps = np.asarray(ex.feature_maps()[:16, :, :5], np.float32)     # W = 5, C = 8
    from bnlib.batchnorm import batchnorm_forward
    reference = batchnorm_forward(maps, np.ones(8), np.zeros(8), np.zeros(8), np.ones(8),
                                  training=True)[0]
    out, shape = kc.channels_first_batchnorm(maps, 1)
    assert shape == (8,)
    np.testing.assert_allclose(out, reference, atol=1e-5)
    out, shape = kc.channels_first_batchnorm(maps, -1)
    assert shape == (5,) and np.abs(out - reference).max() > 0.1


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch-norm"])
def test_keras_twin_computes_what_bnlib_computes(kc, batch_norm):
    model = ex.run(batch_norm, 0.3, 0)[0]
    x = ex.digit_images().x_test[:64]
    twin = kc.keras_twin(model)
    np.testing.assert_allclose(twin(x.astype(np.float32), training=False).numpy(),
                               model.forward(x, training=False), atol=5e-5)
    np.testing.assert_allclose(kc.graph_function(twin)(x), model.forward(x, training=False),
                               atol=5e-5)


def test_keras_twin_of_a_model_with_cnn_defaults(kc):
    model = cnn.CNN((4, 6), norm="batch", seed=2, dtype=np.float32)
    twin = kc.keras_twin(model)
    assert [type(layer).__name__ for layer in twin.layers] == [
        "Conv2D", "BatchNormalization", "ReLU", "Conv2D", "BatchNormalization", "ReLU",
        "GlobalAveragePooling2D", "Dense"]
    assert twin.layers[1].momentum == pytest.approx(0.99) and twin.layers[1].epsilon == 1e-3
