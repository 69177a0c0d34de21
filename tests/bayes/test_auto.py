"""hidden="auto": the evidence chooses the model, and the default estimators
hold their own against the baselines a user fits first (the protocol of
the baseline comparison: 70/30 split, random_state=0, stratified for classes, inputs and
regression targets standardised on the training part)."""
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.datasets import (load_breast_cancer, load_diabetes, make_circles,
                              make_friedman1, make_moons)
from sklearn.linear_model import BayesianRidge, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sopt.activations import get_activation
from sopt.bayes import BayesianMLPClassifier, BayesianMLPRegressor
from sopt.bayes import _estimators

MARGIN = 0.02      # nats per held-out point, the target


def test_auto_picks_fewer_hidden_units_on_a_linear_target():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (60, 1))
    noise = 0.1 * rng.standard_normal(60)
    linear = BayesianMLPRegressor().fit(X, 0.8 * X[:, 0] + noise)
    sine = BayesianMLPRegressor().fit(X, np.sin(np.pi * X[:, 0]) + noise)
    assert linear.hidden_ == () and linear.skip_coef_ is None
    assert len(sine.hidden_) == 1 and sine.hidden_[0] >= 2
    assert sine.skip_coef_.shape == (1, 1)
    # the choice is the evidence's: the kept model has the highest score,
    # and the search stopped at a candidate that did not improve
    for est in (linear, sine):
        scores = est.evidence_by_hidden_
        kept = est.hidden_[0] if est.hidden_ else 0
        assert scores[kept] == max(scores.values()) == est.log_evidence_
        assert list(scores)[-1] != kept or len(scores) == 5


def _split(loader, classification):
    X, y = loader(return_X_y=True)
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.3, random_state=0,
                                      stratify=y if classification else None)
    scaler = StandardScaler().fit(Xa)
    Xa, Xb = scaler.transform(Xa), scaler.transform(Xb)
    if not classification:
        m, s = ya.mean(), ya.std()
        ya, yb = (ya - m) / s, (yb - m) / s
    return Xa, Xb, ya, yb


def test_default_regressor_matches_bayesian_ridge_on_diabetes():
    Xa, Xb, ya, yb = _split(load_diabetes, False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        mean, std = BayesianMLPRegressor().fit(Xa, ya).predict(Xb, return_std=True)
    nll = -norm.logpdf(yb, mean, std).mean()
    m, s = BayesianRidge().fit(Xa, ya).predict(Xb, return_std=True)
    assert nll <= -norm.logpdf(yb, m, s).mean() + MARGIN


def test_default_classifier_matches_logistic_regression_on_breast_cancer():
    Xa, Xb, ya, yb = _split(load_breast_cancer, True)
    P = BayesianMLPClassifier().fit(Xa, ya).predict_proba(Xb)
    nll = -np.log(P[np.arange(len(yb)), yb]).mean()
    Q = LogisticRegression(max_iter=5000).fit(Xa, ya).predict_proba(Xb)
    assert nll <= -np.log(Q[np.arange(len(yb)), yb]).mean() + MARGIN


# ------------------------------------------- nonlinear structure is found
def _xor(n, seed):
    X = np.random.default_rng(seed).uniform(-1, 1, (n, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


def _product(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    return X, X[:, 0] * X[:, 1] + 0.05 * rng.standard_normal(n)


CLASSIFICATION = {
    "circles": lambda seed: make_circles(300, noise=0.1, factor=0.5, random_state=seed),
    "xor": lambda seed: _xor(300, seed),
    "moons": lambda seed: make_moons(300, noise=0.2, random_state=seed),
}


def _check_search(est):
    """The kept model is the best candidate tried; each tried is reported."""
    scores = est.evidence_by_hidden_
    kept = est.hidden_[0] if est.hidden_ else 0
    assert scores[kept] == max(scores.values()) == est.log_evidence_
    assert list(scores) == [0, *_estimators.AUTO_HIDDEN][:len(scores)]


@pytest.mark.parametrize("name", list(CLASSIFICATION))
def test_default_classifier_finds_the_nonlinear_boundary(name):
    """The linear model is at chance on circles and XOR; a candidate
    started from the linear fit's (huge) alpha had its units switched off."""
    est = BayesianMLPClassifier().fit(*CLASSIFICATION[name](0))
    assert est.hidden_ != ()
    _check_search(est)
    assert est.score(*CLASSIFICATION[name](1)) >= 0.95      # fresh data


def test_default_regressor_finds_a_product_of_inputs():
    est = BayesianMLPRegressor().fit(*_product(300, 0))
    assert est.hidden_ != ()
    _check_search(est)
    assert est.score(*_product(300, 1)) >= 0.9


@pytest.mark.slow
def test_default_regressor_on_friedman1():
    X, y = make_friedman1(600, noise=0.5, random_state=0)
    est = BayesianMLPRegressor().fit(X[:300], y[:300])
    assert est.hidden_ != ()
    assert est.score(X[300:], y[300:]) >= 0.9


def test_linear_data_keep_the_linear_model():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3))
    reg = BayesianMLPRegressor().fit(X, X @ [1.0, -2.0, 0.5] + 0.3 * rng.standard_normal(300))
    X = rng.standard_normal((300, 2))
    y = (X @ [1.0, 1.0] + 0.3 * rng.standard_normal(300) > 0).astype(int)
    clf = BayesianMLPClassifier().fit(X, y)
    assert reg.hidden_ == () and clf.hidden_ == ()
    assert len(reg.evidence_by_hidden_) >= 2 and len(clf.evidence_by_hidden_) >= 2


def test_candidates_start_from_the_linear_fit(monkeypatch):
    """Every candidate's skip weights and output biases start at the linear
    fit's weights; on circles a candidate is also fitted from the
    estimator's own alpha."""
    calls = []

    def spy(net, X, T, w0=None, alpha=None, **kwargs):
        res = evidence_fit(net, X, T, w0=w0, alpha=alpha, **kwargs)
        calls.append((net, w0.copy(), alpha, res))
        return res

    evidence_fit = _estimators.evidence_fit
    monkeypatch.setattr(_estimators, "evidence_fit", spy)
    est = BayesianMLPClassifier(alpha=0.02).fit(*CLASSIFICATION["circles"](0))
    linear_w = calls[0][3].w
    D = est.n_features_in_
    for net, w0, alpha, _ in calls[1:]:
        out = net.unpack(w0)[-1]
        np.testing.assert_array_equal(out.weights[1].ravel(), linear_w[:D])
        np.testing.assert_array_equal(out.bias, linear_w[D:])
    assert len(calls) > len(est.evidence_by_hidden_)
    assert 0.02 in [alpha for _, _, alpha, _ in calls[1:]]


# ------------------------------------------------------ the search's rule
def _scripted_search(script):
    """hidden="auto"'s choice when the fit of the network with M hidden
    units (0: the linear model) returns script[M] = (log evidence, gamma)."""
    tried = []

    def restarts(net, X, T, alpha0, beta0, init_weights):
        M = net.layers[0].size if len(net.layers) > 1 else 0
        tried.append(M)
        ev, gamma = script[M]
        res = SimpleNamespace(log_evidence=ev, gamma=gamma, w=np.zeros(3),
                              alpha=np.array([1.0]), beta=1.0, converged=True)
        return res, [ev]

    est = BayesianMLPRegressor()
    est._restarts = restarts
    X, T = np.zeros((4, 2)), np.zeros((4, 1))
    net, best, _, scores = est._select_hidden(X, T, "identity", 1.0,
                                              get_activation("tanh"))
    return scores, best.log_evidence


def test_a_candidate_with_unused_units_does_not_end_the_search():
    # 2 units unused (a tie with the linear model), 4 help, 8 do not
    scores, kept = _scripted_search({0: (-100.0, 3.0), 2: (-100.0, 3.2),
                                     4: (-50.0, 9.0), 8: (-60.0, 14.0)})
    assert list(scores) == [0, 2, 4, 8] and kept == -50.0
    # two unused candidates in a row end it
    scores, kept = _scripted_search({0: (-100.0, 3.0), 2: (-100.0, 3.2),
                                     4: (-100.0, 3.5)})
    assert list(scores) == [0, 2, 4] and kept == -100.0


def test_a_candidate_that_uses_its_units_and_loses_ends_the_search():
    scores, kept = _scripted_search({0: (-100.0, 3.0), 2: (-110.0, 8.0)})
    assert list(scores) == [0, 2] and kept == -100.0
    scores, kept = _scripted_search({0: (-100.0, 3.0), 2: (-50.0, 6.0),
                                     4: (-50.0, 3.5)})
    assert list(scores) == [0, 2, 4] and kept == -50.0
