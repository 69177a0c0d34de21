"""Bayes: the evidence framework on small and noise-free
data, laplace away from a minimum, and argument checks of the posterior."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import sopt
from sopt.bayes import BayesianMLPRegressor, evidence_fit, laplace


def _sine(N, seed=0):
    r = np.random.default_rng(seed)
    X = r.uniform(-1, 1, (N, 1))
    return X, np.sin(np.pi * X[:, 0])


# -------------------------------------------- item 1: small data, no noise
@pytest.mark.parametrize("N", [1, 2, 3, 12])
def test_regressor_fits_tiny_data_sets(N):
    X, t = _sine(N)
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


@pytest.mark.parametrize("N", [1, 2, 3, 12])
def test_evidence_fit_keeps_gamma_below_the_number_of_data(N):
    X, t = _sine(N)
    net = sopt.mlp([1, 10, 1])
    res = evidence_fit(net, X, t, max_cycles=10, beta=1.0)
    for g, b in zip(res.history["gamma"], res.history["beta"]):
        assert 0 <= g <= N
        assert np.isfinite(b) and b > 0
    assert np.all(np.isfinite(res.alpha)) and np.all(res.alpha > 0)
    assert np.isfinite(res.beta) and res.beta > 0
    assert np.isfinite(res.log_evidence)


def test_evidence_fit_zero_data_error_caps_beta():
    Z = np.linspace(-1, 1, 8)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = evidence_fit(sopt.mlp([1, 1]), Z, np.zeros(8), w0=np.zeros(2))
    assert np.isfinite(res.beta) and res.beta > 0
    assert np.all(np.isfinite(res.alpha)) and np.all(res.alpha > 0)
    assert np.isfinite(res.log_evidence)
    assert res.beta == pytest.approx(sopt.bayes._evidence.BETA_MAX, rel=1e-12)
    mean, var = res.posterior.predict(Z)
    assert np.all(np.isfinite(var)) and np.all(var > 0)


def test_evidence_loop_on_normal_data_is_unchanged_and_quiet():
    X, t = _sine(20)
    t = t + 0.1 * np.random.default_rng(1).normal(size=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = evidence_fit(sopt.mlp([1, 3, 1]), X, t, max_cycles=30, beta=1.0)
    post = res.posterior
    assert 0 < post.gamma < 10
    assert res.converged


# -------------------------------------------- item 4: not at a minimum
def test_laplace_warns_away_from_a_minimum():
    Z = np.linspace(-1, 1, 8)[:, None]
    t = 2 * Z[:, 0] + 1
    net = sopt.mlp([1, 1])
    for hessian in ("exact", "gauss_newton"):
        with pytest.warns(sopt.bayes.NotAtMinimumWarning, match=r"\|g\|_inf = 800 .*1.09e\+03 nats") as rec:
            laplace(net, Z, t, np.zeros(2), alpha=0.1, beta=100., hessian=hessian)
        assert issubclass(rec[0].category, UserWarning)
        assert rec[0].filename == __file__      # points at the caller
    # at the exact minimum (linear least squares with decay): no warning
    Phi = np.hstack([Z, np.ones((8, 1))])
    w = np.linalg.solve(100. * Phi.T @ Phi + 0.1 * np.eye(2), 100. * Phi.T @ t)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        post = laplace(net, Z, t, w, alpha=0.1, beta=100.)
    assert np.isfinite(post.log_evidence)


# -------------------------------------------- item 5: argument checks
def _classifier_posterior():
    r = np.random.default_rng(0)
    X = r.normal(size=(12, 2))
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    net = sopt.mlp([2, 3], output="softmax")
    obj = sopt.Objective(net, X, labels, loss="softmax_ce", alpha=1.0)
    w = sopt.optimize.minimize(obj, net.init_weights(0), method="trust-exact").x
    return laplace(net, X, labels, w, loss="softmax_ce", alpha=1.0), X


def test_predict_proba_mc_and_sample_validate_counts():
    post, X = _classifier_posterior()
    p = post.predict_proba(X, method="mc", n_samples=np.array(50))
    assert np.allclose(p.sum(axis=1), 1.0)
    for bad, err in ((0, ValueError), (-3, ValueError), (2.5, TypeError),
                     ("10", TypeError)):
        with pytest.raises(err, match="n_samples"):
            post.predict_proba(X, method="mc", n_samples=bad)
        with pytest.raises(err, match="n"):
            post.sample(bad)
    assert post.sample(2, seed=0).shape == (2, post.w_map.size)


# -------------------------------------------- item 6: max_bytes, 0-d arrays
def test_evidence_fit_takes_max_bytes_as_its_error_advises():
    X, t = _sine(12)
    net = sopt.mlp([1, 3, 1])
    with pytest.raises(MemoryError, match="max_bytes") as err:
        evidence_fit(net, X, t, max_cycles=1, max_bytes=100)
    assert "evidence_fit" in str(err.value) or "max_bytes" in str(err.value)
    res = evidence_fit(net, X, t, max_cycles=1, max_bytes=8 * net.n_weights**2)
    assert np.isfinite(res.log_evidence)


@pytest.mark.filterwarnings("ignore::sopt.bayes.NotAtMinimumWarning")   # w: init
def test_bayes_functions_accept_zero_dimensional_arrays():
    X, t = _sine(12)
    net = sopt.mlp([1, 3, 1])
    w = net.init_weights(0)
    a = laplace(net, X, t, w, alpha=np.array(0.1), beta=np.array(2.0),
                clip_negative=True)
    b = laplace(net, X, t, w, alpha=0.1, beta=2.0, clip_negative=True)
    assert a.log_evidence == b.log_evidence
    r1 = evidence_fit(net, X, t, alpha=np.array(0.1), max_cycles=np.array(1),
                      tol=np.array(1e-4))
    r2 = evidence_fit(net, X, t, alpha=0.1, max_cycles=1, tol=1e-4)
    assert r1.log_evidence == r2.log_evidence


@pytest.mark.filterwarnings("ignore::sopt.bayes.NotAtMinimumWarning")   # new beta
def test_beta_reestimate_is_the_stationary_point_when_gamma_exceeds_n():
    # PRML eq. 5.180 would give beta = (N - gamma) / 2 E_D <= 0 here; the new
    # beta solves N - gamma(beta) = 2 beta E_D at the same w and alpha instead
    from sopt.bayes._evidence import BETA_MAX, _beta_stationary
    X, t = _sine(3)
    net = sopt.mlp([1, 10, 1])
    # the exact Hessian's residual term lifts gamma past N on 3 points
    post = evidence_fit(net, X, t, max_cycles=1, beta=1.0, hessian="exact").posterior
    assert post.gamma_per_weight.sum() > 3 and post.gamma == 3
    beta = _beta_stationary(post, BETA_MAX)
    assert 0 < beta < post.beta
    again = laplace(net, X, t, post.w_map, alpha=post.alpha, beta=beta,
                    hessian="exact", clip_negative=True)
    residual_dof = 3 - again.gamma_per_weight.sum()
    assert residual_dof > 0
    assert residual_dof == pytest.approx(2 * beta * again.data_error, rel=1e-8)


def test_evidence_fit_warns_once_when_its_last_training_stopped_early():
    X, t = _sine(20)
    with pytest.warns(sopt.bayes.NotAtMinimumWarning, match="maxiter") as rec:
        evidence_fit(sopt.mlp([1, 3, 1]), X, t, max_cycles=3, beta=1.0,
                     options={"maxiter": 1})
    assert len([w for w in rec if w.category is sopt.bayes.NotAtMinimumWarning]) == 1


def test_posterior_solve_names_a_wrongly_shaped_right_hand_side():
    rng = np.random.default_rng(0)
    net = sopt.mlp([2, 3, 1])
    X, t = rng.standard_normal((20, 2)), rng.standard_normal(20)
    post = sopt.bayes.laplace(net, X, t, net.init_weights(seed=0), alpha=1.0,
                              beta=1.0, hessian="gauss_newton")
    W = len(post.used)
    for bad in (np.ones(W + 1), np.ones((W, 2, 2)), np.ones((2, W))):
        with pytest.raises(ValueError, match=r"B: expected shape"):
            post.solve(bad)
    with pytest.raises(TypeError, match="B"):
        post.solve(np.ones(W, dtype=complex))
    np.testing.assert_allclose(post.precision @ post.solve(np.ones(W)), np.ones(W),
                               rtol=0, atol=1e-10 * np.linalg.cond(post.precision))
