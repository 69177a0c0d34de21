"""Median wall-clock timing: one home for ``sopt check``, the experiments and
the benchmark scripts (experiments/bench_*.py).

A median over repeated calls is robust to the bursts of load of a shared
machine; interleaving the callables (``median_times``) makes a period of load
fall on all of them alike rather than on one.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def elapsed(fn: Callable[[], object]) -> float:
    """Wall time in seconds of one call fn()."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn: Callable[[int], object], repeats: int, warmup: int = 0) -> float:
    """Median wall time in seconds of fn(r) over r = 0 .. repeats-1, after
    ``warmup`` untimed calls fn(0) (to fill caches and lazy state)."""
    for _ in range(warmup):
        fn(0)
    return float(np.median([elapsed(lambda: fn(r)) for r in range(repeats)]))


def median_times(calls: dict, min_repeat: int, budget: float = 0.0,
                 one_shot: float = float("inf"), max_repeat: int = 200) -> dict:
    """Median wall time of each callable in ``calls`` ({key: f}).

    Every callable is called once to warm up, then the callables are timed
    in interleaved rounds (one call of each per round), so that a period of
    load on the machine falls on all of them alike rather than on one. A
    callable drops out after ``min_repeat`` timed calls once its calls add up
    to ``budget`` seconds (or after ``max_repeat``); one whose warm-up call
    took over ``one_shot`` seconds is timed by that call alone.
    """
    times = {key: [] for key in calls}
    active = []
    for key, f in calls.items():
        first = elapsed(f)
        if first > one_shot:
            times[key].append(first)
        else:
            active.append(key)
    while active:
        for key in list(active):
            times[key].append(elapsed(calls[key]))
            n, total = len(times[key]), sum(times[key])
            if (n >= min_repeat and total >= budget) or n >= max_repeat:
                active.remove(key)
    return {key: float(np.median(t)) for key, t in times.items()}
