"""Lesson 06 part 2: the noisy batch-norm layer, layer-input statistics, loss-surface probes."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from bnlib import data, explore_shift, internal_shift, nn
from bnlib.gradcheck import numerical_gradient, rel_error


@pytest.fixture(scope="module")
def probe():
    split = data.digits()
    return split.x_train[:80], split.y_train[:80]


def _noisy(seed=3):
    layer = internal_shift.NoisyBatchNorm(5, seed=seed)
    layer.gamma[:] = [0.5, 1.0, 1.5, 2.0, 0.8]
    layer.beta[:] = [0.1, -0.2, 0.3, 0.0, 1.0]
    return layer


def test_noisy_batchnorm_inference_adds_nothing():
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(40, 5))
    noisy, plain = _noisy(), nn.FastBatchNorm(5)
    plain.gamma[:], plain.beta[:] = noisy.gamma, noisy.beta
    noisy(x, training=True), plain(x, training=True)          # same moving statistics
    np.testing.assert_allclose(noisy(x, training=False), plain(x, training=False))


def test_noisy_batchnorm_output_moves_every_step():
    x = np.random.default_rng(1).normal(size=(200, 5))
    layer = _noisy()
    means = np.array([layer(x, training=True).mean(axis=0) for _ in range(30)])
    # Plain batch norm would give beta at every step; here each step is shifted anew.
    assert np.all(means.std(axis=0) > 0.3)
    assert np.all(means.min(axis=0) >= layer.beta - 1.0 - 0.3)  # offsets within +-mean_range


@pytest.mark.parametrize("training", [True, False])
def test_noisy_batchnorm_backward_matches_numerical(training):
    rng = np.random.default_rng(2)
    x, dout = rng.normal(size=(12, 5)), rng.normal(size=(12, 5))
    layer = _noisy()
    layer(x, training=True)  # moving statistics for the inference case

    def f(_):  # same noise draw at every evaluation
        layer.rng = np.random.default_rng(99)
        return layer(x, training=training)

    dx_num = numerical_gradient(f, x, dout)
    f(x)
    dx = layer.backward(dout)
    assert rel_error(dx, dx_num) < 1e-6
    for name in ("gamma", "beta"):
        num = numerical_gradient(f, getattr(layer, name), dout)
        f(x)
        layer.backward(dout)
        assert rel_error(getattr(layer, "d" + name), num) < 1e-6


def test_noisy_factory_gives_each_layer_its_own_noise():
    model = internal_shift.make_model("noisy", sizes=(64, 10, 10, 10))
    firsts = [norm.rng.uniform() for norm in model.norms]
    assert len(set(firsts)) == len(firsts)


def test_layer_input_quantiles_in_training_mode_and_restores_stats(probe):
    x, _ = probe
    model = internal_shift.make_model("batch", sizes=(64, 20, 20, 10))
    nn.train(model, data.digits(), steps=5, eval_every=5)
    saved = [(n.moving_mean.copy(), n.moving_variance.copy()) for n in model.norms]
    q = internal_shift.layer_input_quantiles(model, x, layer=1)
    twin = copy.deepcopy(model)
    twin.forward(x, training=True)
    np.testing.assert_allclose(q, np.percentile(twin.pre_activations[1], (15, 50, 85), axis=0))
    for n, (mean, var) in zip(model.norms, saved):
        np.testing.assert_array_equal(n.moving_mean, mean)
        np.testing.assert_array_equal(n.moving_variance, var)


def test_movement_on_a_known_path():
    q = np.zeros((3, 3, 2))
    q[1] += 1.0       # every percentile of every unit moves up by 1
    q[2] += 0.5       # then back down by 0.5
    m = internal_shift.movement(q)
    np.testing.assert_allclose(m["path"], [0.0, 1.0, 0.5])
    assert m["total"] == pytest.approx(0.5) and m["per_step"] == pytest.approx(0.75)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_landscape_probe_matches_manual_steps_and_restores(probe, norm):
    x, y = probe
    model = internal_shift.make_model(norm, sizes=(64, 16, 16, 10), activation="relu", seed=4)
    before = copy.deepcopy(model)
    out = internal_shift.landscape_probe(model, x, y, lr=0.3, multipliers=(1.0, 3.0))
    for p, q in zip(model.params(), before.params()):
        np.testing.assert_array_equal(p, q)
    losses, grads = [], []
    for k in (0.0, 1.0, 3.0):
        twin = copy.deepcopy(before)
        loss, d = nn.softmax_cross_entropy(twin.forward(x, training=True), y)
        twin.backward(d)
        g = [gr.copy() for gr in twin.grads()]
        if k:
            for p, gr in zip(twin.params(), grads[0]):
                p -= k * 0.3 * gr
            loss, d = nn.softmax_cross_entropy(twin.forward(x, training=True), y)
            twin.backward(d)
            g = [gr.copy() for gr in twin.grads()]
        losses.append(loss)
        grads.append(g)
    dist = [np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(g, grads[0]))) for g in grads[1:]]
    norm0 = np.sqrt(sum(np.sum(g * g) for g in grads[0]))
    assert out["loss_range"] == pytest.approx(np.ptp(losses))
    assert out["grad_change"] == pytest.approx(max(dist))
    assert out["beta"] == pytest.approx(max(dist[0] / 0.3, dist[1] / 0.9) / norm0)


def test_compounding_shift_grows_without_batch_norm_only():
    plain = internal_shift.compounding_shift("none", depth=6, seed=1)
    batch = internal_shift.compounding_shift("batch", depth=6, seed=1)
    assert plain[-1] > 2 * plain[0]
    assert batch[-1] < plain[-1] / 5


def test_layer_input_explorer_updates():
    explorer = explore_shift.layer_input_explorer(steps=40, eval_every=20)
    before, updates = explorer.readout.value, explorer.updates
    explorer.controls["unit"].value = 7
    assert explorer.updates == updates + 1 and explorer.readout.value != before
    assert "unit 7 moved" in explorer.readout.value
    r = internal_shift.shift_run("batch", steps=40, eval_every=20)
    band = explorer.figure.axes[1].lines[0].get_ydata()
    np.testing.assert_allclose(band, r["quantiles"][:, 1, 7])


def test_views_report_the_computed_numbers():
    _, text = explore_shift.compounding_view(depth=3, width=16)
    values = internal_shift.compounding_shift("none", depth=3, width=16)
    assert " ".join(f"{v:.3f}" for v in values) in text
    _, text = explore_shift.landscape_view(steps=20, every=10)
    r = internal_shift.landscape_run("batch", steps=20, every=10)
    assert f"loss range {r['loss_range'][1:].mean():.3f}" in text


@pytest.mark.parametrize("seed, lr", [(1, 0.2), (2, 0.4)])
def test_batch_norm_smooths_the_loss_along_the_gradient(seed, lr):
    """The notebook's smoothness comparison (seed 0, lr 0.4) holds on other seeds and rates."""
    runs = {net: internal_shift.landscape_run(net, lr=lr, steps=60, seed=seed, every=10)
            for net in ("none", "batch")}
    for key, factor in (("loss_range", 10), ("grad_change", 10), ("beta", 2)):
        assert factor * runs["batch"][key][1:].mean() < runs["none"][key][1:].mean()
