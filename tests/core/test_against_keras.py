"""bnlib's batch norm against Keras and TensorFlow, the frameworks it imitates.

Each test does the same computation twice, once with bnlib and once with
TensorFlow/Keras, and asserts that the two agree to float32 round-off:
within 1e-5 absolute, or 1e-5 relative where the values are large (sums
over many entries, such as dgamma). Every behaviour has one test with the
Keras calls written out, then a shorter test of the :mod:`bnlib.tf_compare`
helper that the lessons use for it.

Three layouts, as Keras names them by the kept ``axis``:

* (N, D) with axis=-1: one mean and variance per feature;
* (N, H, W, C) with axis=-1: one per channel, over the batch and all pixels;
* (N, H, W, C) with axis=(1, 2, 3): one per pixel and channel, over the batch.

Keras's layer keeps a single axis, so the per-pixel case is given to Keras as
x.reshape(N, H*W*C): normalizing per column of that matrix is the same thing.
"""
from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bnlib import tf_compare  # sets TensorFlow's environment first, then imports it
from bnlib.batchnorm import BatchNorm, batchnorm_backward, batchnorm_forward

import keras  # noqa: E402  (after bnlib.tf_compare)
import tensorflow as tf  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PER_PIXEL = (1, 2, 3)
TOL = {"rtol": 1e-5, "atol": 1e-5}

LAYOUTS = [
    pytest.param((64, 10), -1, id="(N,D)-axis=-1"),
    pytest.param((16, 8, 8, 3), -1, id="(N,H,W,C)-axis=-1"),
    pytest.param((32, 4, 4, 3), PER_PIXEL, id="(N,H,W,C)-axis=(1,2,3)"),
]


def kept_shape(shape, axis) -> tuple:
    """Shape of gamma, beta and the moving statistics: (D,), (C,) or (H, W, C)."""
    return tuple(shape[a] for a in ((axis,) if isinstance(axis, int) else axis))


def reduced_axes(shape, axis) -> list:
    """The axes the statistics average over (tf.nn.moments's ``axes``)."""
    kept = [a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis)]
    return [a for a in range(len(shape)) if a not in kept]


def keras_input(x, axis):
    """x as Keras's one-axis layer must see it: per-pixel (N, H, W, C) becomes (N, H*W*C)."""
    return x.reshape(len(x), -1) if axis == PER_PIXEL else x


def make_batch(shape, axis, seed=0):
    """A float32 batch far from standardized, and random float32 layer weights.

    Returns x, gamma, beta, moving_mean, moving_variance.
    """
    rng = np.random.default_rng(seed)
    p = kept_shape(shape, axis)
    x = rng.normal(3.0, 2.0, size=shape) * rng.uniform(0.5, 2.0, size=p)
    gamma = rng.uniform(0.5, 1.5, size=p)
    beta = rng.normal(size=p)
    moving_mean = rng.normal(size=p)
    moving_variance = rng.uniform(0.5, 2.0, size=p)
    return tuple(a.astype(np.float32) for a in (x, gamma, beta, moving_mean, moving_variance))


# ---------------------------------------------------------------- outputs

@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_training_output_matches_keras(shape, axis):
    x, gamma, beta, moving_mean, moving_variance = make_batch(shape, axis)

    out, _, new_mean, new_var = batchnorm_forward(x, gamma, beta, moving_mean, moving_variance,
                                                  training=True, axis=axis)

    layer = keras.layers.BatchNormalization()          # momentum 0.99, epsilon 1e-3
    layer.build(keras_input(x, axis).shape)
    layer.set_weights([gamma.reshape(-1), beta.reshape(-1),
                       moving_mean.reshape(-1), moving_variance.reshape(-1)])
    out_keras = layer(keras_input(x, axis), training=True).numpy().reshape(shape)

    assert out.dtype == np.float32
    np.testing.assert_allclose(out, out_keras, **TOL)
    np.testing.assert_allclose(new_mean, layer.moving_mean.numpy().reshape(new_mean.shape), **TOL)
    np.testing.assert_allclose(new_var, layer.moving_variance.numpy().reshape(new_var.shape),
                               **TOL)


@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_inference_output_matches_keras(shape, axis):
    x, gamma, beta, moving_mean, moving_variance = make_batch(shape, axis)

    out, _, new_mean, new_var = batchnorm_forward(x, gamma, beta, moving_mean, moving_variance,
                                                  training=False, axis=axis)

    layer = keras.layers.BatchNormalization()
    layer.build(keras_input(x, axis).shape)
    layer.set_weights([gamma.reshape(-1), beta.reshape(-1),
                       moving_mean.reshape(-1), moving_variance.reshape(-1)])
    out_keras = layer(keras_input(x, axis), training=False).numpy().reshape(shape)

    np.testing.assert_allclose(out, out_keras, **TOL)
    # Inference mode leaves the moving statistics alone, in both.
    np.testing.assert_array_equal(layer.moving_mean.numpy(), moving_mean.reshape(-1))
    np.testing.assert_array_equal(new_mean, moving_mean)
    np.testing.assert_array_equal(new_var, moving_variance)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_keras_batchnorm_helper_matches_bnlib(shape, axis, training):
    x, gamma, beta, moving_mean, moving_variance = make_batch(shape, axis, seed=1)

    out, _, new_mean, new_var = batchnorm_forward(x, gamma, beta, moving_mean, moving_variance,
                                                  training=training, momentum=0.9, eps=1e-2,
                                                  axis=axis)
    out_k, new_mean_k, new_var_k = tf_compare.keras_batchnorm(
        x, gamma, beta, moving_mean, moving_variance, training=training, momentum=0.9,
        eps=1e-2, axis=axis)

    assert out_k.shape == out.shape and new_mean_k.shape == new_mean.shape
    np.testing.assert_allclose(out, out_k, **TOL)
    np.testing.assert_allclose(new_mean, new_mean_k, **TOL)
    np.testing.assert_allclose(new_var, new_var_k, **TOL)


# ---------------------------------------------------------------- moving statistics

@pytest.mark.parametrize("momentum", [0.9, 0.99])
@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_moving_statistics_match_keras_after_100_steps(shape, axis, momentum):
    rng = np.random.default_rng(2)
    p = kept_shape(shape, axis)
    moving_mean = np.zeros(p, np.float32)             # Keras's initial values
    moving_variance = np.ones(p, np.float32)
    gamma, beta = np.ones(p, np.float32), np.zeros(p, np.float32)
    layer = keras.layers.BatchNormalization(momentum=momentum)

    for step in range(100):
        # The data drift, so the moving averages have something to track.
        x = rng.normal(1.0 + 0.02 * step, 2.0, size=shape).astype(np.float32)
        _, _, moving_mean, moving_variance = batchnorm_forward(
            x, gamma, beta, moving_mean, moving_variance, training=True, momentum=momentum,
            axis=axis)
        layer(keras_input(x, axis), training=True)

    np.testing.assert_allclose(moving_mean, layer.moving_mean.numpy().reshape(p), **TOL)
    np.testing.assert_allclose(moving_variance, layer.moving_variance.numpy().reshape(p), **TOL)
    # Not still at the start: after 100 steps even momentum 0.99 has moved well away.
    assert np.all(np.abs(moving_variance - 1.0) > 0.5)


@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_keras_moving_stats_helper_matches_bnlib_layer(shape, axis):
    rng = np.random.default_rng(3)
    batches = [rng.normal(-2.0, 0.5, size=shape).astype(np.float32) for _ in range(100)]
    momentum = 0.9

    layer = BatchNorm(kept_shape(shape, axis), momentum=momentum, axis=axis, dtype=np.float32)
    for x in batches:
        layer(x, training=True)
    moving_mean_k, moving_variance_k = tf_compare.keras_moving_stats(batches, momentum=momentum,
                                                                     axis=axis)

    np.testing.assert_allclose(layer.moving_mean, moving_mean_k, **TOL)
    np.testing.assert_allclose(layer.moving_variance, moving_variance_k, **TOL)


@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_keras_moving_variance_uses_the_biased_batch_variance(shape, axis):
    # momentum=0 replaces the moving statistics by the batch's: what Keras stores
    # is then exactly the variance it uses, dividing by n, not n - 1.
    small = (4,) + tuple(shape[1:])                    # n - 1 vs n matters most for small n
    x, gamma, beta, moving_mean, moving_variance = make_batch(small, axis)
    axes = tuple(reduced_axes(small, axis))
    biased, unbiased = np.var(x, axis=axes, ddof=0), np.var(x, axis=axes, ddof=1)

    layer = keras.layers.BatchNormalization(momentum=0.0)
    layer(keras_input(x, axis), training=True)
    keras_var = layer.moving_variance.numpy().reshape(biased.shape)

    _, _, _, bnlib_var = batchnorm_forward(x, gamma, beta, moving_mean, moving_variance,
                                           training=True, momentum=0.0, axis=axis)
    _, _, _, pytorch_style_var = batchnorm_forward(x, gamma, beta, moving_mean, moving_variance,
                                                   training=True, momentum=0.0, axis=axis,
                                                   unbiased_moving_variance=True)

    np.testing.assert_allclose(keras_var, biased, **TOL)
    np.testing.assert_allclose(bnlib_var, keras_var, **TOL)     # bnlib's default is Keras's
    np.testing.assert_allclose(pytorch_style_var, unbiased, **TOL)
    assert not np.allclose(pytorch_style_var, keras_var, **TOL)


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_gradients_match_tf_gradient_tape(shape, axis):
    x, gamma, beta, moving_mean, moving_variance = make_batch(shape, axis)
    dout = np.random.default_rng(4).normal(size=shape).astype(np.float32)

    _, cache, _, _ = batchnorm_forward(x, gamma, beta, moving_mean, moving_variance,
                                       training=True, axis=axis)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)

    # TensorFlow differentiates L = sum(out * dout), whose gradient wrt out is dout.
    x_tf = tf.constant(keras_input(x, axis))
    layer = keras.layers.BatchNormalization()
    layer.build(x_tf.shape)
    layer.gamma.assign(gamma.reshape(-1))
    layer.beta.assign(beta.reshape(-1))
    with tf.GradientTape() as tape:
        tape.watch(x_tf)
        loss = tf.reduce_sum(layer(x_tf, training=True) * keras_input(dout, axis))
    dx_tf, dgamma_tf, dbeta_tf = tape.gradient(loss, [x_tf, layer.gamma, layer.beta])

    assert dx.dtype == np.float32
    np.testing.assert_allclose(dx, dx_tf.numpy().reshape(shape), **TOL)
    np.testing.assert_allclose(dgamma, dgamma_tf.numpy().reshape(dgamma.shape), **TOL)
    np.testing.assert_allclose(dbeta, dbeta_tf.numpy().reshape(dbeta.shape), **TOL)


@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_keras_gradients_helper_matches_bnlib(shape, axis):
    x, gamma, beta, moving_mean, moving_variance = make_batch(shape, axis, seed=5)
    dout = np.random.default_rng(6).normal(size=shape).astype(np.float32)

    _, cache, _, _ = batchnorm_forward(x, gamma, beta, moving_mean, moving_variance,
                                       training=True, eps=1e-2, axis=axis)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    dx_k, dgamma_k, dbeta_k = tf_compare.keras_batchnorm_gradients(x, gamma, beta, dout,
                                                                   eps=1e-2, axis=axis)

    assert dx_k.shape == dx.shape and dgamma_k.shape == dgamma.shape
    np.testing.assert_allclose(dx, dx_k, **TOL)
    np.testing.assert_allclose(dgamma, dgamma_k, **TOL)
    np.testing.assert_allclose(dbeta, dbeta_k, **TOL)


# ---------------------------------------------------------------- tf.nn, without a layer

@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_matches_tf_nn_moments_and_batch_normalization(shape, axis):
    x, gamma, beta, moving_mean, moving_variance = make_batch(shape, axis)

    out, _, _, _ = batchnorm_forward(x, gamma, beta, moving_mean, moving_variance,
                                     training=True, axis=axis)

    # tf.nn names the axes to average over: [0] for (N, D), [0, 1, 2] per channel
    # of (N, H, W, C), [0] per pixel. gamma and beta broadcast against x.
    mean, variance = tf.nn.moments(tf.constant(x), axes=reduced_axes(shape, axis), keepdims=True)
    out_tf = tf.nn.batch_normalization(x, mean, variance, offset=beta, scale=gamma,
                                       variance_epsilon=1e-3).numpy()

    np.testing.assert_allclose(out, out_tf, **TOL)


@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_tf_nn_helper_matches_bnlib(shape, axis):
    x, gamma, beta, moving_mean, moving_variance = make_batch(shape, axis, seed=7)
    p = kept_shape(shape, axis)

    out, _, _, _ = batchnorm_forward(x, gamma, beta, moving_mean, moving_variance,
                                     training=True, axis=axis)
    plain, _, _, _ = batchnorm_forward(x, np.ones(p, np.float32), np.zeros(p, np.float32),
                                       moving_mean, moving_variance, training=True, axis=axis)

    axes = reduced_axes(shape, axis)
    np.testing.assert_allclose(out, tf_compare.tf_nn_batchnorm(x, axes, 1e-3, gamma, beta), **TOL)
    np.testing.assert_allclose(plain, tf_compare.tf_nn_batchnorm(x, axes, 1e-3), **TOL)


# ---------------------------------------------------------------- defaults and set-up

def test_keras_defaults():
    layer = keras.layers.BatchNormalization()
    layer.build((None, 5))

    assert layer.momentum == 0.99
    assert layer.epsilon == 1e-3
    assert layer.axis == -1
    np.testing.assert_array_equal(layer.gamma.numpy(), np.ones(5))
    np.testing.assert_array_equal(layer.beta.numpy(), np.zeros(5))
    np.testing.assert_array_equal(layer.moving_mean.numpy(), np.zeros(5))
    np.testing.assert_array_equal(layer.moving_variance.numpy(), np.ones(5))
    # Four vectors: two learned by gradient descent, two by exponential smoothing.
    assert [w.name for w in layer.trainable_weights] == ["gamma", "beta"]
    assert [w.name for w in layer.non_trainable_weights] == ["moving_mean", "moving_variance"]
    assert layer.dtype == "float32"


def test_bnlib_defaults_are_keras_defaults():
    params = inspect.signature(batchnorm_forward).parameters
    keras_layer = keras.layers.BatchNormalization()

    assert params["momentum"].default == keras_layer.momentum
    assert params["eps"].default == keras_layer.epsilon
    assert params["axis"].default == keras_layer.axis
    assert params["unbiased_moving_variance"].default is False
    layer = BatchNorm(5)
    np.testing.assert_array_equal(layer.moving_mean, np.zeros(5))
    np.testing.assert_array_equal(layer.moving_variance, np.ones(5))


def test_set_seed_makes_draws_repeat_and_can_be_called_twice():
    tf_compare.set_seed(123)
    first = (np.random.rand(3), tf.random.uniform((3,)).numpy(),
             keras.random.uniform((3,)).numpy())
    tf_compare.set_seed(123)
    second = (np.random.rand(3), tf.random.uniform((3,)).numpy(),
              keras.random.uniform((3,)).numpy())

    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_import_bnlib_does_not_import_tensorflow():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", "import bnlib, sys; assert 'tensorflow' not in sys.modules"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
