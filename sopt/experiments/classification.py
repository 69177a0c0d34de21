"""Classification with two-layer networks (PRML Figure 5.4), and the softmax
and multi-label cases, on synthetic data whose densities are known, so every
network is compared with the Bayes-optimal classifier.

(a) Two classes, PRML Figure 5.4. Class-conditional densities are Gaussian
    mixtures with one shared isotropic covariance Sigma = 0.3 I::

        p(x|C1) = 1/2 N(x | (-1.3, 0.9), Sigma) + 1/2 N(x | (1.2, 1.2), Sigma)
        p(x|C2) = 1/2 N(x | (-0.3, -0.6), Sigma) + 1/2 N(x | (0.5, 0.0), Sigma)
        p(C1) = p(C2) = 1/2

    (C1 lies on both sides above C2, so the Bayes boundary is a bent curve,
    as in the book). N = 200 training points (seed 1): a 2-2-1 network with
    tanh hidden units and a logistic output y = P(C1|x), target t = 1 for C1,
    cross-entropy error ``binary_ce``.
(b) Three classes, softmax outputs. Gaussian mixtures with Sigma = 0.3 I::

        p(x|C1) = 1/2 N((-1.5, 0.0)) + 1/2 N((0.0, 1.5))
        p(x|C2) = 1/2 N((0.0, -1.4)) + 1/2 N((1.4, 0.2))
        p(x|C3) = 1/2 N((-0.1, 0.1)) + 1/2 N((1.5, 1.6))
        p(C1), p(C2), p(C3) = 0.4, 0.3, 0.3

    (C1 and C2 form arcs around the central component of C3, whose second
    component sits in the upper-right corner.)
    N = 300 (seed 11); a 2-4-3 network (tanh, softmax), ``softmax_ce`` with
    integer labels.
(c) K = 2 independent binary targets (multi-label). x uniform on the square
    [-2, 2]^2; t1 = [x in A] with A = {x2 > 0.6 x1^2 - 0.8} (above a
    parabola), t2 = [x in B] with B the disc |x - (0.4, -0.3)| < 1.1; each
    label is then flipped independently with probability 0.1. The
    Bayes-optimal rule for label k is [x in region k], with error exactly
    0.1 per label. N = 800 (seed 21); a 2-8-2 network (tanh, logistic
    outputs), ``binary_ce`` on the two targets.

Every network is trained by damped Newton on the exact Hessian (gtol 1e-8)
from several seeded initialisations (lowest E kept), with a small weight
decay ``ALPHA`` = 0.01 (see notes). Test errors are measured on a fresh test
set of 20000 points (seed 2, 12, 22), next to the error of the Bayes-optimal
rule on the same test set and the Bayes error itself, E_x[1 - max_k P(C_k|x)]
by Monte Carlo over 2 x 10^5 fresh points.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from .. import Objective, mlp
from ..optimize import ConvergenceWarning, minimize
from . import _common

NAME = "classification"
TITLE = "Classification (PRML Figure 5.4), softmax and multi-label cases"

ALPHA = 0.01           # weight decay alpha/2 |w|^2
GTOL = 1e-8
MAXITER = 1000
METHOD = "newton"
N_TEST = 20_000
N_BAYES = 200_000      # Monte Carlo points for the Bayes error E[1 - max posterior]
RESTARTS = {"two_class": 10, "softmax": 8, "multilabel": 8}
RESTARTS_QUICK = {"two_class": 3, "softmax": 3, "multilabel": 3}
LABEL_NOISE = 0.1      # flip probability of each multi-label target


# ------------------------------------------------------------ known densities
@dataclass(frozen=True)
class GaussianMixture:
    """sum_j weights[j] N(x | means[j], covs[j]) in 2-D."""

    weights: tuple
    means: tuple
    covs: tuple

    def pdf(self, X: np.ndarray) -> np.ndarray:
        """p(x), shape (N,); the 2 x 2 quadratic forms written out (a
        matrix product on (N, 2) arrays is slower than these few passes)."""
        p = np.zeros(len(X))
        for wt, mu, S in zip(self.weights, self.means, self.covs):
            S = np.asarray(S, float)
            (a, b), (_, c) = np.linalg.inv(S)
            d0, d1 = X[:, 0] - mu[0], X[:, 1] - mu[1]
            q = a * d0 * d0 + 2 * b * d0 * d1 + c * d1 * d1
            p += wt / (2 * np.pi * np.sqrt(np.linalg.det(S))) * np.exp(-0.5 * q)
        return p

    def sample(self, rng, n: int) -> np.ndarray:
        """n draws: a component j with probability weights[j], then
        x = mean_j + L_j u with L_j L_j^T = cov_j and u ~ N(0, I)."""
        comp = rng.choice(len(self.weights), size=n, p=self.weights)
        u = rng.standard_normal((n, 2))
        L = np.array([np.linalg.cholesky(np.asarray(S, float)) for S in self.covs])
        mu = np.asarray(self.means, float)
        Lc = L[comp]
        return mu[comp] + np.column_stack([Lc[:, 0, 0] * u[:, 0],
                                           Lc[:, 1, 0] * u[:, 0] + Lc[:, 1, 1] * u[:, 1]])


@dataclass(frozen=True)
class MixtureClasses:
    """K classes with priors p(C_k) and class-conditional densities p(x|C_k)."""

    classes: tuple
    priors: tuple

    def sample(self, seed: int, n: int):
        """(X, labels 0..K-1) with labels drawn from the priors."""
        rng = np.random.default_rng(seed)
        labels = rng.choice(len(self.priors), size=n, p=self.priors)
        X = np.empty((n, 2))
        for k, density in enumerate(self.classes):
            rows = np.flatnonzero(labels == k)
            X[rows] = density.sample(rng, len(rows))
        return X, labels

    def posterior(self, X) -> np.ndarray:
        """P(C_k | x), shape (N, K)."""
        P = np.stack([pr * c.pdf(X) for c, pr in zip(self.classes, self.priors)], 1)
        return P / np.maximum(P.sum(axis=1, keepdims=True), 1e-300)

    def bayes_error(self, seed: int, n: int) -> tuple[float, float]:
        """E_x[1 - max_k P(C_k|x)] by Monte Carlo over n fresh points, and its
        standard error (about 3e-4 for n = 2e5 here)."""
        X, _ = self.sample(seed, n)
        v = 1.0 - self.posterior(X).max(axis=1)
        return float(v.mean()), float(v.std() / np.sqrt(n))


_S = ((0.3, 0.0), (0.0, 0.3))
TWO_CLASS = MixtureClasses(
    classes=(GaussianMixture((0.5, 0.5), ((-1.3, 0.9), (1.2, 1.2)), (_S, _S)),
             GaussianMixture((0.5, 0.5), ((-0.3, -0.6), (0.5, 0.0)), (_S, _S))),
    priors=(0.5, 0.5))
THREE_CLASS = MixtureClasses(
    classes=(GaussianMixture((0.5, 0.5), ((-1.5, 0.0), (0.0, 1.5)), (_S, _S)),
             GaussianMixture((0.5, 0.5), ((0.0, -1.4), (1.4, 0.2)), (_S, _S)),
             GaussianMixture((0.5, 0.5), ((-0.1, 0.1), (1.5, 1.6)), (_S, _S))),
    priors=(0.4, 0.3, 0.3))


def region_a(X) -> np.ndarray:
    """Multi-label region A: above the parabola x2 = 0.6 x1^2 - 0.8."""
    return X[:, 1] > 0.6 * X[:, 0] ** 2 - 0.8


def region_b(X) -> np.ndarray:
    """Multi-label region B: the disc |x - (0.4, -0.3)| < 1.1."""
    return (X[:, 0] - 0.4) ** 2 + (X[:, 1] + 0.3) ** 2 < 1.1 ** 2


def multilabel_data(seed: int, n: int):
    """(X, noisy targets T (n, 2), noise-free targets) for case (c)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2.0, 2.0, (n, 2))
    clean = np.stack([region_a(X), region_b(X)], axis=1).astype(float)
    flip = rng.random((n, 2)) < LABEL_NOISE
    return X, np.where(flip, 1.0 - clean, clean), clean


# ------------------------------------------------------------------ training
class StallStop:
    """minimize callback: stop (status 2) once E has not decreased for
    ``patience`` iterations.

    Works around sopt.optimize's Newton at a minimum where the remaining
    decrease of E is below its round-off: the Armijo search then accepts
    only steps so short that w no longer changes, and the loop would spend
    all of maxiter there (|g|_inf stays ~1e-8 at a well-conditioned H).
    """

    def __init__(self, patience: int = 10):
        self.patience, self.best, self.flat, self.stalled = patience, np.inf, 0, False

    def __call__(self, res) -> bool:
        if res.fun < self.best:
            self.best, self.flat = res.fun, 0
        else:
            self.flat += 1
        self.stalled = self.flat >= self.patience
        return self.stalled


def train(net, X, T, loss: str, restarts: int, alpha: float = ALPHA):
    """Newton from init_weights(seed=s), s = 0..restarts-1; (best, all)."""
    obj = Objective(net, X, T, loss=loss, alpha=alpha)
    results = []
    for s in range(restarts):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            stop = StallStop()
            res = minimize(obj, net.init_weights(seed=s), method=METHOD,
                           options={"gtol": GTOL, "maxiter": MAXITER},
                           callback=stop)
            res.stalled = stop.stalled
            results.append(res)
    return min(results, key=lambda r: r.fun), results


def _fit_row(case, net, n_train, best, results, seconds) -> dict:
    at_best = sum(r.fun <= best.fun + 1e-6 * max(1.0, abs(best.fun)) for r in results)
    return {"case": case, "network": _arch(net), "W": net.n_weights,
            "N_train": n_train, "E": float(best.fun),
            "grad_inf": float(np.max(np.abs(best.jac))), "iterations": int(best.nit),
            "converged": bool(best.success),
            "restarts_converged": sum(r.success for r in results),
            "restarts_stalled": sum(r.stalled for r in results),
            "restarts_at_best_E": f"{at_best}/{len(results)}",
            "seconds": round(seconds, 2)}


def _arch(net) -> str:
    sizes = [net.n_inputs] + [layer.size for layer in net.layers]
    return "-".join(map(str, sizes))


# --------------------------------------------------------------------- cases
N_TWO, N_THREE, N_MULTI = 200, 300, 800


def two_class(ctx, restarts: int) -> dict:
    X, lab = TWO_CLASS.sample(1, N_TWO)
    Xt, labt = TWO_CLASS.sample(2, N_TEST)
    t = (lab == 0).astype(float)              # t = 1 for C1
    net = mlp([2, 2, 1], hidden="tanh", output="logistic")
    t0 = time.perf_counter()
    best, results = train(net, X, t, "binary_ce", restarts)
    seconds = time.perf_counter() - t0
    predict = lambda Z: np.where(net.forward(best.x, Z)[:, 0] > 0.5, 0, 1)
    bayes_rule = lambda Z: TWO_CLASS.posterior(Z).argmax(axis=1)
    out = {"train_error": float(np.mean(predict(X) != lab)),
           "test_error": float(np.mean(predict(Xt) != labt)),
           "bayes_error_test": float(np.mean(bayes_rule(Xt) != labt)),
           **dict(zip(("bayes_error", "bayes_error_se"),
                      TWO_CLASS.bayes_error(3, N_BAYES))),
           "agreement_with_bayes_test": float(np.mean(predict(Xt) == bayes_rule(Xt)))}
    ctx.log(f"(a) two classes: test error {out['test_error']:.4f}, Bayes "
            f"{out['bayes_error_test']:.4f} on the same test set ({seconds:.1f} s)")
    out.update(_without_decay(net, X, t, Xt, labt))
    out["row"] = _fit_row("(a) two classes", net, N_TWO, best, results, seconds)
    out["data"] = (net, best.x, X, lab)
    return out


def _without_decay(net, X, t, Xt, labt) -> dict:
    """Case (a) with alpha = 0, from init_weights(seed=0): what the weight
    decay prevents (the weights grow until the iteration limit)."""
    res, _ = train(net, X, t, "binary_ce", 1, alpha=0.0)
    p = np.where(net.forward(res.x, Xt)[:, 0] > 0.5, 0, 1)
    return {"alpha0_iterations": int(res.nit), "alpha0_converged": int(bool(res.success)),
            "alpha0_weight_norm": float(np.linalg.norm(res.x)),
            "alpha0_test_error": float(np.mean(p != labt))}


def softmax(ctx, restarts: int) -> dict:
    X, lab = THREE_CLASS.sample(11, N_THREE)
    Xt, labt = THREE_CLASS.sample(12, N_TEST)
    net = mlp([2, 4, 3], hidden="tanh", output="softmax")
    t0 = time.perf_counter()
    best, results = train(net, X, lab, "softmax_ce", restarts)
    seconds = time.perf_counter() - t0
    predict = lambda Z: net.forward(best.x, Z).argmax(axis=1)
    out = {"train_error": float(np.mean(predict(X) != lab)),
           "test_error": float(np.mean(predict(Xt) != labt)),
           "bayes_error_test": float(np.mean(
               THREE_CLASS.posterior(Xt).argmax(axis=1) != labt)),
           **dict(zip(("bayes_error", "bayes_error_se"),
                      THREE_CLASS.bayes_error(13, N_BAYES)))}
    ctx.log(f"(b) softmax, 3 classes: test error {out['test_error']:.4f}, Bayes "
            f"{out['bayes_error_test']:.4f} on the same test set ({seconds:.1f} s)")
    out["row"] = _fit_row("(b) softmax, K = 3", net, N_THREE, best, results, seconds)
    out["data"] = (net, best.x, X, lab)
    return out


def multilabel(ctx, restarts: int) -> dict:
    X, T, _ = multilabel_data(21, N_MULTI)
    Xt, Tt, clean_t = multilabel_data(22, N_TEST)
    net = mlp([2, 8, 2], hidden="tanh", output="logistic")
    t0 = time.perf_counter()
    best, results = train(net, X, T, "binary_ce", restarts)
    seconds = time.perf_counter() - t0
    predict = lambda Z: (net.forward(best.x, Z) > 0.5).astype(float)
    train_err = np.mean(predict(X) != T, axis=0)
    test_err = np.mean(predict(Xt) != Tt, axis=0)
    bayes_test = np.mean(clean_t != Tt, axis=0)      # Bayes rule: t_k = [x in region k]
    out = {}
    for k in range(2):
        out[f"train_error_{k + 1}"] = float(train_err[k])
        out[f"test_error_{k + 1}"] = float(test_err[k])
        out[f"bayes_error_test_{k + 1}"] = float(bayes_test[k])
    out["bayes_error"] = LABEL_NOISE
    out["test_error_any"] = float(np.mean(np.any(predict(Xt) != Tt, axis=1)))
    ctx.log(f"(c) multi-label: test errors {test_err[0]:.4f}, {test_err[1]:.4f}; "
            f"Bayes {bayes_test[0]:.4f}, {bayes_test[1]:.4f} ({seconds:.1f} s)")
    out["row"] = _fit_row("(c) multi-label, K = 2", net, N_MULTI, best, results, seconds)
    out["data"] = (net, best.x, X, T)
    return out


def compute(ctx) -> dict:
    """Train and test the three cases: the results dict ("summary",
    "tables"; "data": networks, weights and training data for the plots)."""
    restarts = RESTARTS_QUICK if ctx.quick else RESTARTS
    cases = {"two_class": two_class(ctx, restarts["two_class"]),
             "softmax": softmax(ctx, restarts["softmax"]),
             "multilabel": multilabel(ctx, restarts["multilabel"])}
    summary = {f"{prefix}_{key}": value for prefix, res in cases.items()
               for key, value in res.items() if key not in ("row", "data")}
    a, b, c = cases.values()
    errors = [
        {"case": "(a) two classes", "train_error": a["train_error"],
         "test_error": a["test_error"], "bayes_rule_on_test": a["bayes_error_test"],
         "bayes_error": a["bayes_error"]},
        {"case": "(b) softmax, K = 3", "train_error": b["train_error"],
         "test_error": b["test_error"], "bayes_rule_on_test": b["bayes_error_test"],
         "bayes_error": b["bayes_error"]},
    ] + [{"case": f"(c) multi-label, label {k}", "train_error": c[f"train_error_{k}"],
          "test_error": c[f"test_error_{k}"],
          "bayes_rule_on_test": c[f"bayes_error_test_{k}"],
          "bayes_error": c["bayes_error"]} for k in (1, 2)]
    return {"summary": summary,
            "tables": {"Errors (fraction misclassified)": errors,
                       "Training": [a["row"], b["row"], c["row"]]},
            "settings": {"restarts": restarts},
            "data": {key: res["data"] for key, res in cases.items()}}


def plot(results, ctx) -> list[str]:
    """The decision boundaries of the three cases against the Bayes-optimal ones."""
    d = results["data"]
    return [_figure_two_class(ctx, *d["two_class"]), _figure_softmax(ctx, *d["softmax"]),
            _figure_multilabel(ctx, *d["multilabel"])]


def notes(results) -> str:
    """The markdown prose, every finding formatted from ``results``."""
    return " ".join([_notes_data(), _notes_training(results)])


def _notes_data() -> str:
    return (
        "All data are synthetic from known densities (the generator is in the "
        "module docstring of sopt/experiments/classification.py), so each "
        "network is compared with the Bayes-optimal classifier. "
        "(a) Two classes, each a mixture of two Gaussians with shared "
        "covariance 0.3 I: p(x|C1) = 1/2 N((-1.3, 0.9)) + 1/2 N((1.2, 1.2)), "
        "p(x|C2) = 1/2 N((-0.3, -0.6)) + 1/2 N((0.5, 0)), p(C1) = p(C2) = 1/2; "
        f"N = {N_TWO} training points; a 2-2-1 network with tanh hidden units "
        "and a logistic output (cross-entropy). PRML's Figure 5.4 uses "
        "logistic hidden units and draws their z = 0.5 contours; tanh units "
        "range over (-1, 1), so the figure draws their z = 0 contours "
        "instead (tanh(a) = 2 sigma(2a) - 1, so z = 0 is exactly where the "
        "equivalent logistic unit sigma(2a) is 0.5): the straight lines a_j = 0. "
        "The Bayes-optimal boundary p(x|C1)p(C1) = p(x|C2)p(C2) is drawn "
        "dashed from a contour of the true posterior on a grid. "
        "(b) Three classes, mixtures of two Gaussians each (covariance 0.3 I, "
        "means (-1.5, 0), (0, 1.5) for C1; (0, -1.4), (1.4, 0.2) for C2; "
        "(-0.1, 0.1), (1.5, 1.6) for C3; "
        f"priors 0.4, 0.3, 0.3), N = {N_THREE}, a 2-4-3 tanh network with "
        "softmax outputs trained on integer labels; far from the data (the "
        "figure's corners) its regions need not follow the Bayes boundaries, "
        "as no training point constrains them there. "
        "(c) Multi-label: x uniform on [-2, 2]^2, t1 = [x2 > 0.6 x1^2 - 0.8], "
        f"t2 = [|x - (0.4, -0.3)| < 1.1], each flipped with probability "
        f"{LABEL_NOISE:g}; N = {N_MULTI}, a 2-8-2 tanh network with two logistic "
        "outputs. The Bayes rule for each label is region membership, with "
        f"error exactly {LABEL_NOISE:g}.")


def _notes_training(results) -> str:
    s = results["summary"]
    stop = ("runs to the iteration limit" if s["two_class_alpha0_iterations"] >= MAXITER
            else f"stops after {s['two_class_alpha0_iterations']} iterations")
    se = max(s["two_class_bayes_error_se"], s["softmax_bayes_error_se"])
    return (
        "Training: damped Newton on the exact Hessian (gtol 1e-8) from seeded "
        "initialisations, lowest E kept, with weight decay alpha = "
        f"{ALPHA:g}: without it a tanh unit can saturate and its output weight "
        "cancel against the bias along a nearly flat direction; with alpha = 0 "
        f"the restart from seed 0 of (a) {stop} with |w| = "
        f"{s['two_class_alpha0_weight_norm']:.2g}, for a test error of "
        f"{s['two_class_alpha0_test_error']:.4f} instead of {s['two_class_test_error']:.4f}. "
        "The restart of lowest training E need not be the one of lowest test error. "
        "Data seeds: training 1, 11, 21; test 2, 12, 22; Bayes Monte Carlo 3, 13. "
        f"Test errors are on {N_TEST} fresh points, next to the error of the "
        "Bayes-optimal rule on the same points and the Bayes error "
        f"E[1 - max_k P(C_k|x)] (Monte Carlo over {N_BAYES} fresh points, standard "
        f"error at most {se:.1g}).")


# ------------------------------------------------------------------- figures
def _grid(xlim, ylim, n: int = 251):
    gx, gy = np.meshgrid(np.linspace(*xlim, n), np.linspace(*ylim, n))
    return gx, gy, np.column_stack([gx.ravel(), gy.ravel()])


def _proxy(**kw):
    from matplotlib.lines import Line2D
    return Line2D([], [], **kw)


def _figure_two_class(ctx, net, w, X, lab) -> str:
    plt = _common.pyplot()
    xlim, ylim = (-3.0, 3.0), (-2.5, 3.0)
    gx, gy, G = _grid(xlim, ylim)
    fp = net.propagate(w, G)
    fig, ax = plt.subplots(figsize=(7, 6.4))
    ax.scatter(*X[lab == 0].T, s=22, marker="o", facecolors="none",
               edgecolors="tab:red", linewidths=1.0)
    ax.scatter(*X[lab == 1].T, s=24, marker="x", color="tab:blue", linewidths=1.0)
    for j in range(2):
        ax.contour(gx, gy, fp.z[1][:, j].reshape(gx.shape), [0.0],
                   colors="tab:purple", linewidths=1.3, linestyles="dashdot")
    ax.contour(gx, gy, TWO_CLASS.posterior(G)[:, 0].reshape(gx.shape), [0.5],
               colors="tab:green", linewidths=2.0, linestyles="dashed")
    ax.contour(gx, gy, fp.y[:, 0].reshape(gx.shape), [0.5], colors="black",
               linewidths=2.0)
    handles = [
        _proxy(ls="", marker="o", mfc="none", mec="tab:red", label="class $C_1$ ($t = 1$)"),
        _proxy(ls="", marker="x", color="tab:blue", label="class $C_2$ ($t = 0$)"),
        _proxy(color="black", lw=2, label="network boundary $y = 0.5$"),
        _proxy(color="tab:green", lw=2, ls="--",
               label="Bayes-optimal boundary $P(C_1|x) = 0.5$"),
        _proxy(color="tab:purple", lw=1.3, ls="-.",
               label="hidden units: $z_j = \\tanh(a_j) = 0$"),
    ]
    title = (f"Two classes, 2-2-1 tanh network with logistic output "
             f"(N = {len(X)}; PRML Fig. 5.4)")
    return _finish_map(ctx, fig, ax, handles, xlim, ylim, title, f"{NAME}_two_class")


def _finish_map(ctx, fig, ax, handles, xlim, ylim, title: str, name: str) -> str:
    """Legend below, limits, labels, title and square axes of a map in the
    (x_1, x_2) plane; saves the figure."""
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.09),
              ncol=2, fontsize=8.5, frameon=False)
    ax.set(xlim=xlim, ylim=ylim, xlabel="$x_1$", ylabel="$x_2$")
    ax.set_title(title, fontsize=10)
    ax.set_aspect("equal")
    return ctx.savefig(fig, name)


_CLASS_COLORS = ("tab:red", "tab:blue", "tab:green")
_CLASS_MARKERS = ("o", "s", "^")


def _pair_boundaries(ax, gx, gy, P, **kw):
    """Lines where the two largest of the K scores P tie, pair by pair."""
    top = P.argmax(axis=1)
    K = P.shape[1]
    for i in range(K):
        for j in range(i + 1, K):
            d = np.ma.masked_where((top != i) & (top != j), P[:, i] - P[:, j])
            if d.count() and d.min() < 0 < d.max():
                ax.contour(gx, gy, d.reshape(gx.shape), [0.0], **kw)


def _figure_softmax(ctx, net, w, X, lab) -> str:
    from matplotlib.colors import ListedColormap
    xlim = ylim = (-3.2, 3.2)
    gx, gy, G = _grid(xlim, ylim)
    Y = net.forward(w, G)
    fig, ax = _common.pyplot().subplots(figsize=(7, 6.6))
    ax.pcolormesh(gx, gy, Y.argmax(axis=1).reshape(gx.shape),
                  cmap=ListedColormap(["#f6c9c4", "#c6d9f0", "#cbe8c5"]),
                  vmin=-0.5, vmax=2.5, shading="auto", rasterized=True)
    _pair_boundaries(ax, gx, gy, Y, colors="black", linewidths=1.8)
    _pair_boundaries(ax, gx, gy, THREE_CLASS.posterior(G), colors="0.25",
                     linewidths=1.4, linestyles="dashed")
    for k in range(3):
        ax.scatter(*X[lab == k].T, s=18, marker=_CLASS_MARKERS[k],
                   color=_CLASS_COLORS[k], edgecolors="black", linewidths=0.3)
    handles = [_proxy(ls="", marker=_CLASS_MARKERS[k], color=_CLASS_COLORS[k],
                      mec="black", mew=0.3,
                      label=f"class $C_{k + 1}$ (shaded: decided $C_{k + 1}$)")
               for k in range(3)]
    handles += [_proxy(color="black", lw=1.8, label="network boundaries (argmax $y_k$)"),
                _proxy(color="0.25", lw=1.4, ls="--", label="Bayes-optimal boundaries")]
    title = (f"Three classes, 2-4-3 tanh network with softmax outputs: "
             f"decision regions (N = {len(X)})")
    return _finish_map(ctx, fig, ax, handles, xlim, ylim, title, f"{NAME}_softmax")


def _figure_multilabel(ctx, net, w, X, T) -> str:
    plt = _common.pyplot()
    xlim = ylim = (-2.0, 2.0)
    gx, gy, G = _grid(xlim, ylim)
    Y = net.forward(w, G)
    fig, ax = plt.subplots(figsize=(7, 7))
    pattern = (T[:, 0] + 2 * T[:, 1]).astype(int)
    styles = (("0.55", "o", "$t = (0, 0)$"), ("tab:orange", "^", "$t = (1, 0)$"),
              ("tab:blue", "s", "$t = (0, 1)$"), ("tab:purple", "D", "$t = (1, 1)$"))
    handles = []
    for p, (color, marker, label) in enumerate(styles):
        ax.scatter(*X[pattern == p].T, s=16, marker=marker, color=color,
                   edgecolors="black", linewidths=0.3)
        handles.append(_proxy(ls="", marker=marker, color=color, mec="black",
                              mew=0.3, label=label))
    truth = (region_a(G), region_b(G))
    colors = ("tab:red", "tab:cyan")
    for k in range(2):
        ax.contour(gx, gy, truth[k].reshape(gx.shape).astype(float), [0.5],
                   colors=colors[k], linewidths=1.4, linestyles="dashed")
        ax.contour(gx, gy, Y[:, k].reshape(gx.shape), [0.5], colors=colors[k],
                   linewidths=2.2)
    region = ("A: $x_2 > 0.6x_1^2 - 0.8$", "B: $|x - (0.4, -0.3)| < 1.1$")
    for k in range(2):
        handles.append(_proxy(color=colors[k], lw=2.2,
                              label=f"network $y_{k + 1} = 0.5$"))
        handles.append(_proxy(color=colors[k], lw=1.4, ls="--",
                              label=f"true region {region[k]}"))
    title = (f"Two independent binary labels (multi-label), 2-8-2 tanh network "
             f"with logistic outputs\n(N = {len(X)}, {LABEL_NOISE:.0%} of "
             "labels flipped; colour = label pattern)")
    return _finish_map(ctx, fig, ax, handles, xlim, ylim, title, f"{NAME}_multilabel")


def run(ctx) -> dict:
    return _common.compose(ctx, compute, plot, notes)
