"""Posterior structures: each one's log evidence, gamma and predictive equal
a direct dense computation with the same approximate precision.

The reference assembles H_struct from the dense Gauss-Newton matrix of
:meth:`sopt.Objective.hessian` (another code path: the curvature
accumulator, not the structure's statistics), then A = diag(alpha) + s
H_struct, and evaluates PRML eqs. 5.175 / 5.179 / 5.173 with numpy's
slogdet and inv. A's condition number here is below 1e4, so the two sides
agree to about 1e4 eps ~ 2e-12; RTOL = 1e-10 leaves a margin of 50.
"""
import inspect
import warnings

import numpy as np
import pytest

import sopt
from sopt.bayes import evidence_fit, laplace
from sopt.bayes._subset import output_layer_weights

RTOL = 1e-10      # see module docstring
STRUCTURES = ["dense", "diagonal", "kfac", "last_layer", "subset"]


def _problem(loss: str):
    """(objective, w_map, alpha, beta, X_new): a trained 2-5-K network."""
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (40, 2))
    if loss == "sse":
        net = sopt.mlp([2, 5, 2], hidden="tanh", output="identity")
        T = np.column_stack([np.sin(2 * X[:, 0]), X[:, 1] ** 2])
        T = T + 0.1 * rng.standard_normal(T.shape)
        alpha, beta, decay = 0.7, 50.0, 0.7 / 50.0
    else:
        net = sopt.mlp([2, 5, 3], hidden="tanh", output="softmax")
        T = np.eye(3)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.3).astype(int)]
        alpha, beta, decay = 0.7, None, 0.7
    obj = sopt.Objective(net, X, T, loss=loss)
    res = sopt.optimize.minimize(obj.with_alpha(decay), net.init_weights(seed=0),
                                 method="newton", options={"gtol": 1e-10, "maxiter": 300})
    return obj, res.x, alpha, beta, rng.uniform(-1.5, 1.5, (7, 2))


def _structure(name):
    if name == "subset":          # the first layer's biases and a few weights
        return sopt.bayes.Subset(np.array([0, 3, 10, 11, 12, 14]))
    return name


def _kfac_reference(obj, w, H_gn):
    """K-FAC as laplace-torch's KronLaplace holds it: per edge G_l ⊗ A_s with
    G_l = sum_n B_n the (exact) Gauss-Newton block of layer l's biases and
    A_s = (1/N) sum_n x_n x_n^T of the edge's source values; per bias G_l;
    zero elsewhere."""
    net = obj.net
    z = net.propagate(w, obj.X).z
    H = np.zeros_like(H_gn)
    for layer in net.layers:
        b = layer.bias_slice
        G = H_gn[b, b]
        H[b, b] = G
        for e in layer.edges:
            x = z[e.source.index]
            H[e.weights, e.weights] = np.kron(G, x.T @ x / len(x))
    return H


def _reference(obj, w, alpha, beta, name, X_new):
    """log evidence, gamma and function-space covariance, densely."""
    net = obj.net
    H = obj.hessian(w, "gauss_newton")
    cols = {"dense": np.arange(net.n_weights), "diagonal": np.arange(net.n_weights),
            "kfac": np.arange(net.n_weights),
            "last_layer": output_layer_weights(net),
            "subset": np.array([0, 3, 10, 11, 12, 14])}[name]
    if name == "kfac":
        H = _kfac_reference(obj, w, H)
    H = H[np.ix_(cols, cols)]
    if name == "diagonal":
        H = np.diag(np.diag(H))
    s = 1.0 if beta is None else beta
    a = np.full(len(cols), alpha)
    A = s * H + np.diag(a)
    cov = np.linalg.inv(A)
    log_det = np.linalg.slogdet(A)[1]
    wc = w[cols]
    log_z = obj.loss.log_normaliser(beta)
    n_data = obj.n_patterns * net.n_outputs
    ev = (-(s * obj.value(w) + 0.5 * alpha * wc @ wc) - 0.5 * log_det
          + 0.5 * np.sum(np.log(a)) - n_data * log_z)
    gamma = np.sum(1 - a * np.diag(cov))
    of = "y" if beta is not None else "a"
    J = net.linearise(w, X_new, of=of)[1][:, :, cols]
    return ev, gamma, np.einsum("nkw,wv,nlv->nkl", J, cov, J)


@pytest.mark.parametrize("loss", ["sse", "softmax_ce"])
@pytest.mark.parametrize("name", STRUCTURES)
def test_structure_equals_dense_computation_of_its_precision(name, loss):
    obj, w, alpha, beta, X_new = _problem(loss)
    post = laplace(obj, w, alpha=alpha, beta=beta, structure=_structure(name))
    ev, gamma, cov = _reference(obj, w, alpha, beta, name, X_new)
    assert post.structure == name
    assert abs(post.log_evidence - ev) < RTOL * abs(ev)
    assert abs(post.gamma - gamma) < RTOL * max(1.0, gamma)
    if beta is not None:
        _, var = post.predict(X_new, full_cov=True, include_noise=False)
    else:
        _, var = post.logit_variance(X_new)
    np.testing.assert_allclose(var, cov, rtol=RTOL, atol=RTOL * np.abs(cov).max())


@pytest.mark.parametrize("name", ["diagonal", "kfac", "last_layer"])
def test_structure_draws_have_its_covariance(name):
    """sample() draws from N(w_MAP, A^{-1}): with many draws the covariance of
    the covered weights is A^{-1} within Monte Carlo error; the others stay
    at w_MAP exactly."""
    obj, w, alpha, beta, _ = _problem("sse")
    post = laplace(obj, w, alpha=alpha, beta=beta, structure=name)
    draws = post.sample(40000, seed=1)
    fixed = np.setdiff1d(np.arange(len(w)), post.used)
    assert np.all(draws[:, fixed] == w[fixed])
    C = np.cov(draws[:, post.used].T)
    sd = np.sqrt(np.diag(post.covariance))
    # entries of a sample covariance of 40000 draws: SE <= sd_i sd_j sqrt(2/n)
    tol = 6 * np.outer(sd, sd) * np.sqrt(2 / 40000)
    assert np.all(np.abs(C - post.covariance) < tol)


def test_structure_that_cannot_use_the_exact_hessian_says_so():
    obj, w, alpha, beta, _ = _problem("sse")
    with pytest.raises(ValueError, match="'diagonal' structure is built from 'gauss_newton'"):
        laplace(obj, w, alpha=alpha, beta=beta, structure="diagonal", hessian="exact")
    with pytest.raises(ValueError, match="structure: expected one of"):
        laplace(obj, w, alpha=alpha, beta=beta, structure="blockdiag")
    with pytest.raises(ValueError, match="Subset needs the indices"):
        laplace(obj, w, alpha=alpha, beta=beta, structure="subset")


def test_last_layer_exact_block_is_the_hessians_block():
    """The output layer's weights enter the outputs linearly, so the exact
    Hessian's block is J^T C J with C the exact output curvature; for a
    non-canonical pair (sse on logistic outputs) it differs from the
    Gauss-Newton block, and equals the dense exact Hessian's block."""
    rng = np.random.default_rng(0)
    net = sopt.mlp([2, 3, 1], hidden="tanh", output="logistic")
    X, T = rng.uniform(-1, 1, (15, 2)), rng.uniform(0.2, 0.8, (15, 1))
    obj = sopt.Objective(net, X, T, loss="sse")
    w = net.init_weights(seed=2)
    with warnings.catch_warnings():        # w is not a minimum: only blocks compared
        warnings.simplefilter("ignore")
        post = laplace(obj, w, alpha=1.0, beta=2.0, structure="last_layer",
                       hessian="exact", clip_negative=False)
        gn = laplace(obj, w, alpha=1.0, beta=2.0, structure="last_layer")
    cols = output_layer_weights(net)
    H = obj.hessian(w)[np.ix_(cols, cols)]
    np.testing.assert_allclose(post.data_hessian, H, rtol=0, atol=1e-13 * np.abs(H).max())
    assert np.abs(gn.data_hessian - H).max() > 1e-3 * np.abs(H).max()


def test_evidence_fit_with_a_subset_structure_keeps_uncovered_alphas():
    """last_layer covers the output layer only: the groups of the first
    layer keep their starting alpha; those of the output layer move."""
    obj, _, _, _, _ = _problem("sse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evidence_fit(obj, alpha=0.3, beta=20.0, groups="layers",
                           structure="last_layer", max_cycles=5)
    first_layer = [i for i, n in enumerate(res.group_names) if n.startswith("layer 1")]
    last = [i for i, n in enumerate(res.group_names) if n.startswith("layer 2")]
    assert np.all(res.alpha[first_layer] == 0.3)
    assert np.all(np.abs(res.alpha[last] - 0.3) > 1e-3)
    assert res.posterior.structure == "last_layer"


@pytest.mark.parametrize("name", ["diagonal", "kfac"])
def test_evidence_fit_on_a_structure_reaches_its_fixed_point(name):
    """At convergence alpha = gamma / |w|^2 of the structure's posterior."""
    obj, _, _, _, _ = _problem("softmax_ce")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evidence_fit(obj, alpha=0.3, structure=name, tol=1e-7,
                           max_cycles=200)
    post = res.posterior
    assert res.converged and post.structure == name
    w = post.w_map[post.used]
    np.testing.assert_allclose(res.alpha[0], post.gamma / (w @ w), rtol=1e-5)


@pytest.mark.parametrize("name", ["diagonal", "kfac", "last_layer"])
def test_every_structure_saves_and_loads_exactly(name, tmp_path):
    obj, w, alpha, beta, X_new = _problem("sse")
    post = laplace(obj, w, alpha=alpha, beta=beta, structure=name)
    sopt.save(tmp_path / "p.sopt", post)
    back = sopt.load(tmp_path / "p.sopt")
    assert back.structure == name and back.log_evidence == post.log_evidence
    assert back.gamma == post.gamma and back.newton_decrement == post.newton_decrement
    for a, b in zip(back.predict(X_new), post.predict(X_new)):
        np.testing.assert_array_equal(a, b)


def test_dense_refuses_what_it_cannot_hold_and_names_the_alternatives():
    obj, w, alpha, beta, _ = _problem("sse")
    with pytest.raises(MemoryError, match="or use a structure that does not hold the W x W matrix: structure='kfac', 'diagonal'"):
        laplace(obj, w, alpha=alpha, beta=beta, max_bytes=100)


def test_the_objective_form_signature_is_what_help_shows():
    for fn, first in ((laplace, ["objective", "w_map"]), (evidence_fit, ["objective", "w0"])):
        params = inspect.signature(fn).parameters
        assert list(params)[:2] == first
        assert params["structure"].kind is inspect.Parameter.KEYWORD_ONLY
        assert params["structure"].default == "dense"


@pytest.mark.parametrize("name", ["dense", "diagonal", "kfac"])
def test_with_prior_equals_a_new_laplace_at_the_same_weights(name):
    obj, w, alpha, beta, X_new = _problem("sse")
    post = laplace(obj, w, alpha=alpha, beta=beta, structure=name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # w is not the mode under 2 alpha
        ref = laplace(obj, w, alpha=2 * alpha, beta=3 * beta, structure=name)
    new = post.with_prior(2 * alpha, 3 * beta)
    assert abs(new.log_evidence - ref.log_evidence) < RTOL * abs(ref.log_evidence)
    assert abs(new.newton_decrement - ref.newton_decrement) < RTOL * ref.newton_decrement
    np.testing.assert_allclose(new.predict(X_new)[1], ref.predict(X_new)[1], rtol=RTOL)
    assert post.alpha[0] == alpha          # the original is unchanged
    with pytest.raises(ValueError, match="beta: give a noise precision"):
        post.with_prior(alpha)


@pytest.mark.parametrize("loss", ["sse", "softmax_ce"])
def test_optimize_prior_stops_where_the_evidence_is_stationary(loss):
    """At fixed w and H, alpha = gamma / |w|^2 and 2 beta E_D = N K - gamma
    are exactly d ln p / d ln alpha = 0 and d ln p / d ln beta = 0: central
    differences of the log evidence there vanish to their truncation error
    (h^2 times the curvature, ~1e-6 nats at h = 1e-3) and round-off."""
    obj, w, alpha, beta, _ = _problem(loss)
    post = laplace(obj, w, alpha=alpha, beta=beta, structure="diagonal")
    res = sopt.bayes.optimize_prior(post, tol=1e-12, max_cycles=500)
    assert res.converged
    a, b, h = res.alpha[0], res.beta, 1e-3
    ev = res.posterior.log_evidence

    def at(a_, b_):
        return post.with_prior(a_, b_).log_evidence
    d_alpha = (at(a * np.exp(h), b) - at(a * np.exp(-h), b)) / (2 * h)
    assert abs(d_alpha) < 1e-4, d_alpha
    assert ev >= max(at(a * 1.1, b), at(a / 1.1, b))
    if b is not None:
        d_beta = (at(a, b * np.exp(h)) - at(a, b * np.exp(-h))) / (2 * h)
        assert abs(d_beta) < 1e-4, d_beta


def test_estimators_take_a_structure():
    from sopt.bayes import BayesianMLPClassifier, BayesianMLPRegressor
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (40, 2))
    y = np.sin(2 * X[:, 0]) + 0.1 * rng.standard_normal(40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense = BayesianMLPRegressor(hidden=(3,)).fit(X, y)
        diag = BayesianMLPRegressor(hidden=(3,), structure="diagonal").fit(X, y)
        last = BayesianMLPClassifier(hidden=(3,), structure="last_layer").fit(X, y > 0)
    assert diag.posterior_.structure == "diagonal" and dense.posterior_.structure == "dense"
    assert diag.log_evidence_ != dense.log_evidence_
    assert last.posterior_.structure == "last_layer"
    assert len(last.posterior_.used) == 3 + 1
    with pytest.raises(ValueError, match="cannot compare network sizes"):
        BayesianMLPRegressor(structure="last_layer").fit(X, y)


def test_sampled_posterior_shares_the_draw_interface():
    """sample(n) of the sampled posterior gives (n, W) weight vectors taken
    from its chains, as LaplacePosterior.sample gives them from N(w, A^-1)."""
    obj, w, alpha, beta, _ = _problem("sse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # short trees: the interface is under test, not the mixing
        sp = sopt.bayes.sample_posterior(obj, w, alpha=alpha, beta=beta, n_draws=20,
                                         n_warmup=10, n_chains=2, seed=0,
                                         max_tree_depth=3)
    draws = sp.sample(7, seed=1)
    flat = sp.draws.reshape(-1, len(w))
    assert draws.shape == (7, len(w))
    assert all(np.any(np.all(flat == d, axis=1)) for d in draws)
    np.testing.assert_array_equal(draws, sp.sample(7, seed=1))
