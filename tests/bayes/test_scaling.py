"""The Bayesian estimators do not depend on the units of X's columns or of
the regression targets: they standardise both inside fit and report in the
user's units.

Why 1e-6 relative: the fits on s y + c and on y see the same standardised
targets up to round-off, eps |c| / (s std(y)): 2e-7 at s = 1e-6, c = 1e3
on the synthetic set (std 0.6), 1.5e-9 on diabetes (std 77); the evidence
loop then follows the same path (its stopping tests are continuous in the
data, far from a flip at that distance), so predictions and R^2 (whose
residuals (s y + c) - prediction cancel the same digits) agree to that;
a fit that depended on the units (the prior on weights of unscaled
targets) differs at O(1).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.utils._param_validation import InvalidParameterError

import sopt
from sopt.bayes import AllPrunedWarning, BayesianMLPClassifier, BayesianMLPRegressor

SCALES = (1e-6, 1.0, 1e3, 1e6)
OFFSET = 1e3


def _synthetic(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    return X, np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + 0.1 * rng.standard_normal(n)


def _diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X[:100], y[:100]


@pytest.mark.parametrize("data", [_synthetic, _diabetes])
def test_regressor_is_equivariant_to_the_units_of_y(data):
    X, y = data()
    ref = BayesianMLPRegressor(hidden=(2,)).fit(X, y)
    m0, s0 = ref.predict(X, return_std=True)
    assert ref.score(X, y) > 0.3            # a useful model to compare against
    for s in SCALES:
        reg = BayesianMLPRegressor(hidden=(2,)).fit(X, s * y + OFFSET)
        m, sd = reg.predict(X, return_std=True)
        np.testing.assert_allclose((m - OFFSET) / s, m0, rtol=1e-6,
                                   atol=1e-6 * np.abs(m0).max())
        np.testing.assert_allclose(sd / s, s0, rtol=1e-6)
        assert reg.score(X, s * y + OFFSET) == pytest.approx(ref.score(X, y), abs=1e-6)
        # noise_precision_ is that of the user's y; prior_precision_ that of the
        # standardised weights; the log evidence moves by -N ln s
        assert reg.noise_precision_ * s**2 == pytest.approx(ref.noise_precision_, rel=1e-6)
        assert reg.prior_precision_ == pytest.approx(ref.prior_precision_, rel=1e-6)
        assert reg.log_evidence_ == pytest.approx(
            ref.log_evidence_ - len(y) * np.log(s), rel=1e-6, abs=1e-6)


def test_predictions_do_not_depend_on_the_units_of_X():
    X, y = _synthetic()
    c, d = np.array([1e-4, 1e5]), np.array([3e3, -7.0])
    reg = BayesianMLPRegressor(hidden=(2,)).fit(X, y)
    scaled = BayesianMLPRegressor(hidden=(2,)).fit(X * c + d, y)
    for a, b in zip(reg.predict(X, return_std=True),
                    scaled.predict(X * c + d, return_std=True)):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-9)
    # coefs_ act on the user's X: the network written out by hand (on X of
    # unit scale: with offsets d_j much larger than a column's spread, the
    # centring folded into the biases cancels eps |d_j| / std_j digits)
    H = np.tanh(X @ reg.coefs_[0] + reg.intercepts_[0])
    np.testing.assert_allclose(H @ reg.coefs_[1] + reg.intercepts_[1],
                               reg.predict(X)[:, None], rtol=1e-12, atol=1e-12)
    labels = np.where(y > np.median(y), "hi", "lo")
    P = BayesianMLPClassifier(hidden=(2,)).fit(X, labels).predict_proba(X)
    Q = BayesianMLPClassifier(hidden=(2,)).fit(X * c + d, labels).predict_proba(X * c + d)
    np.testing.assert_allclose(Q, P, rtol=1e-6, atol=1e-9)


def test_constant_column_gives_no_nan():
    X, y = _synthetic()
    X = np.column_stack([X, np.full(len(X), 1e3)])
    reg = BayesianMLPRegressor(hidden=(2,)).fit(X, y)
    mean, std = reg.predict(X, return_std=True)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(std))
    assert reg.x_scale_[2] == 1.0 and reg.score(X, y) > 0.9


def test_strong_start_does_not_leave_every_weight_switched_off():
    """alpha = 1e4 or beta = 1e-4 (of y's variance 0.1) as starting values
    shrink every weight to 0 in the first cycle; evidence_fit says so, and
    the estimator refits from its default start."""
    X, y = _synthetic()
    good = BayesianMLPRegressor(hidden=(2,)).fit(X, y).score(X, y)
    for params in (dict(alpha=1e4), dict(beta=1e-4)):
        reg = BayesianMLPRegressor(hidden=(2,), **params).fit(X, y)
        assert reg.score(X, y) == pytest.approx(good, abs=1e-6)
    net = sopt.mlp([2, 2, 1])
    Z, u = (X - X.mean(0)) / X.std(0), (y - y.mean()) / y.std()
    with pytest.warns(AllPrunedWarning, match="smaller alpha"):
        res = sopt.bayes.evidence_fit(net, Z, u, alpha=1e4, beta=1.0)
    assert res.gamma < 1e-6


@pytest.mark.parametrize("hidden, error", [
    ({2: 3}, InvalidParameterError), ({2}, InvalidParameterError),
    ("big", InvalidParameterError), (2.0, InvalidParameterError),
    (True, InvalidParameterError), (np.array([[2]]), InvalidParameterError),
    ([[2]], TypeError), ([2.5], TypeError), ([0], ValueError)])
def test_hidden_must_be_auto_an_int_or_a_sequence_of_ints(hidden, error):
    X, y = _synthetic(10)
    with pytest.raises(error, match="hidden"):
        BayesianMLPRegressor(hidden=hidden, max_cycles=1).fit(X, y)


@pytest.mark.parametrize("hidden", [[2], (2,), np.array([2]), 2])
def test_hidden_sequences_are_accepted(hidden):
    X, y = _synthetic(10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert BayesianMLPRegressor(hidden=hidden, max_cycles=1).fit(X, y).hidden_ == (2,)


def test_auto_keeps_the_linear_model_on_pure_noise():
    """Candidates whose hidden units are switched off tie with the linear
    model to within the evidence loop's tolerance; ties go to the smaller.
    A candidate with unused units says nothing about a larger one, so one
    more size is tried, and a second such candidate ends the search."""
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((100, 2)), rng.standard_normal(100)
    reg = BayesianMLPRegressor().fit(X, y)
    assert reg.hidden_ == ()
    assert list(reg.evidence_by_hidden_) == [0, 2, 4]


def test_a_starting_beta_out_of_scale_for_y_is_named():
    """beta is y's noise precision: beta=1 for y in units 1e12 asks for a
    noise variance 1e-24 of y's, beyond the evidence loop's cap; the error
    names beta and the value to pass instead of a failure deep in the fit."""
    X, y = _synthetic(20)
    with pytest.raises(ValueError, match=r"beta: 1 is out of scale for y .*1 / var\(y\)"):
        BayesianMLPRegressor(hidden=(2,), beta=1.0).fit(X, 1e12 * y)
