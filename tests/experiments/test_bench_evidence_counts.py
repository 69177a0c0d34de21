"""The counting of experiments/bench_evidence_counts.py on a tiny fit: what
it reports is what the fit did, and the wrapped functions are restored."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import sopt.evaluation
from helpers import ROOT
from sopt.bayes import BayesianMLPClassifier, _estimators

_PATH = ROOT / "experiments" / "bench_evidence_counts.py"
_spec = importlib.util.spec_from_file_location("bench_evidence_counts", _PATH)
bec = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bec)


def test_counts_of_a_linear_fit_and_the_functions_restored():
    """A linear logistic model trains on its Gauss-Newton matrix, one per
    Newton iterate (the start and one per step), which the Laplace steps
    reuse: no exact Hessian, and as many matrices as 1 + Newton steps."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = (X[:, 0] + 0.5 * rng.standard_normal(60) > 0).astype(int)
    originals = (sopt.evaluation.Evaluation._data_curvature, _estimators.evidence_fit)
    with bec.Counts() as counts:
        est = BayesianMLPClassifier(hidden=()).fit(X, y)
    assert (sopt.evaluation.Evaluation._data_curvature, _estimators.evidence_fit) == originals
    (fit,) = counts.fits
    assert fit["cycles"] == est.n_cycles_ >= 2
    assert fit["newton_iterations"] == sum(est.history_["train_iterations"])
    assert counts.counter["exact"] == 0
    assert counts.counter["gauss_newton"] == 1 + fit["newton_iterations"]
    assert fit["log_evidence"] == pytest.approx(est.log_evidence_, rel=1e-15)


def test_compare_reports_relative_differences():
    row = {"log_evidence": -100.0, "gamma": 5.0, "alpha": [2.0], "beta": None,
           "fits": [{"log_evidence": -100.0}]}
    old = {**row, "log_evidence": -100.1, "alpha": [2.002], "fits": [{"log_evidence": -100.1}]}
    d = bec.compare(row, old)
    assert d["log_evidence"] == pytest.approx(0.1 / 100.1)
    assert d["alpha"] == pytest.approx(0.002 / 2.002)
    assert d["gamma"] == d["beta"] == 0.0
    assert bec.compare(row, {**old, "fits": []})["candidates"] == np.inf
