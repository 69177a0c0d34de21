"""sopt.spectral against dense linear algebra: accuracy, products and time.

Run:  python experiments/bench_spectral.py [--quick] [--figure PATH] [--json PATH]

Two tanh MLPs with identity outputs and sum-of-squares on synthetic data,
trained for 300 L-BFGS iterations (a realistic spectrum: a few large
outliers over a bulk spanning decades): P2K = (10-40-40-5, N = 500),
W = 2,285 and P5K = (20-60-50-10, N = 1,000), W = 4,820.

1. eigenpairs (k = 20) of the exact Hessian and of the Gauss-Newton matrix
   at P2K against numpy.linalg.eigvalsh of the dense matrix: the largest
   error relative to |M|_2 (target 1e-8), products, and time in units of one
   Hessian-vector product (block Lanczos with P = 1 and 4, and ARPACK, the
   latter stopped after a budget of products where it has not converged).
2. Stochastic Lanczos quadrature at P5K: ln|alpha I + beta G| and gamma
   for the data term's Gauss-Newton matrix G against its exact
   eigenvalues (target: within 1% of ln|A|), for 50, 100 and 200 Lanczos
   steps, with the estimates' standard errors and quadrature changes;
   time in units of one Gauss-Newton-vector product, against the dense
   route (G, then its Cholesky factor); the probes' block size.
3. Hutchinson's trace and diagonal of H at P2K: errors in units of their
   standard errors.

``--figure PATH`` saves the smoothed spectral densities of H and G at P2K.
``--quick``: W ~ 300 and ~ 700, fewer steps (a smoke run of ~ a minute).
BLAS runs on one thread unless OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or
MKL_NUM_THREADS is set (a shared 2-core machine gives tenfold outliers
with threads; both sides of every ratio run alike).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import warnings
from pathlib import Path

import _bench_setup  # noqa: F401  (one BLAS thread, this checkout's sopt)

import numpy as np  # noqa: E402


import sopt  # noqa: E402
from sopt import spectral  # noqa: E402
from sopt._timing import median_time  # noqa: E402

PROBLEMS = {"P2K": ((10, 40, 40, 5), 500), "P5K": ((20, 60, 50, 10), 1000)}
QUICK = {"P2K": ((6, 16, 12, 3), 200), "P5K": ((8, 30, 20, 4), 300)}
ARPACK_BUDGET = 5000          # products before ARPACK is declared stuck


def make_problem(sizes, N: int, seed: int = 0):
    """(objective of the data term, trained w): synthetic data, sse."""
    rng = np.random.default_rng(seed)
    D, K = sizes[0], sizes[-1]
    X = rng.standard_normal((N, D))
    mix = rng.standard_normal((D, K)) / np.sqrt(D)
    T = np.tanh(X @ mix) + 0.1 * rng.standard_normal((N, K))
    net = sopt.mlp(list(sizes), hidden="tanh", output="identity")
    obj = sopt.Objective(net, X, T, loss="sse", alpha=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # the iteration limit is the plan
        res = sopt.optimize.minimize(obj, net.init_weights(seed=seed),
                                     method="l-bfgs-b", options={"maxiter": 300})
    return obj.with_alpha(0.0), res.x


def product_time(obj, w, matrix: str) -> float:
    """Seconds per Hessian- (or Gauss-Newton-) vector product: the median
    over 5 loops of the mean of 20 products on fresh vectors (a loop, as
    the algorithms make them: on a busy machine a median of single calls
    would be the fastest calls' time)."""
    f = obj.hvp if matrix == "exact" else obj.gnvp
    V = np.random.default_rng(1).standard_normal((obj.net.n_weights, 20))
    f(w, V[:, 0].copy())

    def loop(r):
        for j in range(20):
            f(w, V[:, j].copy())
    return median_time(loop, 5) / 20


class Budget(Exception):
    pass


def budgeted(obj, limit: int):
    """A copy of obj whose products raise Budget after ``limit`` of them."""
    new, count = copy.copy(obj), [0]
    for name in ("hvp", "gnvp"):
        def product(w, V, _f=getattr(obj, name)):
            count[0] += 1 if np.ndim(V) == 1 else V.shape[1]
            if count[0] > limit:
                raise Budget
            return _f(w, V)
        setattr(new, name, product)
    return new


def timed(f):
    t0 = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t0


def eigen_rows(obj, w, k: int, quick: bool) -> list:
    rows = []
    W = obj.net.n_weights
    for matrix in ("exact", "gauss_newton"):
        (H, t_dense) = timed(lambda: obj.hessian(w, matrix))
        lam, t_eig = timed(lambda: np.linalg.eigvalsh(H))
        norm, unit = np.abs(lam).max(), product_time(obj, w, matrix)
        rows.append(dict(matrix=matrix, which="all", method="dense + eigvalsh",
                         error=0.0, residual=0.0, products=W,
                         time=(t_dense + t_eig) / unit))
        wanted = ("largest", "smallest") if matrix == "exact" else ("largest",)
        for which in wanted:
            want = lam[-k:] if which == "largest" else lam[:k]
            for method, P in (("lanczos", 1), ("lanczos", 4), ("arpack", 1)):
                rows.append(_eigen_row(obj, w, k, matrix, which, method, P, want,
                                       norm, unit, 500 if quick else ARPACK_BUDGET))
    return rows


def _eigen_row(obj, w, k, matrix, which, method, P, want, norm, unit, budget):
    row = dict(matrix=matrix, which=which, method=f"{method} P={P}")
    source = budgeted(obj, budget) if method == "arpack" else obj
    try:
        e, seconds = timed(lambda: spectral.eigenpairs(
            source, w, k, which, matrix, method=method, block_size=P))
    except Budget:
        return dict(row, error=float("nan"), residual=float("nan"),
                    products=f">{budget}", time=float("nan"))
    return dict(row, error=float(np.abs(e.values - want).max() / norm),
                residual=float(e.residual_norms.max() / norm),
                products=e.n_products, time=seconds / unit)


def slq_rows(obj, w, steps: tuple, n_probes: int, hyper: tuple) -> tuple:
    """(rows, dense route time / gnvp, block-size rows)."""
    unit = product_time(obj, w, "gauss_newton")
    (G, t_gn) = timed(lambda: obj.hessian(w, "gauss_newton"))
    n = len(G)
    lam = np.linalg.eigvalsh(G)
    A0 = hyper[0][0] * np.eye(n) + hyper[0][1] * G
    _, t_chol = timed(lambda: np.linalg.cholesky(A0))
    rows = []
    for m in steps:
        q, seconds = timed(lambda: spectral.lanczos_quadrature(
            obj, w, n_probes, m, "gauss_newton", seed=1))
        for alpha, beta in hyper:
            rows.append(_slq_row(q, lam, alpha, beta, m, seconds / unit))
    blocks = []
    for P in (1, 5, n_probes):
        q, seconds = timed(lambda: spectral.lanczos_quadrature(
            obj, w, n_probes, steps[0], "gauss_newton", block_size=P, seed=1))
        blocks.append(dict(block_size=P, products=q.n_products, time=seconds / unit))
    return rows, (t_gn + t_chol) / unit, blocks


def _slq_row(q, lam, alpha, beta, m, time_ratio) -> dict:
    true = float(np.sum(np.log(alpha + beta * np.maximum(lam, 0))))
    gamma = float(np.sum(beta * lam / (alpha + beta * lam)))
    terms = spectral.evidence_terms(q, alpha=alpha, beta=beta)
    ld, g = terms.log_det, terms.gamma
    return dict(alpha=alpha, beta=beta, steps=m, probes=q.n_probes,
                rel_error=(ld.value - true) / abs(true),
                rel_se=ld.standard_error / abs(true),
                rel_change=ld.quadrature_change / abs(true),
                gamma=gamma, gamma_error=g.value - gamma, gamma_se=g.standard_error,
                gamma_change=g.quadrature_change,
                products=q.n_products, time=time_ratio)


def hutchinson_rows(obj, w, n_probes: int) -> list:
    unit = product_time(obj, w, "exact")
    H = obj.hessian(w, "exact")
    t, seconds = timed(lambda: spectral.hutchinson_trace(obj, w, n_probes, seed=2))
    d, seconds_d = timed(lambda: spectral.hutchinson_diagonal(obj, w, n_probes,
                                                              seed=3))
    z = (d.value - np.diag(H)) / d.standard_error
    return [dict(what="trace", error_in_se=(t.value - np.trace(H)) / t.standard_error,
                 rel_se=t.standard_error / abs(np.trace(H)), products=t.n_products,
                 time=seconds / unit),
            dict(what="diagonal", error_in_se=float(np.abs(z).max()),
                 rel_se=float(np.median(d.standard_error / np.abs(np.diag(H)))),
                 within_2se=float(np.mean(np.abs(z) < 2)), products=d.n_products,
                 time=seconds_d / unit)]


def save_figure(obj, w, path: str, n_steps: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, matrix, title in zip(axes, ("exact", "gauss_newton"),
                                 ("Hessian", "Gauss-Newton")):
        spectral.plot_spectral_density(obj, w, ax=ax, matrix=matrix, n_probes=10,
                                       n_steps=n_steps, seed=0)
        ax.set_title(f"{title}, W = {obj.net.n_weights}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")


def fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if np.isnan(v) else (f"{v:.3g}" if abs(v) >= 1e-3 or v == 0
                                          else f"{v:.1e}")
    return str(v)


def table(rows: list) -> str:
    header = list(rows[0])
    cells = [header] + [[fmt(r[h]) for h in header] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(s.rjust(wd) for s, wd in zip(c, widths)) for c in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, ~ a minute")
    parser.add_argument("--figure", metavar="PATH", help="save the density figure")
    parser.add_argument("--json", metavar="PATH", help="also write results as JSON")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else PROBLEMS
    threads = os.environ.get("OPENBLAS_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "?"))
    print(f"sopt {sopt.__version__}, numpy {np.__version__}, BLAS threads {threads}")
    small, w_small = make_problem(*sizes["P2K"])
    big, w_big = make_problem(*sizes["P5K"])
    out = {}
    print(f"\n1. eigenpairs, k = 20, W = {small.net.n_weights} (error and residual "
          "relative to |M|_2; time in products' units)")
    out["eigenpairs"] = eigen_rows(small, w_small, 20, args.quick)
    print(table(out["eigenpairs"]))
    steps = (20, 40) if args.quick else (50, 100, 200)
    print(f"\n2. SLQ of ln|alpha I + beta G| and gamma, W = {big.net.n_weights} "
          "(relative to |ln|A||; time in Gauss-Newton products)")
    rows, dense_time, blocks = slq_rows(big, w_big, steps, 10 if args.quick else 20,
                                        ((0.01, 100.0), (1.0, 100.0)))
    out.update(slq=rows, dense_route_time=dense_time, slq_block_size=blocks)
    print(table(rows))
    print(f"dense route (G, then Cholesky of A): {dense_time:.0f} products' time")
    print(table(blocks))
    print(f"\n3. Hutchinson, W = {small.net.n_weights}")
    out["hutchinson"] = hutchinson_rows(small, w_small, 50 if args.quick else 200)
    print(table(out["hutchinson"]))
    if args.figure:
        save_figure(small, w_small, args.figure, 30 if args.quick else 100)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
