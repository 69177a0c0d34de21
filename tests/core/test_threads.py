"""sopt._threads: sopt's own small dense work runs on one BLAS thread, and
the caller's setting is what it was afterwards."""
import numpy as np
import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

import sopt
from sopt._threads import BLAS_MIN_SIZE, blas_threads_for
from sopt.bayes import evidence_fit, laplace


def _blas_threads() -> int:
    return max(info["num_threads"] for info in threadpoolctl.threadpool_info()
               if info["user_api"] == "blas")


def _recording_tanh(seen: list):
    def h(a):
        seen.append(_blas_threads())
        return np.tanh(a)
    return sopt.Activation(h, lambda a: 1 - np.tanh(a) ** 2,
                           lambda a: -2 * np.tanh(a) * (1 - np.tanh(a) ** 2))


def test_the_bayesian_layer_runs_on_one_blas_thread_and_restores_the_callers():
    seen = []
    net = sopt.mlp([2, 3, 1], hidden=_recording_tanh(seen))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 2))
    t = np.sin(X[:, 0]) + 0.1 * rng.standard_normal(30)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        callers = _blas_threads()
        res = evidence_fit(net, X, t, w0=net.init_weights(seed=0), max_cycles=2)
        post = laplace(net, X, t, res.w, alpha=res.alpha, beta=res.beta,
                       clip_negative=True)
        post.predict(X[:3])
        assert _blas_threads() == callers
    assert seen and set(seen) == {1}


def test_large_matrices_keep_the_callers_threads():
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        callers = _blas_threads()
        with blas_threads_for(BLAS_MIN_SIZE):
            assert _blas_threads() == callers
        with blas_threads_for(BLAS_MIN_SIZE - 1):
            assert _blas_threads() == 1


def test_the_blas_libraries_are_found_once(monkeypatch):
    """Finding the BLAS libraries reads the process's memory map (1-10 ms);
    the scopes reuse one controller instead of searching on every entry."""
    import sopt._threads as threads
    made = []

    class Counting(threadpoolctl.ThreadpoolController):
        def __init__(self):
            made.append(1)
            super().__init__()

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", Counting)
    monkeypatch.setattr(threads, "_kept", [])
    for _ in range(3):
        with blas_threads_for(10):
            pass
    assert len(made) == 1          # (threadpool_info would make its own)
    with blas_threads_for(10):
        assert _blas_threads() == 1
