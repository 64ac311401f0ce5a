"""Lesson 06: covariate shift, importance weighting, and what batch norm does to a layer's inputs.

Part 1 (one input, no network): a straight line fit to a curved function on a
source sample and judged on a shifted target sample, plain and importance
weighted (true density ratio, or one estimated by a source-vs-target
classifier). Part 2 draws the network experiments of :mod:`bnlib.lessons.lesson06.experiments`:
a layer's input distribution over training (drift and jitter), the
compounding of shifts with depth, Santurkar et al.'s gradient measure of the
shift, the loss surface along the gradient (with the effective
beta-smoothness) and the top eigenvalue of the loss's Hessian.
"""
from __future__ import annotations

from functools import lru_cache

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker, transforms

from bnlib import data
from bnlib.course import widgets
from bnlib.lessons.lesson06 import experiments
from bnlib.course.seeds import spread


def fit_line(x, y, weights=None) -> np.ndarray:
    """Weighted least-squares line: minimize sum_i w_i (a x_i + b - y_i)^2.

    Parameters
    ----------
    x, y : ndarray of shape (n,)
    weights : ndarray of shape (n,), optional
        Non-negative weight of each example (all ones when omitted).

    Returns
    -------
    coef : ndarray of shape (2,)
        ``(slope, intercept)``.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, float)
    design = np.stack([x, np.ones_like(x)], axis=1)
    # Normal equations of the weighted problem: (A^T W A) c = A^T W y.
    return np.linalg.solve(design.T @ (w[:, None] * design), design.T @ (w * y))


def predict_line(coef, x) -> np.ndarray:
    """``slope * x + intercept`` for x of any shape."""
    return coef[0] * np.asarray(x, float) + coef[1]


def mse(coef, x, y) -> float:
    """Mean squared error of the line ``coef`` on the sample (x, y)."""
    return float(np.mean((predict_line(coef, x) - y) ** 2))


def importance_weights(x, source_pdf, target_pdf) -> np.ndarray:
    """Density ratio P_T(x) / P_S(x) at each point x (shape (n,))."""
    return target_pdf(x) / source_pdf(x)


def _features(x, center: float, scale: float) -> np.ndarray:
    z = (np.asarray(x, float) - center) / scale
    return np.stack([np.ones_like(z), z, z * z], axis=1)


def fit_domain_classifier(x_source, x_target, *, iterations: int = 30, ridge: float = 1e-3):
    """Logistic regression telling target (label 1) from source (label 0).

    Features are 1, z, z^2 with z the standardized input: the log-ratio of
    two Gaussians is quadratic, so this family contains the true answer.
    Fitted by Newton's method (iteratively reweighted least squares).

    Parameters
    ----------
    x_source : ndarray of shape (n_s,)
    x_target : ndarray of shape (n_t,)

    Returns
    -------
    predict : callable
        ``predict(x) -> P(target | x)``, an ndarray of the shape of x.
    """
    x = np.concatenate([x_source, x_target])
    t = np.concatenate([np.zeros(len(x_source)), np.ones(len(x_target))])
    center, scale = float(x.mean()), float(x.std())
    phi = _features(x, center, scale)
    theta = np.zeros(phi.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-phi @ theta))
        grad = phi.T @ (p - t) + ridge * theta
        hess = phi.T @ ((p * (1 - p))[:, None] * phi) + ridge * np.eye(len(theta))
        theta -= np.linalg.solve(hess, grad)
    return lambda q: 1.0 / (1.0 + np.exp(-_features(q, center, scale) @ theta))


def odds_weights(p_target, n_source: int, n_target: int) -> np.ndarray:
    """Turn P(target | x) into the density ratio P_T(x) / P_S(x).

    Bayes: p / (1 - p) = (n_t P_T(x)) / (n_s P_S(x)), so the odds times
    n_s / n_t remove the classes' sizes.
    """
    p = np.asarray(p_target, float)
    return p / (1.0 - p) * (n_source / n_target)


def effective_sample_size(weights) -> float:
    """Kish's effective number of examples, (sum w)^2 / sum w^2."""
    w = np.asarray(weights, float)
    return float(w.sum() ** 2 / np.sum(w * w))


@lru_cache(maxsize=64)
def shift_experiment(shift: float, seed: int = 0) -> dict:
    """Fit three lines on the source sample and score them on both samples.

    Returns
    -------
    dict with the data (``"data"``), the lines ``"plain"``, ``"known"``
    (weights from the true densities), ``"estimated"`` (weights from the
    classifier), their weights, and ``"errors"``: name -> (source MSE, target MSE);
    ``"best"`` is the best possible line on the target, ``"ess"`` the effective
    sample sizes of both weightings.
    """
    d = data.covariate_shift(shift, seed=seed)
    w_known = importance_weights(d.x_source, d.source_pdf, d.target_pdf)
    classifier = fit_domain_classifier(d.x_source, d.x_target)
    w_est = odds_weights(classifier(d.x_source), len(d.x_source), len(d.x_target))
    lines = {"plain": fit_line(d.x_source, d.y_source),
             "known": fit_line(d.x_source, d.y_source, w_known),
             "estimated": fit_line(d.x_source, d.y_source, w_est),
             "best": fit_line(d.x_target, d.y_target)}
    errors = {k: (mse(c, d.x_source, d.y_source), mse(c, d.x_target, d.y_target))
              for k, c in lines.items()}
    return {"data": d, **lines, "w_known": w_known, "w_estimated": w_est, "errors": errors,
            "ess": {"known": effective_sample_size(w_known),
                    "estimated": effective_sample_size(w_est)}}


def weighting_over_seeds(seeds=experiments.SEEDS, shift: float = 1.5) -> dict:
    """:func:`shift_experiment` on one sample per seed: is the repair the rule or one sample's luck?

    Returns
    -------
    dict of ndarray of shape (n_seeds,), ratios of mean squared errors:
    ``"plain_ratio"``, the plain line's target error over its source error;
    ``"vs_plain"`` and ``"vs_plain_estimated"``, the weighted line's target error
    over the plain line's (true and estimated weights); ``"vs_best"``, the
    weighted line's target error over the best line's; and ``"ess"``, the
    effective sample size of the true weights.
    """
    rows = []
    for seed in seeds:
        r = shift_experiment(float(shift), int(seed))
        e = r["errors"]
        rows.append((e["plain"][1] / e["plain"][0], e["known"][1] / e["plain"][1],
                     e["estimated"][1] / e["plain"][1], e["known"][1] / e["best"][1],
                     r["ess"]["known"]))
    keys = ("plain_ratio", "vs_plain", "vs_plain_estimated", "vs_best", "ess")
    return dict(zip(keys, np.array(rows, dtype=np.float64).T))


def _padded(low: float, high: float, margin: float = 0.05) -> tuple:
    """``(low, high)`` widened by ``margin`` of the span on each side, as autoscaling does."""
    pad = margin * (high - low)
    return low - pad, high + pad


# where the lines and densities are drawn: the x axis, which holds every sample point at
# every shift (the source sample reaches -2.64, the target 4.24 at shift 3)
GRID = np.linspace(-2.75, 5.0, 200)
LINES = (("plain", "tab:blue", "plain line"), ("known", "tab:green", "weighted, true P_T/P_S"),
         ("estimated", "tab:red", "weighted, classifier"))


class ShiftScene(widgets.Scene):
    """Left: the samples, the true curve and the three lines. Right: the input densities."""

    def build(self) -> None:
        _, (ax, ax2) = self.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [3, 2]},
                                     left=0.07, bottom=0.27, top=0.92)
        self.samples = {name: self.live(ax.scatter([], [], s=5, alpha=0.35, color=color,
                                                   label=name))
                        for name, color in (("source", "tab:blue"), ("target", "tab:orange"))}
        self.live(ax.plot(GRID, data.true_function(GRID), color="black", lw=1,
                          label="E[y|x]")[0])
        self.lines = {key: self.live(ax.plot(GRID, GRID, color=color, ls="--", label=label)[0])
                      for key, color, label in LINES}
        self.title = self.live(ax.set_title(" "))
        ax.set(xlim=(GRID[0], GRID[-1]), ylim=(-3, 4), xlabel="x", ylabel="y")
        # under the axes, off the data: static, nothing live reaches it
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
        self.densities = [self.live(ax2.plot(GRID, GRID, label=label)[0])
                          for label in ("P_S(x)", "P_T(x)")]
        # as autoscaling would pick them: the target density N(shift, 0.5^2) peaks at 0.80
        ax2.set(xlim=_padded(GRID[0], GRID[-1]), ylim=(-0.04, 0.84), xlabel="x",
                ylabel="density", title="Input distributions")
        # live, after the curves: "best" places it away from them at every shift, on top
        self.live(ax2.legend(fontsize=8))

    def update(self, shift: float = 1.5) -> str:
        r = shift_experiment(float(shift))
        d = r["data"]
        self.samples["source"].set_offsets(np.column_stack([d.x_source, d.y_source]))
        self.samples["target"].set_offsets(np.column_stack([d.x_target, d.y_target]))
        for key, line in self.lines.items():
            line.set_ydata(predict_line(r[key], GRID))
        for line, pdf in zip(self.densities, (d.source_pdf, d.target_pdf)):
            line.set_ydata(pdf(GRID))
        self.title.set_text(f"Lines fit on the source, shift = {shift:.1f}")
        e = r["errors"]
        return (f"target MSE  plain {e['plain'][1]:.3f} | weighted (true densities) "
                f"{e['known'][1]:.3f} | weighted (classifier) {e['estimated'][1]:.3f} | "
                f"best line {e['best'][1]:.3f}\neffective sample size of the weights: "
                f"{r['ess']['known']:.0f} of {len(d.x_source)}")


def shift_explorer() -> widgets.Explorer:
    """A slider for how far the target's inputs are moved from the source's."""
    return widgets.Explorer(ShiftScene(), {
        "shift": widgets.slider(1.5, 0.0, 3.0, 0.25, "target shift"),
    }, title="Covariate shift and importance weighting")


NETS = {"none": "no batch norm", "batch": "batch norm", "noisy": "noisy batch norm"}
# The y label's place beside one-digit tick labels (tick, pads and label width, in points):
# the label is a live text, since an axis draws its own label into the static background.
YLABEL_OFFSET = -25.4


class LayerInputScene(widgets.Scene):
    """One panel per network: a unit's 15-85th percentile band and median over training.

    Parameters
    ----------
    nets : tuple of str
        Keys of :data:`NETS`, one panel each.
    **run_options
        Passed on to :func:`bnlib.lessons.lesson06.experiments.shift_run`.
    """

    def __init__(self, nets=("none", "batch", "noisy"), **run_options):
        # fetched once per scene (trained on the first call, then from shift_run's cache)
        self.runs = {net: experiments.shift_run(net, **run_options) for net in nets}
        super().__init__()

    def build(self) -> None:
        n = len(self.runs)
        _, axes = self.subplots(1, n, figsize=(3.3 * n, 2.9), sharey=True, squeeze=False,
                                bottom=0.17, top=0.88, wspace=0.08)
        axes = axes[0]
        self.bands, self.medians = [], []
        for ax, (net, r) in zip(axes, self.runs.items()):
            steps = r["history"].eval_step
            self.bands.append(self.live(ax.fill_between(steps, steps, steps, alpha=0.3,
                                                        color="tab:blue", label="15-85th")))
            self.medians.append(self.live(ax.plot(steps, steps, color="tab:blue",
                                                  label="median")[0]))
            ax.set(title=NETS[net], xlabel="training step", xlim=_padded(steps[0], steps[-1]))
        # shared y limits that hold every unit of every network
        quantiles = [r["quantiles"] for r in self.runs.values()]
        axes[0].set_ylim(_padded(min(q.min() for q in quantiles), max(q.max() for q in quantiles)))
        place = transforms.offset_copy(axes[0].transAxes, self.fig, x=YLABEL_OFFSET, y=0,
                                       units="points")
        self.ylabel = self.live(axes[0].text(
            0, 0.5, " ", transform=place, rotation=90, rotation_mode="anchor", ha="center",
            va="bottom", fontsize=plt.rcParams["axes.labelsize"],
            color=plt.rcParams["axes.labelcolor"]))
        # live, after the first panel's data: "best" keeps it off the band of every unit
        self.live(axes[0].legend(fontsize=8))

    def update(self, unit: int = 0) -> str:
        lines = []
        for band, median, (net, r) in zip(self.bands, self.medians, self.runs.items()):
            steps, q = r["history"].eval_step, r["quantiles"][:, :, unit]
            band.set_data(steps, q[:, 0], q[:, 2])
            median.set_ydata(q[:, 1])
            unit_move = np.abs(q[-1] - q[0]).mean()
            m = r["movement"]
            lines.append(f"{NETS[net]:>17}: unit {unit} moved {unit_move:.2f}; layer: "
                         f"{m['total']:.2f} in all, {m['per_step']:.3f} per record; "
                         f"test accuracy {r['history'].final_accuracy:.3f}")
        self.ylabel.set_text(f"input of unit {unit}, last hidden layer")
        return "\n".join(lines)


def layer_input_explorer(**run_options) -> widgets.Explorer:
    """A slider picking which unit of the last hidden layer to watch (runs are cached)."""
    return widgets.Explorer(LayerInputScene(**run_options), {
        "unit": widgets.int_slider(0, 0, experiments.SIZES[-2] - 1, 1, "unit"),
    }, title="A deep layer's input distribution during training")


COLORS = {"none": "tab:blue", "batch": "tab:orange", "noisy": "tab:green"}


def _per_seed(ax, x, curves, color, label, **style):
    """One thin line per seed and a thick line for their median (the spread, drawn)."""
    curves = np.asarray(curves, dtype=np.float64)
    for curve in curves:
        ax.plot(x, curve, color=color, lw=0.7, alpha=0.45)
    ax.plot(x, np.median(curves, axis=0), color=color, lw=2,
            label=f"{label} (median, {len(curves)} seeds)", **style)


def compounding_figure(seeds=experiments.SEEDS, **options):
    """Shift of each hidden layer's input after all layers' weights move a little.

    One thin line per seed (the seed sets the network and the nudge), the
    median thick; ``options`` go to :func:`bnlib.lessons.lesson06.experiments.compounding_shift`.

    Returns
    -------
    fig : matplotlib Figure
    text : str
        Per network, the median shift of each hidden layer over the seeds.
    """
    shifts = {net: experiments.compounding_shifts(net, seeds, **options)
              for net in ("none", "batch")}
    depth = np.arange(1, shifts["none"].shape[1] + 1)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for net, values in shifts.items():
        _per_seed(ax, depth, values, COLORS[net], NETS[net], marker="o")
    ax.set(xlabel="hidden layer", ylabel="shift of its input (in its own widths)",
           title="Small changes everywhere add up with depth", ylim=(0, None))
    ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.16, right=0.97, bottom=0.15, top=0.9)
    text = "\n".join(f"{NETS[n]:>14}: " + " ".join(f"{v:.3f}" for v in np.median(vals, axis=0))
                      for n, vals in shifts.items())
    return fig, f"median over {len(tuple(seeds))} seeds, hidden layers 1 to {depth[-1]}:\n{text}"


def drift_figure(seeds=experiments.SEEDS, nets=experiments.NORMS, **run_options):
    """Drift and jitter of the last hidden layer's input, and the test accuracy, every seed.

    Left: the layer's distance from its starting distribution (the mean over
    units of how far the 15th, 50th and 85th percentiles of their inputs moved).
    Middle: its distance from the previous record (the jitter). Right: test
    accuracy. One thin line per seed, the median thick; the runs are
    :func:`bnlib.lessons.lesson06.experiments.shift_run` (``run_options`` passed on).

    Returns
    -------
    fig : matplotlib Figure
    text : str
        Per network and seed: the drift from start to end and the mean
        movement per record; the final test accuracy over seeds.
    """
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    lines = [f"{'':>16}  {'seed':>5}" + "".join(f"{int(s):>7}" for s in seeds)]
    for net in nets:
        runs = experiments.shift_runs(net, seeds, **run_options)
        steps = runs[0]["history"].eval_step
        _per_seed(axes[0], steps, [r["movement"]["path"] for r in runs], COLORS[net], NETS[net])
        _per_seed(axes[1], steps[1:], [r["movement"]["jumps"] for r in runs], COLORS[net],
                  NETS[net])
        _per_seed(axes[2], steps, [r["history"].test_accuracy for r in runs], COLORS[net],
                  NETS[net])
        total = [r["movement"]["total"] for r in runs]
        per_step = [r["movement"]["per_step"] for r in runs]
        final = [r["history"].final_accuracy for r in runs]
        lines.append(f"{NETS[net]:>16}: drift" + "".join(f"{v:7.2f}" for v in total))
        lines.append(f"{'':>16}  jitter" + "".join(f"{v:7.2f}" for v in per_step)
                     + f"   final test accuracy {spread(final)}")
    axes[0].set(xlabel="training step", ylabel="distance from the start",
                title="drift: distance from the start")
    axes[1].set(xlabel="training step", ylabel="distance from the record before",
                title="jitter: move since the last record")
    axes[2].set(xlabel="training step", ylabel="test accuracy", title="test accuracy",
                ylim=(0, 1))
    # under the panels: inside, it would cover a band of curves whatever the seeds
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=len(nets),
               fontsize=8)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.3, top=0.91, wspace=0.32)
    return fig, "\n".join(lines)


def gradient_shift_figure(seeds=experiments.SEEDS, nets=experiments.NORMS, layer: int = 3,
                          split: int = experiments.PLATEAU_END, **run_options):
    """Santurkar et al.'s internal covariate shift of one layer over training, every seed.

    Left: ||G - G'||, the change of dense layer ``layer``'s weight gradient when
    the layers before it take their SGD step; right: cos(G, G'). Recorded by
    :func:`bnlib.lessons.lesson06.experiments.shift_run` (``run_options`` passed
    on) with :func:`bnlib.lessons.lesson06.experiments.gradient_shift`. One thin
    line per seed, the median thick; the plain network's plateau (before step
    ``split``) shaded.

    Returns
    -------
    fig : matplotlib Figure
    text : str
        Per network and phase (see
        :func:`bnlib.lessons.lesson06.experiments.gradient_shifts`): the median
        and range over seeds of cos(G, G') and of ||G - G'|| / ||G||.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    shifts = experiments.gradient_shifts(seeds, nets=nets, layers=(layer,), split=split,
                                         **run_options)
    lines = [f"layer {layer}, means over the records of each phase:"]
    for net in nets:
        runs = experiments.shift_runs(net, seeds, **run_options)
        steps = runs[0]["history"].eval_step
        for ax, key in zip(axes, ("ics", "cos")):
            _per_seed(ax, steps[1:], [r["history"].recorded[f"{key}{layer}"][1:] for r in runs],
                      COLORS[net], NETS[net])
        for phase, name in (("early", f"steps 1-{split - 1}"), ("late", f"steps {split}+")):
            v = shifts[net][layer][phase]
            lines.append(f"{NETS[net]:>16}, {name:>11}: cos(G, G') {spread(v['cos'])}\n"
                         f"{'':>31}||G - G'|| / ||G|| {spread(v['relative'])}")
    for ax in axes:
        ax.axvspan(0, split, color="0.92", zorder=0)
    axes[0].text(split / 2, 0.97, "plain net's plateau", transform=axes[0].get_xaxis_transform(),
                 ha="center", va="top", fontsize=8, color="0.35")
    axes[0].set(xlabel="training step", ylabel="||G - G'||", yscale="log",
                title=f"change of layer {layer}'s gradient")
    axes[1].set(xlabel="training step", ylabel="cos(G, G')", ylim=(-0.1, 1.05),
                title="cosine of the two gradients")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=len(nets),
               fontsize=8)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.3, top=0.9, wspace=0.28)
    return fig, "\n".join(lines)


def _running_median(values, window: int = 10) -> np.ndarray:
    """Median of each ``window`` consecutive values (shape (n - window + 1,); fewer: as given)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < window:    # a run that stopped early (diverged)
        return values
    return np.median(np.lib.stride_tricks.sliding_window_view(values, window), axis=1)


def learning_rate_figure(seeds=experiments.SEEDS, lrs=(0.4, 0.8), **options):
    """Training loss of the ReLU network without batch norm at each learning rate, every seed.

    One panel per rate: the running median (over 10 steps) of each seed's
    minibatch loss, the "settled" line (:data:`bnlib.lessons.lesson06.experiments.SETTLED_LOSS`)
    and the last 100 steps, over which a run's median loss is compared with it.

    Returns
    -------
    fig : matplotlib Figure
    text : str
        Per rate, on how many seeds the run settled: a verdict, since the
        runs that do not settle are chaotic (round-off changes their curves).
    """
    verdicts = experiments.learning_rate_verdicts(seeds, lrs, **options)
    fig, axes = plt.subplots(1, len(lrs), figsize=(4.5 * len(lrs), 3.2), sharey=True,
                             squeeze=False)
    lines = []
    for ax, (lr, v) in zip(axes[0], verdicts.items()):
        last = max(len(h.step) for h in v["histories"])
        ax.axvspan(max(last - 100, 0), last, color="0.9", label="last 100 steps")
        for h in v["histories"]:
            loss = _running_median(h.loss)
            ax.plot(h.step[len(h.step) - len(loss):], loss, color="tab:blue", lw=0.8, alpha=0.7)
        ax.axhline(experiments.SETTLED_LOSS, color="black", ls="--", lw=1,
                   label=f"settled: below {experiments.SETTLED_LOSS}")
        ax.set(yscale="log", xlabel="training step", title=f"learning rate {lr}")
        ax.legend(fontsize=8, loc="lower left")
        lines.append(f"learning rate {lr}: settled on {int(v['settled'].sum())} of "
                     f"{len(v['settled'])} seeds")
    axes[0][0].set_ylabel("minibatch loss (running median)")
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.16, top=0.9, wspace=0.08)
    return fig, "\n".join(lines)


def _plain_log_ticks(ax) -> None:
    """Log y axis labelled 0.01, 0.03, 0.1, 0.3, 1, ... (not 10^0 with crowded 6x10^0 minors)."""
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 3.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def landscape_figure(seeds=experiments.SEEDS, **options):
    """The loss surface along the gradient, with and without batch norm, every seed.

    Panels: the loss range and the largest gradient change over steps of at
    most one learning rate (k <= 1), the gradient's norm ||g|| (dashed) beside
    it, and the effective beta-smoothness (the largest ||g_k - g|| / ||theta_k -
    theta|| over every k). One thin line per seed, the median thick;
    ``options`` go to :func:`bnlib.lessons.lesson06.experiments.landscape_run`.

    Returns
    -------
    fig : matplotlib Figure
    text : str
        Per network, the median and range over seeds of the means over every
        probe after the first (step 0).
    """
    runs = {net: [experiments.landscape_run(net, seed=int(s), **options) for s in seeds]
            for net in ("none", "batch")}
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
    keys = (("loss_range_small", "loss range, k <= 1", "max - min of the loss"),
            ("grad_change_small", "gradient change, k <= 1", "max ||g_k - g||, dashed: ||g||"),
            ("beta", "effective beta-smoothness", "max ||g_k - g|| / ||step||"))
    for ax, (key, title, ylabel) in zip(axes, keys):
        for net, rs in runs.items():
            steps = rs[0]["history"].eval_step
            _per_seed(ax, steps, [r[key] for r in rs], COLORS[net], NETS[net], marker=".")
            if key == "grad_change_small":
                ax.plot(steps, np.median([r["grad_norm"] for r in rs], axis=0), color=COLORS[net],
                        lw=1.2, ls="--")
        ax.set(yscale="log", xlabel="training step", title=title, ylabel=ylabel)
        _plain_log_ticks(ax)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.3, top=0.9, wspace=0.42)
    rows = (("loss_range_small", "loss range, k <= 1", ".3f"),
            ("grad_change_small", "gradient change, k <= 1", ".3f"),
            ("grad_norm", "gradient norm ||g||", ".2f"),
            ("beta", "effective beta-smoothness", ".2f"))
    text = "\n".join(f"{NETS[n]:>14}: " + f"\n{'':>16}".join(
        f"{name} {spread([r[key][1:].mean() for r in rs], fmt)}" for key, name, fmt in rows)
        for n, rs in runs.items())
    return fig, "means over the probes after step 0:\n" + text


def curvature_figure(seeds=experiments.SEEDS, lr: float = 0.4, **options):
    """The top eigenvalue of the loss's Hessian over training, with and without batch norm.

    One thin line per seed, the median thick, and the line 2 / lr above which
    gradient descent on a quadratic of that curvature diverges; ``options`` go
    to :func:`bnlib.lessons.lesson06.experiments.curvature_run`.

    Returns
    -------
    fig : matplotlib Figure
    text : str
        Per network, over seeds: the mean and the largest value over the probes
        after step 0.
    """
    runs = {net: [experiments.curvature_run(net, seed=int(s), lr=lr, **options) for s in seeds]
            for net in ("none", "batch")}
    fig, ax = plt.subplots(figsize=(5.5, 3.3))
    for net, rs in runs.items():
        _per_seed(ax, rs[0]["history"].eval_step, [r["curvature"] for r in rs], COLORS[net],
                  NETS[net], marker=".")
    ax.axhline(2 / lr, color="black", ls="--", lw=1, label=f"2 / learning rate = {2 / lr:g}")
    ax.set(xlabel="training step", ylabel="largest Hessian eigenvalue", ylim=(0, None),
           title="Curvature along the most curved direction")
    ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.16, top=0.9)
    text = "\n".join(f"{NETS[n]:>14}: mean {spread([r['curvature'][1:].mean() for r in rs], '.1f')}"
                     f", largest {spread([r['curvature'][1:].max() for r in rs], '.1f')}"
                     for n, rs in runs.items())
    return fig, "top curvature over the probes after step 0:\n" + text
