"""Lesson 08: the noise in batch statistics, the costs, and batches that mislead.

Pure NumPy on top of :mod:`bnlib.nn`. The experiments are small (a few hundred
SGD steps on the digits) and cached on their arguments, so a lesson can print
and check their numbers without paying for them twice.
"""
from __future__ import annotations

import copy
import functools

import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

from bnlib import nn, widgets
from bnlib.data import Split, digits
from bnlib.layernorm import GroupNorm, LayerNorm

BATCH_GRID = (2, 4, 8, 16, 32, 64, 128, 256)
N_BATCHES = 2000                    # random batches per batch size in batch_noise
HIST_BINS, HIST_RANGE = 68, (-3.0, 5.5)  # the noise explorer's histogram of one example's output
BAR_WIDTH = 0.08                    # the dropout bars beside it
EXAMPLE_YMAX = 1890.0               # 1.05 x the tallest dropout bar, 0.9 x N_BATCHES (rate 0.1)


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
    1/sqrt(m); shuffled epochs, without replacement, give slightly less).

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
    """Std of the mean of m independent draws, in population-std units: 1 / sqrt(m)."""
    return float(1.0 / np.sqrt(batch_size))


def scale_noise_law(batch_size: int, kurtosis: float) -> float:
    """Large-m std of sigma / sigma_batch: sqrt((kurtosis - 1) / (4 m)) (3 for a Gaussian)."""
    return float(np.sqrt((kurtosis - 1.0) / (4.0 * batch_size)))


def dropout_noise_std(rate: float) -> float:
    """Std of dropout's multiplicative factor Bernoulli(1 - rate) / (1 - rate)."""
    return float(np.sqrt(rate / (1.0 - rate)))


def noise_summary(batch_size: int) -> dict:
    """The numbers the noise explorer prints, for a batch size."""
    r = batch_noise(int(batch_size))
    return {"shift_std": float(r["shift"].std()), "shift_law": mean_noise_law(batch_size),
            "scale_std": float(r["scale"].std()),
            "scale_law": scale_noise_law(batch_size, r["kurtosis"]),
            "output_std": float(r["output"].std()), "ideal": r["ideal"]}


def noise_readout(batch_size: int, dropout_rate: float) -> str:
    """The noise explorer's two lines of numbers, for a batch size and a dropout rate."""
    s = noise_summary(batch_size)
    return (f"m={batch_size}: batch-mean noise {s['shift_std']:.3f} (1/sqrt(m) law "
            f"{s['shift_law']:.3f}); scale noise {s['scale_std']:.3f} (large-m law "
            f"{s['scale_law']:.3f})\n"
            f"one example's output: ideal {s['ideal']:.2f}, spread {s['output_std']:.3f}; "
            f"dropout {dropout_rate:.2f} multiplies by a factor with std "
            f"{dropout_noise_std(dropout_rate):.2f}")


class NoiseScene(widgets.Scene):
    """One example's batch-norm output across batches, and noise std against batch size."""

    def build(self) -> None:
        self.fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.2))
        self._build_example(ax0)
        self._build_laws(ax1)
        self.fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.9, wspace=0.3)

    def _build_example(self, ax) -> None:
        # one filled step artist instead of 68 bar patches: several times faster to draw
        edges = np.linspace(*HIST_RANGE, HIST_BINS + 1)
        self.hist = self.live(ax.stairs(np.zeros(HIST_BINS), edges, fill=True, color="tab:blue",
                                        alpha=0.8, label=" "))
        self.bars = ax.bar([0.0, 1.0], [0.0, 0.0], width=BAR_WIDTH, color="tab:orange", label=" ")
        for bar in self.bars:
            self.live(bar)
        # static, but drawn over the histogram as in a full draw, so it is live too
        self.live(ax.axvline(ideal_output(), color="k", ls="--", lw=1,
                             label="population statistics"))
        self.example_legend = self.live(ax.legend(fontsize=7))
        ax.set(xlabel="normalized value of one example", ylabel="batches",
               title="one example, many random batches")
        # the histogram's range with matplotlib's 5% margins; the tallest bar at any setting
        # is 1800 (dropout 0.1 keeps 90% of 2000), the tallest bin 1571 (m=2)
        span = HIST_RANGE[1] - HIST_RANGE[0]
        ax.set_xlim(HIST_RANGE[0] - 0.05 * span, HIST_RANGE[1] + 0.05 * span)
        ax.set_ylim(0, EXAMPLE_YMAX)

    def _build_laws(self, ax) -> None:
        grid = np.array(BATCH_GRID)
        ax.loglog(grid, [batch_noise(int(m))["shift"].std() for m in grid], "o-",
                  color="tab:blue", label="batch mean (measured)")
        ax.loglog(grid, [mean_noise_law(int(m)) for m in grid], "k--", label="1/sqrt(m) law")
        ax.loglog(grid, [batch_noise(int(m))["scale"].std() for m in grid], "s-",
                  color="tab:green", label="sigma / batch std (measured)")
        ax.set_xlim(ax.get_xlim())  # the grid's, which contains every slider batch size
        ax.set_ylim(0.02, 3)  # dropout's std is 0.33 to 2 over the slider's rates
        ax.minorticks_off()
        self.dropout_line = self.live(ax.axhline(1.0, color="tab:orange", label="dropout factor"))
        self.batch_line = self.live(ax.axvline(BATCH_GRID[0], color="tab:red", ls=":"))
        self.live(ax.legend(fontsize=7))
        ax.set(xlabel="batch size m", ylabel="std (population-std units)",
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
        texts[0].set_text(f"batch norm, m={batch_size}")
        texts[2].set_text(f"dropout {dropout_rate:.2f} (no BN)")
        self.dropout_line.set_ydata([dropout_noise_std(dropout_rate)] * 2)
        self.batch_line.set_xdata([batch_size] * 2)
        return noise_readout(batch_size, dropout_rate)


def noise_view(batch_size: int = 32, dropout_rate: float = 0.5):
    """Example 0's batch-norm output across batches, and noise std against batch size.

    Returns
    -------
    fig : matplotlib Figure
    text : str
        The measured noise of the batch mean and scale next to their laws, and
        the dropout factor's std.
    """
    return NoiseScene().render(batch_size=batch_size, dropout_rate=dropout_rate)


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
    probe = copy.deepcopy(model)          # training mode would move the moving statistics
    order = np.random.default_rng(seed).permutation(len(x))
    n = len(x) // batch_size * batch_size
    hits = [probe.forward(x[r], training=True).argmax(1) == y[r]
            for r in order[:n].reshape(-1, batch_size)]
    return float(np.mean(hits))


def mlp(kind: str, *, sizes=(64, 64, 64, 10), seed: int = 0, momentum: float = 0.99,
        position: str = "before", activation: str = "relu"):
    """An nn.MLP with the normalization ``kind`` of :func:`make_norm`."""
    return nn.MLP(sizes, activation=activation, norm=make_norm(kind, seed=seed, momentum=momentum),
                  norm_position=position, seed=seed, momentum=momentum)


@functools.lru_cache(maxsize=None)
def small_batch_run(kind: str, batch_size: int, epochs: int = 3, seed: int = 0) -> dict:
    """Train a 64-64-64-10 ReLU net with ``kind`` normalization at a batch size (momentum 0.9).

    Returns dict: "inference" test accuracy, "batch_mode" accuracy on test batches
    of the training batch size, "precise" accuracy after :func:`precise_statistics`
    (batch norm only; else equal to "inference").
    """
    split = digits()
    model = mlp(kind, seed=seed, momentum=0.9)
    steps = int(epochs * len(split.x_train) / batch_size)
    train_on_batches(model, split, nn.batch_indices(len(split.x_train), steps, batch_size, seed))
    out = {"inference": nn.accuracy(model, split.x_test, split.y_test),
           "batch_mode": batch_mode_accuracy(model, split.x_test, split.y_test, batch_size)}
    if kind == "batch":
        precise_statistics(model, split.x_train)
    out["precise"] = nn.accuracy(model, split.x_test, split.y_test)
    return out


@functools.lru_cache(maxsize=None)
def trained(kind: str, order: str = "iid", steps: int = 400, batch_size: int = 32,
            seed: int = 0, momentum: float = 0.99):
    """A 64-64-64-10 ReLU net trained for ``steps`` SGD steps on i.i.d. or class-sorted batches."""
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


@functools.lru_cache(maxsize=None)
def regularization_run(kind: str, n_train: int, seed: int = 0, steps: int = 600) -> tuple:
    """(train accuracy, test accuracy) of a 64-128-128-10 ReLU net, norm after the activation."""
    split = subset(n_train, seed)
    model = nn.MLP((64, 128, 128, 10), activation="relu", norm_position="after", seed=seed,
                   norm=make_norm(kind, seed=seed, momentum=0.9), momentum=0.9)
    nn.train(model, split, steps=steps, batch_size=32, lr=0.05, seed=seed, eval_every=steps)
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
