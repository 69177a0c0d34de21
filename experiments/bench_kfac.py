"""The K-FAC structure at the scale of a million weights: time and memory.

Run:  python experiments/bench_kfac.py [--quick] [--json PATH]

A 784-1000-10 MLP (tanh hidden, softmax outputs, cross-entropy; W = 795,010)
on N = 60,000 synthetic float64 patterns (inputs in [0, 1] like pixel
intensities, classes from a random teacher network), at weights after a
few gradient steps (K-FAC's factors do not need a minimum; the Laplace
posterior that does is not part of this script). Each stage prints its
wall time, its time as a multiple of one gradient over the data (the ratio
to read: it carries over to other machines) and its tracemalloc peak (the
numpy memory the stage held at most); the process's peak resident memory
(ru_maxrss, data included) is printed at the end. Stages:

1. the factors (one pass over the data, :func:`kronecker_factor_sums`);
2. their eigendecompositions (building the curvature);
3. the precision for one alpha and the log evidence (log det, gamma from
   diag(A^{-1})), then again for five other alphas (no refactorisation);
4. the GLM predictive covariance (N, K, K) of the logits at 10,000 points,
   in chunks of 1,000 points.

``--quick``: N = 6,000, a 784-100-10 network and 1,000 points.

BLAS runs on one thread unless OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or
MKL_NUM_THREADS is set (as in bench_gradient.py: on a small machine shared
with other jobs, threaded BLAS waits for busy cores and an eigendecomposition
of order 1,000 slows down tenfold at random).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
import tracemalloc

import _bench_setup  # noqa: F401  (one BLAS thread, this checkout's sopt)

import numpy as np  # noqa: E402

import sopt  # noqa: E402
from sopt.bayes._kfac import KFAC  # noqa: E402
from sopt.bayes._structure import Linearisation  # noqa: E402


def synthetic(n: int, d: int, k: int, seed: int):
    """(X (n, d) in [0, 1], one-hot T (n, k)) labelled by a random tanh teacher."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, (n, d)) ** 3          # mostly dark "pixels"
    teacher = sopt.mlp([d, 50, k], hidden="tanh", output="softmax")
    logits = teacher.propagate(teacher.init_weights(seed=seed, scale=4.0), X).a[-1]
    T = np.eye(k)[np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)]
    return X, T


def staged(name: str, fn, unit: float, log: dict):
    """Run fn(), print and record its time, its ratio to ``unit`` and its
    tracemalloc peak; return fn's result."""
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    log[name] = {"seconds": seconds, "gradients": seconds / unit,
                 "peak_MB": peak / 2**20, "max_rss_MB": max_rss_mb()}
    print(f"{name:<44s} {seconds:8.2f} s  {seconds / unit:7.1f} gradients  "
          f"peak {peak / 2**20:6.1f} MB  (process max RSS {max_rss_mb():.0f} MB)",
          flush=True)
    return out


def max_rss_mb() -> float:
    """The process's peak resident memory so far, MB (Linux: ru_maxrss in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def log_evidence(curv, obj, w, alpha: float):
    """ln p(D | alpha) of the cross-entropy Laplace (PRML eq. 5.183) with
    the K-FAC precision, and gamma = sum 1 - alpha diag(A^{-1})."""
    W = len(curv.covered)
    prec = curv.precision(np.full(W, alpha), 1.0)
    gamma = float(np.sum(1.0 - alpha * prec.inverse_diagonal()))
    E_D = obj.value(w)
    return (-E_D - 0.5 * alpha * w @ w - 0.5 * prec.log_det
            + 0.5 * W * np.log(alpha)), gamma, prec


def predictive(prec, net, w, X, chunk: int):
    """(N, K, K) logit covariances, ``chunk`` rows at a time."""
    out = np.empty((len(X), net.n_outputs, net.n_outputs))
    for start in range(0, len(X), chunk):
        lin = Linearisation(net, w, X[start:start + chunk], "a")
        out[start:start + chunk] = prec.output_covariance(lin, full=True)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    n, hidden, n_test = (6000, 100, 1000) if args.quick else (60000, 1000, 10000)
    X, T = synthetic(n + n_test, 784, 10, seed=0)
    X, T, X_test = X[:n], T[:n], X[n:]
    net = sopt.mlp([784, hidden, 10], hidden="tanh", output="softmax")
    obj = sopt.Objective(net, X, T, loss="softmax_ce", alpha=0.0)
    w = net.init_weights(seed=1)
    for _ in range(5):                      # a few steps off the initial weights
        w -= 0.5 / n * obj.gradient(w)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", os.environ.get("OMP_NUM_THREADS"))
    print(f"{net!r}, N = {n}, {n_test} test points; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; BLAS threads "
          f"{threads}", flush=True)
    t0 = time.perf_counter()
    obj.gradient(w)
    unit = time.perf_counter() - t0
    print(f"one gradient over the data: {unit:.2f} s; process max RSS so far "
          f"(data, training) {max_rss_mb():.0f} MB", flush=True)
    log = {"W": net.n_weights, "N": n, "gradient_seconds": unit}
    used = np.arange(net.n_weights)
    curv = staged("factors + eigendecompositions (build)",
                  lambda: KFAC().build(obj, w, used, "gauss_newton", True, None), unit, log)
    print(f"  curvature holds {curv.nbytes / 2**20:.1f} MB "
          f"(a dense W x W matrix: {8 * net.n_weights**2 / 2**30:.0f} GiB)")
    ev, gamma, prec = staged("precision + log evidence + gamma (alpha = 1)",
                             lambda: log_evidence(curv, obj, w, 1.0), unit, log)
    print(f"  ln p(D) = {ev:.2f}, gamma = {gamma:.1f}")
    staged("five more alphas (log evidence + gamma each)",
           lambda: [log_evidence(curv, obj, w, a) for a in (0.1, 0.3, 3.0, 10.0, 30.0)],
           unit, log)
    cov = staged(f"GLM predictive covariance, {n_test} points",
                 lambda: predictive(prec, net, w, X_test, 1000), unit, log)
    print(f"  mean logit variance {np.einsum('nkk->nk', cov).mean():.4g}")
    log["max_rss_MB"] = max_rss_mb()
    print(f"peak resident memory of the process (data included): "
          f"{max_rss_mb():.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(log, f, indent=1)
    return log


if __name__ == "__main__":
    main()
