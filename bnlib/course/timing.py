"""Timing for the lessons' speed comparisons (printed as ratios, never asserted exactly)."""
from __future__ import annotations

import time

__all__ = ["best_time", "best_times"]


def best_time(fn, repeats: int = 5) -> float:
    """Shortest wall time of ``repeats`` calls of ``fn()``, in seconds."""
    return best_times({"fn": fn}, repeats)["fn"]


def best_times(fns: dict, repeats: int = 5) -> dict:
    """Shortest wall time of ``repeats`` calls of each function in ``fns``, in seconds.

    The calls are interleaved (one of each, ``repeats`` rounds), so a burst of load from
    elsewhere on the machine slows every function alike instead of one of them: the
    ratios between the results are steadier than timing each function on its own.

    Parameters
    ----------
    fns : dict
        Name -> function of no arguments.
    repeats : int
        Rounds, at least 1.

    Returns
    -------
    dict
        Name -> seconds, in the order of ``fns``.
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected an int of at least 1, got {repeats!r}")
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best
