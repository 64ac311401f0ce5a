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
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np

from bnlib import data, nn
from bnlib.course import checks, plots, tables, widgets
from bnlib.course.seeds import DIVERGED_LOSS, LESSON_SEEDS, spread

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


def run(norm: str | None = None, *, lr: float = 0.5, init_scale: float = 1.0,
        activation: str = "sigmoid", position: str = "before", sizes: tuple = SIZES,
        steps: int = 300, seed: int = 0, eval_every: int = 10,
        output_scale: float | None = None, residual: bool = False):
    """Train one network on the digits; return ``(model, history)`` (cached).

    The same ``seed`` sets the weights and the minibatch order. The hidden
    weights are drawn with ``init_scale``, the output layer's with
    ``output_scale`` (None: the same). ``residual`` adds skip connections
    (:class:`bnlib.nn.MLP`). At every evaluation the history records, per
    dense layer k, ``"update_W<k>"``: the last step's update relative to the
    weights, lr * |dW| / |W| (NaN before the first step). Treat the returned
    model as read-only (the cache shares it, whatever the order of the keywords).
    """
    return _run_cached(norm, lr, init_scale, activation, position, tuple(sizes), steps, seed,
                       eval_every, output_scale, residual)


@lru_cache(maxsize=512)
def _run_cached(norm, lr, init_scale, activation, position, sizes, steps, seed, eval_every,
                output_scale, residual):
    return _train(norm, lr, init_scale, activation, position, sizes, steps, seed, eval_every,
                  output_scale=output_scale, residual=residual)


run.cache_clear = _run_cached.cache_clear


def _initial_model(norm, lr, init_scale, activation, position, sizes, steps, seed, eval_every,
                   nudge: float = 0.0, output_scale=None, residual: bool = False) -> nn.MLP:
    """The untrained network of a setting of :func:`run` (the arguments of :func:`_train`)."""
    model = nn.MLP(sizes, activation=activation, norm=norm, norm_position=position,
                   init_scale=init_scale, seed=seed, residual=residual)
    if output_scale is not None:
        model.weights[-1] *= output_scale / init_scale
    for weights in model.weights:
        weights *= 1.0 + nudge
    return model


def _train(norm, lr, init_scale, activation, position, sizes, steps, seed, eval_every,
           nudge: float = 0.0, output_scale=None, residual: bool = False):
    """:func:`run` without the cache; every initial weight is multiplied by ``1 + nudge``."""
    model = _initial_model(norm, lr, init_scale, activation, position, sizes, steps, seed,
                           eval_every, nudge, output_scale, residual)

    def record(m):
        return {f"update_W{k}": np.nan if dW is None else lr * np.linalg.norm(dW) / np.linalg.norm(W)
                for k, (W, dW) in enumerate(zip(m.weights, m._dweights), start=1)}

    return model, nn.train(model, digits(), steps=steps, lr=lr, seed=seed, eval_every=eval_every,
                           record=record)


def _run_settings(settings: dict) -> dict:
    """Every setting of :func:`run` except ``norm``: its defaults, updated by ``settings``."""
    defaults = {name: p.default for name, p in inspect.signature(run).parameters.items()
                if name != "norm"}
    unknown = set(settings) - set(defaults)
    if unknown:
        raise TypeError(f"run() has no setting {sorted(unknown)}; it has {sorted(defaults)}")
    return {**defaults, **settings}


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
    full["sizes"] = tuple(full["sizes"])
    return _sensitivity_cached(norm, nudge, tuple(sorted(full.items())))


@lru_cache(maxsize=1024)
def _sensitivity_cached(norm, nudge: float, items: tuple) -> float:
    full = dict(items)
    base = run(norm, **full)[1].loss
    nudged = _train(norm, **full, nudge=nudge)[1].loss
    finite = np.isfinite(base)
    if len(base) != len(nudged) or np.any(finite != np.isfinite(nudged)):
        return float("inf")
    return float(np.max(np.abs(nudged[finite] - base[finite]) / np.abs(base[finite]),
                        initial=0.0))


sensitivity.cache_clear = _sensitivity_cached.cache_clear


def sensitivity_bound(value: float) -> str:
    """A :func:`sensitivity` as a bound that another CPU's round-off cannot change.

    Reproducible runs stay near the nudge (1e-15 to 1e-9, 2e-6 at worst on
    the seeds measured) and chaotic ones grow to 1e-2 and beyond, so the bins
    are "below 1e-4" (reproducible), "above 1e-2" (chaotic) and, rarely,
    "between 1e-4 and 1e-2" (chaotic too).
    """
    if value < REPRODUCIBLE:
        return f"below {REPRODUCIBLE:.0e}"
    return "above 1e-02" if value > 1e-2 else f"between {REPRODUCIBLE:.0e} and 1e-02"


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


# Where the initialization scale acts: the hidden layers (scale-invariant behind batch norm)
# or the output layer (no batch norm after it). name -> (hidden scale, output scale).
INIT_CAUSES = {"hidden x1, output x1": (1.0, 1.0), "hidden x100, output x1": (100.0, 1.0),
               "hidden x1, output x100": (1.0, 100.0), "hidden x100, output x100": (100.0, 100.0)}


def _cause_settings(hidden: float, output: float, lr: float) -> dict:
    return dict(lr=lr, init_scale=hidden, output_scale=None if output == hidden else output)


def weight_change(norm, **settings) -> np.ndarray:
    """Per dense layer, |W_end - W_start| / |W_start| over a run of :func:`run`. Shape (n_layers,)."""
    model = run(norm, **settings)[0]
    start = _initial_model(norm, **_run_settings(settings)).weights
    return np.array([np.linalg.norm(W - W0) / np.linalg.norm(W0)
                     for W, W0 in zip(model.weights, start)])


def update_ratios(history: nn.History) -> np.ndarray:
    """(n_evals, n_layers): the recorded lr * |dW| / |W| of every dense layer (row 0 is NaN)."""
    names = sorted((k for k in history.recorded if k.startswith("update_W")),
                   key=lambda k: int(k[len("update_W"):]))
    return np.stack([history.recorded[k] for k in names], axis=1)


def init_causes(seeds=LESSON_SEEDS, *, lr: float = 1.0) -> Claim:
    """The batch-norm sigmoid network with its hidden and output weights scaled separately.

    Trained like :func:`init_scales` (300 steps at ``lr``), for each setting of
    :data:`INIT_CAUSES`. ``values``: "final", "sensitivity" (name -> ndarray
    (n_seeds,)), "change" (name -> (n_seeds, 3), :func:`weight_change`),
    "small_growth" ((n_seeds,): the smaller hidden layer's change at init scale 0.01),
    "updates" (name -> (n_seeds, n_evals, 3), :func:`update_ratios`) and
    "eval_step".
    """
    seeds = _seeds(seeds)
    final, sens, change, updates = {}, {}, {}, {}
    for name, (hidden, output) in INIT_CAUSES.items():
        kw = _cause_settings(hidden, output, lr)
        hists = [run("batch", seed=s, **kw)[1] for s in seeds]
        final[name] = np.array([h.final_accuracy for h in hists])
        sens[name] = np.array([sensitivity("batch", seed=s, **kw) for s in seeds])
        change[name] = np.array([weight_change("batch", seed=s, **kw) for s in seeds])
        updates[name] = np.array([update_ratios(h) for h in hists])
    claim = Claim(seeds, {"final": final, "sensitivity": sens, "change": change,
                          "updates": updates, "eval_step": hists[0].eval_step})
    base, frozen = "hidden x1, output x1", "hidden x100, output x1"
    moved = change[base][:, :2].min(axis=1)
    stuck = change[frozen][:, :2].max(axis=1)
    claim.add("at scale 1 the hidden weights move by more than 20% of their norm, on every seed",
              np.all(moved > 0.2), f"smallest change {spread(moved)}")
    claim.add("hidden x100: they move by less than 0.2% of their norm, on every seed (frozen)",
              np.all(stuck < 2e-3), f"largest change {spread(stuck, '.0e')}")
    per_step = {k: np.nanmedian(updates[k][:, :, :2], axis=(1, 2)) for k in (base, frozen)}
    ratio = per_step[base] / per_step[frozen]
    claim.add("the per-step update of the hidden weights is more than 1,000 times smaller at x100 "
              "(1/s^2 = 1e4 predicts it; 1/s = 100 would not)", np.all(ratio > 1e3),
              f"{spread(ratio, '.1e')} times")
    claim.add("and yet hidden x100 ends above 90% on every seed, reproducibly",
              np.all(final[frozen] >= TRAINS) and np.all(sens[frozen] < REPRODUCIBLE),
              pct(final[frozen]))
    small = np.array([weight_change("batch", lr=lr, init_scale=0.01, seed=s)[:2].min()
                      for s in seeds])
    claim.values["small_growth"] = small
    claim.add("the other way round, at s = 0.01 the hidden weights grow by more than 10 times "
              "their initial norm over the run, on every seed", np.all(small > 10),
              f"{spread(small, '.0f')} times")
    for name in ("hidden x1, output x100", "hidden x100, output x100"):
        claim.add(f"{name}: chaotic on at least one seed (huge initial logits), every seed "
                  f"above 80%", np.any(sens[name] > REPRODUCIBLE) and np.all(final[name] > 0.8))
    return claim


def updates_figure(causes: Claim, names=("hidden x1, output x1", "hidden x100, output x1")):
    """Per-layer update-to-weight ratio lr |dW| / |W| over training: median and range of seeds."""
    fig, axes = plt.subplots(1, len(names), figsize=(9, 3.2), sharey=True)
    steps = causes.values["eval_step"][1:]
    for ax, name in zip(np.atleast_1d(axes), names):
        ratios = causes.values["updates"][name][:, 1:, :]
        for k in range(ratios.shape[2]):
            _band(ax, steps, ratios[:, :, k], f"W{k + 1}" + (" (output)" if k == 2 else ""))
        ax.axhline(1e-3, color="gray", ls=":", lw=1, label="1e-3 (rule of thumb)")
        ax.set(yscale="log", xlabel="SGD step", title=f"batch norm, {name}")
    np.atleast_1d(axes)[0].set_ylabel("update / weight, per step")
    np.atleast_1d(axes)[0].legend(fontsize="small")
    fig.suptitle(f"update-to-weight ratio per layer, median and range of {len(causes.seeds)} seeds")
    fig.tight_layout()
    return fig


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


# How deep? ReLU networks of 50-unit hidden layers, He initialization (init scale sqrt 2).
DEPTHS = (8, 16, 32, 64)
DEPTH_NETS = {"plain": dict(norm=None), "batch norm": dict(norm="batch"),
              "batch norm + skips": dict(norm="batch", residual=True)}
DEPTH_TRAINING = dict(lr=0.1, steps=200, eval_every=50)


def deep_sizes(n_hidden: int, width: int = 50) -> tuple:
    """(64, width, ..., width, 10) with ``n_hidden`` hidden layers."""
    return (64,) + (width,) * n_hidden + (10,)


def _depth_settings(net: str, n_hidden: int) -> dict:
    return dict(DEPTH_NETS[net], sizes=deep_sizes(n_hidden), activation="relu",
                init_scale=float(np.sqrt(2.0)))


def initial_gradient_norms(net: str, n_hidden: int, seed: int, n_examples: int = 60) -> np.ndarray:
    """|dL/dW_k| for every dense layer k of an untrained :data:`DEPTH_NETS` network.

    One training-mode forward and backward pass on the first ``n_examples``
    training images. Shape (n_hidden + 1,): the hidden layers, then the output layer.
    """
    kw = _depth_settings(net, n_hidden)
    norm = kw.pop("norm")
    model = _initial_model(norm, **_run_settings({**kw, "seed": seed}))
    split = digits()
    logits = model.forward(split.x_train[:n_examples], training=True)
    model.backward(nn.softmax_cross_entropy(logits, split.y_train[:n_examples])[1])
    grads = dict(zip(model.param_names(), model.grads()))
    return np.array([np.linalg.norm(grads[f"W{k}"]) for k in range(1, n_hidden + 2)])


def depth_finals(seeds=LESSON_SEEDS, depths=DEPTHS) -> dict:
    """(net, depth) -> ndarray (n_seeds,): test accuracy after :data:`DEPTH_TRAINING`, trained."""
    out = {}
    for net, d in itertools.product(DEPTH_NETS, depths):
        kw = _depth_settings(net, d)
        norm = kw.pop("norm")
        out[net, d] = np.array([run(norm, seed=s, **kw, **DEPTH_TRAINING)[1].final_accuracy
                                for s in _seeds(seeds)])
    return out


DEPTH_TABLE = Path(__file__).with_name("depth.npz")


def _depth_table_settings() -> dict:
    return {"lr": DEPTH_TRAINING["lr"], "steps": DEPTH_TRAINING["steps"],
            "eval_every": DEPTH_TRAINING["eval_every"], "width": deep_sizes(1)[1],
            "nets": tuple(DEPTH_NETS), "depths": DEPTHS}


def write_depth_table(path=DEPTH_TABLE, seeds=LESSON_SEEDS) -> None:
    """Save :func:`depth_finals` of ``seeds`` (``make tables``): the lesson reads them,
    since the 36 trainings (64 layers among them) take longer than the rest of its cells."""
    finals = depth_finals(seeds)
    tables.save(path, _depth_table_settings(), seeds=np.array(_seeds(seeds)),
                final=np.array([[finals[n, d] for d in DEPTHS] for n in DEPTH_NETS]))


@lru_cache(maxsize=4)
def depth_table(path=DEPTH_TABLE) -> dict:
    """The :func:`depth_finals` saved by :func:`write_depth_table`: (net, depth) -> (n_seeds,).

    Empty, with a warning, if it was made with other settings (then train:
    :func:`depth_finals`).
    """
    t = tables.load(path, _depth_table_settings(), "make tables")
    if not t:
        return {}
    return {(net, d): t["final"][i, j] for i, net in enumerate(DEPTH_NETS)
            for j, d in enumerate(DEPTHS)}


def depth_table_seeds(path=DEPTH_TABLE) -> tuple:
    """The seeds :func:`depth_table` was trained from."""
    with np.load(path) as npz:
        return tuple(npz["seeds"].tolist())


def depth_claim(seeds=LESSON_SEEDS, depths=DEPTHS, finals=None) -> Claim:
    """Plain vs batch norm vs batch norm with skip connections, from 8 to 64 ReLU layers.

    ``values``: "gradients" ((net, depth) -> (n_seeds, depth + 1), the
    :func:`initial_gradient_norms`), "ratio" ((net, depth) -> (n_seeds,),
    |dW1| / |dW of the last hidden layer| at initialization), "final"
    ((net, depth) -> (n_seeds,), test accuracy after :data:`DEPTH_TRAINING`:
    ``finals`` if given, e.g. :func:`depth_table` for the seeds it was made
    from, else :func:`depth_finals`, trained now).
    """
    seeds, depths = _seeds(seeds), tuple(depths)
    grads, ratio = {}, {}
    for net, d in itertools.product(DEPTH_NETS, depths):
        grads[net, d] = np.array([initial_gradient_norms(net, d, s) for s in seeds])
        ratio[net, d] = grads[net, d][:, 0] / grads[net, d][:, d - 1]
    final = depth_finals(seeds, depths) if finals is None else {
        key: np.asarray(finals[key], dtype=float) for key in itertools.product(DEPTH_NETS, depths)}
    claim = Claim(seeds, {"gradients": grads, "ratio": ratio, "final": final, "depths": depths})
    lo, hi = min(depths), max(depths)
    claim.add(f"at initialization, batch norm without skips: |dW1| / |dW{hi}| above 1e4 at {hi} "
              f"layers on every seed, below 10 at {lo}",
              np.all(ratio["batch norm", hi] > 1e4) and np.all(ratio["batch norm", lo] < 10))
    claim.add(f"with skip connections it stays below 200 at {hi} layers, on every seed",
              np.all(ratio["batch norm + skips", hi] < 200))
    claim.add("plain (He initialization): between 0.1 and 30 at every depth, on every seed",
              all(np.all((ratio["plain", d] > 0.1) & (ratio["plain", d] < 30)) for d in depths))
    claim.add(f"trained: at {lo} layers all three reach 80% on every seed",
              all(np.all(final[net, lo] >= 0.8) for net in DEPTH_NETS))
    if 16 in depths:
        claim.add("at 16 layers batch norm still reaches 80% on every seed, the plain network "
                  "on none", np.all(final["batch norm", 16] >= 0.8)
                  and np.all(final["plain", 16] < 0.8))
    deep = [d for d in depths if d >= 32]
    claim.add("at 32 layers and more, without skips neither network reaches 50% on any seed",
              all(np.all(final[net, d] < 0.5) for net in ("plain", "batch norm") for d in deep))
    if 32 in depths:
        claim.add("with skips, batch norm reaches 70% at 32 layers on every seed",
                  np.all(final["batch norm + skips", 32] >= 0.7))
    claim.add(f"and at {hi} layers it learns on every seed (above 25%; chance is 10%), if slowly",
              np.all(final["batch norm + skips", hi] > 0.25))
    return claim


def depth_figure(claim: Claim):
    """(a) per-layer gradient norm at initialization, deepest network; (b) final accuracy vs depth."""
    depths = claim.values["depths"]
    hi = max(depths)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.4))
    for net in DEPTH_NETS:
        g = claim.values["gradients"][net, hi]
        line = _band(ax1, np.arange(1, hi + 1), g[:, :hi] / g[:, [hi - 1]], net)
        _band(ax2, depths, np.array([claim.values["final"][net, d] for d in depths]).T, net,
              color=line.get_color())
    ax1.set(yscale="log", xlabel="hidden layer", ylabel="|dW| / |dW of the last hidden layer|",
            title=f"(a) gradients at initialization, {hi} ReLU layers")
    ax2.set(xscale="log", xlabel="hidden layers", ylabel="test accuracy",
            title="(b) after 200 steps at lr 0.1", ylim=(0, 1), xticks=depths,
            xticklabels=[str(d) for d in depths])
    ax2.minorticks_off()
    ax2.axhline(0.1, color="gray", ls=":", lw=1, label="chance")
    for ax in (ax1, ax2):
        ax.legend(fontsize="small")
    fig.suptitle(f"median and range of {len(claim.seeds)} seeds")
    fig.tight_layout()
    return fig


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
    :func:`figure1_sensitivity`). Returns the History; ``recorded`` holds "p15", "p50", "p85"
    and, with batch norm, "gamma" (the tracked unit's gamma).
    """
    probe = digits().x_test[:n_probe]

    def record(model):
        out = dict(zip(("p15", "p50", "p85"), sigmoid_input_percentiles(model, probe, unit)))
        if model.norms[-1] is not None:
            out["gamma"] = model.norms[-1].gamma[unit]
        return out

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


def band_drift(history: nn.History, after: int = 0) -> dict:
    """How much the percentile band moved from step ``after`` to the end.

    Returns
    -------
    dict with
        "range": ndarray (3,), max - min of each percentile over those steps, in
        units of the sigmoid's input (the scale the sigmoid itself responds to);
        "width": median band width p85 - p15 over those steps;
        "drift": largest range divided by that width (each network measured
        against its own band, over the same steps).
    """
    keep = history.eval_step >= after
    band = np.stack([history.recorded[k][keep] for k in ("p15", "p50", "p85")])
    ranges = band.max(axis=1) - band.min(axis=1)
    width = float(np.median(band[2] - band[0]))
    return {"range": ranges, "width": width, "drift": float(ranges.max() / width)}


PLATEAU_END = 500   # Figure 1's drift is measured from here: the plain network has left chance


def figure1_claim(seeds=LESSON_SEEDS, *, steps: int = 2000, after: int = PLATEAU_END) -> Claim:
    """Figure 1 of Ioffe & Szegedy on several seeds, the drift measured after the plateau.

    ``values``: "histories" (label -> list of History, one per seed), "accuracy"
    (label -> {step: ndarray (n_seeds,)} at steps 100, 200, ``after`` and the last),
    "initial_width" (label -> (n_seeds,), p85 - p15 at step 0), "whole" and
    "range" (label -> (n_seeds, 3): how far p15, p50, p85 moved over the whole
    run and from step ``after`` on), "drift" (label -> (n_seeds,), that largest
    move over the network's own median band width, :func:`band_drift`),
    "absolute_ratio" and "relative_ratio" (plain over batch norm, per seed),
    "growth" and "gamma" (batch norm: final over initial band width, and the
    tracked unit's final gamma).
    """
    seeds = _seeds(seeds)
    hists = {label: [figure1(norm, seed=s, steps=steps) for s in seeds]
             for label, norm in NORMS.items()}
    accuracy = {label: {t: np.array([h.accuracy_at(t) for h in hs]) for t in (100, 200, after, steps)}
                for label, hs in hists.items()}
    late = {label: [band_drift(h, after) for h in hs] for label, hs in hists.items()}
    whole = {label: np.array([band_drift(h)["range"] for h in hs]) for label, hs in hists.items()}
    ranges = {label: np.array([d["range"] for d in ds]) for label, ds in late.items()}
    drift = {label: np.array([d["drift"] for d in ds]) for label, ds in late.items()}
    initial = {label: np.array([h.recorded["p85"][0] - h.recorded["p15"][0] for h in hs])
               for label, hs in hists.items()}
    absolute = ranges["plain"].max(axis=1) / ranges["batch norm"].max(axis=1)
    relative = drift["plain"] / drift["batch norm"]
    bn = hists["batch norm"]
    growth = np.array([(h.recorded["p85"][-1] - h.recorded["p15"][-1])
                       / (h.recorded["p85"][0] - h.recorded["p15"][0]) for h in bn])
    gamma = np.array([h.recorded["gamma"][-1] for h in bn])
    claim = Claim(seeds, {"histories": hists, "accuracy": accuracy, "initial_width": initial,
                          "whole": whole, "range": ranges, "drift": drift,
                          "absolute_ratio": absolute, "relative_ratio": relative,
                          "growth": growth, "gamma": gamma})
    claim.add("without batch norm the band starts collapsed: narrower than 0.1, on every seed "
              "(with batch norm wider than 1)",
              np.all(initial["plain"] < 0.1) and np.all(initial["batch norm"] > 1))
    claim.add("and the plain network is still at chance (below 15%) at step 100, on every seed",
              np.all(accuracy["plain"][100] < 0.15))
    lead = accuracy["batch norm"][after] - accuracy["plain"][after]
    claim.add(f"(a) batch norm is ahead at step {after} by 20 points or more, on every seed",
              np.all(lead > 0.2), f"lead {points(lead)}")
    claim.add(f"after step {after}, in units of the sigmoid's input, the plain band moves at "
              "least twice as far as batch norm's on every seed, three times on the median",
              np.all(absolute > 2) and np.median(absolute) > 3,
              f"{spread(absolute, '.0f')} times as far")
    claim.add("measured against each network's own band width, still at least twice on every "
              "seed, three times on the median",
              np.all(relative > 2) and np.median(relative) > 3,
              f"{spread(relative, '.0f')} times as far")
    claim.add("with batch norm the band widens, and the tracked unit's gamma grows by more than "
              "half of that factor (on a log scale), on every seed",
              np.all(growth > 1.2) and np.all(np.log(gamma) > 0.5 * np.log(growth)),
              f"width grew {spread(growth, '.1f')} times, gamma {spread(gamma, '.1f')} times")
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
        ax.axvline(PLATEAU_END, color="gray", ls=":", lw=1)
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
EXPLORER_SEEDS = LESSON_SEEDS       # every setting is trained from each of these
# Every run of the explorer keeps its smoothed loss within 0.0065 (lr 10, init scale 10,
# batch norm, seed 2) and 692 (lr 30, init scale 100, no batch norm, seed 1): fixed limits.
LOSS_LIMITS = (0.003, 2000.0)
STEP_LIMITS = (-15.0, 315.0)        # steps 0..300 with matplotlib's 5% margins
RUN_TABLE = Path(__file__).with_name("runs.npz")
VARIED = ("norm", "lr", "init_scale", "seed")   # the settings of run() the table varies
STUCK = 0.15                        # "stuck at chance": below 15% test accuracy at the end


def run_defaults() -> dict:
    """The settings of :func:`run` the explorer leaves at their defaults (steps, sizes, ...)."""
    return {name: p.default for name, p in inspect.signature(run).parameters.items()
            if name not in VARIED}


def explorer_settings() -> list:
    """Every setting the explorer's controls reach, as (lr, init_scale, batch_norm) tuples."""
    return list(itertools.product(LR_OPTIONS, SCALE_OPTIONS, (False, True)))


def _norm(batch_norm: bool):
    return "batch" if batch_norm else None


EXPLORER_NUDGES = (1e-15, -1e-15)


def explorer_sensitivity(lr: float, init_scale: float, batch_norm: bool, seed: int = 0) -> float:
    """:func:`sensitivity` of an explorer setting, the larger of a nudge up and down.

    Two directions, because one nudge can vanish: when the first SGD steps
    are much larger than tiny initial weights, the rounding of the update may
    absorb the nudge entirely (lr 30 with init scale 0.01 does).
    """
    return max(sensitivity(_norm(batch_norm), lr=lr, init_scale=init_scale, seed=seed, nudge=n)
               for n in EXPLORER_NUDGES)


def _moving_statistics(model: nn.MLP, width: int) -> np.ndarray:
    """(2, n_hidden, width): the moving mean and variance of each batch-norm layer (NaN if none)."""
    out = np.full((2, model.n_hidden, width), np.nan)
    for k, layer in enumerate(model.norms):
        if layer is not None:
            out[0, k], out[1, k] = layer.moving_mean, layer.moving_variance
    return out


def write_run_table(path=RUN_TABLE) -> None:
    """Train every setting of the explorer from every seed; save the curves (``make tables``).

    Per setting and seed of :data:`EXPLORER_SEEDS`: the loss of each step,
    the evaluation steps, the test accuracies and the diverged flag, i.e. the
    :class:`bnlib.nn.History` that :class:`RunScene` and :func:`run_readout`
    use, its :func:`explorer_sensitivity` (which runs are chaotic) and, for
    the first seed (to keep the file small), the final moving statistics of
    its batch-norm layers (what test accuracy in inference mode depends on). Also the grid
    and the training settings of :func:`run_defaults` (:func:`bnlib.course.tables.save`),
    so that a table made with other settings is recognized. Training is deterministic: fixed seeds, one BLAS
    thread (:func:`bnlib.nn.train`).

    Parameters
    ----------
    path : str or Path
        The .npz file to write (compressed, no pickled objects).
    """
    grid = [(lr, scale, bn, seed) for (lr, scale, bn), seed
            in itertools.product(explorer_settings(), EXPLORER_SEEDS)]
    runs = [run(_norm(bn), lr=lr, init_scale=scale, seed=seed) for lr, scale, bn, seed in grid]
    width = max(SIZES[1:-1])
    _save_table(path, grid, [h for _, h in runs],
                [explorer_sensitivity(*key) for key in grid],
                np.array([_moving_statistics(m, width) if seed == EXPLORER_SEEDS[0]
                          else np.full((2, len(SIZES) - 2, width), np.nan)
                          for (m, _), (*_, seed) in zip(runs, grid)]))


def _save_table(path, grid: list, hists: list, sensitivities: list, moving=None) -> None:
    """Save histories, sensitivities and moving statistics of the runs ``grid`` (tuples
    (lr, init_scale, batch_norm, seed)) and today's :func:`run_defaults`."""
    lr, init_scale, batch_norm, seed = (np.array(column) for column in zip(*grid))
    extra = {} if moving is None else {"moving": np.asarray(moving, dtype=float)}
    tables.save(
        path, run_defaults(), lr=lr, init_scale=init_scale, batch_norm=batch_norm, seed=seed,
        **_history_arrays(hists), sensitivity=np.array(sensitivities, dtype=float), **extra)


def _history_arrays(hists: list) -> dict:
    """Histories as arrays with one row per run; :func:`_histories` reads them back."""
    return {"n_steps": [len(h.loss) for h in hists],
            "loss": tables.padded([h.loss for h in hists], np.nan),
            "n_evals": [len(h.eval_step) for h in hists],
            "eval_step": tables.padded([h.eval_step for h in hists], -1),
            "test_accuracy": tables.padded([h.test_accuracy for h in hists], np.nan),
            "diverged": [h.diverged for h in hists]}


def _keys(table: dict) -> list:
    return list(zip(table["lr"].tolist(), table["init_scale"].tolist(),
                    table["batch_norm"].tolist(), table["seed"].tolist()))


def _histories(table: dict) -> dict:
    """(lr, init_scale, batch_norm, seed) -> History, from the arrays of a run table."""
    rows = zip(_keys(table), table["n_steps"], table["loss"], table["n_evals"],
               table["eval_step"], table["test_accuracy"], table["diverged"])
    return {key: nn.History(step=np.arange(1, n + 1), loss=loss[:n], eval_step=evals[:m],
                            test_accuracy=acc[:m], diverged=bool(diverged))
            for key, n, loss, m, evals, acc, diverged in rows}


@lru_cache(maxsize=4)
def _load_table(path) -> tuple:
    """(histories, sensitivities, moving statistics) of the table at ``path``; empty if stale."""
    table = tables.load(path, run_defaults(), "make tables", columns=("seed", "sensitivity"))
    if not table:
        return {}, {}, {}
    keys = _keys(table)
    moving = dict(zip(keys, table["moving"])) if "moving" in table else {}
    return _histories(table), dict(zip(keys, table["sensitivity"].tolist())), moving


def run_table(path=RUN_TABLE) -> dict:
    """The histories of the table written by :func:`write_run_table`, loaded once.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict of (lr, init_scale, batch_norm, seed) -> bnlib.nn.History
        Empty, with a warning, if the table was made with other training
        settings than :func:`run_defaults` today: the explorer then trains
        every setting itself rather than show runs of another network.
    """
    return _load_table(path)[0]


def table_sensitivities(path=RUN_TABLE) -> dict:
    """(lr, init_scale, batch_norm, seed) -> :func:`explorer_sensitivity`, as saved in the table."""
    return _load_table(path)[1]


def table_moving_statistics(path=RUN_TABLE) -> dict:
    """(lr, init_scale, batch_norm, seed) -> ndarray (2, n_hidden, width): the final moving
    mean (row 0) and variance (row 1) of each batch-norm layer; NaN without batch norm and
    for seeds other than the first (not stored)."""
    return _load_table(path)[2]


def explorer_run(lr: float, init_scale: float, batch_norm: bool, seed: int = 0) -> tuple:
    """The 300-step run of one setting and seed, and its sensitivity.

    From :func:`run_table`, else trained by :func:`run` and measured by
    :func:`explorer_sensitivity`. The history is shared with the table or
    the cache: treat it as read-only.

    Returns
    -------
    history : bnlib.nn.History
    sensitivity : float
    """
    key = (lr, init_scale, batch_norm, seed)
    history = run_table().get(key)
    if history is None:
        return (run(_norm(batch_norm), lr=lr, init_scale=init_scale, seed=seed)[1],
                explorer_sensitivity(lr, init_scale, batch_norm, seed))
    return history, table_sensitivities()[key]


def run_verdict(history: nn.History, sensitivity: float) -> str:
    """One run's verdict, each with a wide margin.

    "diverged" (over the last 20 steps the loss stays above ``10 ln 10``,
    ten times chance level, or is not finite: the weights or the logits have
    blown up, far beyond any slow training; a chaotic run needs four times
    that margin; a spike in the first steps that training recovers from is
    not divergence), "chaotic" (``sensitivity`` above
    :data:`REPRODUCIBLE`: its numbers depend on round-off), "trains" (90% or
    more at the end), "stuck at chance" (below 15%) or "slow" (in between:
    learning, not there yet).
    """
    end = history.loss[-20:]
    # a chaotic run is called diverged only with a wide margin (another CPU's run ends elsewhere)
    floor = DIVERGED_LOSS if sensitivity <= REPRODUCIBLE else 4 * DIVERGED_LOSS
    if history.diverged or not np.all(np.isfinite(end)) or end.min() > floor:
        return "diverged"
    if sensitivity > REPRODUCIBLE:
        return "chaotic"
    acc = history.final_accuracy
    return "trains" if acc >= TRAINS else "stuck at chance" if acc < STUCK else "slow"


def run_readout(label: str, runs: list) -> str:
    """The run explorer's line for one setting: a verdict per seed, numbers only if safe.

    runs : list of (seed, history, sensitivity). The median and range of the
    final test accuracy are printed only if no run is chaotic or diverged;
    otherwise the verdicts alone (another CPU would print other numbers).
    """
    verdicts = [run_verdict(h, sens) for _, h, sens in runs]
    per_seed = ", ".join(f"seed {seed} {v}" for (seed, _, _), v in zip(runs, verdicts))
    if any(v in ("chaotic", "diverged") for v in verdicts):
        return f"{label}: {per_seed}"
    return (f"{label}: {per_seed}; final test accuracy "
            f"{pct([h.final_accuracy for _, h, _ in runs])}")


def setting_readout(lr: float, init_scale: float, batch_norm: bool) -> str:
    """:func:`run_readout` of an explorer setting over :data:`EXPLORER_SEEDS`."""
    label = f"{'with' if batch_norm else 'without'} BN, lr {lr:g}, init scale {init_scale:g}"
    return run_readout(label, [(s, *explorer_run(lr, init_scale, batch_norm, s))
                               for s in EXPLORER_SEEDS])


class RunScene(widgets.Scene):
    """Loss and test accuracy of one setting (a thin line per seed) and its batch-norm twin."""

    def build(self) -> None:
        self.fig, (ax1, ax2) = self.subplots(1, 2, figsize=(9, 3.4), bottom=0.14, top=0.88)
        n = len(EXPLORER_SEEDS)
        self.lines = {}
        for ax, what in ((ax1, "loss"), (ax2, "accuracy")):
            for role, style in (("twin", dict(color="C1", ls="--", lw=1.0)),
                                ("chosen", dict(color="C0", lw=1.4))):
                self.lines[what, role] = [self.live(ax.plot([], [], **style)[0]) for _ in range(n)]
            ax.set_xlim(*STEP_LIMITS)
        self.legend = self.live(ax2.legend(
            [self.lines["accuracy", "chosen"][0], self.lines["accuracy", "twin"][0]], [" ", " "],
            loc="lower right", fontsize="small"))
        ax1.set(xlabel="SGD step", ylabel="training loss (20-step mean)",
                title=f"loss, one line per seed ({n} seeds)", yscale="log", ylim=LOSS_LIMITS)
        ax2.set(xlabel="SGD step", ylabel="test accuracy", title="test accuracy", ylim=(0, 1))

    def update(self, lr: float = 1.0, init_scale: float = 1.0, batch_norm: bool = True) -> str:
        texts = []
        for role, bn in (("chosen", batch_norm), ("twin", not batch_norm)):
            texts.append(f"{'with' if bn else 'without'} BN" + ("" if role == "twin" else
                                                                 f", lr {lr:g}, init scale {init_scale:g}"))
            for k, seed in enumerate(EXPLORER_SEEDS):
                h, _ = explorer_run(lr, init_scale, bn, seed)
                self.lines["loss", role][k].set_data(h.step, plots.smooth(h.loss))
                self.lines["accuracy", role][k].set_data(h.eval_step, h.test_accuracy)
        for text, label in zip(self.legend.get_texts(), (texts[0], texts[1] + " (twin)")):
            text.set_text(label)
        return (setting_readout(lr, init_scale, batch_norm) + "\n  twin: "
                + setting_readout(lr, init_scale, not batch_norm))


def run_explorer() -> widgets.Explorer:
    """Learning rate, initialization scale and batch norm on/off; every run from the table."""
    style = {"description_width": "initial"}
    return widgets.Explorer(RunScene(), {
        "lr": ipywidgets.SelectionSlider(options=LR_OPTIONS, value=1.0,
                                         description="learning rate", style=style),
        "init_scale": ipywidgets.SelectionSlider(options=SCALE_OPTIONS, value=1.0,
                                                 description="init scale", style=style),
        "batch_norm": ipywidgets.Checkbox(value=True, description="batch norm"),
    }, title="A 64-100-100-10 sigmoid network trained for 300 steps from 3 seeds, "
             "and its twin with batch norm switched the other way (trained ahead of time)")


if __name__ == "__main__":
    _started = time.perf_counter()
    write_run_table(RUN_TABLE)
    write_depth_table(DEPTH_TABLE)
    print(f"wrote {RUN_TABLE} ({RUN_TABLE.stat().st_size / 1024:.0f} kB) and {DEPTH_TABLE.name} "
          f"in {time.perf_counter() - _started:.0f} s")
