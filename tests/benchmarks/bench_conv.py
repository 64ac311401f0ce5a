"""How fast is a convolution + batch norm step in bnlib? A table of timings on this machine.

Run with ``python tests/benchmarks/bench_conv.py`` (``--quick``: the smallest
shape only, few repeats, to check the script runs). pytest does not collect
this file.

For each shape, in float32 and training mode, the median time per call of a
3x3 'same' convolution without bias followed by batch norm over the channels
(``axis=-1``), forward and forward + backward (dx, dkernel, dgamma, dbeta), in:

* bnlib: :func:`bnlib.conv.conv2d_forward` / ``conv2d_backward`` and
  :func:`bnlib.batchnorm.batchnorm_forward` / ``batchnorm_backward``, with
  OpenBLAS's threads and with one BLAS thread (as :func:`bnlib.nn.train` runs);
* Keras: ``Conv2D(use_bias=False)`` then ``BatchNormalization()`` under
  ``tf.function`` (forward+backward with a ``tf.GradientTape`` inside the same
  ``tf.function``).

Both are checked to give the same output and gradients first. TensorFlow uses
its own thread pools: the table says how many CPUs there are and the load
average, and nothing is asserted (timings depend on the machine and on how
busy it is).
"""
from __future__ import annotations

import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

# one timing rule and one command line for both benchmarks (this folder is on the path)
from bench_batchnorm import median_time, options, print_setting
from bnlib import tf_compare  # sets TensorFlow's environment, imports it
from bnlib.batchnorm import batchnorm_backward, batchnorm_forward
from bnlib.conv import conv2d_backward, conv2d_forward

keras, tf = tf_compare.keras, tf_compare.tf


# (N, H, W, C_in, C_out): the lesson's first two layers, then typical CIFAR-sized blocks
SHAPES = [(32, 8, 8, 8, 16), (64, 32, 32, 16, 32), (128, 16, 16, 32, 64)]
EPS, MOMENTUM = 1e-3, 0.99
HEADER = (f"{'(N, H, W, C_in -> C_out)':<26}{'x MB':>7}  {'implementation':<20}"
          f"{'forward ms':>12}{'fwd+bwd ms':>12}")


def bench_shape(shape, *, repeats: int, min_repeat_s: float) -> dict:
    """Times (seconds per call) of bnlib and Keras on one shape, after checking they agree."""
    n, h, w, c_in, c_out = shape
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, h, w, c_in)).astype(np.float32)
    kernel = (rng.normal(size=(3, 3, c_in, c_out)) * np.sqrt(2 / (9 * c_in))).astype(np.float32)
    dout = rng.normal(size=(n, h, w, c_out)).astype(np.float32)
    gamma, beta = np.ones(c_out, np.float32), np.zeros(c_out, np.float32)
    mean, var = np.zeros(c_out, np.float32), np.ones(c_out, np.float32)

    def bnlib_fwd():
        z, _ = conv2d_forward(x, kernel)
        return batchnorm_forward(z, gamma, beta, mean, var, training=True, momentum=MOMENTUM,
                                 eps=EPS)[0]

    def bnlib_fwd_bwd():
        z, conv_cache = conv2d_forward(x, kernel)
        out, bn_cache, _, _ = batchnorm_forward(z, gamma, beta, mean, var, training=True,
                                                momentum=MOMENTUM, eps=EPS)
        dz, dgamma, dbeta = batchnorm_backward(dout, bn_cache)
        dx, dkernel, _ = conv2d_backward(dz, conv_cache)
        return out, (dx, dkernel, dgamma, dbeta)

    convolution = keras.layers.Conv2D(c_out, 3, padding="same", use_bias=False)
    batch_norm = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPS)
    convolution.build(x.shape)
    batch_norm.build(dout.shape)
    convolution.set_weights([kernel])
    x_tf, dout_tf = tf.constant(x), tf.constant(dout)

    @tf.function
    def keras_fwd(x):
        return batch_norm(convolution(x), training=True)

    @tf.function
    def keras_fwd_bwd(x, dout):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = batch_norm(convolution(x), training=True)
        grads = tape.gradient(out, [x, convolution.kernel, batch_norm.gamma, batch_norm.beta],
                              output_gradients=dout)
        return out, grads

    # Time only code that is right: both must compute the same thing.
    out, grads = bnlib_fwd_bwd()
    out_keras, grads_keras = keras_fwd_bwd(x_tf, dout_tf)
    np.testing.assert_allclose(out, out_keras.numpy(), atol=1e-4)
    for ours, theirs in zip(grads, grads_keras):
        theirs = theirs.numpy()
        np.testing.assert_allclose(ours, theirs, atol=1e-4 * np.abs(theirs).max())

    def one_thread(f):
        def run():
            with threadpool_limits(1, user_api="blas"):
                return f()
        return run

    timed = {"bnlib": (bnlib_fwd, bnlib_fwd_bwd),
             "bnlib, 1 BLAS thread": (one_thread(bnlib_fwd), one_thread(bnlib_fwd_bwd)),
             "Keras tf.function": (lambda: keras_fwd(x_tf),
                                   lambda: keras_fwd_bwd(x_tf, dout_tf))}
    return {name: tuple(median_time(f, repeats=repeats, min_repeat_s=min_repeat_s) for f in pair)
            for name, pair in timed.items()}


def main(argv=None) -> int:
    _, shapes, repeats, min_repeat_s = options(argv, SHAPES)
    tf_compare.set_seed(0)
    started = time.perf_counter()
    print_setting("3x3 convolution (no bias) + batch norm per channel, float32, training mode",
                  repeats, min_repeat_s)
    print()
    print(HEADER)
    print("-" * len(HEADER))
    for shape in shapes:
        times = bench_shape(shape, repeats=repeats, min_repeat_s=min_repeat_s)
        n, h, w, c_in, c_out = shape
        mb = n * h * w * c_in * 4 / 1e6
        for i, (name, (fwd, fwd_bwd)) in enumerate(times.items()):
            label = (f"({n}, {h}, {w}, {c_in} -> {c_out})", f"{mb:.2f}") if i == 0 else ("", "")
            print(f"{label[0]:<26}{label[1]:>7}  {name:<20}{fwd * 1e3:>12.3f}"
                  f"{fwd_bwd * 1e3:>12.3f}")
        ratio = times["bnlib"][1] / times["Keras tf.function"][1]
        print(f"{'':<33}bnlib fwd+bwd / Keras fwd+bwd = {ratio:.2f}")
        print()
    print(f"(benchmark ran in {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
