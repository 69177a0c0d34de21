"""sopt.bayes.laplace and LaplacePosterior (sopt/bayes/_posterior.py) on
awkward input: a w away from the minimum warns (pointing at the caller),
counts and right-hand sides of the wrong type or shape are refused,
naming the argument."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import sopt
from sopt.bayes import laplace


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


@pytest.mark.filterwarnings("ignore::sopt.bayes.NotAtMinimumWarning")   # w: init
def test_posterior_solve_names_a_wrongly_shaped_right_hand_side():
    rng = np.random.default_rng(0)
    net = sopt.mlp([2, 3, 1])
    X, t = rng.standard_normal((20, 2)), rng.standard_normal(20)
    post = laplace(net, X, t, net.init_weights(seed=0), alpha=1.0, beta=1.0,
                   hessian="gauss_newton")
    W = len(post.used)
    for bad in (np.ones(W + 1), np.ones((W, 2, 2)), np.ones((2, W))):
        with pytest.raises(ValueError, match=r"B: expected shape"):
            post.solve(bad)
    with pytest.raises(TypeError, match="B"):
        post.solve(np.ones(W, dtype=complex))
    np.testing.assert_allclose(post.precision @ post.solve(np.ones(W)), np.ones(W),
                               rtol=0, atol=1e-10 * np.linalg.cond(post.precision))
