"""Lesson 01's computations and explorers: scaling images, saturating units, loss shapes.

Pure functions return numbers or arrays; ``*Scene`` classes draw one figure and
update it in place; ``*_explorer`` factories bind a scene to sliders.
"""
from __future__ import annotations

from functools import lru_cache

import contourpy
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
from matplotlib.collections import LineCollection
from scipy.stats import rankdata

from bnlib import data, nn
from bnlib.course import plots, widgets
from bnlib.normalize import apply_standardize, standardize
from bnlib.nn import sigmoid

# ---------------------------------------------------------------- images


def describe(x) -> dict:
    """Max, min, mean and variance of every value in ``x`` (any shape), as floats."""
    x = np.asarray(x, dtype=np.float64)
    return {"max": float(x.max()), "min": float(x.min()), "mean": float(x.mean()),
            "var": float(x.var())}


def describe_line(name: str, x) -> str:
    """One printable line with :func:`describe`'s four numbers (3 decimals, no signed zero)."""
    d = {k: (0.0 if abs(v) < 5e-4 else v) for k, v in describe(x).items()}
    return (f"{name:<13} max {d['max']:8.3f}  min {d['min']:8.3f}  "
            f"mean {d['mean']:7.3f}  var {d['var']:8.3f}")


def image_panels(images, name: str, picks=(0, 4)):
    """Two example images on one shared colour scale (with its colour bar) and a histogram.

    Every image of a row uses the same grey scale, from the smallest to the largest
    value in the whole batch, so a brighter image looks brighter; the title gives
    the batch's range, computed from the data.
    """
    images = np.asarray(images)
    lo, hi = float(images.min()), float(images.max())
    fig, axes = plt.subplots(1, len(picks) + 1, figsize=(4 * (len(picks) + 1), 3.4),
                             layout="constrained", gridspec_kw={"width_ratios": [1] * len(picks) + [1.3]})
    for ax, i in zip(axes, picks):
        shown = ax.imshow(images[i].squeeze(), cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(f"image {i} (mean {images[i].mean():.1f})")
        ax.axis("off")
    fig.colorbar(shown, ax=list(axes[:len(picks)]), fraction=0.04, pad=0.02,
                 label="pixel value (one scale for both)")
    axes[-1].hist(images.ravel(), bins=60, color="tab:blue")
    axes[-1].set(title="all values", xlabel="pixel value", ylabel="count (all 30 images)")
    fig.suptitle(f"{name}: values from {lo:.2f} to {hi:.2f}")
    return fig


def ranks(x, axis: int = -1) -> np.ndarray:
    """Rank of every value along ``axis`` (0 = smallest), tied values sharing their average rank.

    Ties do occur: per-pixel min-max scaling maps each pixel's darkest and brightest
    image to exactly 0 and 1, so a bright image has many pixels tied at 1.0. Average
    ranks (``scipy.stats.rankdata``) give the same answer whatever order a sort leaves
    equal values in; ranks from ``argsort`` would not (that order depends on the CPU's
    SIMD sort).

    Returns
    -------
    ndarray of float, shape of x
        E.g. ``[10, 30, 20, 30] -> [0, 2.5, 1, 2.5]``.
    """
    return rankdata(x, axis=axis) - 1.0


def rank_correlation_per_image(a, b) -> np.ndarray:
    """Spearman rank correlation between image i of ``a`` and image i of ``b``.

    The Pearson correlation of the pixels' :func:`ranks` (tied pixels share their
    average rank, the usual definition, as ``scipy.stats.spearmanr``).

    Parameters
    ----------
    a, b : ndarray of shape (N, ...)
        Two versions of the same N images.

    Returns
    -------
    ndarray of shape (N,)
        1.0 for an image whose pixels keep their order exactly.
    """
    ra = ranks(np.reshape(a, (len(a), -1)))
    rb = ranks(np.reshape(b, (len(b), -1)))
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    return (ra * rb).sum(axis=1) / np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))


def order_kept(a, b, axis: int) -> bool:
    """True if every 1-D slice along ``axis`` of ``a`` and ``b`` has the same ordering."""
    return bool(np.array_equal(ranks(a, axis), ranks(b, axis)))


def flatten_images(x) -> np.ndarray:
    """(N, H, W, C) -> (N, H*W*C): one row of pixel values per image."""
    return np.reshape(x, (len(x), -1))


# ---------------------------------------------------------------- activations

def sigmoid_grad(z):
    """Derivative of :func:`sigmoid`: s (1 - s), largest (0.25) at z = 0."""
    s = sigmoid(z)
    return s * (1.0 - s)


def tanh_grad(z):
    """Derivative of tanh: 1 - tanh(z)^2, largest (1) at z = 0."""
    return 1.0 - np.tanh(z) ** 2


ACTIVATIONS = {"sigmoid": (sigmoid, sigmoid_grad, 0.25), "tanh": (np.tanh, tanh_grad, 1.0)}
SATURATED_BELOW = 0.1  # a unit is saturated when its slope is below 10% of the peak slope


@lru_cache(maxsize=4)
def _standard_normal(n: int, seed: int = 0) -> np.ndarray:
    values = np.random.default_rng(seed).standard_normal(n)
    values.flags.writeable = False
    return values


@lru_cache(maxsize=256)
def saturation(activation: str, mean: float, scale: float, n: int = 20_000, seed: int = 0):
    """How many units of a layer sit on the flat parts of their activation.

    The layer's inputs (pre-activations) are ``mean + scale * N(0, 1)``.

    Returns
    -------
    saturated : float
        Fraction of units whose slope is below ``SATURATED_BELOW`` times the peak slope.
    mean_slope : float
        Mean derivative over the units, as a fraction of the peak slope.
    """
    _, grad, peak = ACTIVATIONS[activation]
    z = mean + scale * _standard_normal(n, seed)
    slope = grad(z) / peak
    return float(np.mean(slope < SATURATED_BELOW)), float(slope.mean())


HIST_SAMPLE = 2000     # inputs drawn in the saturation explorer's histogram
HIST_RANGE = (-10.0, 10.0)


def input_histogram(mean: float, scale: float, bins: int = 60):
    """The saturation explorer's histogram of layer inputs N(mean, scale^2).

    Returns
    -------
    heights : ndarray of shape (bins,)
        Counts over :data:`HIST_RANGE`, divided by the tallest bin (so the tallest is 1,
        whatever the spread: a density would be 1.6 tall at spread 0.25).
    edges : ndarray of shape (bins + 1,)
    outside : float
        Fraction of all the drawn inputs beyond the plotted range (not renormalized away).
    """
    z = _standard_normal(HIST_SAMPLE) * scale + mean
    counts, edges = np.histogram(z, bins=bins, range=HIST_RANGE)
    outside = float(np.mean((z < HIST_RANGE[0]) | (z > HIST_RANGE[1])))
    return counts / max(counts.max(), 1), edges, outside


class SaturationScene(widgets.Scene):
    """An activation, its slope, and where a layer's inputs fall on it, on fixed axes."""

    def build(self) -> None:
        self.zs = np.linspace(-10, 10, 401)
        _, ax = self.subplots(figsize=(8.6, 3.4), left=0.1, right=0.7, bottom=0.15, top=0.9)
        # zorder 1 as a stairs patch has by default: a full draw puts it under the lines,
        # and blitting draws the live artists in registration order, so it is registered first
        self.inputs = self.live(ax.stairs(np.zeros(60), np.linspace(*HIST_RANGE, 61), fill=True,
                                          alpha=0.35, color="tab:green",
                                          label="layer inputs (histogram,\ntallest bin = 1)"))
        self.curve = self.live(ax.plot([], [], label=" ")[0])
        self.slope = self.live(ax.plot([], [], label="slope / peak slope")[0])
        # live although it never changes: a full draw puts it over the inputs' histogram
        self.live(ax.axhline(SATURATED_BELOW, color="gray", lw=0.8, ls=":",
                             label="saturation threshold"))
        self.title = self.live(ax.set_title(" "))
        self.outside = self.live(ax.text(0.99, 0.03, " ", transform=ax.transAxes, ha="right",
                                         fontsize=8, color="tab:green"))
        # the legend's order: activation, slope, inputs, threshold; outside the axes, so it
        # never hides the histogram (at mean -8 it sat on top of it)
        handles, labels = ax.get_legend_handles_labels()
        order = [1, 2, 0, 3]
        self.legend = self.live(ax.legend([handles[i] for i in order],
                                          [labels[i] for i in order], loc="upper left",
                                          bbox_to_anchor=(1.02, 1.0), fontsize=8))
        ax.set(xlim=HIST_RANGE, ylim=(-1.05, 1.05), xlabel="pre-activation z", ylabel="value")

    def update(self, activation: str = "sigmoid", mean: float = 0.0, scale: float = 1.0) -> str:
        f, grad, peak = ACTIVATIONS[activation]
        saturated, slope = saturation(activation, mean, scale)
        self.curve.set_data(self.zs, f(self.zs))
        self.slope.set_data(self.zs, grad(self.zs) / peak)
        heights, edges, outside = input_histogram(mean, scale)
        self.inputs.set_data(heights, edges)
        self.outside.set_text(f"{outside:.0%} of the inputs lie beyond ±10" if outside else " ")
        self.title.set_text(f"{activation}: inputs ~ N({mean:g}, {scale:g}²)")
        self.legend.get_texts()[0].set_text(activation)
        return (f"{activation}, inputs N({mean:g}, {scale:g}^2): saturated units "
                f"{saturated:.2%}, mean slope {slope:.1%} of the peak")


def saturation_explorer() -> widgets.Explorer:
    """Sliders for the mean and spread of a layer's inputs, and the activation."""
    return widgets.Explorer(SaturationScene(), {
        "activation": widgets.choice(["sigmoid", "tanh"], "sigmoid", "activation"),
        "mean": widgets.slider(0.0, -8.0, 8.0, 0.5, "input mean"),
        "scale": widgets.slider(1.0, 0.25, 8.0, 0.25, "input spread"),
    }, title="Where do a layer's inputs land on the activation?")


# ---------------------------------------------------------------- loss surfaces

def regression_data(ratio: float, n: int = 200, seed: int = 0):
    """Two independent features, the first ``ratio`` times wider, and a linear target.

    Returns
    -------
    x : ndarray of shape (n, 2)
        Feature 1 ~ N(0, ratio^2), feature 2 ~ N(0, 1).
    y : ndarray of shape (n,)
        y = 1.5 * (feature 1 / ratio) + 1.0 * feature 2 + 0.1 * noise.
    """
    u = np.random.default_rng(seed).standard_normal((n, 3))
    x = u[:, :2] * np.array([ratio, 1.0])
    return x, 1.5 * u[:, 0] + 1.0 * u[:, 1] + 0.1 * u[:, 2]


def quadratic(x, y):
    """The mean-squared-error loss 0.5 * mean((x w - y)^2) as (Hessian, minimizer, minimum).

    Returns
    -------
    hessian : ndarray of shape (D, D)
        x^T x / n.
    w_best : ndarray of shape (D,)
    loss_min : float
    """
    n = len(x)
    hessian = x.T @ x / n
    w_best = np.linalg.solve(hessian, x.T @ y / n)
    return hessian, w_best, float(0.5 * np.mean((x @ w_best - y) ** 2))


def gradient_descent(x, y, *, tol: float = 1e-6, max_steps: int = 20_000,
                     rate: float | None = None):
    """Gradient descent from w = 0 with a fixed learning rate.

    Stops when the excess loss is below ``tol`` times its starting value.

    Parameters
    ----------
    rate : float, optional
        The learning rate as a fraction of the stability limit 2 / l_max (above 1,
        the steep direction's error grows at every step: descent diverges). By
        default the best fixed rate, 2 / (l_max + l_min).

    Returns
    -------
    path : ndarray of shape (steps + 1, D)
        The weights after each step (row 0 is the start); for a run that diverges,
        the first SHOWN_STEPS steps.
    steps : int
        Steps taken to reach the tolerance (``max_steps`` if never, or if it diverges).
    condition : float
        l_max / l_min of the Hessian: how elongated the contours are.
    """
    hessian, w_best, _ = quadratic(x, y)
    eig, vecs = np.linalg.eigh(hessian)
    lr = 2.0 / (eig[-1] + eig[0]) if rate is None else rate * 2.0 / eig[-1]
    # The step w <- w - lr H (w - w_best) multiplies the error's component along
    # eigenvector i by (1 - lr eig_i); so after k steps the error is known in closed form.
    c = vecs.T @ (np.zeros(x.shape[1]) - w_best)
    factor = 1.0 - lr * eig
    if np.any((np.abs(factor) >= 1.0) & (c != 0)):         # diverges (or never moves)
        err = c * factor ** np.arange(SHOWN_STEPS + 1)[:, None]
        return w_best + err @ vecs.T, max_steps, float(eig[-1] / eig[0])
    k = np.arange(max_steps + 1)[:, None]
    err = c * factor ** k                               # (max_steps + 1, D), eigen-coordinates
    excess = 0.5 * (eig * err ** 2).sum(axis=1)
    done = excess <= tol * excess[0]
    steps = int(np.argmax(done)) if done.any() else max_steps
    return w_best + err[:steps + 1] @ vecs.T, steps, float(eig[-1] / eig[0])


@lru_cache(maxsize=256)
def descent_comparison(ratio: float, tol: float = 1e-6, rate: float | None = None):
    """Gradient descent on raw vs standardized features: (raw, standardized) results.

    ``rate`` as in :func:`gradient_descent`, relative to each problem's own 2 / l_max.
    """
    x, y = regression_data(ratio)
    return (gradient_descent(x, y, tol=tol, rate=rate),
            gradient_descent(standardize(x)[0], y, tol=tol, rate=rate))


# One fixed square window for both panels (equal scales, so shapes are true): it holds the
# start w = 0, every descent path and every minimum for all ratios 1..30 (weight 1 in [0, 1.5],
# weight 2 in [0, 1]) and leaves the top-left corner to the legend; fixed limits keep the
# explorer from redrawing its whole figure on every move.
LOSS_WINDOW = (-0.45, 1.95), (-0.7, 1.7)
LOSS_GRID = 60        # loss evaluated on a LOSS_GRID x LOSS_GRID grid for the contours
LOSS_LEVELS = 12      # about this many contour levels, at round values of log10(loss)
SHOWN_STEPS = 15      # a diverging descent path is drawn up to this many points
SHOWN_MARKED = 21     # the start and the first 20 steps of a path are marked
LOSS_CLIM = (-2.5, 3.5)   # log10(loss) of every contour at every ratio lies in this range


def loss_contours(x, y, grid=None):
    """Contour lines of log10 of the loss 0.5 * mean((x w - y)^2) over :data:`LOSS_WINDOW`.

    Parameters
    ----------
    x, y : ndarrays of shape (n, 2) and (n,)
        The regression problem (see :func:`quadratic`).
    grid : tuple of two ndarrays, optional
        The (weight 1, weight 2) meshgrid; a new LOSS_GRID x LOSS_GRID one by default.

    Returns
    -------
    lines : list of ndarray of shape (m, 2)
        The contour lines, one array of points per piece.
    levels : ndarray
        log10(loss) of each line, same length as ``lines``.
    """
    if grid is None:
        grid = np.meshgrid(*(np.linspace(*limits, LOSS_GRID) for limits in LOSS_WINDOW))
    hessian, w_best, loss_min = quadratic(x, y)
    d = np.stack([grid[0] - w_best[0], grid[1] - w_best[1]], axis=-1)
    log_loss = np.log10(0.5 * np.einsum("...i,ij,...j->...", d, hessian, d) + loss_min)
    # round values strictly inside the range, as matplotlib's contour(levels=12) picks them
    levels = ticker.MaxNLocator(LOSS_LEVELS + 1).tick_values(log_loss.min(), log_loss.max())
    levels = levels[(levels > log_loss.min()) & (levels < log_loss.max())]
    generator = contourpy.contour_generator(*grid, log_loss, line_type="Separate")
    lines, line_levels = [], []
    for level in levels:
        pieces = generator.lines(level)
        lines += pieces
        line_levels += [level] * len(pieces)
    return lines, np.array(line_levels)


class LossScene(widgets.Scene):
    """Loss contours and descent paths for raw and for standardized features, side by side.

    The contours share one colour scale (log10 of the loss, the colour bar), fixed for
    every ratio; the path is drawn over all its steps, the first SHOWN_MARKED marked.
    """

    def build(self) -> None:
        self.grid = np.meshgrid(*(np.linspace(*limits, LOSS_GRID) for limits in LOSS_WINDOW))
        _, axes = self.subplots(1, 2, figsize=(10, 3.8), left=0.07, right=0.9, bottom=0.14,
                                wspace=0.3)
        self.raw = self._build_panel(axes[0], self.live, self.live)
        # Standardizing divides the scale out: the standardized problem is the same at every
        # ratio (the tests check it), so its contours and minimum are drawn once, in the
        # static background; its path depends on the learning rate only.
        self.std = self._build_panel(axes[1], lambda artist: artist, self.live)
        x, y = regression_data(1.0)
        self._set_contours(self.std, standardize(x)[0], y)
        colorbar = self.fig.colorbar(self.std["contours"], ax=list(axes), fraction=0.03,
                                     pad=0.02)
        colorbar.set_label("log10 of the loss")

    def _build_panel(self, ax, register_static, register) -> dict:
        """One panel's artists, registered in the order a full draw paints them."""
        panel = {
            "contours": register_static(ax.add_collection(
                LineCollection([], linewidths=0.8, cmap="viridis"), autolim=False)),
            "minimum": register_static(ax.plot([], [], "k*", ms=9, label="minimum")[0]),
            "path": register(ax.plot([], [], "-", color="tab:red", lw=0.9, label=" ")[0]),
            "marked": register(ax.plot([], [], "o", color="tab:red", ms=2.5)[0]),
            "title": register(ax.set_title(" ")),
        }
        panel["contours"].set_clim(*LOSS_CLIM)
        panel["legend"] = register(ax.legend(handles=[panel["path"], panel["minimum"]],
                                             fontsize=8, loc="upper left"))
        ax.set(xlim=LOSS_WINDOW[0], ylim=LOSS_WINDOW[1], xlabel="weight 1", ylabel="weight 2",
               aspect="equal")
        ax.locator_params(nbins=5)   # fewer tick labels: text is most of the drawing time
        return panel

    def _set_contours(self, panel: dict, x, y) -> None:
        lines, levels = loss_contours(x, y, self.grid)
        panel["contours"].set_segments(lines)
        panel["contours"].set_array(levels)
        panel["minimum"].set_data(*([w] for w in quadratic(x, y)[1]))

    def _set_path(self, panel: dict, path, steps: int, diverged: bool, title: str) -> None:
        panel["path"].set_data(path[:, 0], path[:, 1])
        panel["marked"].set_data(path[:SHOWN_MARKED, 0], path[:SHOWN_MARKED, 1])
        panel["title"].set_text(title)
        panel["legend"].get_texts()[0].set_text(
            f"first {len(path) - 1} steps (diverging)" if diverged else
            f"all {steps} steps, first {min(SHOWN_MARKED, steps + 1) - 1} marked")

    def update(self, ratio: float = 10.0, rate: float = 0.0) -> str:
        rate_arg = None if rate == 0.0 else float(rate)
        (raw_path, raw_steps, raw_k), (std_path, std_steps, std_k) = descent_comparison(
            ratio, rate=rate_arg)
        x, y = regression_data(ratio)
        self._set_contours(self.raw, x, y)
        raw_div, std_div = (rate_arg is not None and rate_arg >= 1.0,) * 2
        raw_text = "diverges" if raw_div else f"{raw_steps} steps"
        std_text = "diverges" if std_div else f"{std_steps} steps"
        self._set_path(self.raw, raw_path, raw_steps, raw_div,
                       f"raw (scale ratio {ratio:g}): {raw_text}")
        self._set_path(self.std, std_path, std_steps, std_div, f"standardized: {std_text}")
        rate_text = ("best fixed rate 2/(λmax+λmin)" if rate_arg is None
                     else f"rate {rate_arg:g} x 2/λmax")
        return (f"scale ratio {ratio:g}, {rate_text}: condition number {raw_k:.1f} -> "
                f"{std_k:.2f}; steps to 1e-6 of the starting loss {raw_text.split()[0]} -> "
                f"{std_text.split()[0]}")


RATES = [("best: 2/(λmax+λmin)", 0.0), ("0.1 × 2/λmax", 0.1), ("0.5 × 2/λmax", 0.5),
         ("0.9 × 2/λmax", 0.9), ("1.05 × 2/λmax (too large)", 1.05)]


def loss_explorer() -> widgets.Explorer:
    """A slider for the ratio of the two features' scales and a choice of learning rate."""
    return widgets.Explorer(LossScene(), {
        "ratio": widgets.slider(10.0, 1.0, 30.0, 1.0, "feature scale ratio", ".0f"),
        "rate": widgets.choice(RATES, 0.0, "learning rate"),
    }, title="Elongated vs round loss surface")


# ---------------------------------------------------------------- inside the network

DRIFT_SIZES = (32, 32)     # two tanh hidden layers on the digits
DRIFT_STEPS, DRIFT_LR, DRIFT_EVERY = 200, 0.1, 10


def standardized_digits():
    """The digits with every pixel standardized on the training set (constant pixels dropped).

    Returns
    -------
    bnlib.data.Split
        x of shape (N, 60): the 60 pixels that vary in the training images.
    """
    split = data.digits(seed=0)
    keep = split.x_train.std(axis=0) > 0
    x_train, stats = standardize(split.x_train[:, keep], axis=0)
    x_test = apply_standardize(split.x_test[:, keep], stats)
    return data.Split(x_train, split.y_train, x_test, split.y_test)


@lru_cache(maxsize=16)
def preactivation_history(seed: int, steps: int = DRIFT_STEPS, lr: float = DRIFT_LR):
    """Train a tanh MLP (LeCun init, zero biases) on the digits and follow its pre-activations.

    Every ``DRIFT_EVERY`` steps, the whole training set goes through the network
    and each unit's pre-activation z = h W + b is summarized.

    Returns
    -------
    dict of ndarrays
        ``step`` (n_records,); ``mean1``, ``std1``, ``mean2``, ``std2`` of shape
        (n_records, 32): per-unit mean and std of layer 1's and layer 2's
        pre-activations; ``saturated2`` (n_records,): the fraction of layer 2's
        outputs with |tanh(z)| > 0.97; ``z2_last``: layer 2's pre-activations
        after the last step, shape (N, 32); ``accuracy`` (n_records,).
    """
    split = standardized_digits()
    model = nn.MLP((split.x_train.shape[1], *DRIFT_SIZES, 10), activation="tanh", seed=seed)

    def record(m):
        m.forward(split.x_train, training=False)
        values = {"saturated2": np.mean(np.abs(np.tanh(m.pre_activations[1])) > 0.97)}
        for layer in (1, 2):
            z = m.pre_activations[layer - 1]
            values.update({f"mean{layer}_{j}": v for j, v in enumerate(z.mean(axis=0))})
            values.update({f"std{layer}_{j}": v for j, v in enumerate(z.std(axis=0))})
        return values

    history = nn.train(model, split, steps=steps, batch_size=60, lr=lr, seed=seed,
                       eval_every=DRIFT_EVERY, record=record)
    r = history.recorded
    out = {"step": history.eval_step, "saturated2": r["saturated2"],
           "accuracy": history.test_accuracy}
    for name in ("mean1", "std1", "mean2", "std2"):
        out[name] = np.stack([r[f"{name}_{j}"] for j in range(DRIFT_SIZES[0])], axis=1)
    model.forward(split.x_train, training=False)
    out["z2_last"] = model.pre_activations[1].copy()
    return out


def preactivation_drift(seeds) -> dict:
    """How far layer 2's per-unit statistics move during training, per seed.

    Returns
    -------
    dict of ndarrays of shape (len(seeds),)
        ``std_low``, ``std_high``: the smallest and largest unit std at initialization;
        ``mean_high``: the largest |unit mean| at initialization;
        ``shift``: the largest move of a unit's mean, in units of its initial std;
        ``growth_low``, ``growth_high``: the smallest and largest final/initial std ratio;
        ``saturated_start``, ``saturated_end``: fraction of saturated outputs.
    """
    rows = []
    for seed in seeds:
        h = preactivation_history(seed)
        m, s = h["mean2"], h["std2"]
        growth = s[-1] / s[0]
        rows.append({"std_low": s[0].min(), "std_high": s[0].max(),
                     "mean_high": np.abs(m[0]).max(),
                     "shift": (np.abs(m[-1] - m[0]) / s[0]).max(),
                     "growth_low": growth.min(), "growth_high": growth.max(),
                     "saturated_start": h["saturated2"][0], "saturated_end": h["saturated2"][-1]})
    return {k: np.array([row[k] for row in rows]) for k in rows[0]}


def drift_figure(seeds):
    """Layer 2's unit stds and means over training: thin lines per unit (first seed), medians per seed."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for i, seed in enumerate(seeds):
        h = preactivation_history(seed)
        for ax, name in zip(axes, ("std2", "mean2")):
            if i == 0:
                ax.plot(h["step"], h[name], color="tab:blue", lw=0.5, alpha=0.5)
            ax.plot(h["step"], np.median(h[name], axis=1), color="k", lw=1.8,
                    ls=("-", "--", ":")[i % 3], label=f"median over units, seed {seed}")
    axes[0].axhline(1.0, color="tab:red", lw=1, label="standardized: 1")
    axes[1].axhline(0.0, color="tab:red", lw=1, label="standardized: 0")
    axes[0].set(xlabel="training step", ylabel="std of unit's z",
                title=f"layer 2 pre-activations: std per unit (thin: seed {seeds[0]})")
    axes[1].set(xlabel="training step", ylabel="mean of unit's z",
                title="... and mean per unit")
    for ax in axes:
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- whitening

def correlated_data(rho: float, ratio: float, n: int = 200, seed: int = 0):
    """Two features with correlation ``rho``, the first ``ratio`` times wider; a linear target.

    Returns
    -------
    x : ndarray of shape (n, 2)
    y : ndarray of shape (n,)
    """
    u = np.random.default_rng(seed).standard_normal((n, 3))
    f2 = rho * u[:, 0] + np.sqrt(1 - rho ** 2) * u[:, 1]
    x = np.stack([ratio * u[:, 0], f2], axis=1)
    return x, 1.5 * u[:, 0] + 1.0 * f2 + 0.1 * u[:, 2]


def whiten(x, eps: float = 0.0):
    """ZCA whitening: (x - mean) C^(-1/2), with C the (population) covariance matrix.

    Returns
    -------
    ndarray of the shape of x, shape (N, D)
        Its covariance is the identity (for a full-rank C and eps = 0).
    """
    centred = x - x.mean(axis=0)
    cov = centred.T @ centred / len(x)
    eig, vecs = np.linalg.eigh(cov)
    return centred @ (vecs / np.sqrt(eig + eps)) @ vecs.T


def condition_number(x) -> float:
    """l_max / l_min of x^T x / N, the Hessian of the squared-error loss of a linear model."""
    eig = np.linalg.eigvalsh(x.T @ x / len(x))
    return float(eig[-1] / eig[0])


def flop_counts(n: int, d: int) -> dict:
    """Rough multiply-add counts for normalizing a batch (N, D) per feature or by whitening.

    Per feature: a mean and a variance per column, then one subtract and divide per
    value (about 4 N D). Whitening: the covariance (N D^2), its eigendecomposition
    (about 9 D^3 for a symmetric matrix), and the (N, D) by (D, D) product (N D^2);
    its gradient costs as much again.
    """
    return {"per_feature": 4 * n * d, "whitening": 2 * n * d * d + 9 * d ** 3}
