"""bnlib.conv: the convolution against a loop written from the formula, numerical gradients
(float64) and Keras/TensorFlow (float32); pooling; folding batch norm into a convolution."""
from __future__ import annotations

import numpy as np
import pytest

from bnlib import conv
from bnlib.batchnorm import batchnorm_forward
from bnlib.gradcheck import numerical_gradient, rel_error

# (x shape, kernel (KH, KW, C_out), stride, padding)
SETTINGS = [
    pytest.param((2, 5, 6, 3), (3, 3, 4), 1, "same", id="3x3-same"),
    pytest.param((2, 5, 6, 3), (3, 3, 4), 1, "valid", id="3x3-valid"),
    pytest.param((2, 7, 6, 2), (3, 2, 3), 2, "same", id="3x2-stride2-same"),
    pytest.param((1, 8, 7, 2), (3, 3, 2), 3, "same", id="stride3-same"),
    pytest.param((2, 6, 6, 1), (5, 5, 2), 2, "valid", id="5x5-stride2-valid"),
    pytest.param((3, 4, 5, 2), (3, 3, 2), 1, 2, id="pad2"),
    pytest.param((2, 4, 4, 3), (1, 1, 5), 1, "same", id="1x1"),
]


def _data(x_shape, k_shape, seed=0):
    rng = np.random.default_rng(seed)
    kh, kw, c_out = k_shape
    x = rng.normal(size=x_shape)
    kernel = rng.normal(size=(kh, kw, x_shape[-1], c_out))
    bias = rng.normal(size=c_out)
    return x, kernel, bias


def loop_conv(x, kernel, bias, stride, padding):
    """The definition, one output value at a time (no im2col, no NumPy tricks)."""
    n, h, w, c = x.shape
    kh, kw, _, c_out = kernel.shape
    if padding == "valid":
        top = bottom = left = right = 0
    elif padding == "same":  # TensorFlow's rule
        oh, ow = -(-h // stride), -(-w // stride)
        ph, pw = max((oh - 1) * stride + kh - h, 0), max((ow - 1) * stride + kw - w, 0)
        top, left = ph // 2, pw // 2
        bottom, right = ph - top, pw - left
    else:
        top = bottom = left = right = padding
    xp = np.zeros((n, h + top + bottom, w + left + right, c))
    xp[:, top:top + h, left:left + w] = x
    oh = (xp.shape[1] - kh) // stride + 1
    ow = (xp.shape[2] - kw) // stride + 1
    out = np.zeros((n, oh, ow, c_out))
    for i in range(n):
        for r in range(oh):
            for s in range(ow):
                window = xp[i, r * stride:r * stride + kh, s * stride:s * stride + kw, :]
                for o in range(c_out):
                    out[i, r, s, o] = np.sum(window * kernel[:, :, :, o]) + bias[o]
    return out


@pytest.mark.parametrize("x_shape, k_shape, stride, padding", SETTINGS)
def test_forward_matches_the_loop_definition(x_shape, k_shape, stride, padding):
    x, kernel, bias = _data(x_shape, k_shape)
    out, _ = conv.conv2d_forward(x, kernel, bias, stride=stride, padding=padding)
    np.testing.assert_allclose(out, loop_conv(x, kernel, bias, stride, padding), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("x_shape, k_shape, stride, padding", SETTINGS)
def test_output_size(x_shape, k_shape, stride, padding):
    x, kernel, bias = _data(x_shape, k_shape)
    out, _ = conv.conv2d_forward(x, kernel, bias, stride=stride, padding=padding)
    assert out.shape[1] == conv.conv_output_size(x_shape[1], k_shape[0], stride=stride,
                                                 padding=padding)
    assert out.shape[2] == conv.conv_output_size(x_shape[2], k_shape[1], stride=stride,
                                                 padding=padding)


@pytest.mark.parametrize("x_shape, k_shape, stride, padding", SETTINGS)
def test_gradients_match_numerical(x_shape, k_shape, stride, padding):
    x, kernel, bias = _data(x_shape, k_shape, seed=1)
    out, cache = conv.conv2d_forward(x, kernel, bias, stride=stride, padding=padding)
    dout = np.random.default_rng(2).normal(size=out.shape)
    dx, dkernel, dbias = conv.conv2d_backward(dout, cache)

    def with_x(v):
        return conv.conv2d_forward(v, kernel, bias, stride=stride, padding=padding)[0]

    def with_kernel(v):
        return conv.conv2d_forward(x, v, bias, stride=stride, padding=padding)[0]

    def with_bias(v):
        return conv.conv2d_forward(x, kernel, v, stride=stride, padding=padding)[0]

    # The convolution is linear in each argument: centred differences are exact up to
    # round-off, which a larger step h keeps small.
    assert rel_error(dx, numerical_gradient(with_x, x.copy(), dout, h=1e-3)) < 1e-9
    assert rel_error(dkernel, numerical_gradient(with_kernel, kernel.copy(), dout, h=1e-3)) < 1e-9
    assert rel_error(dbias, numerical_gradient(with_bias, bias.copy(), dout, h=1e-3)) < 1e-9


def test_no_bias_gives_no_bias_gradient_and_input_grad_false_skips_dx():
    x, kernel, _ = _data((2, 5, 5, 3), (3, 3, 4))
    out, cache = conv.conv2d_forward(x, kernel)
    np.testing.assert_allclose(out, loop_conv(x, kernel, np.zeros(4), 1, "same"), atol=1e-12)
    dout = np.ones_like(out)
    dx, dkernel, dbias = conv.conv2d_backward(dout, cache)
    assert dbias is None
    none, dkernel2, _ = conv.conv2d_backward(dout, cache, input_grad=False)
    assert none is None
    np.testing.assert_array_equal(dkernel, dkernel2)


def test_float32_stays_float32():
    x, kernel, bias = (a.astype(np.float32) for a in _data((2, 4, 4, 2), (3, 3, 3)))
    out, cache = conv.conv2d_forward(x, kernel, bias)
    grads = conv.conv2d_backward(np.ones_like(out), cache)
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)


# ---------------------------------------------------------------- against Keras / TensorFlow

@pytest.fixture(scope="module")
def tf_keras():
    from bnlib import tf_compare  # sets TensorFlow's environment before importing it
    return tf_compare.tf, tf_compare.keras


KERAS_SETTINGS = [(1, "same"), (1, "valid"), (2, "same"), (2, "valid")]


@pytest.mark.parametrize("stride, padding", KERAS_SETTINGS)
def test_forward_matches_keras_conv2d(tf_keras, stride, padding):
    _, keras = tf_keras
    x, kernel, bias = (a.astype(np.float32) for a in _data((3, 7, 8, 3), (3, 3, 5)))
    layer = keras.layers.Conv2D(5, 3, strides=stride, padding=padding)
    layer.build(x.shape)
    layer.set_weights([kernel, bias])
    expected = layer(x).numpy()
    out, _ = conv.conv2d_forward(x, kernel, bias, stride=stride, padding=padding)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride, padding", KERAS_SETTINGS)
def test_gradients_match_tensorflow(tf_keras, stride, padding):
    tf, keras = tf_keras
    x, kernel, bias = (a.astype(np.float32) for a in _data((3, 7, 8, 3), (3, 3, 5), seed=3))
    layer = keras.layers.Conv2D(5, 3, strides=stride, padding=padding)
    layer.build(x.shape)
    layer.set_weights([kernel, bias])
    out, cache = conv.conv2d_forward(x, kernel, bias, stride=stride, padding=padding)
    dout = np.random.default_rng(4).normal(size=out.shape).astype(np.float32)
    x_tf = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tf)
        loss = tf.reduce_sum(layer(x_tf) * dout)
    dx_tf, dkernel_tf, dbias_tf = tape.gradient(loss, [x_tf, layer.kernel, layer.bias])
    dx, dkernel, dbias = conv.conv2d_backward(dout, cache)
    np.testing.assert_allclose(dx, dx_tf.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dkernel, dkernel_tf.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dbias, dbias_tf.numpy(), rtol=1e-4, atol=1e-4)


def test_global_average_pooling_matches_keras(tf_keras):
    _, keras = tf_keras
    x = np.random.default_rng(5).normal(size=(4, 3, 5, 6)).astype(np.float32)
    expected = keras.layers.GlobalAveragePooling2D()(x).numpy()
    np.testing.assert_allclose(conv.global_avg_pool_forward(x), expected, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- pooling

def test_global_average_pooling_gradient():
    rng = np.random.default_rng(6)
    x, dout = rng.normal(size=(3, 4, 2, 5)), rng.normal(size=(3, 5))
    dx = conv.global_avg_pool_backward(dout, x.shape)
    assert dx.shape == x.shape
    num = numerical_gradient(conv.global_avg_pool_forward, x.copy(), dout, h=1e-3)
    assert rel_error(dx, num) < 1e-9


# ---------------------------------------------------------------- folding

def _fold_case(seed=7, c_in=3, c_out=4, with_bias=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(5, 6, 6, c_in))
    kernel = rng.normal(size=(3, 3, c_in, c_out))
    bias = rng.normal(size=c_out) if with_bias else None
    gamma, beta = rng.uniform(0.5, 2.0, c_out), rng.normal(size=c_out)
    mean, var = rng.normal(size=c_out), rng.uniform(0.05, 3.0, c_out)
    return x, kernel, bias, gamma, beta, mean, var


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("eps", [1e-3, 0.5])
def test_folded_convolution_equals_conv_then_inference_batch_norm(with_bias, eps):
    x, kernel, bias, gamma, beta, mean, var = _fold_case(with_bias=with_bias)
    z, _ = conv.conv2d_forward(x, kernel, bias)
    # inference-mode batch norm written from its formula, per output channel
    expected = gamma * (z - mean) / np.sqrt(var + eps) + beta
    k2, b2 = conv.fold_into_conv(kernel, bias, gamma, beta, mean, var, eps=eps)
    folded, _ = conv.conv2d_forward(x, k2, b2)
    np.testing.assert_allclose(folded, expected, rtol=1e-12, atol=1e-12)
    bn, _, _, _ = batchnorm_forward(z, gamma, beta, mean, var, training=False, eps=eps)
    np.testing.assert_allclose(folded, bn, rtol=1e-12, atol=1e-12)


def test_fold_scales_only_the_output_channel_axis():
    x, kernel, bias, gamma, beta, mean, var = _fold_case(c_in=4, c_out=4)
    k2, _ = conv.fold_into_conv(kernel, bias, gamma, beta, mean, var)
    ratio = k2 / kernel
    np.testing.assert_allclose(ratio, np.broadcast_to(gamma / np.sqrt(var + 1e-3), kernel.shape))


def test_fold_matches_keras_conv_then_batch_norm(tf_keras):
    _, keras = tf_keras
    x, kernel, bias, gamma, beta, mean, var = (
        None if a is None else a.astype(np.float32) for a in _fold_case(with_bias=False))
    model = keras.Sequential([keras.Input(x.shape[1:]),
                              keras.layers.Conv2D(4, 3, padding="same", use_bias=False),
                              keras.layers.BatchNormalization()])
    model.layers[0].set_weights([kernel])
    model.layers[1].set_weights([gamma, beta, mean, var])
    expected = model(x, training=False).numpy()
    k2, b2 = conv.fold_into_conv(kernel, None, gamma, beta, mean, var)
    folded = keras.layers.Conv2D(4, 3, padding="same")
    folded.build(x.shape)
    folded.set_weights([k2, b2])
    np.testing.assert_allclose(folded(x).numpy(), expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, name", [
    (lambda: conv.conv2d_forward(np.zeros((4, 4, 1)), np.zeros((3, 3, 1, 2))), "x"),
    (lambda: conv.conv2d_forward(np.zeros((1, 4, 4, 2)), np.zeros((3, 3, 1, 2))), "kernel"),
    (lambda: conv.conv2d_forward(np.zeros((1, 4, 4, 1)), np.zeros((3, 3, 1))), "kernel"),
    (lambda: conv.conv2d_forward(np.zeros((1, 4, 4, 1)), np.zeros((3, 3, 1, 2)), np.zeros(3)),
     "bias"),
    (lambda: conv.conv2d_forward(np.zeros((1, 4, 4, 1)), np.zeros((3, 3, 1, 2)), stride=0),
     "stride"),
    (lambda: conv.conv2d_forward(np.zeros((1, 4, 4, 1)), np.zeros((3, 3, 1, 2)), padding="full"),
     "padding"),
    (lambda: conv.conv2d_forward(np.zeros((1, 4, 4, 1)), np.zeros((3, 3, 1, 2)), padding=-1),
     "padding"),
    (lambda: conv.conv2d_forward(np.zeros((1, 2, 2, 1)), np.zeros((3, 3, 1, 2)),
                                 padding="valid"), "kernel"),
    (lambda: conv.conv2d_forward(np.full((1, 4, 4, 1), np.nan), np.zeros((3, 3, 1, 2))), "x"),
    (lambda: conv.conv2d_backward(np.zeros((1, 3, 3, 2)),
                                  conv.conv2d_forward(np.zeros((1, 4, 4, 1)),
                                                      np.zeros((3, 3, 1, 2)))[1]), "dout"),
    (lambda: conv.global_avg_pool_forward(np.zeros((2, 3))), "x"),
    (lambda: conv.fold_into_conv(np.zeros((3, 3, 1, 2)), None, np.ones(3), np.zeros(2),
                                 np.zeros(2), np.ones(2)), "gamma"),
    (lambda: conv.fold_into_conv(np.zeros((3, 3, 1, 2)), None, np.ones(2), np.zeros(2),
                                 np.zeros(2), -np.ones(2)), "moving_variance"),
    (lambda: conv.fold_into_conv(np.zeros((3, 3, 1, 2)), None, np.ones(2), np.zeros(2),
                                 np.zeros(2), np.ones(2), eps=0.0), "eps"),
])
def test_bad_input_raises_a_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()
