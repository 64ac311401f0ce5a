"""Data parallelism on the real engine: ``tf.distribute.MirroredStrategy`` over CPU devices.

``tf.config.set_logical_device_configuration`` splits the one physical CPU
into several logical devices; ``MirroredStrategy`` over them runs one replica
per device, each on its slice of the global batch, with the same replica
threads, mirrored variables and all-reduces as on several GPUs. It works on a
2-core machine (the replicas take turns on the cores).

Two rules of the engine shape this module:

* **Devices first.** The logical devices must be configured before TensorFlow
  initializes its devices, which the first operation (or device query) does;
  afterwards the configuration cannot change in that process.
  :func:`configure_cpu_devices` is therefore the first TensorFlow call of a
  lesson (a notebook kernel is a fresh process) and raises a clear error if
  it comes too late.
* **One all-reduce that every strategy can share.** On CPUs, MirroredStrategy
  picks ``CollectiveAllReduce``, and every MirroredStrategy of a process
  numbers its collective groups from the same start: a second strategy over a
  *different* set of devices (2 replicas, then 4) collides with the first and
  its first all-reduce fails ("Function was cancelled before it was started",
  measured with TensorFlow 2.21). :func:`mirrored_strategy` therefore passes
  ``ReductionToOneDevice`` (copy every replica's tensor to device 0, add,
  copy the result back), a public cross-device implementation that strategies
  of any size can use side by side. It also counts, while a step is traced,
  how many tensors it all-reduces and how many numbers they hold
  (:class:`CountingReduction`).

Like :mod:`bnlib.tf_compare`, importing this module sets quiet, reproducible
defaults before TensorFlow loads (``TF_CPP_MIN_LOG_LEVEL=3``, and
``TF_ENABLE_ONEDNN_OPTS=0``: no oneDNN graph rewrites) and switches on
TensorFlow's deterministic kernels (``enable_op_determinism``). Runs are then
bit-identical from run to run on one machine. They are not across
instruction sets: TensorFlow's matrix products dispatch on the CPU's
instruction set even so (``tf.matmul`` gives other bits under
``ONEDNN_MAX_CPU_ISA=AVX2``; its reductions do not). All functions take and
return NumPy arrays.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402  (after the environment is set)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# TensorFlow's Python logger announces every strategy ("Using MirroredStrategy with devices
# ...") and every retracing on stderr; a lesson prints what it means to print.
tf.get_logger().setLevel("ERROR")
# Deterministic kernels, always: the lessons and tests that import bnlib.tf_compare switch
# them on too, and some kernels round differently with them on, so a run must not depend
# on what else the process imported first.
tf.config.experimental.enable_op_determinism()

__all__ = ["configure_cpu_devices", "CountingReduction", "mirrored_strategy", "local_values",
           "distribute_rows", "run_batchnorm"]


def configure_cpu_devices(n: int) -> list:
    """Split the physical CPU into ``n`` logical devices; return their names.

    Call it before any other TensorFlow operation in the process. Calling it
    again is harmless if at least ``n`` logical CPUs exist already.

    Raises
    ------
    RuntimeError
        If TensorFlow has already initialized fewer than ``n`` logical CPUs
        (restart the kernel and call this first).
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1 logical devices; got {n}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError:
        pass  # already initialized: fine if there are enough devices
    names = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(names) < n:
        raise RuntimeError(
            f"TensorFlow has already initialized its devices with {len(names)} logical CPU(s), "
            f"and that cannot change in a running process: restart the kernel and call "
            f"configure_cpu_devices({n}) before any other TensorFlow operation")
    return names


class CountingReduction(tf.distribute.ReductionToOneDevice):
    """``ReductionToOneDevice`` that counts what it all-reduces while a function is traced.

    Attributes
    ----------
    tensors : int
        All-reduced tensors since the last :meth:`reset` (one per tensor per
        all-reduce, whatever the number of replicas).
    numbers : int
        Total number of elements in those tensors (per replica).
    """

    def __init__(self):
        super().__init__()
        self.reset()

    def reset(self) -> None:
        self.tensors = 0
        self.numbers = 0

    def reduce_implementation(self, reduce_op, per_replica_value, destinations, options):
        self.tensors += 1
        values = getattr(per_replica_value, "values", (per_replica_value,))
        self.numbers += int(values[0].shape.num_elements() or 0)
        return super().reduce_implementation(reduce_op, per_replica_value, destinations, options)


def mirrored_strategy(replicas: int) -> tf.distribute.MirroredStrategy:
    """A MirroredStrategy over logical CPUs 0..replicas-1, all-reducing through device 0.

    Its all-reduce is a :class:`CountingReduction`: ``strategy.extended._cross_device_ops``
    holds the counts (also returned as ``strategy.counter`` for convenience).
    """
    replicas = int(replicas)
    available = len(tf.config.list_logical_devices("CPU"))
    if not 1 <= replicas <= available:
        raise ValueError(f"replicas must be between 1 and the {available} logical CPU(s) "
                         f"configured (configure_cpu_devices); got {replicas}")
    counter = CountingReduction()
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)],
                                              cross_device_ops=counter)
    strategy.counter = counter
    return strategy


def local_values(strategy, value) -> np.ndarray:
    """Each replica's own copy or result, stacked: shape (replicas, ...).

    ``value`` is a per-replica result of ``strategy.run`` or a mirrored (Keras)
    variable; a variable's copies are *not* necessarily equal.
    """
    value = getattr(value, "value", value)   # a Keras variable wraps the tf.Variable
    return np.stack([np.asarray(v) for v in strategy.experimental_local_results(value)])


def distribute_rows(strategy, array, axis: int = 0):
    """Split ``array`` into equal consecutive slices along ``axis``, one per replica.

    Slice r goes to replica r, as ``tf.distribute`` splits a global batch.
    Returns a per-replica value for ``strategy.run``.
    """
    array = np.asarray(array)
    r = strategy.num_replicas_in_sync
    if array.shape[axis] % r:
        raise ValueError(f"the {r} replicas must divide axis {axis} of the array "
                         f"(shape {array.shape})")
    parts = np.split(array, r, axis=axis)
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(parts[ctx.replica_id_in_sync_group]))


def run_batchnorm(batches, replicas: int, *, synchronized: bool, gamma=None, beta=None,
                  momentum: float = 0.99, eps: float = 1e-3, dout=None,
                  count_all_reduces: bool = False) -> dict:
    """Train a Keras ``BatchNormalization`` layer on global batches under MirroredStrategy.

    Parameters
    ----------
    batches : array_like of shape (T, N, D) or (N, D), float32
        T training steps on global batches of N rows; replica r gets rows
        r*N/R to (r+1)*N/R - 1 of each.
    replicas : int
        R, dividing N.
    synchronized : bool
        Keras's ``synchronized`` argument: statistics of the global batch
        (all-reduced) or of each replica's slice.
    gamma, beta : array_like of shape (D,), optional
        Set before the first step (default 1 and 0).
    momentum, eps : float
        The layer's (Keras defaults).
    dout : array_like of shape (N, D), optional
        Upstream gradient for the last step: the loss is sum(out * dout).
    count_all_reduces : bool, default False
        Also trace one step alone to count its all-reduces ("all_reduced").

    Returns
    -------
    dict of ndarrays:
        "out" (N, D): the last step's output, replica slices in order;
        "moving_mean", "moving_variance" (R, D): each replica's copy of the
        layer's variables after the T steps;
        "read_mean", "read_variance" (D,): what ``layer.moving_mean`` and
        ``layer.moving_variance`` read as; "saved_mean" (D,): the moving mean in
        ``layer.get_weights()`` (what a saved model keeps);
        with ``dout``: "dx" (N, D), and "dgamma", "dbeta" (R, D), each
        replica's gradient (their sum is what the optimizer applies);
        with ``count_all_reduces``: "all_reduced", the tensors one step
        all-reduces (forward and backward).
    """
    batches = np.asarray(batches, dtype=np.float32)
    if batches.ndim == 2:
        batches = batches[None]
    if batches.ndim != 3:
        raise ValueError(f"batches must have shape (T, N, D) or (N, D); got {batches.shape}")
    steps, n, d = batches.shape
    strategy = mirrored_strategy(replicas)
    with strategy.scope():
        layer = keras.layers.BatchNormalization(synchronized=bool(synchronized),
                                                momentum=momentum, epsilon=eps)
        layer.build((None, d))
    if gamma is not None:
        layer.gamma.assign(np.asarray(gamma, np.float32))
    if beta is not None:
        layer.beta.assign(np.asarray(beta, np.float32))
    dout = np.zeros((n, d), np.float32) if dout is None else np.asarray(dout, np.float32)
    xs = distribute_rows(strategy, batches, axis=1)
    douts = distribute_rows(strategy, dout)

    def step(x_all, g, t):
        x = x_all[t]
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x, training=True)
            loss = tf.reduce_sum(out * g)
        dx, dgamma, dbeta = tape.gradient(loss, [x, layer.gamma, layer.beta])
        return out, dx, dgamma, dbeta

    @tf.function
    def train(xs, douts):
        for t in tf.range(steps - 1):
            strategy.run(step, args=(xs, douts, t))
        return strategy.run(step, args=(xs, douts, tf.constant(steps - 1)))

    counted = {}
    if count_all_reduces:
        strategy.counter.reset()
        tf.function(lambda: strategy.run(step, args=(xs, douts, tf.constant(0)))
                    ).get_concrete_function()   # traced, not run: one step's all-reduces
        counted["all_reduced"] = strategy.counter.tensors
    out, dx, dgamma, dbeta = train(xs, douts)
    return {"out": np.concatenate(local_values(strategy, out)),
            "dx": np.concatenate(local_values(strategy, dx)),
            "dgamma": local_values(strategy, dgamma), "dbeta": local_values(strategy, dbeta),
            "moving_mean": local_values(strategy, layer.moving_mean),
            "moving_variance": local_values(strategy, layer.moving_variance),
            "read_mean": layer.moving_mean.numpy(), "read_variance": layer.moving_variance.numpy(),
            "saved_mean": layer.get_weights()[2], **counted}
