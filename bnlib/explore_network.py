"""Lesson 05: batch norm inside a from-scratch network trained on the digits.

Pure compute functions train small :class:`bnlib.nn.MLP` networks and return
numbers (cached: the same settings are never trained twice in a session);
figure functions draw them; :func:`run_explorer` redraws a :class:`RunScene`
in place for each setting of its controls, looked up in a table of the runs
of every setting, trained ahead of time by the same code (``make tables``).
"""
from __future__ import annotations

import inspect
import itertools
import time
import warnings
from functools import lru_cache
from pathlib import Path

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
    return _train(norm, lr, init_scale, activation, position, sizes, steps, seed, eval_every)


def _train(norm, lr, init_scale, activation, position, sizes, steps, seed, eval_every,
           nudge: float = 0.0):
    """:func:`run` without the cache; every initial weight is multiplied by ``1 + nudge``."""
    model = nn.MLP(sizes, activation=activation, norm=norm, norm_position=position,
                   init_scale=init_scale, seed=seed)
    for weights in model.weights:
        weights *= 1.0 + nudge
    return model, nn.train(model, digits(), steps=steps, lr=lr, seed=seed, eval_every=eval_every)


def sensitivity(norm: str | None, *, lr: float, init_scale: float, nudge: float = 1e-15) -> float:
    """How far a rounding-sized nudge of the initial weights moves a run's loss curve.

    Trains the setting of :func:`run` (other settings at their defaults) a
    second time with every initial weight multiplied by ``1 + nudge`` and
    returns the largest relative difference between the two per-step loss
    curves, over the steps both ran. Near ``nudge`` means stable training (a
    last-bit difference, such as another CPU's rounding, stays that small);
    order 1 means chaotic training (it grows into a different curve).
    """
    base = run(norm, lr=lr, init_scale=init_scale)[1]
    nudged = _train(norm, lr, init_scale, **run_defaults(), nudge=nudge)[1]
    n = min(len(base.loss), len(nudged.loss))
    return float(np.max(np.abs(nudged.loss[:n] - base.loss[:n]) / np.abs(base.loss[:n])))


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
RUN_TABLE = Path(__file__).with_name("explore_network_runs.npz")
VARIED = ("norm", "lr", "init_scale")   # the settings of run() the explorer's controls choose


def run_defaults() -> dict:
    """The settings of :func:`run` the explorer leaves at their defaults (steps, seed, ...)."""
    return {name: p.default for name, p in inspect.signature(run).parameters.items()
            if name not in VARIED}


def explorer_settings() -> list:
    """Every setting the explorer's controls reach, as (lr, init_scale, batch_norm) tuples."""
    return list(itertools.product(LR_OPTIONS, SCALE_OPTIONS, (False, True)))


def _norm(batch_norm: bool):
    return "batch" if batch_norm else None


def _padded(rows: list, fill) -> np.ndarray:
    """Rows of different lengths (a diverged run stops early) as one array padded with ``fill``."""
    out = np.full((len(rows), max(map(len, rows))), fill, dtype=np.asarray(rows[0]).dtype)
    for row, values in zip(out, rows):
        row[:len(values)] = values
    return out


def _as_saved(settings: dict) -> dict:
    """Settings as they come back from an .npz file (tuples become lists)."""
    return {name: np.asarray(value).tolist() for name, value in settings.items()}


def write_run_table(path=RUN_TABLE) -> None:
    """Train every setting of the explorer with :func:`run`; save its curves (``make tables``).

    Per setting: the loss of each step, the evaluation steps, the test
    accuracies and the diverged flag, i.e. the :class:`bnlib.nn.History`
    that :class:`RunScene` and :func:`run_readout` use. Also the settings grid
    and, as ``run_<name>``, the training settings of :func:`run_defaults`, so
    that a table made with other settings is recognized. Training is
    deterministic: fixed seeds, one BLAS thread (:func:`bnlib.nn.train`).

    Parameters
    ----------
    path : str or Path
        The .npz file to write (compressed, no pickled objects).
    """
    grid = explorer_settings()
    _save_table(path, grid, [run(_norm(bn), lr=lr, init_scale=scale)[1] for lr, scale, bn in grid])


def _save_table(path, grid: list, hists: list) -> None:
    """Save the histories of the settings ``grid`` and today's :func:`run_defaults`."""
    lr, init_scale, batch_norm = (np.array(column) for column in zip(*grid))
    np.savez_compressed(
        path, lr=lr, init_scale=init_scale, batch_norm=batch_norm, **_history_arrays(hists),
        **{f"run_{name}": value for name, value in _as_saved(run_defaults()).items()})


def _history_arrays(hists: list) -> dict:
    """Histories as arrays with one row per run; :func:`_histories` reads them back."""
    return {"n_steps": [len(h.loss) for h in hists],
            "loss": _padded([h.loss for h in hists], np.nan),
            "n_evals": [len(h.eval_step) for h in hists],
            "eval_step": _padded([h.eval_step for h in hists], -1),
            "test_accuracy": _padded([h.test_accuracy for h in hists], np.nan),
            "diverged": [h.diverged for h in hists]}


def _histories(table: dict) -> dict:
    """(lr, init_scale, batch_norm) -> History, from the arrays of a run table."""
    keys = zip(table["lr"].tolist(), table["init_scale"].tolist(), table["batch_norm"].tolist())
    rows = zip(keys, table["n_steps"], table["loss"], table["n_evals"], table["eval_step"],
               table["test_accuracy"], table["diverged"])
    return {key: nn.History(step=np.arange(1, n + 1), loss=loss[:n], eval_step=evals[:m],
                            test_accuracy=acc[:m], diverged=bool(diverged))
            for key, n, loss, m, evals, acc, diverged in rows}


@lru_cache(maxsize=1)
def run_table(path=RUN_TABLE) -> dict:
    """The table written by :func:`write_run_table`, loaded once.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict of (lr, init_scale, batch_norm) -> bnlib.nn.History
        Empty, with a warning, if the table was made with other training
        settings than :func:`run_defaults` today: the explorer then trains
        every setting itself rather than show runs of another network.
    """
    with np.load(path) as npz:
        table = {name: npz[name] for name in npz.files}
    saved = {name[len("run_"):]: value.tolist() for name, value in table.items()
             if name.startswith("run_")}
    if saved != _as_saved(run_defaults()):
        warnings.warn(f"{Path(path).name} was made with other training settings "
                      f"({saved}); run `make tables`")
        return {}
    return _histories(table)


def explorer_run(lr: float, init_scale: float, batch_norm: bool) -> nn.History:
    """The 300-step run of one setting: from :func:`run_table`, else trained by :func:`run`.

    The history is shared with the table or the cache: treat it as read-only.
    """
    history = run_table().get((lr, init_scale, batch_norm))
    if history is None:
        history = run(_norm(batch_norm), lr=lr, init_scale=init_scale)[1]
    return history


def run_readout(label: str, history: nn.History) -> str:
    """The run explorer's line: final accuracy, first step at 90%, final loss and verdict."""
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
        h = explorer_run(lr, init_scale, batch_norm)
        label = f"{'with' if batch_norm else 'without'} BN, lr {lr:g}, init scale {init_scale:g}"
        self.lines[0].set_data(h.step, smooth(h.loss))
        self.lines[1].set_data(h.eval_step, h.test_accuracy)
        for legend in self.legends:
            legend.get_texts()[0].set_text(label)
        return run_readout(label, h)


def run_view(lr: float = 1.0, init_scale: float = 1.0, batch_norm: bool = True):
    """The curves of a 64-100-100-10 sigmoid network trained for 300 steps (:func:`explorer_run`).

    Returns
    -------
    fig : matplotlib Figure
    text : str
        Final test accuracy, the step it first reached 90%, and the verdict.
    """
    return RunScene().render(lr=lr, init_scale=init_scale, batch_norm=batch_norm)


def run_explorer() -> widgets.Explorer:
    """Learning rate, initialization scale and batch norm on/off; every run from the table."""
    style = {"description_width": "initial"}
    return widgets.Explorer(RunScene(), {
        "lr": ipywidgets.SelectionSlider(options=LR_OPTIONS, value=1.0,
                                         description="learning rate", style=style),
        "init_scale": ipywidgets.SelectionSlider(options=SCALE_OPTIONS, value=1.0,
                                                 description="init scale", style=style),
        "batch_norm": ipywidgets.Checkbox(value=True, description="batch norm"),
    }, title="A 64-100-100-10 sigmoid network trained for 300 steps "
             "(every setting trained ahead of time)")


if __name__ == "__main__":
    _started = time.perf_counter()
    write_run_table(RUN_TABLE)
    print(f"wrote {RUN_TABLE} ({RUN_TABLE.stat().st_size / 1024:.0f} kB) "
          f"in {time.perf_counter() - _started:.0f} s")
