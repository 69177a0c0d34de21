"""The pure helpers of experiments/bench_bayes.py (metrics, split and
scaling, the table of sopt variants), on tiny hand-made inputs. No model is
fitted and torch is not needed."""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from scipy.stats import norm

from helpers import ROOT

_PATH = ROOT / "experiments" / "bench_bayes.py"
_spec = importlib.util.spec_from_file_location("bench_bayes", _PATH)
bb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bb)


# ------------------------------------------------------------ regression
def test_gaussian_nll_is_scipys_logpdf():
    rng = np.random.default_rng(0)
    y, mean = rng.normal(size=7), rng.normal(size=7)
    std = rng.uniform(0.1, 3.0, size=7)
    want = -np.mean(norm.logpdf(y, loc=mean, scale=std))
    assert bb.gaussian_nll(y, mean, std) == pytest.approx(want, rel=1e-13)


def test_gaussian_nll_of_a_standard_normal_at_its_mean():
    assert bb.gaussian_nll([0.0], [0.0], [1.0]) == pytest.approx(0.5 * math.log(2 * math.pi))


def test_rmse():
    assert bb.rmse([0, 0, 0, 0], [1, -1, 3, -3]) == pytest.approx(math.sqrt(5))


def test_coverage_counts_points_inside_the_central_90_percent_interval():
    # z_0.95 = 1.6449: 0, 1.6 and -1.0 std away are inside, +-1.7 outside
    mean, std = np.full(5, 2.0), np.full(5, 0.5)
    y = mean + std * np.array([0.0, 1.6, 1.7, -1.7, -1.0])
    assert bb.coverage(y, mean, std) == pytest.approx(3 / 5)
    assert bb.coverage(y, mean, std, level=0.95) == pytest.approx(1.0)   # z = 1.96


def test_coverage_of_gaussian_samples_is_near_the_level():
    rng = np.random.default_rng(1)
    y = rng.normal(size=20_000)
    # binomial sd sqrt(0.9 * 0.1 / 20000) = 0.0021
    assert bb.coverage(y, np.zeros_like(y), np.ones_like(y)) == pytest.approx(0.9, abs=0.01)


# -------------------------------------------------------- classification
def test_class_nll_and_accuracy_use_the_true_class_column():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.4, 0.1]])
    y = np.array([0, 2, 1])
    want = -(math.log(0.7) + math.log(0.8) + math.log(0.4)) / 3
    assert bb.class_nll(proba, y) == pytest.approx(want)
    assert bb.accuracy(proba, y) == pytest.approx(2 / 3)


def test_class_nll_maps_labels_through_classes():
    proba = np.array([[0.9, 0.1], [0.25, 0.75]])
    assert bb.class_nll(proba, np.array([3, 7]), classes=np.array([3, 7])) == \
        pytest.approx(-(math.log(0.9) + math.log(0.75)) / 2)
    assert bb.accuracy(proba, np.array([7, 7]), classes=np.array([3, 7])) == 0.5


def test_ece_is_zero_for_calibrated_predictions():
    # confidence 0.8 on ten points, eight right: accuracy equals confidence
    proba = np.tile([0.8, 0.2], (10, 1))
    y = np.array([0] * 8 + [1] * 2)
    assert bb.ece(proba, y) == pytest.approx(0.0, abs=1e-12)


def test_ece_is_one_for_confident_and_always_wrong_predictions():
    proba = np.tile([1.0, 0.0, 0.0], (6, 1))
    assert bb.ece(proba, np.array([1, 2, 1, 2, 1, 1])) == pytest.approx(1.0)


def test_ece_weights_bins_by_their_counts():
    # bin (0.6, 0.667]: 2 points of confidence 0.65, both right -> gap 0.35;
    # bin (0.933, 1]:  3 points of confidence 0.95, one right -> gap 0.95 - 1/3
    proba = np.array([[0.65, 0.35]] * 2 + [[0.05, 0.95]] * 3)
    y = np.array([0, 0, 1, 0, 0])
    want = (2 * 0.35 + 3 * (0.95 - 1 / 3)) / 5
    assert bb.ece(proba, y) == pytest.approx(want)


def test_ece_bins_are_closed_on_the_right():
    # confidence 2/3 exactly lies in the 10th of 15 bins, (0.6, 0.667], with
    # the 0.65 points; in a bin of its own the ECE would be larger
    proba = np.array([[2 / 3, 1 / 3], [0.65, 0.35]])
    y = np.array([1, 0])      # one wrong, one right: bin accuracy 0.5
    assert bb.ece(proba, y) == pytest.approx(abs(0.5 - (2 / 3 + 0.65) / 2))


# ------------------------------------------------------------------ data
def test_split_is_70_30_stratified_and_scaled_on_the_training_part():
    rng = np.random.default_rng(2)
    X = rng.normal(5.0, 3.0, size=(100, 3))
    y = np.array([0] * 80 + [1] * 20)
    Xtr, Xte, ytr, yte = bb.split_and_scale(X, y, "classification")
    assert (len(Xtr), len(Xte)) == (70, 30)
    assert (ytr == 1).sum() == 14 and (yte == 1).sum() == 6
    np.testing.assert_allclose(Xtr.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Xtr.std(axis=0), 1, rtol=1e-12)
    assert np.all(np.abs(Xte.mean(axis=0)) > 1e-6)     # not refitted on test


def test_regression_targets_are_standardised_on_the_training_part():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(50, 2)), rng.normal(10.0, 4.0, size=50)
    Xtr, Xte, ytr, yte = bb.split_and_scale(X, y, "regression")
    assert ytr.mean() == pytest.approx(0, abs=1e-12)
    assert ytr.std() == pytest.approx(1, rel=1e-12)
    assert abs(yte.mean()) < 1.5 and yte.std() < 1.6      # same map, not refitted


def test_sopt_variants():
    default = bb.BayesianMLPRegressor().get_params()["hidden"]
    labels = bb._sopt_variants((5,), None)
    assert labels[0] == ("sopt", None)
    if default == "auto" or tuple(np.atleast_1d(default)) == (5,):
        assert len(labels) == 1            # the defaults already are the table's
    else:
        assert labels[1] == ("sopt hidden=(5,)", (5,))
    assert bb._sopt_variants((5,), (8, 8))[1] == ("sopt hidden=(8, 8)", (8, 8))
    assert bb._sopt_variants((5,), "table")[1][1] == (5,)
