"""hidden="auto": the evidence chooses the model, and the default estimators
hold their own against the baselines a user fits first (issue 11's
protocol: 70/30 split, random_state=0, stratified for classes, inputs and
regression targets standardised on the training part)."""
import warnings

import numpy as np
from scipy.stats import norm
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import BayesianRidge, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sopt.bayes import BayesianMLPClassifier, BayesianMLPRegressor

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
    # and the search stopped at the first candidate that did not improve
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
