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


def run(ctx) -> dict:
    plt = _common.pyplot()
    from matplotlib.lines import Line2D
    quick = ctx.quick
    n_test = 20000 if quick else 100000
    ml_seeds = range(1 if quick else 4)
    ev_seeds = range(1 if quick else 3)
    ml_maxiter = 300 if quick else 500

    X, t = sample_mixture(N_TRAIN, TRAIN_SEED)
    Xt, tt = sample_mixture(n_test, TEST_SEED)
    T = t[:, None]
    net = mlp([2, HIDDEN, 1], hidden="tanh", output="logistic")
    bayes_err = _error(true_posterior(Xt), tt)

    # ------------------------------------------------ maximum likelihood
    ml = None
    for seed in ml_seeds:
        obj = Objective(net, X, T, loss="binary_ce", alpha=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = minimize(obj, net.init_weights(seed=seed), method=METHOD,
                           options={"maxiter": ml_maxiter, "gtol": 1e-6})
        ctx.log(f"ML seed {seed}: E = {res.fun:.4f} after {res.nit} {METHOD} "
                f"iterations, |w| = {np.linalg.norm(res.x):.3g}")
        if ml is None or res.fun < ml.fun:
            ml = res
    w_ml = ml.x

    # ------------------------------------------------------- evidence
    ev = None
    for seed in ev_seeds:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            r = evidence_fit(net, X, T, loss="binary_ce", w0=net.init_weights(seed=seed),
                             alpha=0.01, hessian="exact", clip_negative=True,
                             max_cycles=50, method=METHOD)
        ctx.log(f"evidence seed {seed}: alpha {r.alpha[0]:.4g} gamma {r.gamma:.3f} "
                f"log evidence {r.log_evidence:.4f} ({r.n_cycles} cycles, "
                f"{'converged' if r.converged else 'not converged'})")
        if ev is None or r.log_evidence > ev.log_evidence:
            ev = r
    post, w_map = ev.posterior, ev.w
    alpha = float(ev.alpha[0])
    H = Objective(net, X, T, loss="binary_ce").hessian(w_map, method="exact")
    lam = np.linalg.eigvalsh(H)
    n_negative = int(np.sum(lam < -1e-10 * max(1.0, lam[-1])))

    # ----------------- the curvature choices of evidence_fit (full run only)
    variant_rows = []
    if not quick:
        for hessian, clip in (("exact", True), ("exact", False), ("gauss_newton", False)):
            row = {"hessian": hessian, "clip_negative": clip}
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore", RuntimeWarning)
                    r = (ev if (hessian, clip) == ("exact", True) else
                         evidence_fit(net, X, T, loss="binary_ce",
                                      w0=net.init_weights(seed=0), alpha=0.01,
                                      hessian=hessian, clip_negative=clip,
                                      max_cycles=50, method=METHOD))
            except ValueError as exc:
                row.update(alpha=float("nan"), gamma=float("nan"),
                           log_evidence=float("nan"), cycles=0, test_error=float("nan"),
                           outcome="ValueError: " + str(exc).split(". ")[0])
            else:
                row.update(alpha=float(r.alpha[0]), gamma=r.gamma,
                           log_evidence=r.log_evidence, cycles=r.n_cycles,
                           test_error=_error(net.forward(r.w, Xt)[:, 0], tt),
                           outcome="converged" if r.converged else "not converged")
            ctx.log(f"evidence with hessian={hessian}, clip_negative={clip}: "
                    f"{row['outcome']}")
            variant_rows.append(row)

    # ------------------------------------------------------ test numbers
    p_ml = net.forward(w_ml, Xt)[:, 0]
    p_map = net.forward(w_map, Xt)[:, 0]
    p_mod = post.predict_proba(Xt)[:, 0]
    ctx.log(f"test errors: ML {_error(p_ml, tt):.4f}, evidence {_error(p_map, tt):.4f}, "
            f"Bayes {bayes_err:.4f} ({n_test} test points)")

    # ------------------------------------------------- grid for the plots
    n_grid = 121 if quick else 201
    g1 = np.linspace(*BOX[0], n_grid)
    g2 = np.linspace(*BOX[1], n_grid)
    G1, G2 = np.meshgrid(g1, g2)
    G = np.column_stack([G1.ravel(), G2.ravel()])
    shape = G1.shape
    P_map = net.forward(w_map, G)[:, 0]
    P_mod = post.predict_proba(G)[:, 0]
    P_true = true_posterior(G)
    dist = _nearest_distance(G, X)
    far, near = dist > FAR, dist < 0.25
    conf_map_far = float(np.mean(np.abs(P_map[far] - 0.5)))
    conf_mod_far = float(np.mean(np.abs(P_mod[far] - 0.5)))
    conf_map_near = float(np.mean(np.abs(P_map[near] - 0.5)))
    conf_mod_near = float(np.mean(np.abs(P_mod[near] - 0.5)))
    # moderation scales the logit by kappa <= 1: never away from 0.5, and the
    # y = 0.5 boundary stays where it is
    never_sharper = float(np.mean(np.abs(P_mod - 0.5) <= np.abs(P_map - 0.5) + 1e-12))
    same_side = float(np.mean((P_mod > 0.5) == (P_map > 0.5)))

    # ------------------------------------------- figure 1 (PRML Fig. 5.22)
    # the ML net is nearly a step function (|w| large): a finer grid for it,
    # and its class-1 region shaded so that thin slivers read as regions
    f1, f2 = np.meshgrid(np.linspace(*BOX[0], 2 * n_grid), np.linspace(*BOX[1], 2 * n_grid))
    P_ml_fine = net.forward(w_ml, np.column_stack([f1.ravel(), f2.ravel()]))
    fig, ax = plt.subplots(figsize=(7, 7.2))
    ax.contourf(f1, f2, P_ml_fine.reshape(f1.shape), levels=[0.5, 1.0],
                colors=["0.85"])
    ax.contour(f1, f2, P_ml_fine.reshape(f1.shape), levels=[0.5], colors=["black"],
               linewidths=1.0)
    _scatter(ax, X, t)
    for P, color, lw in ((P_true, "tab:green", 2.5), (P_map, "tab:red", 2.0)):
        ax.contour(G1, G2, P.reshape(shape), levels=[0.5], colors=[color],
                   linewidths=lw)
    handles = [Line2D([], [], color="tab:green", lw=2.5,
                      label=f"Bayes optimal (test error {bayes_err:.3f})"),
               Line2D([], [], color="black", lw=1.0, marker="s", ms=9,
                      mfc="0.85", mec="0.85",
                      label=rf"maximum likelihood, $\alpha$ = 0 "
                            f"(test error {_error(p_ml, tt):.3f}; grey: class 1)"),
               Line2D([], [], color="tab:red", lw=2,
                      label=rf"evidence, $\alpha$ = {alpha:.3g} "
                            f"(test error {_error(p_map, tt):.3f})")]
    handles += ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1),
              ncol=2, fontsize=8)
    ax.set_xlim(*BOX[0])
    ax.set_ylim(*BOX[1])
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(f"Decision boundaries, {HIDDEN} tanh hidden units, N = {N_TRAIN} "
                 f"(cf. PRML Fig. 5.22)", fontsize=10)
    figures = [ctx.savefig(fig, "bayes_classification_boundaries")]

    # ------------------------------------------- figure 2 (PRML Fig. 5.23)
    levels = [0.1, 0.3, 0.5, 0.7, 0.9]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.6), sharey=True)
    for ax, P, title in ((axes[0], P_map, r"point estimate $\sigma(a(x, w_{MAP}))$"),
                         (axes[1], P_mod, r"moderated $\sigma(\kappa(s^2)\,a_{MAP})$")):
        _scatter(ax, X, t)
        cs = ax.contour(G1, G2, P.reshape(shape), levels=levels,
                        colors=["tab:blue", "tab:blue", "tab:green", "tab:red", "tab:red"],
                        linewidths=[1, 1, 2.2, 1, 1])
        ax.clabel(cs, fmt="%.1f", fontsize=8)
        ax.set_xlim(*BOX[0])
        ax.set_ylim(*BOX[1])
        ax.set_aspect("equal")
        ax.set_xlabel("$x_1$")
        ax.set_title(title, fontsize=11)
    axes[0].set_ylabel("$x_2$")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"Contours y = 0.1, 0.3, 0.5, 0.7, 0.9 of the evidence network "
                 rf"($\alpha$ = {alpha:.3g}, $\gamma$ = {ev.gamma:.1f} of "
                 f"{net.n_weights}) (cf. PRML Fig. 5.23)\nmean |y - 0.5| where no "
                 f"training point is within {FAR}: "
                 f"{conf_map_far:.3f} (point estimate), {conf_mod_far:.3f} (moderated)",
                 fontsize=10)
    fig.tight_layout()
    figures.append(ctx.savefig(fig, "bayes_classification_moderation"))

    summary = {
        "n_train": N_TRAIN, "n_test": n_test, "hidden_units": HIDDEN,
        "n_weights": net.n_weights,
        "bayes_error": bayes_err,
        "ml_test_error": _error(p_ml, tt),
        "evidence_test_error": _error(p_map, tt),
        "moderated_test_error": _error(p_mod, tt),
        "ml_train_error": _error(net.forward(w_ml, X)[:, 0], t),
        "evidence_train_error": _error(net.forward(w_map, X)[:, 0], t),
        "ml_test_nll": _nll(p_ml, tt), "evidence_test_nll": _nll(p_map, tt),
        "moderated_test_nll": _nll(p_mod, tt),
        "ml_weight_norm": float(np.linalg.norm(w_ml)),
        "ml_iterations": int(ml.nit), "ml_converged": int(bool(ml.success)),
        "alpha": alpha, "gamma": ev.gamma, "log_evidence": ev.log_evidence,
        "evidence_cycles": ev.n_cycles, "evidence_converged": int(ev.converged),
        "evidence_weight_norm": float(np.linalg.norm(w_map)),
        "negative_hessian_eigenvalues_at_w_map": n_negative,
        "smallest_hessian_eigenvalue_at_w_map": float(lam[0]),
        "mean_abs_p_minus_half_far_point": conf_map_far,
        "mean_abs_p_minus_half_far_moderated": conf_mod_far,
        "mean_abs_p_minus_half_near_point": conf_map_near,
        "mean_abs_p_minus_half_near_moderated": conf_mod_near,
        "far_grid_fraction": float(np.mean(far)),
        "moderated_never_further_from_half": never_sharper,
        "moderated_same_side_of_half": same_side,
    }
    history_rows = [{"cycle": i + 1, "alpha": float(a[0]), "gamma": float(g),
                     "log_evidence": float(e)}
                    for i, (a, g, e) in enumerate(zip(ev.history["alpha"],
                                                       ev.history["gamma"],
                                                       ev.history["log_evidence"]))]
    notes = (
        "Data: the two-class mixture of Netlab's demmlp2 (class 0: N((0, -0.1), "
        "0.625 I), prior 0.5; class 1: N((1, 1), 0.2 I) and N((1, -1), 0.2 I), "
        f"prior 0.25 each), {N_TRAIN} training points (seed {TRAIN_SEED}) and "
        f"{n_test} test points (seed {TEST_SEED}). The Bayes-optimal boundary and "
        "the Bayes error (on the same test points) use the true densities. "
        f"Network 2-{HIDDEN}-1, tanh hidden, logistic output, cross-entropy.\n\n"
        "Maximum likelihood (alpha = 0): sopt's damped Newton method "
        "(`minimize(method='newton')`: exact Hessian, Cholesky with added "
        "damping where it is indefinite, Armijo line search), "
        f"{len(ml_seeds)} initial weight vector(s), lowest training cross-entropy kept, at "
        f"most {ml_maxiter} iterations; without a prior the weights keep growing "
        f"(|w| = {np.linalg.norm(w_ml):.3g} at the end), so it stops on the "
        "iteration limit or on a flat gradient rather than at a minimum. "
        "Evidence: `sopt.bayes.evidence_fit(loss='binary_ce', "
        "hessian='exact', clip_negative=True, method='newton')` from alpha = 0.01 and "
        f"{len(ev_seeds)} initial weight vector(s), highest log evidence kept "
        "(PRML starts from alpha = 0; evidence_fit needs alpha > 0, and starting "
        "from the ML weights led to the same alpha in trials). At the final "
        f"w_MAP the data Hessian has {n_negative} negative eigenvalue(s), the "
        f"smallest {lam[0]:.3g} against alpha = {alpha:.3g} (the regularised "
        "Hessian is positive definite, as at any minimum, but nearly singular). "
        "The reason, seen in the weights of this run: weight decay makes hidden "
        "units duplicate one another (identical or sign-flipped copies share one "
        "unit's job at a smaller |w|^2) and leaves a unit dead at w = 0; the data "
        "term curves down along the directions that pull copies apart and at the "
        "dead unit (a saddle in its input and output weights). Without "
        "clipping the loop breaks down: gamma = sum lambda / (alpha + lambda) "
        "picks up large negative terms as alpha + lambda nears 0, and at a "
        "not fully trained w_MAP alpha I + H stops being positive definite. "
        "Clipped, the exact Hessian gives a converged, stable result, so it is "
        "used here"
        + (" (the full run's table compares exact with and without clipping "
           "and the Gauss-Newton matrix)." if quick else
           " (table: exact with and without clipping, and Gauss-Newton).")
        + "\n\n"
        "Moderation: on a grid over the plotted box, the mean |y - 0.5| over the "
        f"points with no training point within {FAR} ('far') and within 0.25 "
        "('near'), for the point estimate sigma(a_MAP) and the moderated output "
        "(post.predict_proba, probit approximation). Moderation multiplies the "
        "logit by kappa <= 1, so it never moves y away from 0.5 and leaves the "
        "y = 0.5 contour in place (summary: fraction of grid points where that "
        "holds)."
    )
    return {"summary": summary,
            "tables": {"Evidence cycles": history_rows,
                       **({"Curvature used by evidence_fit": variant_rows}
                          if variant_rows else {})},
            "figures": figures, "notes": notes}
