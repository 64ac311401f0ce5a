"""Lesson 06: covariate shift, importance weighting, and what batch norm does to a layer's inputs.

Part 1 (one input, no network): a straight line fit to a curved function on a
source sample and judged on a shifted target sample, plain and importance
weighted (true density ratio, or one estimated by a source-vs-target
classifier). Part 2 draws the network experiments of :mod:`bnlib.internal_shift`:
a layer's input distribution over training, the compounding of shifts with
depth, and the loss surface along the gradient.
"""
from __future__ import annotations

from functools import lru_cache

import matplotlib.pyplot as plt
import numpy as np

from bnlib import data, internal_shift, widgets


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


def shift_view(shift: float = 1.5):
    """Left: the samples, the true curve and the three lines. Right: the input densities.

    Returns
    -------
    fig : matplotlib Figure
    text : str
        Target errors of the plain and weighted lines, and the effective sample size.
    """
    r = shift_experiment(float(shift))
    d = r["data"]
    grid = np.linspace(-2.5, 5.0, 200)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    ax.scatter(d.x_source, d.y_source, s=5, alpha=0.35, color="tab:blue", label="source")
    ax.scatter(d.x_target, d.y_target, s=5, alpha=0.35, color="tab:orange", label="target")
    ax.plot(grid, data.true_function(grid), color="black", lw=1, label="E[y|x]")
    for key, color, label in (("plain", "tab:blue", "plain line"),
                              ("known", "tab:green", "weighted, true P_T/P_S"),
                              ("estimated", "tab:red", "weighted, classifier")):
        ax.plot(grid, predict_line(r[key], grid), color=color, ls="--", label=label)
    ax.set(xlim=(-2.5, 5.0), ylim=(-3, 4), xlabel="x", ylabel="y",
           title=f"Lines fit on the source, shift = {shift:.1f}")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)  # off the data
    ax2.plot(grid, d.source_pdf(grid), label="P_S(x)")
    ax2.plot(grid, d.target_pdf(grid), label="P_T(x)")
    ax2.set(xlabel="x", ylabel="density", title="Input distributions")
    ax2.legend(fontsize=8)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.27, top=0.92, wspace=0.25)
    e = r["errors"]
    text = (f"target MSE  plain {e['plain'][1]:.3f} | weighted (true densities) "
            f"{e['known'][1]:.3f} | weighted (classifier) {e['estimated'][1]:.3f} | "
            f"best line {e['best'][1]:.3f}\neffective sample size of the weights: "
            f"{r['ess']['known']:.0f} of {len(d.x_source)}")
    return fig, text


def shift_explorer() -> widgets.Explorer:
    """A slider for how far the target's inputs are moved from the source's."""
    return widgets.Explorer(shift_view, {
        "shift": widgets.slider(1.5, 0.0, 3.0, 0.25, "target shift"),
    }, title="Covariate shift and importance weighting")


NETS = {"none": "no batch norm", "batch": "batch norm", "noisy": "noisy batch norm"}


def layer_input_view(unit: int = 0, nets=("none", "batch", "noisy"), **run_options):
    """The 15th/50th/85th percentiles of one unit's input in the last hidden layer, over training.

    One panel per network, trained by :func:`bnlib.internal_shift.shift_run`
    (``run_options`` are passed on; the default is the lesson's setting).

    Returns
    -------
    fig : matplotlib Figure
    text : str
        Per network: how far the unit's band moved from start to end, the
        layer's average movement per record, and the final test accuracy.
    """
    fig, axes = plt.subplots(1, len(nets), figsize=(3.3 * len(nets), 2.9), sharey=True)
    lines = []
    for ax, net in zip(np.atleast_1d(axes), nets):
        r = internal_shift.shift_run(net, **run_options)
        steps, q = r["history"].eval_step, r["quantiles"][:, :, unit]
        ax.fill_between(steps, q[:, 0], q[:, 2], alpha=0.3, color="tab:blue", label="15-85th")
        ax.plot(steps, q[:, 1], color="tab:blue", label="median")
        ax.set(title=NETS[net], xlabel="training step")
        unit_move = np.abs(q[-1] - q[0]).mean()
        m = r["movement"]
        lines.append(f"{NETS[net]:>17}: unit {unit} moved {unit_move:.2f}; layer: "
                     f"{m['total']:.2f} in all, {m['per_step']:.3f} per record; "
                     f"test accuracy {r['history'].final_accuracy:.3f}")
    axes[0].set_ylabel(f"input of unit {unit}, last hidden layer")
    axes[0].legend(fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.17, top=0.88, wspace=0.08)
    return fig, "\n".join(lines)


def layer_input_explorer(**run_options) -> widgets.Explorer:
    """A slider picking which unit of the last hidden layer to watch (runs are cached)."""
    return widgets.Explorer(lambda unit: layer_input_view(unit, **run_options), {
        "unit": widgets.int_slider(0, 0, internal_shift.SIZES[-2] - 1, 1, "unit"),
    }, title="A deep layer's input distribution during training")


def compounding_view(**options):
    """Shift of each hidden layer's input after all layers' weights move a little.

    Returns
    -------
    fig : matplotlib Figure
    text : str
    """
    shifts = {net: internal_shift.compounding_shift(net, **options) for net in ("none", "batch")}
    depth = np.arange(1, len(shifts["none"]) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for net, values in shifts.items():
        ax.plot(depth, values, marker="o", label=NETS[net])
    ax.set(xlabel="hidden layer", ylabel="shift of its input (in its own widths)",
           title="Small changes everywhere add up with depth", ylim=(0, None))
    ax.legend()
    fig.subplots_adjust(left=0.16, right=0.97, bottom=0.15, top=0.9)
    text = "\n".join(f"{NETS[n]:>14}: " + " ".join(f"{v:.3f}" for v in vals)
                      for n, vals in shifts.items())
    return fig, text


def landscape_view(**options):
    """Loss range and gradient change along the gradient direction, with and without batch norm.

    Returns
    -------
    fig : matplotlib Figure
    text : str
        The means over every probe after the first (step 0).
    """
    runs = {net: internal_shift.landscape_run(net, **options) for net in ("none", "batch")}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    keys = (("loss_range", "loss range along the gradient"),
            ("grad_change", "largest gradient change"))
    for ax, (key, title) in zip(axes, keys):
        for net, r in runs.items():
            ax.plot(r["history"].eval_step, r[key], marker=".", label=NETS[net])
        ax.set(yscale="log", xlabel="training step", title=title)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("max - min of the loss")
    axes[1].set_ylabel("max ||grad(step) - grad||")
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.16, top=0.9, wspace=0.3)
    text = "\n".join(f"{NETS[n]:>14}: loss range {r['loss_range'][1:].mean():.3f}, gradient "
                      f"change {r['grad_change'][1:].mean():.3f}, smoothness ratio "
                      f"{r['beta'][1:].mean():.2f}" for n, r in runs.items())
    return fig, text
