"""Which curvature should the Laplace posterior use by default: the exact
Hessian (negative eigenvalues clipped) or the Gauss-Newton matrix?

Run:  python experiments/curvature_choice.py [--seeds 5] [--json PATH]

Both are fitted by the evidence framework (``BayesianMLPRegressor`` with
``hessian=`` each) on the same data, and compared where a predictive's error
bars matter most:

- a 1-D sine with a gap, t = sin(2 pi x) + 0.1 noise on x in [-1, -0.25] and
  [0.25, 1] (40 points): coverage of the truth by mean +- 2 std on a grid in
  the gap and beyond the data (|x| < 0.25 or 1 < |x| < 1.3), the largest
  miss in standard deviations, and the Gaussian NLL of fresh noisy targets
  in range and out of range;
- diabetes and friedman1 (70/30 split, inputs and targets standardised on
  the training part): held-out NLL per point.

Each row is the mean over seeds (the sine's noise and the network's start).
The default of ``laplace``, ``evidence_fit`` and the estimators follows the
result (docs/PERFORMANCE.md and the README state the numbers).
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from sklearn.datasets import load_diabetes, make_friedman1
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sopt.bayes import BayesianMLPRegressor

CURVATURES = ("exact", "gauss_newton")


def gap_sine(seed: int):
    """Training inputs with a gap, a grid outside the data, the truth."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.uniform(-1, -0.25, 20), rng.uniform(0.25, 1, 20)])
    truth = lambda z: np.sin(2 * np.pi * z)                      # noqa: E731
    t = truth(x) + 0.1 * rng.standard_normal(40)
    grid = np.linspace(-1.3, 1.3, 521)
    outside = (np.abs(grid) < 0.25) | (np.abs(grid) > 1.0)
    return x[:, None], t, grid[:, None], outside, truth(grid), rng


def gaussian_nll(mean, std, y) -> float:
    return float(np.mean(0.5 * np.log(2 * np.pi * std**2) + 0.5 * ((y - mean) / std) ** 2))


def sine_row(curvature: str, hidden, seed: int) -> dict:
    X, t, G, outside, f, rng = gap_sine(seed)
    reg = BayesianMLPRegressor(hidden=hidden, hessian=curvature, random_state=seed)
    start = time.perf_counter()
    reg.fit(X, t)
    seconds = time.perf_counter() - start
    mean, std = reg.predict(G, return_std=True)
    z = np.abs(mean - f) / std
    noisy = f + 0.1 * rng.standard_normal(f.shape)
    return {"coverage_outside": float(np.mean(z[outside] <= 2)),
            "worst_miss_sigma": float(z[outside].max()),
            "nll_in_range": gaussian_nll(mean[~outside], std[~outside], noisy[~outside]),
            "nll_outside": gaussian_nll(mean[outside], std[outside], noisy[outside]),
            "hidden": list(reg.hidden_), "fit_s": seconds}


def real_sets():
    X, y = load_diabetes(return_X_y=True)
    yield "diabetes", X, y
    X, y = make_friedman1(n_samples=500, noise=1.0, random_state=0)
    yield "friedman1", X, y


def real_row(curvature: str, hidden, X, y, seed: int) -> dict:
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0)
    sx, sy = StandardScaler().fit(Xtr), StandardScaler().fit(ytr[:, None])
    Xtr, Xte = sx.transform(Xtr), sx.transform(Xte)
    ytr, yte = sy.transform(ytr[:, None])[:, 0], sy.transform(yte[:, None])[:, 0]
    reg = BayesianMLPRegressor(hidden=hidden, hessian=curvature, random_state=seed)
    reg.fit(Xtr, ytr)
    mean, std = reg.predict(Xte, return_std=True)
    return {"nll": gaussian_nll(mean, std, yte), "hidden": list(reg.hidden_)}


def mean_rows(rows: list[dict]) -> dict:
    keys = [k for k, v in rows[0].items() if isinstance(v, float)]
    out = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    out["worst_miss_sigma"] = max(r.get("worst_miss_sigma", 0.0) for r in rows)
    out["hidden"] = [r["hidden"] for r in rows]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    report = {}
    for hidden in ("auto", (10,)):
        for curvature in CURVATURES:
            key = f"sine hidden={hidden} {curvature}"
            report[key] = mean_rows([sine_row(curvature, hidden, s) for s in range(args.seeds)])
            print(key, json.dumps(report[key]), flush=True)
    for name, X, y in real_sets():
        for curvature in CURVATURES:
            key = f"{name} hidden=auto {curvature}"
            report[key] = mean_rows([real_row(curvature, "auto", X, y, s)
                                     for s in range(min(args.seeds, 3))])
            print(key, json.dumps(report[key]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
