"""Lesson 05: batch norm inside a from-scratch network trained on the digits.

Pure compute functions train small :class:`bnlib.nn.MLP` networks and return
numbers (cached: the same settings are never trained twice in a session);
figure functions draw them; :func:`run_explorer` redraws a :class:`RunScene`
in place when its Run button is clicked.
"""
from __future__ import annotations

from functools import lru_cache

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np

from bnlib import data, nn, widgets

SIZES = (64, 100, 100, 10)          # the lesson's default network
FIGURE1_SIZES = (64, 100, 100, 100, 10)
TRAINS = 0.9                        # "trains": test accuracy at least 90% at the end
NORMS = {"plain": None, "batch norm": "batch"}


@lru_cache(maxsize=1)
def digits() -> data.Split:
    """The digits split every experiment uses (cached)."""
    return data.digits()


@lru_cache(maxsize=256)
def run(norm: str | None = None, *, lr: float = 0.5, init_scale: float = 1.0,
        activation: str = "sigmoid", position: str = "before", sizes: tuple = SIZES,
        steps: int = 300, seed: int = 0, eval_every: int = 10):
    """Train one network on the digits; return ``(model, history)`` (cached).

    The same ``seed`` sets the weights and the minibatch order. Treat the
    returned model as read-only (the cache shares it).
    """
    model = nn.MLP(sizes, activation=activation, norm=norm, norm_position=position,
                   init_scale=init_scale, seed=seed)
    return model, nn.train(model, digits(), steps=steps, lr=lr, seed=seed, eval_every=eval_every)


def final_accuracies(norm, values, *, vary: str, seeds=(0,), **settings) -> np.ndarray:
    """Final test accuracy for each seed (rows) and each value of one setting (columns).

    ``vary`` names the setting of :func:`run` swept over ``values`` (e.g. "lr").
    A run that diverged counts as accuracy 0. Returns shape (len(seeds), len(values)).
    """
    return np.array([[run(norm, seed=s, **{vary: v}, **settings)[1].final_accuracy
                      for v in values] for s in seeds])


def largest_that_trains(values, accuracies, threshold: float = TRAINS):
    """The largest value whose runs all reach ``threshold`` (None if none does).

    accuracies : ndarray of shape (n_seeds, len(values)), from :func:`final_accuracies`.
    """
    ok = np.all(np.asarray(accuracies) >= threshold, axis=0)
    return max((v for v, good in zip(values, ok) if good), default=None)


def mean_curves(norm, seeds=(0, 1, 2), **settings):
    """Seed-averaged curves: (step, loss) per step and (eval_step, test accuracy)."""
    hists = [run(norm, seed=s, **settings)[1] for s in seeds]
    return (hists[0].step, np.mean([h.loss for h in hists], axis=0),
            hists[0].eval_step, np.mean([h.test_accuracy for h in hists], axis=0))


def smooth(values, window: int = 20) -> np.ndarray:
    """Trailing moving average (shorter window at the start), same length as ``values``."""
    values = np.asarray(values, dtype=float)
    c = np.cumsum(np.insert(values, 0, 0.0))
    n = np.arange(1, len(values) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)


def curves_figure(results: dict, title: str = ""):
    """Loss (smoothed) and test accuracy side by side.

    results : dict of label -> (step, loss, eval_step, accuracy), e.g. from :func:`mean_curves`.
    """
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    for label, (step, loss, eval_step, acc) in results.items():
        ax1.plot(step, smooth(loss), label=label)
        ax2.plot(eval_step, acc, label=label)
    ax1.set(xlabel="SGD step", ylabel="training loss (20-step mean)", title="loss", yscale="log")
    ax2.set(xlabel="SGD step", ylabel="test accuracy", title="test accuracy", ylim=(0, 1))
    for ax in (ax1, ax2):
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def sweep_figure(values, accuracies: dict, *, xlabel: str, title: str, threshold=TRAINS):
    """Final accuracy (mean over seeds) against a log-scaled setting, one line per network."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for label, acc in accuracies.items():
        ax.plot(values, np.mean(acc, axis=0), "o-", label=label)
    ax.axhline(threshold, color="gray", ls=":", label=f"{threshold:.0%} (trains)")
    ax.set(xscale="log", xlabel=xlabel, ylabel="final test accuracy", title=title, ylim=(0, 1))
    ax.legend()
    fig.tight_layout()
    return fig


# ----- Ioffe & Szegedy 2015, Figure 1 -----

def sigmoid_input_percentiles(model: nn.MLP, x, unit: int = 0, q=(15, 50, 85)) -> np.ndarray:
    """Percentiles of the input of one sigmoid in the last hidden layer, over the batch ``x``.

    The network runs as during training (batch statistics), and the moving
    statistics are restored afterwards, so measuring does not disturb training.
    Returns shape (len(q),).
    """
    saved = [(n.moving_mean, n.moving_variance) for n in model.norms if n is not None]
    model.forward(x, training=True)
    for n, (mean, var) in zip([n for n in model.norms if n is not None], saved):
        n.moving_mean, n.moving_variance = mean, var
    return np.percentile(model.pre_activations[-1][:, unit], q)


@lru_cache(maxsize=8)
def figure1(norm, *, steps: int = 2000, lr: float = 0.5, seed: int = 0, unit: int = 0,
            n_probe: int = 200):
    """Train the 3x100-sigmoid network, recording the 15/50/85th percentiles every 20 steps.

    The percentiles are taken over a fixed probe batch of ``n_probe`` test images.
    Returns the History; ``recorded`` holds "p15", "p50", "p85".
    """
    probe = digits().x_test[:n_probe]

    def record(model):
        return dict(zip(("p15", "p50", "p85"), sigmoid_input_percentiles(model, probe, unit)))

    model = nn.MLP(FIGURE1_SIZES, norm=norm, seed=seed)
    return nn.train(model, digits(), steps=steps, lr=lr, seed=seed, eval_every=20, record=record)


def band_drift(history: nn.History) -> dict:
    """How much the percentile band moved over training.

    Returns
    -------
    dict with
        "range": ndarray (3,), max - min over training of each percentile;
        "width": final band width p85 - p15;
        "drift": largest range divided by the final width (how many band widths
        the band wandered; small means a stable input distribution).
    """
    band = np.stack([history.recorded[k] for k in ("p15", "p50", "p85")])
    ranges = band.max(axis=1) - band.min(axis=1)
    width = float(band[2, -1] - band[0, -1])
    return {"range": ranges, "width": width, "drift": float(ranges.max() / width)}


def figure1_figure(plain: nn.History, batch: nn.History):
    """(a) test accuracy of both networks; (b, c) their percentile bands."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
    for h, label in ((plain, "without BN"), (batch, "with BN")):
        axes[0].plot(h.eval_step, h.test_accuracy, label=label)
    axes[0].set(xlabel="SGD step", ylabel="test accuracy", title="(a) test accuracy", ylim=(0, 1))
    axes[0].legend()
    for ax, h, label in ((axes[1], plain, "(b) without BN"), (axes[2], batch, "(c) with BN")):
        r = h.recorded
        ax.fill_between(h.eval_step, r["p15"], r["p85"], alpha=0.3, label="15th-85th")
        ax.plot(h.eval_step, r["p50"], label="median")
        ax.set(xlabel="SGD step", ylabel="input of one sigmoid", title=label, ylim=(-3.5, 3.5))
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


# ----- test-time mode -----

def mode_accuracies(model: nn.MLP, split, batch_sizes=(450, 10, 2, 1)) -> dict:
    """Test accuracy in inference mode and, wrongly, in training mode on test batches.

    In training mode each test batch is normalized with its own statistics; the
    moving statistics are restored afterwards. Returns {"inference": acc,
    "training, batch B": acc, ...}.
    """
    out = {"inference": nn.accuracy(model, split.x_test, split.y_test)}
    norms = [n for n in model.norms if n is not None]
    saved = [(n.moving_mean, n.moving_variance) for n in norms]
    for b in batch_sizes:
        preds = [model.forward(split.x_test[i:i + b], training=True).argmax(axis=1)
                 for i in range(0, len(split.x_test), b)]
        out[f"training, batch {b}"] = float(np.mean(np.concatenate(preds) == split.y_test))
    for n, (mean, var) in zip(norms, saved):
        n.moving_mean, n.moving_variance = mean, var
    return out


# ----- the explorer -----

LR_OPTIONS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
SCALE_OPTIONS = (0.01, 0.1, 1.0, 10.0, 100.0)
# Every setting of the explorer keeps its smoothed loss within 0.0147 (lr 10, init scale 10,
# batch norm) and 511 (lr 30, init scale 100, no batch norm): fixed limits, no redraw.
LOSS_LIMITS = (0.01, 1000.0)
STEP_LIMITS = (-15.0, 315.0)        # steps 0..300 with matplotlib's 5% margins


def run_readout(label: str, history: nn.History) -> str:
    """The Run explorer's line: final accuracy, first step at 90%, final loss and verdict."""
    reached = history.eval_step[history.test_accuracy >= TRAINS]
    first = f"reached 90% at step {reached[0]}" if len(reached) else "never reached 90%"
    verdict = ("diverged" if history.diverged else "trains" if history.final_accuracy >= TRAINS
               else "does not train (yet)")
    return (f"{label}: final test accuracy {history.final_accuracy:.1%}, {first}; "
            f"final loss {history.loss[-1]:.3g} -> {verdict}")


class RunScene(widgets.Scene):
    """Loss and test accuracy of one 300-step run of the 64-100-100-10 sigmoid network."""

    def build(self) -> None:
        self.fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
        self.lines, self.legends = [], []
        for ax in (ax1, ax2):
            self.lines.append(self.live(ax.plot([], [], label=" ")[0]))
            self.legends.append(self.live(ax.legend()))
            ax.set_xlim(*STEP_LIMITS)
        ax1.set(xlabel="SGD step", ylabel="training loss (20-step mean)", title="loss",
                yscale="log", ylim=LOSS_LIMITS)
        ax2.set(xlabel="SGD step", ylabel="test accuracy", title="test accuracy", ylim=(0, 1))
        # fixed margins: tight_layout would cost most of an update
        self.fig.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.9, wspace=0.25)

    def update(self, lr: float = 1.0, init_scale: float = 1.0, batch_norm: bool = True) -> str:
        _, h = run("batch" if batch_norm else None, lr=lr, init_scale=init_scale)
        label = f"{'with' if batch_norm else 'without'} BN, lr {lr:g}, init scale {init_scale:g}"
        self.lines[0].set_data(h.step, smooth(h.loss))
        self.lines[1].set_data(h.eval_step, h.test_accuracy)
        for legend in self.legends:
            legend.get_texts()[0].set_text(label)
        return run_readout(label, h)


def run_view(lr: float = 1.0, init_scale: float = 1.0, batch_norm: bool = True):
    """Train a 64-100-100-10 sigmoid network for 300 steps; plot its curves.

    Returns
    -------
    fig : matplotlib Figure
    text : str
        Final test accuracy, the step it first reached 90%, and the verdict.
    """
    return RunScene().render(lr=lr, init_scale=init_scale, batch_norm=batch_norm)


class RunExplorer(widgets.Explorer):
    """An :class:`bnlib.widgets.Explorer` that recomputes only when its Run button is clicked."""

    def __init__(self, view, controls: dict, title: str = ""):
        self.button = ipywidgets.Button(description="Run", button_style="primary")
        super().__init__(view, controls, title)
        for control in controls.values():
            control.unobserve(self._on_change, names="value")
        self.button.on_click(lambda _: self.update())

    def widget(self):
        parts = [ipywidgets.HTML(f"<b>{self.title}</b>")] if self.title else []
        parts += [ipywidgets.HBox(list(self.controls.values()) + [self.button]),
                  self.readout, self.output]
        return ipywidgets.VBox(parts)


def run_explorer() -> RunExplorer:
    """Learning rate, initialization scale and batch norm on/off; a new setting trains in ~0.3 s."""
    style = {"description_width": "initial"}
    return RunExplorer(RunScene(), {
        "lr": ipywidgets.SelectionSlider(options=LR_OPTIONS, value=1.0,
                                         description="learning rate", style=style),
        "init_scale": ipywidgets.SelectionSlider(options=SCALE_OPTIONS, value=1.0,
                                                 description="init scale", style=style),
        "batch_norm": ipywidgets.Checkbox(value=True, description="batch norm"),
    }, title="Train a 64-100-100-10 sigmoid network for 300 steps, then press Run")
