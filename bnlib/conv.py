"""2-D convolution, global average pooling and folding batch norm into a convolution.

Shapes are channels last, as in Keras: images x of shape (N, H, W, C_in), a
kernel of shape (KH, KW, C_in, C_out) (Keras's ``Conv2D.kernel``), a bias of
shape (C_out,), outputs of shape (N, OH, OW, C_out). As in every deep-learning
framework, "convolution" means cross-correlation (the kernel is not flipped):

    out[n, i, j, o] = bias[o] + sum over (a, b, c) of
                      x_padded[n, i * stride + a, j * stride + b, c] * kernel[a, b, c, o]

The forward pass gathers every KH x KW x C_in window into one row of a matrix
(im2col, from ``numpy.lib.stride_tricks.sliding_window_view``), so the whole
convolution is one matrix product; the backward pass is two matrix products
and a scatter of the window gradients back onto the image (col2im: one
vectorized addition per kernel position).

Batch norm after a convolution keeps one statistic per channel (C_out), taken
over N * OH * OW values: :func:`bnlib.batchnorm.batchnorm_forward` with
``axis=-1``. :func:`fold_into_conv` folds an inference-mode batch norm into
the convolution before it.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from bnlib._validate import as_float_array, check_eps, check_shape

__all__ = ["conv2d_forward", "conv2d_backward", "conv_output_size", "global_avg_pool_forward",
           "global_avg_pool_backward", "fold_into_conv", "ConvCache"]

PADDINGS = ("valid", "same")


class ConvCache(NamedTuple):
    """What :func:`conv2d_backward` needs from the forward pass.

    cols : ndarray of shape (N * OH * OW, KH * KW * C_in)
        Every input window as a row (im2col).
    kernel : ndarray of shape (KH, KW, C_in, C_out)
    x_shape : tuple of int
        (N, H, W, C_in), the shape of the unpadded input.
    pads : tuple of int
        (top, bottom, left, right) zero padding.
    stride : int
    has_bias : bool
    """

    cols: np.ndarray
    kernel: np.ndarray
    x_shape: tuple
    pads: tuple
    stride: int
    has_bias: bool


def _check_stride(stride) -> int:
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be a positive int, e.g. 1 or 2; got {stride!r}")
    return int(stride)


def _pads_1d(size: int, k: int, stride: int, padding) -> tuple[int, int]:
    """(before, after) zero padding of one spatial axis of length ``size``."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        # TensorFlow's rule: ceil(size / stride) outputs, the odd pixel of padding at the end
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        return total // 2, total - total // 2
    return padding, padding


def _check_padding(padding):
    if isinstance(padding, str):
        if padding not in PADDINGS:
            raise ValueError(f"padding must be 'valid', 'same' or a non-negative int; "
                             f"got {padding!r}")
        return padding
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"padding must be 'valid', 'same' or a non-negative int; got {padding!r}")
    return int(padding)


def _zero_pad(x: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """x of shape (N, H, W, C) with zero rows and columns added around H and W."""
    if top == bottom == left == right == 0:
        return x
    n, h, w, c = x.shape
    xp = np.zeros((n, h + top + bottom, w + left + right, c), x.dtype)
    xp[:, top:top + h, left:left + w] = x
    return xp


def conv_output_size(size: int, k: int, *, stride: int = 1, padding="same") -> int:
    """Output length of one spatial axis: H -> OH for a kernel of size k.

    'same' gives ceil(size / stride), 'valid' floor((size - k) / stride) + 1, an
    int p pads p zeros on both sides first.
    """
    stride = _check_stride(stride)
    before, after = _pads_1d(size, k, stride, _check_padding(padding))
    return (size + before + after - k) // stride + 1


def conv2d_forward(x, kernel, bias=None, *, stride: int = 1, padding="same"):
    """Convolve a batch of images with a kernel: Keras's ``Conv2D`` (NHWC) forward pass.

    Parameters
    ----------
    x : array_like of shape (N, H, W, C_in)
        The images (or feature maps). Integer input is converted to float64.
    kernel : array_like of shape (KH, KW, C_in, C_out)
        One KH x KW x C_in filter per output channel, in Keras's layout.
    bias : array_like of shape (C_out,), optional
        None for a convolution without bias (``use_bias=False``, as before batch norm).
    stride : int, default 1
        Step between windows, the same along H and W.
    padding : {'same', 'valid'} or int, default 'same'
        'same': zeros around the image so that OH = ceil(H / stride) (TensorFlow's
        rule, the extra pixel at the bottom/right); 'valid': no padding; an int p:
        p zeros on every side.

    Returns
    -------
    out : ndarray of shape (N, OH, OW, C_out)
        In the dtype of x (kernel and bias are converted to it).
    cache : ConvCache
        Pass to :func:`conv2d_backward`.
    """
    x = as_float_array("x", x, ndim=4)
    kernel = as_float_array("kernel", kernel, ndim=4).astype(x.dtype, copy=False)
    kh, kw, c_in, c_out = kernel.shape
    n, h, w, c = x.shape
    if c_in != c:
        raise ValueError(f"kernel must have shape (KH, KW, C_in, C_out) with C_in = {c}, the "
                         f"channels of x (last axis); got kernel shape {kernel.shape}")
    if bias is not None:
        bias = as_float_array("bias", bias).astype(x.dtype, copy=False)
        check_shape("bias", bias, (c_out,), "one per output channel, the last axis of kernel")
    stride, padding = _check_stride(stride), _check_padding(padding)
    (top, bottom), (left, right) = (_pads_1d(h, kh, stride, padding),
                                    _pads_1d(w, kw, stride, padding))
    if h + top + bottom < kh or w + left + right < kw:
        raise ValueError(f"kernel of {kh}x{kw} is larger than the padded {h + top + bottom}x"
                         f"{w + left + right} image: use padding='same' or a smaller kernel")
    xp = _zero_pad(x, top, bottom, left, right)
    # (N, OH, OW, C_in, KH, KW) view of every window, then one row per window
    windows = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    oh, ow = windows.shape[1:3]
    cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, kh * kw * c_in)
    out = cols @ kernel.reshape(kh * kw * c_in, c_out)
    if bias is not None:
        out += bias
    cache = ConvCache(cols, kernel, x.shape, (top, bottom, left, right), stride, bias is not None)
    return out.reshape(n, oh, ow, c_out), cache


def conv2d_backward(dout, cache: ConvCache, *, input_grad: bool = True):
    """Gradients of :func:`conv2d_forward`.

    With the windows as rows of ``cols`` and dout as a (N * OH * OW, C_out) matrix::

        dkernel = cols.T @ dout,   dbias = sum of dout over N, OH, OW,
        dcols = dout @ kernel.T,   dx = each window's gradient added back where it came from

    Parameters
    ----------
    dout : array_like of shape (N, OH, OW, C_out)
        Upstream gradient dL/dout.
    cache : ConvCache
        From :func:`conv2d_forward`.
    input_grad : bool, default True
        False skips dx (a network's first layer does not need it) and returns None for it.

    Returns
    -------
    dx : ndarray of shape (N, H, W, C_in), or None with ``input_grad=False``
    dkernel : ndarray of shape (KH, KW, C_in, C_out)
    dbias : ndarray of shape (C_out,), or None if the forward pass had no bias
    """
    cols, kernel, (n, h, w, c_in), (top, bottom, left, right), stride, has_bias = cache
    kh, kw, _, c_out = kernel.shape
    oh = (h + top + bottom - kh) // stride + 1
    ow = (w + left + right - kw) // stride + 1
    dout = as_float_array("dout", dout)
    check_shape("dout", dout, (n, oh, ow, c_out), "the shape of the forward output")
    d2 = dout.reshape(n * oh * ow, c_out).astype(cols.dtype, copy=False)
    dkernel = (cols.T @ d2).reshape(kernel.shape)
    dbias = np.sum(d2, axis=0, dtype=np.float64).astype(cols.dtype) if has_bias else None
    if not input_grad:
        return None, dkernel, dbias
    dcols = (d2 @ kernel.reshape(kh * kw * c_in, c_out).T).reshape(n, oh, ow, kh, kw, c_in)
    dxp = np.zeros((n, h + top + bottom, w + left + right, c_in), cols.dtype)
    for a in range(kh):          # col2im: kernel position (a, b) touched pixels
        for b in range(kw):      # (i * stride + a, j * stride + b) of every output (i, j)
            dxp[:, a:a + stride * (oh - 1) + 1:stride,
                b:b + stride * (ow - 1) + 1:stride] += dcols[:, :, :, a, b]
    return dxp[:, top:top + h, left:left + w], dkernel, dbias


def global_avg_pool_forward(x) -> np.ndarray:
    """Average every channel over the spatial positions: (N, H, W, C) -> (N, C)."""
    x = as_float_array("x", x, ndim=4)
    return x.mean(axis=(1, 2))


def global_avg_pool_backward(dout, x_shape) -> np.ndarray:
    """Gradient of :func:`global_avg_pool_forward`: dout (N, C) spread evenly, / (H * W).

    Returns ndarray of shape ``x_shape`` = (N, H, W, C).
    """
    dout = as_float_array("dout", dout, ndim=2)
    n, h, w, c = (int(s) for s in x_shape)
    check_shape("dout", dout, (n, c), "(N, C) of the pooled input")
    return np.broadcast_to(dout[:, None, None, :] / (h * w), (n, h, w, c)).copy()


def fold_into_conv(kernel, bias, gamma, beta, moving_mean, moving_variance, eps: float = 1e-3):
    """Fold an inference-mode batch norm into the convolution before it.

    Batch norm after the convolution computes, per output channel o,
    gamma[o] * (conv(x)[..., o] - mu[o]) / sigma[o] + beta[o] with
    sigma = sqrt(moving_variance + eps). The convolution is linear in its kernel, so
    this is one convolution with each output channel's filter scaled by gamma / sigma::

        kernel'[..., o] = kernel[..., o] * gamma[o] / sigma[o]
        bias'[o] = gamma[o] * (bias[o] - mu[o]) / sigma[o] + beta[o]

    Parameters
    ----------
    kernel : array_like of shape (KH, KW, C_in, C_out)
    bias : array_like of shape (C_out,) or None
        None for a convolution without bias (``use_bias=False``).
    gamma, beta, moving_mean, moving_variance : array_like of shape (C_out,)
    eps : float > 0, default 1e-3

    Returns
    -------
    kernel_folded : ndarray of shape (KH, KW, C_in, C_out)
    bias_folded : ndarray of shape (C_out,)
    """
    kernel = as_float_array("kernel", kernel, ndim=4)
    c_out = kernel.shape[-1]
    bias = np.zeros(c_out, kernel.dtype) if bias is None else as_float_array("bias", bias)
    vectors = {"bias": bias, "gamma": gamma, "beta": beta, "moving_mean": moving_mean,
               "moving_variance": moving_variance}
    for name, value in vectors.items():
        vectors[name] = as_float_array(name, value)
        check_shape(name, vectors[name], (c_out,), "one per output channel, the last axis of "
                                                   "kernel")
    if np.any(vectors["moving_variance"] < 0):
        raise ValueError("moving_variance must be >= 0 everywhere; got a negative entry")
    scale = vectors["gamma"] / np.sqrt(vectors["moving_variance"] + check_eps(eps))
    return kernel * scale, (vectors["bias"] - vectors["moving_mean"]) * scale + vectors["beta"]
