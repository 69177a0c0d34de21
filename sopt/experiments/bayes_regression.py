"""Bayesian regression with error bars, in the setting of Netlab's demev1.

Data (Netlab ``demev1``): 16 inputs x_n = 0.25 + 0.07 n (n = 0..15, so
x in [0.25, 1.3]), targets t_n = sin(2 pi x_n) + 0.1 e_n with e_n ~ N(0, 1)
from a fixed seed; the true noise precision is therefore 1 / 0.1^2 = 100.
A 1-3-1 tanh network starts from alpha = 0.01, beta = 50, and MacKay's
evidence framework (``sopt.bayes.evidence_fit``: train w_MAP with the exact
Hessian, re-estimate alpha = gamma / |w|^2 and 1/beta = 2 E_D / (N - gamma),
repeat) is run from a few random initial weight vectors; the run with the
highest log evidence is kept.

Figures: the predictive distribution (mean, +-1 and +-2 sigma with sigma^2 =
1/beta + g^T A^{-1} g, and the function-space part g^T A^{-1} g alone); the
hyperparameters and log evidence per re-estimation cycle; model selection by
the evidence over the number of hidden units against the test error.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import mlp
from ..bayes import evidence_fit
from . import _common

NAME = "bayes_regression"
TITLE = "Bayesian regression with error bars (Netlab demev1 setting)"

N_DATA = 16
NOISE = 0.1                      # noise standard deviation
BETA_TRUE = 100.0                # = 1 / NOISE^2, the true noise precision
DATA_SEED = 0
HIDDEN = 3
ALPHA0, BETA0 = 0.01, 50.0       # Netlab demev1's alpha_init, beta_init
X_LO, X_HI = 0.25, 0.25 + 0.07 * (N_DATA - 1)    # the data's x range
PLOT_RANGE = (0.0, 1.5)


def true_function(x):
    """The noise-free regression function sin(2 pi x)."""
    return np.sin(2 * np.pi * np.asarray(x, dtype=float))


def demev1_data(seed: int = DATA_SEED):
    """Netlab demev1's training set: x (16,), t (16,)."""
    rng = np.random.default_rng(seed)
    x = 0.25 + 0.07 * np.arange(N_DATA)
    t = true_function(x) + NOISE * rng.standard_normal(N_DATA)
    return x, t


def test_data(n: int, seed: int = 12345):
    """Fresh targets from the same process, x uniform over the data's range."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(X_LO, X_HI, n)
    return x, true_function(x) + NOISE * rng.standard_normal(n)


def symmetry_term(M: int) -> float:
    """ln(M! 2^M): the number of equivalent modes of a tanh net with M hidden
    units (PRML sec. 5.7.2), which ``log_evidence`` leaves out."""
    return math.lgamma(M + 1) + M * math.log(2.0)


def fit_best(M: int, X, T, seeds, max_cycles: int = 50, log=None):
    """evidence_fit from each initial weight vector init_weights(seed); return
    (best result by log evidence or None, list of per-restart dicts)."""
    net = mlp([1, M, 1], hidden="tanh", output="identity")
    best, runs = None, []
    for seed in seeds:
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                res = evidence_fit(net, X, T, loss="sse", w0=net.init_weights(seed=seed),
                                   alpha=ALPHA0, beta=BETA0, max_cycles=max_cycles,
                                   hessian="exact", clip_negative=True,
                                   method="trust-exact")
        except ValueError as exc:        # see the notes: alpha -> inf collapse
            nan = float("nan")
            runs.append({"seed": seed, "log_evidence": nan, "alpha": nan, "beta": nan,
                         "gamma": nan, "cycles": 0, "converged": False,
                         "failed": type(exc).__name__})
            if log:
                log(f"M={M} seed {seed}: evidence_fit failed ({exc})")
            continue
        runs.append({"seed": seed, "log_evidence": res.log_evidence,
                     "alpha": float(res.alpha[0]), "beta": float(res.beta),
                     "gamma": res.gamma, "cycles": res.n_cycles,
                     "converged": res.converged, "failed": ""})
        if best is None or res.log_evidence > best.log_evidence:
            best = res
    return net, best, runs


def _rms(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def _settings(quick: bool) -> dict:
    return {"main_restarts": 2 if quick else 5, "selection_restarts": 1 if quick else 3,
            "max_hidden": 4 if quick else 8, "n_test": 5000, "n_rms_grid": 501}


def _nan_row() -> dict:
    nan = float("nan")
    return dict(log_evidence=nan, log_evidence_sym=nan, alpha=nan, beta=nan, gamma=nan,
                converged=False, test_rms_true=nan, test_rms_noisy=nan)


def _selection_row(M: int, best, runs, x_grid, x_test, t_test) -> dict:
    """One row of the model selection table: the best fit with M hidden units."""
    ok = [r for r in runs if not r["failed"]]
    row = {"M": M, "W": 3 * M + 1, "restarts": len(runs), "failed": len(runs) - len(ok)}
    if best is None:
        return {**row, **_nan_row()}
    bpost = best.posterior
    return {**row, "log_evidence": best.log_evidence,
            "log_evidence_sym": best.log_evidence + symmetry_term(M),
            "alpha": float(best.alpha[0]), "beta": float(best.beta),
            "gamma": best.gamma, "converged": bool(best.converged),
            "test_rms_true": _rms(bpost.predict(x_grid[:, None])[0][:, 0],
                                  true_function(x_grid)),
            "test_rms_noisy": _rms(bpost.predict(x_test[:, None])[0][:, 0], t_test)}


def _model_selection(ctx, cfg, X, T, res, main_runs, x_grid, x_test, t_test) -> list:
    rows = []
    seeds = range(cfg["selection_restarts"])
    for M in range(1, cfg["max_hidden"] + 1):
        if M == HIDDEN:
            best, runs = res, main_runs
        else:
            ctx.log(f"model selection: M = {M}, {len(seeds)} restarts")
            _, best, runs = fit_best(M, X, T, seeds, log=ctx.log)
        rows.append(_selection_row(M, best, runs, x_grid, x_test, t_test))
    return rows


def _predictive(post, x_test, t_test, x_grid) -> dict:
    """Coverage of the +-1 and +-2 sigma bands and RMS errors of the mean."""
    mean_t, var_t = post.predict(x_test[:, None])
    z = np.abs(t_test - mean_t[:, 0]) / np.sqrt(var_t[:, 0])
    return {"coverage_2sigma": float(np.mean(z <= 2)),
            "coverage_1sigma": float(np.mean(z <= 1)),
            "test_rms_true_function": _rms(post.predict(x_grid[:, None])[0][:, 0],
                                           true_function(x_grid)),
            "test_rms_noisy_targets": _rms(mean_t[:, 0], t_test),
            **_band_widths(post)}


def _band_widths(post) -> dict:
    """The predictive s.d.: its largest value over the data range and its
    smaller value at the two ends of the plotted range."""
    inside = np.linspace(X_LO, X_HI, 101)
    sd_in = np.sqrt(post.predict(inside[:, None])[1][:, 0])
    sd_ends = np.sqrt(post.predict(np.array(PLOT_RANGE)[:, None])[1][:, 0])
    return {"predictive_std_max_in_data_range": float(sd_in.max()),
            "predictive_std_min_at_plot_ends": float(sd_ends.min())}


def _selection_summary(rows) -> dict:
    Ms = np.array([r["M"] for r in rows])
    ev = np.array([r["log_evidence"] for r in rows])
    ev_sym = np.array([r["log_evidence_sym"] for r in rows])
    err = np.array([r["test_rms_true"] for r in rows])
    return {"best_M_evidence": int(Ms[np.nanargmax(ev)]),
            "best_M_test_error": int(Ms[np.nanargmin(err)]),
            "best_M_evidence_with_symmetry_term": int(Ms[np.nanargmax(ev_sym)])}


def compute(ctx) -> dict:
    """The demev1 evidence fit, its predictive checks and model selection
    over M: the results dict ("summary", "tables", "settings"; "data")."""
    cfg = _settings(ctx.quick)
    x, t = demev1_data()
    X, T = x[:, None], t[:, None]
    x_test, t_test = test_data(cfg["n_test"])
    x_grid = np.linspace(X_LO, X_HI, cfg["n_rms_grid"])     # for RMS against sin(2 pi x)
    ctx.log(f"evidence_fit, {HIDDEN} hidden units, {cfg['main_restarts']} restarts")
    net, res, main_runs = fit_best(HIDDEN, X, T, range(cfg["main_restarts"]), log=ctx.log)
    if res is None:
        raise RuntimeError("bayes_regression: every evidence_fit restart failed")
    alpha, beta = float(res.alpha[0]), float(res.beta)
    ctx.log(f"alpha {alpha:.4g} beta {beta:.4g} gamma {res.gamma:.3f} "
            f"log evidence {res.log_evidence:.4f} ({res.n_cycles} cycles)")
    predictive = _predictive(res.posterior, x_test, t_test, x_grid)
    rows = _model_selection(ctx, cfg, X, T, res, main_runs, x_grid, x_test, t_test)
    summary = {
        "hidden_units": HIDDEN, "n_weights": net.n_weights, "n_data": N_DATA,
        "alpha": alpha, "beta": beta, "beta_true": BETA_TRUE, "gamma": res.gamma,
        "log_evidence": res.log_evidence, "cycles": res.n_cycles,
        "converged": int(res.converged), "restarts": len(main_runs),
        "restarts_at_best_evidence": int(sum(
            abs(r["log_evidence"] - res.log_evidence) < 1e-3 for r in main_runs)),
        "noise_std_estimate": 1.0 / math.sqrt(beta),
        "coverage_2sigma": predictive["coverage_2sigma"],
        "coverage_1sigma": predictive["coverage_1sigma"], "n_test": cfg["n_test"],
        "test_rms_true_function": predictive["test_rms_true_function"],
        "test_rms_noisy_targets": predictive["test_rms_noisy_targets"],
        "predictive_std_max_in_data_range": predictive["predictive_std_max_in_data_range"],
        "predictive_std_min_at_plot_ends": predictive["predictive_std_min_at_plot_ends"],
        **_selection_summary(rows),
    }
    h = res.history
    cycle_rows = [{"cycle": int(c), "alpha": float(a[0]), "beta": float(b),
                   "gamma": float(g), "log_evidence": float(e)}
                  for c, a, b, g, e in zip(range(1, len(h["log_evidence"]) + 1),
                                           h["alpha"], h["beta"], h["gamma"],
                                           h["log_evidence"])]
    return {"summary": summary,
            "tables": {"Evidence cycles (demev1 network)": cycle_rows,
                       "Restarts (demev1 network)": main_runs,
                       "Model selection over hidden units": rows},
            "settings": cfg, "data": dict(x=x, t=t, post=res.posterior)}


def plot(results, ctx) -> list[str]:
    """The predictive bands, the re-estimation cycles and model selection."""
    plt = _common.pyplot()
    return [_plot_fit(plt, results, ctx), _plot_cycles(plt, results, ctx),
            _plot_selection(plt, results, ctx)]


def _plot_fit(plt, results, ctx) -> str:
    s, d = results["summary"], results["data"]
    xp = np.linspace(*PLOT_RANGE, 301)
    mean, var = d["post"].predict(xp[:, None])
    _, var_f = d["post"].predict(xp[:, None], include_noise=False)
    m, sd, sf = mean[:, 0], np.sqrt(var[:, 0]), np.sqrt(var_f[:, 0])
    fig, ax = plt.subplots(figsize=(7.5, 5))
    ax.fill_between(xp, m - 2 * sd, m + 2 * sd, color="tab:blue", alpha=0.2,
                    lw=0, label=r"$\pm 2\sigma$ predictive")
    ax.fill_between(xp, m - sd, m + sd, color="tab:blue", alpha=0.3, lw=0,
                    label=r"$\pm 1\sigma$ predictive")
    ax.plot(xp, m - 2 * sf, color="tab:orange", lw=1, ls="--",
            label=r"$\pm 2\sigma$ function only ($g^T A^{-1} g$)")
    ax.plot(xp, m + 2 * sf, color="tab:orange", lw=1, ls="--")
    ax.plot(xp, true_function(xp), color="tab:green", lw=1.5, label=r"$\sin(2\pi x)$")
    ax.plot(xp, m, color="tab:red", lw=2, label="predictive mean")
    ax.plot(d["x"], d["t"], "ko", ms=5, label=f"data (N = {N_DATA})")
    for edge in (X_LO, X_HI):
        ax.axvline(edge, color="0.5", ls=":", lw=1)
    ax.text(0.5 * (X_LO + X_HI), 2.3, "range of the training inputs", ha="center",
            va="top", fontsize=8, color="0.35")
    ax.annotate("", xy=(X_LO, 2.05), xytext=(X_HI, 2.05),
                arrowprops={"arrowstyle": "<->", "color": "0.5", "lw": 0.8})
    ax.set_xlim(*PLOT_RANGE)
    ax.set_ylim(-2.5, 2.5)
    ax.set_xlabel("x")
    ax.set_ylabel("t")
    ax.set_title(f"Evidence framework, {HIDDEN} tanh hidden units: "
                 rf"$\alpha$ = {s['alpha']:.3g}, $\beta$ = {s['beta']:.3g} (true 100), "
                 rf"$\gamma$ = {s['gamma']:.2f}" "\n"
                 rf"predictive variance $\sigma^2 = 1/\beta + g^T A^{{-1}} g$",
                 fontsize=10)
    ax.legend(loc="lower left", fontsize=8, ncol=2)
    return ctx.savefig(fig, "bayes_regression_fit")


def _plot_cycles(plt, results, ctx) -> str:
    rows = results["tables"]["Evidence cycles (demev1 network)"]
    cycles = [r["cycle"] for r in rows]
    series = [(r"$\alpha$", [r["alpha"] for r in rows], None),
              (r"$\beta$", [r["beta"] for r in rows], BETA_TRUE),
              (r"$\gamma$", [r["gamma"] for r in rows], None),
              ("log evidence", [r["log_evidence"] for r in rows], None)]
    fig, axes = plt.subplots(2, 2, figsize=(8, 5.5), sharex=True)
    for ax, (label, values, ref) in zip(axes.ravel(), series):
        ax.plot(cycles, values, "o-", color="tab:blue", ms=4)
        if ref is not None:
            ax.axhline(ref, color="tab:green", ls="--", lw=1, label="true value")
            ax.legend(fontsize=8, loc="lower right")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    if max(series[0][1]) / min(series[0][1]) > 20:
        axes[0, 0].set_yscale("log")
    for ax in axes[1]:
        ax.set_xlabel("re-estimation cycle")
    fig.suptitle(f"Evidence re-estimation per cycle ({HIDDEN} hidden units; values "
                 r"used to train $w_{MAP}$ in that cycle)", fontsize=10)
    fig.tight_layout()
    return ctx.savefig(fig, "bayes_regression_cycles")


def _plot_selection(plt, results, ctx) -> str:
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter
    s, rows = results["summary"], results["tables"]["Model selection over hidden units"]
    Ms = np.array([r["M"] for r in rows])
    ev = np.array([r["log_evidence"] for r in rows])
    err = np.array([r["test_rms_true"] for r in rows])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    ax1.plot(Ms, ev, "o-", color="tab:blue", label=r"ln p(D | $\alpha$, $\beta$, M)")
    ax1.plot(Ms, [r["log_evidence_sym"] for r in rows], "s--", color="tab:purple", ms=4,
             label=r"same + ln(M! $2^M$) (symmetry term)")
    ax1.plot([s["best_M_evidence"]], [np.nanmax(ev)], "*", color="tab:red", ms=16,
             label=f"highest evidence: M = {s['best_M_evidence']}")
    ax1.set_ylabel("log evidence (best of restarts)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.plot(Ms, err, "o-", color="tab:orange",
             label=r"RMS of the mean against $\sin(2\pi x)$ on [0.25, 1.3]")
    ax2.plot([s["best_M_test_error"]], [np.nanmin(err)], "*", color="tab:red", ms=16,
             label=f"lowest test error: M = {s['best_M_test_error']}")
    ax2.set_yscale("log")
    ticks = [v for v in (0.05, 0.07, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 2.0)
             if np.nanmin(err) / 1.3 <= v <= np.nanmax(err) * 1.3]
    ax2.yaxis.set_major_locator(FixedLocator(ticks))
    ax2.yaxis.set_major_formatter(ScalarFormatter())
    ax2.yaxis.set_minor_formatter(NullFormatter())
    ax2.set_ylabel("test error (RMS, log scale)")
    ax2.set_xlabel("hidden units M")
    ax2.set_xticks(Ms)
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3, which="both")
    fig.suptitle("Model selection by the evidence (16 demev1 points; test error "
                 "against the noise-free function)", fontsize=10)
    fig.tight_layout()
    return ctx.savefig(fig, "bayes_regression_model_selection")


def notes(results) -> str:
    """The markdown prose, every finding formatted from ``results``."""
    return _notes_fit(results) + "\n\n" + _notes_selection(results)


def _notes_fit(results) -> str:
    s = results["summary"]
    widen = (s["predictive_std_min_at_plot_ends"] > s["predictive_std_max_in_data_range"])
    return (
        f"Netlab demev1 data: x_n = 0.25 + 0.07 n (n = 0..15), t = sin(2 pi x) + "
        f"0.1 e (numpy seed {DATA_SEED}), so the true noise precision is 100. "
        f"A 1-{HIDDEN}-1 tanh network starts at alpha = {ALPHA0}, beta = {BETA0}; "
        "`sopt.bayes.evidence_fit` (trust-exact training, exact Hessian, negative "
        "data-Hessian eigenvalues clipped as Netlab does) runs to convergence from "
        f"{s['restarts']} initial weight vectors (`init_weights(seed)`, seeds "
        f"0..{s['restarts'] - 1}) and keeps the highest log evidence; "
        f"{s['restarts_at_best_evidence']} of them reached it. "
        "The predictive variance is 1/beta + g^T A^{-1} g (PRML eq. 5.173); the "
        "dashed orange lines are +-2 sigma of the function-space part alone. The plot runs over "
        f"[{PLOT_RANGE[0]}, {PLOT_RANGE[1]}] rather than [0, 1] because demev1's "
        f"inputs run up to {X_HI:.2f}; outside the data range (dotted lines) the error "
        "bars " + ("widen" if widen else "do not all widen")
        + f" (sigma at both ends of the plot at least "
        f"{s['predictive_std_min_at_plot_ends']:.3g}, at most "
        f"{s['predictive_std_max_in_data_range']:.3g} inside). Coverage: fraction of "
        f"{s['n_test']} fresh targets (x uniform on [{X_LO}, {X_HI:.2f}], same noise) "
        f"inside mean +- 1 and +- 2 sigma: {s['coverage_1sigma']:.3f} and "
        f"{s['coverage_2sigma']:.3f} (nominal 0.683 and 0.954).")


def _notes_selection(results) -> str:
    s, cfg = results["summary"], results["settings"]
    rows = results["tables"]["Model selection over hidden units"]
    return (
        "Model selection: for each M the best log evidence of "
        f"{cfg['selection_restarts']} restart(s) (the demev1 network's own "
        f"{cfg['main_restarts']} for M = {HIDDEN}); the evidence picks M = "
        f"{s['best_M_evidence']}, the lowest test error is at M = {s['best_M_test_error']}. "
        "Test "
        "error = RMS of that network's predictive mean "
        f"against the noise-free sin(2 pi x) on {cfg['n_rms_grid']} points over the "
        "data range (the table also gives RMS against the fresh noisy targets, which "
        "adds the noise 0.1 in quadrature). `log_evidence` omits the ln(M! 2^M) "
        "count of equivalent modes (PRML sec. 5.7.2); the dashed curve adds it. "
        "The best M is chosen without it: with it the highest value is at M = "
        f"{s['best_M_evidence_with_symmetry_term']}"
        + (", the largest M tried, presumably because redundant hidden units "
           "(duplicated or unused) make the M! 2^M modes far from distinct, so the "
           "term over-counts" if s["best_M_evidence_with_symmetry_term"] == rows[-1]["M"]
           else "") + ". " + _notes_collapse(rows))


def _notes_collapse(rows) -> str:
    """What the evidence does with one hidden unit (from the M = 1 row)."""
    one = rows[0]
    failed = [r["M"] for r in rows if r["failed"]]
    text = ""
    if one["M"] == 1 and one["alpha"] > 1e3 and one["gamma"] < 0.1:
        text = (f"With M = 1 (test error {one['test_rms_true']:.2f}) a single tanh "
                "cannot follow the sine; the evidence drives alpha towards infinity "
                f"(alpha = {one['alpha']:.3g}, gamma = {one['gamma']:.2g}: all weights "
                "near 0, the network predicts a constant)"
                + (", and evidence_fit stops once gamma, beta and the evidence no "
                   "longer move" if one["converged"] else ", and the loop does not "
                   "settle") + ". ")
    if failed:
        text += (f"Restarts stopped with a ValueError at M = "
                 f"{', '.join(map(str, failed))} (gamma rounded below zero gives a "
                 "negative alpha inside evidence_fit).")
    return text.rstrip()


def run(ctx) -> dict:
    return _common.compose(ctx, compute, plot, notes)
