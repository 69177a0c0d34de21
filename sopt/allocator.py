"""Opt-in tuning of glibc's malloc for loops of numpy temporaries.

By default glibc serves each block above a dynamic threshold with a fresh
mmap and returns freed heap memory to the system, so a pass that creates a
few hundred-kilobyte temporaries can pay page faults on every call; how many
depends on the heap layout. With the heap kept, none do (the README's
"Benchmarks" section has the measured gain). Libraries should not change
their host process behind its back, so nothing here runs on import: the
``sopt`` command and the benchmark scripts call :func:`tune_allocator`, and
users may too. The same effect comes from
the environment variables ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` (glibc's documented tunables).

:func:`kept_heap` is the scoped form, for code that runs in somebody
else's process (sopt's tasks on Dask workers): generous thresholds while
the block runs, the process's own ones restored afterwards.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys
import threading

# mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 2**20     # glibc's ceiling on 64-bit systems
DEFAULT_THRESHOLD = 128 * 2**10     # glibc's default for both (malloc.c)
# the environment variables that fix glibc's thresholds, and their
# GLIBC_TUNABLES names (glibc manual, "Memory Allocation Tunables")
_ENVIRONMENT = {M_TRIM_THRESHOLD: ("MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold"),
                M_MMAP_THRESHOLD: ("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold")}

_set_here: dict = {}        # what tune_allocator() set in this process
_lock = threading.Lock()
_depth = 0                  # kept_heap() blocks open in this process


@functools.cache
def _libc():
    """glibc's (mallopt, malloc_trim), or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    malloc_trim.argtypes, malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
    return mallopt, malloc_trim


def _set(settings: dict) -> bool:
    libc = _libc()
    if libc is None:
        return False
    return all([bool(libc[0](param, value)) for param, value in settings.items()])


def tune_allocator(trim_threshold: int = 2**30) -> bool:
    """Keep freed memory in the heap (up to ``trim_threshold`` bytes) and
    serve blocks up to 32 MiB from it. Returns True if glibc accepted both
    settings, False elsewhere (other C libraries, other systems)."""
    settings = {M_MMAP_THRESHOLD: MMAP_THRESHOLD_MAX,
                M_TRIM_THRESHOLD: int(min(trim_threshold, 2**31 - 1))}
    with _lock:
        ok = _set(settings)
        if ok:
            _set_here.update(settings)
    return ok


def pinned_thresholds() -> dict | None:
    """The trim and mmap thresholds this process runs with, when they are
    fixed: ``{"trim": bytes, "mmap": bytes}``, or None when glibc's
    dynamic mmap threshold is in force (nothing fixed them).

    glibc has no getter, so the values are read from where they were set:
    :func:`tune_allocator` in this process, else the environment
    (``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``, or their
    ``GLIBC_TUNABLES`` entries, read first); a threshold left unset is glibc's
    default, 128 KiB. Setting either one switches the dynamic threshold off
    (glibc's malloc.c), so the pair read here is then the whole state.
    Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` for its workers.
    A mallopt call by other code in the process is not seen."""
    tunables = dict(entry.partition("=")[::2] for entry in
                    os.environ.get("GLIBC_TUNABLES", "").split(":") if entry)
    found = {}
    for param, (variable, tunable) in _ENVIRONMENT.items():
        text = tunables.get(tunable, os.environ.get(variable))
        if text is not None:
            try:
                found[param] = int(text, 0)
            except ValueError:
                pass            # glibc ignores what it cannot parse too
    found.update(_set_here)
    if not found:
        return None
    return {"trim": found.get(M_TRIM_THRESHOLD, DEFAULT_THRESHOLD),
            "mmap": found.get(M_MMAP_THRESHOLD, DEFAULT_THRESHOLD)}


@contextlib.contextmanager
def kept_heap():
    """Keep freed memory in the heap while the block runs, then give it back.

    In a process whose thresholds are fixed low (:func:`pinned_thresholds`;
    Dask's workers: trim 64 KiB, mmap 128 KiB) every numpy temporary above
    128 KiB is a fresh mmap and pays its page faults again on every use. In
    the block the thresholds are those of :func:`tune_allocator` (mmap
    32 MiB, trim 1 GiB); on leaving the last open block (nested and
    concurrent blocks count) the pinned values are set again and
    ``malloc_trim(0)`` returns the free heap memory to the system, as the
    process's own settings intend. Other threads' allocations during the
    block see the generous thresholds too.

    Does nothing (yields False) where the dynamic threshold is in force
    (nothing pinned): glibc then raises the mmap threshold by itself to the
    size of the blocks freed, and a mallopt call would switch that off for
    good, with no way back; nor where the pinned values are already
    generous (after :func:`tune_allocator`), nor off glibc. Yields True
    when it acts.
    """
    global _depth
    with _lock:
        pinned = pinned_thresholds()
        acts = (pinned is not None and _libc() is not None
                and (pinned["mmap"] < MMAP_THRESHOLD_MAX or pinned["trim"] < 2**30))
        if acts:
            if _depth == 0:
                _set({M_MMAP_THRESHOLD: max(pinned["mmap"], MMAP_THRESHOLD_MAX),
                      M_TRIM_THRESHOLD: max(pinned["trim"], 2**30)})
            _depth += 1
    try:
        yield acts
    finally:
        if acts:
            with _lock:
                _depth -= 1
                if _depth == 0:
                    pinned = pinned_thresholds()    # tune_allocator() may have run
                    _set({M_MMAP_THRESHOLD: pinned["mmap"],
                          M_TRIM_THRESHOLD: pinned["trim"]})
                    _libc()[1](0)
