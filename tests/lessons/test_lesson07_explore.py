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


RECIPE_EXPECTED = [  # gamma, beta, moving_mean, moving_variance, base Dense, head, bn.trainable
    (True, True, True, True, True, True, True),
    (False, False, False, False, False, True, False),
    (True, True, True, True, True, True, True),
    (True, True, True, True, True, True, False),
    (False, False, False, False, True, True, False),
]


def _recipe_rows(record):
    keys = ek.BN_VECTORS + ("base Dense", "head", "bn.trainable")
    return [tuple(moved[k] for k in keys) for _, moved in record]


def test_fine_tune_recipe_steps():
    record = ek.fine_tune_recipe(steps=3)
    assert [step for step, _ in record] == [step for step, _ in ek.RECIPE]
    assert _recipe_rows(record) == RECIPE_EXPECTED


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds.TEST_SEEDS)
def test_fine_tune_recipe_on_other_seeds(seed):
    """Lesson 07, section 5: each step of the recipe moves the same weights on every seed."""
    assert _recipe_rows(ek.fine_tune_recipe(seed=seed)) == RECIPE_EXPECTED


def test_keras_batchnorm_on_images_keeps_one_statistic_per_channel():
    """Written out against NumPy: per channel over (N, H, W), and axis must be one int."""
    x = np.random.default_rng(5).normal(2.0, 3.0, (6, 4, 5, 2)).astype(np.float32)
    layer = keras.layers.BatchNormalization(epsilon=0.01)
    out = layer(x, training=True).numpy()
    assert layer.moving_mean.shape == (2,)
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 0.01), atol=2e-6)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.01 * mean, rtol=1e-5)
    with pytest.raises(TypeError):
        keras.layers.BatchNormalization(axis=[1, 2, 3])


def test_training_batches_are_full_and_reshuffled():
    split = data.digits(dtype=np.float32)
    dataset = ek.training_batches(split.x_train, split.y_train, 32, seed=0)
    epochs = [[y.numpy() for _, y in dataset] for _ in range(2)]
    assert [len(e) for e in epochs] == [len(split.x_train) // 32] * 2 == [42, 42]
    assert all(len(b) == 32 for e in epochs for b in e)
    assert not np.array_equal(np.concatenate(epochs[0]), np.concatenate(epochs[1]))


def test_train_model_takes_full_batches_only():
    run = ek.train_model("bn_after_activation", seed=0, epochs=1)
    assert int(run.model.optimizer.iterations.numpy()) == 42


def test_train_model_cache_ignores_the_spelling():
    assert ek.train_model("bn_after_activation", 0, epochs=1) is ek.train_model(
        "bn_after_activation", seed=0, epochs=1, momentum=ek.MOMENTUM)


@pytest.mark.parametrize("momentum", [0.99, 0.9])
def test_input_moving_mean_share_matches_a_numpy_ema(momentum):
    """The same full batches averaged in NumPy with the Keras rule from 0."""
    split = data.digits(dtype=np.float32)
    mean = np.zeros(64)
    for xb, _ in ek.training_batches(split.x_train, split.y_train, 32, seed=0).repeat(6):
        mean = momentum * mean + (1 - momentum) * xb.numpy().astype(np.float64).mean(axis=0)
    share = mean.sum() / split.x_train.astype(np.float64).mean(axis=0).sum()
    assert ek.input_moving_mean_share(momentum) == pytest.approx(share, rel=1e-5)


def test_stored_vs_population_reads_the_ratio():
    """Hidden BN moving variances set to 2x (and 3x) the variance of their inputs, computed
    through a truncated Keras model, give ratios 2 and 3; the input BN is left out."""
    model = ek.build_model("bn_before_activation", hidden=(8, 6))
    x = np.random.default_rng(0).uniform(0, 1, (200, 64)).astype(np.float32)
    bns = [i for i, layer in enumerate(model.layers)
           if isinstance(layer, keras.layers.BatchNormalization)]
    model.layers[bns[0]].moving_variance.assign(np.full(64, 123.0, np.float32))
    for factor, i in zip((2.0, 3.0), bns[1:]):
        upstream = keras.Sequential([keras.Input((64,))] + model.layers[:i])
        h = upstream.predict(x, verbose=0)
        model.layers[i].moving_variance.assign((factor * h.var(axis=0)).astype(np.float32))
    low, median, high = ek.stored_vs_population(model, x)
    assert low == pytest.approx(2.0, rel=1e-4) and high == pytest.approx(3.0, rel=1e-4)
    assert 2.0 <= median <= 3.0


def test_stored_verdicts_hold_and_fail_where_they_should():
    good = {0.9: np.array([[0.8, 0.95, 1.05]] * 2), 0.99: np.array([[1.2, 1.6, 2.3]] * 2)}
    assert all(holds for holds, _ in ek.stored_verdicts(good).values())
    low = {**good, 0.99: np.array([[1.2, 1.6, 2.3], [1.05, 1.6, 2.3]])}
    assert [h for h, _ in ek.stored_verdicts(low).values()] == [False, True, True]
    off = {**good, 0.9: np.array([[0.8, 0.95, 1.05], [0.6, 0.75, 1.0]])}
    assert [h for h, _ in ek.stored_verdicts(off).values()] == [True, True, False]


@pytest.mark.slow
def test_stored_statistics_claims_hold_on_the_test_seeds():
    """Lesson 07, section 6: momentum 0.99 leaves the stored variances too large, 0.9 not."""
    stats = ek.stored_statistics(seeds.TEST_SEEDS)
    failed = [claim for claim, (holds, _) in ek.stored_verdicts(stats).items() if not holds]
    assert not failed, (failed, stats)


def test_folding_times_are_positive_for_both_modes():
    model = ek.build_model("bn_after_activation", hidden=(8, 6))
    x = np.random.default_rng(0).uniform(0, 1, (16, 64)).astype(np.float32)
    for compiled in (False, True):
        t_bn, t_folded = ek.folding_times(model, x, compiled, repeats=2)
        assert 0 < t_bn < 5 and 0 < t_folded < 5


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


def _settled_claims(result):
    """The lesson's claims: Keras's average within 0.03 of the biased prediction, more than
    0.09 from the unbiased one."""
    return (abs(result["keras"] - result["biased"]) < 0.03,
            abs(result["keras"] - result["unbiased"]) > 0.09)


def test_settled_variance_predictions_are_the_closed_forms():
    result = ek.keras_settled_variance(momentum=0.9, steps=40, runs=50, batch_size=4, seed=3)
    left = 0.9 ** 40
    assert result["biased"] == pytest.approx(left + (1 - left) * 0.75 * 4.0, rel=1e-12)
    assert result["unbiased"] == pytest.approx(left + (1 - left) * 4.0, rel=1e-12)
    # batches of 4: the biased rule settles at 3/4 of the truth, 25% below the unbiased one
    assert abs(result["keras"] - result["biased"]) < 0.15 < abs(result["keras"] - result["unbiased"])


def test_settled_variance_separates_the_conventions_in_the_lesson():
    assert _settled_claims(ek.keras_settled_variance(seed=0)) == (True, True)


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds.TEST_SEEDS)
def test_settled_variance_separates_the_conventions_on_other_seeds(seed):
    """Lesson 07, section 4: the Keras layer's settled moving variance is the biased one."""
    assert _settled_claims(ek.keras_settled_variance(seed=seed)) == (True, True)


def test_settled_variance_would_flag_an_unbiased_rule():
    """The same statistic computed for a layer that used the unbiased variance (the bnlib
    layer with unbiased_moving_variance=True, Keras momentum) fails the lesson's claim."""
    rng = np.random.default_rng(0)
    layer = BatchNorm(200, momentum=0.99, unbiased_moving_variance=True)
    for _ in range(500):
        layer(3.0 + 2.0 * rng.standard_normal((32, 200)), training=True)
    left = 0.99 ** 500
    unbiased_layer = {"keras": float(layer.moving_variance.mean()),
                      "biased": left + (1 - left) * 31 / 32 * 4.0,
                      "unbiased": left + (1 - left) * 4.0}
    assert _settled_claims(unbiased_layer) == (False, False)


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


def test_momentum_explorer_runs_past_every_warm_up():
    """The jitter is measured, and the warm-up line drawn, after warm-up at every setting."""
    slider = ek.momentum_explorer().controls["momentum"]
    assert ek.warmup_steps(slider.max) == 598 < ek.EXPLORER_STEPS
    assert ek.moving_mean_track(slider.max)[0].size == ek.EXPLORER_STEPS
