"""A network with no hidden layer and identity outputs is Bayesian linear
regression, whose posterior, predictive distribution and evidence are known
in closed form (PRML sec. 3.3-3.5). The Laplace approximation is exact for
it (the log posterior is quadratic), so sopt.bayes must reproduce the
closed form to round-off.

Tolerances: both sides are a handful of dense factorisations of the same
well-conditioned (cond < 1e4) matrices, so they agree to ~cond * eps ~ 1e-12;
RTOL = 1e-10 leaves headroom while any wrong term (a missing 1/beta, a
factor 2, ln alpha counted per group instead of per weight) is O(1e-2) or
more. The evidence fixed point is reached by iteration on both sides,
stopped at a relative change of 1e-12 per cycle (each iteration contracts
by a factor < 0.5 here), so the two agree to ~1e-10 and FIX_RTOL = 1e-6 (the
requested accuracy) is met with room to spare.
"""
from __future__ import annotations

import numpy as np
import pytest

import sopt
from sopt.bayes import evidence_fit, laplace, weight_groups
from sopt.testing import rel_err as rel

RTOL = 1e-10
FIX_RTOL = 1e-6


def design(X: np.ndarray, K: int) -> np.ndarray:
    """Phi of shape (N K, W) in sopt's layout: weights (K, D) row-major, then
    the K biases; row n K + k is the k-th output of pattern n."""
    N, D = X.shape
    Phi = np.zeros((N, K, K * D + K))
    for k in range(K):
        Phi[:, k, k * D:(k + 1) * D] = X
        Phi[:, k, K * D + k] = 1.0
    return Phi.reshape(N * K, -1)


def data(K: int, N: int = 40, D: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    W_true = rng.standard_normal((K, D))
    b_true = np.array([3.0, -4.0][:K])
    T = X @ W_true.T + b_true + 0.3 * rng.standard_normal((N, K))
    return X, T


def closed_form(Phi, t, alpha_vec, beta):
    """PRML eqs. 3.53-3.54 with prior N(0, diag(alpha)^-1): A, S_N, m_N."""
    A = np.diag(alpha_vec) + beta * Phi.T @ Phi
    S = np.linalg.inv(A)
    m = beta * S @ Phi.T @ t
    return A, S, m


def log_evidence_386(Phi, t, alpha_vec, beta):
    """PRML eq. 3.86, with (M/2) ln alpha generalised to (1/2) sum_i ln alpha_i."""
    A, _, m = closed_form(Phi, t, alpha_vec, beta)
    n = len(t)
    E = 0.5 * beta * np.sum((t - Phi @ m) ** 2) + 0.5 * np.sum(alpha_vec * m * m)
    return (0.5 * np.sum(np.log(alpha_vec)) + 0.5 * n * np.log(beta) - E
            - 0.5 * np.linalg.slogdet(A)[1] - 0.5 * n * np.log(2 * np.pi))


@pytest.mark.parametrize("K", [1, 2])
@pytest.mark.parametrize("hessian", ["exact", "gauss_newton"])
def test_laplace_is_exact_bayesian_linear_regression(K, hessian):
    X, T = data(K)
    N, D = X.shape
    net = sopt.mlp([D, K], output="identity")
    Phi, t = design(X, K), T.ravel()
    alpha, beta = 0.5, 4.0
    W = net.n_weights
    A, S, m = closed_form(Phi, t, np.full(W, alpha), beta)
    post = laplace(net, X, T, m, loss="sse", alpha=alpha, beta=beta, hessian=hessian)

    assert rel(post.precision, A) < RTOL                       # PRML 3.54
    assert rel(post.covariance, S) < RTOL
    assert rel(post.solve(Phi.T), S @ Phi.T) < RTOL
    assert post.log_det == pytest.approx(np.linalg.slogdet(A)[1], rel=RTOL)
    # gamma = sum lambda_i / (alpha + lambda_i), lambda eig of beta Phi^T Phi (3.91)
    lam = np.linalg.eigvalsh(beta * Phi.T @ Phi)
    assert post.gamma == pytest.approx(np.sum(lam / (alpha + lam)), rel=RTOL)
    assert post.log_evidence == pytest.approx(
        log_evidence_386(Phi, t, np.full(W, alpha), beta), rel=RTOL)

    # predictive (PRML 3.58-3.59): mean m^T phi(x), var 1/beta + phi^T S phi
    Xn = np.random.default_rng(1).standard_normal((7, D)) * 2.0
    Pn = design(Xn, K).reshape(7, K, W)
    mean, var = post.predict(Xn)
    cov_f = np.einsum("nkw,wv,nlv->nkl", Pn, S, Pn)
    assert mean.shape == var.shape == (7, K)
    assert rel(mean, Pn @ m) < RTOL
    assert rel(var, 1.0 / beta + np.einsum("nkk->nk", cov_f)) < RTOL
    _, var_f = post.predict(Xn, include_noise=False)
    assert rel(var_f, np.einsum("nkk->nk", cov_f)) < RTOL
    _, full = post.predict(Xn, full_cov=True)
    assert full.shape == (7, K, K)
    assert rel(full, cov_f + np.eye(K) / beta) < RTOL
    _, full_f = post.predict(Xn, full_cov=True, include_noise=False)
    assert rel(full_f, cov_f) < RTOL


def test_two_outputs_are_independent_blocks():
    """With K = 2 and one alpha, Phi^T Phi has no coupling between the two
    outputs' parameters: the evidence is the sum of two single-output
    evidences (each with its own N data points)."""
    X, T = data(2)
    N, D = X.shape
    net = sopt.mlp([D, 2], output="identity")
    alpha, beta = 0.5, 4.0
    Phi = design(X, 2)
    _, _, m = closed_form(Phi, T.ravel(), np.full(net.n_weights, alpha), beta)
    post = laplace(net, X, T, m, loss="sse", alpha=alpha, beta=beta)
    own = [k * D + np.arange(D) for k in range(2)]
    idx = [np.r_[own[k], 2 * D + k] for k in range(2)]
    assert np.all(post.precision[np.ix_(idx[0], idx[1])] == 0.0)
    Phi1 = np.column_stack([X, np.ones(N)])
    parts = [log_evidence_386(Phi1, T[:, k], np.full(D + 1, alpha), beta)
             for k in range(2)]
    assert post.log_evidence == pytest.approx(sum(parts), rel=RTOL)
    assert post.n_data == 2 * N


def fixed_point(Phi, t, groups, n_groups, alpha0=1.0, beta0=1.0, tol=1e-12):
    """Iterate the closed-form re-estimation (PRML 3.92, 3.95; per group
    alpha_g = gamma_g / |m_g|^2, gamma_g = W_g - alpha_g tr_g(S_N))."""
    alpha, beta = np.full(n_groups, alpha0), beta0
    for _ in range(10_000):
        _, S, m = closed_form(Phi, t, alpha[groups], beta)
        gamma_i = 1.0 - alpha[groups] * np.diag(S)
        gamma_g = np.bincount(groups, weights=gamma_i, minlength=n_groups)
        new_alpha = gamma_g / np.bincount(groups, weights=m * m, minlength=n_groups)
        new_beta = (len(t) - gamma_i.sum()) / np.sum((t - Phi @ m) ** 2)
        change = max(np.max(np.abs(new_alpha / alpha - 1)), abs(new_beta / beta - 1))
        alpha, beta = new_alpha, new_beta
        if change < tol:
            return alpha, beta
    raise AssertionError("closed-form re-estimation did not settle")


@pytest.mark.parametrize("K", [1, 2])
def test_evidence_fit_reaches_closed_form_fixed_point(K):
    X, T = data(K)
    net = sopt.mlp([X.shape[1], K], output="identity")
    Phi, t = design(X, K), T.ravel()
    groups = np.zeros(net.n_weights, dtype=int)
    alpha_star, beta_star = fixed_point(Phi, t, groups, 1)
    res = evidence_fit(net, X, T, loss="sse", w0=np.zeros(net.n_weights), alpha=1.0,
                       beta=1.0, max_cycles=200, tol=1e-12,
                       options={"gtol": 1e-10})
    assert res.converged
    assert len(res.history["alpha"]) == res.n_cycles
    assert res.alpha[0] == pytest.approx(alpha_star[0], rel=FIX_RTOL)
    assert res.beta == pytest.approx(beta_star, rel=FIX_RTOL)
    # and the kept posterior is the closed form at those hyperparameters
    _, _, m = closed_form(Phi, t, np.full(net.n_weights, res.alpha[0]), res.beta)
    assert rel(res.w, m) < 1e-8
    assert res.log_evidence == pytest.approx(
        log_evidence_386(Phi, t, np.full(net.n_weights, res.alpha[0]), res.beta),
        rel=RTOL)


def test_per_weight_alphas_match_closed_form_with_diagonal_prior():
    X, T = data(2)
    D = X.shape[1]
    net = sopt.mlp([D, 2], output="identity")
    Phi, t = design(X, 2), T.ravel()
    alpha_vec = np.random.default_rng(3).uniform(0.1, 5.0, net.n_weights)
    beta = 3.0
    A, S, m = closed_form(Phi, t, alpha_vec, beta)
    post = laplace(net, X, T, m, loss="sse", alpha=alpha_vec, beta=beta)
    assert rel(post.precision, A) < RTOL
    assert rel(post.gamma_per_weight, 1.0 - alpha_vec * np.diag(S)) < RTOL
    assert post.log_evidence == pytest.approx(
        log_evidence_386(Phi, t, alpha_vec, beta), rel=RTOL)


def test_grouped_evidence_fit_reaches_closed_form_fixed_point():
    X, T = data(2)
    D = X.shape[1]
    net = sopt.mlp([D, 2], output="identity")
    groups, names = weight_groups(net, "layers")
    assert names == ["layer 1 weights", "layer 1 biases"]
    assert np.array_equal(groups, np.r_[np.zeros(2 * D, int), np.ones(2, int)])
    Phi, t = design(X, 2), T.ravel()
    alpha_star, beta_star = fixed_point(Phi, t, groups, 2)
    res = evidence_fit(net, X, T, loss="sse", w0=np.zeros(net.n_weights), alpha=1.0,
                       beta=1.0, groups="layers", max_cycles=200, tol=1e-12,
                       options={"gtol": 1e-10})
    assert res.converged
    assert np.allclose(res.alpha, alpha_star, rtol=FIX_RTOL, atol=0)
    assert res.beta == pytest.approx(beta_star, rel=FIX_RTOL)
    assert res.log_evidence == pytest.approx(
        log_evidence_386(Phi, t, res.alpha[groups], res.beta), rel=RTOL)
    # the two groups really differ here (biases are few and large)
    assert abs(np.log(alpha_star[0] / alpha_star[1])) > 0.5
