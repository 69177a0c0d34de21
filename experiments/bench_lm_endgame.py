"""Levenberg-Marquardt's endgame on large-residual regressions.

Run:  python experiments/bench_lm_endgame.py [--quick] [--case friedman3]

Cases: scikit-learn's make_friedman3 and make_friedman2 (n_samples=3000,
noise=0.1, random_state=0), first 2000 rows, inputs and targets
standardised; 4-12-12-1 (friedman3) and 4-20-20-1 (friedman2) tanh nets,
sum-of-squares, alpha = 1e-3, w0 = init_weights(seed=0), gtol = 1e-5.

Rows: the old LM (trainlm's tenfold mu, no hybrid), the gain-ratio damping
alone, the tenfold rule with the hybrid, the new default (gain + hybrid)
and newton. Each prints iterations, status, final |g|_inf, E and seconds.
``--quick`` caps every run at 150 iterations (a smoke run).
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import make_friedman2, make_friedman3

import sopt
from sopt.optimize import ConvergenceWarning, minimize

GTOL = 1e-5
CASES = {"friedman3": (make_friedman3, [4, 12, 12, 1]),
         "friedman2": (make_friedman2, [4, 20, 20, 1])}
RUNS = [("lm old (tenfold)", "lm", {"update": "tenfold", "hybrid": False}),
        ("lm gain only", "lm", {"hybrid": False}),
        ("lm tenfold + hybrid", "lm", {"update": "tenfold"}),
        ("lm new (default)", "lm", {}),
        ("newton", "newton", {})]


def case(name: str):
    """(objective, w0) of one case."""
    make, sizes = CASES[name]
    X, t = make(n_samples=3000, noise=0.1, random_state=0)
    X, t = X[:2000], t[:2000]
    X = (X - X.mean(0)) / X.std(0)
    t = (t - t.mean()) / t.std()
    net = sopt.mlp(sizes)
    return sopt.Objective(net, X, t, alpha=1e-3), net.init_weights(seed=0)


def run(obj, w0, method: str, options: dict, maxiter: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        res = minimize(obj, w0, method, {"gtol": GTOL, "maxiter": maxiter, **options})
    return res, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--case", choices=list(CASES), action="append")
    args = parser.parse_args()
    maxiter = 150 if args.quick else 1000
    print(f"{'case':10s} {'run':22s} {'nit':>5s} {'status':>6s} {'|g|_inf':>9s} "
          f"{'E':>14s} {'time s':>7s}")
    for name in args.case or list(CASES):
        obj, w0 = case(name)
        for label, method, options in RUNS:
            res, seconds = run(obj, w0, method, options, maxiter)
            print(f"{name:10s} {label:22s} {res.nit:5d} {res.status:6d} "
                  f"{np.max(np.abs(res.jac)):9.2e} {res.fun:14.8f} {seconds:7.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
