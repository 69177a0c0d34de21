"""The Laplace predictive beside the sampled one: the same network, data and
prior (alpha, beta from the evidence framework), the posterior over the
weights integrated once by the Laplace approximation and once by NUTS
(:func:`sopt.bayes.sample_posterior`).

Regression (in the style of Netlab's ``demhmc2``, Nabney 2002, "Netlab:
Algorithms for Pattern Recognition", which draws the weights of a small
tanh network by hybrid Monte Carlo at fixed alpha and beta for noisy
sin(2 pi x) data and plots sampled functions and their average): 24
inputs, 12 uniform on [0, 0.35] and 12 on [0.65, 1] (a gap in between),
t = sin(2 pi x) + N(0, 0.1^2); a 1-2-1 tanh network (the highest evidence
of 1, 2 and 3 hidden units on these data; wider networks need hundreds of
leapfrog steps per NUTS iteration, experiments/sampling_hidden_units.py).

Classification (in the style of PRML sec. 5.7.3 and Fig. 5.23, Bishop
2006: the Laplace-moderated output of a tanh network on a synthetic
two-class set): 100 points of the two-class mixture of
:mod:`bayes_classification` (Netlab ``demmlp2``'s), a 2-3-1 tanh network
with logistic output.

Both posteriors use the evidence fit's alpha (and beta); the chains start
at its w_MAP, with its Laplace precision as the metric. Reported: held-out
NLL of the MAP plug-in, the Laplace and the sampled predictive on test
sets from the same generators, the predictive s.d. in and outside the gap,
and the sampler's diagnostics, with R-hat and bulk ESS taken of the
predictive (the network's output at test inputs, per draw) rather than of
the weights, whose sign and permutation symmetries make weight R-hat
large whenever the chains sit in different but equivalent modes.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import mlp
from ..bayes import sample_posterior
from ..bayes._diagnostics import ess_bulk, rhat
from . import _common
from . import bayes_classification as bc
from . import bayes_regression as br

NAME = "bayes_sampling"
TITLE = "Laplace against sampled predictive (Netlab demhmc2, PRML Fig. 5.23 settings)"

NOISE = 0.1                           # regression noise s.d.
SIDES = ((0.0, 0.35), (0.65, 1.0))    # the regression inputs' two intervals
GAP = (0.35, 0.65)
N_PER_SIDE = 12
REG_SEED, REG_TEST_SEED = 0, 1
REG_HIDDEN = 2
REG_CANDIDATES = (1, 2, 3)            # hidden units compared by the evidence
REG_PLOT = (-0.2, 1.2)
CLS_N_TRAIN = 100
CLS_HIDDEN = 3
CHAINS = 2
SEED = 0                              # the sampler's


# ------------------------------------------------------------------ data
def gap_data(n_per_side: int, seed) -> tuple[np.ndarray, np.ndarray]:
    """x (2 n,): n uniform on each interval of :data:`SIDES`; t (2 n,) =
    sin(2 pi x) + N(0, NOISE^2)."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.uniform(lo, hi, n_per_side) for lo, hi in SIDES])
    return x, br.true_function(x) + NOISE * rng.standard_normal(x.size)


def gap_targets(n: int, seed) -> tuple[np.ndarray, np.ndarray]:
    """n test points with x uniform in the gap, t as :func:`gap_data`."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(*GAP, n)
    return x, br.true_function(x) + NOISE * rng.standard_normal(n)


def _settings(quick: bool) -> dict:
    return {"n_chains": CHAINS, "n_warmup": 50 if quick else 300,
            "reg_n_draws": 50 if quick else 700, "cls_n_draws": 50 if quick else 500,
            "max_tree_depth": 6 if quick else 10, "target_accept": 0.8, "seed": SEED,
            "evidence_restarts": 1 if quick else 2,
            "hidden_candidates": [REG_HIDDEN] if quick else list(REG_CANDIDATES),
            "n_test": 2000 if quick else 10000, "n_test_gap": 1000 if quick else 5000,
            "n_diagnostic_inputs": 100 if quick else 500, "n_plot_diagnostic_inputs": 29,
            "blocks_per_chain": 5, "n_grid": 41 if quick else 121,
            "n_functions_plotted": 12}


def _sample(net, X, T, fit, loss: str, n_draws: int, cfg: dict):
    """sample_posterior at the evidence fit's alpha (and beta), started at
    its w_MAP, its Laplace precision as the metric; warnings off (the
    diagnostics are reported instead)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sample_posterior(
            net, X, T, fit.w, loss=loss, posterior=fit.posterior,
            n_draws=n_draws, n_warmup=cfg["n_warmup"],
            n_chains=cfg["n_chains"], max_tree_depth=cfg["max_tree_depth"],
            target_accept=cfg["target_accept"], seed=cfg["seed"])


def per_draw_outputs(net, draws, X) -> np.ndarray:
    """The network's first output at X for every draw, (M, S, N).
    Cost M S forward passes of N rows; memory M S N doubles."""
    M, S, _ = draws.shape
    out = np.empty((M, S, len(X)))
    for m in range(M):
        for s in range(S):
            out[m, s] = net.forward(draws[m, s], X)[:, 0]
    return out


def diagnostics(net, sp, X_diag, max_tree_depth: int) -> dict:
    """The sampler's checks: R-hat and bulk ESS of the output at X_diag
    over the draws (max / min / median over the inputs), of the weights
    (reported; not the criterion), divergences, leapfrog steps, tree depth."""
    Y = per_draw_outputs(net, sp.draws, X_diag)
    r, e = rhat(Y), ess_bulk(Y)
    return {"rhat_predictive_max": float(np.max(r)),
            "ess_predictive_min": float(np.min(e)),
            "ess_predictive_median": float(np.median(e)),
            "rhat_weights_max": float(np.max(sp.rhat)),
            "n_divergent": sp.n_divergent, "n_transitions": int(sp.divergent.size),
            "mean_leapfrog_steps": float(np.mean(sp.n_steps)),
            "mean_tree_depth": float(np.mean(sp.tree_depth)),
            "fraction_at_max_tree_depth": float(np.mean(sp.tree_depth >= max_tree_depth)),
            "accept_stat": float(np.mean(sp.accept_stat)),
            "step_size_mean": float(np.mean(sp.step_size)),
            "sampling_seconds": float(sp.fit_time)}


def mixes(d: dict, n_chains: int) -> bool:
    """Vehtari et al.'s (2021) thresholds on the predictive: R-hat < 1.01
    and bulk ESS >= 100 per chain, and no divergent transition."""
    return (d["rhat_predictive_max"] < 1.01 and d["n_divergent"] == 0
            and d["ess_predictive_min"] >= 100 * n_chains)


def batch_standard_error(statistic, draws, blocks_per_chain: int) -> float:
    """Monte Carlo standard error of ``statistic`` of all the draws (M, S,
    W), by batch means: statistic(block) over consecutive blocks of S //
    blocks_per_chain draws of each chain; their s.d. / sqrt(number of
    blocks). Approximate: blocks must be longer than the autocorrelation,
    and a nonlinear statistic of fewer draws is a little biased."""
    M, S, _ = draws.shape
    size = S // blocks_per_chain
    values = [statistic(draws[m, k * size:(k + 1) * size])
              for m in range(M) for k in range(blocks_per_chain)]
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


# ------------------------------------------------------------ regression
def gaussian_nll(t, mean, var) -> float:
    """Mean -ln N(t | mean, var) over the points."""
    t, mean, var = (np.asarray(a, dtype=float).ravel() for a in (t, mean, var))
    return float(np.mean(0.5 * np.log(2 * np.pi * var) + 0.5 * (t - mean) ** 2 / var))


def _regions() -> dict:
    """Evaluation grids: inside the data's intervals, in the gap, and
    beyond the data (the plot's ends: [-0.2, 0] and [1, 1.2])."""
    inside = np.concatenate([np.linspace(lo, hi, 51) for lo, hi in SIDES])
    beyond = np.concatenate([np.linspace(REG_PLOT[0], 0.0, 21),
                             np.linspace(1.0, REG_PLOT[1], 21)])
    return {"data": inside, "gap": np.linspace(*GAP, 51)[1:-1], "beyond": beyond}


def _reg_predictives(net, fit, sp):
    """(name, predict(x) -> (mean, var)) for MAP, Laplace and sampling,
    each with the noise 1/beta in the variance."""
    beta = float(fit.beta)

    def plug_in(x):
        m = net.forward(fit.w, x[:, None])[:, 0]
        return m, np.full_like(m, 1.0 / beta)

    def flat(post):
        return lambda x: tuple(a[:, 0] for a in post.predict(x[:, None]))
    return [("MAP", plug_in), ("Laplace", flat(fit.posterior)), ("sampled", flat(sp))]


def _reg_table(net, fit, sp, tests: dict, blocks_per_chain: int) -> list[dict]:
    """Per method: NLL on each test set (with its Monte Carlo s.e.: 0 for
    the closed forms), the RMS error of the predictive mean against
    sin(2 pi x) there, mean predictive s.d. per region of :func:`_regions`."""
    rows = []
    for name, predict in _reg_predictives(net, fit, sp):
        row = {"method": name}
        for key, (x, t) in tests.items():
            mean, var = predict(x)
            row[f"nll_{key}"] = gaussian_nll(t, mean, var)
            row[f"rms_true_{key}"] = float(np.sqrt(np.mean(
                (mean - br.true_function(x)) ** 2)))
            row[f"nll_{key}_mcse"] = (batch_standard_error(
                _block_nll(net, fit.beta, x, t), sp.draws, blocks_per_chain)
                if name == "sampled" else 0.0)
        for key, x in _regions().items():
            row[f"sd_{key}"] = float(np.mean(np.sqrt(predict(x)[1])))
        rows.append(row)
    return rows


def _block_nll(net, beta, x, t):
    """statistic(draws (S_b, W)): the held-out NLL of the Gaussian
    predictive of those draws alone (for :func:`batch_standard_error`)."""
    def statistic(block):
        Y = per_draw_outputs(net, block[None], x[:, None])[0]
        return gaussian_nll(t, Y.mean(axis=0), Y.var(axis=0) + 1.0 / beta)
    return statistic


def _hidden_unit_rows(X, T, cfg, log) -> tuple[list[dict], object, object]:
    """br.fit_best for each candidate number of hidden units: a row each,
    and (net, fit) of :data:`REG_HIDDEN` units."""
    rows, chosen = [], None
    for M in cfg["hidden_candidates"]:
        net, best, runs = br.fit_best(M, X, T, range(cfg["evidence_restarts"]), log=log)
        if best is None:
            raise RuntimeError(f"bayes_sampling: every evidence fit of M = {M} failed")
        rows.append({"M": M, "W": net.n_weights, "log_evidence": best.log_evidence,
                     "alpha": float(best.alpha[0]), "beta": float(best.beta),
                     "gamma": best.gamma})
        if M == REG_HIDDEN:
            chosen = (net, best)
    return rows, *chosen


def _reg_tests(cfg: dict) -> dict:
    """Held-out sets: "test" from the training generator, "gap" in the gap."""
    same, gap = np.random.SeedSequence(REG_TEST_SEED).spawn(2)
    return {"test": gap_data(cfg["n_test"] // 2, same),
            "gap": gap_targets(cfg["n_test_gap"], gap)}


def _reg_diagnostics(net, sp, tests: dict, cfg: dict) -> tuple[dict, dict]:
    """The sampler's diagnostics at the first inputs of each test set, and
    R-hat / ESS of the output over the plotted range (summary entries)."""
    n = cfg["n_diagnostic_inputs"]
    x_diag = np.concatenate([x[:n] for x, _ in tests.values()])
    diag = diagnostics(net, sp, x_diag[:, None], cfg["max_tree_depth"])
    x_plot = np.linspace(*REG_PLOT, cfg["n_plot_diagnostic_inputs"])
    Y = per_draw_outputs(net, sp.draws, x_plot[:, None])
    return diag, {"reg_rhat_predictive_max_plot_range": float(np.max(rhat(Y))),
                  "reg_ess_predictive_min_plot_range": float(np.min(ess_bulk(Y)))}


def compute_regression(ctx, cfg: dict) -> dict:
    """Evidence fit, Laplace and NUTS on the gap data: summary entries
    (prefixed reg_), tables, and arrays for the plot."""
    x, t = gap_data(N_PER_SIDE, REG_SEED)
    X, T = x[:, None], t[:, None]
    ctx.log(f"regression: evidence fits, M in {cfg['hidden_candidates']}")
    ev_rows, net, fit = _hidden_unit_rows(X, T, cfg, ctx.log)
    ctx.log(f"regression: NUTS, {cfg['n_chains']} chains x ({cfg['n_warmup']} + "
            f"{cfg['reg_n_draws']}) iterations")
    sp = _sample(net, X, T, fit, "sse", cfg["reg_n_draws"], cfg)
    tests = _reg_tests(cfg)
    diag, plot_range = _reg_diagnostics(net, sp, tests, cfg)
    rows = _reg_table(net, fit, sp, tests, cfg["blocks_per_chain"])
    ctx.log(f"regression: test NLL MAP {rows[0]['nll_test']:.3f}, Laplace "
            f"{rows[1]['nll_test']:.3f}, sampled {rows[2]['nll_test']:.3f}; "
            f"predictive R-hat {diag['rhat_predictive_max']:.3f}, "
            f"ESS {diag['ess_predictive_min']:.0f}")
    best_M = max(ev_rows, key=lambda r: r["log_evidence"])["M"]
    summary = {"reg_hidden_units": REG_HIDDEN, "reg_n_weights": net.n_weights,
               "reg_n_train": len(x), "reg_alpha": float(fit.alpha[0]),
               "reg_beta": float(fit.beta), "reg_gamma": fit.gamma,
               "reg_log_evidence": fit.log_evidence, "reg_best_M_evidence": best_M,
               "reg_noise_sd_fitted": 1.0 / math.sqrt(fit.beta)}
    for row in rows:
        key = row["method"].lower()
        summary.update({f"reg_{k}_{key}": v for k, v in row.items()
                        if k != "method" and not (k.endswith("mcse") and key != "sampled")})
    summary.update({f"reg_{k}": v for k, v in diag.items()}, **plot_range)
    return {"summary": summary, "rows": rows, "evidence_rows": ev_rows, "diag": diag,
            "data": dict(x=x, t=t, net=net, fit=fit, sp=sp)}


# -------------------------------------------------------- classification
def _cls_rows(net, fit, sp, Xt, tt, blocks_per_chain: int) -> list[dict]:
    """Test NLL (Monte Carlo s.e. for the sampled one) and error per method."""
    probs = {"MAP": net.forward(fit.w, Xt)[:, 0],
             "Laplace": fit.posterior.predict_proba(Xt)[:, 0],
             "sampled": sp.predict_proba(Xt)[:, 0], "Bayes-optimal": bc.true_posterior(Xt)}

    def block_nll(block):
        return bc._nll(per_draw_outputs(net, block[None], Xt)[0].mean(axis=0), tt)
    mcse = batch_standard_error(block_nll, sp.draws, blocks_per_chain)
    return [{"method": k, "nll_test": bc._nll(p, tt),
             "nll_test_mcse": mcse if k == "sampled" else 0.0,
             "error_test": bc._error(p, tt)} for k, p in probs.items()]


def _cls_grid(net, fit, sp, X, n_grid: int) -> tuple[dict, dict]:
    """Probabilities on the plotting grid, and the summary's comparisons
    of them: mean |y - 0.5| far from and near the data per method, and
    where the Laplace and sampled y = 0.5 sides disagree."""
    G1, G2, G = bc._grid(n_grid)
    P = {"Laplace": fit.posterior.predict_proba(G)[:, 0], "sampled": sp.predict_proba(G)[:, 0],
         "MAP": net.forward(fit.w, G)[:, 0], "true": bc.true_posterior(G)}
    dist = bc._nearest_distance(G, X)
    out = {f"cls_mean_abs_p_minus_half_{where}_{key.lower()}":
           float(np.mean(np.abs(P[key][mask] - 0.5)))
           for where, mask in (("far", dist > bc.FAR), ("near", dist < 0.25))
           for key in ("MAP", "Laplace", "sampled")}
    out["cls_boundary_disagreement"] = float(np.mean((P["Laplace"] > 0.5)
                                                     != (P["sampled"] > 0.5)))
    return out, dict(G1=G1, G2=G2, P=P)


def compute_classification(ctx, cfg: dict) -> dict:
    """Evidence fit, Laplace (probit moderation) and NUTS on the mixture:
    summary entries (prefixed cls_), the NLL table, grids for the plot."""
    X, t = bc.sample_mixture(CLS_N_TRAIN, bc.TRAIN_SEED)
    Xt, tt = bc.sample_mixture(cfg["n_test"], bc.TEST_SEED)
    net = mlp([2, CLS_HIDDEN, 1], hidden="tanh", output="logistic")
    ctx.log(f"classification: evidence fit, {cfg['evidence_restarts']} restart(s)")
    fit = bc._fit_evidence(net, X, t[:, None], range(cfg["evidence_restarts"]), ctx.log)
    ctx.log(f"classification: NUTS, {cfg['n_chains']} chains x ({cfg['n_warmup']} + "
            f"{cfg['cls_n_draws']}) iterations")
    sp = _sample(net, X, t[:, None], fit, "binary_ce", cfg["cls_n_draws"], cfg)
    rows = _cls_rows(net, fit, sp, Xt, tt, cfg["blocks_per_chain"])
    diag = diagnostics(net, sp, Xt[:cfg["n_diagnostic_inputs"]], cfg["max_tree_depth"])
    grid_summary, grid = _cls_grid(net, fit, sp, X, cfg["n_grid"])
    ctx.log(f"classification: test NLL MAP {rows[0]['nll_test']:.4f}, Laplace "
            f"{rows[1]['nll_test']:.4f}, sampled {rows[2]['nll_test']:.4f}; "
            f"predictive R-hat {diag['rhat_predictive_max']:.3f}, "
            f"ESS {diag['ess_predictive_min']:.0f}")
    summary = {"cls_hidden_units": CLS_HIDDEN, "cls_n_weights": net.n_weights,
               "cls_n_train": CLS_N_TRAIN, "cls_alpha": float(fit.alpha[0]),
               "cls_gamma": fit.gamma, "cls_log_evidence": fit.log_evidence,
               **{f"cls_{k}_{r['method'].lower().replace('-', '_')}": r[k]
                  for r in rows for k in ("nll_test", "error_test")},
               "cls_nll_test_mcse_sampled": rows[2]["nll_test_mcse"],
               **grid_summary, **{f"cls_{k}": v for k, v in diag.items()}}
    return {"summary": summary, "rows": rows, "diag": diag,
            "data": dict(X=X, t=t, **grid)}


def compute(ctx) -> dict:
    """Both cases: the results dict ("summary", "tables", "settings"; "data")."""
    cfg = _settings(ctx.quick)
    reg = compute_regression(ctx, cfg)
    cls = compute_classification(ctx, cfg)
    diag_rows = [{"case": case, **res["diag"]} for case, res in
                 (("regression", reg), ("classification", cls))]
    tables = {"Regression: held-out NLL and predictive s.d.": reg["rows"],
              "Regression: log evidence over hidden units": reg["evidence_rows"],
              "Classification: held-out NLL and error": cls["rows"],
              "Sampler diagnostics": diag_rows}
    return {"summary": {**reg["summary"], **cls["summary"]}, "tables": tables,
            "settings": cfg, "data": {"regression": reg["data"],
                                      "classification": cls["data"]}}


# ------------------------------------------------------------------ plots
def plot(results, ctx) -> list[str]:
    """The regression bands with sampled functions; the classification
    contours of the Laplace-moderated and the sampled probabilities."""
    plt = _common.pyplot()
    return [_plot_regression(plt, results, ctx), _plot_classification(plt, results, ctx)]


def _plot_regression(plt, results, ctx) -> str:
    d, s = results["data"]["regression"], results["summary"]
    n_fn = results["settings"]["n_functions_plotted"]
    xp = np.linspace(*REG_PLOT, 281)
    fig, ax = plt.subplots(figsize=(8, 5.2))
    ax.axvspan(*GAP, color="0.93", lw=0, label="gap in the inputs")
    flat = d["sp"].draws.reshape(-1, d["sp"].draws.shape[-1])
    for i, k in enumerate(np.linspace(0, len(flat) - 1, n_fn).astype(int)):
        ax.plot(xp, d["net"].forward(flat[k], xp[:, None])[:, 0], color="0.55", lw=0.7,
                label=f"{n_fn} sampled functions" if i == 0 else None)
    for post, color, name in ((d["fit"].posterior, "tab:blue", "Laplace"),
                              (d["sp"], "tab:orange", "sampled (NUTS)")):
        m, v = (a[:, 0] for a in post.predict(xp[:, None]))
        sd = np.sqrt(v)
        ax.fill_between(xp, m - 2 * sd, m + 2 * sd, color=color, alpha=0.18, lw=0)
        ax.plot(xp, m, color=color, lw=2, label=f"{name} mean $\\pm 2\\sigma$")
        for sign in (-1, 1):
            ax.plot(xp, m + sign * 2 * sd, color=color, lw=1, ls="--")
    ax.plot(xp, br.true_function(xp), color="tab:green", lw=1.3, label=r"$\sin(2\pi x)$")
    ax.plot(d["x"], d["t"], "ko", ms=4.5, label=f"data (N = {len(d['x'])})")
    ax.set_xlim(*REG_PLOT)
    ax.set_ylim(-2.2, 2.2)
    ax.set_xlabel("x")
    ax.set_ylabel("t")
    ax.legend(loc="lower left", fontsize=8, ncol=2)
    ax.set_title(f"1-{REG_HIDDEN}-1 tanh network, evidence alpha = {s['reg_alpha']:.3g}, "
                 f"beta = {s['reg_beta']:.3g}: Laplace against NUTS\n"
                 f"held-out NLL in the gap: Laplace {s['reg_nll_gap_laplace']:.3f}, "
                 f"sampled {s['reg_nll_gap_sampled']:.3f}; predictive R-hat "
                 f"{s['reg_rhat_predictive_max']:.3f}, ESS {s['reg_ess_predictive_min']:.0f}",
                 fontsize=10)
    return ctx.savefig(fig, "bayes_sampling_regression")


def _plot_classification(plt, results, ctx) -> str:
    from matplotlib.lines import Line2D
    d, s = results["data"]["classification"], results["summary"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.8), sharey=True)
    shape = d["G1"].shape
    for ax, key in zip(axes, ("Laplace", "sampled")):
        bc._scatter(ax, d["X"], d["t"])
        ax.contour(d["G1"], d["G2"], d["P"]["true"].reshape(shape), levels=[0.5],
                   colors=["tab:green"], linewidths=2.2, linestyles="--")
        cs = ax.contour(d["G1"], d["G2"], d["P"][key].reshape(shape),
                        levels=[0.1, 0.5, 0.9], colors=["tab:blue", "black", "tab:red"],
                        linewidths=[1, 2, 1])
        ax.clabel(cs, fmt="%.1f", fontsize=8)
        bc._box(ax)
        name = key.lower()
        ax.set_title(("Laplace, moderated (probit)" if key == "Laplace" else
                      "sampled (NUTS), averaged probabilities")
                     + f"\ntest NLL {s['cls_nll_test_' + name]:.4f}, "
                     f"error {s['cls_error_test_' + name]:.3f}", fontsize=10)
    axes[0].set_ylabel("$x_2$")
    handles = axes[0].get_legend_handles_labels()[0] + [
        Line2D([], [], color="tab:green", ls="--", lw=2.2, label="Bayes-optimal boundary")]
    axes[0].legend(handles=handles, loc="lower left", fontsize=8)
    fig.suptitle(f"Contours y = 0.1, 0.5, 0.9: 2-{CLS_HIDDEN}-1 tanh network, "
                 f"N = {CLS_N_TRAIN}, evidence alpha = {s['cls_alpha']:.3g} "
                 "(cf. PRML Fig. 5.23)", fontsize=11)
    fig.tight_layout()
    return ctx.savefig(fig, "bayes_sampling_classification")


# ------------------------------------------------------------------ notes
def notes(results) -> str:
    """The markdown prose, every finding formatted from ``results``."""
    return "\n\n".join([_notes_setup(results), _notes_regression(results),
                        _notes_classification(results), _notes_diagnostics(results)])


def _notes_setup(results) -> str:
    cfg = results["settings"]
    return (
        "Setups after Netlab's demhmc2 (Nabney 2002: hybrid Monte Carlo draws of a "
        "small tanh network's weights for noisy sin(2 pi x) data, at fixed alpha and "
        "beta) and PRML sec. 5.7.3 / Fig. 5.23 (Bishop 2006: the Laplace-moderated "
        "output of a tanh network on a synthetic two-class set). For each case one "
        "model and one prior: `sopt.bayes.evidence_fit` gives w_MAP, alpha (and beta) "
        "and the Laplace posterior; `sopt.bayes.sample_posterior` runs NUTS at the "
        f"same alpha (and beta): {cfg['n_chains']} chains of {cfg['n_warmup']} warm-up "
        f"and {cfg['reg_n_draws']} (regression) or {cfg['cls_n_draws']} "
        f"(classification) recorded iterations, seed {cfg['seed']}, started at "
        "w_MAP, metric the Laplace precision, tree depth at most "
        f"{cfg['max_tree_depth']}, target acceptance {cfg['target_accept']}. Only the "
        "integration over the weights differs between the Laplace and the sampled "
        "predictive. The sampled NLLs carry a Monte Carlo standard error (+-, batch "
        f"means over {cfg['blocks_per_chain']} blocks of consecutive draws per chain); "
        "a difference within two of them is called 'within Monte Carlo error'.")


def _compare(a: float, b: float, se: float) -> str:
    """How a compares with b, a's Monte Carlo s.e. being se."""
    if abs(a - b) <= 2 * se:
        return "within Monte Carlo error of"
    return "lower than" if a < b else "higher than"


def _hidden_unit_verdict(s: dict, ev: list) -> str:
    """Why REG_HIDDEN units, from the evidence table."""
    if len(ev) < 2:
        return "the full run compares the evidence of 1, 2 and 3 hidden units"
    tried = ", ".join(str(r["M"]) for r in ev)
    if s["reg_best_M_evidence"] == REG_HIDDEN:
        return f"the highest log evidence of M = {tried}"
    return (f"of M = {tried} the evidence prefers M = {s['reg_best_M_evidence']}; "
            f"M = {REG_HIDDEN} is kept because wider networks sample slowly")


def _notes_beta(s: dict) -> str:
    """What the fitted noise precision does to every NLL below."""
    ratio = s["reg_beta"] * NOISE ** 2
    if 2 / 3 <= ratio <= 1.5:
        return ""
    return (f"The evidence beta is {ratio:.2g} times the true 1/{NOISE}^2, so every "
            "predictive here is " + ("narrower" if ratio > 1 else "wider")
            + " than the held-out noise and the NLLs weigh errors of the mean "
            + ("heavily" if ratio > 1 else "lightly") + ". ")


def _notes_regression(results) -> str:
    s, cfg = results["summary"], results["settings"]
    ev = results["tables"]["Regression: log evidence over hidden units"]
    sd = {k: s[f"reg_sd_{k}_sampled"] / s[f"reg_sd_{k}_laplace"]
          for k in ("data", "gap", "beyond")}
    return (
        f"Regression: {s['reg_n_train']} points, {N_PER_SIDE} uniform on each of "
        f"[{SIDES[0][0]}, {SIDES[0][1]}] and [{SIDES[1][0]}, {SIDES[1][1]}], t = "
        f"sin(2 pi x) + N(0, {NOISE}^2) (seed {REG_SEED}); a 1-{REG_HIDDEN}-1 tanh "
        f"network ({_hidden_unit_verdict(s, ev)}), alpha = {s['reg_alpha']:.3g}, "
        f"beta = {s['reg_beta']:.3g} (noise s.d. {s['reg_noise_sd_fitted']:.3f}; true "
        f"{NOISE}), gamma = {s['reg_gamma']:.2f} of {s['reg_n_weights']}. Held-out NLL "
        "per point (Gaussian predictive, noise included; MAP: the plug-in "
        f"N(y(x, w_MAP), 1/beta)) on {cfg['n_test']} points from the same generator: "
        f"MAP {s['reg_nll_test_map']:.3f}, Laplace {s['reg_nll_test_laplace']:.3f}, "
        f"sampled {s['reg_nll_test_sampled']:.3f} +- {s['reg_nll_test_mcse_sampled']:.3f}; "
        f"on {cfg['n_test_gap']} points with x uniform in the gap: MAP "
        f"{s['reg_nll_gap_map']:.3f}, Laplace {s['reg_nll_gap_laplace']:.3f}, sampled "
        f"{s['reg_nll_gap_sampled']:.3f} +- {s['reg_nll_gap_mcse_sampled']:.3f}. "
        + _notes_beta(s)
        + "The sampled NLL is " + _compare(s["reg_nll_test_sampled"],
                                           s["reg_nll_test_laplace"],
                                           s["reg_nll_test_mcse_sampled"])
        + " Laplace's on the test set and " + _compare(s["reg_nll_gap_sampled"],
                                                       s["reg_nll_gap_laplace"],
                                                       s["reg_nll_gap_mcse_sampled"])
        + " it in the gap. RMS error of the predictive mean against sin(2 pi x) on the "
        f"test set / in the gap: MAP and Laplace {s['reg_rms_true_test_laplace']:.3f} / "
        f"{s['reg_rms_true_gap_laplace']:.3f}, sampled {s['reg_rms_true_test_sampled']:.3f} "
        f"/ {s['reg_rms_true_gap_sampled']:.3f}. Mean predictive s.d. inside the data's intervals / in the "
        f"gap / beyond the data ([{REG_PLOT[0]}, 0] and [1, {REG_PLOT[1]}]): Laplace "
        f"{s['reg_sd_data_laplace']:.3f} / {s['reg_sd_gap_laplace']:.3f} / "
        f"{s['reg_sd_beyond_laplace']:.3f}, sampled {s['reg_sd_data_sampled']:.3f} / "
        f"{s['reg_sd_gap_sampled']:.3f} / {s['reg_sd_beyond_sampled']:.3f} (sampled over "
        f"Laplace: {sd['data']:.3f}, {sd['gap']:.3f}, {sd['beyond']:.3f}). Both "
        + ("widen" if min(s["reg_sd_gap_laplace"], s["reg_sd_gap_sampled"])
           > max(s["reg_sd_data_laplace"], s["reg_sd_data_sampled"])
           else "do not both widen")
        + " in the gap.")


def _notes_classification(results) -> str:
    s, cfg = results["summary"], results["settings"]
    shrink = (s["cls_mean_abs_p_minus_half_far_sampled"]
              < s["cls_mean_abs_p_minus_half_far_laplace"])
    return (
        f"Classification: {s['cls_n_train']} points of the demmlp2 mixture (seed "
        f"{bc.TRAIN_SEED}; see the bayes_classification experiment), a 2-"
        f"{CLS_HIDDEN}-1 tanh network with logistic output, alpha = "
        f"{s['cls_alpha']:.3g}, gamma = {s['cls_gamma']:.2f} of {s['cls_n_weights']}. "
        f"Held-out NLL per point on {cfg['n_test']} points (seed {bc.TEST_SEED}): MAP "
        f"{s['cls_nll_test_map']:.4f}, Laplace (probit-moderated) "
        f"{s['cls_nll_test_laplace']:.4f}, sampled (probabilities averaged over the "
        f"draws) {s['cls_nll_test_sampled']:.4f} +- {s['cls_nll_test_mcse_sampled']:.4f}, "
        f"Bayes-optimal (true densities) {s['cls_nll_test_bayes_optimal']:.4f}; test "
        f"errors {s['cls_error_test_map']:.3f}, {s['cls_error_test_laplace']:.3f}, "
        f"{s['cls_error_test_sampled']:.3f}, {s['cls_error_test_bayes_optimal']:.3f}. "
        "The sampled NLL is " + _compare(s["cls_nll_test_sampled"],
                                         s["cls_nll_test_laplace"],
                                         s["cls_nll_test_mcse_sampled"])
        + " Laplace's. Moderation keeps the MAP boundary; the averaged "
        "probabilities need not: the two y = 0.5 contours disagree on "
        f"{100 * s['cls_boundary_disagreement']:.1f}% of the plotted box. Far from "
        f"the data (no training point within {bc.FAR}) the mean |y - 0.5| is "
        f"{s['cls_mean_abs_p_minus_half_far_map']:.3f} (MAP), "
        f"{s['cls_mean_abs_p_minus_half_far_laplace']:.3f} (Laplace), "
        f"{s['cls_mean_abs_p_minus_half_far_sampled']:.3f} (sampled): the sampled "
        "predictive is " + ("less" if shrink else "more") + " confident there than "
        "the Laplace one.")


def _notes_diagnostics(results) -> str:
    s, cfg = results["summary"], results["settings"]
    parts = []
    for r in results["tables"]["Sampler diagnostics"]:
        verdict = ("passes" if mixes(r, cfg["n_chains"]) else "does NOT pass")
        draws = cfg["n_chains"] * cfg["reg_n_draws" if r["case"] == "regression"
                                      else "cls_n_draws"]
        parts.append(
            f"{r['case']}: R-hat of the predictive at most "
            f"{r['rhat_predictive_max']:.3f}, bulk ESS at least "
            f"{r['ess_predictive_min']:.0f} (median {r['ess_predictive_median']:.0f}) of "
            f"{draws} draws, {r['n_divergent']} divergent of {r['n_transitions']} "
            f"transitions, {r['mean_leapfrog_steps']:.1f} leapfrog steps per iteration "
            f"(mean tree depth {r['mean_tree_depth']:.2f}, "
            f"{100 * r['fraction_at_max_tree_depth']:.1f}% at the limit), "
            f"{r['sampling_seconds']:.1f} s of sampling: it {verdict} the checks; "
            f"largest R-hat over the weights {r['rhat_weights_max']:.2f}")
    return ("Diagnostics: rank-normalised split R-hat and bulk ESS (Vehtari et al. "
            "2021) of the network's output per draw at the first "
            f"{cfg['n_diagnostic_inputs']} inputs of each test set; the checks are "
            "predictive R-hat < 1.01, ESS >= 100 per chain and no divergent "
            "transition. " + "; ".join(parts) + ". Over the regression's plotted "
            f"range [{REG_PLOT[0]}, {REG_PLOT[1]}] ({cfg['n_plot_diagnostic_inputs']} "
            "inputs, extrapolation included) R-hat is at most "
            f"{s['reg_rhat_predictive_max_plot_range']:.3f} and ESS at least "
            f"{s['reg_ess_predictive_min_plot_range']:.0f}. Weight R-hat is not the "
            "criterion: a tanh network's output is unchanged by swapping hidden units "
            "or flipping a unit's signs, so chains in equivalent modes give a large "
            "weight R-hat with identical predictions.")


def run(ctx) -> dict:
    return _common.compose(ctx, compute, plot, notes)
