"""Timing for the lessons' speed comparisons (printed as ratios, never asserted exactly)."""
from __future__ import annotations

import time

__all__ = ["best_time"]


def best_time(fn, repeats: int = 5) -> float:
    """Shortest wall time of ``repeats`` calls of ``fn()``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
