"""Moderated outputs (PRML sec. 4.5.2, 5.7.3): the probit approximation
int sigma(a) N(a | mu, s^2) da ~ sigma(kappa(s^2) mu), kappa = (1 + pi s^2/8)^-1/2,
against Monte-Carlo and quadrature; softmax moderation by Monte-Carlo.

Accuracy of the probit approximation (stated, and measured by Gauss-Hermite
quadrature on mu in [-15, 15], s^2 in [0, 1000] when this test was
written): it is exact at mu = 0 and for s^2 = 0; the largest absolute error
is 0.016, reached for large s^2 where it tends to
sup_z |sigma(z) - Phi(sqrt(pi/8) z)| = 0.0177 (the two curves cross-fitted
at the origin). Small variances do better (0.002 for s^2 <= 1).
PROBIT_ERR = 0.018 is therefore the right bound for all (mu, s^2); it is
larger than the "~0.01" folklore, which holds for s^2 of order 1 only.

Monte-Carlo: with n = 1e6 draws the standard error of a mean of values in
[0, 1] is std / 1e3 <= 5e-4; 5 standard errors is the tolerance.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

import sopt
from sopt.activations import softmax
from sopt.bayes import kappa, laplace, moderated_logistic, moderated_softmax
from sopt.bayes._moderation import MC_BLOCK_VALUES, monte_carlo_softmax

PROBIT_ERR = 0.018
N_MC = 1_000_000


_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(200)    # exact to degree 399


def gauss_hermite_mean(f, mu, s2):
    return float(np.sum(_GH_W * f(mu + np.sqrt(s2) * _GH_X)) / np.sqrt(2 * np.pi))


def test_kappa_values():
    assert kappa(0.0) == 1.0
    assert kappa(8.0 / np.pi) == pytest.approx(1 / np.sqrt(2), rel=1e-15)
    s2 = np.array([0.0, 0.1, 1.0, 10.0, 1e4])
    k = kappa(s2)
    assert np.all(np.diff(k) < 0) and np.all(k > 0)


@pytest.mark.parametrize("mu, s2", [(-3.0, 0.5), (0.0, 4.0), (0.7, 1.0),
                                    (2.0, 3.0), (4.0, 10.0), (1.5, 0.05),
                                    (6.0, 40.0)])
def test_moderated_logistic_matches_monte_carlo(mu, s2):
    rng = np.random.default_rng(0)
    vals = expit(mu + np.sqrt(s2) * rng.standard_normal(N_MC))
    mc, se = vals.mean(), vals.std() / np.sqrt(N_MC)
    quad = gauss_hermite_mean(expit, mu, s2)
    assert abs(mc - quad) < 5 * se                  # the MC reference is sound
    approx = float(moderated_logistic(np.array(mu), np.array(s2)))
    assert abs(approx - mc) < PROBIT_ERR + 5 * se
    if mu == 0.0:
        assert approx == 0.5
    # and it is far better than ignoring the variance whenever that matters
    if abs(expit(mu) - quad) > 0.05:
        assert abs(approx - quad) < 0.25 * abs(expit(mu) - quad)


def test_probit_error_bound_on_a_grid():
    """The stated bound, checked by quadrature on a coarse grid."""
    worst = 0.0
    for s2 in (0.01, 0.3, 1.0, 3.0, 10.0, 100.0):
        for mu in np.linspace(-12, 12, 49):
            q = gauss_hermite_mean(expit, mu, s2)
            worst = max(worst, abs(q - float(moderated_logistic(mu, s2))))
    assert 0.005 < worst < PROBIT_ERR


def test_moderation_pulls_towards_half():
    s2 = np.array([0.0, 0.5, 2.0, 8.0, 50.0, 1e3])
    for mu in (-4.0, -0.3, 0.8, 5.0):
        p = moderated_logistic(np.full_like(s2, mu), s2)
        assert p[0] == pytest.approx(expit(mu), rel=1e-15)
        d = np.abs(p - 0.5)
        assert np.all(np.diff(d) < 0)                   # strictly towards 0.5
        assert np.all(np.sign(p - 0.5) == np.sign(mu))  # never crosses it
    assert np.all(moderated_logistic(np.zeros(3), np.array([0.0, 1.0, 9.0])) == 0.5)


def test_moderated_softmax_rows_and_limits():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 4)) * 3
    var = rng.uniform(0, 5, (6, 4))
    P = moderated_softmax(a, var)
    assert np.allclose(P.sum(axis=1), 1.0, atol=1e-14, rtol=0)
    assert np.allclose(moderated_softmax(a, np.zeros_like(a)), softmax(a),
                       atol=1e-15, rtol=0)
    # a huge variance on every logit flattens the distribution towards uniform
    flat = moderated_softmax(a, np.full_like(a, 1e8))
    assert np.allclose(flat, 0.25, atol=1e-3)


def test_monte_carlo_softmax_matches_direct_average():
    """sopt's MC (eigen-factor of S) against a direct average over Cholesky
    draws of the same Gaussian; the difference of two independent MC
    means has standard error sqrt(se_1^2 + se_2^2)."""
    rng = np.random.default_rng(2)
    N, K, n = 3, 3, 200_000
    a = rng.standard_normal((N, K)) * 2
    R = rng.standard_normal((N, K, K))
    S = R @ R.transpose(0, 2, 1) + 0.1 * np.eye(K)
    ours = monte_carlo_softmax(a, S, n, seed=5)
    L = np.linalg.cholesky(S)
    draws = a[None] + np.einsum("nkl,snl->snk", L, rng.standard_normal((n, N, K)))
    P = softmax(draws)
    direct, se = P.mean(axis=0), P.std(axis=0) / np.sqrt(n)
    assert ours.shape == (N, K)
    assert np.all(np.abs(ours - direct) < 5 * np.sqrt(2) * se + 1e-12)
    assert np.allclose(ours.sum(axis=1), 1.0, atol=1e-12, rtol=0)


def _trained(net, X, T, loss, alpha):
    obj = sopt.Objective(net, X, T, loss=loss, alpha=alpha)
    res = sopt.optimize.minimize(obj, net.init_weights(seed=0), method="trust-exact",
                                 options={"gtol": 1e-9, "maxiter": 500})
    assert res.success
    return res.x


def test_posterior_logistic_moderation_equals_linearised_mc():
    """predict_proba of a logistic network is sigma(kappa(s^2) a_MAP) with
    s^2 = b^T A^-1 b; checked against MC over weights drawn from the
    posterior, pushed through the linearised pre-activation a_MAP + b^T dw
    (post.sample and the output sensitivities, not logit_variance)."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 2))
    t = (X[:, 0] + 0.5 * rng.standard_normal(40) > 0).astype(float)
    net = sopt.mlp([2, 3, 1], output="logistic")
    w = _trained(net, X, t, "binary_ce", 1.0)
    post = laplace(net, X, t, w, loss="binary_ce", alpha=1.0)
    Xn = np.array([[0.0, 0.0], [1.0, -1.0], [4.0, 4.0], [-6.0, 2.0]])
    P = post.predict_proba(Xn)
    assert P.shape == (4, 1)
    B = net.output_sensitivities(w, Xn, of="a")[:, 0, :]
    a_map = net.propagate(w, Xn).a[-1][:, 0]
    s2 = np.einsum("nw,wv,nv->n", B, post.covariance, B)
    assert np.allclose(P[:, 0], expit(a_map / np.sqrt(1 + np.pi * s2 / 8)),
                       rtol=1e-12, atol=0)
    n = 200_000
    dW = post.sample(n, seed=4) - w
    vals = expit(a_map[None] + dW @ B.T)
    mc, se = vals.mean(axis=0), vals.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(P[:, 0] - mc) < PROBIT_ERR + 5 * se)
    assert np.max(s2) > 1.0          # the far points really are moderated
    with pytest.raises(ValueError, match="mc"):
        post.predict_proba(Xn, method="mc")


def test_posterior_softmax_mc_equals_weight_space_mc():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 2))
    labels = np.argmax(X @ np.array([[1.0, 0, -1], [0, 1.0, -1]])
                       + 0.5 * rng.standard_normal((60, 3)), axis=1)
    net = sopt.mlp([2, 3, 3], output="softmax")
    w = _trained(net, X, labels, "softmax_ce", 1.0)
    post = laplace(net, X, labels, w, loss="softmax_ce", alpha=1.0)
    Xn = np.array([[0.0, 0.0], [2.0, -1.0], [-3.0, 3.0]])
    n = 100_000
    P_mc = post.predict_proba(Xn, method="mc", n_samples=n, seed=1)
    B = net.output_sensitivities(w, Xn, of="a")
    a_map = net.propagate(w, Xn).a[-1]
    dW = post.sample(n, seed=2) - w
    vals = softmax(a_map[None] + np.einsum("nkw,sw->snk", B, dW))
    direct, se = vals.mean(axis=0), vals.std(axis=0) / np.sqrt(n)
    assert P_mc.shape == (3, 3)
    assert np.all(np.abs(P_mc - direct) < 5 * np.sqrt(2) * se + 1e-12)
    for P in (P_mc, post.predict_proba(Xn)):
        assert np.allclose(P.sum(axis=1), 1.0, atol=1e-12, rtol=0)
    # the per-logit probit (shift-free variances) is an approximation of this
    # average: it may be sharper, but it keeps every confident decision
    P = post.predict_proba(Xn)
    confident = P_mc.max(axis=1) > 0.6
    assert confident.any()
    np.testing.assert_array_equal(P.argmax(axis=1)[confident], P_mc.argmax(axis=1)[confident])


def test_monte_carlo_softmax_memory_is_bounded_and_rows_are_independent():
    """n_samples x N x K draws would be 80 MB here: the rows go in blocks,
    and every row's probabilities are those it gets predicted alone."""
    import tracemalloc
    rng = np.random.default_rng(6)
    N, K, n = 2000, 5, 1000
    a = 3 * rng.standard_normal((N, K))
    R = rng.standard_normal((N, K, K))
    S = R @ R.transpose(0, 2, 1)
    tracemalloc.start()
    P = monte_carlo_softmax(a, S, n, seed=3)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # a few block-sized temporaries (draws, exp, quotient), not one 80 MB array
    assert peak < 5 * 8 * MC_BLOCK_VALUES < 8 * n * N * K
    for rows in (slice(0, 1), slice(7, 10), slice(1990, 2000)):
        np.testing.assert_allclose(monte_carlo_softmax(a[rows], S[rows], n, seed=3),
                                   P[rows], rtol=1e-13, atol=1e-15)


def test_softmax_probit_ignores_the_common_shift_of_the_logits():
    """Softmax does not see a shift of all logits, so variance along
    (1, ..., 1) must not flatten the probit-moderated rows: the variances
    are diag(P S P), P = I - 1 1^T / K, and adding c 1 1^T to S changes
    nothing."""
    from sopt.bayes._moderation import shift_free_variances
    rng = np.random.default_rng(8)
    N, K = 5, 4
    R = rng.standard_normal((N, K, K))
    S = R @ R.transpose(0, 2, 1)
    P = np.eye(K) - 1.0 / K
    np.testing.assert_allclose(shift_free_variances(S), np.einsum("nkk->nk", P @ S @ P),
                               rtol=1e-12, atol=1e-12)
    shifted = S + 50.0 * np.ones((K, K))
    np.testing.assert_allclose(shift_free_variances(shifted), shift_free_variances(S),
                               rtol=1e-12, atol=1e-10)
    a = 2 * rng.standard_normal((N, K))
    sharp = moderated_softmax(a, shift_free_variances(shifted))
    assert np.max(np.abs(sharp - moderated_softmax(a, np.einsum("nkk->nk", S)))) > 0.01
    # the posterior's default predictive is this one
    X = rng.standard_normal((60, 2))
    labels = np.argmax(X @ np.array([[1.0, 0, -1], [0, 1.0, -1]]), axis=1)
    net = sopt.mlp([2, 3], output="softmax")
    w = _trained(net, X, labels, "softmax_ce", 1.0)
    post = laplace(net, X, labels, w, loss="softmax_ce", alpha=1.0)
    a_new, S_new = post.logit_variance(X[:4])
    np.testing.assert_array_equal(post.predict_proba(X[:4]),
                                  moderated_softmax(a_new, shift_free_variances(S_new)))
