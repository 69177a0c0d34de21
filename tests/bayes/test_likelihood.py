"""A Loss describes its likelihood, and sopt.bayes reads that description
instead of the loss's name: a user loss that declares a likelihood works in
laplace and evidence_fit; one that declares none is refused clearly."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import sopt
from sopt.bayes import evidence_fit, laplace
from sopt.losses import BINARY_CE, LIKELIHOODS, LOSSES, SOFTMAX_CE, SSE, Loss
from sopt.objective import (OBJECTIVE_MEMBERS, ObjectiveProtocol,
                            missing_members)
from sopt.optimize._problem import make_problem
from sopt.testing import random_targets


def _sse_copy(**fields) -> Loss:
    """The sum-of-squares error written by a user: not the table's object,
    so no closed-form pairing and no name to be recognised by."""
    return Loss(lambda y, T: 0.5 * np.sum((y - T) ** 2, axis=1),
                lambda y, T: y - T,
                lambda y, T: np.einsum("nk,kl->nkl", np.ones_like(y), np.eye(y.shape[1])),
                name="my_sse", **fields)


def _regression(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (25, 1))
    T = np.sin(3 * X) + 0.1 * rng.standard_normal(X.shape)
    net = sopt.mlp([1, 3, 1])
    obj = sopt.Objective(net, X, T, alpha=0.1 / 50.0)
    w = sopt.optimize.minimize(obj, net.init_weights(seed=1),
                               options={"gtol": 1e-10, "maxiter": 300}).x
    return net, X, T, w


# ------------------------------------------------------------- the fields
def test_built_in_losses_declare_their_likelihoods():
    assert (SSE.likelihood, SSE.noise_precision, SSE.predictive_output) == (
        "gaussian", True, None)
    assert (BINARY_CE.likelihood, BINARY_CE.noise_precision,
            BINARY_CE.predictive_output) == ("bernoulli", False, "logistic")
    assert (SOFTMAX_CE.likelihood, SOFTMAX_CE.noise_precision,
            SOFTMAX_CE.predictive_output) == ("categorical", False, "softmax")
    assert Loss(SSE.value, SSE.grad).likelihood is None       # the default


def test_log_normaliser_is_that_of_the_distribution():
    for beta in (0.5, 1.0, 40.0):
        assert SSE.log_normaliser(beta) == pytest.approx(0.5 * np.log(2 * np.pi / beta),
                                                         rel=1e-15)
    assert SSE.log_normaliser(None) == SSE.log_normaliser(1.0)
    assert BINARY_CE.log_normaliser() == 0.0 == SOFTMAX_CE.log_normaliser()
    # exp(-E) integrates to Z over t: Gaussian, one output, beta = 4
    t = np.linspace(-10, 10, 20001)[:, None]
    Z = np.sum(np.exp(-4.0 * SSE.value(np.zeros_like(t), t))) * (t[1, 0] - t[0, 0])
    assert np.log(Z) == pytest.approx(SSE.log_normaliser(4.0), rel=1e-9)


def test_a_loss_declaring_an_unknown_likelihood_or_noise_is_refused():
    with pytest.raises(ValueError, match="likelihood: expected one of"):
        Loss(SSE.value, SSE.grad, likelihood="poisson")
    with pytest.raises(ValueError, match="noise_precision"):
        Loss(SSE.value, SSE.grad, likelihood="bernoulli", noise_precision=True)
    with pytest.raises(ValueError, match="noise_precision"):
        Loss(SSE.value, SSE.grad, noise_precision=True)
    with pytest.raises(ValueError, match="no likelihood"):
        Loss(SSE.value, SSE.grad).sample_targets(np.zeros((2, 1)), 0)


def test_sample_targets_draws_from_the_likelihood():
    rng = np.random.default_rng(0)
    n = 200_000
    y = np.tile([[0.5, -2.0]], (n, 1))
    t = SSE.sample_targets(y, rng, beta=4.0)
    np.testing.assert_allclose(t.mean(axis=0), [0.5, -2.0], atol=0.01)
    np.testing.assert_allclose(t.var(axis=0), [0.25, 0.25], rtol=0.02)
    p = np.tile([[0.2, 0.9]], (n, 1))
    b = BINARY_CE.sample_targets(p, rng)
    assert set(np.unique(b)) <= {0.0, 1.0}
    np.testing.assert_allclose(b.mean(axis=0), [0.2, 0.9], atol=0.01)
    q = np.tile([[0.1, 0.6, 0.3]], (n, 1))
    c = SOFTMAX_CE.sample_targets(q, rng)
    np.testing.assert_array_equal(c.sum(axis=1), 1.0)
    np.testing.assert_allclose(c.mean(axis=0), [0.1, 0.6, 0.3], atol=0.01)
    # a seed is a generator too, and the draws are reproducible
    np.testing.assert_array_equal(SOFTMAX_CE.sample_targets(q[:5], 3),
                                  SOFTMAX_CE.sample_targets(q[:5], 3))


def test_random_targets_follow_the_losses_targets_field():
    """A user loss on [0, 1] targets gets targets in [0, 1] (by name it got
    standard normal ones, outside its domain); the built-ins' draws are
    those they always were."""
    unit = Loss(BINARY_CE.value, BINARY_CE.grad, name="my_ce", targets="unit")
    T = random_targets(np.random.default_rng(0), 100, 2, unit)
    assert T.min() >= 0 and T.max() <= 1
    for name in LOSSES:
        np.testing.assert_array_equal(
            random_targets(np.random.default_rng(1), 6, 3, name),
            random_targets(np.random.default_rng(1), 6, 3, LOSSES[name]))


# ------------------------------------------------- sopt.bayes reads the fields
def test_user_gaussian_loss_gives_the_posterior_of_sse():
    net, X, T, w = _regression()
    kw = dict(alpha=0.1, beta=50.0, hessian="gauss_newton")
    ref = laplace(net, X, T, w, loss="sse", **kw)
    mine = laplace(net, X, T, w, loss=_sse_copy(likelihood="gaussian",
                                                noise_precision=True), **kw)
    assert mine.likelihood == "gaussian" and mine.loss == "my_sse"
    # the same arithmetic up to the closed-form pairing's round-off
    np.testing.assert_allclose(mine.precision, ref.precision, rtol=1e-12, atol=1e-12)
    assert mine.log_evidence == pytest.approx(ref.log_evidence, rel=1e-12)
    assert mine.gamma == pytest.approx(ref.gamma, rel=1e-12)
    for a, b in zip(mine.predict(X[:4]), ref.predict(X[:4])):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    obj = sopt.Objective(net, X, T, loss=mine_loss(), alpha=1.0)
    assert laplace(obj, w, **kw).log_evidence == pytest.approx(ref.log_evidence, rel=1e-12)


def mine_loss() -> Loss:
    return _sse_copy(likelihood="gaussian", noise_precision=True)


def test_user_gaussian_loss_runs_the_evidence_loop_of_sse():
    net, X, T, w = _regression()
    kw = dict(w0=w, alpha=0.1, beta=50.0, max_cycles=3, hessian="gauss_newton")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = evidence_fit(net, X, T, loss="sse", **kw)
        mine = evidence_fit(net, X, T, loss=mine_loss(), **kw)
    assert mine.beta is not None            # re-estimated, as for sse
    assert mine.beta == pytest.approx(ref.beta, rel=1e-6)
    np.testing.assert_allclose(mine.alpha, ref.alpha, rtol=1e-6)
    assert mine.log_evidence == pytest.approx(ref.log_evidence, rel=1e-8)


def test_gaussian_loss_without_noise_precision_has_unit_noise():
    """exp(-E_n) of 1/2 |y - t|^2 is unit-variance Gaussian noise: with no
    beta the posterior is that of sse at beta = 1."""
    net, X, T, w = _regression()     # a minimum at beta = 50: warned, irrelevant here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sopt.bayes.NotAtMinimumWarning)
        ref = laplace(net, X, T, w, loss="sse", alpha=0.1, beta=1.0)
        fixed = laplace(net, X, T, w, loss=_sse_copy(likelihood="gaussian"), alpha=0.1)
    assert fixed.beta is None
    assert fixed.log_evidence == pytest.approx(ref.log_evidence, rel=1e-12)
    for a, b in zip(fixed.predict(X[:3]), ref.predict(X[:3])):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    with pytest.raises(ValueError, match="beta: only a loss with a noise precision"):
        laplace(net, X, T, w, loss=_sse_copy(likelihood="gaussian"), alpha=0.1, beta=2.0)


def test_a_loss_without_likelihood_is_refused_clearly():
    net, X, T, w = _regression()
    plain = _sse_copy()
    with pytest.raises(ValueError, match="loss: 'my_sse' has no likelihood"):
        laplace(net, X, T, w, loss=plain, alpha=0.1, beta=50.0)
    with pytest.raises(ValueError, match="has no likelihood"):
        laplace(sopt.Objective(net, X, T, loss=plain), w, alpha=0.1, beta=50.0)
    with pytest.raises(ValueError, match="has no likelihood"):
        evidence_fit(net, X, T, loss=plain, w0=w)


def test_user_bernoulli_loss_is_held_to_its_predictive_output():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 2))
    T = (X[:, :1] > 0).astype(float)
    mine = Loss(BINARY_CE.value, BINARY_CE.grad, BINARY_CE.hess, "my_ce",
                targets="unit", likelihood="bernoulli")
    soft = sopt.mlp([2, 2], output="softmax")
    with pytest.raises(ValueError, match="needs the built-in 'logistic' output.*"
                                         "use loss='softmax_ce'"):
        laplace(soft, X, np.column_stack([T, 1 - T]), soft.init_weights(seed=0),
                loss=mine)
    net = sopt.mlp([2, 1], output="logistic")
    w = sopt.optimize.minimize(sopt.Objective(net, X, T, loss=mine, alpha=1.0),
                               net.init_weights(seed=0)).x
    # the exact Hessian: a Gauss-Newton split at the outputs (a user loss)
    # and at the logits (the canonical built-in pair) differ
    post = laplace(net, X, T, w, loss=mine, alpha=1.0, hessian="exact")
    ref = laplace(net, X, T, w, loss="binary_ce", alpha=1.0, hessian="exact")
    np.testing.assert_allclose(post.predict_proba(X[:5]), ref.predict_proba(X[:5]),
                               rtol=1e-10)
    with pytest.raises(ValueError, match="use predict_proba"):
        post.predict(X[:5])


def test_user_loss_posterior_saves_and_loads(tmp_path):
    net, X, T, w = _regression()
    post = laplace(net, X, T, w, loss=mine_loss(), alpha=0.1, beta=50.0)
    sopt.save(tmp_path / "post.sopt", post)
    back = sopt.load(tmp_path / "post.sopt")
    assert (back.loss, back.likelihood, back.beta) == ("my_sse", "gaussian", 50.0)
    np.testing.assert_array_equal(back.predict(X[:3])[1], post.predict(X[:3])[1])


def test_likelihoods_table_is_what_losses_can_declare():
    assert set(LIKELIHOODS) == {"gaussian", "bernoulli", "categorical"}
    assert [k for k, v in LIKELIHOODS.items() if v.noise_precision] == ["gaussian"]


# ---------------------------------------------------------- the protocol
def test_objectives_are_objective_protocols():
    net, X, T, w = _regression()
    obj = sopt.Objective(net, X, T)
    assert isinstance(obj, ObjectiveProtocol) and missing_members(obj) == []
    assert isinstance(obj.with_alpha(2.0), ObjectiveProtocol)
    assert not isinstance(net, ObjectiveProtocol)
    assert {"net", "loss", "n_patterns", "alpha", "value", "gradient", "hvp", "gnvp",
            "hessian", "hessian_diagonal", "with_alpha", "fun", "jac", "hess",
            "hessp"} == set(OBJECTIVE_MEMBERS)


class _Partial:
    """What laplace once checked for, and no more: not an objective."""

    def __init__(self, obj):
        for name in ("net", "loss", "n_patterns", "value", "gradient", "hessian",
                     "with_alpha"):
            setattr(self, name, getattr(obj, name))


def test_laplace_and_minimize_name_what_an_objective_lacks():
    net, X, T, w = _regression()
    partial = _Partial(sopt.Objective(net, X, T))
    with pytest.raises(TypeError, match=r"ObjectiveProtocol.*\(no alpha, hvp, gnvp, "
                                        r"hessian_diagonal, fun, jac, hess, hessp\)"):
        laplace(partial, w, alpha=0.1, beta=50.0)
    partial.fun = partial.jac = partial.value     # once taken for an objective
    with pytest.raises(TypeError, match="obj: expected a sopt Objective .*no alpha"):
        make_problem(partial)
