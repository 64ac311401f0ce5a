"""Lesson 09: batch norm in convolutional networks, its experiments, figures and explorers.

In the lesson's order:

1. Which axes: the statistics of batch, layer, instance and group norm, and the
   worksheet's per-pixel ones, on one batch of feature maps (:func:`statistics`).
2. How noisy: a channel's batch statistics pool N * H * W values of correlated
   pixels; measured on random batches of digit feature maps (:func:`batch_noise`,
   the :class:`NoiseScene` explorer: batch size and spatial size).
3. Training: the small CNN of :mod:`bnlib.cnn` on the 8x8 digits with and without
   batch norm, over seeds and learning rates (:func:`run`). Every run the lesson
   shows is trained ahead of time into ``runs.npz`` beside this file
   (``python -m bnlib.lessons.lesson09.explore``), which the lesson and the
   :class:`TrainScene` explorer read; the tests compare it with fresh training.
4. Folding: an inference-mode batch norm folded into the convolution before it
   (:func:`fold_cnn`).

Pure NumPy: the Keras side is in :mod:`bnlib.lessons.lesson09.keras_conv`.
"""
from __future__ import annotations

import copy
import inspect
import itertools
import time
from functools import lru_cache
from pathlib import Path

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

from bnlib import cnn, conv, nn
from bnlib.course import plots, tables, widgets
from bnlib.batchnorm import batchnorm_forward
from bnlib.data import Split
from bnlib.layernorm import group_norm_forward

EPS = 1e-3                       # Keras's epsilon, everywhere in this lesson


@lru_cache(maxsize=1)
def digit_images() -> Split:
    """The digits as (N, 8, 8, 1) images in [0, 1] (cached): 1,347 for training, 450 for test."""
    return cnn.digit_images()


def random_kernel(c_in: int, c_out: int, seed: int = 0) -> np.ndarray:
    """A He-normal 3x3 kernel of shape (3, 3, c_in, c_out), std sqrt(2 / (9 c_in))."""
    return np.sqrt(2.0 / (9 * c_in)) * np.random.default_rng(seed).standard_normal(
        (3, 3, c_in, c_out))


@lru_cache(maxsize=8)
def feature_maps(seed: int = 0, channels: int = 8) -> np.ndarray:
    """The training digits through one random 3x3 convolution ('same', no bias).

    Returns ndarray of shape (1347, 8, 8, channels): what the first batch-norm layer
    of a CNN sees at initialization. Treat as read-only (cached).
    """
    out, _ = conv.conv2d_forward(digit_images().x_train, random_kernel(1, channels, seed))
    out.setflags(write=False)
    return out


# ---------------------------------------------------------------- 1. which axes

NORM_KINDS = ("batch", "per-pixel", "layer", "instance", "group")
# the axes of (N, H, W, G, C/G) each kind averages over (G = 1 group except for group norm)
_REDUCED = {"batch": (0, 1, 2), "per-pixel": (0,), "layer": (1, 2, 3, 4),
            "instance": (1, 2, 4), "group": (1, 2, 4)}


def statistics(x, kind: str, groups: int = 4):
    """Mean and (biased) variance of each normalization kind, from the formula.

    Parameters
    ----------
    x : ndarray of shape (N, H, W, C)
    kind : {"batch", "per-pixel", "layer", "instance", "group"}
        batch: per channel over N, H, W (batch norm after a convolution);
        per-pixel: per pixel and channel over N (the worksheet's case 3, a dense
        layer's batch norm); layer: per example over H, W, C; instance: per
        example and channel over H, W; group: per example and group of C // groups
        channels over H, W.
    groups : int
        Number of channel groups of group norm (must divide C).

    Returns
    -------
    mean, var : ndarray
        Of shape (C,), (H, W, C), (N,), (N, C) or (N, groups).
    count : int
        How many values each statistic averages.
    """
    if kind not in NORM_KINDS:
        raise ValueError(f"kind must be one of {NORM_KINDS}; got {kind!r}")
    x = np.asarray(x, dtype=np.float64)
    n, h, w, c = x.shape
    g = groups if kind == "group" else (c if kind == "instance" else 1)
    if c % g:
        raise ValueError(f"groups must divide the {c} channels; got {groups}")
    xg = x.reshape(n, h, w, g, c // g)
    axes = _REDUCED[kind]
    mean, var = xg.mean(axis=axes), xg.var(axis=axes)
    count = int(np.prod([xg.shape[a] for a in axes]))
    kept = {"batch": (c,), "per-pixel": (h, w, c), "layer": (n,), "instance": (n, c),
            "group": (n, g)}[kind]
    mean, var = mean.reshape(kept), var.reshape(kept)
    return mean, var, count


def bnlib_normalize(x, kind: str, groups: int = 4, eps: float = EPS) -> np.ndarray:
    """The same normalization through bnlib (gamma 1, beta 0): batchnorm or group_norm_forward.

    batch: ``batchnorm_forward(axis=-1)``; per-pixel: ``axis=(1, 2, 3)``; layer,
    instance and group: ``group_norm_forward`` with 1, C and ``groups`` groups.
    Returns ndarray of the shape of x.
    """
    x = np.asarray(x, dtype=np.float64)
    c = x.shape[-1]
    if kind in ("batch", "per-pixel"):
        axis = -1 if kind == "batch" else (1, 2, 3)
        shape = (c,) if kind == "batch" else x.shape[1:]
        out, _, _, _ = batchnorm_forward(x, np.ones(shape), np.zeros(shape), np.zeros(shape),
                                         np.ones(shape), training=True, eps=eps, axis=axis)
        return out
    g = {"layer": 1, "instance": c, "group": groups}[kind]
    out, _ = group_norm_forward(x, np.ones(c), np.zeros(c), g, eps)
    return out


def normalize_by_formula(x, kind: str, groups: int = 4, eps: float = EPS) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) with the :func:`statistics` of ``kind``, broadcast back."""
    x = np.asarray(x, dtype=np.float64)
    n, h, w, c = x.shape
    mean, var, _ = statistics(x, kind, groups)
    if kind == "batch":
        shape = (1, 1, 1, c)
    elif kind == "per-pixel":
        shape = (1, h, w, c)
    elif kind == "instance":
        shape = (n, 1, 1, c)
    else:   # one value per example (layer) or per example and group: repeat over the group
        mean, var = mean.reshape(n, -1), var.reshape(n, -1)
        per = c // mean.shape[1]
        mean, var = np.repeat(mean, per, axis=1), np.repeat(var, per, axis=1)
        shape = (n, 1, 1, c)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)


# ---------------------------------------------------------------- 2. how noisy

NOISE_CHANNEL = 0                # the channel of feature_maps() the noise experiments follow
SPATIAL_SIZES = tuple(range(1, 9))
BATCH_GRID = (2, 4, 8, 16, 32, 64, 128, 256)
N_BATCHES = 2000                 # random batches per setting
CENTRE = (3, 3)                  # the pixel every central crop contains
TABLE_SEEDS_NOISE = (0, 1, 2, 3, 4)   # random convolutions the noise claims are checked on


def crop(size: int, channel: int = NOISE_CHANNEL, seed: int = 0) -> np.ndarray:
    """One channel of :func:`feature_maps`, cropped to the central size x size pixels.

    Returns ndarray of shape (1347, size, size).
    """
    if size not in SPATIAL_SIZES:
        raise ValueError(f"size must be one of {SPATIAL_SIZES}; got {size!r}")
    lo = (8 - size) // 2
    return feature_maps(seed)[:, lo:lo + size, lo:lo + size, channel]


@lru_cache(maxsize=None)
def population(size: int, channel: int = NOISE_CHANNEL, seed: int = 0) -> tuple:
    """(mean, std) of the crop's values over the whole training set."""
    values = crop(size, channel, seed)
    return float(values.mean()), float(values.std())


@lru_cache(maxsize=None)
def example_image(channel: int = NOISE_CHANNEL, seed: int = 0) -> int:
    """The training image whose centre pixel sits closest to one std above the mean (full map)."""
    values = crop(8, channel, seed)
    mean, std = population(8, channel, seed)
    return int(np.argmin(np.abs(values[:, CENTRE[0], CENTRE[1]] - (mean + std))))


@lru_cache(maxsize=None)
def batch_noise(batch_size: int, size: int, channel: int = NOISE_CHANNEL, seed: int = 0,
                n_batches: int = N_BATCHES) -> dict:
    """The batch statistics of one channel over random batches of ``batch_size`` images.

    A batch's statistics pool the ``batch_size * size**2`` values of the channel's
    central crops. Images are drawn with replacement (so the spread of the batch
    mean is exactly the images' spread over sqrt(N)). ``seed`` picks the random
    convolution of :func:`feature_maps` (and seeds the batches).

    Returns
    -------
    dict with arrays of shape (n_batches,):
        "shift": (batch mean - population mean) / population std, over batches of
        ``batch_size`` random images;
        "scale": population std / sqrt(batch variance + eps), same batches;
        "output": the centre pixel of :func:`example_image` normalized with the
        statistics of batches made of that image and ``batch_size - 1`` random others
        (what training mode computes for it);
    and floats "ideal": that pixel normalized with the population statistics
    (about what inference mode computes), "count": values per statistic,
    "image_spread": std of the per-image means of the crop, in population stds.
    """
    values = crop(size, channel, seed)
    m1 = values.mean(axis=(1, 2))
    m2 = (values * values).mean(axis=(1, 2))
    mean, std = population(size, channel, seed)
    rows = np.random.default_rng([seed, batch_size, size, channel]).integers(
        0, len(values), size=(n_batches, batch_size))

    def moments(r):
        b_mean = m1[r].mean(axis=1)
        return b_mean, np.maximum(m2[r].mean(axis=1) - b_mean * b_mean, 0.0)

    b_mean, b_var = moments(rows)
    example = example_image(channel, seed)
    rows[:, 0] = example
    o_mean, o_var = moments(rows)
    lo = (8 - size) // 2
    pixel = values[example, CENTRE[0] - lo, CENTRE[1] - lo]
    return {"shift": (b_mean - mean) / std, "scale": std / np.sqrt(b_var + EPS),
            "output": (pixel - o_mean) / np.sqrt(o_var + EPS),
            "ideal": float((pixel - mean) / np.sqrt(std ** 2 + EPS)),
            "count": batch_size * size * size, "image_spread": float(m1.std() / std)}


def noise_summary(batch_size: int, size: int, channel: int = NOISE_CHANNEL,
                  seed: int = 0) -> dict:
    """The numbers the noise explorer prints for one setting (see :func:`batch_noise`).

    Returns
    -------
    dict with
        "spread": std of the batch mean across batches, in population stds;
        "per_image_law": 1/sqrt(N), the spread if each image gave one value (a dense layer);
        "iid_law": 1/sqrt(N * size**2), the spread if all N * H * W values were independent;
        "image_law": image_spread / sqrt(N), the spread the images' own averages predict;
        "effective": 1 / spread**2, how many independent values the batch mean is worth;
        "scale_spread": std across batches of population std / batch std;
        "output_spread": std across batches of the example pixel's training-mode output;
        "near_unit": fraction of batches in which that output is within 0.1 of +1 or -1;
        "ideal", "count", "image_spread": as in :func:`batch_noise`.
    """
    r = batch_noise(int(batch_size), int(size), int(channel), int(seed))
    spread = float(r["shift"].std())
    return {"spread": spread, "per_image_law": float(1 / np.sqrt(batch_size)),
            "iid_law": float(1 / np.sqrt(r["count"])),
            "image_law": r["image_spread"] / float(np.sqrt(batch_size)),
            "effective": 1.0 / spread ** 2, "scale_spread": float(r["scale"].std()),
            "output_spread": float(r["output"].std()),
            "near_unit": float(np.mean(np.abs(np.abs(r["output"]) - 1.0) < 0.1)),
            "ideal": r["ideal"], "count": r["count"], "image_spread": r["image_spread"]}


def noise_readout(batch_size: int, size: int) -> str:
    """The noise explorer's three lines for one setting."""
    s = noise_summary(batch_size, size)
    return (f"N = {batch_size} images x {size}x{size} positions = {s['count']} values per "
            f"channel statistic; spread of the batch mean: {s['spread']:.3f} std\n"
            f"  laws: one value per image 1/sqrt(N) = {s['per_image_law']:.3f}; "
            f"{s['count']} independent values {s['iid_law']:.3f}; the images' own averages "
            f"{s['image_spread']:.3f}/sqrt(N) = {s['image_law']:.3f}\n"
            f"the centre pixel of one image: {s['ideal']:.2f} at inference, "
            f"{s['ideal']:.2f} ± {s['output_spread']:.3f} in training (across batches)")


def noise_claim(seeds=TABLE_SEEDS_NOISE, channels=range(8), batch_sizes=(2, 16)) -> dict:
    """How a channel's batch statistics on full 8x8 maps compare with the laws, everywhere.

    For every random convolution (seed) and channel, at each batch size of ``batch_sizes``.

    Returns
    -------
    dict of ndarrays of shape (len(seeds), len(channels), len(batch_sizes)):
        "to_iid": spread of the batch mean / 1/sqrt(N * 64) (1: as if all values were
        independent);
        "to_per_image": spread / 1/sqrt(N) (1: as if each image gave one value);
        "output_spread": the spread of one pixel's training-mode output.
    """
    out = {"to_iid": [], "to_per_image": [], "output_spread": []}
    for seed in seeds:
        rows = [[noise_summary(n, 8, c, seed) for n in batch_sizes] for c in channels]
        out["to_iid"].append([[r["spread"] / r["iid_law"] for r in row] for row in rows])
        out["to_per_image"].append([[r["spread"] / r["per_image_law"] for r in row]
                                    for row in rows])
        out["output_spread"].append([[r["output_spread"] for r in row] for row in rows])
    return {name: np.array(values) for name, values in out.items()}


HIST_RANGE, HIST_BINS = (-2.0, 3.0), 100
NOISE_YLIM = (0.0015, 4.0)


class NoiseScene(widgets.Scene):
    """One pixel normalized across random batches, and the spread of the batch mean."""

    def build(self) -> None:
        _, (ax0, ax1) = self.subplots(1, 2, figsize=(9, 3.3), left=0.07, wspace=0.27)
        edges = np.linspace(*HIST_RANGE, HIST_BINS + 1)
        self.hist = self.live(ax0.stairs(np.zeros(HIST_BINS), edges, fill=True,
                                         color="tab:blue", alpha=0.8, label="training mode"))
        self.ideal = self.live(ax0.axvline(1.0, color="k", ls="--", lw=1, label="inference"))
        ax0.legend(loc="upper left", fontsize=8).set_zorder(1.5)
        span = HIST_RANGE[1] - HIST_RANGE[0]
        ax0.set(xlim=(HIST_RANGE[0] - 0.05 * span, HIST_RANGE[1] + 0.05 * span),
                ylim=(0, 1.05 * N_BATCHES), xlabel="normalized value of one pixel",
                ylabel="batches", title="one pixel, 2000 random batches")
        grid = np.array(BATCH_GRID)
        ax1.loglog(grid, 1 / np.sqrt(grid), "k--", lw=1, label="1/sqrt(N): one value per image")
        for size, color in ((1, "0.6"), (8, "0.3")):
            ax1.loglog(grid, [noise_summary(int(n), size)["spread"] for n in grid], "-",
                       color=color, lw=1, label=f"measured, {size}x{size} map")
        self.measured = self.live(ax1.loglog(grid, grid * 0.0 + 1, "o-", color="tab:blue",
                                             ms=4, label="measured, this map")[0])
        self.iid = self.live(ax1.loglog(grid, grid * 0.0 + 1, ":", color="tab:red",
                                        label="1/sqrt(N*H*W): independent values")[0])
        self.point = self.live(ax1.plot([2], [1], "o", color="tab:red", ms=8, mfc="none")[0])
        ax1.legend(loc="upper right", fontsize=7).set_zorder(1.5)
        ax1.set(xlim=(1.6, 320), ylim=NOISE_YLIM, xlabel="batch size N",
                ylabel="spread of the batch mean (stds)", title="noise of a channel's mean")
        ax1.minorticks_off()

    def update(self, batch_size: int = 8, size: int = 8) -> str:
        batch_size, size = int(batch_size), int(size)
        r = batch_noise(batch_size, size)
        self.hist.set_data(np.histogram(r["output"], bins=HIST_BINS, range=HIST_RANGE)[0])
        self.ideal.set_xdata([r["ideal"]] * 2)
        grid = np.array(BATCH_GRID)
        self.measured.set_ydata([noise_summary(int(n), size)["spread"] for n in grid])
        self.iid.set_ydata(1 / np.sqrt(grid * size * size))
        self.point.set_data([batch_size], [noise_summary(batch_size, size)["spread"]])
        return noise_readout(batch_size, size)


def noise_explorer() -> widgets.Explorer:
    """Batch size and spatial size -> the noise of one channel's batch statistics."""
    style = {"description_width": "initial"}
    return widgets.Explorer(NoiseScene(), {
        "batch_size": ipywidgets.SelectionSlider(options=BATCH_GRID, value=8,
                                                 description="batch size N", style=style),
        "size": widgets.int_slider(8, 1, 8, 1, "feature map H = W")},
        title="How noisy are a channel's batch statistics?")


# ---------------------------------------------------------------- 3. training

CHANNELS, STRIDES = (8, 16, 32), (1, 2, 1)
LR_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
TABLE_SEEDS = (0, 1, 2, 3, 4)
TRAINS_LOSS = 0.5                # "trains": mean training loss of the last 50 steps below this
STUCK_LOSS = 2.0                 # "does not learn": above this (chance level is ln 10 = 2.30)
RUN_TABLE = Path(__file__).with_name("runs.npz")


def make_model(batch_norm: bool, seed: int = 0, momentum: float = 0.9) -> cnn.CNN:
    """The lesson's CNN: 3x3 convolutions of 8, 16 (stride 2) and 32 channels, each followed
    by batch norm (or not) and ReLU, global average pooling, a dense layer to 10 logits."""
    return cnn.CNN(CHANNELS, strides=STRIDES, norm="batch" if batch_norm else None, seed=seed,
                   momentum=momentum)


@lru_cache(maxsize=256)
def run(batch_norm: bool, lr: float, seed: int = 0, *, steps: int = 400, batch_size: int = 32,
        momentum: float = 0.9, eval_every: int = 25):
    """Train the lesson's CNN on the digits; return ``(model, history)`` (cached, read-only).

    ``history.recorded`` holds the :func:`relu_census` at every evaluation.

    The seed sets the weights and the minibatch order. momentum 0.9 (not Keras's 0.99,
    whose moving averages need about 300 steps to warm up: lesson 07) keeps the
    test accuracy of these 400-step runs a fair picture of the weights.
    """
    return _train(batch_norm, lr, seed, steps, batch_size, momentum, eval_every)


PROBE = 256                      # training images the ReLU census looks at


def relu_census(model: cnn.CNN) -> dict:
    """Fraction of each layer's ReLU inputs that are positive on the first PROBE training
    images, in inference mode: {"alive1": ..., "alive2": ..., "alive3": ...}.

    0 for a layer means every unit of it outputs 0 on every image (dead ReLUs).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        model.forward(digit_images().x_train[:PROBE], training=False)
    return {f"alive{i + 1}": float(np.mean(z > 0)) for i, z in enumerate(model.pre_activations)}


def _train(batch_norm, lr, seed, steps, batch_size, momentum, eval_every, nudge: float = 0.0):
    """:func:`run` without the cache; every initial weight is multiplied by ``1 + nudge``."""
    model = make_model(batch_norm, seed, momentum)
    for p in model.params():
        p *= 1.0 + nudge
    history = nn.train(model, digit_images(), steps=steps, batch_size=batch_size, lr=lr,
                       seed=seed, eval_every=eval_every, record=relu_census)
    return model, history


def run_defaults() -> dict:
    """The settings of :func:`run` after the seed (steps, batch_size, momentum, eval_every)."""
    return {name: p.default for name, p in inspect.signature(run).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def sensitivity(batch_norm: bool, lr: float, seed: int = 0, nudge: float = 1e-15) -> float:
    """Largest relative change of the loss curve when every initial weight is nudged by ``nudge``.

    Near ``nudge``: stable training (another CPU's rounding changes nothing visible);
    order 1: chaotic training (a last-bit difference grows into a different curve).
    """
    base = run(batch_norm, lr, seed)[1]
    nudged = _train(batch_norm, lr, seed, **run_defaults(), nudge=nudge)[1]
    n = min(len(base.loss), len(nudged.loss))
    return float(np.max(np.abs(nudged.loss[:n] - base.loss[:n]) / np.abs(base.loss[:n])))


def final_loss(history: nn.History) -> float:
    """Mean training loss of the last 50 steps (inf if the run diverged)."""
    return float("inf") if history.diverged else float(np.mean(history.loss[-50:]))


def verdict(history: nn.History) -> str:
    """"trains" (final loss below TRAINS_LOSS), "does not learn" (above STUCK_LOSS or
    diverged) or "slow" (in between: still learning at the end)."""
    loss = final_loss(history)
    return "trains" if loss < TRAINS_LOSS else ("does not learn" if loss > STUCK_LOSS
                                                else "slow")


def table_settings() -> list:
    """Every (lr, batch_norm, seed) of the run table."""
    return list(itertools.product(LR_GRID, (False, True), TABLE_SEEDS))


def write_run_table(path=RUN_TABLE) -> None:
    """Train every setting of :func:`table_settings` with :func:`run`; save the histories.

    Saved per run: the loss of each step, the evaluation steps, the test
    accuracies, the ReLU census, the diverged flag and the final
    :func:`precise_accuracy_of`; also the grid and the settings of
    :func:`run_defaults` (:func:`bnlib.course.tables.save`), so a table made with
    other settings is recognized. Compressed .npz, no pickled objects.
    """
    grid = table_settings()
    hists = [run(bn, lr, seed)[1] for lr, bn, seed in grid]
    precise = [precise_accuracy_of(run(bn, lr, seed)[0]) for lr, bn, seed in grid]
    lr, batch_norm, seed = (np.array(column) for column in zip(*grid))
    tables.save(
        path, run_defaults(), lr=lr, batch_norm=batch_norm, seed=seed,
        n_steps=[len(h.loss) for h in hists], loss=tables.padded([h.loss for h in hists], np.nan),
        n_evals=[len(h.eval_step) for h in hists],
        eval_step=tables.padded([h.eval_step for h in hists], -1),
        test_accuracy=tables.padded([h.test_accuracy for h in hists], np.nan),
        diverged=[h.diverged for h in hists], precise_accuracy=precise,
        **{f"recorded_{name}": tables.padded([h.recorded[name] for h in hists], np.nan)
           for name in hists[0].recorded})


@lru_cache(maxsize=2)
def _table_arrays(path=RUN_TABLE) -> dict:
    """The arrays of the run table, or {} (with a warning) if made with other settings."""
    return tables.load(path, run_defaults(), "python -m bnlib.lessons.lesson09.explore")


def _keys(t: dict) -> list:
    return list(zip(t["lr"].tolist(), t["batch_norm"].tolist(), t["seed"].tolist()))


@lru_cache(maxsize=2)
def run_table(path=RUN_TABLE) -> dict:
    """The table of :func:`write_run_table`: (lr, batch_norm, seed) -> History (loaded once).

    Empty, with a warning, if it was made with other settings than :func:`run_defaults`.
    """
    t = _table_arrays(path)
    if not t:
        return {}
    recorded = {name[len("recorded_"):]: t[name] for name in t if name.startswith("recorded_")}
    rows = zip(_keys(t), t["n_steps"], t["loss"], t["n_evals"], t["eval_step"],
               t["test_accuracy"], t["diverged"], range(len(t["lr"])))
    return {key: nn.History(step=np.arange(1, n + 1), loss=loss[:n], eval_step=evals[:m],
                            test_accuracy=acc[:m], diverged=bool(div),
                            recorded={name: values[i, :m] for name, values in recorded.items()})
            for key, n, loss, m, evals, acc, div, i in rows}


def precise_accuracy_of(model: cnn.CNN) -> float:
    """Test accuracy after replacing every batch norm's moving statistics by exact ones.

    Lesson 08's precise batch norm: one training-mode pass over the whole training
    set with momentum 0 (on a copy), so each layer's moving mean and variance become
    the statistics of its input over the training set, given the final weights.
    Without batch norm: the plain test accuracy.
    """
    split = digit_images()
    probe = copy.deepcopy(model)
    if any(n is not None for n in probe.norms):
        for n in probe.norms:
            n.momentum = 0.0
        with np.errstate(over="ignore", invalid="ignore"), \
                threadpool_limits(1, user_api="blas"):
            probe.forward(split.x_train, training=True)
    with threadpool_limits(1, user_api="blas"):
        return nn.accuracy(probe, split.x_test, split.y_test)


def precise_accuracy(batch_norm: bool, lr: float, seed: int, *, fresh: bool = False) -> float:
    """:func:`precise_accuracy_of` the run's final model: from the table unless ``fresh``."""
    t = {} if fresh else _table_arrays()
    if t and "precise_accuracy" in t:
        where = {key: i for i, key in enumerate(_keys(t))}
        i = where.get((float(lr), bool(batch_norm), int(seed)))
        if i is not None:
            return float(t["precise_accuracy"][i])
    return precise_accuracy_of(run(bool(batch_norm), float(lr), int(seed))[0])


def history(batch_norm: bool, lr: float, seed: int, *, fresh: bool = False) -> nn.History:
    """One run's history: from :func:`run_table` unless ``fresh`` or missing, else trained."""
    if not fresh:
        found = run_table().get((float(lr), bool(batch_norm), int(seed)))
        if found is not None:
            return found
    return run(bool(batch_norm), float(lr), int(seed))[1]


def histories(batch_norm: bool, lr: float, seeds=TABLE_SEEDS, *, fresh: bool = False) -> list:
    """:func:`history` for every seed."""
    return [history(batch_norm, lr, s, fresh=fresh) for s in seeds]


def speed_claim(seeds=TABLE_SEEDS, *, lr: float = 0.3, step: int = 100,
                fresh: bool = False) -> dict:
    """Test accuracy and training loss at ``step`` of a learning rate both networks train at.

    Returns
    -------
    dict of variant ("plain", "batch norm") -> dict with ndarrays of shape (n_seeds,):
        "accuracy": test accuracy at the first evaluation at or after ``step``;
        "loss": mean training loss of the 20 steps up to ``step``;
        "final_accuracy": test accuracy at the end.
    """
    out = {}
    for label, bn in (("plain", False), ("batch norm", True)):
        hs = histories(bn, lr, seeds, fresh=fresh)
        out[label] = {"accuracy": np.array([h.accuracy_at(step) for h in hs]),
                      "loss": np.array([np.mean(h.loss[step - 20:step]) for h in hs]),
                      "final_accuracy": np.array([h.final_accuracy for h in hs])}
    return out


def lr_claim(seeds=TABLE_SEEDS, lrs=LR_GRID, *, fresh: bool = False) -> dict:
    """Final training loss of every seed (rows) and learning rate (columns), per variant.

    Returns dict of variant -> ndarray of shape (n_seeds, len(lrs)) (inf: diverged).
    """
    return {label: np.array([[final_loss(history(bn, lr, s, fresh=fresh)) for lr in lrs]
                             for s in seeds])
            for label, bn in (("plain", False), ("batch norm", True))}


def relu_claim(seeds=TABLE_SEEDS, *, lr: float = 3.0, fresh: bool = False) -> dict:
    """The ReLU census at the end of training, per variant: ndarray (n_seeds, 3 layers)."""
    return {label: np.array([[history(bn, lr, s, fresh=fresh).recorded[f"alive{i}"][-1]
                              for i in (1, 2, 3)] for s in seeds])
            for label, bn in (("plain", False), ("batch norm", True))}


def precise_claim(seeds=TABLE_SEEDS, *, lr: float = 3.0, fresh: bool = False) -> dict:
    """Final test accuracy of the batch-norm runs with the moving statistics ("inference")
    and with precise statistics ("precise"), ndarrays of shape (n_seeds,)."""
    return {"inference": np.array([history(True, lr, s, fresh=fresh).final_accuracy
                                   for s in seeds]),
            "precise": np.array([precise_accuracy(True, lr, s, fresh=fresh) for s in seeds])}


def trains_everywhere(losses) -> np.ndarray:
    """Per learning rate (column): True if every seed's final loss is below TRAINS_LOSS."""
    return np.all(np.asarray(losses) < TRAINS_LOSS, axis=0)


def _band(ax, x, rows, color, label):
    """Per-seed thin lines and the median, thick."""
    for row in rows:
        ax.plot(x, row, color=color, lw=0.6, alpha=0.5)
    return ax.plot(x, np.median(rows, axis=0), color=color, lw=2, label=label)[0]


def curves_figure(lr: float = 0.3, seeds=TABLE_SEEDS):
    """Loss (20-step mean) and test accuracy of every seed with and without batch norm."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.3))
    for label, bn, color in (("plain", False, "tab:orange"), ("batch norm", True, "tab:blue")):
        hs = histories(bn, lr, seeds)
        _band(ax0, hs[0].step, [plots.smooth(h.loss) for h in hs], color, f"{label} (median)")
        _band(ax1, hs[0].eval_step, [h.test_accuracy for h in hs], color, f"{label} (median)")
    ax0.set(xlabel="SGD step", ylabel="training loss (20-step mean)", yscale="log",
            title=f"loss, lr {lr:g}, {len(seeds)} seeds")
    ax1.set(xlabel="SGD step", ylabel="test accuracy", ylim=(0, 1),
            title="test accuracy (thin: each seed)")
    ax0.legend()
    ax1.legend(loc="lower right")
    fig.tight_layout()
    return fig


def sweep_figure(losses: dict, lrs=LR_GRID):
    """Final training loss against the learning rate: median and range over seeds."""
    fig, ax = plt.subplots(figsize=(5.5, 3.3))
    for (label, rows), color, shift in zip(losses.items(), ("tab:orange", "tab:blue"),
                                           (0.95, 1.05)):
        rows = np.minimum(np.asarray(rows), 10.0)   # a diverged run drawn at the top
        med = np.median(rows, axis=0)
        x = np.array(lrs) * shift
        ax.errorbar(x, med, yerr=[med - rows.min(axis=0), rows.max(axis=0) - med], fmt="o-",
                    color=color, capsize=3, label=f"{label} (median, range)")
    ax.axhline(TRAINS_LOSS, color="gray", ls=":", label=f"{TRAINS_LOSS:g}: trains below")
    ax.axhline(np.log(10), color="k", ls="--", lw=1, label="chance (ln 10)")
    ax.set(xscale="log", yscale="log", xlabel="learning rate",
           ylabel="training loss, last 50 steps", title=f"400 steps, {len(rows)} seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def step_time(batch_norm: bool, steps: int = 30, repeats: int = 5, batch_size: int = 32) -> float:
    """Best time of ``repeats`` x ``steps`` SGD steps of the lesson's CNN, per step, in seconds."""
    split = digit_images()
    model = make_model(batch_norm)
    rows = nn.batch_indices(len(split.x_train), steps, batch_size)
    best = float("inf")
    with threadpool_limits(1, user_api="blas"):
        for _ in range(repeats):
            start = time.perf_counter()
            for r in rows:
                _, dlogits = nn.softmax_cross_entropy(
                    model.forward(split.x_train[r], training=True), split.y_train[r])
                model.backward(dlogits, input_grad=False)
                nn.sgd_step(model, 0.1)
            best = min(best, (time.perf_counter() - start) / steps)
    return best


TRAIN_LOSS_LIMITS = (0.002, 5.0)
STEP_LIMITS = (-20.0, 420.0)


def train_readout(lr: float) -> str:
    """The training explorer's lines: per variant, the verdicts and the final test accuracy."""
    lines = []
    for label, bn in (("plain     ", False), ("batch norm", True)):
        hs = histories(bn, lr)
        verdicts = [verdict(h) for h in hs]
        counts = ", ".join(f"{verdicts.count(v)} {v}" for v in ("trains", "slow",
                                                                 "does not learn")
                           if verdicts.count(v))
        acc = [h.final_accuracy for h in hs]
        lines.append(f"lr {lr:g}, {label}: {counts} (of {len(hs)} seeds); final test accuracy "
                     f"median {np.median(acc):.0%} ({min(acc):.0%} to {max(acc):.0%})")
    return "\n".join(lines)


class TrainScene(widgets.Scene):
    """Loss and test accuracy of the five table seeds at one learning rate, both networks."""

    def build(self) -> None:
        _, axes = self.subplots(1, 2, figsize=(9, 3.3), top=0.83)
        self.lines = {}
        for bn, color, label in ((False, "tab:orange", "plain"), (True, "tab:blue",
                                                                  "batch norm")):
            for ax, kind in zip(axes, ("loss", "accuracy")):
                thin = [self.live(ax.plot([], [], color=color, lw=0.6, alpha=0.5)[0])
                        for _ in TABLE_SEEDS]
                thick = self.live(ax.plot([], [], color=color, lw=2, label=f"{label} "
                                                                             "(median)")[0])
                self.lines[bn, kind] = (thin, thick)
        axes[0].set(xlabel="SGD step", ylabel="training loss (20-step mean)", yscale="log",
                    xlim=STEP_LIMITS, ylim=TRAIN_LOSS_LIMITS, title="loss (thin: each seed)")
        axes[1].set(xlabel="SGD step", ylabel="test accuracy", xlim=STEP_LIMITS, ylim=(0, 1),
                    title="test accuracy")
        self.title = self.live(self.fig.suptitle(" ", fontsize=10, y=0.99))
        for ax, loc in zip(axes, ("lower left", "lower right")):
            ax.legend(loc=loc, fontsize=8).set_zorder(1.5)

    def update(self, lr: float = 0.3) -> str:
        for bn in (False, True):
            hs = histories(bn, lr)
            for kind, xs, ys in (("loss", [h.step for h in hs], [plots.smooth(h.loss) for h in hs]),
                                 ("accuracy", [h.eval_step for h in hs],
                                  [h.test_accuracy for h in hs])):
                thin, thick = self.lines[bn, kind]
                for line, x, y in zip(thin, xs, ys):
                    line.set_data(x, np.clip(y, *TRAIN_LOSS_LIMITS) if kind == "loss" else y)
                n = min(map(len, ys))    # a diverged run stops early
                median = np.median([y[:n] for y in ys], axis=0)
                thick.set_data(xs[0][:n], np.clip(median, *TRAIN_LOSS_LIMITS)
                               if kind == "loss" else median)
        self.title.set_text(f"the lesson's CNN on the digits, learning rate {lr:g}, "
                            f"{len(TABLE_SEEDS)} seeds (trained ahead of time)")
        return train_readout(lr)


def train_explorer() -> widgets.Explorer:
    """Learning rate -> the five seeds' curves with and without batch norm (from the table)."""
    return widgets.Explorer(TrainScene(), {
        "lr": ipywidgets.SelectionSlider(options=LR_GRID, value=0.3, description="learning rate",
                                         style={"description_width": "initial"})},
        title="A small CNN with and without batch norm, 400 SGD steps")


# ---------------------------------------------------------------- 4. folding

def fold_cnn(model: cnn.CNN) -> cnn.CNN:
    """A norm-free CNN equal to ``model`` (batch norm after each convolution) in inference mode.

    Each convolution's kernel and bias absorb the batch norm after it
    (:func:`bnlib.conv.fold_into_conv`); the dense layer is copied.
    """
    plain = cnn.CNN(model.channels, in_channels=model.kernels[0].shape[2],
                    n_classes=model.W.shape[1], strides=model.strides, norm=None,
                    dtype=model.dtype)
    for i, norm in enumerate(model.norms):
        if norm is None:
            plain.kernels[i], plain.conv_biases[i] = (model.kernels[i].copy(),
                                                      model.conv_biases[i].copy())
        else:
            plain.kernels[i], plain.conv_biases[i] = conv.fold_into_conv(
                model.kernels[i], model.conv_biases[i], norm.gamma, norm.beta,
                norm.moving_mean, norm.moving_variance, norm.eps)
    plain.W, plain.b = model.W.copy(), model.b.copy()
    return plain


if __name__ == "__main__":
    _started = time.perf_counter()
    write_run_table(RUN_TABLE)
    print(f"wrote {RUN_TABLE} ({RUN_TABLE.stat().st_size / 1024:.0f} kB) "
          f"in {time.perf_counter() - _started:.0f} s")
