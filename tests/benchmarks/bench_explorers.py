"""How long does an explorer take to respond? Kernel-side latency of every control update.

Run with ``make bench`` or ``python tests/benchmarks/bench_explorers.py``
(``--quick``: 3 updates of the first control of each explorer, to check the
script runs; ``--full``: also time a full redraw, i.e. a new figure built
and drawn whole for the same values, which is what every update cost before
the explorers became :class:`bnlib.course.widgets.Scene` s). pytest does not
collect this file.

Every factory ``*_explorer()`` defined in a ``bnlib/lessons/lesson*/explore.py`` module is
found and built outside a kernel with matplotlib's Agg backend and the
course's plot style. Then, for each control, its ``.value`` is set
alternately to two valid values (the default and one step away, or another
option) ``--updates`` times (20 by default); for an explorer with a Run
button, the button is pressed after each set, as a learner would. Each set runs
:meth:`bnlib.course.widgets.Explorer.update` synchronously: the view (compute, and
set the new data on the scene's artists), then the PNG frame (restore the
cached background, draw the live artists, encode), as a learner's kernel
does before the bytes go to the browser. The table gives
the median and 90th percentile of that time, the first (cold, cache-miss)
update, and how much of the median is the view function itself; the
target is 100 ms. Timings are printed, never asserted: they depend on the
machine and on how busy it is (the load average is printed with them).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import ipywidgets  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bnlib.course import plots, widgets  # noqa: E402

TARGET_MS = 100.0


def find_factories():
    """(module name, factory name, function) for every ``*_explorer`` in bnlib/lessons/lesson*/explore.py."""
    found = []
    for path in sorted((REPO / "bnlib" / "lessons").glob("lesson*/explore.py")):
        module = importlib.import_module(f"bnlib.lessons.{path.parent.name}.explore")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.endswith("_explorer") and function.__module__ == module.__name__:
                found.append((path.parent.name, name, function))
    return found


def two_values(control):
    """Two different valid values for a control (the current one first), or None."""
    value = getattr(control, "value", None)
    options = getattr(control, "_options_values", None)
    if options is not None:
        others = [v for v in options if v != value]
        return (value, others[0]) if others else None
    if isinstance(value, bool):
        return value, not value
    step = getattr(control, "step", None)
    if step and hasattr(control, "max"):
        other = value + step if value + step <= control.max else value - step
        return value, type(value)(other)
    return None


class TimedUpdate:
    """Wraps a scene's ``update`` and records how long each call took (s)."""

    def __init__(self, update):
        self.update, self.seconds = update, []

    def __call__(self, **values):
        start = time.perf_counter()
        result = self.update(**values)
        self.seconds.append(time.perf_counter() - start)
        return result


def time_control(explorer, name, control, updates):
    """Set ``control`` alternately to two values; per-update wall times (ms) and the scene's
    ``update`` times (ms)."""
    pair = two_values(control)
    if pair is None:
        return None
    buttons = [w for w in vars(explorer).values() if isinstance(w, ipywidgets.Button)]
    timed = TimedUpdate(explorer.scene.update)
    explorer.scene.update = timed
    totals = []
    try:
        for k in range(updates):
            target = pair[(k + 1) % 2]
            before = explorer.updates
            start = time.perf_counter()
            control.value = target
            if explorer.updates == before and buttons:  # an explorer that waits for "Run"
                buttons[0].click()
            totals.append((time.perf_counter() - start) * 1000)
            if explorer.updates != before + 1:
                raise RuntimeError(f"setting {name} did not update the explorer exactly once")
    finally:
        del explorer.scene.update  # the class's method again
        control.value = pair[0]
    return np.array(totals), np.array(timed.seconds) * 1000, pair


def time_full(explorer, control, pair, updates):
    """A full redraw per update: a new scene drawn whole by Agg (ms)."""
    name = next(n for n, c in explorer.controls.items() if c is control)
    values = explorer.values()
    totals = []
    for k in range(updates):
        values[name] = pair[(k + 1) % 2]
        start = time.perf_counter()
        fig, _ = type(explorer.scene)().render(**values)
        widgets.figure_png(fig)
        plt.close(fig)
        totals.append((time.perf_counter() - start) * 1000)
    return np.array(totals)


def verdict(median, p90):
    if p90 <= TARGET_MS:
        return "ok"
    return "p90 over target" if median <= TARGET_MS else "SLOW"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=20, help="updates per control (default 20)")
    parser.add_argument("--quick", action="store_true",
                        help="3 updates of the first control of each explorer")
    parser.add_argument("--full", action="store_true",
                        help="also time a full redraw of a new figure per update (the old way)")
    args = parser.parse_args(argv)
    updates = 3 if args.quick else args.updates
    plots.use_course_style()
    factories = find_factories()
    print(f"Explorer latency: {updates} updates per control, target {TARGET_MS:.0f} ms "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    header = (f"{'explorer':<44} {'control':<12} {'first':>7} {'median':>7} {'p90':>7} "
              f"{'view':>7} {'target':>7}  verdict" + ("        full" if args.full else ""))
    print(header)
    print("-" * len(header))
    rows = 0
    start_all = time.perf_counter()
    for module, name, factory in factories:
        label = f"{module}.{name}"
        try:
            start = time.perf_counter()
            explorer = factory()
            build_ms = (time.perf_counter() - start) * 1000
        except TypeError as error:
            print(f"{label:<44} (skipped: needs arguments: {error})")
            continue
        controls = list(explorer.controls.items())[: 1 if args.quick else None]
        for control_name, control in controls:
            timed = time_control(explorer, control_name, control, updates)
            if timed is None:
                print(f"{label:<44} {control_name:<12} (no two values to alternate)")
                continue
            totals, views, pair = timed
            first, rest = totals[0], totals[1:] if len(totals) > 1 else totals
            median, p90 = np.median(rest), np.percentile(rest, 90)
            line = (f"{label:<44} {control_name:<12} {first:7.0f} {median:7.0f} {p90:7.0f} "
                    f"{np.median(views[1:] if len(views) > 1 else views):7.0f} "
                    f"{TARGET_MS:7.0f}  {verdict(median, p90):<15}")
            if args.full:
                line += f" {np.median(time_full(explorer, control, pair, updates)):11.0f}"
            print(line, flush=True)
            rows += 1
        print(f"{'':<44} {'(build)':<12} {build_ms:7.0f}")
    print(f"\nms per update, wall clock. first: the first update (cold caches); median and p90:"
          f" the {updates - 1} after it; view: the part spent in the lesson's view function"
          f" (compute, update the artists), the rest is the PNG frame. build: creating the"
          f" explorer, including its first update. {rows} controls of {len(factories)} explorers"
          f" in {time.perf_counter() - start_all:.0f} s.")
    return 0 if rows or not factories else 1


if __name__ == "__main__":
    sys.exit(main())
