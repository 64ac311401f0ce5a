"""Lesson 05: batch norm inside a from-scratch network trained on the digits.

Pure compute functions train small :class:`bnlib.nn.MLP` networks and return
numbers (cached: the same settings are never trained twice in a session);
figure functions draw them; :func:`run_explorer` redraws a :class:`RunScene`
in place for each setting of its controls, looked up in a table of the runs
of every setting, trained ahead of time by the same code (``make tables``).

The lesson's claims about training are functions of ``seeds``
(:func:`speed_up`, :func:`learning_rates`, :func:`init_scales`,
:func:`depth`, :func:`placement`, :func:`figure1_claim`,
:func:`stability`, :func:`gamma_beta_moved`, :func:`inference_modes`),
each returning a :class:`Claim`: the numbers per seed and the checks they
pass. The lesson runs them on :data:`bnlib.course.seeds.LESSON_SEEDS`, the slow
tests on :data:`bnlib.course.seeds.TEST_SEEDS`. A run that a 1e-15 nudge of its
initial weights changes by more than :data:`REPRODUCIBLE` (a *chaotic*
run, :func:`sensitivity`) is never reported as a number, only as a verdict
with a wide margin.
"""
from __future__ import annotations

import inspect
import itertools
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np

from bnlib import data, nn
from bnlib.course import checks, plots, widgets
from bnlib.course.seeds import LESSON_SEEDS, diverged, spread

SIZES = (64, 100, 100, 10)          # the lesson's default network
FIGURE1_SIZES = (64, 100, 100, 100, 10)
DEEP_SIZES = (64,) + (50,) * 8 + (10,)
TRAINS = 0.9                        # "trains": test accuracy at least 90% at the end
NORMS = {"plain": None, "batch norm": "batch"}
# A run is reproducible if a 1e-15 nudge of its initial weights moves its loss curve by less
# than this (relative); above it, chaotic. Measured on the lesson's and the tests' seeds, and
# under other CPUs' numerics: most reproducible runs stay below 1e-9, the most sensitive one
# (batch norm, lr 10, seed 2) reaches 2e-6; chaotic runs grow to order 1 (a few stop at
# 1e-3, at settings that other seeds show chaotic too). The numbers the lesson prints come
# from runs below 1e-9 (tests/test_explore_network.py checks it).
REPRODUCIBLE = 1e-4


@lru_cache(maxsize=1)
def digits() -> data.Split:
    """The digits split every experiment uses (cached)."""
    return data.digits()


@lru_cache(maxsize=512)
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


def _run_settings(settings: dict) -> dict:
    """Every setting of :func:`run` except ``norm``: its defaults, updated by ``settings``."""
    defaults = {name: p.default for name, p in inspect.signature(run).parameters.items()
                if name != "norm"}
    unknown = set(settings) - set(defaults)
    if unknown:
        raise TypeError(f"run() has no setting {sorted(unknown)}; it has {sorted(defaults)}")
    return {**defaults, **settings}


@lru_cache(maxsize=1024)
def sensitivity(norm: str | None, *, nudge: float = 1e-15, **settings) -> float:
    """How far a rounding-sized nudge of the initial weights moves a run's loss curve.

    Trains the setting of :func:`run` (``settings`` are its keyword
    arguments, the others at their defaults) a second time with every initial
    weight multiplied by ``1 + nudge`` and returns the largest relative
    difference between the two per-step loss curves (infinite if one run
    stopped, diverged, before the other). Near ``nudge`` means stable training (a
    last-bit difference, such as another CPU's rounding, stays that small);
    order 1 means chaotic training (it grows into a different curve).
    Cached, like :func:`run`.
    """
    full = _run_settings(settings)
    base = run(norm, **settings)[1].loss
    nudged = _train(norm, **full, nudge=nudge)[1].loss
    finite = np.isfinite(base)
    if len(base) != len(nudged) or np.any(finite != np.isfinite(nudged)):
        return float("inf")
    return float(np.max(np.abs(nudged[finite] - base[finite]) / np.abs(base[finite]),
                        initial=0.0))


def first_step_at(history: nn.History, threshold: float = TRAINS) -> float:
    """The first evaluation step with test accuracy >= ``threshold`` (inf if none)."""
    reached = history.eval_step[history.test_accuracy >= threshold]
    return float(reached[0]) if len(reached) else np.inf


# ----- claims over seeds -----

@dataclass
class Claim:
    """A lesson claim measured on several seeds.

    Attributes
    ----------
    seeds : tuple of int
    values : dict
        The measurements, arrays with one entry per seed (see each claim function).
    checks : list of (statement, holds, detail)
        What the lesson asserts; ``detail`` holds only numbers that a 1e-15
        nudge cannot change (verdicts for chaotic runs).
    """

    seeds: tuple
    values: dict
    checks: list = field(default_factory=list)

    def add(self, statement: str, holds, detail: str = "") -> None:
        self.checks.append((statement, bool(holds), detail))

    @property
    def holds(self) -> bool:
        """True if every check holds."""
        return all(ok for _, ok, _ in self.checks)

    def failures(self) -> list:
        """The checks that do not hold (statement and detail), for a test's message."""
        return [f"{s} ({d})" for s, ok, d in self.checks if not ok]

    def check(self) -> None:
        """Print every check with :func:`bnlib.course.checks.assert_true`; raise at the first failure."""
        for statement, ok, detail in self.checks:
            checks.assert_true(statement, ok, detail)


def _seeds(seeds) -> tuple:
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    return seeds


def pct(values) -> str:
    """Fractions as percentages, laid out like :func:`bnlib.course.seeds.spread`:
    ``"median 94% (86 to 94%, 3 seeds)"``."""
    v = 100 * np.asarray(values, dtype=float)
    return f"median {np.median(v):.0f}% ({v.min():.0f} to {v.max():.0f}%, {v.size} seeds)"


def points(values) -> str:
    """Differences of fractions in percentage points: ``"median 23 points (21 to 29, 3 seeds)"``."""
    return spread(100 * np.asarray(values, dtype=float), ".0f").replace(" (", " points (", 1)


def speed_up(seeds=LESSON_SEEDS, *, lr: float = 0.5, steps: int = 600) -> Claim:
    """With vs without batch norm: steps to 90% test accuracy, and the lead on the way.

    The 64-100-100-10 sigmoid network, ``steps`` SGD steps at rate ``lr``.
    ``values``: "first_90", "at_200", "final" (dict label -> ndarray (n_seeds,))
    and "ratio" (plain's steps to 90% over batch norm's, per seed).
    """
    seeds = _seeds(seeds)
    hists = {label: [run(norm, lr=lr, steps=steps, seed=s)[1] for s in seeds]
             for label, norm in NORMS.items()}
    first = {k: np.array([first_step_at(h) for h in hs]) for k, hs in hists.items()}
    at_200 = {k: np.array([h.accuracy_at(200) for h in hs]) for k, hs in hists.items()}
    final = {k: np.array([h.final_accuracy for h in hs]) for k, hs in hists.items()}
    claim = Claim(seeds, {"first_90": first, "at_200": at_200, "final": final})
    both = np.all(np.isfinite(first["plain"]) & np.isfinite(first["batch norm"]))
    claim.add(f"both networks reach 90% within {steps} steps, on every seed", both)
    if not both:
        return claim
    ratio = first["plain"] / first["batch norm"]
    lead = at_200["batch norm"] - at_200["plain"]
    claim.values["ratio"] = ratio
    claim.add("batch norm gets there first, on every seed", np.all(ratio > 1),
              f"steps to 90%: plain {spread(first['plain'], '.0f')}, "
              f"batch norm {spread(first['batch norm'], '.0f')}")
    claim.add("at least twice as fast (median over seeds)", np.median(ratio) >= 2,
              f"{spread(ratio, '.1f')} times fewer steps")
    claim.add("ahead at step 200 on every seed, by 15 points or more on the median",
              np.all(lead > 0.05) and np.median(lead) > 0.15, f"lead {points(lead)}")
    claim.add("and not behind at the end, on every seed",
              np.all(final["batch norm"] >= final["plain"] - 0.01))
    return claim


def seed_curves(norm, seeds=LESSON_SEEDS, **settings):
    """Per-seed curves: step (n_steps,), loss (n_seeds, n_steps), eval_step, accuracy (n_seeds, n_evals)."""
    hists = [run(norm, seed=s, **settings)[1] for s in _seeds(seeds)]
    return (hists[0].step, np.array([h.loss for h in hists]),
            hists[0].eval_step, np.array([h.test_accuracy for h in hists]))


@dataclass(frozen=True)
class Sweep:
    """Final test accuracy of one network over seeds (rows) and values of one setting (columns).

    Attributes
    ----------
    values : tuple, the swept values
    seeds : tuple of int
    accuracy : ndarray of shape (n_seeds, n_values), final test accuracy (0 if diverged)
    sensitivity : ndarray of shape (n_seeds, n_values), :func:`sensitivity` of each run
    """

    values: tuple
    seeds: tuple
    accuracy: np.ndarray
    sensitivity: np.ndarray

    @property
    def chaotic(self) -> np.ndarray:
        """(n_seeds, n_values) bool: the run's sensitivity exceeds :data:`REPRODUCIBLE`."""
        return self.sensitivity > REPRODUCIBLE

    @property
    def trains(self) -> np.ndarray:
        """(n_seeds, n_values) bool: reproducible and at least 90% at the end."""
        return (self.accuracy >= TRAINS) & ~self.chaotic

    def verdicts(self) -> list:
        """Per value: "trains" (every seed), "fails" (no seed), "k of n seeds", or "chaotic"."""
        out = []
        for trains, chaotic in zip(self.trains.T, self.chaotic.T):
            out.append("chaotic" if chaotic.any() else "trains" if trains.all()
                       else "fails" if not trains.any() else f"{trains.sum()} of {trains.size} seeds")
        return out

    def summaries(self) -> list:
        """Per value: median and range of the accuracy in %, or "chaotic" (no numbers)."""
        return ["chaotic" if chaotic.any() else
                f"{np.median(acc):.0%} ({acc.min():.0%}-{acc.max():.0%})"
                for acc, chaotic in zip(self.accuracy.T, self.chaotic.T)]


def sweep(norm, values, *, vary: str, seeds=LESSON_SEEDS, **settings) -> Sweep:
    """Train ``norm``'s network for every seed and every value of the setting ``vary``."""
    seeds, values = _seeds(seeds), tuple(values)
    grid = [[{vary: v, "seed": s, **settings} for v in values] for s in seeds]
    return Sweep(values, seeds,
                 np.array([[run(norm, **kw)[1].final_accuracy for kw in row] for row in grid]),
                 np.array([[sensitivity(norm, **kw) for kw in row] for row in grid]))


def largest_that_trains(values, trains):
    """The largest value at which every seed trains (None if there is none).

    trains : bool ndarray of shape (n_seeds, len(values)), e.g. :attr:`Sweep.trains`.
    """
    ok = np.all(np.asarray(trains, dtype=bool), axis=0)
    return max((v for v, good in zip(values, ok) if good), default=None)


LEARNING_RATES = (0.1, 0.3, 1.0, 3.0, 10.0)
FAILS = 0.5   # "fails" with a wide margin: below 50% test accuracy at the end


def learning_rates(seeds=LESSON_SEEDS, lrs=LEARNING_RATES, *, steps: int = 300) -> Claim:
    """Which learning rates train the ReLU network, with and without batch norm.

    ``values``: "sweeps" (label -> :class:`Sweep` over ``lrs``) and "largest"
    (label -> the largest rate at which every seed trains, reproducibly).
    """
    seeds, lrs = _seeds(seeds), tuple(lrs)
    sweeps = {label: sweep(norm, lrs, vary="lr", seeds=seeds, steps=steps, activation="relu")
              for label, norm in NORMS.items()}
    largest = {label: largest_that_trains(lrs, s.trains) for label, s in sweeps.items()}
    claim = Claim(seeds, {"sweeps": sweeps, "largest": largest})
    bn, plain = largest["batch norm"], largest["plain"]
    claim.add("batch norm trains every seed, reproducibly, at every rate up to 3",
              bn is not None and bn >= 3)
    high = [i for i, v in enumerate(lrs) if v >= 3]
    claim.add("the plain network fails at rates 3 and 10, on every seed (below 50%)",
              len(high) > 0 and np.all(sweeps["plain"].accuracy[:, high] < FAILS))
    claim.add("at lr 1 the plain network's training is chaotic on at least one seed",
              1.0 in lrs and np.any(sweeps["plain"].chaotic[:, lrs.index(1.0)]))
    claim.add("so the largest rate that trains every seed is 10 times larger with batch norm",
              plain is not None and bn is not None and bn >= 10 * plain,
              f"{bn:g} vs {plain:g}" if plain and bn else "")
    return claim


INIT_SCALES = (0.01, 0.1, 1.0, 10.0, 100.0)


def init_scales(seeds=LESSON_SEEDS, scales=INIT_SCALES, *, lr: float = 1.0) -> Claim:
    """Which initialization scales train the sigmoid network (300 steps at ``lr``).

    ``values``: "sweeps" (label -> :class:`Sweep` over ``scales``).
    """
    seeds, scales = _seeds(seeds), tuple(scales)
    sweeps = {label: sweep(norm, scales, vary="init_scale", seeds=seeds, lr=lr)
              for label, norm in NORMS.items()}
    claim = Claim(seeds, {"sweeps": sweeps})
    bn, plain = sweeps["batch norm"], sweeps["plain"]
    up_to_10 = [i for i, s in enumerate(scales) if s <= 10]
    claim.add("batch norm: median at least 90% at every scale from 0.01 to 10",
              np.all(np.median(bn.accuracy[:, up_to_10], axis=0) >= TRAINS))
    claim.add("batch norm: every seed above 80% at every scale, 100 included",
              np.all(bn.accuracy > 0.8))
    n_ok = int(np.sum(np.median(plain.accuracy, axis=0) >= TRAINS))
    claim.add("plain: the median reaches 90% at two scales at most", n_ok <= 2,
              f"{n_ok} of {len(scales)}")
    small = [i for i, s in enumerate(scales) if s <= 0.1]
    claim.add("plain: below 30% at s = 0.01 and 0.1, on every seed",
              np.all(plain.accuracy[:, small] < 0.3))
    if 100.0 in scales:
        claim.add("plain: below 80% at s = 100, on every seed",
                  np.all(plain.accuracy[:, scales.index(100.0)] < 0.8))
    return claim


def depth(seeds=LESSON_SEEDS, *, sizes=DEEP_SIZES, lr: float = 1.0) -> Claim:
    """Eight sigmoid layers of 50 units, 300 steps: final test accuracy with and without BN.

    ``values``: "final" (label -> ndarray (n_seeds,)).
    """
    seeds = _seeds(seeds)
    final = {label: np.array([run(norm, sizes=sizes, lr=lr, seed=s)[1].final_accuracy
                              for s in seeds]) for label, norm in NORMS.items()}
    claim = Claim(seeds, {"final": final})
    claim.add("batch norm: median final accuracy at least 90%",
              np.median(final["batch norm"]) >= TRAINS, pct(final["batch norm"]))
    claim.add("batch norm: every seed above 75%", np.all(final["batch norm"] > 0.75))
    claim.add("plain: every seed at chance level (below 15%)", np.all(final["plain"] < 0.15),
              pct(final["plain"]))
    return claim


PLACEMENTS = {"sigmoid": dict(lr=0.5, steps=600), "relu": dict(lr=0.3, steps=300)}


def placement(seeds=LESSON_SEEDS, configs=PLACEMENTS) -> Claim:
    """Batch norm before vs after the activation, for sigmoid and ReLU networks.

    ``values``: "at_100", "final", "train_loss" (mean over the last 50 steps),
    each a dict (activation, position) -> ndarray (n_seeds,).
    """
    seeds = _seeds(seeds)
    at_100, final, loss = {}, {}, {}
    for act, cfg in configs.items():
        for pos in ("before", "after"):
            hs = [run("batch", seed=s, activation=act, position=pos, **cfg)[1] for s in seeds]
            at_100[act, pos] = np.array([h.accuracy_at(100) for h in hs])
            final[act, pos] = np.array([h.final_accuracy for h in hs])
            loss[act, pos] = np.array([h.loss[-50:].mean() for h in hs])
    claim = Claim(seeds, {"at_100": at_100, "final": final, "train_loss": loss})
    gap = at_100["sigmoid", "before"] - at_100["sigmoid", "after"]
    claim.add("sigmoid: 'before' is ahead at step 100, on every seed", np.all(gap > 0.05),
              f"by {points(gap)}")
    for act in configs:
        diff = np.median(final[act, "before"]) - np.median(final[act, "after"])
        worst = np.max(np.abs(final[act, "before"] - final[act, "after"]))
        claim.add(f"{act}: median final accuracies within 1.5 points, every seed within 2",
                  abs(diff) < 0.015 and worst < 0.02)
    claim.add("sigmoid: 'after' reaches the lower training loss, on every seed",
              np.all(loss["sigmoid", "after"] < loss["sigmoid", "before"]))
    return claim


STABILITY = {"batch norm, lr 10": ("batch", 10.0), "plain, lr 10": (None, 10.0),
             "batch norm, lr 30": ("batch", 30.0)}


def stability(seeds=LESSON_SEEDS) -> Claim:
    """:func:`sensitivity` of the explorer's network (300 steps, init scale 1) at large rates.

    ``values``: "sensitivity" and "final" (setting name of :data:`STABILITY` -> ndarray (n_seeds,)).
    """
    seeds = _seeds(seeds)
    sens = {k: np.array([sensitivity(norm, lr=lr, seed=s) for s in seeds])
            for k, (norm, lr) in STABILITY.items()}
    final = {k: np.array([run(norm, lr=lr, seed=s)[1].final_accuracy for s in seeds])
             for k, (norm, lr) in STABILITY.items()}
    claim = Claim(seeds, {"sensitivity": sens, "final": final})
    claim.add(f"batch norm, lr 10: reproducible on every seed (the loss curve moves by less "
              f"than {REPRODUCIBLE:.0e})",
              np.all(sens["batch norm, lr 10"] < REPRODUCIBLE))
    chaotic = sens["plain, lr 10"] > REPRODUCIBLE
    stuck = final["plain, lr 10"] < 0.2
    claim.add("plain, lr 10: on every seed chaotic or stuck near chance (below 20%)",
              np.all(chaotic | stuck),
              f"chaotic on seeds {[s for s, c in zip(seeds, chaotic) if c]}, "
              f"reproducibly stuck on {[s for s, c, k in zip(seeds, chaotic, stuck) if k and not c]}")
    claim.add("batch norm, lr 30: chaotic on every seed",
              np.all(sens["batch norm, lr 30"] > REPRODUCIBLE))
    return claim


def _band(ax, x, ys, label, color=None):
    """Median line over seeds (rows of ``ys``) and a shaded band from the lowest to the highest."""
    ys = np.asarray(ys, dtype=float)
    line, = ax.plot(x, np.median(ys, axis=0), color=color, label=label)
    if len(ys) > 1:
        ax.fill_between(x, ys.min(axis=0), ys.max(axis=0), color=line.get_color(), alpha=0.25,
                        lw=0)
    return line


def curves_figure(results: dict, title: str = ""):
    """Loss (smoothed) and test accuracy side by side: median over seeds, band from min to max.

    results : dict of label -> (step, loss, eval_step, accuracy), loss of shape
        (n_seeds, n_steps) and accuracy (n_seeds, n_evals), e.g. from :func:`seed_curves`.
    """
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    for label, (step, loss, eval_step, acc) in results.items():
        _band(ax1, step, [plots.smooth(row) for row in np.atleast_2d(loss)], label)
        _band(ax2, eval_step, np.atleast_2d(acc), label)
    ax1.set(xlabel="SGD step", ylabel="training loss (20-step mean)", title="loss", yscale="log")
    ax2.set(xlabel="SGD step", ylabel="test accuracy", title="test accuracy", ylim=(0, 1))
    for ax in (ax1, ax2):
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def sweep_figure(sweeps: dict, *, xlabel: str, title: str, threshold=TRAINS):
    """Final accuracy against a log-scaled setting: each seed (thin), the median (thick).

    sweeps : dict of label -> :class:`Sweep`. A chaotic run is drawn as an x: its
    accuracy depends on round-off, another CPU may put it elsewhere.
    """
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for label, s in sweeps.items():
        x = np.array(s.values, dtype=float)
        line, = ax.plot(x, np.median(s.accuracy, axis=0), "o-", lw=2, label=f"{label} (median)")
        for acc, chaotic in zip(s.accuracy, s.chaotic):
            ax.plot(x, acc, "-", color=line.get_color(), lw=0.8, alpha=0.5)
            ax.plot(x[chaotic], acc[chaotic], "x", color=line.get_color(), ms=7)
    ax.plot([], [], "x", color="gray", label="a chaotic run")
    ax.axhline(threshold, color="gray", ls=":", label=f"{threshold:.0%} (trains)")
    ax.set(xscale="log", xlabel=xlabel, ylabel="final test accuracy", ylim=(0, 1),
           title=f"{title}, {len(next(iter(sweeps.values())).seeds)} seeds")
    ax.legend(fontsize="small")
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


@lru_cache(maxsize=64)
def figure1(norm, *, steps: int = 2000, lr: float = 0.5, seed: int = 0, unit: int = 0,
            n_probe: int = 200, nudge: float = 0.0):
    """Train the 3x100-sigmoid network, recording the 15/50/85th percentiles every 20 steps.

    The percentiles are taken over a fixed probe batch of ``n_probe`` test images.
    ``nudge`` multiplies every initial weight by ``1 + nudge`` (to measure
    :func:`figure1_sensitivity`). Returns the History; ``recorded`` holds "p15", "p50", "p85".
    """
    probe = digits().x_test[:n_probe]

    def record(model):
        return dict(zip(("p15", "p50", "p85"), sigmoid_input_percentiles(model, probe, unit)))

    model = nn.MLP(FIGURE1_SIZES, norm=norm, seed=seed)
    for weights in model.weights:
        weights *= 1.0 + nudge
    return nn.train(model, digits(), steps=steps, lr=lr, seed=seed, eval_every=20, record=record)


def figure1_sensitivity(norm, *, nudge: float = 1e-15, **settings) -> float:
    """:func:`sensitivity` for :func:`figure1`: the largest relative change of the loss
    curve and of the recorded percentiles (relative to the band's final width)."""
    base, nudged = figure1(norm, **settings), figure1(norm, nudge=nudge, **settings)
    if len(base.loss) != len(nudged.loss):
        return float("inf")
    width = base.recorded["p85"][-1] - base.recorded["p15"][-1]
    band = max(np.max(np.abs(base.recorded[k] - nudged.recorded[k])) / width
               for k in ("p15", "p50", "p85"))
    return float(max(np.max(np.abs(base.loss - nudged.loss) / np.abs(base.loss)), band))


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


def figure1_claim(seeds=LESSON_SEEDS, *, steps: int = 2000) -> Claim:
    """Figure 1 of Ioffe & Szegedy on several seeds.

    ``values``: "histories" (label -> list of History, one per seed), "accuracy"
    (label -> {step: ndarray (n_seeds,)} at steps 200, 500 and the last),
    "range" (label -> ndarray (n_seeds, 3): how far p15, p50, p85 moved),
    "drift" (label -> ndarray (n_seeds,), :func:`band_drift`) and "ratio"
    (plain's drift over batch norm's, per seed).
    """
    seeds = _seeds(seeds)
    hists = {label: [figure1(norm, seed=s, steps=steps) for s in seeds]
             for label, norm in NORMS.items()}
    accuracy = {label: {t: np.array([h.accuracy_at(t) for h in hs]) for t in (200, 500, steps)}
                for label, hs in hists.items()}
    drifts = {label: [band_drift(h) for h in hs] for label, hs in hists.items()}
    ranges = {label: np.array([d["range"] for d in ds]) for label, ds in drifts.items()}
    drift = {label: np.array([d["drift"] for d in ds]) for label, ds in drifts.items()}
    ratio = drift["plain"] / drift["batch norm"]
    claim = Claim(seeds, {"histories": hists, "accuracy": accuracy, "range": ranges,
                          "drift": drift, "ratio": ratio})
    lead = accuracy["batch norm"][500] - accuracy["plain"][500]
    claim.add("(a) batch norm is ahead at step 500 by 20 points or more, on every seed",
              np.all(lead > 0.2), f"lead {points(lead)}")
    claim.add("(b, c) the band wanders at least twice less with batch norm on every seed, "
              "three times less on the median",
              np.all(ratio > 2) and np.median(ratio) > 3, f"{spread(ratio, '.1f')} times less")
    claim.add("even in absolute terms: every percentile moves less with batch norm "
              "than any percentile without, on every seed",
              np.all(ranges["batch norm"].max(axis=1) < ranges["plain"].min(axis=1)))
    claim.add("the median input moves by more than 1 without batch norm and by less than 0.7 "
              "with it, on every seed",
              np.all(ranges["plain"][:, 1] > 1) and np.all(ranges["batch norm"][:, 1] < 0.7),
              f"plain {spread(ranges['plain'][:, 1])}, batch norm "
              f"{spread(ranges['batch norm'][:, 1])}")
    return claim


def figure1_figure(plain: list, batch: list, seeds=LESSON_SEEDS):
    """(a) test accuracy of both networks (median and range over seeds); (b, c) the
    percentile band of each seed's tracked sigmoid input (one colour per seed).

    plain, batch : list of History from :func:`figure1`, one per seed of ``seeds``.
    """
    plain, batch, seeds = list(plain), list(batch), _seeds(seeds)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for hs, label in ((plain, "without BN"), (batch, "with BN")):
        _band(axes[0], hs[0].eval_step, [h.test_accuracy for h in hs], label)
    axes[0].set(xlabel="SGD step", ylabel="test accuracy",
                title=f"(a) test accuracy, {len(plain)} seeds", ylim=(0, 1))
    axes[0].legend()
    for ax, hs, label in ((axes[1], plain, "(b) without BN"), (axes[2], batch, "(c) with BN")):
        for k, (h, seed) in enumerate(zip(hs, seeds)):
            r = h.recorded
            color = f"C{k + 2}"
            ax.fill_between(h.eval_step, r["p15"], r["p85"], color=color, alpha=0.2, lw=0)
            ax.plot(h.eval_step, r["p50"], color=color, lw=1.2, label=f"seed {seed}")
        ax.set(xlabel="SGD step", ylabel="input of one sigmoid", title=label, ylim=(-4, 4))
        ax.legend(loc="lower right", fontsize="small")
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


def gamma_beta_moved(seeds=LESSON_SEEDS, *, lr: float = 0.5, steps: int = 600) -> Claim:
    """How far training moved gamma and beta of the first batch-norm layer from 1 and 0.

    The batch-norm runs of :func:`speed_up`. ``values``: "moved" (ndarray
    (n_seeds,): the largest |gamma - 1| or |beta| of layer 1).
    """
    seeds = _seeds(seeds)
    moved = []
    for s in seeds:
        layer = run("batch", lr=lr, steps=steps, seed=s)[0].norms[0]
        moved.append(max(np.abs(layer.gamma - 1).max(), np.abs(layer.beta).max()))
    moved = np.array(moved)
    claim = Claim(seeds, {"moved": moved})
    claim.add("gamma and beta were learned, not left at 1 and 0 (a change above 0.1), "
              "on every seed", np.all(moved > 0.1), f"largest change {spread(moved)}")
    return claim


def inference_modes(seeds=LESSON_SEEDS, *, lr: float = 0.5, steps: int = 600) -> Claim:
    """:func:`mode_accuracies` of the batch-norm runs of :func:`speed_up`, for every seed.

    ``values``: "modes" (name -> ndarray (n_seeds,)).
    """
    seeds = _seeds(seeds)
    per_seed = [mode_accuracies(run("batch", lr=lr, steps=steps, seed=s)[0], digits())
                for s in seeds]
    modes = {name: np.array([m[name] for m in per_seed]) for name in per_seed[0]}
    claim = Claim(seeds, {"modes": modes})
    claim.add("training mode on single examples is at chance level (below 15%), on every seed",
              np.all(modes["training, batch 1"] < 0.15))
    claim.add("test batches of 2 lose more than 20 points, on every seed",
              np.all(modes["training, batch 2"] < modes["inference"] - 0.2))
    return claim


# ----- the explorer -----

LR_OPTIONS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
SCALE_OPTIONS = (0.01, 0.1, 1.0, 10.0, 100.0)
# Every setting of the explorer keeps its smoothed loss within 0.0147 (lr 10, init scale 10,
# batch norm) and 511 (lr 30, init scale 100, no batch norm): fixed limits, no redraw.
LOSS_LIMITS = (0.01, 1000.0)
STEP_LIMITS = (-15.0, 315.0)        # steps 0..300 with matplotlib's 5% margins
RUN_TABLE = Path(__file__).with_name("runs.npz")
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


EXPLORER_NUDGES = (1e-15, -1e-15)


def explorer_sensitivity(lr: float, init_scale: float, batch_norm: bool) -> float:
    """:func:`sensitivity` of an explorer setting, the larger of a nudge up and down.

    Two directions, because one nudge can vanish: when the first SGD steps
    are much larger than tiny initial weights, the rounding of the update may
    absorb the nudge entirely (lr 30 with init scale 0.01 does).
    """
    return max(sensitivity(_norm(batch_norm), lr=lr, init_scale=init_scale, nudge=n)
               for n in EXPLORER_NUDGES)


def write_run_table(path=RUN_TABLE) -> None:
    """Train every setting of the explorer with :func:`run`; save its curves (``make tables``).

    Per setting: the loss of each step, the evaluation steps, the test
    accuracies and the diverged flag, i.e. the :class:`bnlib.nn.History`
    that :class:`RunScene` and :func:`run_readout` use, and its
    :func:`explorer_sensitivity` (which settings are chaotic). Also the settings grid
    and, as ``run_<name>``, the training settings of :func:`run_defaults`, so
    that a table made with other settings is recognized. Training is
    deterministic: fixed seeds, one BLAS thread (:func:`bnlib.nn.train`).

    Parameters
    ----------
    path : str or Path
        The .npz file to write (compressed, no pickled objects).
    """
    grid = explorer_settings()
    _save_table(path, grid, [run(_norm(bn), lr=lr, init_scale=scale)[1] for lr, scale, bn in grid],
                [explorer_sensitivity(lr, scale, bn) for lr, scale, bn in grid])


def _save_table(path, grid: list, hists: list, sensitivities: list) -> None:
    """Save the histories and sensitivities of the settings ``grid`` and today's :func:`run_defaults`."""
    lr, init_scale, batch_norm = (np.array(column) for column in zip(*grid))
    np.savez_compressed(
        path, lr=lr, init_scale=init_scale, batch_norm=batch_norm, **_history_arrays(hists),
        sensitivity=np.array(sensitivities, dtype=float),
        **{f"run_{name}": value for name, value in _as_saved(run_defaults()).items()})


def _history_arrays(hists: list) -> dict:
    """Histories as arrays with one row per run; :func:`_histories` reads them back."""
    return {"n_steps": [len(h.loss) for h in hists],
            "loss": _padded([h.loss for h in hists], np.nan),
            "n_evals": [len(h.eval_step) for h in hists],
            "eval_step": _padded([h.eval_step for h in hists], -1),
            "test_accuracy": _padded([h.test_accuracy for h in hists], np.nan),
            "diverged": [h.diverged for h in hists]}


def _keys(table: dict) -> list:
    return list(zip(table["lr"].tolist(), table["init_scale"].tolist(),
                    table["batch_norm"].tolist()))


def _histories(table: dict) -> dict:
    """(lr, init_scale, batch_norm) -> History, from the arrays of a run table."""
    rows = zip(_keys(table), table["n_steps"], table["loss"], table["n_evals"],
               table["eval_step"], table["test_accuracy"], table["diverged"])
    return {key: nn.History(step=np.arange(1, n + 1), loss=loss[:n], eval_step=evals[:m],
                            test_accuracy=acc[:m], diverged=bool(diverged))
            for key, n, loss, m, evals, acc, diverged in rows}


@lru_cache(maxsize=4)
def _load_table(path) -> tuple:
    """(histories, sensitivities) of the table at ``path``; both empty if it is stale."""
    with np.load(path) as npz:
        table = {name: npz[name] for name in npz.files}
    saved = {name[len("run_"):]: value.tolist() for name, value in table.items()
             if name.startswith("run_")}
    if saved != _as_saved(run_defaults()) or "sensitivity" not in table:
        warnings.warn(f"{Path(path).name} was made with other training settings "
                      f"({saved}); run `make tables`")
        return {}, {}
    return _histories(table), dict(zip(_keys(table), table["sensitivity"].tolist()))


def run_table(path=RUN_TABLE) -> dict:
    """The histories of the table written by :func:`write_run_table`, loaded once.

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
    return _load_table(path)[0]


def table_sensitivities(path=RUN_TABLE) -> dict:
    """(lr, init_scale, batch_norm) -> :func:`explorer_sensitivity`, as saved in the table."""
    return _load_table(path)[1]


def explorer_run(lr: float, init_scale: float, batch_norm: bool) -> tuple:
    """The 300-step run of one setting and its sensitivity.

    From :func:`run_table`, else trained by :func:`run` and measured by
    :func:`explorer_sensitivity`. The history is shared with the table or
    the cache: treat it as read-only.

    Returns
    -------
    history : bnlib.nn.History
    sensitivity : float
    """
    key = (lr, init_scale, batch_norm)
    history = run_table().get(key)
    if history is None:
        return (run(_norm(batch_norm), lr=lr, init_scale=init_scale)[1],
                explorer_sensitivity(lr, init_scale, batch_norm))
    return history, table_sensitivities()[key]


def run_readout(label: str, history: nn.History, sensitivity: float) -> str:
    """The run explorer's line: final accuracy, first step at 90%, final loss and verdict.

    A chaotic run (``sensitivity`` above :data:`REPRODUCIBLE`) gets no
    numbers: they depend on round-off, and another CPU would print others.
    """
    if sensitivity > REPRODUCIBLE:
        return (f"{label}: chaotic (a 1e-15 nudge of the initial weights grows into a "
                f"different curve; another CPU draws another one), so no numbers -> chaotic")
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
        h, sens = explorer_run(lr, init_scale, batch_norm)
        label = f"{'with' if batch_norm else 'without'} BN, lr {lr:g}, init scale {init_scale:g}"
        self.lines[0].set_data(h.step, plots.smooth(h.loss))
        self.lines[1].set_data(h.eval_step, h.test_accuracy)
        for legend in self.legends:
            legend.get_texts()[0].set_text(label)
        return run_readout(label, h, sens)


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
