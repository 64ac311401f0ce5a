"""Lesson 08: the noise in batch statistics, the costs, and batches that mislead.

Pure NumPy on top of :mod:`bnlib.nn`. The experiments are small (a few hundred
SGD steps on the digits) and cached on their arguments, so a lesson can print
and check their numbers without paying for them twice.

Every claim the lesson makes about a training outcome is a function of
``seeds`` (the lesson passes :data:`bnlib.course.seeds.LESSON_SEEDS` or
:data:`REG_SEEDS`, the tests :data:`bnlib.course.seeds.TEST_SEEDS`): a ``*_table``
function trains on every seed, a ``*_claims`` function turns the table into
:class:`Claim` verdicts, a ``*_lines`` function formats what the lesson prints
and a ``*_figure`` function draws every seed.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

from bnlib import nn
from bnlib.course import widgets
from bnlib.data import Split, digits
from bnlib.layernorm import GroupNorm, LayerNorm
from bnlib.course.seeds import over_seeds, spread

BATCH_GRID = (2, 4, 8, 16, 32, 64, 128, 256)
N_BATCHES = 2000                    # random batches per batch size in batch_noise
HIST_BINS, HIST_RANGE = 68, (-3.0, 5.5)  # the noise explorer's histogram of one example's output
BAR_WIDTH = 0.08                    # the dropout bars beside it
EXAMPLE_YMAX = 1890.0               # 1.05 x the tallest dropout bar, 0.9 x N_BATCHES (rate 0.1)
LAWS_XLIM = (1.6, 320.0)            # every slider batch size, 2 to 256, inside the frame
LAWS_YLIM = (0.02, 4.0)             # every spread (the largest, 2.2, at N=2) and dropout's 0.33-2


# ---------------------------------------------------------------- noise of batch statistics

@functools.lru_cache(maxsize=None)
def hidden_unit(seed: int = 0) -> np.ndarray:
    """One hidden unit's input over the 1,347 training digits: z = x @ w, w ~ N(0, 1/64).

    Returns ndarray of shape (1347,).
    """
    x = digits().x_train
    return x @ np.random.default_rng(seed).normal(0.0, 1.0 / 8.0, size=x.shape[1])


@functools.lru_cache(maxsize=None)
def example_index() -> int:
    """The training example whose unit value sits closest to one population std above the mean."""
    z = hidden_unit()
    return int(np.argmin(np.abs((z - z.mean()) / z.std() - 1.0)))


@functools.lru_cache(maxsize=None)
def ideal_output() -> float:
    """Example :func:`example_index` normalized with the population statistics (about 1)."""
    z = hidden_unit()
    return float((z[example_index()] - z.mean()) / z.std())


@functools.lru_cache(maxsize=None)
def batch_noise(batch_size: int, n_batches: int = N_BATCHES, seed: int = 0) -> dict:
    """What batch norm does to the unit of :func:`hidden_unit` over random mini-batches.

    Batches are drawn with replacement (so the mean's spread is exactly
    1/sqrt(N); shuffled epochs, without replacement, give slightly less).

    Returns
    -------
    dict with arrays of shape (n_batches,):
        "shift": (batch mean - population mean) / population std (additive noise),
        over batches of ``batch_size`` random examples;
        "scale": population std / batch std (multiplicative noise), same batches;
        "output": the normalized value of example k = :func:`example_index` in
        batches made of example k and ``batch_size - 1`` random others;
    and floats "ideal" (example k normalized with the population statistics),
    "kurtosis" (of the unit over the training set).
    """
    z = hidden_unit()
    mu, sigma = z.mean(), z.std()
    rng = np.random.default_rng(seed)
    batch = z[rng.integers(0, z.size, size=(n_batches, batch_size))]
    b_mean, b_std = batch.mean(axis=1), batch.std(axis=1)
    zk = z[example_index()]
    batch[:, 0] = zk
    o_mean, o_var = batch.mean(axis=1), batch.var(axis=1)
    return {"shift": (b_mean - mu) / sigma, "scale": sigma / b_std,
            "output": (zk - o_mean) / np.sqrt(o_var + 1e-3 * sigma ** 2),
            "ideal": ideal_output(),
            "kurtosis": float(np.mean(((z - mu) / sigma) ** 4))}


def mean_noise_law(batch_size: int) -> float:
    """Std of the mean of N independent draws, in population-std units: 1 / sqrt(N)."""
    return float(1.0 / np.sqrt(batch_size))


def scale_noise_law(batch_size: int, kurtosis: float) -> float:
    """Large-N std of sigma / sigma_batch: sqrt((kurtosis - 1) / (4 N)) (3 for a Gaussian)."""
    return float(np.sqrt((kurtosis - 1.0) / (4.0 * batch_size)))


def dropout_noise_std(rate: float) -> float:
    """Std of dropout's multiplicative factor Bernoulli(1 - rate) / (1 - rate)."""
    return float(np.sqrt(rate / (1.0 - rate)))


def robust_spread(values) -> float:
    """Interquartile range / 1.349: the standard deviation for a normal distribution, but finite
    and stable for heavy tails (sigma / sigma_batch has infinite variance for batches of N <= 3)."""
    q1, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 75])
    return float((q3 - q1) / 1.349)


def noise_summary(batch_size: int) -> dict:
    """The numbers the noise explorer prints, for a batch size.

    "shift_std": std of the batch-mean noise; "scale_spread": :func:`robust_spread` of
    sigma / sigma_batch (its std is meaningless at small N: infinite variance for N <= 3);
    their laws; "output_std", "ideal": one example's normalized value across batches.
    """
    r = batch_noise(int(batch_size))
    return {"shift_std": float(r["shift"].std()), "shift_law": mean_noise_law(batch_size),
            "scale_spread": robust_spread(r["scale"]),
            "scale_law": scale_noise_law(batch_size, r["kurtosis"]),
            "output_std": float(r["output"].std()), "ideal": r["ideal"]}


def noise_readout(batch_size: int, dropout_rate: float) -> str:
    """The noise explorer's two lines of numbers, for a batch size and a dropout rate."""
    s = noise_summary(batch_size)
    law = ("its variance is infinite for N <= 3" if batch_size <= 3
           else f"large-N law {s['scale_law']:.3f}")
    return (f"N={batch_size}: batch-mean noise {s['shift_std']:.3f} (1/sqrt(N) law "
            f"{s['shift_law']:.3f}); scale noise {s['scale_spread']:.3f} (IQR/1.35; {law})\n"
            f"one example's output: ideal {s['ideal']:.2f}, spread {s['output_std']:.3f}; "
            f"dropout {dropout_rate:.2f} multiplies by a factor with std "
            f"{dropout_noise_std(dropout_rate):.2f}")


class NoiseScene(widgets.Scene):
    """One example's batch-norm output across batches, and noise std against batch size."""

    def build(self) -> None:
        _, (ax0, ax1) = self.subplots(1, 2, figsize=(9, 3.2), left=0.085, bottom=0.16,
                                      wspace=0.3)
        self._build_example(ax0)
        self._build_laws(ax1)

    def _build_example(self, ax) -> None:
        # one filled step artist instead of 68 bar patches: several times faster to draw
        edges = np.linspace(*HIST_RANGE, HIST_BINS + 1)
        self.hist = self.live(ax.stairs(np.zeros(HIST_BINS), edges, fill=True, color="tab:blue",
                                        alpha=0.8, label=" "))
        # hatched outlines: at N=2 the bar at 1 / (1 - rate) stands right beside the bin at +1
        self.bars = ax.bar([0.0, 1.0], [0.0, 0.0], width=BAR_WIDTH, facecolor="none",
                           edgecolor="tab:orange", hatch="////", lw=1.5, label=" ")
        for bar in self.bars:
            self.live(bar)
        # static, but drawn over the histogram as in a full draw, so it is live too
        self.live(ax.axvline(ideal_output(), color="k", ls="--", lw=1,
                             label="population statistics"))
        # fixed places (where "best" puts them at the defaults): "best" would search the data
        # at every frame (about 8 ms of a frame's 45) and move them as the sliders move
        self.example_legend = self.live(ax.legend(fontsize=7, loc="upper right"))
        ax.set(xlabel="normalized value of one example", ylabel="batches",
               title="one example, many random batches")
        # the histogram's range with matplotlib's 5% margins; the tallest bar at any setting
        # is 1800 (dropout 0.1 keeps 90% of 2000), the tallest bin 1571 (N=2)
        span = HIST_RANGE[1] - HIST_RANGE[0]
        ax.set_xlim(HIST_RANGE[0] - 0.05 * span, HIST_RANGE[1] + 0.05 * span)
        ax.set_ylim(0, EXAMPLE_YMAX)

    def _build_laws(self, ax) -> None:
        grid = np.array(BATCH_GRID)
        summaries = [noise_summary(int(m)) for m in grid]
        ax.loglog(grid, [s["shift_std"] for s in summaries], "o-", color="tab:blue",
                  label="batch mean (measured std)")
        ax.loglog(grid, [s["shift_law"] for s in summaries], "k--", label="1/sqrt(N) law")
        ax.loglog(grid, [s["scale_spread"] for s in summaries], "s-", color="tab:green",
                  label="sigma / batch std (IQR/1.35)")
        ax.loglog(grid, [s["scale_law"] for s in summaries], ":", color="tab:green",
                  label="its large-N law")
        ax.set_xlim(*LAWS_XLIM)
        ax.set_ylim(*LAWS_YLIM)
        ax.minorticks_off()
        self.dropout_line = self.live(ax.axhline(1.0, color="tab:orange", label="dropout factor"))
        self.batch_line = self.live(ax.axvline(BATCH_GRID[0], color="tab:red", ls=":"))
        self.live(ax.legend(fontsize=7, loc="lower left"))
        ax.set(xlabel="batch size N", ylabel="spread (population-std units)",
               title="noise of the batch statistics")

    def update(self, batch_size: int = 32, dropout_rate: float = 0.5) -> str:
        batch_size = int(batch_size)
        output = batch_noise(batch_size)["output"]
        self.hist.set_data(np.histogram(output, bins=HIST_BINS, range=HIST_RANGE)[0])
        keep = 1.0 - dropout_rate
        for bar, x, height in zip(self.bars, (0.0, ideal_output() / keep),
                                  (dropout_rate * output.size, keep * output.size)):
            bar.set_x(x - BAR_WIDTH / 2)
            bar.set_height(height)
        # legend entries: the histogram, the population line, then the bars (containers last)
        texts = self.example_legend.get_texts()
        texts[0].set_text(f"batch norm, N={batch_size}")
        texts[2].set_text(f"dropout {dropout_rate:.2f} (no BN)")
        self.dropout_line.set_ydata([dropout_noise_std(dropout_rate)] * 2)
        self.batch_line.set_xdata([batch_size] * 2)
        return noise_readout(batch_size, dropout_rate)


def noise_explorer() -> widgets.Explorer:
    """Sliders for the batch size and, for comparison, a dropout rate."""
    return widgets.Explorer(NoiseScene(), {
        "batch_size": widgets.int_slider(32, 2, 256, 2, "batch size"),
        "dropout_rate": widgets.slider(0.5, 0.1, 0.8, 0.05, "dropout rate")},
        title="How noisy are the batch statistics?")


def noise_to_signal(scales=(0.01, 1.0, 100.0), noise_std: float = 0.1, seed: int = 0):
    """Std of added Gaussian noise over the std of activations, raw and after batch norm.

    Returns two ndarrays of shape (len(scales),): raw ratio, ratio after BN (gamma=1).
    """
    rng = np.random.default_rng(seed)
    raw, normed = [], []
    for scale in scales:
        a = scale * rng.standard_normal((256, 8)) + 3.0 * scale
        a_bn = (a - a.mean(0)) / np.sqrt(a.var(0) + 1e-3 * scale ** 2)
        raw.append(noise_std / a.std(0).mean())
        normed.append(noise_std / a_bn.std(0).mean())
    return np.array(raw), np.array(normed)


# ---------------------------------------------------------------- layers for the norm slot

class Dropout:
    """Inverted dropout, optionally after a batch norm, usable as ``nn.MLP(norm=...)``.

    In training, each value is kept with probability 1 - rate and divided by
    1 - rate; in inference it passes through. ``gamma``/``beta`` are the batch
    norm's (empty arrays without it), so the layer has the BatchNorm interface.
    """

    def __init__(self, width: int, rate: float, *, batch_norm: bool = False, seed: int = 0,
                 momentum: float = 0.99):
        self.rate = float(rate)
        self.rng = np.random.default_rng([seed, width])
        self.bn = nn.FastBatchNorm(width, momentum=momentum) if batch_norm else None
        self.gamma = self.bn.gamma if self.bn else np.zeros(0)
        self.beta = self.bn.beta if self.bn else np.zeros(0)
        self.mask = None

    @property
    def dgamma(self):
        return self.bn.dgamma if self.bn else np.zeros(0)

    @property
    def dbeta(self):
        return self.bn.dbeta if self.bn else np.zeros(0)

    def __call__(self, x, *, training: bool):
        if self.bn is not None:
            x = self.bn(x, training=training)
        self.mask = ((self.rng.random(x.shape) >= self.rate) / (1.0 - self.rate)
                     if training and self.rate > 0 else None)
        return x if self.mask is None else x * self.mask

    def backward(self, dout):
        d = dout if self.mask is None else dout * self.mask
        return d if self.bn is None else self.bn.backward(d)

    def state(self) -> dict:
        """What :meth:`nn.MLP.state` saves of this layer: the mask generator and the batch norm."""
        bn = None if self.bn is None else {
            name: np.array(getattr(self.bn, name), copy=True)
            for name in ("gamma", "beta", "moving_mean", "moving_variance")}
        return {"rng": self.rng.bit_generator.state, "bn": bn}

    def load_state(self, state: dict) -> None:
        """Put back a :meth:`state`: gamma and beta in place, the rest replaced."""
        if not isinstance(state, dict) or set(state) != {"rng", "bn"}:
            raise ValueError(f"state must be a dict from Dropout.state(); got {state!r:.60}")
        if (state["bn"] is None) != (self.bn is None):
            raise ValueError("state must match the layer on whether it has a batch norm")
        if self.bn is not None:
            for name, value in state["bn"].items():
                if np.shape(value) != self.bn.gamma.shape:
                    raise ValueError(f"state {name} must have shape {self.bn.gamma.shape}; "
                                     f"got {np.shape(value)}")
        self.rng.bit_generator.state = state["rng"]
        if self.bn is not None:
            self.bn.gamma[...], self.bn.beta[...] = state["bn"]["gamma"], state["bn"]["beta"]
            self.bn.moving_mean = np.array(state["bn"]["moving_mean"], copy=True)
            self.bn.moving_variance = np.array(state["bn"]["moving_variance"], copy=True)


def make_norm(kind: str, *, seed: int = 0, momentum: float = 0.99, rate: float = 0.3):
    """``make_norm(width)`` for nn.MLP: kind in {"none", "batch", "layer", "group4",
    "dropout", "batch+dropout"} (None for "none")."""
    factories = {
        "none": None,
        "batch": lambda w: nn.FastBatchNorm(w, momentum=momentum),
        "layer": LayerNorm,
        "group4": lambda w: GroupNorm(w, 4),
        "dropout": lambda w: Dropout(w, rate, seed=seed),
        "batch+dropout": lambda w: Dropout(w, rate, batch_norm=True, seed=seed, momentum=momentum),
    }
    if kind not in factories:
        raise ValueError(f"kind must be one of {sorted(factories)}; got {kind!r}")
    return factories[kind]


# ---------------------------------------------------------------- training helpers

def subset(n_train: int, seed: int = 0) -> Split:
    """The digits split with only ``n_train`` random training examples (test set unchanged)."""
    s = digits()
    rows = np.random.default_rng(seed).permutation(len(s.x_train))[:n_train]
    return Split(s.x_train[rows], s.y_train[rows], s.x_test, s.y_test)


def train_on_batches(model, split: Split, idx, lr: float = 0.05):
    """Plain SGD over the given minibatch rows idx of shape (steps, batch_size); in place."""
    with threadpool_limits(1, user_api="blas"):
        for rows in idx:
            _, dlogits = nn.softmax_cross_entropy(model.forward(split.x_train[rows], training=True),
                                                  split.y_train[rows])
            model.backward(dlogits)
            nn.sgd_step(model, lr)
    return model


def class_sorted_batches(y, batch_size: int, steps: int, seed: int = 0) -> np.ndarray:
    """Minibatches that each hold a single class (a non-i.i.d. stream); shape (steps, batch_size)."""
    rng = np.random.default_rng(seed)
    chunks = []
    while len(chunks) < steps:
        epoch = []
        for c in np.unique(y):
            rows = rng.permutation(np.flatnonzero(y == c))
            epoch += [rows[i:i + batch_size] for i in range(0, len(rows) - batch_size + 1, batch_size)]
        chunks += [epoch[i] for i in rng.permutation(len(epoch))]
    return np.array(chunks[:steps])


def precise_statistics(model, x) -> None:
    """Replace every batch-norm layer's moving statistics by exact ones over ``x``, in place.

    One training-mode pass over all of x with momentum 0: each layer's moving
    statistics become the mean and (biased) variance of its input over x, and
    the layers after it see exactly what they will see in inference mode.
    """
    saved = [n.momentum for n in model.norms]
    for n in model.norms:
        n.momentum = 0.0
    model.forward(x, training=True)
    for n, m in zip(model.norms, saved):
        n.momentum = m


def batch_mode_accuracy(model, x, y, batch_size: int, seed: int = 0) -> float:
    """Accuracy when test batches of ``batch_size`` are normalized with their own statistics."""
    order = np.random.default_rng(seed).permutation(len(x))
    n = len(x) // batch_size * batch_size
    with nn.restore_on_exit(model):       # training mode moves the moving statistics
        hits = [model.forward(x[r], training=True).argmax(1) == y[r]
                for r in order[:n].reshape(-1, batch_size)]
    return float(np.mean(hits))


def mlp(kind: str, *, sizes=(64, 64, 64, 10), seed: int = 0, momentum: float = 0.99,
        position: str = "before", activation: str = "relu"):
    """An nn.MLP with the normalization ``kind`` of :func:`make_norm`."""
    return nn.MLP(sizes, activation=activation, norm=make_norm(kind, seed=seed, momentum=momentum),
                  norm_position=position, seed=seed, momentum=momentum)


@functools.lru_cache(maxsize=None)
def small_batch_run(kind: str, batch_size: int, epochs: int = 3, seed: int = 0,
                    steps: int | None = None) -> dict:
    """Train a 64-64-64-10 ReLU net with ``kind`` normalization at a batch size (momentum 0.9).

    For ``epochs`` passes over the training set (int(epochs * 1347 / batch_size)
    steps), or for ``steps`` steps if given.

    Returns dict: "inference" test accuracy, "batch_mode" accuracy on test batches
    of the training batch size, "precise" accuracy after :func:`precise_statistics`
    (batch norm only; else equal to "inference").
    """
    split = digits()
    model = mlp(kind, seed=seed, momentum=0.9)
    if steps is None:
        steps = int(epochs * len(split.x_train) / batch_size)
    train_on_batches(model, split, nn.batch_indices(len(split.x_train), steps, batch_size, seed))
    out = {"inference": nn.accuracy(model, split.x_test, split.y_test),
           "batch_mode": batch_mode_accuracy(model, split.x_test, split.y_test, batch_size)}
    if kind == "batch":
        precise_statistics(model, split.x_train)
    out["precise"] = nn.accuracy(model, split.x_test, split.y_test)
    return out


def trained(kind: str, order: str = "iid", steps: int = 400, batch_size: int = 32,
            seed: int = 0, momentum: float = 0.99):
    """A 64-64-64-10 ReLU net trained for ``steps`` SGD steps on i.i.d. or class-sorted batches.

    Cached: the same settings, however they are passed, return the same (shared) model;
    change it only inside ``nn.restore_on_exit(model)``.
    """
    return _trained(kind, order, int(steps), int(batch_size), int(seed), float(momentum))


@functools.lru_cache(maxsize=None)
def _trained(kind, order, steps, batch_size, seed, momentum):
    split = digits()
    model = mlp(kind, seed=seed, momentum=momentum)
    idx = (nn.batch_indices(len(split.x_train), steps, batch_size, seed) if order == "iid"
           else class_sorted_batches(split.y_train, batch_size, steps, seed))
    return train_on_batches(model, split, idx)


def shifted(x, contrast: float = 0.6, brightness: float = 0.3) -> np.ndarray:
    """A test set seen by a different camera: contrast * x + brightness, clipped to [0, 1]."""
    return np.clip(contrast * np.asarray(x) + brightness, 0.0, 1.0)


def first_layer_mismatch(model, x) -> float:
    """Mean |batch mean - moving mean| / sqrt(moving variance) of the first BN layer's input on x."""
    z = x @ model.weights[0]
    bn = model.norms[0]
    return float(np.mean(np.abs(z.mean(0) - bn.moving_mean) / np.sqrt(bn.moving_variance)))


def train_with_whole_set_statistics(model, split: Split, idx, lr: float = 0.05):
    """SGD on the minibatches idx (steps, batch_size), batch norm taking the whole training set's
    statistics: batch norm without its batch noise. In place.

    Each step runs the whole training set through the network in training mode, so every
    batch-norm layer normalizes with the mean and variance of all the examples (computed
    with the current weights, and differentiated through, as batch norm does), and takes
    the loss on the minibatch's rows only. The minibatch still decides which examples
    the step learns from (SGD's own noise stays); what is gone is the noise of the
    normalization: an example's normalized value no longer depends on its batch-mates.
    """
    x, y = split.x_train, split.y_train
    with threadpool_limits(1, user_api="blas"):
        for rows in idx:
            logits = model.forward(x, training=True)
            _, d_rows = nn.softmax_cross_entropy(logits[rows], y[rows])
            dlogits = np.zeros_like(logits)
            dlogits[rows] = d_rows
            model.backward(dlogits)
            nn.sgd_step(model, lr)
    return model


@functools.lru_cache(maxsize=None)
def regularization_model(kind: str, n_train: int, seed: int = 0, steps: int = 600):
    """The trained network behind :func:`regularization_run` (cached and shared: change it only
    inside ``nn.restore_on_exit``)."""
    split = subset(n_train, seed)
    whole_set = kind == WHOLE_SET
    model = nn.MLP((64, 128, 128, 10), activation="relu", norm_position="after", seed=seed,
                   norm=make_norm("batch" if whole_set else kind, seed=seed, momentum=0.9),
                   momentum=0.9)
    if whole_set:
        train_with_whole_set_statistics(
            model, split, nn.batch_indices(len(split.x_train), steps, 32, seed), lr=0.05)
    else:
        nn.train(model, split, steps=steps, batch_size=32, lr=0.05, seed=seed, eval_every=steps)
    return model


@functools.lru_cache(maxsize=None)
def regularization_run(kind: str, n_train: int, seed: int = 0, steps: int = 600) -> tuple:
    """(train accuracy, test accuracy) of a 64-128-128-10 ReLU net, norm after the activation.

    ``kind``: one of :func:`make_norm`'s, or "batch, whole set" (batch norm trained by
    :func:`train_with_whole_set_statistics`: the same minibatches, no batch noise).
    """
    split = subset(n_train, seed)
    model = regularization_model(kind, n_train, seed, steps)
    return (nn.accuracy(model, split.x_train, split.y_train),
            nn.accuracy(model, split.x_test, split.y_test))


def gradient_norms(kind: str, init_scale: float, depth: int = 8, seed: int = 0) -> np.ndarray:
    """Norm of dL/dW for each dense layer of a deep sigmoid net at initialization.

    Returns ndarray of shape (depth + 1,), first layer first.
    """
    split = digits()
    model = nn.MLP((64,) + (64,) * depth + (10,), activation="sigmoid",
                   norm=None if kind == "none" else "batch", init_scale=init_scale, seed=seed)
    x, y = split.x_train[:128], split.y_train[:128]
    _, dlogits = nn.softmax_cross_entropy(model.forward(x, training=True), y)
    model.backward(dlogits)
    grads = dict(zip(model.param_names(), model.grads()))
    return np.array([np.linalg.norm(grads[f"W{i + 1}"]) for i in range(depth + 1)])


def scale_invariance(factor: float = 10.0, eps: float = 1e-9, seed: int = 0):
    """Multiply the first dense layer (before a batch norm) by ``factor``: what changes?

    Returns
    -------
    logits_diff : float
        max |logits after - logits before| (batch statistics, same batch).
    grad_ratio : ndarray of shape (64, 64)
        dL/dW1 after / dL/dW1 before, elementwise (1 / factor if invariant).
    """
    split = digits()
    x, y = split.x_train[:128], split.y_train[:128]
    model = nn.MLP((64, 64, 10), activation="relu", norm="batch", eps=eps, seed=seed)
    out = []
    for scale in (1.0, factor):
        model.weights[0] = model.weights[0] * scale
        logits = model.forward(x, training=True)
        model.backward(nn.softmax_cross_entropy(logits, y)[1])
        out.append((logits, model.grads()[0].copy()))
    (l1, g1), (l2, g2) = out
    mask = np.abs(g1) > 1e-8 * np.abs(g1).max()
    return float(np.max(np.abs(l2 - l1))), g2[mask] / g1[mask]


def layer_costs(widths=(64, 512), n_rows: int = 2048, repeats: int = 7, seed: int = 0) -> dict:
    """Forward + backward wall time of one layer of each kind, on (n_rows, width) inputs.

    "dense": z = x W + b and its three gradients (two matrix products and a sum);
    "batch norm": :class:`bnlib.nn.FastBatchNorm` in training mode, forward and
    backward; "relu": the activation and its gradient. One BLAS thread; the best of
    ``repeats`` rounds that call every layer of every width in turn
    (:func:`bnlib.course.timing.best_times`), so load from elsewhere hits all alike.

    Returns dict width -> dict kind -> seconds.
    """
    from bnlib.course.timing import best_times

    rng = np.random.default_rng(seed)
    layers = {}
    for width in widths:
        x = rng.standard_normal((n_rows, width))
        dout = rng.standard_normal((n_rows, width))
        W, b = rng.standard_normal((width, width)) / np.sqrt(width), np.zeros(width)
        bn = nn.FastBatchNorm(width)

        def dense(x=x, dout=dout, W=W, b=b):
            _ = x @ W + b
            return x.T @ dout, dout @ W.T, dout.sum(0)

        def batch_norm(x=x, dout=dout, bn=bn):
            bn(x, training=True)
            return bn.backward(dout)

        def relu(x=x, dout=dout):
            _ = np.maximum(x, 0.0)
            return dout * (x > 0)
        for name, fn in (("dense", dense), ("batch norm", batch_norm), ("relu", relu)):
            layers[width, name] = fn
    with threadpool_limits(1, user_api="blas"):
        times = best_times(layers, repeats)
    return {width: {name: times[width, name] for name in ("dense", "batch norm", "relu")}
            for width in widths}


def dropout_off_statistics(model, x) -> None:
    """Moving statistics of every batch norm inside a :class:`Dropout` layer, recomputed on x
    with dropout switched off: what each batch norm really sees at inference. In place."""
    layers = [n for n in model.norms if isinstance(n, Dropout) and n.bn is not None]
    saved = [(n.rate, n.bn.momentum) for n in layers]
    for n in layers:
        n.rate, n.bn.momentum = 0.0, 0.0
    try:
        model.forward(x, training=True)
    finally:
        for n, (rate, momentum) in zip(layers, saved):
            n.rate, n.bn.momentum = rate, momentum


def dropout_variance_shift(seeds: Sequence[int], n_train: int = 1347) -> Runs:
    """Batch norm + dropout (rate 0.3) of the regularization table: the variance shift.

    The second batch norm's input comes through the first layer's dropout. Its moving
    variance is learned with dropout on; at inference dropout is off.

    Returns Runs with values of shape (n_seeds,): "ratio" (median over its units of the
    input variance over the training set in inference mode / the moving variance),
    "accuracy" (test), "repaired" (test accuracy after :func:`dropout_off_statistics` on
    the training set).
    """
    seeds = tuple(int(s) for s in seeds)
    split = digits()

    def run(seed):
        model = regularization_model("batch+dropout", n_train, seed)
        model.forward(split.x_train, training=False)
        ratio = np.median(model.activations[1].var(axis=0) / model.norms[1].bn.moving_variance)
        with nn.restore_on_exit(model):
            dropout_off_statistics(model, split.x_train)
            repaired = nn.accuracy(model, split.x_test, split.y_test)
        return ratio, nn.accuracy(model, split.x_test, split.y_test), repaired
    table = over_seeds(run, seeds)
    return Runs(seeds, {"ratio": table[:, 0], "accuracy": table[:, 1], "repaired": table[:, 2]})


def dropout_variance_lines(runs: Runs) -> list:
    v = runs.values
    return [f"second batch norm, inference-mode input variance / moving variance: median over "
            f"units {_short(v['ratio'])} over {len(runs.seeds)} seeds",
            f"test accuracy {_short(v['accuracy'], '.3f')}; with statistics recomputed with "
            f"dropout off {_short(v['repaired'], '.3f')}"]


def dropout_variance_claims(runs: Runs) -> list:
    v = runs.values
    return [
        _claim("at inference the second batch norm sees a variance over 5% below its moving one",
               v["ratio"] < 0.95),
        _claim("here that costs under a point: recomputing the statistics with dropout off moves "
               "the test accuracy by under 1 point", np.abs(v["repaired"] - v["accuracy"]) < 0.01),
    ]


def radial_gradient(eps: float = 1e-9, seed: int = 0) -> float:
    """How far dL/dW1 is from orthogonal to W1, column by column, when W1 feeds a batch norm.

    Returns max over the columns j of |sum_i W_ij g_ij| / (||W_j|| ||g_j||): 0 for an
    exactly scale-invariant layer (with ε small enough not to break the invariance).
    """
    split = digits()
    x, y = split.x_train[:128], split.y_train[:128]
    model = nn.MLP((64, 64, 10), activation="relu", norm="batch", eps=eps, seed=seed)
    model.backward(nn.softmax_cross_entropy(model.forward(x, training=True), y)[1])
    W, g = model.weights[0], model.grads()[0]
    cos = np.abs(np.sum(W * g, axis=0)) / (np.linalg.norm(W, axis=0) * np.linalg.norm(g, axis=0))
    return float(cos.max())


WEIGHT_DECAYS = (0.0, 0.01, 0.05)


@functools.lru_cache(maxsize=None)
def weight_decay_run(decay: float, seed: int = 0, steps: int = 400, lr: float = 0.1) -> dict:
    """SGD with weight decay on the scale-invariant weights only (W1 and W2, each before a
    batch norm) of a 64-64-64-10 ReLU net: W -= lr * (dL/dW + decay * W).

    Returns dict: "norm" (||W1|| after each step, shape (steps,)), "step" (||Δ W1|| / ||W1||
    at each step, shape (steps,)), "accuracy" (test accuracy at the end), "start" (||W1|| at
    initialization).
    """
    split = digits()
    model = mlp("batch", seed=seed)
    start = float(np.linalg.norm(model.weights[0]))
    norms, steps_rel = np.empty(steps), np.empty(steps)
    idx = nn.batch_indices(len(split.x_train), steps, 32, seed)
    with threadpool_limits(1, user_api="blas"):
        for t, rows in enumerate(idx):
            logits = model.forward(split.x_train[rows], training=True)
            model.backward(nn.softmax_cross_entropy(logits, split.y_train[rows])[1])
            W1 = model.weights[0].copy()
            shrink = [decay * model.weights[i] for i in (0, 1)]
            nn.sgd_step(model, lr)
            for i in (0, 1):
                model.weights[i] -= lr * shrink[i]
            norms[t] = np.linalg.norm(model.weights[0])
            steps_rel[t] = np.linalg.norm(model.weights[0] - W1) / np.linalg.norm(W1)
    return {"norm": norms, "step": steps_rel, "start": start,
            "accuracy": nn.accuracy(model, split.x_test, split.y_test)}


def weight_decay_table(seeds: Sequence[int], decays=WEIGHT_DECAYS) -> Runs:
    """:func:`weight_decay_run` for every decay and seed.

    Returns Runs with settings = decays and values "norm", "step" of shape
    (n_seeds, len(decays), steps), "start", "accuracy", "late step" (mean relative step
    over the last 100 steps) of shape (n_seeds, len(decays)).
    """
    seeds = tuple(int(s) for s in seeds)
    runs = [[weight_decay_run(float(d), s) for d in decays] for s in seeds]
    values = {key: np.array([[r[key] for r in row] for row in runs])
              for key in ("norm", "step", "start", "accuracy")}
    values["late step"] = values["step"][:, :, -100:].mean(axis=2)
    return Runs(seeds, values, tuple(float(d) for d in decays))


def weight_decay_lines(runs: Runs) -> list:
    v = runs.values
    lines = [f"median (lowest to highest) over {len(runs.seeds)} seeds; ||W1|| starts at "
             f"{_short(v['start'][:, 0])}"]
    for j, d in enumerate(runs.settings):
        lines.append(f"decay {d:4.2f}: ||W1|| at the end {_short(v['norm'][:, j, -1])}, relative "
                     f"step (last 100 steps) {_short(v['late step'][:, j], '.3f')}, test "
                     f"accuracy {_short(v['accuracy'][:, j])}")
    return lines


def weight_decay_claims(runs: Runs) -> list:
    v = runs.values
    d = list(runs.settings)
    none, some, much = d.index(0.0), d.index(0.01), d.index(0.05)
    return [
        _claim("without decay ||W1|| only grows (it ends above its start)",
               v["norm"][:, none, -1] > v["start"][:, none]),
        _claim("decay 0.01 shrinks it below 0.8x its start",
               v["norm"][:, some, -1] < 0.8 * v["start"][:, some]),
        _claim("and keeps the relative step over 1.3x larger than without decay",
               v["late step"][:, some] > 1.3 * v["late step"][:, none]),
        _claim("decay 0.05 makes the relative step over 5x larger, and costs over 2 points "
               "of test accuracy",
               (v["late step"][:, much] > 5 * v["late step"][:, none])
               & (v["accuracy"][:, none] - v["accuracy"][:, much] > 0.02)),
    ]


def weight_decay_figure(runs: Runs):
    """||W1|| and its relative step against the training step, every decay and seed."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.2))
    steps = np.arange(1, runs.values["norm"].shape[2] + 1)
    kernel = np.ones(20) / 20          # the relative step smoothed over 20 steps
    for j, d in enumerate(runs.settings):
        for i in range(len(runs.seeds)):
            label = f"decay {d:g}" if i == 0 else None
            ax0.plot(steps, runs.values["norm"][i, j], color=f"C{j}", lw=1, label=label)
            ax1.plot(steps[19:], np.convolve(runs.values["step"][i, j], kernel, "valid"),
                     color=f"C{j}", lw=1, label=label)
    ax0.set(xlabel="SGD step", ylabel="||W1||", title="Weight norm of a layer before batch norm")
    ax1.set(xlabel="SGD step", ylabel="||ΔW1|| / ||W1|| (20-step mean)", yscale="log",
            title="Its relative step: the effective learning rate")
    for ax in (ax0, ax1):
        ax.legend(fontsize=7)
    fig.text(0.5, 0.005, f"one line per seed ({len(runs.seeds)} seeds)", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def fold_mlp(model):
    """A norm-free nn.MLP equal to ``model`` (batch norm before the activation) in inference mode."""
    from bnlib.batchnorm import fold_into_dense

    plain = nn.MLP(model.sizes, activation=model.activation, norm=None)
    for i, (W, b) in enumerate(zip(model.weights, model.biases)):
        norm = model.norms[i] if i < model.n_hidden else None
        if norm is None:
            plain.weights[i], plain.biases[i] = W.copy(), b.copy()
        else:
            plain.weights[i], plain.biases[i] = fold_into_dense(
                W, b, norm.gamma, norm.beta, norm.moving_mean, norm.moving_variance, norm.eps)
    return plain


def batch_vs_moving(model, x, idx) -> float:
    """Average :func:`first_layer_mismatch` over the minibatches x[rows] for rows in idx.

    How far (in moving-std units) a training batch's first-layer means sit from
    the moving means used at inference.
    """
    return float(np.mean([first_layer_mismatch(model, x[rows]) for rows in idx]))


# ---------------------------------------------------------------- claims over seeds

class Claim(NamedTuple):
    """A claim checked on several seeds; ``checks.assert_true(*claim)`` prints and asserts it."""

    text: str
    holds: bool
    detail: str = ""


@dataclass(frozen=True)
class Runs:
    """One experiment on several seeds.

    Attributes
    ----------
    seeds : tuple of int
    values : dict of key -> ndarray of shape (n_seeds,) or (n_seeds, len(settings))
    settings : tuple
        What the last axis of the 2-D values runs over (batch sizes, step counts), if any.
    """

    seeds: tuple
    values: dict
    settings: tuple = ()


def _every(ok) -> tuple[bool, str]:
    """(all true, "on 3 of 3 seeds") for a boolean per seed (or per seed and setting)."""
    ok = np.asarray(ok, dtype=bool).reshape(len(ok), -1).all(axis=1)
    return bool(ok.all()), f"on {int(ok.sum())} of {ok.size} seeds"


def _claim(text: str, ok, extra: str = "") -> Claim:
    holds, count = _every(ok)
    return Claim(text, holds, count + (f"; {extra}" if extra else ""))


def _median_claim(text: str, values, *, above: float, median_above: float) -> Claim:
    """Every seed's value above ``above`` and the median over seeds above ``median_above``.

    values : ndarray of shape (n_seeds,) or (n_seeds, n_cases); each case is judged separately.
    """
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    every, count = _every(values > above)
    return Claim(text, every and bool(np.all(np.median(values, axis=0) > median_above)), count)


def _short(values, fmt: str = ".2f") -> str:
    """``"0.95 (0.93 to 0.96)"``: the median and range of per-seed values."""
    values = np.asarray(values, dtype=np.float64)
    return f"{np.median(values):{fmt}} ({values.min():{fmt}} to {values.max():{fmt}})"


def _seed_lines(ax, x, per_seed, *, color, label, marker="o", ls="-") -> None:
    """Every seed as a thin line, the median as a thick one with markers."""
    per_seed = np.asarray(per_seed, dtype=np.float64)
    for row in per_seed:
        ax.plot(x, row, color=color, lw=0.8, alpha=0.45, ls=ls)
    ax.plot(x, np.median(per_seed, axis=0), color=color, lw=2, marker=marker, ms=4, label=label,
            ls=ls)


def _seed_dots(ax, x: float, values, *, color, marker="o", label=None, width=0.25) -> None:
    """Every seed as a dot (spread sideways), the median as a horizontal bar."""
    values = np.asarray(values, dtype=np.float64)
    offsets = np.linspace(-width / 2, width / 2, values.size) if values.size > 1 else [0.0]
    ax.scatter(x + np.asarray(offsets), values, s=14, color=color, marker=marker, zorder=3,
               label=label)
    ax.plot([x - width / 1.4, x + width / 1.4], [np.median(values)] * 2, color=color, lw=2)


# ------------------------------------------------ regularization: 150 vs 1,347 training digits

WHOLE_SET = "batch, whole set"     # batch norm without batch noise: see regularization_run
REG_KINDS = ("none", "dropout", "batch", "batch+dropout", WHOLE_SET)
REG_SIZES = (150, 1347)
REG_SEEDS = (0, 1, 2, 3, 4)   # cheap enough (600 steps a run) for five seeds in the lesson


def regularization_table(seeds: Sequence[int], sizes=REG_SIZES, kinds=REG_KINDS) -> Runs:
    """:func:`regularization_run` for every training-set size, kind and seed.

    Returns
    -------
    Runs with values[(n_train, kind)] of shape (n_seeds, 2): train and test accuracy.
    """
    seeds = tuple(int(s) for s in seeds)
    # the noise-free control runs the whole training set at every step: only on the small set
    return Runs(seeds, {(n, kind): over_seeds(lambda s: regularization_run(kind, n, seed=s), seeds)
                        for n in sizes for kind in kinds
                        if kind != WHOLE_SET or n == REG_SIZES[0]})


def regularization_lines(runs: Runs) -> list:
    """Every row's median and range, and each variant's test accuracy against the plain net's."""
    lines = [f"median (lowest to highest) over {len(runs.seeds)} seeds"]
    for (n, kind), acc in runs.values.items():
        train, test = acc[:, 0], acc[:, 1]
        lines.append(f"{n:4d} examples, {kind:16s}: train {_short(train)}, test {_short(test)}, "
                     f"gap {_short(train - test)}")
    plain = runs.values[REG_SIZES[0], "none"][:, 1]
    deltas = [f"{kind} {_short(runs.values[REG_SIZES[0], kind][:, 1] - plain, '+.2f')}"
              for kind in REG_KINDS[1:] if (REG_SIZES[0], kind) in runs.values]
    lines.append(f"test accuracy minus the plain net's, {REG_SIZES[0]} examples: "
                 + ", ".join(deltas))
    if (REG_SIZES[0], WHOLE_SET) in runs.values:
        lines.append(f"what batch norm's noise adds (test accuracy of batch norm minus its "
                     f"whole-set control), {REG_SIZES[0]} examples: "
                     f"{_short(_noise_effect(runs), '+.3f')}")
    return lines


def _noise_effect(runs: Runs) -> np.ndarray:
    """Per seed: test accuracy of batch norm minus that of its noise-free control (150 digits)."""
    small = REG_SIZES[0]
    return runs.values[small, "batch"][:, 1] - runs.values[small, WHOLE_SET][:, 1]


def noise_control_claims(runs: Runs) -> list:
    """Batch norm against the same training with whole-set statistics: what the noise is worth."""
    small = REG_SIZES[0]
    v = runs.values
    effect = _noise_effect(runs)
    gap = v[small, WHOLE_SET][:, 0] - v[small, WHOLE_SET][:, 1]
    return [
        _claim(f"without batch noise, batch norm still fits all {small} examples and tests over "
               "4 points lower", (v[small, WHOLE_SET][:, 0] >= 0.99) & (gap > 0.04)),
        Claim("removing the noise changes the test accuracy by under 5 points on every seed, "
              "under 2 on the median",
              bool(np.all(np.abs(effect) < 0.05) and abs(np.median(effect)) < 0.02),
              f"median {np.median(effect):+.3f}, from {effect.min():+.3f} to {effect.max():+.3f}"),
    ]


def regularization_claims(runs: Runs) -> list:
    """The regularization table's claims, each checked on every seed."""
    small, full = REG_SIZES
    v = runs.values
    train = {key: acc[:, 0] for key, acc in v.items()}
    test = {key: acc[:, 1] for key, acc in v.items()}
    gap = {key: train[key] - test[key] for key in v}
    plain_small, plain_full = gap[small, "none"], gap[full, "none"]
    delta = {k: test[small, k] - test[small, "none"] for k in REG_KINDS}
    with_bn = ("batch", "batch+dropout")
    return [
        _claim(f"with {small} examples every variant fits the training set (train accuracy at "
               "least 0.99) and tests over 4 points lower",
               np.stack([(train[small, k] >= 0.99) & (gap[small, k] > 0.04)
                         for k in REG_KINDS], 1)),
        _claim(f"the plain net's gap is over 2.5x larger with {small} examples than with 1,347",
               plain_small > 2.5 * plain_full),
        _claim(f"no variant closes even half of the plain net's gap on {small} examples",
               np.stack([gap[small, k] > 0.5 * plain_small for k in REG_KINDS[1:]], 1)),
        _claim(f"on {small} examples each variant moves the test accuracy by under 5 points",
               np.stack([np.abs(delta[k]) < 0.05 for k in REG_KINDS[1:]], 1)),
        Claim(f"on {small} examples batch norm's effect, alone or with dropout, changes sign "
              "from seed to seed",
              all((delta[k] > 0).any() and (delta[k] < 0).any() for k in with_bn),
              "; ".join(f"{k}: {int((delta[k] > 0).sum())} seeds up, "
                        f"{int((delta[k] < 0).sum())} down" for k in with_bn)),
        _claim("with all the data, batch norm fits the TRAINING set better, by over a point",
               train[full, "batch"] > train[full, "none"] + 0.01),
        _claim("with all the data, batch norm also tests better than the plain net",
               test[full, "batch"] > test[full, "none"]),
        _claim("with all the data, dropout on top of batch norm adds nothing (under a point)",
               test[full, "batch+dropout"] < test[full, "batch"] + 0.01),
    ]


def regularization_figure(runs: Runs):
    """Train (hollow) and test (filled) accuracy of every variant and seed, for each data size."""
    fig, axes = plt.subplots(1, len(REG_SIZES), figsize=(10, 3.4), sharey=True)
    for ax, n in zip(axes, REG_SIZES):
        for i, kind in enumerate(REG_KINDS):
            if (n, kind) not in runs.values:
                ax.text(i, 0.87, "not run\n(costly)", ha="center", fontsize=7, color="gray")
                continue
            acc = runs.values[n, kind]
            _seed_dots(ax, i, acc[:, 0], color="tab:gray", marker="o",
                       label="train" if i == 0 else None)
            _seed_dots(ax, i, acc[:, 1], color="tab:blue", marker="s",
                       label="test" if i == 0 else None)
        ax.set_xticks(range(len(REG_KINDS)), [k.replace("+", " +\n").replace(", ", ",\n")
                                              for k in REG_KINDS])
        ax.set(title=f"{n} training examples", ylim=(0.85, 1.005))
    axes[0].set_ylabel("accuracy (one dot per seed)")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


# ------------------------------------------------ small batches: batch norm vs layer and group norm

SMALL_BATCHES = (32, 16, 8, 4, 2)
SMALL_KINDS = ("batch", "layer", "group4")
KIND_NAMES = {"batch": "batch norm", "layer": "layer norm", "group4": "group norm",
              "none": "no norm"}
# Batch norm trained on batches smaller than this is chaotic: a 1e-15 nudge of the initial
# weights moves its test accuracy by about a point at batch 4 and by up to 19 points at
# batch 2 (0.61 to 0.80 on one seed over nine nudges; a slow test checks that it moves), so
# the lesson only draws those runs and checks verdicts with wide margins on them.
CHAOTIC_BELOW = 8


EQUAL_STEPS = 505    # three epochs at batch 8: the equal-steps comparison's step count


def small_batch_table(seeds: Sequence[int], kinds=SMALL_KINDS, batch_sizes=SMALL_BATCHES,
                      equal_steps: int | None = EQUAL_STEPS) -> Runs:
    """:func:`small_batch_run` for every kind, batch size and seed.

    Three epochs each (so a smaller batch takes more steps); batch norm also for
    ``equal_steps`` steps at every batch size (unless None).

    Returns
    -------
    Runs with settings = batch_sizes and values[(kind, measure)] of shape
    (n_seeds, len(batch_sizes)), measure in {"inference", "batch_mode", "precise"},
    and values["batch", "equal_steps"]: batch norm's test accuracy after ``equal_steps``.
    """
    seeds = tuple(int(s) for s in seeds)
    values = {}
    for kind in kinds:
        runs = [[small_batch_run(kind, int(b), seed=s) for b in batch_sizes] for s in seeds]
        for measure in ("inference", "batch_mode", "precise"):
            values[kind, measure] = np.array([[r[measure] for r in row] for row in runs])
    if equal_steps is not None and "batch" in kinds:
        values["batch", "equal_steps"] = np.array(
            [[small_batch_run("batch", int(b), seed=s, steps=int(equal_steps))["inference"]
              for b in batch_sizes] for s in seeds])
    return Runs(seeds, values, tuple(int(b) for b in batch_sizes))


def steps_per_run(batch_size: int, epochs: int = 3) -> int:
    """SGD steps of :func:`small_batch_run` for ``epochs`` passes over the 1,347 digits."""
    return int(epochs * len(digits().x_train) / batch_size)


def equal_steps_lines(runs: Runs) -> list:
    """Batch norm's test error at equal epochs and at equal steps (non-chaotic batch sizes)."""
    v = runs.values
    lines = [f"batch norm, test error, median (lowest to highest) over {len(runs.seeds)} seeds"]
    for j, b in enumerate(runs.settings):
        if b < CHAOTIC_BELOW:
            continue
        lines.append(f"batch {b:2d}: 3 epochs ({steps_per_run(b):4d} steps) "
                     f"{_short(1 - v['batch', 'inference'][:, j])};  {EQUAL_STEPS} steps "
                     f"({EQUAL_STEPS * b / len(digits().x_train):4.1f} epochs) "
                     f"{_short(1 - v['batch', 'equal_steps'][:, j])}")
    return lines


def equal_steps_claims(runs: Runs) -> list:
    """Batches of 8-16 beat 32 at equal epochs (more steps), not at equal steps."""
    v = runs.values
    j32 = runs.settings.index(32)
    small = [j for j, b in enumerate(runs.settings) if CHAOTIC_BELOW <= b < 32]
    names = " and ".join(str(runs.settings[j]) for j in small)
    epochs = np.stack([v["batch", "inference"][:, j] - v["batch", "inference"][:, j32]
                       for j in small], 1)
    steps = np.stack([v["batch", "equal_steps"][:, j32] - v["batch", "equal_steps"][:, j]
                      for j in small], 1)
    return [
        _median_claim(f"at equal epochs, batch norm at batch {names} beats batch 32: on every "
                      "seed, by over a point on the median", epochs, above=0.0,
                      median_above=0.01),
        _claim(f"at equal steps that advantage is gone: batch 32 is within a point of batch "
               f"{names} or better", steps > -0.01,
               f"batch 32 minus the smaller batch: {_short(steps.ravel(), '+.3f')} "
               "over seeds and batch sizes"),
    ]


def small_batch_lines(runs: Runs) -> list:
    """Test error (median and range) per batch size and kind; chaotic runs are only drawn."""
    kinds = sorted({kind for kind, _ in runs.values}, key=list(KIND_NAMES).index)
    lines = [f"test error, median (lowest to highest) over {len(runs.seeds)} seeds; batch norm "
             f"below batch {CHAOTIC_BELOW} is chaotic, so drawn below but not printed"]
    for j, b in enumerate(runs.settings):
        cells = []
        for kind in kinds:
            error = 1 - runs.values[kind, "inference"][:, j]
            chaotic = kind == "batch" and b < CHAOTIC_BELOW
            cells.append(f"{KIND_NAMES[kind]} {'(chaotic)' if chaotic else _short(error):18s}")
        lines.append(f"batch {b:2d}: " + "  ".join(cells).rstrip())
    return lines


def small_batch_claims(runs: Runs) -> list:
    """Batch norm at batch 2 against batch 32: the accuracy lost and the mismatch; every seed."""
    j2, j32 = runs.settings.index(2), runs.settings.index(32)
    bn, bn_mode = runs.values["batch", "inference"], runs.values["batch", "batch_mode"]
    # batch 2 is chaotic (see CHAOTIC_BELOW): wide margins on every seed, the effect on the median
    return [
        _median_claim("batch norm loses test accuracy from batch 32 to batch 2: over 5 points on "
                      "every seed, over 10 on the median", bn[:, j32] - bn[:, j2],
                      above=0.05, median_above=0.10),
        _claim("at batch 32, batch-mode and inference accuracy agree within 5 points",
               np.abs(bn_mode[:, j32] - bn[:, j32]) < 0.05),
        _median_claim("at batch 2, inference beats batch mode by over 10 points on every seed, "
                      "over 20 on the median", bn[:, j2] - bn_mode[:, j2],
                      above=0.10, median_above=0.20),
    ]


def precise_rescue_claims(runs: Runs) -> list:
    """Precise statistics cannot repair weights learned on batches of two."""
    j2, j32 = runs.settings.index(2), runs.settings.index(32)
    bn, bn_precise = runs.values["batch", "inference"], runs.values["batch", "precise"]
    return [_claim("precise statistics do not rescue batch 2: still over 5 points below batch 32",
                   bn[:, j32] - bn_precise[:, j2] > 0.05)]


def alternative_lines(runs: Runs) -> list:
    """Test accuracy of the batch-independent norms at batch 32 and batch 2."""
    j2, j32 = runs.settings.index(2), runs.settings.index(32)
    v = runs.values
    return [f"{KIND_NAMES[k]}: test accuracy at batch 32 {_short(v[k, 'inference'][:, j32])}, "
            f"at batch 2 {_short(v[k, 'inference'][:, j2])}"
            for k in ("layer", "group4") if (k, "inference") in v]


def alternative_claims(runs: Runs) -> list:
    """Layer and group norm at batch 2: close to their batch-32 selves, far above batch norm."""
    j2, j32 = runs.settings.index(2), runs.settings.index(32)
    v = runs.values
    others = [k for k in ("layer", "group4") if (k, "inference") in v]
    names = " and ".join(KIND_NAMES[k] for k in others)
    change = np.stack([v[k, "inference"][:, j2] - v[k, "inference"][:, j32] for k in others], 1)
    median_change = np.median(change, axis=0)
    every, count = _every(change > -0.10)
    return [
        Claim(f"{names} lose under 10 points from batch 32 to batch 2, and under 5 on the median",
              every and bool(np.all(np.abs(median_change) < 0.05)),
              f"{count}; median changes {', '.join(f'{m:+.2f}' for m in median_change)}"),
        _median_claim(f"at batch 2, {names} beat batch norm on every seed, by over 10 points "
                      "on the median",
                      np.stack([v[k, "inference"][:, j2] - v["batch", "inference"][:, j2]
                                for k in others], 1), above=0.0, median_above=0.10),
    ]


def small_batch_figure(runs: Runs):
    """Test error against batch size (every seed), and batch norm's train/inference mismatch."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.3))
    x = np.array(runs.settings)
    kinds = sorted({kind for kind, _ in runs.values}, key=list(KIND_NAMES).index)
    for i, kind in enumerate(kinds):
        _seed_lines(ax0, x, 1 - runs.values[kind, "inference"], color=f"C{i}",
                    label=KIND_NAMES[kind] + " (3 epochs)")
    if ("batch", "equal_steps") in runs.values:
        _seed_lines(ax0, x, 1 - runs.values["batch", "equal_steps"], color="C0", ls="--",
                    marker="x", label=f"batch norm ({EQUAL_STEPS} steps)")
    ax0.set(xlabel="training batch size", ylabel="test error",
            title="Small batches hurt batch norm far more")
    bn = runs.values["batch", "inference"]
    _seed_lines(ax1, x, bn - runs.values["batch", "batch_mode"], color="C0",
                label="inference minus batch-mode accuracy")
    _seed_lines(ax1, x, runs.values["batch", "precise"] - bn, color="C3", marker="s",
                label="precise minus moving statistics")
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set(xlabel="training batch size", ylabel="accuracy difference",
            title="Batch norm: train/inference mismatch")
    for ax in (ax0, ax1):
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [str(b) for b in x])
        ax.minorticks_off()
        ax.legend(fontsize=7)
    fig.text(0.5, 0.005, f"thin lines: each of {len(runs.seeds)} seeds; thick: their median",
             ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


# ------------------------------------------------ batches sorted by class

SORTED_KINDS = ("batch", "layer", "none")


def sorted_batch_table(seeds: Sequence[int], kinds=SORTED_KINDS) -> Runs:
    """Test accuracy after :func:`trained` on shuffled vs one-class batches, every seed.

    Returns
    -------
    Runs with values[(kind, order)] of shape (n_seeds,), order in {"iid", "sorted"},
    and values["mismatch", order]: :func:`batch_vs_moving` of the batch-norm net
    trained on one-class batches, over 20 shuffled or 20 one-class batches.
    """
    seeds = tuple(int(s) for s in seeds)
    split = digits()
    values = {(kind, order): over_seeds(
        lambda s: nn.accuracy(trained(kind, order, seed=s), split.x_test, split.y_test), seeds)
        for kind in kinds for order in ("iid", "sorted")}
    iid_rows = nn.batch_indices(len(split.x_train), 20, 32, seed=1)
    one_class_rows = class_sorted_batches(split.y_train, 32, 20, seed=1)
    for order, rows in (("iid", iid_rows), ("sorted", one_class_rows)):
        values["mismatch", order] = over_seeds(
            lambda s: batch_vs_moving(trained("batch", "sorted", seed=s), split.x_train, rows),
            seeds)
    return Runs(seeds, values)


def sorted_batch_lines(runs: Runs) -> list:
    """Test accuracy (median and range) of every kind, shuffled vs one-class batches."""
    v = runs.values
    return ([f"test accuracy, median (lowest to highest) over {len(runs.seeds)} seeds"]
            + [f"{KIND_NAMES[kind]:10s}: shuffled batches {_short(v[kind, 'iid'])}, "
               f"one-class batches {_short(v[kind, 'sorted'])}"
               for kind in SORTED_KINDS if (kind, "iid") in v])


def sorted_batch_claims(runs: Runs) -> list:
    v = runs.values
    return [
        _claim("batch norm: over 0.9 on shuffled batches, under 0.3 on one-class batches "
               "(chance is 0.1)", (v["batch", "iid"] > 0.9) & (v["batch", "sorted"] < 0.3)),
        _claim("layer norm keeps over 0.9 on one-class batches", v["layer", "sorted"] > 0.9),
        _claim("the plain net keeps over 0.7 on one-class batches", v["none", "sorted"] > 0.7),
    ]


def one_class_mismatch_lines(runs: Runs) -> list:
    v = runs.values
    return [f"batch means vs moving means (std units), median (lowest to highest) over "
            f"{len(runs.seeds)} seeds: shuffled batches {_short(v['mismatch', 'iid'])}, "
            f"one-class batches {_short(v['mismatch', 'sorted'])}"]


def one_class_mismatch_claims(runs: Runs) -> list:
    v = runs.values
    return [_claim("one-class batch means sit over 3x further from the moving means than "
                   "shuffled ones", v["mismatch", "sorted"] > 3 * v["mismatch", "iid"])]


def sorted_batch_figure(runs: Runs):
    """Test accuracy of every kind and seed, shuffled vs one-class batches."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for i, kind in enumerate(SORTED_KINDS):
        _seed_dots(ax, i - 0.17, runs.values[kind, "iid"], color="tab:blue", width=0.2,
                   label="shuffled batches" if i == 0 else None)
        _seed_dots(ax, i + 0.17, runs.values[kind, "sorted"], color="tab:red", marker="s",
                   width=0.2, label="one-class batches" if i == 0 else None)
    ax.axhline(0.1, color="k", ls=":", lw=1, label="chance")
    ax.set_xticks(range(len(SORTED_KINDS)), [KIND_NAMES[k] for k in SORTED_KINDS])
    ax.set(ylabel="test accuracy (one dot per seed)", ylim=(0, 1.02),
           title="Batches that hold one class")
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    return fig


# ------------------------------------------------ a shifted test set, and its repair

ADAPT_IMAGES = (8, 32, 450)   # how many unlabelled shifted test images the repair sees


def squared(x, noise: float = 0.1, seed: int = 0) -> np.ndarray:
    """A non-affine "camera": x**2 plus Gaussian noise of std ``noise``, clipped to [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    return np.clip(x ** 2 + noise * np.random.default_rng(seed).standard_normal(x.shape), 0.0, 1.0)


def adapted_accuracy(model, x, y, n_images: int, seed: int = 0) -> float:
    """Test accuracy on x after :func:`precise_statistics` on ``n_images`` random rows of x.

    The model is put back as it was afterwards (:func:`bnlib.nn.restore_on_exit`).
    """
    rows = np.random.default_rng(seed).permutation(len(x))[:n_images]
    with nn.restore_on_exit(model):
        precise_statistics(model, x[rows])
        return nn.accuracy(model, x, y)


def affine_repair_gap(model, x) -> float:
    """max |logits| difference: the net adapted to the affine shift of x vs adapted to x itself.

    An affine shift of the pixels is an affine shift of each first-layer unit, which
    normalizing with the shifted images' own statistics undoes exactly up to ε.
    """
    with nn.restore_on_exit(model):
        precise_statistics(model, x)
        clean = model.forward(x, training=False)
        precise_statistics(model, shifted(x))
        return float(np.max(np.abs(model.forward(shifted(x), training=False) - clean)))


def shift_table(seeds: Sequence[int]) -> Runs:
    """The batch-norm net of :func:`trained` on the clean and two shifted test sets, every seed.

    Returns
    -------
    Runs with values of shape (n_seeds,): "mismatch clean", "mismatch shifted"
    (:func:`first_layer_mismatch`), "clean", "shifted" (test accuracy, affine shift
    :func:`shifted`), "squared" (the non-affine :func:`squared`), "adapted n" and
    "squared adapted n" for n in :data:`ADAPT_IMAGES` (:func:`adapted_accuracy`),
    "repair gap" (:func:`affine_repair_gap`, on the clean test images).
    """
    seeds = tuple(int(s) for s in seeds)
    split = digits()
    x_shift, x_sq = shifted(split.x_test), squared(split.x_test)
    names = (["mismatch clean", "mismatch shifted", "clean", "shifted", "squared"]
             + [f"adapted {n}" for n in ADAPT_IMAGES]
             + [f"squared adapted {n}" for n in ADAPT_IMAGES] + ["repair gap"])

    def run(seed):
        net = trained("batch", seed=seed)
        y = split.y_test
        return ([first_layer_mismatch(net, split.x_test), first_layer_mismatch(net, x_shift),
                 nn.accuracy(net, split.x_test, y), nn.accuracy(net, x_shift, y),
                 nn.accuracy(net, x_sq, y)]
                + [adapted_accuracy(net, x_shift, y, n, seed) for n in ADAPT_IMAGES]
                + [adapted_accuracy(net, x_sq, y, n, seed) for n in ADAPT_IMAGES]
                + [affine_repair_gap(net, split.x_test)])
    table = over_seeds(run, seeds)
    return Runs(seeds, {name: table[:, i] for i, name in enumerate(names)})


def shift_lines(runs: Runs) -> list:
    v = runs.values
    return [f"median (lowest to highest) over {len(runs.seeds)} seeds",
            f"first-layer mean mismatch (std units): clean {_short(v['mismatch clean'])}, "
            f"shifted {_short(v['mismatch shifted'])}",
            f"test accuracy: clean {_short(v['clean'])}, shifted {_short(v['shifted'])}"]


def shift_claims(runs: Runs) -> list:
    v = runs.values
    return [
        _claim("the shifted images' first-layer means sit over 4x further from the moving means",
               v["mismatch shifted"] > 4 * v["mismatch clean"]),
        _claim("the shift costs over 5 points of test accuracy", v["clean"] - v["shifted"] > 0.05),
    ]


def adaptation_lines(runs: Runs) -> list:
    """Test accuracy after the repair, per shift and number of images it sees."""
    v = runs.values
    lines = [f"test accuracy, median (lowest to highest) over {len(runs.seeds)} seeds; "
             f"clean {_short(v['clean'])}"]
    for key, name in (("", "0.6 x + 0.3 (affine)"), ("squared ", "x² + noise (not affine)")):
        first = "shifted" if not key else "squared"
        lines.append(f"{name:24s}: no repair {_short(v[first])}, "
                     + ", ".join(f"{n} images {_short(v[f'{key}adapted {n}'])}"
                                 for n in ADAPT_IMAGES))
    return lines


def adaptation_claims(runs: Runs) -> list:
    """The repair: statistics recomputed on the shifted images (AdaBN), and when it works."""
    v = runs.values
    n_all = ADAPT_IMAGES[-1]
    aff_loss, sq_loss = v["clean"] - v["shifted"], v["clean"] - v["squared"]
    aff_left, sq_left = v["clean"] - v[f"adapted {n_all}"], v["clean"] - v[f"squared adapted {n_all}"]
    return [
        _claim(f"affine shift: statistics from all {n_all} shifted images bring it back within "
               "2 points of clean", aff_left < 0.02,
               f"adapted accuracy {spread(v[f'adapted {n_all}'])}"),
        _claim("affine shift: 32 images already repair over half of the loss",
               v["clean"] - v["adapted 32"] < 0.5 * aff_loss),
        Claim("8 images are too few: the median repair with 8 is over 5 points worse than with 32",
              bool(np.median(v["adapted 32"]) - np.median(v["adapted 8"]) > 0.05),
              f"8 images {spread(v['adapted 8'])}"),
        _claim("x² + noise costs over 1.5 points", sq_loss > 0.015),
        Claim(f"x² + noise: statistics from all {n_all} images gain on the median",
              bool(np.median(v[f"squared adapted {n_all}"] - v["squared"]) > 0),
              f"gain {spread(v[f'squared adapted {n_all}'] - v['squared'], '+.3f')}"),
        _claim("but after the repair x² + noise stays further from clean than the affine shift",
               sq_left > aff_left,
               f"left: affine {spread(aff_left, '+.3f')}, x² + noise {spread(sq_left, '+.3f')}"),
    ]


# ------------------------------------------------ precise statistics after a short training

PRECISE_STEPS = (30, 50, 100, 200, 400)


def precise_gain_table(seeds: Sequence[int], steps=PRECISE_STEPS) -> Runs:
    """Test accuracy with moving vs precise statistics after short trainings (momentum 0.99).

    Returns
    -------
    Runs with settings = steps and values "moving", "precise" of shape (n_seeds, len(steps)).
    """
    seeds = tuple(int(s) for s in seeds)
    split = digits()

    def run(seed):
        out = []
        for n in steps:
            net = trained("batch", steps=int(n), seed=seed)
            before = nn.accuracy(net, split.x_test, split.y_test)
            with nn.restore_on_exit(net):
                precise_statistics(net, split.x_train)
                out.append((before, nn.accuracy(net, split.x_test, split.y_test)))
        return out
    table = over_seeds(run, seeds)
    return Runs(seeds, {"moving": table[:, :, 0], "precise": table[:, :, 1]},
                tuple(int(n) for n in steps))


def precise_gain_lines(runs: Runs) -> list:
    lines = [f"test accuracy, median (lowest to highest) over {len(runs.seeds)} seeds"]
    for j, n in enumerate(runs.settings):
        moving, precise = runs.values["moving"][:, j], runs.values["precise"][:, j]
        lines.append(f"{n:3d} steps: moving statistics {_short(moving)}, precise "
                     f"{_short(precise)}, gain {_short(precise - moving, '+.2f')}")
    return lines


def precise_gain_claims(runs: Runs) -> list:
    gain = runs.values["precise"] - runs.values["moving"]
    first, last = runs.settings[0], runs.settings[-1]
    return [
        _claim(f"after {first} steps, precise statistics add over 5 points", gain[:, 0] > 0.05),
        _claim(f"after {last} steps, past the warm-up, they change it by under 2 points",
               np.abs(gain[:, -1]) < 0.02),
        _claim("they never cost more than a point", gain > -0.01),
    ]


def precise_gain_figure(runs: Runs):
    """Test accuracy with moving and precise statistics against training steps, every seed."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    x = np.array(runs.settings)
    _seed_lines(ax, x, runs.values["moving"], color="C0", label="moving statistics")
    _seed_lines(ax, x, runs.values["precise"], color="C3", marker="s", label="precise statistics")
    ax.set_xscale("log")
    ax.set_xticks(x, [str(n) for n in x])
    ax.minorticks_off()
    ax.set(xlabel="SGD steps (momentum 0.99)", ylabel="test accuracy",
           title="Precise statistics repair stale averages")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------ batch renormalization (Keras renorm=True)

def keras():
    """Keras, imported quietly through :mod:`bnlib.tf_compare` (TensorFlow only when called)."""
    from bnlib import tf_compare

    return tf_compare.keras


def renorm_reference(x, renorm_mean, renorm_stddev, clipping=None, eps: float = 1e-3):
    """Batch renormalization's training-mode output (gamma = 1, beta = 0), in NumPy.

    x_hat = (x - batch mean) / sqrt(batch var + eps), then x_hat * r + d with
    r = batch std / renorm_stddev clipped to [rmin, rmax] and
    d = (batch mean - renorm_mean) / renorm_stddev clipped to [-dmax, dmax]
    (Ioffe 2017; the missing keys of ``clipping`` mean no clip, as in Keras).

    Returns (out, r, d): out of x's shape (N, D), r and d of shape (D,).
    """
    clipping = clipping or {}
    x = np.asarray(x, dtype=np.float64)
    mean, std = x.mean(axis=0), np.sqrt(x.var(axis=0) + eps)
    r = np.clip(std / renorm_stddev, clipping.get("rmin", 0.0), clipping.get("rmax", np.inf))
    dmax = clipping.get("dmax", np.inf)
    d = np.clip((mean - renorm_mean) / renorm_stddev, -dmax, dmax)
    return (x - mean) / std * r + d, r, d


# ------------------------------------------------ what the source notes get wrong

def dropout_mask_facts(seed: int = 0) -> dict:
    """What a dropout layer multiplies: one training-mode pass of a net with :class:`Dropout`.

    Returns dict: "mask shape" (of the first dropout layer's mask), "activations shape"
    (of the values it multiplies), "distinct rows" (how many examples of the batch got
    different masks), "weights unchanged" (the dense weights after the pass equal those
    before), "batch size".
    """
    split = digits()
    model = mlp("dropout", seed=seed)
    before = [W.copy() for W in model.weights]
    with nn.restore_on_exit(model):
        model.forward(split.x_train[:32], training=True)
        mask = model.norms[0].mask
    return {"mask shape": mask.shape, "activations shape": (32, model.sizes[1]),
            "distinct rows": len({row.tobytes() for row in mask}), "batch size": 32,
            "weights unchanged": all(np.array_equal(a, b) for a, b in zip(before, model.weights))}


def per_unit_batch_std(seed: int = 0, batch_size: int = 32) -> np.ndarray:
    """The batch standard deviations a trained net's first batch norm divides by, one per unit.

    Returns ndarray of shape (64,): the std over one batch of each unit's input.
    """
    split = digits()
    model = trained("batch", seed=seed)
    rows = nn.batch_indices(len(split.x_train), 1, batch_size, seed)[0]
    return (split.x_train[rows] @ model.weights[0]).std(axis=0)


def statistics_sources(seed: int = 0) -> dict:
    """Where inference-time statistics come from, for the second batch norm of :func:`trained`.

    Returns dict of floats, each a mean over units of |a - b| / sqrt(precise variance):
    "moving vs precise": the moving mean against the exact mean of the layer's input over
    the training set, with the trained weights (see :func:`precise_statistics`);
    "initial vs precise": the same exact mean computed with the initial weights (what
    statistics "of the training set" fixed before training would be).
    """
    split = digits()
    net = trained("batch", seed=seed)
    moving = net.norms[1].moving_mean.copy()
    with nn.restore_on_exit(net):
        precise_statistics(net, split.x_train)
        mean, std = net.norms[1].moving_mean.copy(), np.sqrt(net.norms[1].moving_variance)
    fresh = mlp("batch", seed=seed)
    precise_statistics(fresh, split.x_train)
    return {"moving vs precise": float(np.mean(np.abs(moving - mean) / std)),
            "initial vs precise": float(np.mean(np.abs(fresh.norms[1].moving_mean - mean) / std))}

