"""The Bayesian MLP estimators inside scikit-learn: its own estimator checks,
pipelines, searches, parallel cross-validation, cloning and string labels."""
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_iris
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sopt.bayes import (BayesianMLPClassifier, BayesianMLPRegressor,
                        NotAtMinimumWarning, NotFittedError)
from sopt.optimize import ConvergenceWarning

# the checks test the scikit-learn API, not the fit, and fit each estimator
# about fifty times: a network with two hidden units, trained by at most
# five Newton steps, one evidence cycle (under half the time of two cycles
# to convergence). One hidden unit is too few: check_classifiers_train
# wants 83% training accuracy on its three blobs. Five steps stop short of
# the minimum, which the fits report (NotAtMinimumWarning) and the checks
# ignore.
SMALL = dict(hidden=(2,), max_cycles=1, max_iter=5)


@parametrize_with_checks([BayesianMLPRegressor(**SMALL), BayesianMLPClassifier(**SMALL)])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", NotAtMinimumWarning)
        check(estimator)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X, (y - y.mean()) / y.std()


# slow: eight fits for the search and six for cross-validation on 442
# patterns; the estimator checks above (check_pipeline_consistency,
# check_estimators_pickle) and test_clone_keeps_parameters_and_drops_the_fit
# cover pipelines, pickling for worker processes and cloning fast
@pytest.mark.slow
def test_pipeline_grid_search_and_parallel_cross_validation(diabetes):
    X, y = diabetes
    pipe = make_pipeline(StandardScaler(), BayesianMLPRegressor(max_cycles=5))
    search = GridSearchCV(pipe, {"bayesianmlpregressor__hidden": [(1,), (2,)],
                                 "bayesianmlpregressor__alpha": [0.01, 1.0]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
        best = search.best_estimator_
        parallel = cross_val_score(best, X, y, cv=3, n_jobs=2)
        serial = cross_val_score(best, X, y, cv=3)
    # worker processes receive pickled estimators and must compute the same
    np.testing.assert_array_equal(parallel, serial)
    # a linear model's R^2 on diabetes is about 0.5; a broken pipeline
    # (unscaled inputs, untrained network) scores near or below 0
    assert np.all(serial > 0.4) and search.best_score_ > 0.4


# slow: four sampled fits; tests/bayes/test_estimator_sampling.py checks the
# sampling estimators, and the tests here the pipeline, clone and
# cross-validation of the Laplace estimators, fast
@pytest.mark.slow
def test_sampling_estimator_in_a_pipeline_with_clone_and_cross_validation(diabetes):
    X, y = diabetes[0][:90], diabetes[1][:90]
    pipe = make_pipeline(StandardScaler(), BayesianMLPRegressor(
        hidden=(), inference="sampling", n_draws=50, n_warmup=50, random_state=1))
    twin = clone(pipe)
    assert twin.get_params()["bayesianmlpregressor__n_draws"] == 50
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(twin, X, y, cv=3)
        twin.fit(X, y)
    est = twin[-1]
    assert est.sampled_posterior_.draws.shape[:2] == (2, 50)
    # a linear model's R^2 on diabetes is about 0.5 (0.3-0.6 on 30-row folds)
    assert np.all(scores > 0.2)
    with pytest.raises(NotFittedError):
        clone(twin).predict(X)


def test_clone_keeps_parameters_and_drops_the_fit(diabetes):
    X, y = diabetes
    est = BayesianMLPRegressor(hidden=(2,), alpha=0.5, max_cycles=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        twin.predict(X)


def test_string_labels_come_back_as_strings():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = make_pipeline(StandardScaler(),
                            BayesianMLPClassifier(hidden=(2,), max_cycles=3)).fit(X, names)
    pred = clf.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= set(names)
    assert np.mean(pred == names) > 0.9
    P = clf.predict_proba(X)
    assert P.shape == (150, 3) and np.allclose(P.sum(axis=1), 1.0)


def test_invalid_parameter_is_reported_at_fit_by_name():
    with pytest.raises(ValueError, match="'alpha' parameter"):
        BayesianMLPRegressor(alpha=-1.0).fit(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(TypeError, match="'hidden' parameter"):
        BayesianMLPRegressor(hidden="big").fit(np.zeros((3, 1)), np.zeros(3))
