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
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 2**20     # glibc's ceiling on 64-bit systems


def tune_allocator(trim_threshold: int = 2**30) -> bool:
    """Keep freed memory in the heap (up to ``trim_threshold`` bytes) and
    serve blocks up to 32 MiB from it. Returns True if glibc accepted both
    settings, False elsewhere (other C libraries, other systems)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
                and mallopt(M_TRIM_THRESHOLD, int(min(trim_threshold, 2**31 - 1))))
