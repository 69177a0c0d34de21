"""BLAS threads for sopt's own small dense work.

OpenBLAS and MKL start as many threads as there are cores, which pays for
large matrices on an idle machine; for the W x W factorisations, solves and
eigendecompositions of the Bayesian layer at the sizes it meets, on a
machine that is busy with anything else (cross-validation in parallel, a
Dask worker, another job), the threads wait on each other instead, and one
Cholesky factorisation can take 100-1000 times as long
(``experiments/bench_blas_threads.py`` sweeps sizes and thread counts;
docs/PERFORMANCE.md has the table the threshold comes from).

:func:`blas_threads_for` runs a block on one BLAS thread when the matrices
are below :data:`BLAS_MIN_SIZE` and restores the caller's setting after it;
above, it leaves the caller's setting alone. threadpoolctl (a dependency of
scikit-learn, and of sopt) sets and restores the limit; it is imported on
first use. Finding the BLAS libraries means reading the process's memory
map (1-10 ms: 10 ms beside scikit-learn's and scipy's on the 2-core
machine of docs/PERFORMANCE.md), so it is done once, by one kept
``ThreadpoolController`` whose later limits cost ~0.02 ms; it knows the
libraries loaded at its first use, which include the numpy and scipy BLAS
that sopt calls (both are imported with sopt). Scopes are still taken
around whole operations (an evidence fit, a posterior, a prediction), and
a scope inside another that already holds one thread (a posterior's solve
inside an evidence fit's cycle) sets nothing again.
"""
from __future__ import annotations

import contextlib
import threading

#: Matrices of this order and above keep the caller's BLAS threads: below
#: it no operation of the sweep (Cholesky, solve, eigh, product) was faster
#: on 2 threads than on 1 on a busy 2-core machine.
BLAS_MIN_SIZE = 2048


@contextlib.contextmanager
def blas_threads_for(size: int):
    """One BLAS thread for the block if ``size`` (the order of the dense
    matrices it works on) is below :data:`BLAS_MIN_SIZE`; else no change."""
    if size >= BLAS_MIN_SIZE or getattr(_held, "one_thread", False):
        yield
        return
    with _controller().limit(limits=1, user_api="blas"):
        _held.one_thread = True
        try:
            yield
        finally:
            _held.one_thread = False


def one_thread_per_process():
    """One thread for every thread pool threadpoolctl knows (BLAS and
    OpenMP) for the block, whatever the sizes: for work that runs one
    process per core (the sampler's forked chains)."""
    return _controller().limit(limits=1)


#: per thread: whether a blas_threads_for scope holds one BLAS thread now
_held = threading.local()
_kept = []


def _controller():
    """The process's one ThreadpoolController, made on first use."""
    if not _kept:
        from threadpoolctl import ThreadpoolController
        _kept.append(ThreadpoolController())
    return _kept[0]
