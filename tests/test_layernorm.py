"""Layer norm and group norm: numerical gradients, Keras, and the BatchNorm-like layer interface."""
from __future__ import annotations

import numpy as np
import pytest

from bnlib import layernorm
from bnlib.gradcheck import numerical_gradient, rel_error

SHAPES_GROUPS = [((5, 6), 1), ((5, 6), 2), ((5, 12), 3), ((3, 4, 4, 6), 1), ((3, 4, 4, 6), 3),
                 ((2, 3, 5, 4), 4)]


def _inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[-1]
    x = rng.normal(2.0, 3.0, size=shape)
    return x, rng.uniform(0.5, 2.0, c), rng.normal(size=c), rng.normal(size=shape)


@pytest.mark.parametrize("shape, groups", SHAPES_GROUPS)
def test_each_group_is_standardized(shape, groups):
    x, _, _, _ = _inputs(shape)
    out, _ = layernorm.group_norm_forward(x, np.ones(shape[-1]), np.zeros(shape[-1]), groups,
                                          eps=1e-12)
    grouped = out.reshape(shape[0], -1, groups, shape[-1] // groups)
    np.testing.assert_allclose(grouped.mean(axis=(1, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(grouped.var(axis=(1, 3)), 1.0, rtol=1e-9)


@pytest.mark.parametrize("shape, groups", SHAPES_GROUPS)
def test_gradients_match_numerical(shape, groups):
    x, gamma, beta, dout = _inputs(shape, seed=1)
    _, cache = layernorm.group_norm_forward(x, gamma, beta, groups)
    dx, dgamma, dbeta = layernorm.group_norm_backward(dout, cache)
    f = lambda v: layernorm.group_norm_forward(v, gamma, beta, groups)[0]  # noqa: E731
    assert rel_error(dx, numerical_gradient(f, x.copy(), dout)) < 1e-7
    g = lambda v: layernorm.group_norm_forward(x, v, beta, groups)[0]  # noqa: E731
    assert rel_error(dgamma, numerical_gradient(g, gamma.copy(), dout)) < 1e-7
    b = lambda v: layernorm.group_norm_forward(x, gamma, v, groups)[0]  # noqa: E731
    assert rel_error(dbeta, numerical_gradient(b, beta.copy(), dout)) < 1e-7


def test_layer_norm_is_group_norm_with_one_group():
    x, gamma, beta, dout = _inputs((4, 8))
    a, ca = layernorm.layer_norm_forward(x, gamma, beta)
    b, cb = layernorm.group_norm_forward(x, gamma, beta, 1)
    np.testing.assert_array_equal(a, b)
    for u, v in zip(layernorm.layer_norm_backward(dout, ca), layernorm.group_norm_backward(dout, cb)):
        np.testing.assert_array_equal(u, v)


def test_independent_of_the_rest_of_the_batch():
    x, gamma, beta, _ = _inputs((6, 8))
    full, _ = layernorm.layer_norm_forward(x, gamma, beta)
    alone, _ = layernorm.layer_norm_forward(x[2:3], gamma, beta)
    np.testing.assert_allclose(alone[0], full[2], rtol=1e-13)


@pytest.fixture(scope="module")
def keras():
    from bnlib.explore_keras import tf_keras
    return tf_keras()[1]


def test_layer_norm_matches_keras(keras):
    x, gamma, beta, _ = _inputs((6, 10))
    layer = keras.layers.LayerNormalization(epsilon=1e-3)
    layer.build((None, 10))
    layer.gamma.assign(gamma.astype(np.float32))
    layer.beta.assign(beta.astype(np.float32))
    expected = layer(x.astype(np.float32)).numpy()
    out, _ = layernorm.layer_norm_forward(x.astype(np.float32), gamma, beta)
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_group_norm_matches_keras(keras, groups):
    x, gamma, beta, _ = _inputs((3, 4, 4, 6))
    layer = keras.layers.GroupNormalization(groups=groups, epsilon=1e-3)
    layer.build((None, 4, 4, 6))
    layer.gamma.assign(gamma.astype(np.float32))
    layer.beta.assign(beta.astype(np.float32))
    expected = layer(x.astype(np.float32)).numpy()
    out, _ = layernorm.group_norm_forward(x.astype(np.float32), gamma, beta, groups)
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("make", [lambda: layernorm.LayerNorm(6), lambda: layernorm.GroupNorm(6, 3)])
def test_layer_object_interface(make):
    layer = make()
    x, _, _, dout = _inputs((5, 6))
    out_train = layer(x, training=True)
    out_infer = layer(x, training=False)
    np.testing.assert_array_equal(out_train, out_infer)
    dx = layer.backward(dout)
    _, cache = layernorm.group_norm_forward(x, layer.gamma, layer.beta, layer.groups, layer.eps)
    expected = layernorm.group_norm_backward(dout, cache)
    np.testing.assert_allclose(dx, expected[0])
    np.testing.assert_allclose(layer.dgamma, expected[1])
    np.testing.assert_allclose(layer.dbeta, expected[2])
    assert layer.gamma.shape == layer.beta.shape == (6,)


def test_layer_trains_inside_mlp():
    from bnlib import data, nn
    split = data.digits()
    model = nn.MLP((64, 32, 10), activation="relu", norm=layernorm.LayerNorm, seed=0)
    history = nn.train(model, split, steps=150, batch_size=32, lr=0.1)
    assert history.final_accuracy > 0.8


@pytest.mark.parametrize("groups", [0, 4, 7])
def test_bad_groups_rejected(groups):
    x, gamma, beta, _ = _inputs((4, 6))
    with pytest.raises(ValueError):
        layernorm.group_norm_forward(x, gamma, beta, groups)


def test_backward_before_forward_raises():
    with pytest.raises(ValueError):
        layernorm.LayerNorm(3).backward(np.zeros((2, 3)))
