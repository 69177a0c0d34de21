"""Training to a tight gradient: iterations and wall time of sopt's solvers.

Run:  python experiments/bench_optimize.py [--quick] [--json PATH]

Two problems, each with weight decay alpha = 1e-2 so that the minimum is
well defined, and one w0 (``init_weights(seed=0)``) shared by every method:

(a) regression: t = sin(pi x) + N(0, 0.1^2), x ~ U(-1, 1), N = 1000, a
    1-M-1 tanh network with linear output, sum-of-squares;
(b) classification: two classes in 2-D, each a mixture of two Gaussians,
    N = 1000, a 2-M-1 tanh network with logistic output, cross-entropy.

Every method runs until |g|_inf <= 1e-6 (gd is capped). The table gives
iterations, wall time, final E, |g|_inf and success.

Then Levenberg-Marquardt is compared with what a user without sopt would
run: ``scipy.optimize.least_squares(method="lm")`` on the residuals
r(w) = [y(w) - t, sqrt(alpha) w] (so 1/2 |r|^2 is the same E), y(w)
vectorised in numpy, Jacobian by forward differences (jac="2-point", the
default), scipy's default tolerances (and, for reference, with all three
tolerances at 1e-15). Its |g|_inf is measured with sopt's exact gradient,
and the time ratio is least_squares / sopt lm. ``nfev`` of least_squares
counts residual evaluations outside the finite differences, "r calls" all
of them.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import scipy.optimize

import sopt
from sopt.allocator import tune_allocator
from sopt.optimize import ConvergenceWarning, minimize

GTOL = 1e-6
ALPHA = 1e-2
METHODS = ("gd", "l-bfgs-b", "bfgs", "newton", "lm", "trust-exact", "trust-ncg")


# ------------------------------------------------------------------ problems
def regression(N: int, M: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (N, 1))
    t = np.sin(np.pi * X[:, 0]) + 0.1 * rng.standard_normal(N)
    net = sopt.mlp([1, M, 1], hidden="tanh", output="identity")
    return net, sopt.Objective(net, X, t, loss="sse", alpha=ALPHA), X, t


def classification(N: int, M: int, seed: int = 0):
    """Two classes, each an equal mixture of two isotropic Gaussians
    (an XOR-like layout, so the boundary is non-linear)."""
    rng = np.random.default_rng(seed)
    centres = {0: [(-1.0, -1.0), (1.0, 1.0)], 1: [(-1.0, 1.0), (1.0, -1.0)]}
    labels = rng.integers(0, 2, N)
    component = rng.integers(0, 2, N)
    means = np.array([centres[c][k] for c, k in zip(labels, component)])
    X = means + 0.6 * rng.standard_normal((N, 2))
    net = sopt.mlp([2, M, 1], hidden="tanh", output="logistic")
    obj = sopt.Objective(net, X, labels.astype(float), loss="binary_ce",
                         alpha=ALPHA)
    return net, obj, X, labels


# ------------------------------------------------------------------- solvers
def run(obj, w0, method: str, gd_cap: int, maxiter: int) -> dict:
    options = {"gtol": GTOL, "maxiter": gd_cap if method == "gd" else maxiter}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        res = minimize(obj, w0, method=method, options=options)
        elapsed = time.perf_counter() - t0
    g = obj.gradient(res.x)
    return {"method": method, "iterations": int(res.nit), "time_s": elapsed,
            "E": float(obj.value(res.x)), "grad_inf": float(np.max(np.abs(g))),
            "success": bool(res.success), "status": int(res.status),
            "message": str(res.message), "nfev": int(res.nfev),
            "njev": int(res.njev), "nhev": int(res.nhev)}


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'method':<12} {'iter':>7} {'time s':>9} {'final E':>20} "
          f"{'|g|_inf':>9} {'success':>8}")
    for r in rows:
        print(f"{r['method']:<12} {r['iterations']:>7d} {r['time_s']:>9.3f} "
              f"{r['E']:>20.12g} {r['grad_inf']:>9.1e} {str(r['success']):>8}")


# --------------------------------------------- least_squares, as without sopt
def numpy_residuals(X, t, M: int, alpha: float):
    """r(w) = [y(w) - t, sqrt(alpha) w] for a 1-M-1 tanh net, with sopt's
    weight layout (W1 (M, 1), b1, W2 (1, M), b2)."""
    x = X[:, 0]
    root_alpha = np.sqrt(alpha)

    def r(w):
        W1, b1, W2, b2 = w[:M], w[M:2 * M], w[2 * M:3 * M], w[3 * M]
        y = np.tanh(np.outer(x, W1) + b1) @ W2 + b2
        return np.concatenate([y - t, root_alpha * w])
    return r


def _least_squares(obj, r, w0, **tolerances) -> dict:
    calls = [0]

    def counted(w):
        calls[0] += 1
        return r(w)
    t0 = time.perf_counter()
    ls = scipy.optimize.least_squares(counted, w0, method="lm", **tolerances)
    elapsed = time.perf_counter() - t0          # jac="2-point" (default)
    g = obj.gradient(ls.x)
    return {"time_s": elapsed, "nfev": int(ls.nfev), "calls": calls[0],
            "status": int(ls.status),
            "message": ls.message, "E": float(obj.value(ls.x)),
            "grad_inf": float(np.max(np.abs(g))),
            "reached_gtol": bool(np.max(np.abs(g)) < GTOL)}


def compare_least_squares(obj, X, t, M: int, w0, lm_row: dict) -> dict:
    r = numpy_residuals(X, t, M, ALPHA)
    E_np = 0.5 * float(r(w0) @ r(w0))
    assert abs(E_np - obj.value(w0)) <= 1e-10 * obj.value(w0), "layouts differ"
    out = _least_squares(obj, r, w0)                       # scipy's defaults
    out["time_ratio_vs_sopt_lm"] = out["time_s"] / lm_row["time_s"]
    tight = _least_squares(obj, r, w0, ftol=1e-15, xtol=1e-15, gtol=1e-15)
    tight["time_ratio_vs_sopt_lm"] = tight["time_s"] / lm_row["time_s"]
    print("\nLevenberg-Marquardt: sopt (exact Gauss-Newton) vs "
          "scipy.optimize.least_squares(method='lm', jac='2-point')")
    print(f"  {'':<26} {'iter/nfev':>9} {'r calls':>7} {'time s':>8} "
          f"{'final E':>18} {'|g|_inf':>9} {'ratio':>6}")
    print(f"  {'sopt lm':<26} {lm_row['iterations']:>9d} {'':>7} "
          f"{lm_row['time_s']:>8.3f} {lm_row['E']:>18.12g} "
          f"{lm_row['grad_inf']:>9.1e} {1.0:>6.2f}")
    for name, res in (("least_squares, defaults", out),
                      ("least_squares, tol 1e-15", tight)):
        print(f"  {name:<26} {res['nfev']:>9d} {res['calls']:>7d} {res['time_s']:>8.3f} "
              f"{res['E']:>18.12g} {res['grad_inf']:>9.1e} "
              f"{res['time_ratio_vs_sopt_lm']:>6.2f}   status {res['status']}: "
              f"{res['message']}")
    print(f"  least_squares (defaults) reached |g|_inf < {GTOL:g}: "
          f"{out['reached_gtol']}; time ratio least_squares / sopt lm = "
          f"{out['time_ratio_vs_sopt_lm']:.2f}")
    out["tight_tolerances"] = tight
    return out


# ---------------------------------------------------------------------- main
def main(argv=None) -> dict:
    tune_allocator()   # as the sopt command does; see sopt/allocator.py
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller networks and a lower cap for gd")
    parser.add_argument("--json", metavar="PATH", help="write results as JSON")
    args = parser.parse_args(argv)

    N = 1000
    M_reg, M_cls = (5, 5) if args.quick else (10, 10)
    gd_cap = 2000 if args.quick else 20000
    maxiter = 5000
    results = {"config": {"N": N, "M_regression": M_reg,
                          "M_classification": M_cls, "alpha": ALPHA,
                          "gtol": GTOL, "gd_cap": gd_cap, "maxiter": maxiter}}

    net, obj, X, t = regression(N, M_reg)
    w0 = net.init_weights(seed=0)
    rows = [run(obj, w0, m, gd_cap, maxiter) for m in METHODS]
    print_table(f"(a) regression: sin(pi x) + noise, 1-{M_reg}-1 tanh, N = {N}, "
                f"W = {net.n_weights}, alpha = {ALPHA:g}", rows)
    results["regression"] = rows
    lm_row = next(r for r in rows if r["method"] == "lm")
    results["least_squares"] = compare_least_squares(obj, X, t, M_reg, w0, lm_row)

    net, obj, X, labels = classification(N, M_cls)
    w0 = net.init_weights(seed=0)
    rows = [run(obj, w0, m, gd_cap, maxiter) for m in METHODS]
    print_table(f"(b) classification: 2-class Gaussian mixtures, 2-{M_cls}-1 "
                f"tanh/logistic, binary_ce, N = {N}, W = {net.n_weights}, "
                f"alpha = {ALPHA:g}", rows)
    results["classification"] = rows

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return results


if __name__ == "__main__":
    main()
