"""Lesson 10's runs on the real engine: Keras under ``tf.distribute.MirroredStrategy``.

Importing this module imports TensorFlow (through :mod:`bnlib.tf_distribute`)
but does not initialize its devices: a lesson calls
:func:`bnlib.tf_distribute.configure_cpu_devices` with :data:`DEVICES` first.

The training runs are deterministic: the same seed gives the same weights to
the last bit, run after run (checked by the tests and in the lesson). The
initial weights and the order of the examples come from NumPy generators, so
a seed means the same starting point and the same batches for every number
of replicas; only how the global batch is normalized differs.
"""
from __future__ import annotations

import functools
import time

import numpy as np

from bnlib import distributed, tf_distribute
from bnlib.data import digits
from bnlib.tf_distribute import keras, tf

DEVICES = 4                  # logical CPUs the lesson configures
REPLICAS = (1, 2, 4)
GLOBAL_BATCHES = (8, 16, 32)
WIDTH = 64                   # two hidden layers of 64 units, batch norm before each ReLU
STEPS = 300                  # SGD steps per training run
LR = 0.05
MOMENTUM = 0.9               # batch norm's; 0.99 would still be warming up after 300 steps
EVAL_ROWS = 448              # test rows used for the batch-mode accuracy (a multiple of 32)


@functools.lru_cache(maxsize=None)
def data():
    """The digits in float32 (1,347 training and 450 test images of 64 pixels)."""
    return digits(dtype=np.float32)


def build_model(synchronized: bool) -> keras.Model:
    """64 -> Dense(64) -> BN -> ReLU -> Dense(64) -> BN -> ReLU -> Dense(10) logits."""
    inputs = keras.Input((64,))
    h = inputs
    for _ in range(2):
        h = keras.layers.Dense(WIDTH, use_bias=False)(h)
        h = keras.layers.BatchNormalization(synchronized=synchronized, momentum=MOMENTUM)(h)
        h = keras.layers.ReLU()(h)
    return keras.Model(inputs, keras.layers.Dense(10)(h))


def initial_weights(model: keras.Model, seed: int) -> list:
    """He-normal kernels from a NumPy generator, gamma 1, beta 0, moving statistics 0 and 1."""
    rng = np.random.default_rng(seed)
    values = []
    for w in model.weights:
        shape = tuple(w.shape)
        if len(shape) == 2:
            values.append(rng.normal(0.0, np.sqrt(2.0 / shape[0]), shape).astype(np.float32))
        elif w.name in ("gamma", "moving_variance"):
            values.append(np.ones(shape, np.float32))
        else:
            values.append(np.zeros(shape, np.float32))
    return values


def batch_order(seed: int, global_batch: int, steps: int = STEPS) -> np.ndarray:
    """Training rows of each step, shape (steps, global_batch): seeded shuffled epochs."""
    n = len(data().x_train)
    rng = np.random.default_rng([seed, 10])
    epochs = -(-steps * global_batch // n)
    order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    return order[:steps * global_batch].reshape(steps, global_batch)


class Trainer:
    """One model under a MirroredStrategy, its optimizer and its traced training loop.

    Built once per (replicas, synchronized, global_batch) and reused for every
    seed: :meth:`train` assigns the seed's initial weights and runs all the
    steps in one call of a ``tf.function`` (no Python per step).
    """

    def __init__(self, replicas: int, synchronized: bool, global_batch: int,
                 steps: int = STEPS):
        if global_batch % replicas:
            raise ValueError(f"replicas ({replicas}) must divide global_batch ({global_batch})")
        self.replicas, self.synchronized = int(replicas), bool(synchronized)
        self.global_batch, self.steps = int(global_batch), int(steps)
        self.strategy = tf_distribute.mirrored_strategy(self.replicas)
        with self.strategy.scope():
            self.model = build_model(self.synchronized)
            self.optimizer = keras.optimizers.SGD(LR)
            self.optimizer.build(self.model.trainable_variables)
        self._loop = tf.function(self._run_steps)
        self.counts = None   # (tensors, numbers) all-reduced per step, set by the first train


    def _step(self, xs, ys, i):
        model = self.model
        with tf.GradientTape() as tape:
            logits = model(xs[i], training=True)
            per_example = keras.losses.sparse_categorical_crossentropy(ys[i], logits,
                                                                       from_logits=True)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch)
        grads = tape.gradient(loss, model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, model.trainable_variables))   # all-reduced

    def _run_steps(self, xs, ys):
        for i in tf.range(self.steps):
            self.strategy.run(self._step, args=(xs, ys, i))

    def _inputs(self, seed: int):
        split = data()
        rows = batch_order(seed, self.global_batch, self.steps)
        xs = split.x_train[rows]                       # (steps, global_batch, 64)
        ys = split.y_train[rows].astype(np.int32)
        return (tf_distribute.distribute_rows(self.strategy, xs, axis=1),
                tf_distribute.distribute_rows(self.strategy, ys, axis=1))

    def train(self, seed: int) -> dict:
        """Train from the seed's initial weights; return the weights and the replica copies.

        Returns
        -------
        dict: "weights" (list of ndarray, as ``model.get_weights()`` reads them:
        replica 0's copy of every variable), "moving_mean_copies" (replicas, 64):
        each replica's moving mean of the first batch-norm layer. The first call
        also sets :attr:`counts`, the (tensors, numbers) one step all-reduces,
        counted while the loop is traced.
        """
        self.model.set_weights(initial_weights(self.model, seed))   # every replica's copy
        xs, ys = self._inputs(seed)
        if self.counts is None:   # the first call traces the loop: its body is one step
            self.strategy.counter.reset()
            self._loop(xs, ys)
            self.counts = (self.strategy.counter.tensors, self.strategy.counter.numbers)
        else:
            self._loop(xs, ys)
        bn = [layer for layer in self.model.layers
              if isinstance(layer, keras.layers.BatchNormalization)][0]
        return {"weights": [np.array(w) for w in self.model.get_weights()],
                "moving_mean_copies": tf_distribute.local_values(self.strategy, bn.moving_mean)}

    def time_steps(self, seed: int = 0) -> float:
        """Wall time of one training step, in seconds: a whole run divided by its steps.

        Call after :meth:`train` (the loop is then traced); the weights are left trained
        on ``seed``'s batches once more.
        """
        xs, ys = self._inputs(seed)
        if self.counts is None:
            self.train(seed)
        start = time.perf_counter()
        self._loop(xs, ys)
        return (time.perf_counter() - start) / self.steps


@functools.lru_cache(maxsize=None)
def trainer(replicas: int, synchronized: bool, global_batch: int, steps: int = STEPS) -> Trainer:
    """The cached :class:`Trainer` for a setting (tracing costs about a second)."""
    return Trainer(replicas, synchronized, global_batch, steps)


# ---------------------------------------------------------------- evaluation in NumPy

def forward(weights: list, x, *, ghost_size: int | None = None) -> np.ndarray:
    """The trained network's logits in NumPy (float64), from ``model.get_weights()``.

    ghost_size=None: inference mode (moving statistics). An int: batch mode,
    every block of ghost_size consecutive rows normalized with its own
    statistics, as each replica did in training.
    """
    h = np.asarray(x, np.float64)
    w = [np.asarray(a, np.float64) for a in weights]
    for k in range(2):
        kernel, gamma, beta, mean, var = w[5 * k:5 * k + 5]
        z = h @ kernel
        if ghost_size is None:
            z, *_ = distributed.ghost_batchnorm_forward(z, gamma, beta, mean, var, ghost_size=1,
                                                        training=False, eps=1e-3)
        else:
            z, *_ = distributed.ghost_batchnorm_forward(z, gamma, beta, mean, var,
                                                        ghost_size=ghost_size, training=True,
                                                        eps=1e-3)
        h = np.maximum(z, 0.0)
    return h @ w[10] + w[11]


def accuracy(weights: list, *, ghost_size: int | None = None) -> float:
    """Test accuracy: inference mode (all 450 test digits) or batch mode (the first 448)."""
    split = data()
    rows = slice(None) if ghost_size is None else slice(0, EVAL_ROWS)
    logits = forward(weights, split.x_test[rows], ghost_size=ghost_size)
    return float(np.mean(np.argmax(logits, axis=1) == split.y_test[rows]))


@functools.lru_cache(maxsize=None)
def run(replicas: int, synchronized: bool, global_batch: int, seed: int) -> dict:
    """One training run, measured (cached).

    Returns
    -------
    dict of float: "inference" (test accuracy with the stored moving
    statistics), "batch_mode" (test accuracy with each block of
    per-replica-batch test rows normalized by its own statistics, the way
    training normalized: the global batch for synchronized runs),
    "copies_spread" (largest difference between the replicas' copies of the
    first layer's moving mean, over its largest absolute entry).
    """
    result = trainer(replicas, synchronized, global_batch).train(seed)
    weights = result["weights"]
    trained_with = global_batch if synchronized else global_batch // replicas
    copies = result["moving_mean_copies"]
    return {"inference": accuracy(weights),
            "batch_mode": accuracy(weights, ghost_size=trained_with),
            "copies_spread": float(np.ptp(copies, axis=0).max() / np.abs(copies).max())}


def grid_runs(seeds, global_batches=GLOBAL_BATCHES, replicas=REPLICAS) -> dict:
    """:func:`run` for every (global batch, replicas, synchronized) and seed.

    Returns
    -------
    dict of (global_batch, replicas, synchronized) -> dict of name -> ndarray of
    shape (n_seeds,), the measures of :func:`run`.
    """
    out = {}
    for g in global_batches:
        for r in replicas:
            for sync in (False, True):
                runs = [run(r, sync, g, int(s)) for s in seeds]
                out[g, r, sync] = {k: np.array([x[k] for x in runs]) for k in runs[0]}
    return out


def replica_claim(seeds, global_batch: int = 8, replicas: int = 4) -> dict:
    """The lesson's training claim: one device, per-replica and synchronized, over seeds.

    Returns
    -------
    dict with keys "one_device", "per_replica", "synchronized", each a dict
    of name -> ndarray of shape (n_seeds,) (the measures of :func:`run`),
    for the same global batch: on 1 replica, and on ``replicas`` replicas
    without and with synchronized statistics.
    """
    def measures(r, sync):
        runs = [run(r, sync, global_batch, int(s)) for s in seeds]
        return {k: np.array([x[k] for x in runs]) for k in runs[0]}

    return {"one_device": measures(1, False), "per_replica": measures(replicas, False),
            "synchronized": measures(replicas, True)}


# ---------------------------------------------------------------- single layers

def gaussian_batches(steps: int, n: int, d: int, seed: int = 0):
    """Float32 batches (steps, n, d), feature j ~ N(mu_j, sigma_j**2); (batches, mu, sigma)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 3.0, d)
    sigma = 1.0 + np.arange(d) / d
    return (mu + sigma * rng.standard_normal((steps, n, d))).astype(np.float32), mu, sigma


def stored_variance(replicas: int = 4, synchronized: bool = False, *, steps: int = 400,
                    n: int = 16, d: int = 64, momentum: float = 0.99, seed: int = 0) -> dict:
    """What a Keras layer's moving variance settles at under MirroredStrategy.

    Trains one BatchNormalization layer for ``steps`` steps on global batches
    of ``n`` rows from known Gaussians, then divides each replica's copy of
    the moving variance by the true variance and averages over the d features.

    Returns
    -------
    dict: "copies" (replicas,) the ratio per replica copy, "read" the ratio of
    what the layer reads as, "per_replica_law" (n/R - 1)/(n/R) and
    "global_law" (n - 1)/n, the expectations of the biased batch variance.
    """
    batches, _, sigma = gaussian_batches(steps, n, d, seed)
    r = tf_distribute.run_batchnorm(batches, replicas, synchronized=synchronized,
                                    momentum=momentum)
    b = n // replicas
    return {"copies": (r["moving_variance"] / sigma ** 2).mean(axis=1),
            "read": float((r["read_variance"] / sigma ** 2).mean()),
            "per_replica_law": (b - 1) / b, "global_law": (n - 1) / n}


def keras_sync_variance(ratios, n: int = 64, per_ratio: int = 8, replicas: int = 2,
                        seed: int = 0) -> dict:
    """The variance Keras's ``synchronized=True`` normalizes with, for data with mean/std = r.

    One training step (momentum 0, so the moving variance *is* the batch
    variance the layer used) on x = r + N(0, 1) in float32, ``per_ratio``
    features per ratio, against the two-pass variance of the same numbers in
    float64, and against ``synchronized=False`` on one replica
    (``tf.nn.moments``, two passes).

    Returns
    -------
    dict of ndarray of shape (len(ratios),): "ratios"; "relative_error"
    (synchronized) and "one_replica_error", the largest over the ratio's
    features; "output_std_min", "output_std_max" of the synchronized layer's
    output over those features (1 when the variance is right).
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    rng = np.random.default_rng(seed)
    columns = np.repeat(ratios, per_ratio)
    x = (columns + rng.standard_normal((n, columns.size))).astype(np.float32)
    true = x.astype(np.float64).var(axis=0)
    sync = tf_distribute.run_batchnorm(x, replicas, synchronized=True, momentum=0.0)
    single = tf_distribute.run_batchnorm(x, 1, synchronized=False, momentum=0.0)

    def per(values, reduce):
        return reduce(np.asarray(values).reshape(ratios.size, per_ratio), axis=1)

    out_std = sync["out"].astype(np.float64).std(axis=0)
    return {"ratios": ratios,
            "relative_error": per(np.abs(sync["read_variance"] - true) / true, np.max),
            "one_replica_error": per(np.abs(single["read_variance"] - true) / true, np.max),
            "output_std_min": per(out_std, np.min), "output_std_max": per(out_std, np.max)}


def keras_accepts_virtual_batch_size() -> bool:
    """Whether this Keras's BatchNormalization takes tf.keras 2's ``virtual_batch_size``."""
    try:
        keras.layers.BatchNormalization(virtual_batch_size=4)
    except (TypeError, ValueError):
        return False
    return True


def inference_on_every_replica(x, row, replicas: int = 2) -> np.ndarray:
    """A per-replica training step on x (momentum 0), then ``row`` in inference mode everywhere.

    Returns ndarray of shape (replicas, D): what each replica outputs for the
    same row, in inference mode under the strategy (each reads its own copy of
    the moving statistics).
    """
    x = np.asarray(x, np.float32)
    strategy = tf_distribute.mirrored_strategy(replicas)
    with strategy.scope():
        layer = keras.layers.BatchNormalization(momentum=0.0)
        layer.build((None, x.shape[1]))
    strategy.run(tf.function(lambda v: layer(v, training=True)),
                 args=(tf_distribute.distribute_rows(strategy, x),))
    probe = np.tile(np.asarray(row, np.float32)[None], (replicas, 1))   # one row per replica
    out = strategy.run(tf.function(lambda v: layer(v, training=False)),
                       args=(tf_distribute.distribute_rows(strategy, probe),))
    return tf_distribute.local_values(strategy, out)[:, 0]


def all_reduce_time(replicas: int, size: int = 64, chain: int = 20, repeats: int = 20) -> float:
    """Best wall time of one all-reduce of ``size`` float32 numbers on ``replicas`` replicas (s).

    A traced function chains ``chain`` all-reduces (each waits for the one
    before, like batch norm's layers); the best of ``repeats`` calls, divided by
    ``chain``. Needs at least 2 replicas (one replica all-reduces nothing).
    """
    if replicas < 2:
        raise ValueError(f"replicas must be >= 2 for an all-reduce; got {replicas}")
    strategy = tf_distribute.mirrored_strategy(replicas)
    values = tf_distribute.distribute_rows(strategy, np.ones((replicas, size), np.float32))

    def chained(v):
        ctx = tf.distribute.get_replica_context()
        for _ in range(chain):
            v = ctx.all_reduce("sum", v) * (1.0 / replicas)
        return v

    run_once = tf.function(lambda v: strategy.run(chained, args=(v,)))
    run_once(values)                                   # traced
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run_once(values)
        best = min(best, time.perf_counter() - start)
    return best / chain
