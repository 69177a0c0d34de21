"""Where the default Bayesian fit spends its work: per bench_bayes set, the
evidence cycles, Newton iterations and dense curvature matrices built, and
the final hyperparameters (to check that a speed-up leaves them put).

Run:  python experiments/bench_evidence_counts.py [--only NAME,...]
          [--json PATH] [--compare PATH] [--tol TOL] [--max-cycles N]
          [--baseline DIR [--repeat R]]

Same data, split and default estimators as ``bench_bayes.py`` (the sopt row
only), on one BLAS thread. Per set: the number of ``evidence_fit`` calls
(``hidden="auto"`` fits one per candidate), their evidence cycles and Newton
iterations summed, the exact Hessians and Gauss-Newton matrices built (calls
of the data-term curvature, so a matrix served from the evaluation's cache
is not counted), the Cholesky factorisations of Newton's damping ladder and
saddle test, the fit time, and the fitted estimator's
log evidence, gamma, alpha and beta. ``--compare PATH`` reads an earlier
``--json`` output and prints the largest relative difference of those four,
and of every candidate's log evidence, against it. ``--tol`` and
``--max-cycles`` set the estimators' own (a tight run gives the fixed point
that the default tol approximates). ``--baseline DIR`` times this code
against the source tree DIR instead (each set fitted ``--repeat`` times per
tree in fresh processes, taking turns; medians and their ratio, the only
timing figure worth reading on a shared machine).

Counting wraps functions of sopt by monkeypatching, in this script only.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bayes import DATASETS, load_dataset, split_and_scale  # noqa: E402

import sopt.evaluation  # noqa: E402
import sopt.optimize._newton as newton_module  # noqa: E402
from sopt.bayes import BayesianMLPClassifier, BayesianMLPRegressor  # noqa: E402
from sopt.bayes import _estimators  # noqa: E402


class Counts:
    """Wraps the counted functions for the duration of a ``with`` block."""

    def __init__(self):
        self.counter = Counter()
        self.fits = []          # per evidence_fit call: cycles, iterations, ln p
        self._undo = []

    def _wrap(self, owner, name, before=None, after=None):
        original = getattr(owner, name)

        def wrapped(*args, **kwargs):
            if before is not None:
                before(*args, **kwargs)
            out = original(*args, **kwargs)
            if after is not None:
                after(out)
            return out
        setattr(owner, name, wrapped)
        self._undo.append((owner, name, original))

    def __enter__(self):
        c = self.counter
        self._wrap(sopt.evaluation.Evaluation, "_data_curvature",
                   before=lambda ev, method, algorithm: c.update([method]))
        self._wrap(newton_module, "cho_factor",
                   before=lambda *a, **k: c.update(["newton_cholesky"]))
        self._wrap(_estimators, "evidence_fit", after=self._record_fit)
        return self

    def _record_fit(self, res):
        self.fits.append({"W": int(res.w.size), "cycles": int(res.n_cycles),
                          "newton_iterations": int(sum(res.history["train_iterations"])),
                          "log_evidence": float(res.log_evidence)})

    def __exit__(self, *exc):
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)


def run_set(name: str, **params) -> dict:
    """Counts, time and fitted hyperparameters of the default sopt estimator
    (``params`` override its defaults)."""
    X, y, task = load_dataset(name)
    Xtr, _, ytr, _ = split_and_scale(X, y, task)
    cls = BayesianMLPRegressor if task == "regression" else BayesianMLPClassifier
    est = cls(**params)
    with Counts() as counts, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(Xtr, ytr)
        seconds = time.perf_counter() - t0
    fits = counts.fits
    return {"set": name, "hidden": list(est.hidden_), "evidence_fits": len(fits),
            "cycles": sum(f["cycles"] for f in fits),
            "newton_iterations": sum(f["newton_iterations"] for f in fits),
            "exact_hessians": counts.counter["exact"],
            "gauss_newton": counts.counter["gauss_newton"],
            "newton_cholesky": counts.counter["newton_cholesky"],
            "fit_seconds": seconds, "log_evidence": est.log_evidence_,
            "gamma": est.gamma_, "alpha": np.atleast_1d(est.prior_precision_).tolist(),
            "beta": (np.atleast_1d(est.noise_precision_).tolist() if task == "regression" else None),
            "fits": fits}


def _relative(a, b) -> float:
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    if a.shape != b.shape:
        return np.inf
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def compare(row: dict, old: dict) -> dict:
    """Largest relative differences against an earlier run's row."""
    diffs = {k: _relative(row[k], old[k]) for k in ("log_evidence", "gamma", "alpha")}
    diffs["beta"] = 0.0 if row["beta"] is None else _relative(row["beta"], old["beta"])
    same_fits = len(row["fits"]) == len(old["fits"])
    diffs["candidates"] = (_relative([f["log_evidence"] for f in row["fits"]],
                                     [f["log_evidence"] for f in old["fits"]])
                           if same_fits else np.inf)
    return diffs


def print_row(r: dict, diffs: dict | None) -> None:
    line = (f"{r['set']:14s} {str(tuple(r['hidden'])):7s} {r['evidence_fits']:4d} "
            f"{r['cycles']:6d} {r['newton_iterations']:7d} {r['exact_hessians']:6d} "
            f"{r['gauss_newton']:5d} {r['newton_cholesky']:6d} {r['fit_seconds']:7.2f} "
            f"{r['log_evidence']:14.6f} {r['gamma']:9.4f}")
    if diffs is not None:
        line += "  " + " ".join(f"{k}={v:.1e}" for k, v in diffs.items())
    print(line, flush=True)


def time_against(baseline: str, names, repeat: int, params: dict) -> None:
    """Fit times of this tree's code and of the source tree ``baseline``
    (a checkout of other code: its ``sopt`` is imported instead), each set
    fitted ``repeat`` times in fresh processes taking turns, so that both
    see the same load; medians and their ratio."""
    import os
    import subprocess
    import tempfile
    here = str(Path(__file__).resolve().parents[1])
    extra = [f"--{k.replace('_', '-')}={v}" for k, v in params.items()]
    print(f"\nfit time (s), median of {repeat}, turns taken with {baseline}")
    print(f"{'set':14s} {'baseline':>9s} {'this':>9s} {'this/baseline':>14s}")
    for name in names:
        times = {baseline: [], here: []}
        for _ in range(repeat):
            for tree in (baseline, here):
                with tempfile.NamedTemporaryFile(suffix=".json") as out:
                    env = {**os.environ, "PYTHONPATH": tree}
                    subprocess.run([sys.executable, __file__, "--only", name, "--json",
                                    out.name, *extra], env=env, check=True,
                                   stdout=subprocess.DEVNULL)
                    times[tree].append(json.load(open(out.name))[0]["fit_seconds"])
        old, new = np.median(times[baseline]), np.median(times[here])
        print(f"{name:14s} {old:9.2f} {new:9.2f} {new / old:14.2f}", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", type=lambda s: [v for v in s.split(",") if v],
                   help=f"comma-separated subset of {', '.join(DATASETS)}")
    p.add_argument("--json", metavar="PATH", help="write the rows here")
    p.add_argument("--compare", metavar="PATH", help="an earlier --json output")
    p.add_argument("--tol", type=float, default=None,
                   help="the estimators' tol (default theirs); with a small value and "
                        "a large --max-cycles, the fixed point the defaults approximate")
    p.add_argument("--max-cycles", type=int, default=None,
                   help="the estimators' max_cycles (default theirs)")
    p.add_argument("--baseline", metavar="DIR",
                   help="a source tree of other code (e.g. `git worktree add DIR "
                        "COMMIT`): time both, taking turns, instead of counting")
    p.add_argument("--repeat", type=int, default=3, help="fits per tree with --baseline")
    args = p.parse_args(argv)
    params = {k: v for k, v in (("tol", args.tol), ("max_cycles", args.max_cycles))
              if v is not None}
    if args.baseline:
        return time_against(args.baseline, args.only or list(DATASETS), args.repeat,
                            params)
    names = args.only or list(DATASETS)
    old = {}
    if args.compare:
        with open(args.compare) as f:
            old = {r["set"]: r for r in json.load(f)}
    print(f"{'set':14s} {'hidden':7s} {'fits':>4s} {'cycles':>6s} {'newton':>7s} "
          f"{'exactH':>6s} {'GN':>5s} {'chol':>6s} {'fit(s)':>7s} "
          f"{'log evidence':>14s} {'gamma':>9s}" + ("  relative differences"
                                                    if old else ""))
    rows = []
    with threadpool_limits(limits=1):
        for name in names:
            row = run_set(name, **params)
            rows.append(row)
            print_row(row, compare(row, old[name]) if name in old else None)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
