"""Second-order training: every solver of ``sopt.optimize.minimize`` on one
regression problem, from one starting point.

Problem: a 1-M-1 network (M = ``M`` tanh hidden units, linear output,
sum-of-squares error) on N = ``N`` points x uniform on (-1, 1) (data seed
``SEED``) with targets t = sin(pi x) + 0.1 noise, and weight decay
alpha/2 |w|^2 with alpha = ``ALPHA`` so that the minimum is well defined
(without it E is nearly flat along directions that drive a tanh unit
further into saturation, and the Hessian is close to singular there). Every
method starts from
``net.init_weights(W0_SEED)``, a starting point from which all of them that
converge reach the same minimum.

Methods: gradient descent with a bold-driver step ("gd", capped at
``GD_MAXITER`` iterations, ``GD_MAXITER_QUICK`` in the quick run), L-BFGS and BFGS (first order, quasi-Newton),
damped Newton on the exact Hessian ("newton"), Levenberg-Marquardt on the
Gauss-Newton matrix ("lm"), and scipy's trust-region and truncated-Newton
methods fed by sopt's exact Hessian ("trust-exact") or its Hessian-vector
products by R-propagation ("trust-ncg", "trust-krylov", "newton-cg"). All
stop at |g|_inf <= ``GTOL``.

E_min is the lowest final E, polished by Newton to |g|_inf <= 1e-10. Times
are wall-clock seconds since the start of each run (``history["time"]``);
for scipy's methods they include one extra gradient per iteration, computed
only to record |g|_inf.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from .. import Objective, mlp
from ..optimize import minimize
from . import _common

NAME = "training"
TITLE = "Second-order training"

M = 5                  # hidden units
N = 200                # training points
SEED = 0               # data seed
NOISE = 0.1            # standard deviation of the target noise
ALPHA = 1e-3           # weight decay
W0_SEED = 6            # the common starting point: net.init_weights(W0_SEED)
GTOL = 1e-6            # on |g|_inf
MAXITER = 10000        # for every method but gd
GD_MAXITER = 5000
GD_MAXITER_QUICK = 1000
TABLE = "Training to gtol = 1e-6 on the largest gradient component"
FLOOR = 1e-13          # E - E_min below this (round-off of E ~ 1) is drawn here

#: (method name for minimize, label, colour, line style)
METHODS = (
    ("gd", "gradient descent", "0.45", "-"),
    ("l-bfgs-b", "L-BFGS", "C0", "-"),
    ("bfgs", "BFGS", "C9", "--"),
    ("newton", "Newton (exact Hessian)", "C3", "-"),
    ("lm", "Levenberg-Marquardt", "C2", "-"),
    ("trust-exact", "trust-exact", "C1", "--"),
    ("trust-ncg", "trust-ncg", "C4", "--"),
    ("trust-krylov", "trust-krylov", "C5", "--"),
    ("newton-cg", "Newton-CG", "C6", ":"),
)


def data(seed: int = SEED, n: int = N):
    """x (n,) sorted uniform on (-1, 1) and t = sin(pi x) + NOISE * noise."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-1.0, 1.0, n))
    return x, np.sin(np.pi * x) + NOISE * rng.standard_normal(n)


def problem():
    """(net, objective, w0) of the experiment."""
    x, t = data()
    net = mlp([1, M, 1], hidden="tanh", output="identity")
    obj = Objective(net, x[:, None], t, loss="sse", alpha=ALPHA)
    return net, obj, net.init_weights(seed=W0_SEED)


def train(obj, w0, method: str, maxiter: int):
    """minimize(...) with GTOL; convergence warnings are reported in the
    table (success column), not raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        res = minimize(obj, w0, method=method,
                       options={"gtol": GTOL, "maxiter": maxiter})
        res.wall = time.perf_counter() - t0
    return res


def thin(y, bins: int = 250):
    """Indices of y to draw: all of them for short series, else the first
    and last points and, in each of ``bins`` logarithmic bins of the index,
    the smallest and the largest value (keeps the look of an oscillating
    series at a fraction of the drawing cost)."""
    y = np.asarray(y)
    n = len(y)
    if n <= 2 * bins:
        return np.arange(n)
    edges = np.unique(np.geomspace(1, n, bins + 1).astype(int))
    keep = [0, n - 1]
    for lo, hi in zip(edges[:-1], edges[1:]):
        keep += [lo + int(np.argmin(y[lo:hi])), lo + int(np.argmax(y[lo:hi]))]
    return np.unique(keep)


def compute(ctx) -> dict:
    """Train with every method from w0: the results dict ("summary",
    "tables", "settings"; "data": the histories for the plot)."""
    net, obj, w0 = problem()
    gd_maxiter = GD_MAXITER_QUICK if ctx.quick else GD_MAXITER
    results = {}
    for method, label, _, _ in METHODS:
        res = train(obj, w0, method, gd_maxiter if method == "gd" else MAXITER)
        results[method] = res
        ctx.log(f"{label}: {res.nit} iterations, {res.wall:.2f} s, E = {res.fun:.10f}, "
                f"|g|_inf = {np.max(np.abs(res.jac)):.1e}")
    # reference minimum: the best end point, polished by Newton
    best = min(results.values(), key=lambda r: r.fun)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        polished = minimize(obj, best.x, method="newton",
                            options={"gtol": 1e-10, "maxiter": 100})
    E_min = min(polished.fun, best.fun)
    rows = [{"method": method, "iterations": int(r.nit), "time (s)": float(r.wall),
             "final E": float(r.fun), "E - E_min": float(r.fun - E_min),
             "max abs gradient": float(np.max(np.abs(r.jac))),
             "f evals": int(r.get("nfev", 0)), "success": bool(r.success)}
            for method, r in results.items()]
    nit = {m: results[m].nit for m, *_ in METHODS}
    summary = {"W": net.n_weights, "E_min": float(E_min),
               "iterations_lbfgs_over_newton": nit["l-bfgs-b"] / nit["newton"],
               "iterations_lbfgs_over_lm": nit["l-bfgs-b"] / nit["lm"],
               **{f"iterations_{m}": int(n) for m, n in nit.items()},
               **{f"seconds_{m}": float(results[m].wall) for m in nit},
               **{f"success_{m}": int(bool(results[m].success)) for m in nit}}
    return {"summary": summary, "tables": {TABLE: rows},
            "settings": {"gd_maxiter": gd_maxiter},
            "data": {m: r.history for m, r in results.items()}}


def plot(results, ctx) -> list[str]:
    """E - E_min and |g|_inf by iteration and by time, every method."""
    plt = _common.pyplot()
    s = results["summary"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for method, label, color, ls in METHODS:
        h = results["data"][method]
        it = np.arange(1, len(h["fun"]) + 1)
        gap = np.maximum(np.array(h["fun"]) - s["E_min"], FLOOR)
        g = np.array(h["grad_inf"])
        tt = np.maximum(np.array(h["time"]), 1e-5)
        kw = dict(color=color, ls=ls, lw=1.2, label=f"{label} ({s['iterations_' + method]})")
        a, b = thin(gap), thin(g)
        axes[0, 0].loglog(it[a], gap[a], **kw)
        axes[0, 1].loglog(it[b], g[b], **kw)
        axes[1, 0].loglog(tt[a], gap[a], **kw)
        axes[1, 1].loglog(tt[b], g[b], **kw)
    _label_axes(plt, axes)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=9,
               title="method (iterations)", title_fontsize=9,
               bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(f"Training a 1-{M}-1 tanh network on sin(pi x) + noise "
                 f"(N = {N}, alpha = {ALPHA:g}, W = {s['W']}), "
                 f"all from the same w0; E_min = {s['E_min']:.10f}", fontsize=11)
    fig.subplots_adjust(left=0.07, right=0.95, bottom=0.16, top=0.91,
                        hspace=0.3, wspace=0.2)
    return [ctx.savefig(fig, "training_convergence")]


def _label_axes(plt, axes) -> None:
    for ax in axes.ravel():
        ax.grid(True, which="major", alpha=0.3)
        ax.yaxis.set_minor_locator(plt.NullLocator())   # 15 decades: no minor ticks
    for ax in axes[:, 1]:
        ax.axhline(GTOL, color="k", lw=0.8, ls=":")
        ax.text(1.0, GTOL, " gtol", transform=ax.get_yaxis_transform(), va="center",
                fontsize=8)
        ax.set_ylabel(r"$|g|_\infty$")
    for ax in axes[0]:
        ax.set_xlabel("iteration + 1")
    for ax in axes[1]:
        ax.set_xlabel("time since start (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel(r"$E - E_{\min}$")
    axes[0, 0].set_title("Error above the minimum, by iteration")
    axes[0, 1].set_title("Gradient, by iteration")
    axes[1, 0].set_title("Error above the minimum, by time")
    axes[1, 1].set_title("Gradient, by time")


def notes(results) -> str:
    """The markdown prose, every finding formatted from ``results``."""
    s = results["summary"]
    rows = {r["method"]: r for r in results["tables"][TABLE]}
    converged = [m for m, *_ in METHODS if s[f"success_{m}"]]
    per_it = {m: s[f"seconds_{m}"] / max(s[f"iterations_{m}"], 1)
              for m in ("l-bfgs-b", "newton", "lm")}
    dearer = per_it["newton"] > per_it["l-bfgs-b"] and per_it["lm"] > per_it["l-bfgs-b"]
    trust = [rows[m]["max abs gradient"] for m in ("trust-exact", "trust-ncg", "trust-krylov")]
    return (
        f"A 1-{M}-1 tanh network, sum-of-squares error plus alpha/2 |w|^2 "
        f"(alpha = {ALPHA:g}), on N = {N} points of sin(pi x) + {NOISE:g} noise, "
        f"every method from the same w0 to |g|_inf <= {GTOL:g} "
        f"(gradient descent capped at {results['settings']['gd_maxiter']} iterations). "
        f"Converged: {', '.join(converged)}. "
        f"L-BFGS needs {s['iterations_lbfgs_over_newton']:.1f} times as many "
        f"iterations as Newton and {s['iterations_lbfgs_over_lm']:.1f} times "
        "as many as Levenberg-Marquardt; per iteration Newton and "
        "Levenberg-Marquardt (a W x W Hessian or Gauss-Newton matrix each) cost "
        + ("more" if dearer else "not more in this run's timings")
        + f" than L-BFGS ({1e3 * per_it['newton']:.2f} and {1e3 * per_it['lm']:.2f} "
        f"against {1e3 * per_it['l-bfgs-b']:.2f} ms), which the time panels include. "
        "Iteration counts of scipy's methods are theirs "
        "(trust-region iterations include rejected steps); scipy's trust-region "
        "methods test the 2-norm of g against gtol, which is stricter than the "
        f"largest component (they stop at |g|_inf = {min(trust):.1e} .. "
        f"{max(trust):.1e}). E - E_min below "
        f"{FLOOR:g} is drawn at {FLOOR:g}; E_min is the best end point polished "
        "by Newton to |g|_inf <= 1e-10.")


def run(ctx) -> dict:
    return _common.compose(ctx, compute, plot, notes)
