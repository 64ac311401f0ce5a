"""The same batch-norm computations in TensorFlow and Keras, for side-by-side checks.

This is the only bnlib module that imports TensorFlow, so ``import bnlib``
stays fast; import this one explicitly (``from bnlib import tf_compare``).
Every function takes and returns NumPy arrays, in float32 by default
(Keras's dtype), so its results can be compared with
:mod:`bnlib.batchnorm` directly.

``axis`` has the Keras meaning used everywhere in bnlib: the *kept* feature
axes (``-1``: per feature of (N, D), per channel of (N, H, W, C);
``(1, 2, 3)``: per pixel and channel of (N, H, W, C)). Keras's layer keeps
a single axis only, so a tuple is handled by moving the kept axes last and
flattening them into one: normalizing (N, H, W, C) per pixel is normalizing
(N, H*W*C) per column.

Before TensorFlow is imported, two environment variables get defaults (an
explicit setting by the user wins): ``TF_CPP_MIN_LOG_LEVEL=3`` silences
TensorFlow's start-up log lines and ``TF_ENABLE_ONEDNN_OPTS=0`` turns off the
oneDNN kernels, whose floating-point summation order can change from run to
run, so the numbers a lesson prints are reproducible. They are reproducible on one
machine only: float32 matrix products still go through oneDNN's matrix-multiply
kernel, chosen for the CPU's instruction set (``ONEDNN_MAX_CPU_ISA=AVX2`` or ``SSE41``
changes their last bits, measured with TensorFlow 2.21), so a lesson prints a number
derived from TensorFlow rounded far beyond float32 round-off, or as a bound.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402  (after the environment is set)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bnlib._validate import parse_axis

__all__ = ["set_seed", "keras_batchnorm", "keras_batchnorm_gradients", "keras_moving_stats",
           "tf_nn_batchnorm"]


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's ops deterministic.

    Safe to call more than once: determinism is switched on only the first time.

    Parameters
    ----------
    seed : int
    """
    keras.utils.set_random_seed(int(seed))
    if not _op_determinism_enabled():
        tf.config.experimental.enable_op_determinism()


def _op_determinism_enabled() -> bool:
    """Whether TensorFlow's op determinism is on (TF exposes the query only privately)."""
    try:
        from tensorflow.python.framework.config import is_op_determinism_enabled
    except ImportError:  # moved in a later TF: enabling it again is harmless anyway
        return False
    return bool(is_op_determinism_enabled())


def _to_columns(x, kept: tuple, reduced: tuple):
    """Tensor x -> 2-D tensor (prod of reduced sizes, prod of kept sizes)."""
    cols = int(np.prod([x.shape[a] for a in kept]))
    return tf.reshape(tf.transpose(x, reduced + kept), (-1, cols))


def _from_columns(y, shape: tuple, kept: tuple, reduced: tuple):
    """Undo :func:`_to_columns`: back to a tensor of ``shape``."""
    order = reduced + kept
    y = tf.reshape(y, [shape[a] for a in order])
    return tf.transpose(y, np.argsort(order))


def _layer(n_features: int, gamma, beta, moving_mean, moving_variance, *, momentum: float,
           eps: float, dtype: str):
    """A built ``keras.layers.BatchNormalization`` for (M, n_features) input, weights set."""
    layer = keras.layers.BatchNormalization(axis=-1, momentum=momentum, epsilon=eps, dtype=dtype)
    layer.build((None, n_features))
    for variable, value in ((layer.gamma, gamma), (layer.beta, beta),
                            (layer.moving_mean, moving_mean),
                            (layer.moving_variance, moving_variance)):
        variable.assign(np.asarray(value, dtype=dtype).reshape(n_features))
    return layer


def keras_batchnorm(x, gamma, beta, moving_mean, moving_variance, *, training: bool,
                    momentum: float = 0.99, eps: float = 1e-3, axis=-1, dtype: str = "float32"):
    """Call a ``keras.layers.BatchNormalization`` once, with the given weights.

    Parameters
    ----------
    x : array_like of shape (N, D), (N, H, W, C) or any (N, ...)
    gamma, beta, moving_mean, moving_variance : array_like of the kept-axes shape
        The layer's four weight vectors, e.g. (D,), (C,) or (H, W, C).
    training : bool
        Passed to the layer: True normalizes with the batch statistics and
        updates the moving ones; False uses the moving statistics.
    momentum : float, default 0.99
        Weight on the old moving value (Keras convention).
    eps : float, default 1e-3
        Keras's ``epsilon``.
    axis : int or tuple of int, default -1
        The kept feature axes (see the module docstring).
    dtype : str, default "float32"
        The layer's dtype; the inputs are converted to it.

    Returns
    -------
    out : ndarray, shape of x
    new_moving_mean, new_moving_variance : ndarray of the kept-axes shape
        The layer's moving statistics after the call.
    """
    x = np.asarray(x, dtype=dtype)
    kept, reduced = parse_axis(x.ndim, axis)
    param_shape = tuple(x.shape[a] for a in kept)
    columns = _to_columns(tf.constant(x), kept, reduced)
    layer = _layer(columns.shape[1], gamma, beta, moving_mean, moving_variance,
                   momentum=momentum, eps=eps, dtype=dtype)
    out = _from_columns(layer(columns, training=training), x.shape, kept, reduced)
    return (out.numpy(), layer.moving_mean.numpy().reshape(param_shape),
            layer.moving_variance.numpy().reshape(param_shape))


def keras_batchnorm_gradients(x, gamma, beta, dout, *, eps: float = 1e-3, axis=-1,
                              dtype: str = "float32"):
    """Gradients of a training-mode Keras batch-norm layer, by ``tf.GradientTape``.

    The tape records ``L = sum(layer(x, training=True) * dout)``, whose
    gradients are what :func:`bnlib.batchnorm.batchnorm_backward` returns for
    the upstream gradient ``dout``.

    Parameters
    ----------
    x : array_like of shape (N, D), (N, H, W, C) or any (N, ...)
    gamma, beta : array_like of the kept-axes shape
    dout : array_like, shape of x
        The upstream gradient dL/dout.
    eps : float, default 1e-3
    axis : int or tuple of int, default -1
        The kept feature axes.
    dtype : str, default "float32"

    Returns
    -------
    dx : ndarray, shape of x
    dgamma, dbeta : ndarray of the kept-axes shape
    """
    x = tf.constant(np.asarray(x, dtype=dtype))
    dout = tf.constant(np.asarray(dout, dtype=dtype))
    kept, reduced = parse_axis(x.ndim, axis)
    param_shape = tuple(x.shape[a] for a in kept)
    n_features = int(np.prod(param_shape))
    # The moving statistics do not affect training-mode outputs or gradients.
    layer = _layer(n_features, gamma, beta, np.zeros(n_features), np.ones(n_features),
                   momentum=0.99, eps=eps, dtype=dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = _from_columns(layer(_to_columns(x, kept, reduced), training=True),
                            x.shape, kept, reduced)
        loss = tf.reduce_sum(out * dout)
    dx, dgamma, dbeta = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return (dx.numpy(), dgamma.numpy().reshape(param_shape),
            dbeta.numpy().reshape(param_shape))


def keras_moving_stats(batches, *, momentum: float, eps: float = 1e-3, axis=-1,
                       dtype: str = "float32"):
    """Moving mean and variance of a fresh Keras layer after one training call per batch.

    The layer starts from Keras's initial values (moving mean 0, moving
    variance 1, gamma 1, beta 0).

    Parameters
    ----------
    batches : iterable of array_like, each of shape (N, ...)
        The batches, in order; all with the same kept-axes shape.
    momentum : float
        Weight on the old moving value (Keras convention).
    eps : float, default 1e-3
    axis : int or tuple of int, default -1
        The kept feature axes.
    dtype : str, default "float32"

    Returns
    -------
    moving_mean, moving_variance : ndarray of the kept-axes shape
    """
    layer = param_shape = None
    for batch in batches:
        batch = np.asarray(batch, dtype=dtype)
        kept, reduced = parse_axis(batch.ndim, axis)
        columns = _to_columns(tf.constant(batch), kept, reduced)
        if layer is None:
            param_shape = tuple(batch.shape[a] for a in kept)
            n = columns.shape[1]
            layer = _layer(n, np.ones(n), np.zeros(n), np.zeros(n), np.ones(n),
                           momentum=momentum, eps=eps, dtype=dtype)
        layer(columns, training=True)
    if layer is None:
        raise ValueError("batches is empty: give at least one batch")
    return (layer.moving_mean.numpy().reshape(param_shape),
            layer.moving_variance.numpy().reshape(param_shape))


def tf_nn_batchnorm(x, axes, eps: float = 1e-3, gamma=None, beta=None, *,
                    dtype: str = "float32") -> np.ndarray:
    """Batch-normalize with ``tf.nn.moments`` and ``tf.nn.batch_normalization``.

    The TF2 version of the low-level recipe (no layer, no moving statistics):
    take the mean and biased variance over ``axes``, then
    ``gamma * (x - mean) / sqrt(var + eps) + beta``.

    Parameters
    ----------
    x : array_like of shape (N, D), (N, H, W, C) or any (N, ...)
    axes : sequence of int
        The axes to average over (TensorFlow's meaning, the complement of
        bnlib's ``axis``): ``[0]`` for (N, D), ``[0, 1, 2]`` per channel of
        (N, H, W, C), ``[0]`` per pixel of (N, H, W, C).
    eps : float, default 1e-3
        ``variance_epsilon``.
    gamma, beta : array_like broadcastable against x, optional
        Scale and offset, e.g. of shape (D,), (C,) or (H, W, C); None means 1 and 0.
    dtype : str, default "float32"

    Returns
    -------
    out : ndarray, shape of x
    """
    x = tf.constant(np.asarray(x, dtype=dtype))
    mean, variance = tf.nn.moments(x, axes=list(axes), keepdims=True)
    scale = None if gamma is None else tf.constant(np.asarray(gamma, dtype=dtype))
    offset = None if beta is None else tf.constant(np.asarray(beta, dtype=dtype))
    out = tf.nn.batch_normalization(x, mean, variance, offset=offset, scale=scale,
                                    variance_epsilon=eps)
    return out.numpy()
