"""Lesson 08 helpers: noise laws, the norm-slot layers, repairs, folding, the explorer."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from bnlib import data, nn
from bnlib import explore_pitfalls as ep
from bnlib.gradcheck import numerical_gradient, rel_error


@pytest.mark.parametrize("m", [4, 32, 256])
def test_batch_mean_noise_follows_one_over_sqrt_m(m):
    assert ep.noise_summary(m)["shift_std"] == pytest.approx(ep.mean_noise_law(m), rel=0.1)


def test_batch_noise_matches_direct_computation():
    r = ep.batch_noise(8, n_batches=50, seed=3)
    z = ep.hidden_unit()
    rng = np.random.default_rng(3)
    rows = rng.integers(0, z.size, size=(50, 8))
    batch = z[rows]
    np.testing.assert_allclose(r["shift"], (batch.mean(1) - z.mean()) / z.std())
    np.testing.assert_allclose(r["scale"], z.std() / batch.std(1))
    k = ep.example_index()
    assert abs((z[k] - z.mean()) / z.std() - 1.0) < 0.05
    batch[:, 0] = z[k]
    expected = (z[k] - batch.mean(1)) / np.sqrt(batch.var(1) + 1e-3 * z.var())
    np.testing.assert_allclose(r["output"], expected)


def test_gaussian_scale_noise_law():
    assert ep.scale_noise_law(50, 3.0) == pytest.approx(np.sqrt(2 / (4 * 50)))


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_noise_std_matches_sampling(rate):
    factor = (np.random.default_rng(0).random(200_000) >= rate) / (1 - rate)
    assert factor.std() == pytest.approx(ep.dropout_noise_std(rate), rel=0.02)
    assert factor.mean() == pytest.approx(1.0, abs=0.01)


def test_noise_to_signal_is_fixed_after_batch_norm():
    raw, after = ep.noise_to_signal(scales=(0.1, 10.0), noise_std=0.2)
    assert raw[0] == pytest.approx(100 * raw[1], rel=0.1)
    np.testing.assert_allclose(after, 0.2, rtol=0.01)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_dropout_layer_gradient(batch_norm):
    rng = np.random.default_rng(0)
    x, dout = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    layer = ep.Dropout(4, 0.4, batch_norm=batch_norm, seed=1)
    layer(x, training=True)
    mask = layer.mask.copy()
    dx = layer.backward(dout)

    def forward(v):
        out = v if layer.bn is None else (v - v.mean(0)) / np.sqrt(v.var(0) + layer.bn.eps)
        return out * mask
    assert rel_error(dx, numerical_gradient(forward, x.copy(), dout)) < 1e-7
    assert layer.gamma.size == (4 if batch_norm else 0) == layer.dgamma.size


def test_dropout_layer_is_identity_at_inference():
    x = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_array_equal(ep.Dropout(3, 0.5)(x, training=False), x)


def test_make_norm_rejects_unknown():
    with pytest.raises(ValueError):
        ep.make_norm("instance")


@pytest.mark.parametrize("batch_size", [4, 32])
def test_class_sorted_batches_are_single_class(batch_size):
    y = data.digits().y_train
    idx = ep.class_sorted_batches(y, batch_size, steps=60)
    assert idx.shape == (60, batch_size)
    assert all(len(np.unique(y[rows])) == 1 for rows in idx)
    assert len(np.unique(y[idx[:, 0]])) > 1


def test_precise_statistics_equal_training_set_moments():
    split = data.digits()
    model = copy.deepcopy(ep.trained("batch", steps=50))
    ep.precise_statistics(model, split.x_train)
    z = split.x_train @ model.weights[0]
    np.testing.assert_allclose(model.norms[0].moving_mean, z.mean(0), atol=1e-12)
    np.testing.assert_allclose(model.norms[0].moving_variance, z.var(0), rtol=1e-10)
    assert all(n.momentum == 0.99 for n in model.norms)
    # layer 2: its input computed in inference mode with the new layer-1 statistics
    model.forward(split.x_train, training=False)
    h1 = np.maximum(model.pre_activations[0], 0)
    z2 = h1 @ model.weights[1]
    np.testing.assert_allclose(model.norms[1].moving_mean, z2.mean(0), atol=1e-10)


def test_batch_mode_accuracy_leaves_model_untouched():
    split = data.digits()
    model = ep.trained("batch", steps=50)
    before = model.norms[0].moving_mean.copy()
    ep.batch_mode_accuracy(model, split.x_test, split.y_test, 16)
    np.testing.assert_array_equal(model.norms[0].moving_mean, before)


def test_fold_mlp_matches_inference():
    split = data.digits()
    model = ep.trained("batch", steps=50)
    folded = ep.fold_mlp(model)
    np.testing.assert_allclose(folded.forward(split.x_test, training=False),
                               model.forward(split.x_test, training=False), atol=1e-9)


def test_scale_invariance():
    diff, ratio = ep.scale_invariance(factor=4.0)
    assert diff < 1e-6
    np.testing.assert_allclose(ratio, 0.25, rtol=1e-4)


def test_gradient_norms_shape_and_bn_balance():
    plain = ep.gradient_norms("none", 1.0, depth=4)
    with_bn = ep.gradient_norms("batch", 1.0, depth=4)
    assert plain.shape == with_bn.shape == (5,)
    assert plain[0] / plain[-1] < with_bn[0] / with_bn[-1]


def test_first_layer_mismatch_grows_with_shift():
    split = data.digits()
    model = ep.trained("batch", steps=50)
    assert ep.first_layer_mismatch(model, ep.shifted(split.x_test)) > \
        ep.first_layer_mismatch(model, split.x_test)


def test_shifted_is_clipped_affine():
    x = np.array([[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(ep.shifted(x, 0.6, 0.3), [[0.3, 0.6, 0.9]])
    assert ep.shifted(x, 2.0, 0.5).max() == 1.0


def test_noise_explorer_updates():
    explorer = ep.noise_explorer()
    before, updates = explorer.readout.value, explorer.updates
    explorer.controls["batch_size"].value = 8
    assert explorer.updates == updates + 1
    assert explorer.readout.value != before
    s = ep.noise_summary(8)
    assert f"batch-mean noise {s['shift_std']:.3f}" in explorer.readout.value
    assert f"law {ep.mean_noise_law(8):.3f}" in explorer.readout.value
    explorer.controls["dropout_rate"].value = 0.2
    assert f"std {ep.dropout_noise_std(0.2):.2f}" in explorer.readout.value
    counts = [p.get_height() for p in explorer.figure.axes[0].patches[-2:]]
    assert counts == pytest.approx([0.2 * 2000, 0.8 * 2000])


def test_batch_vs_moving_one_class_batches_are_further():
    split = data.digits()
    model = ep.trained("batch", steps=50)
    iid = ep.batch_vs_moving(model, split.x_train, nn.batch_indices(len(split.x_train), 5, 32, 1))
    one_class = ep.batch_vs_moving(model, split.x_train,
                                   ep.class_sorted_batches(split.y_train, 32, 5, seed=1))
    assert one_class > iid
    rows = nn.batch_indices(len(split.x_train), 1, 32, 1)
    assert ep.batch_vs_moving(model, split.x_train, rows) == \
        pytest.approx(ep.first_layer_mismatch(model, split.x_train[rows[0]]))


def test_noise_scene_limits_hold_every_slider_setting():
    explorer = ep.noise_explorer()
    scene = explorer.scene
    batch, rate = explorer.controls["batch_size"], explorer.controls["dropout_rate"]
    (ex_x, ex_y), (law_x, law_y) = [(ax.get_xlim(), ax.get_ylim()) for ax in scene.fig.axes]
    assert ex_x[0] < ep.HIST_RANGE[0] and ep.HIST_RANGE[1] < ex_x[1]
    for m in range(batch.min, batch.max + 1, batch.step):
        output = ep.batch_noise(m)["output"]
        assert ep.HIST_RANGE[0] < output.min() and output.max() < ep.HIST_RANGE[1], m
        for dropout_rate in (rate.min, rate.max):
            scene.update(batch_size=m, dropout_rate=dropout_rate)
            assert scene.hist.get_data().values.max() <= ex_y[1], m
            for bar in scene.bars:
                assert ex_x[0] < bar.get_x() and bar.get_x() + bar.get_width() < ex_x[1]
                assert bar.get_height() <= ex_y[1]
            assert law_y[0] < scene.dropout_line.get_ydata()[0] < law_y[1]
            assert law_x[0] < scene.batch_line.get_xdata()[0] < law_x[1]
    assert [(ax.get_xlim(), ax.get_ylim()) for ax in scene.fig.axes] == [(ex_x, ex_y),
                                                                         (law_x, law_y)]
