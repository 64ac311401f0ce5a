"""bnlib.cnn: the small CNN's gradients (numerical, float64), the same network in Keras
(float32), and training with bnlib.nn.train."""
from __future__ import annotations

import numpy as np
import pytest

from bnlib import cnn, nn
from bnlib.gradcheck import numerical_gradient, rel_error
from bnlib.layernorm import GroupNorm

NORMS = [pytest.param(None, id="plain"), pytest.param("batch", id="batch-norm"),
         pytest.param(lambda c: GroupNorm(c, 2), id="group-norm")]


def _batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, size=(n, 6, 6, 2)), rng.integers(0, 5, size=n)


def _loss(model, x, y):
    return nn.softmax_cross_entropy(model.forward(x, training=True), y)


@pytest.mark.parametrize("norm", NORMS)
def test_every_gradient_matches_numerical(norm):
    x, y = _batch()
    model = cnn.CNN((2, 4), in_channels=2, n_classes=5, norm=norm, strides=(1, 2), seed=1)
    for p in model.params():   # move gamma, beta and the biases away from 1 and 0
        p += np.random.default_rng(2).normal(0, 0.3, size=p.shape)
    loss, dlogits = _loss(model, x, y)
    dx = model.backward(dlogits)
    grads = dict(zip(model.param_names(), [g.copy() for g in model.grads()]))
    for name, p in zip(model.param_names(), model.params()):
        num = numerical_gradient(lambda _: np.array(_loss(model, x, y)[0]), p, np.array(1.0))
        assert rel_error(grads[name], num) < 1e-6, name
    num_x = numerical_gradient(lambda v: np.array(_loss(model, v, y)[0]), x.copy(), np.array(1.0))
    assert rel_error(dx, num_x) < 1e-6


def test_batch_norm_replaces_the_convolution_bias():
    plain = cnn.CNN((4, 8), seed=0)
    with_bn = cnn.CNN((4, 8), norm="batch", seed=0)
    assert plain.param_names() == ["kernel1", "bias1", "kernel2", "bias2", "W", "b"]
    assert with_bn.param_names() == ["kernel1", "gamma1", "beta1", "kernel2", "gamma2", "beta2",
                                     "W", "b"]
    assert [k.shape for k in with_bn.kernels] == [(3, 3, 1, 4), (3, 3, 4, 8)]
    assert all(n.gamma.shape == (c,) for n, c in zip(with_bn.norms, (4, 8)))
    assert with_bn.n_params() == plain.n_params() + 4 + 8  # gamma and beta, minus the biases
    np.testing.assert_array_equal(plain.kernels[0], with_bn.kernels[0])  # same seed, same init


def test_batch_norm_statistics_are_per_channel_over_n_h_w():
    x, _ = _batch(n=6)
    model = cnn.CNN((3,), in_channels=2, norm="batch", seed=0)
    model.norms[0].momentum = 0.0   # the moving statistics become this batch's
    model.forward(x, training=True)
    z = model._caches[0].cols @ model.kernels[0].reshape(-1, 3)   # the conv output, (N*H*W, 3)
    np.testing.assert_allclose(model.norms[0].moving_mean, z.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(model.norms[0].moving_variance, z.var(axis=0), rtol=1e-12)
    bn_out = model.pre_activations[0]
    np.testing.assert_allclose(bn_out.mean(axis=(0, 1, 2)), 0.0, atol=1e-12)


def test_inference_output_of_one_image_does_not_depend_on_the_batch():
    x, y = _batch(n=6)
    model = cnn.CNN((3, 4), in_channels=2, n_classes=5, norm="batch", seed=0)
    for _ in range(3):   # a few training steps move the weights and the moving statistics
        model.backward(_loss(model, x, y)[1])
        nn.sgd_step(model, 0.1)
    alone = model.forward(x[:1], training=False)
    in_batch = model.forward(x, training=False)[:1]
    np.testing.assert_allclose(alone, in_batch, atol=1e-12)


def test_digit_images_are_the_digits_reshaped():
    from bnlib import data
    flat, images = data.digits(), cnn.digit_images()
    assert images.x_train.shape == (len(flat.x_train), 8, 8, 1)
    np.testing.assert_array_equal(images.x_train.reshape(len(flat.x_train), 64), flat.x_train)
    np.testing.assert_array_equal(images.y_test, flat.y_test)


def test_trains_with_nn_train():
    split = cnn.digit_images()
    model = cnn.CNN((4, 8), norm="batch", seed=0)
    history = nn.train(model, split, steps=60, lr=0.3, batch_size=32, eval_every=20)
    assert list(history.eval_step) == [0, 20, 40, 60] and not history.diverged
    assert history.loss[-10:].mean() < history.loss[:10].mean()


@pytest.mark.parametrize("kwargs, name", [
    (dict(channels=()), "channels"), (dict(strides=(1, 2, 3)), "strides"),
    (dict(norm="layer"), "norm")])
def test_bad_settings_raise_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        cnn.CNN(**{"channels": (4, 8), **kwargs})


def test_forward_refuses_flat_input():
    with pytest.raises(ValueError, match="x must have shape"):
        cnn.CNN((4,)).forward(np.zeros((2, 64)), training=True)


# ---------------------------------------------------------------- the same network in Keras

@pytest.fixture(scope="module")
def tf_keras():
    from bnlib import tf_compare  # sets TensorFlow's environment before importing it
    return tf_compare.tf, tf_compare.keras


def keras_copy(keras, model):
    """The Keras twin of a bnlib CNN with batch norm, written out layer by layer."""
    layers = [keras.Input((8, 8, 1))]
    for c, s in zip(model.channels, model.strides):
        layers += [keras.layers.Conv2D(c, 3, strides=s, padding="same", use_bias=False),
                   keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3),
                   keras.layers.ReLU()]
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)]
    twin = keras.Sequential(layers)
    convs = [layer for layer in twin.layers if isinstance(layer, keras.layers.Conv2D)]
    bns = [layer for layer in twin.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer, kernel in zip(convs, model.kernels):
        layer.set_weights([kernel])
    for layer, bn in zip(bns, model.norms):
        layer.set_weights([bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance])
    twin.layers[-1].set_weights([model.W, model.b])
    return twin, bns


def test_cnn_matches_keras_outputs_moving_statistics_and_gradients(tf_keras):
    tf, keras = tf_keras
    split = cnn.digit_images(dtype=np.float32)
    model = cnn.CNN((4, 8), strides=(1, 2), norm="batch", seed=3, dtype=np.float32)
    twin, bns = keras_copy(keras, model)
    for step in range(30):   # both see the same batches in training mode
        x = split.x_train[32 * step:32 * (step + 1)]
        out = model.forward(x, training=True)
        out_keras = twin(x, training=True).numpy()
        np.testing.assert_allclose(out, out_keras, rtol=1e-4, atol=1e-4)
    for layer, bn in zip(bns, model.norms):
        np.testing.assert_allclose(bn.moving_mean, layer.moving_mean.numpy(), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(bn.moving_variance, layer.moving_variance.numpy(), rtol=1e-5,
                                   atol=1e-6)
    x, y = split.x_test[:40], split.y_test[:40]
    np.testing.assert_allclose(model.forward(x, training=False),
                               twin(x, training=False).numpy(), rtol=1e-4, atol=1e-4)
    loss, dlogits = _loss(model, x, y)
    model.backward(dlogits)
    with tf.GradientTape() as tape:
        keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
            y, twin(x, training=True))
    keras_grads = tape.gradient(keras_loss, twin.trainable_weights)
    assert abs(loss - float(keras_loss)) < 1e-5
    # Keras lists kernel, gamma, beta per block, then the dense kernel and bias: bnlib's order
    for name, ours, theirs in zip(model.param_names(), model.grads(), keras_grads):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-3, atol=1e-5, err_msg=name)
