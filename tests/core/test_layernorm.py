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


def group_members(shape, groups):
    """For each (example, group): the index of its values in x, by channel ranges.

    Group g holds channels g * C/groups .. (g + 1) * C/groups - 1 at every position.
    """
    c = shape[-1]
    size = c // groups
    for n in range(shape[0]):
        for g in range(groups):
            yield n, g, (n, Ellipsis, slice(g * size, (g + 1) * size))


def reference_group_norm(x, gamma, beta, groups, eps):
    """Group norm one (example, group) at a time, with NumPy's mean and var."""
    out = np.empty_like(x)
    for _, _, idx in group_members(x.shape, groups):
        values = x[idx]
        out[idx] = (values - values.mean()) / np.sqrt(values.var() + eps)
    return gamma * out + beta


@pytest.mark.parametrize("shape, groups", SHAPES_GROUPS)
def test_each_group_is_standardized(shape, groups):
    x, _, _, _ = _inputs(shape)
    out, _ = layernorm.group_norm_forward(x, np.ones(shape[-1]), np.zeros(shape[-1]), groups,
                                          eps=1e-12)
    for n, g, idx in group_members(shape, groups):
        values = out[idx]
        assert values.size == np.prod(shape[1:-1], dtype=int) * shape[-1] // groups
        assert abs(values.mean()) < 1e-12, f"mean of example {n}, group {g}"
        assert values.var() == pytest.approx(1.0, rel=1e-9), f"variance of example {n}, group {g}"


@pytest.mark.parametrize("eps", [1e-3, 0.5])
@pytest.mark.parametrize("shape, groups", SHAPES_GROUPS)
def test_group_norm_matches_the_per_group_reference(shape, groups, eps):
    x, gamma, beta, _ = _inputs(shape, seed=2)
    out, _ = layernorm.group_norm_forward(x, gamma, beta, groups, eps)
    np.testing.assert_allclose(out, reference_group_norm(x, gamma, beta, groups, eps),
                               rtol=1e-12, atol=1e-12, err_msg=f"shape={shape}, groups={groups}")


@pytest.mark.parametrize("shape, groups", SHAPES_GROUPS)
def test_gradients_match_numerical(shape, groups):
    x, gamma, beta, dout = _inputs(shape, seed=1)
    _, cache = layernorm.group_norm_forward(x, gamma, beta, groups)
    dx, dgamma, dbeta = layernorm.group_norm_backward(dout, cache)
    f = lambda v: layernorm.group_norm_forward(v, gamma, beta, groups)[0]  # noqa: E731
    # h = 1e-4: with h = 1e-5 the rounding of sum(f(x) * dout) over up to 288 outputs
    # (about 1e-9 in the difference quotient) is 1e-7 of the smallest entries of dx.
    assert rel_error(dx, numerical_gradient(f, x.copy(), dout, h=1e-4)) < 1e-7
    g = lambda v: layernorm.group_norm_forward(x, v, beta, groups)[0]  # noqa: E731
    assert rel_error(dgamma, numerical_gradient(g, gamma.copy(), dout)) < 1e-7
    b = lambda v: layernorm.group_norm_forward(x, gamma, v, groups)[0]  # noqa: E731
    assert rel_error(dbeta, numerical_gradient(b, beta.copy(), dout)) < 1e-7


@pytest.mark.parametrize("shape", [(4, 8), (3, 2, 5, 4)])
def test_layer_norm_normalizes_each_example_over_all_its_values(shape):
    """Layer norm (and group norm with one group) against the per-example formula."""
    x, gamma, beta, dout = _inputs(shape, seed=3)
    eps = 1e-3
    axes = tuple(range(1, x.ndim))
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    expected = gamma * (x - mean) / np.sqrt(var + eps) + beta
    for name, forward in (("layer_norm", lambda: layernorm.layer_norm_forward(x, gamma, beta,
                                                                               eps)),
                          ("group_norm(groups=1)",
                           lambda: layernorm.group_norm_forward(x, gamma, beta, 1, eps))):
        out, cache = forward()
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12, err_msg=name)
    _, cache = layernorm.layer_norm_forward(x, gamma, beta, eps)
    dx, dgamma, dbeta = layernorm.layer_norm_backward(dout, cache)
    f = lambda v: layernorm.layer_norm_forward(v, gamma, beta, eps)[0]  # noqa: E731
    assert rel_error(dx, numerical_gradient(f, x.copy(), dout)) < 1e-7
    np.testing.assert_allclose(dgamma, np.sum(dout * (x - mean) / np.sqrt(var + eps),
                                              axis=tuple(range(x.ndim - 1))), rtol=1e-10)
    np.testing.assert_allclose(dbeta, np.sum(dout, axis=tuple(range(x.ndim - 1))), rtol=1e-12)


def test_independent_of_the_rest_of_the_batch():
    x, gamma, beta, _ = _inputs((6, 8))
    full, _ = layernorm.layer_norm_forward(x, gamma, beta)
    alone, _ = layernorm.layer_norm_forward(x[2:3], gamma, beta)
    np.testing.assert_allclose(alone[0], full[2], rtol=1e-13)


@pytest.fixture(scope="module")
def keras():
    from bnlib.lessons.lesson07.explore import tf_keras
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


@pytest.mark.parametrize("groups", [1, 3], ids=["LayerNorm", "GroupNorm3"])
def test_layer_object_against_the_references(groups):
    layer = layernorm.LayerNorm(6) if groups == 1 else layernorm.GroupNorm(6, groups)
    x, gamma, beta, dout = _inputs((5, 3, 6), seed=4)  # a group: 3 positions x 6/groups channels
    layer.gamma, layer.beta = gamma.copy(), beta.copy()
    out_train = layer(x, training=True)
    out_infer = layer(x, training=False)
    np.testing.assert_array_equal(out_train, out_infer)
    np.testing.assert_allclose(out_infer, reference_group_norm(x, gamma, beta, groups, 1e-3),
                               rtol=1e-12, atol=1e-12)
    dx = layer.backward(dout)
    assert layer.gamma.shape == layer.beta.shape == layer.dgamma.shape == (6,)
    checks = {
        "dx": (dx, x, lambda v: layer(v, training=True)),
        "dgamma": (layer.dgamma, layer.gamma, lambda v: layernorm.group_norm_forward(
            x, v, layer.beta, groups)[0]),
        "dbeta": (layer.dbeta, layer.beta, lambda v: layernorm.group_norm_forward(
            x, layer.gamma, v, groups)[0]),
    }
    for name, (analytic, point, f) in checks.items():
        numeric = numerical_gradient(f, point.copy(), dout)
        assert rel_error(analytic, numeric) < 1e-7, name


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
