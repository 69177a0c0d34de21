"""Bayesian classification: the evidence framework and moderated outputs on
a synthetic two-class problem (PRML Figures 5.22 and 5.23).

Data: a mixture of three isotropic Gaussians in 2-D (the one in Netlab's
``demmlp2``), see :data:`MIXTURE`. Class 0 is the first component,
N((0, -0.1), 0.625 I), with prior 0.5; class 1 is the other two,
N((1, 1), 0.2 I) and N((1, -1), 0.2 I), with prior 0.25 each. The classes
overlap, so the Bayes error is about 0.17 and a flexible network trained
by maximum likelihood overfits. Because the densities are known, the
Bayes-optimal boundary P(class 1 | x) = 0.5 and the Bayes error are
computed exactly (the error by Monte Carlo on the test set).

Networks: 2-8-1, tanh hidden units, logistic output, cross-entropy
(``binary_ce``). Maximum likelihood: alpha = 0, trained by sopt's damped
Newton method with the exact Hessian. Evidence: ``sopt.bayes.evidence_fit``
with the exact Hessian, negative eigenvalues of the data Hessian clipped
(Netlab's remedy). The moderated output is post.predict_proba, i.e.
sigma(kappa(s^2) a_MAP) with s^2 = b^T A^{-1} b (PRML eq. 5.190).
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import Objective, mlp
from ..bayes import evidence_fit
from ..optimize import ConvergenceWarning, minimize
from . import _common

NAME = "bayes_classification"
TITLE = "Bayesian classification (PRML Figures 5.22 and 5.23)"

#: The generator: component priors, centres and isotropic variances, and the
#: class of each component (Netlab demmlp2's mixture).
MIXTURE = {
    "priors": np.array([0.5, 0.25, 0.25]),
    "centres": np.array([[0.0, -0.1], [1.0, 1.0], [1.0, -1.0]]),
    "variances": np.array([0.625, 0.2, 0.2]),
    "classes": np.array([0, 1, 1]),
}
N_TRAIN = 200
TRAIN_SEED, TEST_SEED = 1, 2
HIDDEN = 8
BOX = ((-2.5, 3.5), (-3.0, 3.0))       # plotting and "far from data" region
FAR = 1.0                              # "far": no training point within this
METHOD = "newton"      # sopt's damped Newton (exact Hessian, Cholesky, Armijo)


def sample_mixture(n: int, seed) -> tuple[np.ndarray, np.ndarray]:
    """n points from :data:`MIXTURE`: X (n, 2) and labels (n,) in {0, 1}."""
    rng = np.random.default_rng(seed)
    comp = rng.choice(len(MIXTURE["priors"]), size=n, p=MIXTURE["priors"])
    X = (MIXTURE["centres"][comp]
         + np.sqrt(MIXTURE["variances"][comp])[:, None] * rng.standard_normal((n, 2)))
    return X, MIXTURE["classes"][comp].astype(float)


def true_posterior(X) -> np.ndarray:
    """P(class 1 | x) from the true densities, (N,)."""
    X = np.asarray(X, dtype=float)
    joint = np.zeros((2, len(X)))
    for p, c, v, k in zip(MIXTURE["priors"], MIXTURE["centres"],
                          MIXTURE["variances"], MIXTURE["classes"]):
        d2 = np.sum((X - c) ** 2, axis=1)
        joint[k] += p * np.exp(-0.5 * d2 / v) / (2 * np.pi * v)
    return joint[1] / joint.sum(axis=0)


def _error(p, labels) -> float:
    return float(np.mean((np.asarray(p) > 0.5) != (labels > 0.5)))


def _nll(p, labels) -> float:
    """Mean test cross-entropy, probabilities clipped to [1e-12, 1 - 1e-12]."""
    p = np.clip(np.asarray(p, dtype=float), 1e-12, 1 - 1e-12)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p)))


def _nearest_distance(G, X) -> np.ndarray:
    """Distance from each row of G to its nearest row of X."""
    d2 = (np.sum(G * G, axis=1)[:, None] - 2 * G @ X.T + np.sum(X * X, axis=1)[None])
    return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


def _scatter(ax, X, t):
    ax.plot(*X[t == 0].T, "o", mfc="none", mec="tab:blue", ms=4.5, mew=1,
            label="class 0")
    ax.plot(*X[t == 1].T, "x", color="tab:red", ms=4.5, mew=1, label="class 1")


def _fit_ml(net, X, T, seeds, maxiter: int, log):
    """Maximum likelihood (alpha = 0) from each seed; the lowest E kept."""
    ml = None
    for seed in seeds:
        obj = Objective(net, X, T, loss="binary_ce", alpha=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = minimize(obj, net.init_weights(seed=seed), method=METHOD,
                           options={"maxiter": maxiter, "gtol": 1e-6})
        log(f"ML seed {seed}: E = {res.fun:.4f} after {res.nit} {METHOD} "
            f"iterations, |w| = {np.linalg.norm(res.x):.3g}")
        if ml is None or res.fun < ml.fun:
            ml = res
    return ml


def _evidence(net, X, T, seed, hessian: str = "exact", clip: bool = True):
    """evidence_fit from alpha = 0.01 and init_weights(seed), warnings off."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return evidence_fit(net, X, T, loss="binary_ce", w0=net.init_weights(seed=seed),
                            alpha=0.01, hessian=hessian, clip_negative=clip,
                            max_cycles=50, method=METHOD)


def _fit_evidence(net, X, T, seeds, log):
    """The evidence fit of highest log evidence over the seeds."""
    ev = None
    for seed in seeds:
        r = _evidence(net, X, T, seed)
        log(f"evidence seed {seed}: alpha {r.alpha[0]:.4g} gamma {r.gamma:.3f} "
            f"log evidence {r.log_evidence:.4f} ({r.n_cycles} cycles, "
            f"{'converged' if r.converged else 'not converged'})")
        if ev is None or r.log_evidence > ev.log_evidence:
            ev = r
    return ev


def _curvature_variants(net, X, T, ev, Xt, tt, log) -> list[dict]:
    """evidence_fit with the exact Hessian, clipped or not, and with the
    Gauss-Newton matrix (from seed 0): one row each."""
    rows = []
    for hessian, clip in (("exact", True), ("exact", False), ("gauss_newton", False)):
        row = {"hessian": hessian, "clip_negative": clip}
        try:
            r = (ev if (hessian, clip) == ("exact", True) else
                 _evidence(net, X, T, 0, hessian, clip))
        except ValueError as exc:
            row.update(alpha=float("nan"), gamma=float("nan"),
                       log_evidence=float("nan"), cycles=0, test_error=float("nan"),
                       outcome="ValueError: " + str(exc).split(". ")[0])
        else:
            row.update(alpha=float(r.alpha[0]), gamma=r.gamma,
                       log_evidence=r.log_evidence, cycles=r.n_cycles,
                       test_error=_error(net.forward(r.w, Xt)[:, 0], tt),
                       outcome="converged" if r.converged else "not converged")
        log(f"evidence with hessian={hessian}, clip_negative={clip}: {row['outcome']}")
        rows.append(row)
    return rows


def _hidden_units(net, w, rtol: float = 1e-3) -> tuple[int, int]:
    """(dead, duplicated) hidden units of w: a unit is dead when its input
    weights, bias and output weight are all below rtol max|w|; duplicated
    when its (input weights, bias) equal another unit's or their negative
    to rtol of their norm."""
    hidden, out = net.unpack(w)
    U = np.column_stack([hidden.weights[0], hidden.bias])
    v = out.weights[0][0]
    tol = rtol * np.max(np.abs(w))
    alive = (np.max(np.abs(U), axis=1) > tol) | (np.abs(v) > tol)
    dup = set()
    for i in np.flatnonzero(alive):
        for j in np.flatnonzero(alive):
            if i < j and min(np.linalg.norm(U[i] - U[j]), np.linalg.norm(U[i] + U[j])) \
                    <= rtol * np.linalg.norm(U[i]):
                dup |= {int(i), int(j)}
    return int(np.sum(~alive)), len(dup)


def _settings(quick: bool) -> dict:
    return {"n_test": 20000 if quick else 100000, "ml_restarts": 1 if quick else 4,
            "evidence_restarts": 1 if quick else 3,
            "ml_maxiter": 300 if quick else 500, "n_grid": 121 if quick else 201,
            "variants": not quick}


def _grid(n_grid: int):
    """(G1, G2, G): the plotting box as a meshgrid and as (n_grid^2, 2) rows."""
    G1, G2 = np.meshgrid(np.linspace(*BOX[0], n_grid), np.linspace(*BOX[1], n_grid))
    return G1, G2, np.column_stack([G1.ravel(), G2.ravel()])


def _moderation(net, w_map, post, X, G) -> tuple[dict, dict]:
    """Mean |y - 0.5| far from and near the data, point estimate and
    moderated, on the grid G; and the grid's probabilities for the plots."""
    P = {"map": net.forward(w_map, G)[:, 0], "mod": post.predict_proba(G)[:, 0],
         "true": true_posterior(G)}
    dist = _nearest_distance(G, X)
    far, near = dist > FAR, dist < 0.25
    conf = lambda p, where: float(np.mean(np.abs(p[where] - 0.5)))   # noqa: E731
    summary = {
        "mean_abs_p_minus_half_far_point": conf(P["map"], far),
        "mean_abs_p_minus_half_far_moderated": conf(P["mod"], far),
        "mean_abs_p_minus_half_near_point": conf(P["map"], near),
        "mean_abs_p_minus_half_near_moderated": conf(P["mod"], near),
        "far_grid_fraction": float(np.mean(far)),
        # moderation scales the logit by kappa <= 1: never away from 0.5,
        # and the y = 0.5 boundary stays where it is
        "moderated_never_further_from_half": float(np.mean(
            np.abs(P["mod"] - 0.5) <= np.abs(P["map"] - 0.5) + 1e-12)),
        "moderated_same_side_of_half": float(np.mean((P["mod"] > 0.5) == (P["map"] > 0.5))),
    }
    return summary, P


def compute(ctx) -> dict:
    """Fit ML and evidence networks and measure them: the results dict
    ("summary", "tables", "settings"; "data" for the plots)."""
    cfg = _settings(ctx.quick)
    X, t = sample_mixture(N_TRAIN, TRAIN_SEED)
    Xt, tt = sample_mixture(cfg["n_test"], TEST_SEED)
    T = t[:, None]
    net = mlp([2, HIDDEN, 1], hidden="tanh", output="logistic")
    bayes_err = _error(true_posterior(Xt), tt)
    ml = _fit_ml(net, X, T, range(cfg["ml_restarts"]), cfg["ml_maxiter"], ctx.log)
    ev = _fit_evidence(net, X, T, range(cfg["evidence_restarts"]), ctx.log)
    w_ml, post, w_map = ml.x, ev.posterior, ev.w
    lam = np.linalg.eigvalsh(Objective(net, X, T, loss="binary_ce").hessian(
        w_map, kind="exact"))
    variant_rows = (_curvature_variants(net, X, T, ev, Xt, tt, ctx.log)
                    if cfg["variants"] else [])
    p_ml, p_map = net.forward(w_ml, Xt)[:, 0], net.forward(w_map, Xt)[:, 0]
    p_mod = post.predict_proba(Xt)[:, 0]
    ctx.log(f"test errors: ML {_error(p_ml, tt):.4f}, evidence {_error(p_map, tt):.4f}, "
            f"Bayes {bayes_err:.4f} ({cfg['n_test']} test points)")
    G1, G2, G = _grid(cfg["n_grid"])
    moderation, P = _moderation(net, w_map, post, X, G)
    dead, duplicated = _hidden_units(net, w_map)
    summary = {
        "n_train": N_TRAIN, "n_test": cfg["n_test"], "hidden_units": HIDDEN,
        "n_weights": net.n_weights, "bayes_error": bayes_err,
        "ml_test_error": _error(p_ml, tt), "evidence_test_error": _error(p_map, tt),
        "moderated_test_error": _error(p_mod, tt),
        "ml_train_error": _error(net.forward(w_ml, X)[:, 0], t),
        "evidence_train_error": _error(net.forward(w_map, X)[:, 0], t),
        "ml_test_nll": _nll(p_ml, tt), "evidence_test_nll": _nll(p_map, tt),
        "moderated_test_nll": _nll(p_mod, tt),
        "ml_weight_norm": float(np.linalg.norm(w_ml)),
        "ml_iterations": int(ml.nit), "ml_converged": int(bool(ml.success)),
        "alpha": float(ev.alpha[0]), "gamma": ev.gamma, "log_evidence": ev.log_evidence,
        "evidence_cycles": ev.n_cycles, "evidence_converged": int(ev.converged),
        "evidence_weight_norm": float(np.linalg.norm(w_map)),
        "negative_hessian_eigenvalues_at_w_map": int(np.sum(lam < -1e-10 * max(1.0, lam[-1]))),
        "smallest_hessian_eigenvalue_at_w_map": float(lam[0]),
        **moderation,
        "dead_hidden_units_at_w_map": dead, "duplicated_hidden_units_at_w_map": duplicated,
    }
    history_rows = [{"cycle": i + 1, "alpha": float(a[0]), "gamma": float(g),
                     "log_evidence": float(e)}
                    for i, (a, g, e) in enumerate(zip(ev.history["alpha"],
                                                       ev.history["gamma"],
                                                       ev.history["log_evidence"]))]
    tables = {"Evidence cycles": history_rows}
    if variant_rows:
        tables["Curvature used by evidence_fit"] = variant_rows
    return {"summary": summary, "tables": tables, "settings": cfg,
            "data": dict(net=net, X=X, t=t, w_ml=w_ml, G1=G1, G2=G2, P=P)}


def plot(results, ctx) -> list[str]:
    """PRML Figures 5.22 (decision boundaries) and 5.23 (moderation)."""
    plt = _common.pyplot()
    return [_plot_boundaries(plt, results, ctx), _plot_moderation(plt, results, ctx)]


def _plot_boundaries(plt, results, ctx) -> str:
    from matplotlib.lines import Line2D
    s, d = results["summary"], results["data"]
    n_grid = results["settings"]["n_grid"]
    # the ML net is nearly a step function (|w| large): a finer grid for it,
    # and its class-1 region shaded so that thin slivers read as regions
    f1, f2 = np.meshgrid(np.linspace(*BOX[0], 2 * n_grid), np.linspace(*BOX[1], 2 * n_grid))
    P_ml = d["net"].forward(d["w_ml"], np.column_stack([f1.ravel(), f2.ravel()]))
    P_ml = P_ml.reshape(f1.shape)
    fig, ax = plt.subplots(figsize=(7, 7.2))
    ax.contourf(f1, f2, P_ml, levels=[0.5, 1.0], colors=["0.85"])
    ax.contour(f1, f2, P_ml, levels=[0.5], colors=["black"], linewidths=1.0)
    _scatter(ax, d["X"], d["t"])
    for P, color, lw in ((d["P"]["true"], "tab:green", 2.5), (d["P"]["map"], "tab:red", 2.0)):
        ax.contour(d["G1"], d["G2"], P.reshape(d["G1"].shape), levels=[0.5],
                   colors=[color], linewidths=lw)
    handles = [Line2D([], [], color="tab:green", lw=2.5,
                      label=f"Bayes optimal (test error {s['bayes_error']:.3f})"),
               Line2D([], [], color="black", lw=1.0, marker="s", ms=9,
                      mfc="0.85", mec="0.85",
                      label=rf"maximum likelihood, $\alpha$ = 0 "
                            f"(test error {s['ml_test_error']:.3f}; grey: class 1)"),
               Line2D([], [], color="tab:red", lw=2,
                      label=rf"evidence, $\alpha$ = {s['alpha']:.3g} "
                            f"(test error {s['evidence_test_error']:.3f})")]
    handles += ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1),
              ncol=2, fontsize=8)
    _box(ax)
    ax.set_ylabel("$x_2$")
    ax.set_title(f"Decision boundaries, {HIDDEN} tanh hidden units, N = {N_TRAIN} "
                 f"(cf. PRML Fig. 5.22)", fontsize=10)
    return ctx.savefig(fig, "bayes_classification_boundaries")


def _box(ax) -> None:
    ax.set_xlim(*BOX[0])
    ax.set_ylim(*BOX[1])
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")


def _plot_moderation(plt, results, ctx) -> str:
    s, d = results["summary"], results["data"]
    levels = [0.1, 0.3, 0.5, 0.7, 0.9]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.6), sharey=True)
    for ax, P, title in ((axes[0], d["P"]["map"], r"point estimate $\sigma(a(x, w_{MAP}))$"),
                         (axes[1], d["P"]["mod"], r"moderated $\sigma(\kappa(s^2)\,a_{MAP})$")):
        _scatter(ax, d["X"], d["t"])
        cs = ax.contour(d["G1"], d["G2"], P.reshape(d["G1"].shape), levels=levels,
                        colors=["tab:blue", "tab:blue", "tab:green", "tab:red", "tab:red"],
                        linewidths=[1, 1, 2.2, 1, 1])
        ax.clabel(cs, fmt="%.1f", fontsize=8)
        _box(ax)
        ax.set_title(title, fontsize=11)
    axes[0].set_ylabel("$x_2$")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"Contours y = 0.1, 0.3, 0.5, 0.7, 0.9 of the evidence network "
                 rf"($\alpha$ = {s['alpha']:.3g}, $\gamma$ = {s['gamma']:.1f} of "
                 f"{s['n_weights']}) (cf. PRML Fig. 5.23)\nmean |y - 0.5| where no "
                 f"training point is within {FAR}: "
                 f"{s['mean_abs_p_minus_half_far_point']:.3f} (point estimate), "
                 f"{s['mean_abs_p_minus_half_far_moderated']:.3f} (moderated)",
                 fontsize=10)
    fig.tight_layout()
    return ctx.savefig(fig, "bayes_classification_moderation")


def notes(results) -> str:
    """The markdown prose, every finding formatted from ``results``."""
    return "\n\n".join([_notes_setup(results), _notes_training(results),
                        _notes_moderation(results)])


def _notes_setup(results) -> str:
    cfg = results["settings"]
    return (
        "Data: the two-class mixture of Netlab's demmlp2 (class 0: N((0, -0.1), "
        "0.625 I), prior 0.5; class 1: N((1, 1), 0.2 I) and N((1, -1), 0.2 I), "
        f"prior 0.25 each), {N_TRAIN} training points (seed {TRAIN_SEED}) and "
        f"{cfg['n_test']} test points (seed {TEST_SEED}). The Bayes-optimal boundary and "
        "the Bayes error (on the same test points) use the true densities. "
        f"Network 2-{HIDDEN}-1, tanh hidden, logistic output, cross-entropy.")


def _notes_training(results) -> str:
    s, cfg = results["summary"], results["settings"]
    alpha, lam0 = s["alpha"], s["smallest_hessian_eigenvalue_at_w_map"]
    stop = ("on the iteration limit" if s["ml_iterations"] >= cfg["ml_maxiter"] else
            f"after {s['ml_iterations']} iterations on a flat gradient")
    return (
        "Maximum likelihood (alpha = 0): sopt's damped Newton method "
        "(`minimize(method='newton')`: exact Hessian, Cholesky with added "
        "damping where it is indefinite, Armijo line search), "
        f"{cfg['ml_restarts']} initial weight vector(s), lowest training "
        f"cross-entropy kept, at most {cfg['ml_maxiter']} iterations; without a "
        f"prior the weights grow to |w| = {s['ml_weight_norm']:.3g} "
        f"({s['ml_weight_norm'] / s['evidence_weight_norm']:.1f} times the "
        f"evidence network's), and the run kept stopped {stop}. "
        "Evidence: `sopt.bayes.evidence_fit(loss='binary_ce', "
        "hessian='exact', clip_negative=True, method='newton')` from alpha = 0.01 and "
        f"{cfg['evidence_restarts']} initial weight vector(s), highest log evidence kept "
        "(PRML starts from alpha = 0; evidence_fit needs alpha > 0). At the final "
        f"w_MAP the data Hessian has {s['negative_hessian_eigenvalues_at_w_map']} "
        f"negative eigenvalue(s), the smallest {lam0:.3g} against alpha = {alpha:.3g}, "
        f"so the regularised Hessian is "
        + ("not positive definite" if alpha + lam0 <= 0 else "positive definite"
           + (" but nearly singular" if alpha + lam0 < 0.1 * alpha else ""))
        + f" (alpha + lambda_min = {alpha + lam0:.3g}). "
        + _notes_units(s) + _notes_clipping(results))


def _notes_units(s) -> str:
    dead, dup = (s["dead_hidden_units_at_w_map"], s["duplicated_hidden_units_at_w_map"])
    if not (dead or dup):
        return "No hidden unit of w_MAP is dead or a copy of another. "
    return (
        f"In w_MAP, {dup} hidden unit(s) duplicate another (equal or sign-flipped "
        f"input weights and bias) and {dead} unit(s) are dead (every weight near "
        "0): weight decay lets copies share one unit's job at a smaller |w|^2, and "
        "the data term curves down along the directions that pull copies apart "
        "and at a dead unit (a saddle in its input and output weights). ")


def _notes_clipping(results) -> str:
    s = results["summary"]
    clipped = ("converges" if s["evidence_converged"] else "does not converge")
    text = ("Without clipping, gamma = sum lambda / (alpha + lambda) picks up large "
            "negative terms as alpha + lambda nears 0. Clipped, the exact Hessian "
            f"{clipped} in {s['evidence_cycles']} cycles. ")
    rows = results["tables"].get("Curvature used by evidence_fit")
    if not rows:
        return text + ("The full run's table compares exact with and without "
                       "clipping and the Gauss-Newton matrix.")
    return text + "Table: " + "; ".join(
        f"hessian={r['hessian']}, clip_negative={r['clip_negative']}: {r['outcome']}"
        for r in rows) + "."


def _notes_moderation(results) -> str:
    s = results["summary"]
    far = s["mean_abs_p_minus_half_far_moderated"] / s["mean_abs_p_minus_half_far_point"]
    near = s["mean_abs_p_minus_half_near_moderated"] / s["mean_abs_p_minus_half_near_point"]
    return (
        "Moderation: on a grid over the plotted box, the mean |y - 0.5| over the "
        f"points with no training point within {FAR} ('far') and within 0.25 "
        "('near'), for the point estimate sigma(a_MAP) and the moderated output "
        "(post.predict_proba, probit approximation). The moderated mean is "
        f"{far:.2f} times the point estimate's far from the data and {near:.2f} "
        "times near it (" + ("more" if far < near else "less") + " shrinkage far "
        "away). Moderation scales "
        "the logit by kappa <= 1, so y should never move away from 0.5 nor cross "
        f"it: it does not on {100 * s['moderated_never_further_from_half']:.1f}% "
        f"and {100 * s['moderated_same_side_of_half']:.1f}% of the grid points.")


def run(ctx) -> dict:
    return _common.compose(ctx, compute, plot, notes)
