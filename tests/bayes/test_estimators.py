"""sopt.bayes's estimators (BayesianMLPRegressor, BayesianMLPClassifier,
sopt/bayes/_estimators.py) on awkward input: data sets of one to a dozen
points, and a network too large for the memory limit."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import sopt
from problems import noise_free_sine
from sopt.bayes import BayesianMLPRegressor


def test_estimator_memory_error_says_what_the_estimator_user_can_do(monkeypatch):
    import sopt._validation as validation       # the limit's one home
    monkeypatch.setattr(validation, "DEFAULT_MAX_BYTES", 100)
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(MemoryError, match="use fewer hidden units.*evidence_fit"):
        BayesianMLPRegressor(hidden=(3,)).fit(X, X[:, 0])


@pytest.mark.parametrize("N", [1, 2, 3, 12])
def test_regressor_fits_tiny_data_sets(N):
    X, t = noise_free_sine(N)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sopt.optimize.ConvergenceWarning)
        # N = 12 ends at beta ~ 4e7, where the training's gtol (1e-7 on
        # E_D + alpha/(2 beta) |w|^2) leaves ~0.4 nats: that warning is right
        warnings.simplefilter("ignore", sopt.bayes.NotAtMinimumWarning)
        reg = BayesianMLPRegressor(hidden=(3,), max_cycles=8).fit(X, t)
    assert np.isfinite(reg.prior_precision_) and reg.prior_precision_ > 0
    assert np.isfinite(reg.noise_precision_) and reg.noise_precision_ > 0
    assert 0 <= reg.gamma_ <= N
    assert np.isfinite(reg.log_evidence_)
    mean, std = reg.predict(np.linspace(-1, 1, 5)[:, None], return_std=True)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)
