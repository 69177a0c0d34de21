"""Bayesian MLPs against what users compare them with, on real data.

Run:  python experiments/bench_bayes.py [--quick] [--only NAME,...]
                                        [--no-peers] [--hidden [SIZES]]
                                        [--sampling] [--json PATH]

Protocol. Data sets bundled with scikit-learn (no downloads); a 70/30 split
by ``train_test_split(..., test_size=0.3, random_state=0)``, stratified for
classes; inputs standardised on the training part, regression targets too
(so regression NLL and RMSE are in units of the training targets' standard
deviation). Metrics on the held-out part, per point:

- NLL: Gaussian -log N(y | mean, std^2) with the predicted std (regression),
  -log p(true class) (classification);
- RMSE (regression) or accuracy (classification);
- calibration: coverage of the central 90% predictive interval
  mean +- 1.645 std (regression, ideal 0.90), or the expected calibration
  error over 15 equal-width bins of top-label confidence (classification,
  ideal 0; Guo et al. 2017, eq. 3);
- fit time: wall clock of ``fit`` (laplace-torch: MAP training + Laplace fit +
  hyperparameter optimisation), seconds, on this machine in this run.

Models. sopt's ``BayesianMLPRegressor`` / ``BayesianMLPClassifier`` with
default settings; when their default ``hidden`` is not "auto" (or with
``--hidden``) also with the hidden sizes of the comparison table. Baselines:
``BayesianRidge``, ``ARDRegression``, ``GaussianProcessRegressor`` (ARD RBF +
white noise; skipped above 2000 training points) for regression;
``LogisticRegression`` for classification. With ``--sampling`` also sopt
with ``inference="sampling"`` (its defaults: hyperprior "gamma", 2 chains of
500 + 1000 iterations). Optional peer (``--no-peers`` to
skip; ``pip install .[peers]``): laplace-torch, the same tanh MLP trained to
its maximum likelihood by full-batch Adam (``--peer-alpha A``: to the MAP
under a prior of precision A instead), then a full-Hessian Laplace
approximation over all weights with a scalar prior precision (and, for
regression, the noise) chosen by the Laplace marginal likelihood; GLM
predictive (probit link for classification).

A model that raises is reported as a row with its error; the run goes on.

Threads. BLAS (through threadpoolctl, which scikit-learn installs) and torch
run on ``--threads`` threads, default 1: on a small machine shared with other
jobs, oversubscribed threads made a 5-unit MLP's Adam step 6x slower in torch
and made timings swing between runs; every model gets the same number.
``--threads 0`` sets nothing: each library runs as a user's script would
(its own thread defaults, whatever the environment says).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings

import numpy as np
import scipy
import sklearn
from threadpoolctl import threadpool_limits
from scipy.special import ndtri
from sklearn import datasets
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import ARDRegression, BayesianRidge, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import sopt
from sopt.bayes import BayesianMLPClassifier, BayesianMLPRegressor

GP_MAX_TRAIN = 2000          # the exact GP is O(N^3): skipped above this
ECE_BINS = 15                # Guo et al. 2017 use 15 bins
NLL_TARGET = 0.02            # target: sopt NLL <= best baseline + 0.02

# name -> (task, loader, hidden sizes compared)
DATASETS = {
    "diabetes": ("regression", lambda: datasets.load_diabetes(return_X_y=True), (5,)),
    "friedman1": ("regression", lambda: datasets.make_friedman1(
        n_samples=500, noise=1.0, random_state=0), (5,)),
    "linear": ("regression", lambda: datasets.make_regression(
        n_samples=400, n_features=8, n_informative=5, noise=10, random_state=0), (5,)),
    "breast_cancer": ("classification",
                      lambda: datasets.load_breast_cancer(return_X_y=True), (5,)),
    "wine": ("classification", lambda: datasets.load_wine(return_X_y=True), (5,)),
    "iris": ("classification", lambda: datasets.load_iris(return_X_y=True), (5,)),
    "digits": ("classification", lambda: datasets.load_digits(return_X_y=True), (10,)),
    "moons": ("classification", lambda: datasets.make_moons(
        n_samples=400, noise=0.25, random_state=0), (5,)),
}
QUICK = ("diabetes", "breast_cancer")


# ------------------------------------------------------------------ data
def load_dataset(name: str):
    """(X, y, task) of one of DATASETS."""
    task, loader, _ = DATASETS[name]
    X, y = loader()
    return np.asarray(X, dtype=float), np.asarray(y), task


def split_and_scale(X, y, task: str, random_state: int = 0):
    """70/30 split (stratified for classes); X, and y for regression,
    standardised with the training part's mean and std."""
    strat = y if task == "classification" else None
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3,
                                          random_state=random_state, stratify=strat)
    sx = StandardScaler().fit(Xtr)
    Xtr, Xte = sx.transform(Xtr), sx.transform(Xte)
    if task == "regression":
        mu, sd = ytr.mean(), ytr.std()
        ytr, yte = (ytr - mu) / sd, (yte - mu) / sd
    return Xtr, Xte, ytr, yte


# --------------------------------------------------------------- metrics
def gaussian_nll(y, mean, std) -> float:
    """Mean of -log N(y | mean, std^2)."""
    y, mean, std = (np.asarray(a, dtype=float).ravel() for a in (y, mean, std))
    return float(np.mean(0.5 * np.log(2 * np.pi) + np.log(std)
                         + 0.5 * ((y - mean) / std) ** 2))


def rmse(y, mean) -> float:
    y, mean = np.asarray(y, dtype=float).ravel(), np.asarray(mean, dtype=float).ravel()
    return float(np.sqrt(np.mean((y - mean) ** 2)))


def coverage(y, mean, std, level: float = 0.9) -> float:
    """Fraction of y inside the central ``level`` interval of N(mean, std^2)."""
    y, mean, std = (np.asarray(a, dtype=float).ravel() for a in (y, mean, std))
    z = ndtri(0.5 + level / 2)                 # 1.6449 for level 0.9
    return float(np.mean(np.abs(y - mean) <= z * std))


def true_class_proba(proba, y, classes=None):
    """p(true class) per row; columns of ``proba`` are ``classes``
    (default 0..K-1)."""
    proba = np.asarray(proba, dtype=float)
    classes = np.arange(proba.shape[1]) if classes is None else np.asarray(classes)
    idx = np.searchsorted(classes, y)
    return proba[np.arange(len(idx)), idx]


def class_nll(proba, y, classes=None) -> float:
    """Mean of -log p(true class), probabilities floored at 1e-300."""
    p = true_class_proba(proba, y, classes)
    return float(-np.mean(np.log(np.maximum(p, 1e-300))))


def accuracy(proba, y, classes=None) -> float:
    proba = np.asarray(proba, dtype=float)
    classes = np.arange(proba.shape[1]) if classes is None else np.asarray(classes)
    return float(np.mean(classes[np.argmax(proba, axis=1)] == np.asarray(y)))


def ece(proba, y, classes=None, n_bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error: sum over equal-width bins
    (lo, hi] of confidence of |bin| / n * |accuracy - mean confidence|."""
    proba = np.asarray(proba, dtype=float)
    classes = np.arange(proba.shape[1]) if classes is None else np.asarray(classes)
    conf = proba.max(axis=1)
    correct = classes[np.argmax(proba, axis=1)] == np.asarray(y)
    b = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    gap = np.bincount(b, weights=correct - conf, minlength=n_bins)
    return float(np.sum(np.abs(gap)) / len(conf))


def score(task: str, pred, y, classes=None) -> dict:
    """nll, score (RMSE or accuracy) and calib (coverage90 or ECE)."""
    if task == "regression":
        mean, std = pred
        return {"nll": gaussian_nll(y, mean, std), "score": rmse(y, mean),
                "calib": coverage(y, mean, std)}
    return {"nll": class_nll(pred, y, classes), "score": accuracy(pred, y, classes),
            "calib": ece(pred, y, classes)}


# ---------------------------------------------------------------- models
def _timed_fit(est, X, y):
    t0 = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - t0


def fit_sopt(task, Xtr, ytr, Xte, hidden=None, structure=None, inference=None):
    """sopt's estimator with defaults (``hidden``, ``structure`` and
    ``inference`` override them)."""
    cls = BayesianMLPRegressor if task == "regression" else BayesianMLPClassifier
    params = {k: v for k, v in (("hidden", hidden), ("structure", structure),
                                ("inference", inference)) if v is not None}
    est = cls(**params)
    t = _timed_fit(est, Xtr, ytr)
    if task == "regression":
        return est.predict(Xte, return_std=True), t, None
    return est.predict_proba(Xte), t, est.classes_


def fit_linear_bayes(cls, Xtr, ytr, Xte):
    """BayesianRidge or ARDRegression; predictive std includes the noise."""
    est = cls()
    t = _timed_fit(est, Xtr, ytr)
    return est.predict(Xte, return_std=True), t, None


def fit_gp(Xtr, ytr, Xte, n_restarts: int):
    """Exact GP, ARD RBF + white noise; std includes the white noise."""
    if len(Xtr) > GP_MAX_TRAIN:
        raise RuntimeError(f"skipped: {len(Xtr)} > {GP_MAX_TRAIN} training points")
    kernel = (ConstantKernel(1.0) * RBF(length_scale=np.ones(Xtr.shape[1]))
              + WhiteKernel(0.1))
    est = GaussianProcessRegressor(kernel, normalize_y=False,
                                   n_restarts_optimizer=n_restarts, random_state=0)
    t = _timed_fit(est, Xtr, ytr)
    return est.predict(Xte, return_std=True), t, None


def fit_logistic(Xtr, ytr, Xte):
    est = LogisticRegression(max_iter=10_000)
    t = _timed_fit(est, Xtr, ytr)
    return est.predict_proba(Xte), t, est.classes_


def peer_available() -> str | None:
    """laplace-torch's version, or None if torch or laplace is missing."""
    try:
        import laplace   # noqa: F401
        import torch     # noqa: F401
    except Exception:
        return None
    from importlib.metadata import version
    return version("laplace-torch")


def _torch_mlp(sizes):
    import torch
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers).double()


def _train_map(model, X, T, loss_fn, weight_decay=0.0, max_steps=5000, lr=1e-2,
               tol=1e-6):
    """Full-batch Adam; stops when 100 steps lower the loss by < tol * |loss|."""
    import torch
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    last = np.inf
    for step in range(max_steps):
        opt.zero_grad()
        loss = loss_fn(model(X), T)
        loss.backward()
        opt.step()
        if step % 100 == 99:
            cur = loss.item()
            if last - cur < tol * abs(cur):
                break
            last = cur
    return step + 1


def fit_laplace_torch(task, Xtr, ytr, Xte, hidden, alpha=0.0, hyper_steps=1000):
    """laplace-torch: MAP by Adam, full Laplace over all weights, marginal
    likelihood for the prior precision (and noise std, regression).

    ``alpha`` is the prior precision of the training run, as Adam's weight
    decay on the mean loss: alpha / N for cross-entropy, 2 alpha / N for the
    mean squared error (noise std 1 on standardised targets). 0 trains to the
    maximum likelihood and leaves the prior to the Laplace step."""
    import torch
    from laplace import Laplace
    from torch.utils.data import DataLoader, TensorDataset
    torch.manual_seed(0)
    X = torch.as_tensor(Xtr, dtype=torch.float64)
    Xs = torch.as_tensor(Xte, dtype=torch.float64)
    reg = task == "regression"
    n_out = 1 if reg else int(np.max(ytr)) + 1
    T = (torch.as_tensor(ytr, dtype=torch.float64).reshape(-1, 1) if reg
         else torch.as_tensor(ytr, dtype=torch.long))
    model = _torch_mlp([Xtr.shape[1], *hidden, n_out])
    t0 = time.perf_counter()
    _train_map(model, X, T, torch.nn.MSELoss() if reg else torch.nn.CrossEntropyLoss(),
               weight_decay=alpha * (2 if reg else 1) / len(X))
    loader = DataLoader(TensorDataset(X, T), batch_size=len(X))
    la = Laplace(model, "regression" if reg else "classification",
                 subset_of_weights="all", hessian_structure="full")
    la.fit(loader)
    if reg:   # the documented regression recipe: prior and noise by marglik
        log_prior = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        log_sigma = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([log_prior, log_sigma], lr=1e-1)
        last = np.inf
        for step in range(hyper_steps):
            opt.zero_grad()
            neg = -la.log_marginal_likelihood(log_prior.exp(), log_sigma.exp())
            neg.backward()
            opt.step()
            if step % 50 == 49:       # settled: 50 steps change it by < 1e-7
                if abs(last - neg.item()) < 1e-7 * abs(neg.item()):
                    break
                last = neg.item()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")    # its reminder to use probit later
            la.optimize_prior_precision(pred_type="glm", method="marglik",
                                        prior_structure="scalar", link_approx="probit")
    t = time.perf_counter() - t0
    with torch.no_grad():
        if reg:
            f_mu, f_var = la(Xs, pred_type="glm")
            var = f_var.reshape(-1) + la.sigma_noise.detach() ** 2
            pred = (f_mu.reshape(-1).numpy(), var.sqrt().numpy())
        else:
            pred = la(Xs, pred_type="glm", link_approx="probit").numpy()
    return pred, t, None


def run_model(fn, *args, **kwargs) -> dict:
    """Call one ``fit_*``; an exception becomes the row's error, and the
    warnings it raised are counted and the first one kept."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", DeprecationWarning)   # torch.jit etc.
        try:
            pred, t, classes = fn(*args, **kwargs)
            out = {"pred": pred, "fit_time": t, "classes": classes, "error": None}
        except Exception as exc:          # reported, the run goes on
            out = {"pred": None, "fit_time": None, "classes": None,
                   "error": f"{type(exc).__name__}: {exc}"}
    out["n_warnings"] = len(caught)
    out["first_warning"] = (f"{caught[0].category.__name__}: {caught[0].message}"
                            if caught else None)
    return out


# ------------------------------------------------------------ one data set
def _sopt_variants(table_hidden, hidden_arg):
    """[(label, hidden or None)]: defaults always; the table's (or the
    user's) hidden sizes when --hidden is given or the default is not auto."""
    default = BayesianMLPRegressor().get_params()["hidden"]
    variants = [("sopt", None)]
    if hidden_arg is not None and hidden_arg != "table":
        extra = hidden_arg
    elif hidden_arg == "table" or not (isinstance(default, str) and default == "auto"):
        extra = table_hidden
    else:
        return variants
    if hidden_arg is not None or tuple(np.atleast_1d(default)) != tuple(extra):
        variants.append((f"sopt hidden={extra}", extra))
    return variants


def bench_dataset(name, args, peer_version):
    """All models on one data set: a list of result rows (dicts)."""
    X, y, task = load_dataset(name)
    Xtr, Xte, ytr, yte = split_and_scale(X, y, task)
    table_hidden = DATASETS[name][2]
    peer_hidden = table_hidden if args.hidden in (None, "table") else args.hidden
    models = [(label, "sopt", fit_sopt, (task, Xtr, ytr, Xte), {"hidden": h})
              for label, h in _sopt_variants(table_hidden, args.hidden)]
    # a subset structure's evidence cannot choose the size (hidden="auto"
    # refuses it): those rows take the table's hidden sizes
    models += [(f"sopt {s}" + (f" hidden={table_hidden}" if s in SUBSETS else ""),
                "structure", fit_sopt, (task, Xtr, ytr, Xte),
                {"structure": s, "hidden": table_hidden if s in SUBSETS else None})
               for s in args.structures]
    if args.sampling:
        models.append(("sopt inference=sampling", "sopt", fit_sopt,
                       (task, Xtr, ytr, Xte), {"inference": "sampling"}))
    if task == "regression":
        models += [("BayesianRidge", "baseline", fit_linear_bayes,
                    (BayesianRidge, Xtr, ytr, Xte), {}),
                   ("ARDRegression", "baseline", fit_linear_bayes,
                    (ARDRegression, Xtr, ytr, Xte), {}),
                   ("GP ARD-RBF", "baseline", fit_gp,
                    (Xtr, ytr, Xte), {"n_restarts": 0 if args.quick else 2})]
    else:
        models += [("LogisticRegression", "baseline", fit_logistic, (Xtr, ytr, Xte), {})]
    if peer_version is not None:
        label = f"laplace-torch {peer_hidden}" + (f" a={args.peer_alpha:g}"
                                                   if args.peer_alpha else "")
        models.append((label, "peer", fit_laplace_torch,
                       (task, Xtr, ytr, Xte, peer_hidden), {"alpha": args.peer_alpha}))
    rows = []
    for label, kind, fn, a, kw in models:
        r = run_model(fn, *a, **kw)
        row = {"dataset": name, "task": task, "model": label, "kind": kind,
               "n_train": len(Xtr), "n_test": len(Xte), "n_features": X.shape[1],
               "fit_time": r["fit_time"], "error": r["error"],
               "n_warnings": r["n_warnings"], "first_warning": r["first_warning"],
               "nll": None, "score": None, "calib": None}
        if r["error"] is None:
            try:
                row.update(score(task, r["pred"], yte, r["classes"]))
            except Exception as exc:
                row["error"] = f"scoring: {type(exc).__name__}: {exc}"
        rows.append(row)
        print(f"  {name:14s} {label:28s} done" + (f" ({row['error']})" if row["error"] else ""),
              file=sys.stderr, flush=True)
    return rows


def summarise(rows) -> list:
    """Per data set and sopt row: NLL minus the best baseline's, and the fit
    time ratio to laplace-torch."""
    out = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        rs = [r for r in rows if r["dataset"] == name and r["error"] is None]
        base = [r for r in rs if r["kind"] == "baseline"]
        best = min(base, key=lambda r: r["nll"]) if base else None
        peer = next((r for r in rs if r["kind"] == "peer"), None)
        for s in (r for r in rs if r["kind"] == "sopt"):
            out.append({
                "dataset": name, "model": s["model"],
                "best_baseline": best and best["model"],
                "nll_minus_best_baseline": best and s["nll"] - best["nll"],
                "meets_target": best is not None and s["nll"] - best["nll"] <= NLL_TARGET,
                "nll_minus_peer": peer and s["nll"] - peer["nll"],
                "time_over_peer": peer and s["fit_time"] / peer["fit_time"]})
    return out


# ---------------------------------------------------------------- output
def environment(peer_version, threads: int) -> dict:
    """Versions and the CPU's SIMD extensions as numpy sees them."""
    try:
        from numpy._core._multiarray_umath import (__cpu_baseline__, __cpu_dispatch__,
                                                   __cpu_features__)
        found = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
        simd = {"baseline": list(__cpu_baseline__), "found": found}
    except ImportError:
        simd = {"baseline": [], "found": []}
    env = {"python": platform.python_version(), "numpy": np.__version__,
           "scipy": scipy.__version__, "sklearn": sklearn.__version__,
           "sopt": getattr(sopt, "__version__", "?"), "machine": platform.machine(),
           "processor": _cpu_model(), "simd": simd, "laplace-torch": peer_version,
           "threads": threads}
    if peer_version is not None:
        import torch
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    return env


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _fmt(x, spec):
    return "-" if x is None else format(x, spec)


def print_table(rows, task):
    rs = [r for r in rows if r["task"] == task]
    if not rs:
        return
    sc, ca = ("RMSE", "cover90") if task == "regression" else ("accuracy", "ECE")
    print(f"\n{task} (held-out, per point{'; targets standardised' if task == 'regression' else ''})")
    print(f"{'data set':14s} {'model':28s} {'NLL':>8s} {sc:>9s} {ca:>8s} {'fit (s)':>8s}")
    for r in rs:
        if r["error"] is not None:
            print(f"{r['dataset']:14s} {r['model']:28s} ERROR {r['error'][:90]}")
            continue
        warn = f"  [{r['n_warnings']} warnings]" if r["n_warnings"] else ""
        print(f"{r['dataset']:14s} {r['model']:28s} {r['nll']:8.3f} {r['score']:9.3f} "
              f"{r['calib']:8.3f} {r['fit_time']:8.2f}{warn}")


def print_summary(summary):
    print()
    for s in summary:
        d = s["nll_minus_best_baseline"]
        line = (f"{s['dataset']:14s} {s['model']:22s} sopt - best baseline NLL = "
                f"{_fmt(d, '+.3f')} (target <= {NLL_TARGET}) [{s['best_baseline']}]")
        if s["time_over_peer"] is not None:
            line += (f"; sopt - laplace-torch NLL = {s['nll_minus_peer']:+.3f}"
                     f"; sopt fit time / laplace-torch fit time = {s['time_over_peer']:.2f}")
        print(line)


def print_warnings(rows):
    noted = [r for r in rows if r["n_warnings"]]
    if noted:
        print("\nwarnings (first of each model's):")
        for r in noted:
            print(f"  {r['dataset']} / {r['model']}: {r['n_warnings']} x {r['first_warning'][:150]}")


SUBSETS = ("last_layer", "subset")


def _structure_list(s: str) -> list:
    from sopt.bayes import STRUCTURES
    if s == "none":
        return []
    names = [v for v in s.split(",") if v] or [
        n for n in STRUCTURES if n not in ("dense", "subset")]
    unknown = [n for n in names if n not in STRUCTURES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown structure(s) {unknown}; "
                                         f"registered: {sorted(STRUCTURES)}")
    return names


def _hidden_arg(s: str):
    return "table" if s == "table" else tuple(int(v) for v in s.split(",") if v)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help=f"only {', '.join(QUICK)}; no GP restarts")
    p.add_argument("--only", type=lambda s: [v for v in s.split(",") if v],
                   help=f"comma-separated subset of {', '.join(DATASETS)}")
    p.add_argument("--no-peers", action="store_true", help="skip laplace-torch")
    p.add_argument("--hidden", nargs="?", const="table", type=_hidden_arg,
                   help="also run sopt with the table's hidden sizes (no value) "
                        "or with these (e.g. 10 or 8,8); laplace-torch uses them too")
    p.add_argument("--peer-alpha", type=float, default=0.0,
                   help="prior precision (weight decay) of laplace-torch's MAP "
                        "training; default 0: maximum likelihood, prior by Laplace")
    p.add_argument("--sampling", action="store_true",
                   help="also run sopt with inference='sampling' (its defaults: "
                        "hyperprior 'gamma', 2 chains of 500 + 1000 iterations)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS and torch threads (default 1; 0: the libraries' own "
                        "defaults, see the docstring)")
    p.add_argument("--json", metavar="PATH", help="write all numbers here")
    p.add_argument("--structures", type=_structure_list, default=_structure_list(""),
                   help="comma-separated posterior structures to add as rows beside "
                        "the default (dense) one; default: every registered one "
                        "but dense and subset; 'none' for none")
    args = p.parse_args(argv)
    names = args.only or (list(QUICK) if args.quick else list(DATASETS))
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        p.error(f"--only: unknown data set(s) {unknown}; choose from {list(DATASETS)}")
    args.names = names
    return args


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    peer_version = None if args.no_peers else peer_available()
    if peer_version is not None and args.threads:
        import torch
        torch.set_num_threads(args.threads)
    env = environment(peer_version, args.threads)
    print(f"python {env['python']}, numpy {env['numpy']}, scipy {env['scipy']}, "
          f"scikit-learn {env['sklearn']}, sopt {env['sopt']}"
          + (f", torch {env['torch']} ({env['torch_threads']} threads), "
             f"laplace-torch {peer_version}" if peer_version else
             ", laplace-torch: " + ("skipped (--no-peers)" if args.no_peers
                                    else "not installed")))
    print(f"CPU: {env['processor']}; SIMD baseline {','.join(env['simd']['baseline'])}, "
          f"found {','.join(env['simd']['found'])}; "
          + (f"{args.threads} thread(s)" if args.threads else "default threads"))
    rows = []
    with threadpool_limits(limits=args.threads or None):
        for name in args.names:
            rows += bench_dataset(name, args, peer_version)
    for task in ("regression", "classification"):
        print_table(rows, task)
    summary = summarise(rows)
    print_summary(summary)
    print_warnings(rows)
    total = time.perf_counter() - t_start
    print(f"\nwhole run: {total:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "quick": args.quick,
                       "hidden": args.hidden, "peer_alpha": args.peer_alpha, "rows": rows, "summary": summary,
                       "total_seconds": total}, f, indent=1, default=str)
    return rows, summary


if __name__ == "__main__":
    main()
