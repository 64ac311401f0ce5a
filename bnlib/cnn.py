"""A small from-scratch convolutional network, with optional batch norm, for the 8x8 digits.

The network is a stack of 3x3 convolutions ('same' padding, channels last).
Each is followed by an optional normalization layer and a ReLU
(conv -> norm -> ReLU: the convolution then has no bias, since the norm's
beta replaces it). Global average pooling turns the last feature maps into
one number per channel, and a dense layer gives the logits, which
:func:`bnlib.nn.softmax_cross_entropy` turns into a loss.

Batch norm here is :class:`bnlib.batchnorm.BatchNorm` with ``axis=-1``: one
mean and variance per channel over the N * H * W values of the batch, one
gamma and beta per channel.

A :class:`CNN` has the interface :func:`bnlib.nn.train` expects (``forward``,
``backward``, ``params``, ``grads``, ``dtype``), so it trains with the same
loop and returns the same :class:`bnlib.nn.History` as the MLP.

Example
-------
>>> from bnlib import cnn, nn
>>> split = cnn.digit_images()
>>> model = cnn.CNN((8, 16), norm="batch", seed=0)
>>> history = nn.train(model, split, steps=100, lr=0.3, batch_size=32)
>>> bool(history.test_accuracy[-1] > 0.5)
True
"""
from __future__ import annotations

import numpy as np

from bnlib import conv
from bnlib.batchnorm import BatchNorm
from bnlib.data import Split, digits
from bnlib.nn import Parameters

__all__ = ["CNN", "digit_images"]


def digit_images(seed: int = 0, dtype=np.float64) -> Split:
    """The digits of :func:`bnlib.data.digits` as images: x of shape (N, 8, 8, 1) in [0, 1]."""
    s = digits(seed=seed, dtype=dtype)
    return Split(s.x_train.reshape(-1, 8, 8, 1), s.y_train, s.x_test.reshape(-1, 8, 8, 1),
                 s.y_test)


class CNN(Parameters):
    """3x3 convolutions, each with an optional norm and a ReLU; global average pooling; dense.

    Parameters
    ----------
    channels : sequence of int, default (16, 32)
        Output channels of each convolution.
    in_channels : int, default 1
    n_classes : int, default 10
    norm : None, "batch" or callable
        None: no normalization (each convolution has a bias). "batch": a
        :class:`bnlib.batchnorm.BatchNorm` per convolution, per channel
        (``axis=-1``), and no convolution bias. A callable ``make_norm(channels)``
        must return a layer with the same interface (``__call__(x, *, training)``,
        ``backward``, ``gamma``, ``beta``, ``dgamma``, ``dbeta``), e.g.
        :class:`bnlib.layernorm.GroupNorm`.
    strides : sequence of int, optional
        The stride of each convolution (default 1 everywhere).
    seed : int
        Seed of the weight initialization: He normal for the kernels
        (std sqrt(2 / fan_in), fan_in = 9 * C_in), N(0, 1 / fan_in) for the dense
        layer; biases start at 0.
    momentum, eps : float
        Passed to each BatchNorm layer (Keras convention and defaults).
    dtype : numpy dtype, default float64

    Attributes
    ----------
    kernels : list of ndarray of shape (3, 3, C_in, C_out)
    conv_biases : list of ndarray of shape (C_out,) or None
    norms : list of layer or None
    W, b : ndarray of shape (channels[-1], n_classes) and (n_classes,)
        The dense layer.
    pre_activations : list of ndarray of shape (N, H, W, C)
        The input of each ReLU in the last forward pass.
    """

    def __init__(self, channels=(16, 32), *, in_channels: int = 1, n_classes: int = 10,
                 norm=None, strides=None, seed: int = 0, momentum: float = 0.99,
                 eps: float = 1e-3, dtype=np.float64):
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"channels must list at least one positive channel count, "
                             f"e.g. (16, 32); got {channels}")
        strides = (1,) * len(channels) if strides is None else tuple(int(s) for s in strides)
        if len(strides) != len(channels) or min(strides) < 1:
            raise ValueError(f"strides must give one positive stride per convolution "
                             f"({len(channels)}); got {strides}")
        if not (norm is None or norm == "batch" or callable(norm)):
            raise ValueError(f"norm must be None, 'batch' or a callable make_norm(channels); "
                             f"got {norm!r}")
        self.channels, self.strides = channels, strides
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        widths = (int(in_channels),) + channels
        self.n_classes = n_classes
        self.kernels, self.conv_biases, self.norms = [], [], []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            std = np.sqrt(2.0 / (9 * c_in))
            self.kernels.append((std * rng.standard_normal((3, 3, c_in, c_out))).astype(self.dtype))
            if norm is None:
                layer = None
            elif norm == "batch":
                layer = BatchNorm(c_out, momentum=momentum, eps=eps, axis=-1, dtype=self.dtype)
            else:
                layer = norm(c_out)
            self.norms.append(layer)
            self.conv_biases.append(np.zeros(c_out, self.dtype) if layer is None else None)
        self.W = (rng.standard_normal((channels[-1], n_classes))
                  / np.sqrt(channels[-1])).astype(self.dtype)
        self.b = np.zeros(n_classes, self.dtype)
        self.pre_activations: list = []
        self._caches: list = []
        self._pooled = None
        self._last_shape = None
        self._grads: dict = {}

    def forward(self, x, *, training: bool) -> np.ndarray:
        """Logits for a batch of images.

        Parameters
        ----------
        x : array_like of shape (N, H, W, in_channels)
        training : bool
            Passed to the normalization layers (batch statistics and their
            update, or the moving statistics).

        Returns
        -------
        ndarray of shape (N, n_classes)
        """
        h = self._check_x(x)
        self._caches, self.pre_activations = [], []
        for kernel, bias, norm, stride in zip(self.kernels, self.conv_biases, self.norms,
                                              self.strides):
            z, cache = conv.conv2d_forward(h, kernel, bias, stride=stride, padding="same")
            if norm is not None:
                z = norm(z, training=training)
            self._caches.append(cache)
            self.pre_activations.append(z)
            h = np.maximum(z, 0.0)
        self._last_shape = h.shape
        self._pooled = conv.global_avg_pool_forward(h)
        return self._pooled @ self.W + self.b

    def backward(self, dlogits, *, input_grad: bool = True):
        """Backpropagate dL/dlogits through the last forward pass; store every gradient.

        Returns dL/dx of shape (N, H, W, in_channels); None with ``input_grad=False``.
        """
        if self._pooled is None:
            raise ValueError("backward called before forward")
        d = np.asarray(dlogits, dtype=self.dtype)
        grads = {"W": self._pooled.T @ d, "b": d.sum(axis=0)}
        d = conv.global_avg_pool_backward(d @ self.W.T, self._last_shape)
        for i in range(len(self.kernels) - 1, -1, -1):
            d = d * (self.pre_activations[i] > 0)
            norm = self.norms[i]
            if norm is not None:
                d = norm.backward(d)
            d, grads[f"kernel{i + 1}"], dbias = conv.conv2d_backward(
                d, self._caches[i], input_grad=input_grad or i > 0)
            if dbias is not None:
                grads[f"bias{i + 1}"] = dbias
        self._grads = grads
        return d

    def _check_x(self, x, name: str = "x") -> np.ndarray:
        """x as a finite (N, H, W, in_channels) array of the model's dtype."""
        h = np.asarray(x, dtype=self.dtype)
        if h.ndim != 4 or h.shape[-1] != self.kernels[0].shape[2]:
            raise ValueError(f"{name} must have shape (N, H, W, {self.kernels[0].shape[2]}); "
                             f"got {h.shape}")
        if not np.all(np.isfinite(h)):
            raise ValueError(f"{name} must be finite; got NaN or inf")
        return h

    # nn.train's unchecked protocol (nn.MLP has fast versions; here they are the same calls).
    def _forward(self, x, training: bool) -> np.ndarray:
        return self.forward(x, training=training)

    def _backward(self, dlogits, input_grad: bool):
        return self.backward(dlogits, input_grad=input_grad)

    def _entries(self):
        """(name, parameter, gradient) for every trainable array, in a fixed order."""
        g = self._grads.get
        out = []
        for i, (kernel, bias, norm) in enumerate(zip(self.kernels, self.conv_biases, self.norms)):
            out.append((f"kernel{i + 1}", kernel, g(f"kernel{i + 1}")))
            if bias is not None:
                out.append((f"bias{i + 1}", bias, g(f"bias{i + 1}")))
            if norm is not None:
                out.append((f"gamma{i + 1}", norm.gamma, norm.dgamma))
                out.append((f"beta{i + 1}", norm.beta, norm.dbeta))
        out += [("W", self.W, g("W")), ("b", self.b, g("b"))]
        return out

