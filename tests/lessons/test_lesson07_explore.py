"""Lesson 07 helpers against Keras/TensorFlow, closed forms and bnlib's own layer."""
from __future__ import annotations

import numpy as np
import pytest

from bnlib import BatchNorm, data
from bnlib.course import seeds
from bnlib.lessons.lesson07 import explore as ek

tf, keras = ek.tf_keras()


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(3)
    batches = ek.random_batches(n_steps=50, batch_size=16, d=4, seed=3)
    gamma = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    beta = rng.normal(size=4).astype(np.float32)
    dout = rng.normal(size=(16, 4)).astype(np.float32)
    return ek.side_by_side(batches, gamma, beta, dout)


@pytest.mark.parametrize("name", ["train_out", "moving_mean", "moving_variance", "infer_out",
                                  "dx", "dgamma", "dbeta"])
def test_bnlib_matches_keras(pairs, name):
    k_value, b_value = pairs[name]
    scale = max(1.0, float(np.abs(k_value).max()))
    assert np.max(np.abs(k_value - b_value)) / scale < 1e-5, name


def test_side_by_side_moving_stats_moved(pairs):
    k_mean, _ = pairs["moving_mean"]
    assert np.all(np.abs(k_mean) > 0.1)  # the comparison is not between two untouched zeros


@pytest.mark.parametrize("mode, expected", [
    ("default", (True, True, True, True)),
    ("trainable_false", (False, False, False, False)),
    ("call_training_false", (True, True, False, False)),
    ("graph_training_false", (True, True, True, True)),
    ("base_training_false", (True, True, True, True)),
])
def test_fine_tune_changes(mode, expected):
    change = ek.fine_tune_changes(mode, steps=3)
    assert list(change) == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert tuple(v > 0 for v in change.values()) == expected


def test_fine_tune_rejects_unknown_mode():
    with pytest.raises(ValueError):
        ek.fine_tune_changes("nonsense", steps=1)


def test_fold_into_next_dense_matches_bn_then_dense():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 4))
    W, b = rng.normal(size=(4, 3)), rng.normal(size=3)
    g, be, mu, var = rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.1, 2, 4)
    eps = 1e-3
    expected = (g * (x - mu) / np.sqrt(var + eps) + be) @ W + b
    Wf, bf = ek.fold_into_next_dense(W, b, g, be, mu, var, eps)
    np.testing.assert_allclose(x @ Wf + bf, expected, rtol=1e-12, atol=1e-12)


def _randomize_bn(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            d = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 2, d).astype(np.float32))
            layer.beta.assign(rng.normal(size=d).astype(np.float32))
            layer.moving_mean.assign(rng.normal(size=d).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.1, 2, d).astype(np.float32))


@pytest.mark.parametrize("kind", ek.KINDS)
def test_fold_model_matches_keras(kind):
    model = ek.build_model(kind, hidden=(8, 6))
    _randomize_bn(model, 1)
    x = np.random.default_rng(2).uniform(0, 1, (20, 64)).astype(np.float32)
    folded = ek.fold_model(model)
    assert len(folded) == 3
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(ek.dense_stack_forward(folded, x), expected, atol=1e-5)
    np.testing.assert_allclose(ek.folded_keras_model(folded).predict(x, verbose=0), expected,
                               atol=1e-5)


def test_parameter_counts_differ_by_hidden_biases():
    a = ek.parameter_counts(ek.build_model("bn_after_activation", hidden=(8, 6)))
    b = ek.parameter_counts(ek.build_model("bn_before_activation", hidden=(8, 6)))
    assert a["total"] - b["total"] == 8 + 6
    assert a["non_trainable"] == b["non_trainable"] == 2 * (64 + 8 + 6)


def test_train_model_records_one_value_per_epoch():
    run = ek.train_model("bn_before_activation", seed=0, epochs=2)
    assert run.train_loss.shape == run.test_curve.shape == (2,)
    assert run.train_loss[1] < run.train_loss[0]
    # fit's test accuracy after the last epoch and a separate evaluate() agree
    assert run.test_curve[-1] == pytest.approx(run.test_accuracy, abs=1e-6)
    split = data.digits(dtype=np.float32)
    predicted = run.model.predict(split.x_test, verbose=0).argmax(axis=1)
    assert np.mean(predicted == split.y_test) == pytest.approx(run.test_accuracy, abs=1e-6)


def _comparison(acc_after, acc_before, loss_after, loss_before):
    acc = {"bn_after_activation": np.array(acc_after), "bn_before_activation": np.array(acc_before)}
    loss = {"bn_after_activation": np.array(loss_after),
            "bn_before_activation": np.array(loss_before)}
    return ek.LayoutComparison(tuple(range(len(acc_after))), acc, loss, {}, {})


def test_layout_verdicts_hold_and_fail_where_they_should():
    good = ek.layout_verdicts(_comparison([0.96, 0.97], [0.95, 0.96], [0.17, 0.18], [0.22, 0.23]))
    assert all(holds for holds, _ in good.values())
    low = ek.layout_verdicts(_comparison([0.96, 0.97, 0.89], [0.95, 0.96, 0.95], [0.17, 0.18, 0.17],
                                         [0.22, 0.23, 0.22]))
    assert [holds for holds, _ in low.values()] == [False, True, True]
    ahead = ek.layout_verdicts(_comparison([0.93, 0.93], [0.96, 0.96], [0.17, 0.18], [0.22, 0.23]))
    assert [holds for holds, _ in ahead.values()] == [True, False, True]
    loss = ek.layout_verdicts(_comparison([0.96, 0.97], [0.95, 0.96], [0.17, 0.22], [0.22, 0.23]))
    assert [holds for holds, _ in loss.values()] == [True, True, False]


@pytest.mark.slow
def test_layout_claims_hold_on_the_test_seeds():
    """Lesson 07's claims about the two Keras layouts, on five seeds the lesson does not use."""
    comparison = ek.compare_layouts(seeds.TEST_SEEDS)
    failed = {claim: detail for claim, (holds, detail) in ek.layout_verdicts(comparison).items()
              if not holds}
    assert not failed, failed


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds.TEST_SEEDS)
def test_fine_tune_pattern_holds_on_other_seeds(seed):
    """Which of the four vectors move does not depend on the seed (lesson 07, section 5)."""
    expected = {"default": (True, True, True, True), "trainable_false": (False,) * 4,
                "call_training_false": (True, True, False, False),
                "graph_training_false": (True,) * 4, "base_training_false": (True,) * 4}
    for mode, pattern in expected.items():
        change = ek.fine_tune_changes(mode, seed=seed)
        assert tuple(v > 0 for v in change.values()) == pattern, mode


def test_build_model_rejects_unknown_kind():
    with pytest.raises(ValueError):
        ek.build_model("sideways")


@pytest.mark.parametrize("momentum", [0.5, 0.9, 0.99])
def test_moving_mean_track_matches_bnlib_layer(momentum):
    mean, var = ek.moving_mean_track(momentum, steps=40, batch_size=8, seed=4)
    rng = np.random.default_rng(4)
    batches = 3.0 + 2.0 * rng.standard_normal((40, 8))
    layer = BatchNorm(1, momentum=momentum)
    for t in range(40):
        layer(batches[t].reshape(8, 1), training=True)
        assert mean[t] == pytest.approx(layer.moving_mean[0], rel=1e-12, abs=1e-12)
        assert var[t] == pytest.approx(layer.moving_variance[0], rel=1e-12)


@pytest.mark.parametrize("momentum", [0.5, 0.9, 0.99, 0.995])
def test_warmup_steps_is_first_step_below_five_percent(momentum):
    t = ek.warmup_steps(momentum)
    assert momentum ** t < 0.05 <= momentum ** (t - 1)


def test_moving_statistics_over_runs_match_the_update_rule_step_by_step():
    """The closed form (weights (1 - m) m^(T - t)) against the Keras update applied T times."""
    momentum, step = 0.9, 60
    means, variances = ek._batch_statistics_over_runs(7, step, 32, 3.0, 2.0, 5)
    m, v = np.zeros(7), np.ones(7)
    for t in range(step):
        m = momentum * m + (1 - momentum) * means[:, t]
        v = momentum * v + (1 - momentum) * variances[:, t]
    got_m, got_v = ek.moving_statistics_over_runs(momentum, step=step, runs=7, seed=5)
    np.testing.assert_allclose(got_m, m, rtol=1e-12)
    np.testing.assert_allclose(got_v, v, rtol=1e-12)


def test_batch_statistics_drawn_directly_match_real_batches():
    """Batch means and biased variances drawn from their distributions look like those of
    real batches of 32 normal draws (means, spreads and their correlation)."""
    means, variances = ek._batch_statistics_over_runs(200, 500, 32, 3.0, 2.0, 0)
    batches = 3.0 + 2.0 * np.random.default_rng(1).standard_normal((100_000, 32))
    real_means, real_vars = batches.mean(axis=1), batches.var(axis=1)
    for drawn, real in ((means, real_means), (variances, real_vars)):
        assert drawn.mean() == pytest.approx(real.mean(), rel=0.01)
        assert drawn.std() == pytest.approx(real.std(), rel=0.02)
    assert abs(np.corrcoef(means.ravel(), variances.ravel())[0, 1]) < 0.01


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("momentum", [0.5, 0.9, 0.99, 0.995])
def test_jitter_over_runs_matches_prediction(momentum, seed):
    mean, _ = ek.moving_statistics_over_runs(momentum, seed=seed)
    predicted = 2.0 / np.sqrt(32) * np.sqrt((1 - momentum) / (1 + momentum))
    assert 0.7 < mean.std() / predicted < 1.3


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_moving_variance_settles_near_the_biased_variance(seed):
    """The lesson's claim at momentum 0.99: below the true 4, within 3% of (31/32) 4."""
    _, variance = ek.moving_statistics_over_runs(0.99, seed=seed)
    assert variance.mean() < 4 and abs(variance.mean() / 3.875 - 1) < 0.03


def test_moving_mean_spread_is_the_lessons_default():
    assert ek.moving_mean_spread(0.99)[0] == ek.moving_statistics_over_runs(0.99)[0].std()


def test_momentum_explorer_updates():
    explorer = ek.momentum_explorer()
    before, updates = explorer.readout.value, explorer.updates
    explorer.controls["momentum"].value = 0.9
    assert explorer.updates == updates + 1
    assert explorer.readout.value != before
    assert "PyTorch momentum 0.100" in explorer.readout.value
    assert f"warm-up (start-up bias below 5%): {ek.warmup_steps(0.9)} steps" in explorer.readout.value
    line = explorer.figure.axes[0].lines[0]
    np.testing.assert_allclose(line.get_ydata(), ek.moving_mean_track(0.9)[0])


def test_momentum_scene_limits_hold_the_tracks_at_every_setting():
    """Fixed limits (no full redraw per update) that show both tracks, their true values and
    the end of the warm-up, for every slider setting."""
    explorer = ek.momentum_explorer()
    slider = explorer.controls["momentum"]
    axes = explorer.figure.axes
    limits = [(ax.get_xlim(), ax.get_ylim()) for ax in axes]
    for k in range(round((slider.max - slider.min) / slider.step) + 1):
        momentum = slider.min + k * slider.step
        explorer.scene.update(momentum=momentum)
        assert [(ax.get_xlim(), ax.get_ylim()) for ax in axes] == limits
        for ax in axes:
            track, truth, warm = ax.lines
            (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
            xs = np.concatenate([track.get_xdata(), warm.get_xdata()])
            ys = np.concatenate([track.get_ydata(), truth.get_ydata()])
            assert x0 < xs.min() and xs.max() < x1, momentum
            assert y0 < ys.min() and ys.max() < y1, momentum


def test_momentum_explorer_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys; from bnlib.lessons.lesson07 import explore; "
            "explore.momentum_explorer().controls['momentum'].value = 0.9; "
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
