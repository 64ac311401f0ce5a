"""Lesson 09's Keras side: Conv2D + BatchNormalization next to bnlib, and the folded model.

Imports TensorFlow through :mod:`bnlib.tf_compare` (quiet, deterministic, no oneDNN
reordering), so import this module only where Keras is wanted. Every function
takes and returns NumPy arrays (float32, Keras's dtype).
"""
from __future__ import annotations

import numpy as np

from bnlib import cnn, conv
from bnlib.batchnorm import batchnorm_backward, batchnorm_forward
from bnlib.tf_compare import keras, set_seed, tf

__all__ = ["conv_bn_pair", "side_by_side", "channels_first_batchnorm", "keras_twin",
           "graph_function"]


def conv_bn_pair(kernel, gamma, beta, moving_mean, moving_variance, *, input_shape,
                 momentum: float = 0.99, eps: float = 1e-3):
    """``Conv2D(use_bias=False)`` then ``BatchNormalization()`` in Keras, with these weights.

    Parameters
    ----------
    kernel : array_like of shape (KH, KW, C_in, C_out)
    gamma, beta, moving_mean, moving_variance : array_like of shape (C_out,)
    input_shape : tuple of int
        (H, W, C_in) of one image.
    momentum, eps : float
        The layer's ``momentum`` and ``epsilon`` (Keras defaults 0.99 and 1e-3).

    Returns
    -------
    convolution, batch_norm : the two built Keras layers
    """
    set_seed(0)
    kernel = np.asarray(kernel, np.float32)
    convolution = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[:2], padding="same",
                                      use_bias=False)
    batch_norm = keras.layers.BatchNormalization(momentum=momentum, epsilon=eps)
    convolution.build((None,) + tuple(input_shape))
    batch_norm.build((None,) + tuple(input_shape[:2]) + (kernel.shape[-1],))
    convolution.set_weights([kernel])
    batch_norm.set_weights([np.asarray(v, np.float32) for v in
                            (gamma, beta, moving_mean, moving_variance)])
    return convolution, batch_norm


def side_by_side(batches, kernel, gamma, beta, dout, *, momentum: float = 0.99,
                 eps: float = 1e-3) -> dict:
    """Run bnlib and Keras conv + batch norm in training mode on every batch, in float32.

    Both start from moving mean 0 and moving variance 1 and see the same batches;
    the gradients of ``L = sum(out * dout)`` are taken on the last batch.

    Parameters
    ----------
    batches : ndarray of shape (steps, N, H, W, C_in)
    kernel : array_like of shape (KH, KW, C_in, C_out)
    gamma, beta : array_like of shape (C_out,)
    dout : array_like of shape (N, H, W, C_out)

    Returns
    -------
    dict with
        "output_diff": ndarray (steps,), max |bnlib - Keras| of each step's output;
        "moving": {"bnlib": (mean, variance), "keras": (mean, variance)} after the last step;
        "grads": {"bnlib": {...}, "keras": {...}} with "dx", "dkernel", "dgamma", "dbeta";
        "weight_shapes": {name: shape} of the Keras layer's four weights.
    """
    batches = np.asarray(batches, np.float32)
    kernel, gamma, beta = (np.asarray(a, np.float32) for a in (kernel, gamma, beta))
    c_out = kernel.shape[-1]
    mean, var = np.zeros(c_out, np.float32), np.ones(c_out, np.float32)
    convolution, batch_norm = conv_bn_pair(kernel, gamma, beta, mean, var,
                                           input_shape=batches.shape[2:], momentum=momentum,
                                           eps=eps)
    diffs = []
    for x in batches:
        z, conv_cache = conv.conv2d_forward(x, kernel)
        out, bn_cache, mean, var = batchnorm_forward(z, gamma, beta, mean, var, training=True,
                                                     momentum=momentum, eps=eps, axis=-1)
        out_keras = batch_norm(convolution(x), training=True).numpy()
        diffs.append(float(np.max(np.abs(out - out_keras))))
    moving_keras = (batch_norm.moving_mean.numpy(), batch_norm.moving_variance.numpy())
    dout = np.asarray(dout, np.float32)
    dz, dgamma, dbeta = batchnorm_backward(dout, bn_cache)
    dx, dkernel, _ = conv.conv2d_backward(dz, conv_cache)
    x_tf = tf.constant(batches[-1])
    with tf.GradientTape() as tape:   # one more training call: after reading the moving stats
        tape.watch(x_tf)
        loss = tf.reduce_sum(batch_norm(convolution(x_tf), training=True) * dout)
    grads = tape.gradient(loss, [x_tf, convolution.kernel, batch_norm.gamma, batch_norm.beta])
    names = ("dx", "dkernel", "dgamma", "dbeta")
    return {"output_diff": np.array(diffs),
            "moving": {"bnlib": (mean, var), "keras": moving_keras},
            "grads": {"bnlib": dict(zip(names, (dx, dkernel, dgamma, dbeta))),
                      "keras": dict(zip(names, (g.numpy() for g in grads)))},
            "weight_shapes": {w.name: tuple(w.shape) for w in batch_norm.weights}}


def channels_first_batchnorm(x, axis) -> tuple:
    """A training-mode Keras ``BatchNormalization(axis=axis)`` on x transposed to (N, C, H, W).

    Parameters
    ----------
    x : array_like of shape (N, H, W, C)
        Channels last; the layer gets ``x.transpose(0, 3, 1, 2)``.
    axis : int
        The layer's ``axis``: 1 keeps the channels of the NCHW tensor; the default -1
        would keep its last axis, W.

    Returns
    -------
    out : ndarray of shape (N, H, W, C)
        The layer's output, transposed back to channels last.
    gamma_shape : tuple of int
        The shape of the layer's gamma (and of its other three weights).
    """
    nchw = np.asarray(x, np.float32).transpose(0, 3, 1, 2)
    layer = keras.layers.BatchNormalization(axis=axis)
    out = layer(nchw, training=True).numpy()
    return out.transpose(0, 2, 3, 1), tuple(layer.gamma.shape)


def keras_twin(model: cnn.CNN):
    """The Keras model that computes what a bnlib CNN computes, with its weights copied.

    Per block: ``Conv2D(padding="same")`` (without bias when a batch norm follows),
    ``BatchNormalization`` with the bnlib layer's momentum, epsilon and four vectors
    (if the block has one), ``ReLU``; then ``GlobalAveragePooling2D`` and ``Dense``.

    Returns keras.Sequential (float32).
    """
    set_seed(0)
    c_in = model.kernels[0].shape[2]
    layers, weights = [keras.Input((None, None, c_in))], []
    for kernel, bias, norm, stride in zip(model.kernels, model.conv_biases, model.norms,
                                          model.strides):
        layers.append(keras.layers.Conv2D(kernel.shape[-1], 3, strides=stride, padding="same",
                                          use_bias=bias is not None))
        weights.append([kernel] if bias is None else [kernel, bias])
        if norm is not None:
            layers.append(keras.layers.BatchNormalization(momentum=norm.momentum,
                                                          epsilon=norm.eps))
            weights.append([norm.gamma, norm.beta, norm.moving_mean, norm.moving_variance])
        layers.append(keras.layers.ReLU())
        weights.append([])
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(model.W.shape[1])]
    weights += [[], [model.W, model.b]]
    twin = keras.Sequential(layers)
    for layer, values in zip(twin.layers, weights):
        if values:
            layer.set_weights([np.asarray(v, np.float32) for v in values])
    return twin


def graph_function(model):
    """``model(x, training=False)`` compiled with ``tf.function`` (what ``predict`` runs).

    Returns a function of a float32 ndarray returning a NumPy array.
    """
    compiled = tf.function(lambda x: model(x, training=False))
    return lambda x: compiled(tf.constant(np.asarray(x, np.float32))).numpy()
