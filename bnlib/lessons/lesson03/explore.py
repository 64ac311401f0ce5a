"""Lesson 03: the batch-norm forward pass, why gamma and beta, and the moving statistics.

Pure compute functions return numbers and arrays; ``*_figure`` functions draw
the lesson's figures; :func:`statistics_explorer` wires :class:`StatisticsScene`
to sliders (redrawn in place; ``StatisticsScene().render(...)`` draws it once).
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import copy

import matplotlib.pyplot as plt
import numpy as np

from bnlib import data as bn_data
from bnlib import nn
from bnlib.batchnorm import batchnorm_backward, batchnorm_forward
from bnlib.course import widgets
from bnlib.course.seeds import spread
from bnlib.ema import ema
from bnlib.nn import sigmoid

POPULATION_MEAN = 3.0
POPULATION_STD = 2.0


# ----- Why gamma and beta: a unit that needs its inputs away from zero -----

class GammaBetaFit(NamedTuple):
    """Gradient descent on gamma and beta alone (see :func:`fit_gamma_beta`).

    x : ndarray of shape (n, 1)   raw pre-activations
    y : ndarray of shape (n, 1)   0/1 labels
    gamma, beta : ndarray of shape (steps + 1,)   the path, starting at 1 and 0
    loss : ndarray of shape (steps + 1,)          mean cross-entropy along the path
    true_gamma, true_beta : float                 the values the labels were drawn with
    """

    x: np.ndarray
    y: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    loss: np.ndarray
    true_gamma: float
    true_beta: float


def _cross_entropy(z, y) -> float:
    # log(1 + e^z) - y z, written to stay finite for large |z|
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


@lru_cache(maxsize=4)
def fit_gamma_beta(n: int = 1000, steps: int = 400, lr: float = 2.0, true_gamma: float = 4.0,
                   true_beta: float = -4.0, seed: int = 0) -> GammaBetaFit:
    """Learn gamma and beta of one batch-norm unit feeding a sigmoid output.

    The raw inputs are x ~ N(5, 3^2). The label of an example is 1 with
    probability sigmoid(true_gamma * x_hat + true_beta), x_hat being x
    standardized: "yes" only for clearly large inputs, with a sharp
    transition. The unit computes sigmoid(gamma * x_hat + beta) and is
    trained by full-batch gradient descent on the mean cross-entropy, with
    dgamma and dbeta from :func:`bnlib.batchnorm.batchnorm_backward`.

    Returns
    -------
    GammaBetaFit
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(5.0, 3.0, size=(n, 1))
    x_std = (x - x.mean()) / x.std()
    y = (rng.random((n, 1)) < sigmoid(true_gamma * x_std + true_beta)).astype(np.float64)
    gamma, beta = np.ones(1), np.zeros(1)
    stats = (np.zeros(1), np.ones(1))
    path = np.empty((steps + 1, 3))
    for step in range(steps + 1):
        z, cache, _, _ = batchnorm_forward(x, gamma, beta, *stats, training=True, eps=1e-3)
        path[step] = gamma[0], beta[0], _cross_entropy(z, y)
        if step == steps:
            break
        dz = (sigmoid(z) - y) / n  # gradient of the mean cross-entropy w.r.t. z
        _, dgamma, dbeta = batchnorm_backward(dz, cache)
        gamma, beta = gamma - lr * dgamma, beta - lr * dbeta
    return GammaBetaFit(x, y, path[:, 0], path[:, 1], path[:, 2], true_gamma, true_beta)


def fraction_near_zero(fit: GammaBetaFit, gamma: float, beta: float, width: float = 1.0) -> float:
    """Fraction of examples whose sigmoid input gamma * x_hat + beta lies in [-width, width]."""
    x_hat = (fit.x - fit.x.mean()) / fit.x.std()
    return float(np.mean(np.abs(gamma * x_hat + beta) <= width))


def gamma_beta_verdicts(fits) -> dict:
    """The lesson's claims about learning gamma and beta, over fits to several draws of the data.

    Parameters
    ----------
    fits : sequence of GammaBetaFit
        E.g. ``[fit_gamma_beta(seed=s) for s in range(10)]``.

    Returns
    -------
    dict of claim -> (holds on every fit, detail)
    """
    g = np.array([f.gamma[-1] for f in fits])
    b = np.array([f.beta[-1] for f in fits])
    ratio = np.array([f.loss[-1] / f.loss[0] for f in fits])
    before = np.array([fraction_near_zero(f, 1.0, 0.0) for f in fits])
    after = np.array([fraction_near_zero(f, f.gamma[-1], f.beta[-1]) for f in fits])
    true_g, true_b = fits[0].true_gamma, fits[0].true_beta
    return {
        "gradient descent moves far from 1 and 0": (
            bool(np.all(g > 2.5) and np.all(b < -2.5)),
            f"gamma {spread(g, '.1f')}; beta {spread(b, '.1f')}"),
        "the loss drops by more than half": (
            bool(np.all(ratio < 0.5)), f"to at most {ratio.max():.0%} of its start"),
        "most inputs now leave the sigmoid's near-linear middle": (
            bool(np.all(after < 0.25) and np.all(before > 0.25)),
            f"in [-1, 1]: at least {before.min():.0%} before, at most {after.max():.0%} after"),
        f"the learned values scatter around the true {true_g:g} and {true_b:g} (medians within 0.5)": (
            bool(abs(np.median(g) - true_g) < 0.5 and abs(np.median(b) - true_b) < 0.5),
            f"medians {np.median(g):.1f} and {np.median(b):.1f}"),
    }


def gamma_beta_figure(fit: GammaBetaFit):
    """Left: labels and the unit's output before/after learning. Right: the loss."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9.5, 3.4))
    x_hat = ((fit.x - fit.x.mean()) / fit.x.std()).ravel()
    jitter = np.random.default_rng(0).uniform(-0.04, 0.04, x_hat.size)
    ax0.scatter(x_hat, fit.y.ravel() + jitter, s=4, alpha=0.2, color="gray", label="labels")
    grid = np.linspace(x_hat.min(), x_hat.max(), 200)
    for g, b, style, name in ((1.0, 0.0, "-", "start: γ=1, β=0"),
                              (fit.gamma[-1], fit.beta[-1], "-", "learned γ, β"),
                              (fit.true_gamma, fit.true_beta, ":", "rule the labels follow")):
        ax0.plot(grid, sigmoid(g * grid + b), style, lw=2, label=name)
    ax0.set(xlabel="normalized input x̂", ylabel="P(label = 1)",
            title="sigmoid(γ·x̂ + β) before and after")
    ax0.legend(fontsize=8, loc="upper left")
    ax1.plot(fit.loss, color="tab:orange")
    ax1.set(xlabel="gradient-descent step", ylabel="mean cross-entropy",
            title="Training only γ and β", ylim=(0.0, 1.05 * fit.loss.max()))
    fig.tight_layout()
    return fig


# ----- Moving statistics vs the full training set -----

class MovingStats(NamedTuple):
    """One run of the moving-statistics update (see :func:`moving_statistics`).

    Arrays have shape (steps,): the statistics of each batch and the moving
    values after each step. train_mean and train_var are the exact
    statistics of the whole training set.
    """

    batch_mean: np.ndarray
    batch_var: np.ndarray
    moving_mean: np.ndarray
    moving_var: np.ndarray
    train_mean: float
    train_var: float


def training_set(n: int = 4000, seed: int = 0) -> np.ndarray:
    """A one-feature training set of shape (n, 1) drawn from N(3, 2^2)."""
    rng = np.random.default_rng(seed)
    return rng.normal(POPULATION_MEAN, POPULATION_STD, size=(n, 1))


@lru_cache(maxsize=64)
def moving_statistics(momentum: float = 0.99, batch_size: int = 32, steps: int = 500,
                      unbiased: bool = False, seed: int = 0) -> MovingStats:
    """Feed shuffled mini-batches of :func:`training_set` through batch norm in training mode.

    The moving statistics start where Keras starts them (mean 0, variance 1)
    and take one exponential-smoothing step per batch, exactly the update
    :func:`bnlib.batchnorm.batchnorm_forward` applies in training mode
    (computed here for all steps at once with :func:`bnlib.ema.ema`, which is
    faster than a forward call per step). Each epoch is a new shuffle; the
    last incomplete batch of an epoch is dropped.

    Parameters
    ----------
    momentum : float
        Weight on the old moving value.
    batch_size : int
    steps : int
        Number of mini-batches (training steps).
    unbiased : bool
        Update the moving variance with the N - 1 batch variance.
    seed : int

    Returns
    -------
    MovingStats
    """
    data = training_set()[:, 0]
    rng = np.random.default_rng(seed + 1)
    per_epoch = len(data) // batch_size
    epochs = -(-steps // per_epoch)
    order = np.concatenate([rng.permutation(len(data))[:per_epoch * batch_size]
                            for _ in range(epochs)])
    batches = data[order[:steps * batch_size]].reshape(steps, batch_size)
    batch_mean, batch_var = batches.mean(axis=1), batches.var(axis=1)
    var_for_update = batches.var(axis=1, ddof=1) if unbiased else batch_var
    alpha = 1.0 - momentum  # ema() weights the new value; Keras momentum weights the old one
    moving_mean = ema(batch_mean, alpha, y0=0.0)
    moving_var = ema(var_for_update, alpha, y0=1.0)
    return MovingStats(batch_mean, batch_var, moving_mean, moving_var,
                       float(data.mean()), float(data.var()))


# Fixed y limits of the statistics explorer, wide enough for every batch size and momentum
# (tests sweep them): batch means of 2 examples reach -1.6 and 7.6, and the moving variance
# 12.7 (batch of 2, momentum 0.5). Batch variances of tiny batches go higher; they are cut
# off on purpose (as before), or the chi-square tail would squash every other setting.
MEAN_LIMITS = (-2.0, 8.0)
VARIANCE_LIMITS = (0.0, 14.0)


class StatisticsScene(widgets.Scene):
    """Batch statistics scattered around the training-set values, and the moving ones."""

    def build(self) -> None:
        _, axes = self.subplots(1, 2, figsize=(9.5, 3.2), left=0.07, bottom=0.16)
        data = training_set()[:, 0]
        self.panels = []
        for ax, full, name, limits in ((axes[0], data.mean(), "mean", MEAN_LIMITS),
                                       (axes[1], data.var(), "variance", VARIANCE_LIMITS)):
            batch = self.live(ax.scatter([], [], s=4, alpha=0.35, color="tab:blue",
                                         label=f"batch {name}"))
            moving = self.live(ax.plot([], [], color="tab:orange", lw=2,
                                       label=f"moving {name}")[0])
            # live too, so that it stays drawn over the moving line, as in a full draw
            self.live(ax.axhline(full, color="black", ls="--", lw=1,
                                 label=f"training-set {name}"))
            # and the bottom spine, over the dots that sit on it (variances near 0)
            self.live(ax.spines["bottom"])
            title = self.live(ax.set_title(" "))
            ax.set(xlabel="training step", ylabel=name, ylim=limits)
            self.panels.append((ax, batch, moving, title, name))
        # static and under the data (a live legend costs ~12 ms per update): the dots of
        # batches of 2 to 4 reach it, and are drawn over it, as in a full draw
        axes[0].legend(fontsize=8, loc="lower right").set_zorder(0.9)

    def update(self, batch_size: int = 32, momentum: float = 0.99, steps: int = 500) -> str:
        run = moving_statistics(momentum, batch_size, steps)
        t = np.arange(1, steps + 1)
        margin = 0.05 * (steps - 1)  # matplotlib's default margins; the same at every update
        for (ax, batch, moving, title, name), batch_values, moving_values in zip(
                self.panels, (run.batch_mean, run.batch_var), (run.moving_mean, run.moving_var)):
            batch.set_offsets(np.column_stack((t, batch_values)))
            moving.set_data(t, moving_values)
            title.set_text(f"{name}: batch of {batch_size}, momentum {momentum}")
            ax.set_xlim(1 - margin, steps + margin)
        spread = float(run.batch_mean.std())
        return (f"std of the batch means {spread:.3f} "
                f"(σ/√N = {np.sqrt(run.train_var / batch_size):.3f})"
                f"\nafter {steps} steps: moving mean {run.moving_mean[-1]:.3f} "
                f"(training set {run.train_mean:.3f}, "
                f"gap {abs(run.moving_mean[-1] - run.train_mean):.3f}),"
                f" moving variance {run.moving_var[-1]:.3f} (training set {run.train_var:.3f})")


def statistics_explorer() -> widgets.Explorer:
    """Sliders for the batch size and the momentum of the moving statistics."""
    return widgets.Explorer(StatisticsScene(), {
        "batch_size": widgets.int_slider(32, 2, 256, 2, "batch size"),
        "momentum": widgets.choice([0.5, 0.9, 0.95, 0.99, 0.995, 0.999], 0.99, "momentum"),
    }, title="Batch statistics and the moving statistics")


def moving_mean_jitter(momentum: float, batch_size: int, variance: float) -> float:
    """Predicted standard deviation of a moving mean once its start is forgotten.

    Each batch mean has variance ``variance / batch_size``; an exponential moving average
    of independent values with weight 1 - m on the new one has (1 - m) / (1 + m) times
    their variance (lesson 02: alpha / (2 - alpha)).
    """
    return float(np.sqrt(variance / batch_size * (1 - momentum) / (1 + momentum)))


def warmup_verdicts(runs: dict, batch_size: int = 32) -> dict:
    """The lesson's claims about the warm-up of the moving mean.

    Parameters
    ----------
    runs : dict of momentum -> MovingStats
        Runs with momenta 0.9, 0.99 and 0.999 of equal length (2,000 steps in the lesson).

    Returns
    -------
    dict of claim -> (holds, detail)
    """
    steps = len(runs[0.99].moving_mean)
    train_mean, train_var = runs[0.99].train_mean, runs[0.99].train_var
    gaps = {m: abs(run.moving_mean[-1] - train_mean) for m, run in runs.items()}
    jitter = {m: moving_mean_jitter(m, batch_size, train_var) for m in runs}
    wobble = {m: runs[m].moving_mean[-500:].std() for m in (0.9, 0.99)}
    left = train_mean * 0.999 ** steps
    return {
        "momentum 0.9 and 0.99 have caught up: what is left is jitter (gap below 4 x its std)": (
            all(gaps[m] < 4 * jitter[m] for m in (0.9, 0.99)),
            f"gaps {gaps[0.9]:.3f} and {gaps[0.99]:.3f}, "
            f"4 x jitter {4 * jitter[0.9]:.2f} and {4 * jitter[0.99]:.2f}"),
        f"momentum 0.999 still carries its start after {steps} steps": (
            bool(gaps[0.999] > 0.3), f"gap {gaps[0.999]:.3f}"),
        "its gap is what is left of the start, m^steps * mean, to within 0.05": (
            bool(abs(gaps[0.999] - left) < 0.05), f"{gaps[0.999]:.2f} vs {left:.2f}"),
        "after warm-up, higher momentum wobbles less": (
            bool(wobble[0.99] < wobble[0.9] / 2),
            f"std over the last 500 steps {wobble[0.9]:.3f} (0.9) vs {wobble[0.99]:.3f} (0.99)"),
    }


def warmup_figure(runs: dict, train_mean: float):
    """Moving mean against steps, one line per momentum, with the training-set mean.

    Parameters
    ----------
    runs : dict of momentum -> MovingStats
    train_mean : float
    """
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for momentum, run in runs.items():
        ax.plot(np.arange(1, len(run.moving_mean) + 1), run.moving_mean,
                label=f"momentum {momentum}")
    ax.axhline(train_mean, color="black", ls="--", lw=1, label="training-set mean")
    ax.set(xlabel="training step", ylabel="moving mean", xscale="log",
           title="Warm-up of the moving mean (started at 0)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ----- Case 3a: ten images batch-normalized per pixel -----

def case3a_figure(raw: np.ndarray, normalized: np.ndarray, picks=None):
    """Two images before and after per-pixel batch norm, on shared grey scales, and histograms.

    Each row shares one grey scale (with its colour bar), so an image brighter than another
    looks brighter; the histograms show every value of the batch.

    Parameters
    ----------
    raw, normalized : ndarray of shape (N, H, W, 1)
    picks : pair of int, optional
        The images shown; default the darkest and the brightest of the batch.
    """
    if picks is None:
        means = raw.mean(axis=(1, 2, 3))
        picks = (int(np.argmin(means)), int(np.argmax(means)))
    fig, axes = plt.subplots(2, 3, figsize=(11, 6.2), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1, 1.6]})
    for row, images, name in ((0, raw, "raw"), (1, normalized, "normalized")):
        low, high = images.min(), images.max()   # one scale for the whole row
        for ax, i in zip(axes[row, :2], picks):
            shown = ax.imshow(images[i].squeeze(), cmap="gray", vmin=low, vmax=high)
            ax.set_title(f"{name}: image {i}", fontsize=10)
            ax.axis("off")
        fig.colorbar(shown, ax=list(axes[row, :2]), shrink=0.9, label=f"{name} value")
        axes[row, 2].hist(images.ravel(), bins=60, color="tab:blue")
        axes[row, 2].set(title=f"all values of the 10 images, {name}", xlabel="value",
                         ylabel="count")
    fig.suptitle("Per-pixel batch norm of the worksheet's first 10 images "
                 "(one grey scale per row)")
    return fig


# ----- Moving statistics trailing a layer input that drifts while the network learns -----

LAG_STEPS, LAG_EVAL_EVERY, LAG_LR, LAG_BATCH = 1500, 25, 0.5, 32
LAG_SIZES = (64, 64, 64, 10)


class LagRun(NamedTuple):
    """One training of :func:`lag_run`; arrays of shape (n_evals,), over ``eval_step``.

    gap : median over the units of the second batch-norm layer of |moving mean - exact
        mean| / exact std, the exact statistics being those of the layer's input over the
        whole training set at that step.
    acc_moving, acc_exact : test accuracy in inference mode with the moving statistics, and
        with the exact statistics of the whole training set.
    """

    eval_step: np.ndarray
    gap: np.ndarray
    acc_moving: np.ndarray
    acc_exact: np.ndarray


def exact_statistics(model: nn.MLP, x: np.ndarray) -> nn.MLP:
    """A copy of ``model`` whose moving statistics are the exact ones of each layer's input
    over all of ``x`` (a training-mode pass with momentum 0); ``model`` is unchanged."""
    probe = copy.deepcopy(model)
    for layer in probe.norms:
        layer.momentum = 0.0
    probe.forward(x, training=True)
    for layer, original in zip(probe.norms, model.norms):
        layer.momentum = original.momentum
    return probe


@lru_cache(maxsize=16)
def lag_run(seed: int = 0, momentum: float = 0.99, steps: int = LAG_STEPS) -> LagRun:
    """Train a sigmoid MLP with batch norm on the digits, tracking its moving statistics.

    The moving statistics start at the exact statistics of the untrained network (so there
    is no warm-up from 0 and 1): any gap that opens is the moving average trailing a layer
    input that changes as the weights before it learn. Minibatch SGD, batch 32, learning
    rate 0.5; ``seed`` seeds the weights and the batch order.
    """
    split = bn_data.digits()
    model = nn.MLP(LAG_SIZES, norm="batch", seed=seed, momentum=momentum)
    start = exact_statistics(model, split.x_train)
    for layer, exact in zip(model.norms, start.norms):
        layer.moving_mean[...] = exact.moving_mean
        layer.moving_variance[...] = exact.moving_variance

    def record(m):
        exact = exact_statistics(m, split.x_train)
        moving, full = m.norms[1], exact.norms[1]
        gap = np.abs(moving.moving_mean - full.moving_mean) / np.sqrt(full.moving_variance)
        return {"gap": np.median(gap), "acc_exact": nn.accuracy(exact, split.x_test, split.y_test)}

    history = nn.train(model, split, steps=steps, batch_size=LAG_BATCH, lr=LAG_LR, seed=seed,
                       eval_every=LAG_EVAL_EVERY, record=record)
    return LagRun(history.eval_step, history.recorded["gap"], history.test_accuracy,
                  history.recorded["acc_exact"])


def lag_runs(seeds, momenta=(0.99, 0.999)) -> dict:
    """``{momentum: [LagRun per seed]}``."""
    return {m: [lag_run(int(s), m) for s in seeds] for m in momenta}


def lag_verdicts(runs: dict, early: int = 300, costly: int = 150) -> dict:
    """The lesson's claims about the lag of the moving statistics, on every seed.

    Parameters
    ----------
    runs : dict of momentum -> list of LagRun
        From :func:`lag_runs`, with momenta 0.99 and 0.999.
    early, costly : int
        The steps counted as "while the network learns fast", for the gap and for the
        accuracy it costs.
    """
    jitter = moving_mean_jitter(0.99, LAG_BATCH, 1.0)  # batch noise alone, in units of the std
    keras = runs[0.99]
    peak = np.array([r.gap[r.eval_step <= early].max() for r in keras])
    end = np.array([r.gap[-1] for r in keras])
    cost = np.array([np.mean((r.acc_exact - r.acc_moving)[(r.eval_step > 0)
                                                          & (r.eval_step <= costly)])
                     for r in keras])
    final = np.array([abs(r.acc_exact[-1] - r.acc_moving[-1]) for r in keras])
    slow_end = np.array([r.gap[-1] for r in runs[0.999]])
    return {
        f"while the network learns (first {early} steps) the moving mean trails the exact "
        f"mean by over 5x the batch noise ({jitter:.3f} std)": (
            bool(np.all(peak > 5 * jitter)), f"largest median gap {spread(peak)} std"),
        f"the lag costs test accuracy: over the first {costly} steps, moving statistics score "
        "over 1 point below exact ones": (
            bool(np.all(cost > 0.01)), f"by {spread(100 * cost, '.0f')} points on average"),
        f"once learning slows the moving mean is close: after {LAG_STEPS} steps the gap is "
        "below 0.1 std": (
            bool(np.all(end < 0.1)), f"gap {spread(end)} std"),
        f"and both give the same test accuracy to within 2 points after {LAG_STEPS} steps": (
            bool(np.all(final < 0.02)), "on every seed"),
        "with momentum 0.999 the lag lasts longer: its gap after "
        f"{LAG_STEPS} steps is over 3x that of 0.99": (
            bool(np.all(slow_end > 3 * end)), f"gap {spread(slow_end)} std"),
    }


def lag_figure(runs: dict):
    """Left: the gap between moving and exact means; right: test accuracy with either.

    One thin line per seed.
    """
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10.5, 3.6))
    colours = {0.99: "tab:orange", 0.999: "tab:purple"}
    for momentum, seed_runs in runs.items():
        for k, r in enumerate(seed_runs):
            ax0.plot(r.eval_step, r.gap, color=colours[momentum], lw=1,
                     label=f"momentum {momentum}" if k == 0 else None)
    ax0.axhline(moving_mean_jitter(0.99, LAG_BATCH, 1.0), color="black", ls=":", lw=1,
                label="batch noise alone (0.99)")
    ax0.set(xlabel="training step", ylabel="|moving − exact mean| / std",
            title="Moving mean behind the layer input (median unit)", ylim=(0.0, None))
    ax0.legend(fontsize=8)
    for k, r in enumerate(runs[0.99]):
        ax1.plot(r.eval_step, r.acc_exact, color="black", lw=1,
                 label="exact training-set statistics" if k == 0 else None)
        ax1.plot(r.eval_step, r.acc_moving, color="tab:orange", lw=1,
                 label="moving statistics (0.99)" if k == 0 else None)
    ax1.set(xlabel="training step", ylabel="test accuracy", xlim=(0, 600), ylim=(0.0, 1.0),
            title="Inference with moving vs exact statistics (first 600 steps)")
    ax1.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
