"""How fast is bnlib's batch norm? A table of timings on this machine.

Run with ``make bench`` or ``python tests/benchmarks/bench_batchnorm.py``
(``--quick``: the smallest shape only, few repeats, to check the script runs).
pytest does not collect this file (its name does not start with ``test_``).

For each shape, in float32 and training mode, the median time per call of:

* bnlib: :func:`bnlib.batchnorm.batchnorm_forward` and ``batchnorm_backward``;
* naive NumPy: the staged textbook formulas below, one array per stage;
* Keras: ``keras.layers.BatchNormalization`` under ``tf.function`` (forward
  with ``training=True``; forward+backward with a ``tf.GradientTape`` inside
  the same ``tf.function``);
* memcopy: ``np.copyto`` into a preallocated array, the bandwidth yardstick.
  A forward pass must at least read x and write out, as much traffic as
  copying x once; forward+backward must at least read x and dout and write
  out and dx, as much as copying twice as many bytes. The memcopy row times
  exactly those two copies.

Targets (printed, never failed on): bnlib forward+backward within 3x of the
memcopy of the bytes it must touch, and faster than Keras under tf.function
at the large sizes.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

import numpy as np  # noqa: E402

from bnlib import tf_compare  # noqa: E402  (sets TensorFlow's environment, imports it)
from bnlib.batchnorm import batchnorm_backward, batchnorm_forward  # noqa: E402

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

SHAPES = [(64, 100), (256, 1024), (4096, 1024), (256, 32, 32, 16)]
LARGE = 1_000_000          # shapes with at least this many entries count as large
EPS, MOMENTUM = 1e-3, 0.99
COPY_TARGET = 3.0
LEGEND = """\
memcopy = np.copyto into a preallocated array, timed on the bytes a pass must touch:
  forward reads x and writes out: its time copies x once;
  fwd+bwd reads x and dout and writes out and dx: its time copies twice the bytes of x.
ratio fwd+bwd = the row's fwd+bwd time / memcopy's fwd+bwd time (the same bytes)."""
HEADER = (f"{'shape':<18}{'x MB':>7}  {'implementation':<20}{'forward ms':>12}"
          f"{'fwd+bwd ms':>12}{'ratio fwd+bwd':>15}")


# ---------------------------------------------------------------- the naive version

def naive_forward(x, gamma, beta, moving_mean, moving_variance):
    """Training-mode batch norm over every axis but the last, one stage per line."""
    axes = tuple(range(x.ndim - 1))
    m = x.size // x.shape[-1]
    mean = np.sum(x, axis=axes) / m
    centred = x - mean
    squares = centred ** 2
    var = np.sum(squares, axis=axes) / m
    std = np.sqrt(var + EPS)
    inv_std = 1.0 / std
    x_hat = centred * inv_std
    scaled = gamma * x_hat
    out = scaled + beta
    new_mean = MOMENTUM * moving_mean + (1 - MOMENTUM) * mean
    new_var = MOMENTUM * moving_variance + (1 - MOMENTUM) * var
    cache = (centred, std, inv_std, x_hat, gamma, m)
    return out, cache, new_mean, new_var


def naive_backward(dout, cache):
    """Walk the forward stages backwards, applying the chain rule to each."""
    centred, std, inv_std, x_hat, gamma, m = cache
    axes = tuple(range(dout.ndim - 1))
    dbeta = np.sum(dout, axis=axes)
    dgamma = np.sum(dout * x_hat, axis=axes)
    dx_hat = dout * gamma
    dinv_std = np.sum(dx_hat * centred, axis=axes)
    dcentred = dx_hat * inv_std
    dstd = -dinv_std / std ** 2
    dvar = dstd * 0.5 / std
    dsquares = np.ones_like(centred) * dvar / m
    dcentred = dcentred + 2.0 * centred * dsquares
    dmean = -np.sum(dcentred, axis=axes)
    dx = dcentred + np.ones_like(dcentred) * dmean / m
    return dx, dgamma, dbeta


# ---------------------------------------------------------------- timing

def median_time(fn, *, repeats: int, min_repeat_s: float) -> float:
    """Median seconds per call of ``fn()``, timeit style.

    The number of calls per repeat grows (1, 2, 5, 10, 20, ...) until a repeat
    lasts at least ``min_repeat_s``, so tiny shapes are timed over many calls
    and large ones over one; then ``repeats`` repeats are timed.
    """
    fn()  # warm up: first-call costs (allocation, tracing) are not what we measure
    number, steps = 1, (2, 2.5, 2)
    i = 0
    while True:
        elapsed = _run(fn, number)
        if elapsed >= min_repeat_s:
            break
        number = int(number * steps[i % 3])
        i += 1
    times = [elapsed / number] + [_run(fn, number) / number for _ in range(repeats - 1)]
    return statistics.median(times)


def _run(fn, number: int) -> float:
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def import_time(repeats: int) -> float:
    """Median seconds for ``import bnlib`` in a fresh interpreter (NumPy included)."""
    code = ("import time; t = time.perf_counter(); import bnlib; "
            "print(time.perf_counter() - t)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    times = []
    for _ in range(repeats):
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                                capture_output=True, text=True, check=True)
        times.append(float(result.stdout.strip()))
    return statistics.median(times)


# ---------------------------------------------------------------- one shape

def bench_shape(shape, *, repeats: int, min_repeat_s: float) -> dict:
    """Times (seconds per call) of every implementation on one shape."""
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 2.0, size=shape).astype(np.float32)
    dout = rng.normal(size=shape).astype(np.float32)
    d = shape[-1]
    gamma, beta = np.ones(d, np.float32), np.zeros(d, np.float32)
    moving_mean, moving_variance = np.zeros(d, np.float32), np.ones(d, np.float32)
    params = (gamma, beta, moving_mean, moving_variance)

    def bnlib_fwd():
        return batchnorm_forward(x, *params, training=True)

    def bnlib_fwd_bwd():
        _, cache, _, _ = batchnorm_forward(x, *params, training=True)
        return batchnorm_backward(dout, cache)

    def naive_fwd():
        return naive_forward(x, *params)

    def naive_fwd_bwd():
        _, cache, _, _ = naive_forward(x, *params)
        return naive_backward(dout, cache)

    # Time only code that is right: the naive version must agree with bnlib.
    _, bn_cache, _, _ = batchnorm_forward(x, *params, training=True)
    _, naive_cache, _, _ = naive_forward(x, *params)
    for ours, naive in zip(batchnorm_backward(dout, bn_cache), naive_backward(dout, naive_cache)):
        np.testing.assert_allclose(ours, naive, rtol=1e-3, atol=1e-3)

    layer = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPS)
    layer.build(shape)
    x_tf, dout_tf = tf.constant(x), tf.constant(dout)

    @tf.function
    def keras_fwd(x):
        return layer(x, training=True)

    @tf.function
    def keras_fwd_bwd(x, dout):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x, training=True)
        grads = tape.gradient(out, [x, layer.gamma, layer.beta], output_gradients=dout)
        return out, grads

    # The bytes a pass must touch: fwd reads x and writes out (one copy of x);
    # fwd+bwd reads x and dout and writes out and dx (a copy of twice the bytes).
    src1, dst1 = np.ones(x.size, np.float32), np.empty(x.size, np.float32)
    src2, dst2 = np.ones(2 * x.size, np.float32), np.empty(2 * x.size, np.float32)

    timed = {
        "bnlib": (bnlib_fwd, bnlib_fwd_bwd),
        "naive NumPy": (naive_fwd, naive_fwd_bwd),
        "Keras tf.function": (lambda: keras_fwd(x_tf), lambda: keras_fwd_bwd(x_tf, dout_tf)),
        "memcopy": (lambda: np.copyto(dst1, src1), lambda: np.copyto(dst2, src2)),
    }
    return {name: tuple(median_time(f, repeats=repeats, min_repeat_s=min_repeat_s)
                        for f in pair)
            for name, pair in timed.items()}


# ---------------------------------------------------------------- report

def options(argv, shapes: list) -> tuple[bool, list, int, float]:
    """The benchmarks' command line: (quick, shapes, repeats, min_repeat_s)."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smallest shape only, few repeats (checks that the script runs)")
    quick = parser.parse_args(argv).quick
    repeats, min_repeat_s = (3, 0.002) if quick else (7, 0.05)
    return quick, shapes[:1] if quick else shapes, repeats, min_repeat_s


def print_setting(what: str, repeats: int, min_repeat_s: float, threads: str = "") -> None:
    """The benchmark's title, the library versions, the CPUs and the load at the start."""
    print(f"{what}: median time per call ({repeats} repeats, each of >= "
          f"{min_repeat_s * 1e3:g} ms)")
    print(f"NumPy {np.__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{os.cpu_count()} CPUs{threads}, "
          f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}")
    if hasattr(os, "getloadavg"):
        print(f"Load average at the start: {os.getloadavg()[0]:.1f} "
              "(above the number of CPUs, other work competes and the times are noisy)")


def main(argv=None) -> int:
    quick, shapes, repeats, min_repeat_s = options(argv, SHAPES)
    tf_compare.set_seed(0)
    started = time.perf_counter()
    print_setting("Batch norm, float32, training mode", repeats, min_repeat_s,
                  " (NumPy elementwise ops use one thread, TensorFlow all)")
    print(LEGEND)
    print()
    print(HEADER)
    print("-" * len(HEADER))
    results = {}
    for shape in shapes:
        times = bench_shape(shape, repeats=repeats, min_repeat_s=min_repeat_s)
        results[shape] = times
        mb = np.prod(shape) * 4 / 1e6
        for i, (name, (fwd, fwd_bwd)) in enumerate(times.items()):
            label = (str(shape), f"{mb:.2f}") if i == 0 else ("", "")
            ratio = fwd_bwd / times["memcopy"][1]
            print(f"{label[0]:<18}{label[1]:>7}  {name:<20}{fwd * 1e3:>12.3f}"
                  f"{fwd_bwd * 1e3:>12.3f}{ratio:>14.1f}x")
        print()

    print(f"import bnlib in a fresh interpreter (median of {3 if quick else 5}): "
          f"{import_time(3 if quick else 5) * 1e3:.0f} ms")
    print()
    print(f"Target 1: bnlib fwd+bwd within {COPY_TARGET:g}x of the memcopy of the bytes it "
          "must touch")
    for shape, times in results.items():
        ratio = times["bnlib"][1] / times["memcopy"][1]
        print(f"  {str(shape):<18}{ratio:>8.1f}x  {'met' if ratio <= COPY_TARGET else 'NOT met'}")
    print(f"Target 2: bnlib fwd+bwd faster than Keras under tf.function at the large sizes "
          f"(>= {LARGE:,} entries)")
    for shape, times in results.items():
        if np.prod(shape) < LARGE:
            print(f"  {str(shape):<18}    (small, not a target)")
            continue
        speedup = times["Keras tf.function"][1] / times["bnlib"][1]
        print(f"  {str(shape):<18}{speedup:>8.2f}x as fast as Keras  "
              f"{'met' if speedup > 1 else 'NOT met'}")
    print(f"\n(benchmark ran in {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
