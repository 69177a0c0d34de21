"""BayesianMLPRegressor on noisy sine data with known noise (PRML sec. 5.7.1-2).

Data: N = 200, x ~ U(-1, 1), t = sin(pi x) + 0.1 e, e ~ N(0, 1): the true
noise precision is 1 / 0.1^2 = 100.

Why noise_precision_ within a factor 1.5 of 100: at the evidence fixed point
1/beta = sum_n (y_n - t_n)^2 / (N - gamma) (PRML 5.180), an unbiased-style
residual variance with N - gamma ~ 190 degrees of freedom; if the network
fits sin(pi x) well (8 tanh units do, to ~1e-3) its relative sampling error
is sqrt(2 / 190) ~ 0.10, so a factor 1.5 (ln 1.5 = 0.41, four standard
errors) allows for sampling error and a little misfit, while a wrong
formula (N instead of N - gamma, a missing factor 2) is off by more.

Why 2-sigma bars must cover 90%-99% of 2000 fresh targets: with a correct
predictive N(y, 1/beta + g^T A^-1 g) the coverage is 95.4%; the binomial
standard error on 2000 targets is 0.5%, and beta off by 25% moves it to
~92% or ~98%. Bars without the 1/beta noise term cover far less (~20%).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import sopt
from sopt.bayes import BayesianMLPRegressor, evidence_fit

SIGMA = 0.1


def sine(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 1))
    return x, np.sin(np.pi * x[:, 0]) + SIGMA * rng.standard_normal(n)


@pytest.fixture(scope="module")
def fitted():
    X, t = sine(200, 0)
    reg = BayesianMLPRegressor(hidden=(8,), random_state=0)
    return reg.fit(X, t), X, t


def test_beta_recovers_the_noise_level(fitted):
    reg, X, t = fitted
    assert 100 / 1.5 < reg.noise_precision_ < 100 * 1.5
    assert isinstance(reg.prior_precision_, float) and reg.prior_precision_ > 0
    W = reg.network_.n_weights
    assert 1.0 < reg.gamma_ < W                    # some, not all, well determined
    # noise_precision_ is the fixed point: 1/beta = sum r^2 / (N - gamma) within tol
    r = reg.predict(X) - t
    assert 1 / reg.noise_precision_ == pytest.approx(np.sum(r ** 2) / (len(t) - reg.gamma_),
                                          rel=1e-3)
    assert reg.prior_precision_ == pytest.approx(
        reg.gamma_ / np.sum(reg.w_ ** 2), rel=1e-3)


def test_error_bars_cover_fresh_targets(fitted):
    reg, _, _ = fitted
    Xt, tt = sine(2000, 1)
    mean, std = reg.predict(Xt, return_std=True)
    assert mean.shape == std.shape == (2000,)
    assert np.array_equal(mean, reg.predict(Xt))
    assert np.all(std > np.sqrt(1 / reg.noise_precision_))         # noise + weight part
    cover = np.mean(np.abs(tt - mean) <= 2 * std)
    assert 0.90 <= cover <= 0.99, cover
    # std is sqrt(1/beta + g^T A^-1 g) from the posterior, which is that of
    # the network on standardised inputs and targets
    Zt = (Xt[:5] - reg.x_mean_) / reg.x_scale_
    _, var_f = reg.posterior_.predict(Zt, include_noise=False)
    assert np.allclose(std[:5] ** 2,
                       1 / reg.noise_precision_ + var_f[:, 0] * reg.y_scale_[0] ** 2,
                       rtol=1e-12)
    # error bars widen away from the data (x outside (-1, 1))
    _, std_out = reg.predict(np.array([[3.0]]), return_std=True)
    assert std_out[0] > 2 * np.max(std)
    assert reg.score(Xt, tt) > 0.97               # R^2: noise var 0.01 of 0.51


def test_history_and_cycles(fitted):
    reg, X, _ = fitted
    h = reg.history_
    assert set(h) >= {"alpha", "beta", "gamma", "log_evidence"}
    for key, values in h.items():
        assert len(values) == reg.n_cycles_, key
    assert np.all(np.isfinite(h["log_evidence"]))
    # the history is that of the standardised targets: beta times their
    # variance, ln p(t_std) = ln p(t) + N ln y_scale
    N, scale = len(X), reg.y_scale_[0]
    assert h["log_evidence"][-1] == pytest.approx(reg.log_evidence_ + N * np.log(scale),
                                                  rel=1e-14)
    assert h["gamma"][-1] == reg.gamma_
    assert h["beta"][-1] == pytest.approx(reg.noise_precision_ * scale ** 2, rel=1e-14)
    assert h["alpha"][-1][0] == reg.prior_precision_
    assert reg.n_cycles_ < reg.max_cycles and reg.converged_


def test_restarts_keep_the_best_log_evidence():
    """n_restarts=3 runs evidence_fit from init_weights(seed=random_state + r)
    and keeps the highest log evidence; reproduced here run by run (a smaller
    problem than the fixture's, to keep the test fast)."""
    X, t = sine(60, 4)
    # the estimator fits standardised inputs and targets
    Z, u = (X - X.mean(0)) / X.std(0), (t - t.mean()) / t.std()
    kw = dict(max_cycles=6, tol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sopt.optimize.ConvergenceWarning)
        reg = BayesianMLPRegressor(hidden=(3,), n_restarts=3, random_state=5,
                                   **kw).fit(X, t)
        net = sopt.mlp([1, 3, 1], hidden="tanh", output="identity")
        runs = [evidence_fit(net, Z, u, loss="sse", w0=net.init_weights(seed=5 + r),
                             alpha=0.01, beta=1.0, options={"maxiter": 200},
                             **kw)
                for r in range(3)]
    evid = np.array([r.log_evidence for r in runs])
    # the runs differ, and the best is not the first
    assert np.all(np.isfinite(evid)) and np.ptp(evid) > 1 and np.argmax(evid) > 0
    # reported for the user's targets: ln p(t) = ln p(u) - N ln std(t)
    shift = -len(t) * np.log(t.std())
    assert np.allclose(reg.restarts_log_evidence_, evid + shift, rtol=1e-12, atol=0)
    assert reg.log_evidence_ == pytest.approx(evid.max() + shift, rel=1e-15)
    best = runs[int(np.argmax(evid))]
    assert np.array_equal(reg.w_, best.w)
    assert reg.n_cycles_ == best.n_cycles == len(reg.history_["log_evidence"])
    # the estimator's layers are sopt's weights, transposed as scikit-learn's
    # and rewritten for the user's X and t
    (W1, b1), (W2, b2) = [(lp.weights[0], lp.bias) for lp in net.unpack(reg.w_)]
    assert [c.shape for c in reg.coefs_] == [(1, 3), (3, 1)]
    assert [b.shape for b in reg.intercepts_] == [(3,), (1,)]
    m, sx, sy = X.mean(0), X.std(0), t.std()
    assert np.allclose(reg.coefs_[0], W1.T / sx, rtol=1e-14, atol=0)
    assert np.allclose(reg.intercepts_[0], b1 - W1 @ (m / sx), rtol=1e-13, atol=1e-15)
    assert np.allclose(reg.coefs_[1], sy * W2.T, rtol=1e-14, atol=0)
    assert np.allclose(reg.intercepts_[1], sy * b2 + t.mean(), rtol=1e-13, atol=1e-15)
    hidden = np.tanh(X @ reg.coefs_[0] + reg.intercepts_[0])
    assert np.allclose(hidden @ reg.coefs_[1] + reg.intercepts_[1],
                       reg.predict(X)[:, None], rtol=1e-12, atol=1e-12)


def test_multi_output_and_column_targets():
    X, t = sine(60, 2)
    T = np.column_stack([t, 0.5 * X[:, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sopt.optimize.ConvergenceWarning)
        reg = BayesianMLPRegressor(hidden=(4,), max_cycles=5).fit(X, T)
    mean, std = reg.predict(X[:7], return_std=True)
    assert mean.shape == std.shape == (7, 2)
    assert reg.posterior_.n_data == 120
    # R^2 averaged uniformly over the two outputs
    P = reg.predict(X)
    r2 = [1 - np.sum((T[:, k] - P[:, k]) ** 2) / np.sum((T[:, k] - T[:, k].mean()) ** 2)
          for k in range(2)]
    assert reg.score(X, T) == pytest.approx(np.mean(r2), rel=1e-12)
    col = BayesianMLPRegressor(hidden=()).fit(X, t[:, None])     # linear: fast
    flat = BayesianMLPRegressor(hidden=()).fit(X, t)
    assert col.predict(X[:3]).shape == (3, 1)
    assert flat.predict(X[:3]).shape == (3,)
    assert np.allclose(col.predict(X[:3])[:, 0], flat.predict(X[:3]), rtol=1e-12)


def test_grouped_alphas_and_gauss_newton():
    """One alpha per layer's weights and biases; single-weight groups (the
    output bias) make MacKay's re-estimation slow, so a short run does not
    settle and says so with a ConvergenceWarning."""
    X, t = sine(100, 3)
    reg = BayesianMLPRegressor(hidden=(4,), groups="layers", hessian="gauss_newton",
                               max_cycles=5)
    with pytest.warns(sopt.optimize.ConvergenceWarning, match="max_cycles=5"):
        reg.fit(X, t)
    assert reg.n_cycles_ == 5 and not reg.converged_
    assert reg.prior_precision_.shape == (4,)
    assert reg.group_names_ == ["layer 1 weights", "layer 1 biases",
                                "layer 2 weights", "layer 2 biases"]
    assert all(np.shape(a) == (4,) for a in reg.history_["alpha"])
    assert np.all(reg.prior_precision_ > 0) and 100 / 2 < reg.noise_precision_ < 100 * 2
    assert np.isfinite(reg.log_evidence_)
    # the kept posterior has the per-weight prior of the groups
    groups, _ = sopt.bayes.weight_groups(reg.network_, "layers")
    assert np.array_equal(reg.posterior_.alpha, reg.prior_precision_[groups])
