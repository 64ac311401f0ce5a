"""Lesson 10: the NumPy side (float32 cancellation, ghost batch norm), figures and the explorer.

The explorer reads a table of training runs on the real engine (Keras under
``tf.distribute.MirroredStrategy``, :mod:`bnlib.lessons.lesson10.experiments`),
written by ``python -m bnlib.lessons.lesson10.explore``: replicas x global
batch x per-replica or synchronized statistics, five seeds each. Nothing here
imports TensorFlow, except :func:`write_table`.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np

from bnlib import distributed, nn
from bnlib.course import seeds, tables, widgets
from bnlib.data import digits

FLOAT32_EPS = float(np.finfo(np.float32).eps)   # 1.2e-7; half of it is the rounding unit
TABLE = Path(__file__).with_name("runs.npz")
TABLE_SEEDS = (0, 1, 2, 3, 4)
TABLE_REPLICAS = (1, 2, 4)
TABLE_GLOBAL_BATCHES = (8, 16, 32)
MEASURES = ("inference", "batch_mode", "copies_spread")


# ---------------------------------------------------------------- float32 cancellation

def cancellation_errors(ratios, n: int = 64, d: int = 16, replicas: int = 4,
                        seed: int = 0) -> dict:
    """Relative error of the global variance in float32, three ways of all-reducing it.

    For each ratio r, a global batch x = r + N(0, 1) of shape (n, d) in float32
    (mean/std = r), split over ``replicas``. The reference is the two-pass
    variance of the same float32 numbers in float64.

    Returns
    -------
    dict of name -> ndarray of shape (len(ratios),), the largest relative error
    over the d features: "sums" (count, sum, sum of squares; Keras's form),
    "chan" (count, mean, variance per replica, Chan's formula), "shifted"
    (sums of x - K with K = replica 0's first example, broadcast), and "law",
    the sums form's expected size 0.5 * eps32 * r**2 (rounding of sum(x**2)/n).
    """
    rng = np.random.default_rng(seed)
    out = {"sums": [], "chan": [], "shifted": [], "law": []}
    for r in ratios:
        x = (r + rng.standard_normal((n, d))).astype(np.float32)
        true = x.astype(np.float64).var(axis=0)
        parts = distributed.split_replicas(x, replicas)
        total = np.sum([p.sum(axis=0) for p in parts], axis=0)
        total_sq = np.sum([(p * p).sum(axis=0) for p in parts], axis=0)
        _, naive = distributed.moments_from_sums(n, total, total_sq)
        local = [distributed.local_moments(p) for p in parts]
        chan = distributed.combine_moments([m.count for m in local], [m.mean for m in local],
                                           [m.variance for m in local]).variance
        sums = [distributed.shifted_sums(p, parts[0][0]) for p in parts]
        _, shifted = distributed.moments_from_shifted_sums(
            n, np.sum([s[1] for s in sums], axis=0), np.sum([s[2] for s in sums], axis=0),
            parts[0][0])
        for name, value in (("sums", naive), ("chan", chan), ("shifted", shifted)):
            out[name].append(float(np.max(np.abs(value - true) / true)))
        out["law"].append(0.5 * FLOAT32_EPS * r ** 2)
    return {name: np.array(values) for name, values in out.items()}


def cancellation_figure(ratios, errors: dict, keras: dict | None = None):
    """Relative variance error against mean/std, log-log; Keras's measured points on top."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    floor = 1e-9   # an exact result (error 0) drawn at the bottom
    styles = {"sums": ("o-", "tab:red", "count, sum, sum of squares (Keras's form)"),
              "chan": ("s-", "tab:green", "count, mean, variance: Chan's formula"),
              "shifted": ("^-", "tab:blue", "sums of x - K, K shared (shift trick)")}
    for name, (marker, color, label) in styles.items():
        ax.loglog(ratios, np.maximum(errors[name], floor), marker, color=color, label=label)
    ax.loglog(ratios, errors["law"], "k--", lw=1, label="0.5 eps32 (mean/std)$^2$")
    if keras is not None:
        ax.loglog(keras["ratios"], np.maximum(keras["relative_error"], floor), "x",
                  color="k", ms=9, mew=2, label="Keras synchronized=True, measured")
    ax.set(xlabel="mean / std of the data", ylabel="relative error of the variance",
           title="Global variance from per-replica pieces, in float32", ylim=(floor / 2, 1e3))
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- ghost batch norm

@functools.lru_cache(maxsize=None)
def hidden_unit(seed: int = 0) -> np.ndarray:
    """One hidden unit's input z = x @ w over the 1,347 training digits, w ~ N(0, 1/64)."""
    x = digits().x_train
    return x @ np.random.default_rng(seed).normal(0.0, 1.0 / 8.0, size=x.shape[1])


def ghost_mean_noise(ghost_sizes, batch: int = 256, n_batches: int = 400,
                     seed: int = 0) -> np.ndarray:
    """Spread of the mean an example is normalized with, inside batches of ``batch``.

    Batches of random training digits (with replacement) are cut into ghost
    batches; for each ghost size the result is the std of the ghost-batch
    mean of :func:`hidden_unit` around the population mean, in population-std
    units (the 1/sqrt(ghost_size) law of lesson 08).

    Returns ndarray of shape (len(ghost_sizes),).
    """
    z = hidden_unit()
    rng = np.random.default_rng(seed)
    values = z[rng.integers(0, z.size, size=(n_batches, batch))]
    out = []
    for g in ghost_sizes:
        means = values.reshape(n_batches, batch // g, g).mean(axis=2)
        out.append(float(np.std(means - z.mean()) / z.std()))
    return np.array(out)


GHOST_BATCH, GHOST_STEPS, GHOST_LR = 256, 100, 0.5


@functools.lru_cache(maxsize=None)
def ghost_run(ghost_size: int, seed: int) -> tuple[float, float]:
    """Train a 64-64-64-10 ReLU net with ghost batch norm on batches of 256; (test, train) accuracy.

    ghost_size = 256 is plain batch norm over the whole batch (what
    synchronized batch norm computes on any number of replicas).
    """
    split = digits()
    net = nn.MLP((64, 64, 64, 10), activation="relu", seed=seed,
                 norm=lambda w: distributed.GhostBatchNorm(w, ghost_size, momentum=0.9))
    history = nn.train(net, split, steps=GHOST_STEPS, batch_size=GHOST_BATCH, lr=GHOST_LR,
                       seed=seed, eval_every=GHOST_STEPS)
    return history.final_accuracy, nn.accuracy(net, split.x_train, split.y_train)


def ghost_claim(seeds_, ghost_sizes=(256, 16, 4)) -> dict:
    """Test and train accuracy per ghost size over seeds: dict ghost -> (test, train) arrays."""
    return {g: tuple(np.array(v) for v in zip(*(ghost_run(g, int(s)) for s in seeds_)))
            for g in ghost_sizes}


# ---------------------------------------------------------------- the table of runs

def table_settings() -> dict:
    """What the table's runs depend on besides the grid (a stale table is refused)."""
    from bnlib.lessons.lesson10 import experiments as ex   # TensorFlow: only to write the table

    return {"steps": ex.STEPS, "lr": ex.LR, "momentum": ex.MOMENTUM, "width": ex.WIDTH,
            "eval_rows": ex.EVAL_ROWS}


SETTINGS_SAVED = {"steps": 300, "lr": 0.05, "momentum": 0.9, "width": 64, "eval_rows": 448}


def write_table(path=TABLE) -> None:
    """Train every explorer setting on :data:`TABLE_SEEDS` and save the measures (.npz).

    Needs TensorFlow and the logical devices: run as
    ``python -m bnlib.lessons.lesson10.explore`` (about 3 minutes on 2 cores).
    """
    from bnlib import tf_distribute
    from bnlib.lessons.lesson10 import experiments as ex

    tf_distribute.configure_cpu_devices(ex.DEVICES)
    runs = ex.grid_runs(TABLE_SEEDS, TABLE_GLOBAL_BATCHES, TABLE_REPLICAS)
    keys = list(runs)
    arrays = {m: np.array([runs[k][m] for k in keys]) for m in MEASURES}
    tables.save(path, table_settings(), global_batch=np.array([k[0] for k in keys]),
                replicas=np.array([k[1] for k in keys]),
                synchronized=np.array([k[2] for k in keys]),
                seeds=np.array(TABLE_SEEDS), **arrays)


@functools.lru_cache(maxsize=None)
def table(path=TABLE) -> dict:
    """The table of :func:`write_table`: (global_batch, replicas, synchronized) -> measures.

    Returns
    -------
    dict of (int, int, bool) -> dict of name -> ndarray of shape (5,), one
    value per seed of :data:`TABLE_SEEDS` (the measures of
    ``experiments.run``). Empty, with a warning, if the table was made with
    other training settings than :data:`SETTINGS_SAVED`.
    """
    data = tables.load(path, SETTINGS_SAVED, "python -m bnlib.lessons.lesson10.explore")
    if not data:
        return {}
    keys = zip(data["global_batch"].tolist(), data["replicas"].tolist(),
               data["synchronized"].tolist())
    return {key: {m: data[m][i] for m in MEASURES} for i, key in enumerate(keys)}


def mismatch(entry: dict) -> np.ndarray:
    """Inference-mode minus batch-mode test accuracy, per seed (the train/inference mismatch)."""
    return entry["inference"] - entry["batch_mode"]


def per_replica_losses(runs: dict) -> dict:
    """Test-accuracy loss of per-replica against synchronized statistics, same global batch.

    Parameters
    ----------
    runs : dict of (global_batch, replicas, synchronized) -> measures
        :func:`table`, or ``experiments.grid_runs`` on other seeds.

    Returns
    -------
    dict of (global_batch, replicas) -> ndarray of shape (n_seeds,), for replicas > 1.
    """
    return {(g, r): runs[g, r, True]["inference"] - e["inference"]
            for (g, r, sync), e in sorted(runs.items()) if r > 1 and not sync}


def hurt_verdicts(losses: dict) -> dict:
    """Where per-replica statistics start to hurt: claim -> whether it holds (median over seeds).

    Only the claims with settings in ``losses`` are returned.
    """
    by_size = {}
    for (g, r), loss in losses.items():
        by_size.setdefault(g // r, []).append(np.median(loss))
    claims = {}
    large = [m for b, ms in by_size.items() if b >= 8 for m in ms]
    if large:
        claims["8 or more per replica: median loss under 1.5 points"] = max(large) < 0.015
    if 4 in by_size:
        claims["4 per replica: a small loss (median 0.5 to 5 points)"] = all(
            0.005 < m < 0.05 for m in by_size[4])
    if 2 in by_size:
        claims["2 per replica: median loss over 8 points"] = min(by_size[2]) > 0.08
    return claims


# ---------------------------------------------------------------- the explorer

ACC_LIMITS, GAP_LIMITS = (0.45, 1.0), (-0.05, 0.5)


def replica_readout(global_batch: int, replicas: int) -> str:
    """The explorer's lines: per-replica batch, accuracy and mismatch, both modes, 5 seeds."""
    t = table()
    lines = [f"global batch {global_batch} on {replicas} replica(s): "
             f"{global_batch // replicas} examples per replica"]
    for sync, name in ((False, "per-replica statistics"), (True, "synchronized          ")):
        e = t[global_batch, replicas, sync]
        lines.append(f"{name}: test accuracy {seeds.spread(e['inference'])}; "
                     f"mismatch {seeds.spread(mismatch(e))}")
    return "\n".join(lines)


class ReplicaScene(widgets.Scene):
    """Test accuracy and train/inference mismatch against replicas, for one global batch."""

    def build(self) -> None:
        _, axes = self.subplots(1, 2, figsize=(9, 3.3), bottom=0.17, top=0.88)
        x = np.array(TABLE_REPLICAS, dtype=float)
        self.artists = {}
        for ax, measure, ylabel, limits in ((axes[0], "inference", "test accuracy (inference)",
                                             ACC_LIMITS),
                                            (axes[1], "mismatch", "inference - batch-mode "
                                             "accuracy", GAP_LIMITS)):
            for sync, color, label in ((False, "tab:red", "per-replica statistics"),
                                       (True, "tab:blue", "synchronized")):
                line = self.live(ax.plot(x, np.zeros_like(x), "-", color=color, lw=2,
                                         label=label)[0])
                dots = self.live(ax.scatter(np.repeat(x, len(TABLE_SEEDS)),
                                            np.zeros(x.size * len(TABLE_SEEDS)), s=12,
                                            color=color, alpha=0.5))
                self.artists[measure, sync] = (line, dots)
            self.artists[measure, "cursor"] = self.live(ax.axvline(1.0, color="k", ls=":"))
            ax.set_xscale("log", base=2)
            ax.set_xticks(x, [str(r) for r in TABLE_REPLICAS])
            ax.minorticks_off()
            ax.set(xlabel="replicas", ylabel=ylabel, xlim=(0.8, 5.0), ylim=limits)
            ax.legend(fontsize=7, loc="lower left" if measure == "inference" else "upper left")
        self.title = self.live(self.fig.suptitle(" ", fontsize=10))

    def update(self, global_batch: int = 8, replicas: int = 4) -> str:
        t = table()
        x = np.array(TABLE_REPLICAS, dtype=float)
        for sync in (False, True):
            entries = [t[global_batch, r, sync] for r in TABLE_REPLICAS]
            for measure in ("inference", "mismatch"):
                values = np.array([e["inference"] if measure == "inference" else mismatch(e)
                                   for e in entries])        # (replicas, seeds)
                line, dots = self.artists[measure, sync]
                line.set_ydata(np.median(values, axis=1))
                # a small horizontal offset keeps the two modes' dots apart
                offset = 1.04 if sync else 0.96
                dots.set_offsets(np.column_stack([np.repeat(x * offset, values.shape[1]),
                                                  values.ravel()]))
        for measure in ("inference", "mismatch"):
            self.artists[measure, "cursor"].set_xdata([replicas, replicas])
        self.title.set_text(f"global batch {global_batch}: {global_batch // replicas} examples "
                            f"per replica at {replicas} replica(s) (5 seeds, dots)")
        return replica_readout(global_batch, replicas)


def replica_explorer() -> widgets.Explorer:
    """Global batch and number of replicas; every setting trained ahead of time."""
    style = {"description_width": "initial"}
    return widgets.Explorer(ReplicaScene(), {
        "global_batch": ipywidgets.SelectionSlider(options=TABLE_GLOBAL_BATCHES, value=8,
                                                   description="global batch", style=style),
        "replicas": ipywidgets.SelectionSlider(options=TABLE_REPLICAS, value=4,
                                               description="replicas", style=style),
    }, title="Per-replica vs synchronized batch norm under MirroredStrategy "
             "(300 SGD steps on the digits, 5 seeds, trained ahead of time)")


if __name__ == "__main__":
    _started = time.perf_counter()
    write_table(TABLE)
    print(f"wrote {TABLE} ({TABLE.stat().st_size / 1024:.1f} kB) "
          f"in {time.perf_counter() - _started:.0f} s")
