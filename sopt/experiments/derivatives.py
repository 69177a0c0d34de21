"""Derivatives and their cost: accuracy against finite differences, the
step-size trade-off of finite differences, and time against W.

(a) Accuracy. On a fixed random DAG (``sopt.testing.random_network``,
    seed ``DAG_SEED``: tanh and logistic hidden layers, skip-layer
    edges and masked edges), norm-wise relative errors |a - b| / |b| of the
    backprop gradient against central differences of E, of ``net.jacobian``
    against ``finite_diff.rowwise_jacobian`` of the forward pass, of the
    R-propagation Hessian-vector product against the exact Hessian times v,
    and of the exact Hessian against the four-point ("fd") and the mixed
    (central differences of the backprop gradient) Hessians, each at the
    library's default steps.

(b) Step size. On a small random DAG (seed ``SWEEP_SEED``), the same errors
    for steps eps = 1e-12 .. 1e-1. Every formula is symmetric, so the
    truncation error is O(eps^2) (slope 2 on the log-log plot); round-off
    grows like macheps |E| / eps for first differences (gradient, mixed
    Hessian) and like macheps |E| / eps^2 for the four-point Hessian, so the
    best step is ~macheps^(1/3) ~ 6e-6 (error ~1e-10) for the former and
    ~macheps^(1/4) ~ 1e-4 (error ~1e-8) for the latter.

(c) Cost. A D-M-K tanh MLP (D = 4, K = 2, sum-of-squares; N = 1000 patterns,
    200 in the quick run) for a range of hidden sizes M (``SCALING``); each
    time is the median of
    repeated calls, interleaved across sizes (a call over
    ``one_shot`` seconds is timed once). Slopes of log time against log W are
    fitted on the larger sizes only: at small W every call is dominated by
    fixed per-call costs (Python, argument checks, small-array allocation)
    that do not grow with W and flatten the slopes. The four-point Hessian,
    O(W^3), runs only up to ``fd_max_w``. BLAS threads are not pinned here
    (that needs threadpoolctl, not a dependency); start Python with
    OPENBLAS_NUM_THREADS=1 for steadier timings on a loaded machine.
"""
from __future__ import annotations

import os

import numpy as np

from .. import Objective, finite_diff, mlp
from .._timing import median_times
from ..testing import random_network, rel_err
from . import _common

NAME = "derivatives"
TITLE = "Derivatives and their cost"

MACHEPS = float(np.finfo(float).eps)

# (a) accuracy
DAG_SEED = 3             # tanh and logistic layers, skip edges, 13 masked weights, W = 64
DAG_PATTERNS = 20
# (b) step sweep
SWEEP_SEED = 1           # logistic and tanh layers, skip edges, 3 masked weights, W = 15
SWEEP_PATTERNS = 10
# (c) cost: D-M-K tanh MLP on N patterns; per mode (full, quick). N = 1000
# makes the O(N W) work outweigh the fixed per-call cost (~0.1 ms) from
# W ~ 200 on, so the fitted slopes approach the asymptotic ones.
D, K = 4, 2
SCALING = {
    False: dict(hidden=(4, 6, 9, 13, 19, 27, 38, 54, 77, 110, 160, 230),  # W 30 .. 1612
                patterns=1000,
                fd_max_w=140,      # four-point Hessian only up to here (O(W^3))
                fit_min_w=250,     # fit the other methods on W >= this
                fd_fit_min_w=60,   # fit the four-point Hessian on W >= this
                budget=0.25,       # seconds of repeats per median
                one_shot=0.5),     # calls longer than this (s) are timed once
    True: dict(hidden=(2, 4, 8, 16, 32, 64),                         # W = 16 .. 450
               patterns=200, fd_max_w=60, fit_min_w=50, fd_fit_min_w=0, budget=0.03,
               one_shot=0.1),
}
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

#: (key, legend label, expected asymptotic slope)
METHODS = (
    ("gradient", "gradient (backprop)", 1),
    ("fd_gradient", "gradient (central differences)", 2),
    ("hvp", "Hessian-vector product (R-prop)", 1),
    ("exact", "exact Hessian", 2),
    ("mixed", "mixed Hessian (FD of backprop)", 2),
    ("fd", "four-point Hessian", 3),
)


def dag_problem(seed: int, n_inputs: int, n_hidden: int, max_units: int,
                n_outputs: int, n_patterns: int, skip_prob: float, mask_prob: float):
    """(net, obj, w): a random DAG with random data and noisy weights."""
    net = random_network(seed, n_inputs=n_inputs, n_hidden_layers=n_hidden,
                         max_units=max_units, n_outputs=n_outputs,
                         hidden=("tanh", "logistic", "softplus"),
                         skip_prob=skip_prob, mask_prob=mask_prob)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_patterns, n_inputs))
    T = rng.standard_normal((n_patterns, n_outputs))
    # non-zero biases too, so that every term of every derivative is exercised
    w = net.init_weights(seed) + 0.3 * rng.standard_normal(net.n_weights) * net.used_weight_mask()
    return net, Objective(net, X, T, loss="sse"), w


def accuracy_net():
    return dag_problem(DAG_SEED, 3, 3, 5, 2, DAG_PATTERNS, 0.6, 0.5)


def sweep_net():
    return dag_problem(SWEEP_SEED, 2, 2, 3, 1, SWEEP_PATTERNS, 0.6, 0.4)


# ------------------------------------------------------------------ (a)
def accuracy(ctx) -> tuple[list[dict], dict, str]:
    net, obj, w = accuracy_net()
    ctx.log(f"accuracy on the random DAG {net!r}")
    X = obj.X
    g = obj.gradient(w)
    J = net.jacobian(w, X)
    H = obj.hessian(w, kind="exact")
    v = np.random.default_rng(1).standard_normal(net.n_weights)
    comparisons = [
        ("gradient", "backprop", "central differences of E (2W calls of E)",
         g, finite_diff.gradient(obj.value, w)),
        ("jacobian", "net.jacobian (backprop)", "rowwise_jacobian of the forward pass",
         J, finite_diff.rowwise_jacobian(lambda Z: net.forward(w, Z), X)),
        ("hvp", "R-propagation H v", "exact Hessian times v", obj.hvp(w, v), H @ v),
        ("hessian_vs_mixed", "exact Hessian", "mixed: central differences of the gradient",
         H, obj.hessian(w, algorithm="mixed")),
        ("hessian_vs_fd", "exact Hessian", "four-point differences of E (2W^2 calls)",
         H, obj.hessian(w, algorithm="fd")),
    ]
    rows, summary = [], {}
    for key, analytic, numeric, a, b in comparisons:
        err = rel_err(a, b)
        summary[f"rel_err_{key}"] = err
        rows.append({"derivative": key, "analytic": analytic, "compared with": numeric,
                     "shape": "x".join(map(str, np.shape(a))),
                     "relative error": err,
                     "max abs difference": float(np.max(np.abs(np.asarray(a) - b)))})
    n_masked = int(net.n_weights - net.used_weight_mask().sum())
    summary["accuracy_W"] = net.n_weights
    return rows, summary, (f"{net!r}, N = {DAG_PATTERNS}, {n_masked} masked-out "
                           "weights")


# ------------------------------------------------------------------ (b)
def step_sweep(ctx) -> tuple[dict, dict]:
    """Errors against the step: (summary entries, plot data)."""
    net, obj, w = sweep_net()
    n_eps = 12 if ctx.quick else 45
    eps = np.logspace(-12, -1, n_eps)
    ctx.log(f"finite-difference error against eps ({n_eps} steps, W = {net.n_weights})")
    g = obj.gradient(w)
    H = obj.hessian(w)
    curves = {"gradient": [], "mixed": [], "fd": []}
    for e in eps:
        curves["gradient"].append(rel_err(finite_diff.gradient(obj.value, w, e), g))
        curves["mixed"].append(rel_err(obj.hessian(w, algorithm="mixed", eps=e), H))
        curves["fd"].append(rel_err(obj.hessian(w, algorithm="fd", eps=e), H))
    curves = {k: np.array(v) for k, v in curves.items()}
    summary = {}
    for key in curves:
        i = int(np.argmin(curves[key]))
        summary[f"best_eps_{key}"] = float(eps[i])
        summary[f"best_rel_err_{key}"] = float(curves[key][i])
    # truncation slope measured on the large steps, where round-off is negligible
    big = eps >= 1e-3
    for key in curves:
        summary[f"truncation_slope_{key}"] = float(
            np.polyfit(np.log(eps[big]), np.log(curves[key][big]), 1)[0])
    return summary, {"eps": eps, "curves": curves, "W": net.n_weights}


def _plot_step_sweep(plt, d, ctx) -> str:
    eps, curves = d["eps"], d["curves"]
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    style = {"gradient": ("C0", "o", "gradient: central differences vs backprop"),
             "mixed": ("C1", "s", "mixed Hessian vs exact"),
             "fd": ("C3", "^", "four-point Hessian vs exact")}
    for key, (color, marker, label) in style.items():
        ax.loglog(eps, curves[key], marker=marker, ms=4, color=color, label=label)
    # O(eps^2) reference through the four-point curve at eps = 1e-2
    e_ref = np.array([1e-5, 1e-1])
    at = float(np.interp(-2, np.log10(eps), np.log10(curves["fd"])))
    ax.loglog(e_ref, 10 ** at * (e_ref / 1e-2) ** 2, "k--", lw=1.2,
              label=r"slope 2: truncation $O(\epsilon^2)$")
    for x, lab in ((MACHEPS ** (1 / 3), r"$\epsilon_m^{1/3}$"),
                   (MACHEPS ** (1 / 4), r"$\epsilon_m^{1/4}$")):
        ax.axvline(x, color="0.6", lw=0.8, ls=":")
        ax.text(x, 0.97, lab, transform=ax.get_xaxis_transform(), ha="center",
                va="top", fontsize=9, color="0.3",
                bbox=dict(fc="white", ec="none", pad=1))
    ax.annotate(r"round-off $\propto \epsilon_m |E| / \epsilon$" "\n(first differences)",
                xy=(1e-10, curves["gradient"][np.argmin(abs(eps - 1e-10))]),
                xytext=(1.5e-12, 3e-9), fontsize=9, color="C0",
                arrowprops=dict(arrowstyle="->", color="C0"))
    ax.annotate(r"round-off $\propto \epsilon_m |E| / \epsilon^2$" "\n(four-point)",
                xy=(1e-7, curves["fd"][np.argmin(abs(eps - 1e-7))]),
                xytext=(3e-10, 1e4), fontsize=9, color="C3",
                arrowprops=dict(arrowstyle="->", color="C3"))
    ax.annotate("truncation\n" r"$O(\epsilon^2)$", xy=(3e-3, 10 ** at * 0.09),
                xytext=(1.5e-4, 1e-12), fontsize=9,
                arrowprops=dict(arrowstyle="->", color="k"))
    ax.set_ylim(1e-14, 1e8)
    ax.set_xlabel(r"step $\epsilon$")
    ax.set_ylabel("relative error  |numerical - analytic| / |analytic|")
    ax.set_title(f"Finite-difference error against step size (random DAG, W = {d['W']})")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8.5)
    return ctx.savefig(fig, "derivatives_step_size")


# ------------------------------------------------------------------ (c)
def _cost_problem(M: int, N: int, rng):
    """Callables to time for one hidden size M (and W), on N patterns."""
    net = mlp([D, M, K], hidden="tanh", output="identity")
    X, T = rng.standard_normal((N, D)), rng.standard_normal((N, K))
    obj = Objective(net, X, T, loss="sse")
    w = net.init_weights(seed=M)
    v = rng.standard_normal(net.n_weights)
    # obj.at(w) is a new evaluation: every timed call runs its own passes
    calls = {"gradient": lambda: obj.at(w).gradient(),
             "fd_gradient": lambda: finite_diff.gradient(obj.value, w),
             "hvp": lambda: obj.at(w).hvp(v),
             "exact": lambda: obj.at(w).curvature("exact"),
             "mixed": lambda: obj.hessian(w, algorithm="mixed"),
             "fd": lambda: obj.hessian(w, algorithm="fd")}
    return net.n_weights, calls


def fit_slopes(rows: list[dict], fit_min_w: int, fd_fit_min_w: int) -> dict:
    """key -> (slope, intercept, W_lo, W_hi) of log time against log W on the
    sizes with W >= the fit threshold."""
    slopes = {}
    for key, _, _ in METHODS:
        min_w = fd_fit_min_w if key == "fd" else fit_min_w
        pts = [(r["W"], r[key]) for r in rows if key in r and r["W"] >= min_w]
        if len(pts) >= 2:
            x, y = np.log(np.array(pts).T)
            slope, icept = np.polyfit(x, y, 1)
            slopes[key] = (float(slope), float(icept), min(p[0] for p in pts),
                           max(p[0] for p in pts))
    return slopes


def scaling(ctx, cfg: dict) -> tuple[list[dict], dict]:
    """Median times of every method and size: (rows, fitted slopes)."""
    rng = np.random.default_rng(0)
    calls, sizes, N = {}, {}, cfg["patterns"]
    for M in cfg["hidden"]:
        W, fs = _cost_problem(M, N, rng)
        sizes[M] = W
        for key, f in fs.items():
            if key != "fd" or W <= cfg["fd_max_w"]:
                calls[(M, key)] = f
    ctx.log(f"timing {len(calls)} (size, method) pairs, W = "
            f"{min(sizes.values())}..{max(sizes.values())}, N = {N}")
    # one method at a time, its sizes interleaved (cheap calls right after
    # a big Hessian would run cache-cold and be timed too slow)
    medians = {}
    for key, _, _ in METHODS:
        todo = {k: f for k, f in calls.items() if k[1] == key}
        medians.update(median_times(todo, 1 if key == "fd" else 5, cfg["budget"],
                                    cfg["one_shot"]))
    ctx.log("timed")
    rows = [{"M": M, "W": W, **{key: medians[(M, key)] for key, _, _ in METHODS
                                if (M, key) in medians}}
            for M, W in sizes.items()]
    return rows, fit_slopes(rows, cfg["fit_min_w"], cfg["fd_fit_min_w"])


def _fd_fit_range(cfg, min_w: int) -> str:
    return (f"W >= {cfg['fd_fit_min_w']}" if cfg["fd_fit_min_w"] > min_w
            else "all its sizes")


def _plot_cost(plt, results, ctx) -> str:
    cfg, rows, slopes = results["settings"], results["data"]["cost_rows"], \
        results["data"]["slopes"]
    Ws = [r["W"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 6.2))
    for (key, label, expected), marker, color in zip(
            METHODS, "os^vDP", ["C0", "C1", "C2", "C3", "C4", "C5"]):
        pts = np.array([(r["W"], r[key]) for r in rows if key in r])
        if key in slopes:
            sl, c, lo, hi = slopes[key]
            label = f"{label}: slope {sl:.2f} (expected {expected})"
            xs = np.array([lo, hi])
            ax.loglog(xs, np.exp(c) * xs ** sl, "--", color=color, lw=1, alpha=0.8)
        ax.loglog(pts[:, 0], pts[:, 1], marker=marker, ms=5, color=color, label=label)
    ticks = [t for t in (10, 20, 50, 100, 200, 500, 1000, 2000)
             if min(Ws) / 1.5 <= t <= max(Ws) * 1.5]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("number of weights W")
    ax.set_ylabel("time per call (s), median")
    ax.set_title(f"Cost against W: {D}-M-{K} tanh MLP, N = {cfg['patterns']} patterns")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=2, fontsize=8.5,
              title=f"dashed: log-log fits on W >= {cfg['fit_min_w']} (four-point "
                    f"Hessian: {_fd_fit_range(cfg, min(Ws))}); fixed per-call costs "
                    "flatten small W", title_fontsize=8.5)
    return ctx.savefig(fig, "derivatives_cost")


# ------------------------------------------------------------------ run
def compute(ctx) -> dict:
    """Accuracy, step sweep and cost: the results dict ("summary",
    "tables", "settings"; "data" for the plots)."""
    cfg = SCALING[bool(ctx.quick)]
    acc_rows, summary, dag = accuracy(ctx)
    sweep_summary, sweep = step_sweep(ctx)
    summary.update(sweep_summary)
    cost_rows, slopes = scaling(ctx, cfg)
    for key, _, _ in METHODS:
        if key in slopes:
            summary[f"slope_{key}"] = slopes[key][0]
    # the four-point against the exact Hessian on the same sizes: how fast
    # the ratio of their times grows (asymptotically W^3 / W^2, slope 1)
    both = np.array([(r["W"], r["fd"] / r["exact"]) for r in cost_rows if "fd" in r])
    summary["slope_fd_over_exact"] = float(np.polyfit(np.log(both[:, 0]),
                                                      np.log(both[:, 1]), 1)[0])
    summary["fd_over_exact_at_largest_fd_W"] = float(both[-1, 1])
    slope_rows = [{"method": label, "fitted slope": slopes[key][0],
                   "expected": expected,
                   "fitted on W": f"{slopes[key][2]}..{slopes[key][3]}"}
                  for key, label, expected in METHODS if key in slopes]
    time_rows = [{"M": r["M"], "W": r["W"],
                  **{f"{key} (ms)": (r[key] * 1e3 if key in r else "")
                     for key, _, _ in METHODS}}
                 for r in cost_rows]
    threads = {v: os.environ[v] for v in BLAS_THREAD_VARS if v in os.environ}
    return {"summary": summary,
            "tables": {"Accuracy against finite differences (random DAG)": acc_rows,
                       "Fitted log-log slopes of time against W": slope_rows,
                       "Time per call (ms, medians)": time_rows},
            "settings": {**cfg, "dag": dag, "blas_threads": threads},
            "data": {"sweep": sweep, "cost_rows": cost_rows, "slopes": slopes}}


def plot(results, ctx) -> list[str]:
    """The step-size figure and the cost figure."""
    plt = _common.pyplot()
    return [_plot_step_sweep(plt, results["data"]["sweep"], ctx),
            _plot_cost(plt, results, ctx)]


def notes(results) -> str:
    """The markdown prose, every finding formatted from ``results``."""
    return "\n\n".join([_notes_accuracy(results), _notes_steps(results),
                        _notes_cost(results)])


def _notes_accuracy(results) -> str:
    s = results["summary"]
    fd, mixed = s["rel_err_hessian_vs_fd"], s["rel_err_hessian_vs_mixed"]
    return (
        f"Accuracy on a random DAG ({results['settings']['dag']}); errors are norm-wise "
        "relative, |a - b| / |b|, at the default steps (macheps^(1/3) max(1, |w_i|) "
        "for first differences, macheps^(1/4) max(1, |w_i|) for the four-point "
        "Hessian). The central-difference gradient agrees with backpropagation "
        f"to {s['rel_err_gradient']:.1e}, the Jacobian to "
        f"{s['rel_err_jacobian']:.1e}, the mixed Hessian with the exact one "
        f"to {mixed:.1e}, the four-point Hessian "
        + (f"only to {fd:.1e}, because its round-off grows like 1/eps^2." if fd > mixed
           else f"to {fd:.1e}, no worse than the mixed one here."))


def _notes_steps(results) -> str:
    s = results["summary"]
    slopes = ", ".join(f"{s[f'truncation_slope_{k}']:.2f}" for k in ("gradient", "mixed", "fd"))
    squared = all(1.8 < s[f"truncation_slope_{k}"] < 2.2 for k in ("gradient", "mixed", "fd"))
    return (
        "The step-size figure shows the two regimes of every finite difference: "
        "truncation error "
        + ("falling as eps^2" if squared else "not falling as eps^2 everywhere")
        + f" for large steps (fitted slopes on eps >= 1e-3: {slopes} for the "
        "gradient, mixed and four-point Hessians; dashed slope-2 line), "
        "round-off rising as eps falls (as 1/eps for the gradient and the mixed "
        "Hessian, 1/eps^2 for the four-point Hessian, so its best step is "
        + ("larger" if s["best_eps_fd"] > s["best_eps_mixed"] else "not larger")
        + "). The dotted lines mark the default steps macheps^(1/3) and macheps^(1/4). "
        "Best steps found: " + ", ".join(
            f"{s['best_eps_' + k]:.0e} ({name}{s['best_rel_err_' + k]:.1e})"
            for k, name in (("gradient", "gradient, error "), ("mixed", "mixed, "),
                            ("fd", "four-point, "))) + ".")


def _notes_cost(results) -> str:
    s, cfg = results["summary"], results["settings"]
    times = results["tables"]["Time per call (ms, medians)"]
    fd_W = [r["W"] for r in times if r["fd (ms)"] != ""][-1]
    slopes = results["tables"]["Fitted log-log slopes of time against W"]
    short = sorted(slopes, key=lambda r: r["fitted slope"] - r["expected"])
    below = [r for r in short if r["fitted slope"] < r["expected"]]
    threads = cfg["blas_threads"]
    return (
        f"Cost: {D}-M-{K} tanh MLP, N = {cfg['patterns']}, medians of repeated calls, "
        "interleaved across sizes. Slopes are fitted on the larger "
        f"sizes only (W >= {cfg['fit_min_w']}; the four-point Hessian, computed "
        f"only up to W = {cfg['fd_max_w']}, on {_fd_fit_range(cfg, times[0]['W'])}): at "
        "small W each call is dominated by fixed costs that do not grow with W "
        "(Python, argument checks, small allocations), which flattens the curves. "
        f"{len(below)} of {len(slopes)} fitted slopes fall below the asymptotic ones"
        + (", most of all those of the " + " and the ".join(
            r["method"] for r in below[:2]) if below else "")
        + ". Expected asymptotic slopes: gradient and Hessian-vector product 1, "
        "finite-difference gradient, exact and mixed Hessians 2, four-point "
        "Hessian 3. On the sizes where both were timed, the ratio of the "
        "four-point to the exact Hessian's time grows like W^"
        f"{s['slope_fd_over_exact']:.2f} (asymptotically W^1), reaching "
        f"{s['fd_over_exact_at_largest_fd_W']:.0f} at W = {fd_W}. BLAS threads: "
        + (", ".join(f"{k}={v}" for k, v in threads.items()) if threads
           else "not pinned (OpenBLAS default)")
        + "; on a loaded machine a multi-threaded BLAS makes the large exact "
        "Hessians erratically slow; set OPENBLAS_NUM_THREADS=1 (and "
        "OMP_NUM_THREADS=1) before starting Python for steadier timings.")


def run(ctx) -> dict:
    return _common.compose(ctx, compute, plot, notes)
