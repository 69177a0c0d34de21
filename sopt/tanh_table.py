"""float64 tanh: numpy's own, or a table method where that is faster.

Why: numpy evaluates float64 ``tanh`` in SIMD loops on CPUs where it has them
(AVX-512 with numpy 2.x), but on others (AVX2) with the scalar C library,
one value at a time, which can cost more than all the matrix products of a
forward pass over a small network (measured figures: docs/PERFORMANCE.md).
Multiplications, additions, ``rint`` and ``take`` are SIMD loops
everywhere, so tanh is also rebuilt from them here, and :func:`tanh` uses
whichever of the two the running machine measures faster.

The choice (:func:`method`) is made once, at the first call on an array of at
least ``SMALL`` values: both methods compute tanh of the same ``MEASURED``
standard normal values into a given array, taking turns for ``ROUNDS``
rounds (fewer, not below ``MIN_ROUNDS``, once a method's calls add up to
``BUDGET`` seconds), and the smaller median time wins: a one-off cost of at
most 20 calls, 12 on a machine slow enough that 5 calls take ``BUDGET``.
That size is the hidden layer of a small network (1000 x 50): a sample
must be as large and as random as the arrays a gradient sees, because costs
that grow with the size (memory traffic, page faults on fresh arrays) do not
show on a small or sorted one (measured figures: docs/PERFORMANCE.md).
The environment variable ``SOPT_TANH=numpy`` or ``SOPT_TANH=table`` forces
either; any other value is an error. Arrays below ``SMALL`` values always
go to ``np.tanh``: there the table method's fixed cost of 17 numpy calls
exceeds libm's time.

Table method (in the manner of Tang's exp, ACM TOMS 15, 1989): with c the
nearest multiple of 1/256 to x and r = x - c (|r| <= 2^-9),

    tanh(x) = (tanh c + tanh r) / (1 + tanh c tanh r)

tanh c comes from a table (computed once, correctly rounded); tanh r from its
Taylor series r - r^3/3 + 2 r^5/15, whose first neglected term is below
0.06 r^7, a relative 2^-57. |x| is clipped at 20, beyond which tanh rounds to
+-1 in float64. Every step before the last formula is exact, and the rest
are IEEE multiplications, additions and a division, so the result is the
same on every x86-64 CPU and within a few units in the last place of the
true tanh (3 ulp measured, 4 asserted in the tests, against tanh in long
double); the sign is copied from x, so tanh(-0.0) = -0.0.
Cost: 17 array passes and one gather; they run over blocks of ``BLOCK``
values through five work arrays kept per thread (1.25 MiB), so that a call
takes no fresh memory besides its result, whatever the size of x (fresh
work arrays of x's size cost page faults on every call, which made the
table method slower than libm on the networks' arrays).

It runs on the calling thread: splitting the array over threads sped up
tanh alone but slowed whole forward passes (BLAS threads and cache;
docs/PERFORMANCE.md).
"""
from __future__ import annotations

import os
import threading
from functools import partial

import numpy as np

from . import _timing

Array = np.ndarray

_STEPS = 256                  # table spacing 1/256: |r| <= 2^-9
_LIMIT = 20.0                 # tanh(20) = 1 - 8e-18 rounds to 1.0
_OFFSET = _LIMIT * _STEPS     # table index of c = 0
# in long double (x87 extended on x86-64: 11 more bits) and rounded once, so
# that the entries are the correctly rounded tanh(c) whatever numpy's own
# float64 tanh on the machine (SIMD loops or libm, 1-2 ulp apart); where long
# double is float64 (other platforms) they are np.tanh's
_TABLE = np.tanh(np.arange(-_OFFSET, _OFFSET + 1, dtype=np.longdouble) / _STEPS
                 ).astype(np.float64)
# tanh(m / S) for the scaled remainder m = S r: r - r^3/3 + 2 r^5/15
_C1 = 1.0 / _STEPS
_C3 = -1.0 / (3.0 * _STEPS**3)
_C5 = 2.0 / (15.0 * _STEPS**5)
SMALL = 2048                  # below this, np.tanh whatever the machine
ENV = "SOPT_TANH"             # "numpy" or "table" forces the choice
METHODS = ("numpy", "table")
_chosen: str | None = None    # set by method() on first use
BLOCK = 32768                 # values per block of the table method
MEASURED = 50000              # values timed by the choice (1000 x 50)
ROUNDS = 9                    # interleaved timings of each method, at most
MIN_ROUNDS = 5                # ... and at least
BUDGET = 0.01                 # seconds of timed calls of a method, enough
_local = threading.local()    # per-thread work arrays of the table method


def tanh(x: Array, out: Array | None = None) -> Array:
    """Hyperbolic tangent of a float64 array, any shape; a new array, or
    ``out`` (same shape) overwritten.

    ``np.tanh`` or the table method, whichever :func:`method` chose; the two
    agree within 4 ulp (see the module docstring). NaN gives NaN, -0.0 gives
    -0.0. Cost: one pass (np.tanh) or 17 passes and a gather (table).
    """
    x = np.asarray(x, dtype=float)
    if x.size < SMALL or x.ndim == 0 or method() == "numpy":
        return np.tanh(x, out=out)
    return table_tanh(x, out=out)


def method() -> str:
    """"numpy" or "table": the tanh that :func:`tanh` uses on this machine,
    from ``SOPT_TANH`` if set, else measured once (module docstring)."""
    global _chosen
    if _chosen is None:
        _chosen = _from_environment() or _measure()
    return _chosen


def _from_environment() -> str | None:
    value = os.environ.get(ENV, "").strip().lower()
    if value and value not in METHODS:
        raise ValueError(f"{ENV}: expected 'numpy' or 'table', got {value!r}")
    return value or None


def _measure() -> str:
    """The faster method on ``MEASURED`` standard normal values written into
    a given array, as the forward pass calls it (module docstring). Cost:
    at most ``ROUNDS + 1`` calls of each (:func:`fastest`); memory: two
    arrays of ``MEASURED``."""
    x = np.random.default_rng(0).standard_normal(MEASURED)
    out = np.empty_like(x)
    return fastest({name: partial(f, x, out=out) for name, f in _candidates().items()})


def _candidates() -> dict:
    return {"numpy": np.tanh, "table": table_tanh}


def fastest(calls: dict, rounds: int = ROUNDS, budget: float = BUDGET) -> str:
    """The key of the callable in ``calls`` ({name: f()}) with the smallest
    median time over interleaved rounds, after one warm-up call each (ties:
    the first). A burst of load falls on all of them alike, and a median
    ignores the few rounds it spoils. Cost: ``rounds + 1`` calls of each, or
    fewer (not below ``MIN_ROUNDS + 1``) once a callable's timed calls add up
    to ``budget`` seconds, which bounds the cost on a slow or loaded machine.
    """
    times = _timing.median_times(calls, min_repeat=min(MIN_ROUNDS, rounds),
                                 budget=budget, max_repeat=rounds)
    return min(times, key=times.get)


def table_tanh(x: Array, out: Array | None = None) -> Array:
    """tanh of a float64 array (any shape, not 0-d) by the table method; a
    new array, or ``out`` (x's shape; may be x itself) overwritten.

    Evaluated in blocks of ``BLOCK`` values through work arrays kept per
    thread, so that no call takes fresh memory beyond its result. Cost: 17
    passes and a gather per block; memory: the result plus 5 ``BLOCK`` work
    arrays (kept, per thread).
    """
    x = np.ascontiguousarray(x, dtype=float)
    if out is None:
        out = np.empty_like(x)
    elif not _writable_like(out, x):
        out[...] = table_tanh(x)
        return out
    elif np.may_share_memory(x, out) and x.ctypes.data != out.ctypes.data:
        x = x.copy()                          # a shifted overlap: read first
    flat, result = x.reshape(-1), out.reshape(-1)
    work = _work()
    for start in range(0, flat.size, BLOCK):
        stop = min(start + BLOCK, flat.size)
        _table_block(flat[start:stop], result[start:stop],
                     [w[:stop - start] for w in work])
    return out


def _writable_like(out: Array, x: Array) -> bool:
    """Whether the blocks can be written straight into ``out``."""
    return (out.shape == x.shape and out.dtype == np.float64
            and out.flags.c_contiguous and out.flags.writeable)


def _work() -> list:
    """This thread's work arrays: four float64 and one intp of ``BLOCK``."""
    work = getattr(_local, "work", None)
    if work is None or work[0].size != BLOCK:
        work = [np.empty(BLOCK) for _ in range(4)] + [np.empty(BLOCK, np.intp)]
        _local.work = work
    return work


def _table_block(x: Array, out: Array, work: list) -> None:
    """tanh of the 1-d block x into out (x may be out), with work arrays of
    x's size; x is read last by the final sign copy."""
    m, k, s, t_r, index = work
    np.clip(x, -_LIMIT, _LIMIT, out=m)
    m *= _STEPS
    np.rint(m, out=k)
    m -= k                                    # S r, exactly (Sterbenz)
    with np.errstate(invalid="ignore"):       # NaN: any index, result NaN
        np.add(k, _OFFSET, out=index, casting="unsafe")
    t_c = _TABLE.take(index, mode="clip", out=k)
    np.multiply(m, m, out=s)
    np.multiply(s, _C5, out=t_r)
    t_r += _C3
    t_r *= s
    t_r += _C1
    t_r *= m                                  # tanh r
    np.multiply(t_c, t_r, out=s)
    s += 1.0
    t_r += t_c
    t_r /= s
    np.copysign(t_r, x, out=out)              # tanh is odd: keeps -0.0
