"""The Bayesian estimators with inference="sampling": predictions from HMC
draws agree with the exact (Laplace) posterior of a linear-Gaussian model
within Monte Carlo error, probabilities are averaged over draws, the
settings are validated, the evidence fit is the Laplace one, and the
warnings are scikit-learn's ConvergenceWarning.

Tolerances are 5 Monte Carlo standard errors from the bulk ESS the sampler
reports; seeds are fixed, so the tests are deterministic."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError

from sopt.bayes import BayesianMLPClassifier, BayesianMLPRegressor, SamplingWarning


NOISE_SD = 0.5


def _linear_data(n=40, seed=0):
    """y = 3 x0 - 2 x1 + 5 plus Gaussian noise of known sd, x in user units
    far from standard (offsets and scales), so the un-standardisation shows."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2)) * [2.0, 0.1] + [10.0, -3.0]
    y = 3 * X[:, 0] - 20 * X[:, 1] + 5 + NOISE_SD * rng.standard_normal(n)
    return X, y


def _three_classes(n=45, seed=1):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    centres = np.array([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5]])
    return centres[labels] + 0.7 * rng.standard_normal((n, 2)), labels


def test_linear_gaussian_predictions_match_the_exact_posterior():
    # hidden=(): the posterior of the weights at fixed alpha, beta is
    # Gaussian and the Laplace one is exact, so the draws must agree with it
    X, y = _linear_data()
    X_new = np.array([[10.0, -3.0], [14.0, -2.8], [6.0, -3.3]])   # in and out of range
    lap = BayesianMLPRegressor(hidden=()).fit(X, y)
    est = BayesianMLPRegressor(hidden=(), inference="sampling", n_draws=400,
                               n_warmup=150, random_state=3, hyperprior=None)
    with warnings.catch_warnings():
        # 800 draws: R-hat's own noise is ~0.01, so 1.01 is a coin toss
        warnings.simplefilter("ignore", SamplingWarning)
        est.fit(X, y)
    assert est.rhat_ < 1.03 and est.n_divergent_ == 0
    mean_l, std_l = lap.predict(X_new, return_std=True)
    mean_s, std_s = est.predict(X_new, return_std=True)
    noise = 1.0 / lap.noise_precision_           # both add the same noise variance
    var_f = std_l ** 2 - noise                   # exact function variance, user units
    ess = est.ess_
    np.testing.assert_array_less(np.abs(mean_s - mean_l), 5 * np.sqrt(var_f / ess))
    np.testing.assert_array_less(np.abs((std_s ** 2 - noise) - var_f),
                                 5 * np.sqrt(2 / ess) * var_f)
    # the noise the evidence found is the one in the data
    assert np.sqrt(noise) == pytest.approx(NOISE_SD, rel=0.3)
    np.testing.assert_array_equal(est.predict(X_new), mean_s)
    # and they are the draws' predictive, in the user's units
    m, v = est.sampled_posterior_.predict((X_new - est.x_mean_) / est.x_scale_)
    np.testing.assert_allclose(mean_s, m[:, 0] * est.y_scale_[0] + est.y_mean_[0])
    np.testing.assert_allclose(std_s, np.sqrt(v[:, 0]) * est.y_scale_[0])
    assert not np.array_equal(mean_s, mean_l)


def test_sampling_keeps_the_evidence_fit():
    X, y = _linear_data()
    lap = BayesianMLPRegressor(hidden=()).fit(X, y)
    est = BayesianMLPRegressor(hidden=(), inference="sampling", n_draws=20,
                               n_warmup=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        est.fit(X, y)
    np.testing.assert_array_equal(est.w_, lap.w_)
    assert est.prior_precision_ == lap.prior_precision_
    assert est.noise_precision_ == lap.noise_precision_
    assert est.sampled_posterior_.draws.shape == (2, 20, est.network_.n_weights)
    # refitting with Laplace forgets the draws: predictions are Laplace's again
    est.set_params(inference="laplace").fit(X, y)
    assert not hasattr(est, "sampled_posterior_") and not hasattr(est, "rhat_")
    for a, b in zip(est.predict(X, return_std=True), lap.predict(X, return_std=True)):
        np.testing.assert_array_equal(a, b)


def _softmax(a):
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_classifier_averages_probabilities_not_logits():
    X, labels = _three_classes()
    clf = BayesianMLPClassifier(hidden=(), inference="sampling", n_draws=150,
                                n_warmup=100, random_state=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        clf.fit(X, labels)
    X_new = np.array([[0.0, 0.0], [6.0, 6.0], [-5.0, 4.0]])    # far points: spread logits
    P = clf.predict_proba(X_new)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    sp = clf.sampled_posterior_
    Xs = (X_new - clf.x_mean_) / clf.x_scale_
    probs = np.array([sp.net.forward(w, Xs) for w in sp.draws.reshape(-1, sp.draws.shape[2])])
    np.testing.assert_allclose(P, probs.mean(axis=0), rtol=1e-10)
    # log-probabilities differ from the logits by a per-draw constant, so
    # their mean's softmax is the softmax of the mean logit
    at_mean_logit = _softmax(np.log(probs).mean(axis=0))
    assert np.max(np.abs(P - at_mean_logit)) > 0.02
    np.testing.assert_array_equal(clf.predict(X_new), clf.classes_[P.argmax(axis=1)])
    with pytest.raises(ValueError, match="method"):
        clf.predict_proba(X_new, method="mc")


def test_two_classes_and_a_hyperprior():
    X, labels = _three_classes()
    y = np.where(labels == 0, "no", "yes")
    clf = BayesianMLPClassifier(hidden=(), inference="sampling", n_draws=30,
                                n_warmup=30, hyperprior="gamma", n_chains=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        clf.fit(X, y)
    assert clf.sampled_posterior_.hierarchical
    P = clf.predict_proba(X)
    assert P.shape == (len(X), 2) and np.all((P > 0) & (P < 1))
    assert np.mean(clf.predict(X) == y) > 0.7


@pytest.mark.parametrize("params, name", [
    ({"inference": "mcmc"}, "inference"), ({"n_draws": 3}, "n_draws"),
    ({"n_draws": 10.5}, "n_draws"), ({"n_warmup": -1}, "n_warmup"),
    ({"n_chains": 0}, "n_chains"), ({"hyperprior": "cauchy"}, "hyperprior"),
    ({"hyperprior": (1.0, 1.0)}, "hyperprior"),
])
def test_bad_sampling_settings_are_refused_by_name(params, name):
    X, y = _linear_data(n=10)
    est = BayesianMLPRegressor(hidden=(), **{"inference": "sampling", **params})
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        est.fit(X, y)


def test_short_chains_warn_in_scikit_learns_class_and_verbose_reports(capsys):
    X, y = _linear_data(n=10)
    est = BayesianMLPRegressor(hidden=(), inference="sampling", n_draws=6, n_warmup=5,
                               verbose=True)
    with pytest.warns(SklearnConvergenceWarning, match="ESS") as record:
        est.fit(X, y)
    assert any(isinstance(w.message, SamplingWarning) for w in record)
    out = capsys.readouterr()
    assert "sampling 2 chain(s)" in out.out and "max R-hat" in out.out
    assert "iteration" in out.err          # the chains' progress
