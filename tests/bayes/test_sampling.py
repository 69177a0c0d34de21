"""sopt.bayes.sample_posterior: draws against closed forms, the metric's
effect, the Gibbs conditionals, the predictives and the argument checks.

Tolerances are Monte Carlo errors from the bulk ESS the sampler reports: a
mean is checked to 5 standard errors (sd / sqrt(ESS)), a variance of a
whitened coordinate (true value 1) to 5 sqrt(2 / ESS), the standard error
of a sample variance of a near-Gaussian quantity. Seeds are fixed, so the
tests are deterministic; 5 sigma keeps a correct sampler from failing
under another seed."""
import threading
import warnings

import numpy as np
import pytest
from scipy import stats

import sopt
from sopt.bayes import SamplingWarning, sample_posterior
from sopt.bayes._diagnostics import ess_bulk, rhat
from sopt.bayes._sampling_targets import Centred, Collapsed, Hyperprior, NonCentred


def _linear_problem(scales=(1.0, 1.0), n=30, seed=0):
    """A linear network y = w^T x + b on correlated inputs, and its design
    matrix Phi (N, W) read off the network itself (y(e_i) - y(0))."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, 2))
    X = np.column_stack([Z[:, 0], 0.8 * Z[:, 0] + 0.6 * Z[:, 1]]) * np.asarray(scales)
    t = X @ (np.array([0.5, -1.0]) / np.asarray(scales)) + 0.3 + 0.5 * rng.standard_normal(n)
    net = sopt.mlp([2, 1])
    W = net.n_weights
    y0 = net.forward(np.zeros(W), X)[:, 0]
    Phi = np.column_stack([net.forward(np.eye(W)[i], X)[:, 0] - y0 for i in range(W)])
    return net, X, t, Phi


def _closed_form(Phi, t, alpha, beta):
    """Posterior mean and precision of Bayesian linear regression (PRML
    eqs. 3.53-3.54)."""
    A = alpha * np.eye(Phi.shape[1]) + beta * Phi.T @ Phi
    return np.linalg.solve(A, beta * Phi.T @ t), A


def test_conjugate_regression_matches_closed_form():
    net, X, t, Phi = _linear_problem()
    alpha, beta = 0.5, 4.0
    m, A = _closed_form(Phi, t, alpha, beta)
    sp = sample_posterior(net, X, t, m, loss="sse", alpha=alpha, beta=beta,
                          n_draws=300, n_warmup=100, seed=1)
    w = sp.draws.reshape(-1, net.n_weights)
    # whiten with the true posterior: z = L^T (w - m) ~ N(0, I) exactly
    L = np.linalg.cholesky(A)
    z = (w - m) @ L
    ess = ess_bulk(z.reshape(sp.n_chains, sp.n_draws, -1))
    assert np.all(ess > 150)
    np.testing.assert_array_less(np.abs(z.mean(axis=0)), 5 / np.sqrt(ess))
    C = np.cov(z.T)
    np.testing.assert_array_less(np.abs(np.diag(C) - 1), 5 * np.sqrt(2 / ess))
    off = C[np.triu_indices(len(C), 1)]
    assert np.all(np.abs(off) < 5 / np.sqrt(ess.min()))
    # the predictive: mean phi^T m, variance 1/beta + phi^T A^-1 phi
    mean, var = sp.predict(X[:3])
    phi = Phi[:3]
    exact_var = 1 / beta + np.einsum("nw,nw->n", phi, np.linalg.solve(A, phi.T).T)
    sd_f = np.sqrt(exact_var - 1 / beta)
    np.testing.assert_array_less(np.abs(mean[:, 0] - phi @ m), 5 * sd_f / np.sqrt(ess.min()))
    np.testing.assert_allclose(var[:, 0], exact_var,
                               atol=5 * np.sqrt(2 / ess.min()) * sd_f.max() ** 2)
    assert sp.max_rhat < 1.05 and sp.n_divergent == 0


def test_laplace_metric_beats_identity_on_a_badly_scaled_posterior():
    # inputs on scales 10 and 0.1: posterior sds differ by 100, and the
    # correlated inputs tilt it; the Laplace metric makes it isotropic
    net, X, t, Phi = _linear_problem(scales=(10.0, 0.1))
    m, _ = _closed_form(Phi, t, 1e-4, 4.0)
    runs = {}
    for metric in ("laplace", "identity"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)
            runs[metric] = sample_posterior(net, X, t, m, loss="sse", alpha=1e-4,
                                            beta=4.0, metric=metric, n_draws=100,
                                            n_warmup=100, n_chains=1, seed=2,
                                            max_tree_depth=6)
    # Without the Laplace metric the step must resolve the narrowest
    # direction while the trajectory crosses the widest: steps 12-45 times
    # shorter and 6-11 times the gradients for the same 200 iterations
    # (measured over seeds 2-5 and OpenBLAS's Haswell, Sandy Bridge and
    # Nehalem kernels; with the metric the runs are the same to round-off
    # on all three). Gradients per effective draw would say the same but
    # the ESS of 100 draws varies by several fold between CPUs.
    lap, ident = runs["laplace"], runs["identity"]
    assert np.mean(lap.step_size) > 5 * np.mean(ident.step_size)
    assert ident.n_gradients > 4 * lap.n_gradients


def _fixed_w_target(seed=0):
    net, X, t, _ = _linear_problem(seed=seed)
    data = sopt.Objective(net, X, t, loss="sse")
    w = np.array([0.7, -1.2, 0.4])
    used = np.arange(net.n_weights)
    return net, data, w, used


def test_gibbs_step_draws_alpha_and_beta_from_their_conditionals():
    # the sampler's own Gibbs step (Centred.after_transition), repeated at
    # one w: its alpha_g and beta follow Gamma(a + W_g/2, b + |w_g|^2/2) and
    # Gamma(a + N/2, b + E_D) (a Kolmogorov-Smirnov test on 3000 draws)
    net, data, w, used = _fixed_w_target()
    groups = np.array([0, 0, 1])         # two weights, then the bias
    a, b = 2.0, 0.5
    hyper = Hyperprior(groups, 2, a, b, n_data=data.n_patterns)
    target = Centred(data, w, used, np.ones(3), 1.0, hyper)
    rng = np.random.default_rng(3)
    alpha, beta = [], []
    for _ in range(3000):
        assert target.after_transition(w, rng) is w     # U changed
        alpha.append(target.alpha_g.copy())
        beta.append(target.beta)
        np.testing.assert_array_equal(target.alpha, target.alpha_g[groups])
    alpha, beta = np.array(alpha), np.array(beta)
    e_d = data.value(w)
    for g, idx in enumerate(([0, 1], [2])):
        shape, rate = a + len(idx) / 2, b + np.sum(w[idx] ** 2) / 2
        assert stats.kstest(alpha[:, g], stats.gamma(shape, scale=1 / rate).cdf).pvalue > 1e-3
    shape, rate = a + data.n_patterns / 2, b + e_d
    assert stats.kstest(beta, stats.gamma(shape, scale=1 / rate).cdf).pvalue > 1e-3


def _check_gradient(target, q):
    value, g = target.potential(q.copy())
    assert value == pytest.approx(target.value(q.copy()), rel=1e-12)
    eps = 1e-6
    fd = [(target.value(q + eps * e) - target.value(q - eps * e)) / (2 * eps)
          for e in np.eye(len(q))]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_collapsed_and_non_centred_gradients_match_finite_differences():
    net, data, w, used = _fixed_w_target()
    hyper = Hyperprior(np.array([0, 0, 1]), 2, 1.5, 0.3, n_data=data.n_patterns)
    _check_gradient(Collapsed(data, w, used, hyper), w)
    for kappa in ([1.0, 1.0], [0.3, 0.0]):          # non-centred, partially, centred
        target = NonCentred(data, w, used, hyper, kappa)
        q = target.start(w, np.array([0.7, 2.0]), 3.0)      # (z, ln alpha_g, ln beta)
        _check_gradient(target, q)
        np.testing.assert_allclose(target.weights(q), w, rtol=1e-14)


@pytest.mark.parametrize("kappa", [[1.0, 1.0], [0.3, 0.0]])
def test_non_centred_density_is_the_joint_posterior_in_its_coordinates(kappa):
    # U(z, ln alpha, ln beta) - U at another point equals the change of
    # -ln p(w, alpha, beta | D) minus the log Jacobian ln|d(w, alpha, beta) /
    # d(z, ln alpha, ln beta)| = -sum_g kappa_g (W_g / 2) ln alpha_g
    # + sum_g ln alpha_g + ln beta
    net, data, w, used = _fixed_w_target()
    a, b = 1.5, 0.3
    hyper = Hyperprior(np.array([0, 0, 1]), 2, a, b, n_data=data.n_patterns)
    target = NonCentred(data, w, used, hyper, kappa)
    N, kappa = data.n_patterns, np.array(kappa)

    def joint(w, alpha_g, beta):         # -ln p(w, alpha, beta | D) + const
        al = alpha_g[[0, 0, 1]]
        out = beta * data.value(w) - N / 2 * np.log(beta) + 0.5 * np.sum(al * w * w)
        out -= np.sum(np.log(al)) / 2
        return out - np.sum(stats.gamma(a, scale=1 / b).logpdf(np.r_[alpha_g, beta]))

    def log_jacobian(alpha_g, beta):
        return (-np.sum(kappa * np.array([2, 1]) / 2 * np.log(alpha_g))
                + np.sum(np.log(alpha_g)) + np.log(beta))

    points = [(w, np.array([0.7, 2.0]), 3.0), (0.5 * w + 0.1, np.array([1.9, 0.2]), 1.3)]
    U = [target.value(target.start(*pt)) for pt in points]
    expected = [joint(*pt) - log_jacobian(*pt[1:]) for pt in points]
    assert U[1] - U[0] == pytest.approx(expected[1] - expected[0], rel=1e-10)


def _exact_hyper_moments(Phi, t, a, b, n_grid=201):
    """Mean and sd of ln alpha and ln beta under Gamma(a, b) hyperpriors for
    Bayesian linear regression, by quadrature of the exact evidence (PRML
    eq. 3.86, in the eigenbasis of Phi^T Phi) on a grid of (ln alpha,
    ln beta) wide enough that the posterior vanishes at its edges
    (checked)."""
    N, M = Phi.shape
    lam, V = np.linalg.eigh(Phi.T @ Phi)
    c = V.T @ Phi.T @ t
    la, lb = np.meshgrid(np.linspace(-8, 6, n_grid), np.linspace(-4, 6, n_grid),
                         indexing="ij")
    alpha, beta = np.exp(la)[..., None], np.exp(lb)[..., None]
    prec = alpha + beta * lam                        # eigenvalues of A
    m = beta * c / prec                              # m_N in the eigenbasis
    residual = t @ t - 2 * np.sum(m * c, axis=-1) + np.sum(lam * m * m, axis=-1)
    E = beta[..., 0] / 2 * residual + alpha[..., 0] / 2 * np.sum(m * m, axis=-1)
    log_ev = M / 2 * la + N / 2 * lb - E - np.sum(np.log(prec), axis=-1) / 2
    # Gamma(a, b) on alpha and beta, times the Jacobians of the logarithms
    log_post = log_ev + a * (la + lb) - b * (np.exp(la) + np.exp(lb))
    p = np.exp(log_post - log_post.max())
    p /= p.sum()
    edges = np.concatenate([p[0], p[-1], p[:, 0], p[:, -1]])
    assert edges.max() < 1e-8
    mean = np.array([np.sum(p * la), np.sum(p * lb)])
    sd = np.sqrt([np.sum(p * (la - mean[0]) ** 2), np.sum(p * (lb - mean[1]) ** 2)])
    return mean, sd


@pytest.mark.parametrize("update", ["joint", "gibbs", "marginal"])
def test_hyperprior_matches_the_exact_posterior_of_alpha_and_beta(update):
    # each way of integrating alpha and beta: the means of ln alpha and ln
    # beta within 5 Monte Carlo standard errors of the exact ones, the sds
    # within 5 sqrt(1 / (2 ESS)) relative (the sd of a sample sd)
    net, X, t, Phi = _linear_problem(n=20)
    a, b = 1.0, 0.5
    exact_mean, exact_sd = _exact_hyper_moments(Phi, t, a, b)
    m, _ = _closed_form(Phi, t, 1.0, 4.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        sp = sample_posterior(net, X, t, m, loss="sse", alpha=1.0, beta=4.0,
                              hyperprior=(a, b), hyper_update=update,
                              n_draws=500, n_warmup=200, seed=4)
    h = np.concatenate([np.log(sp.alpha), np.log(sp.beta)[:, :, None]], axis=2)
    flat, ess = h.reshape(-1, 2), ess_bulk(h)
    assert np.all(ess > 100)
    np.testing.assert_array_less(np.abs(flat.mean(axis=0) - exact_mean),
                                 5 * exact_sd / np.sqrt(ess))
    np.testing.assert_array_less(np.abs(flat.std(axis=0) / exact_sd - 1),
                                 5 * np.sqrt(1 / (2 * ess)))


def test_predict_proba_averages_probabilities_not_logits():
    # one input x = 1, two classes: the logit gap is the weight of class 0
    net = sopt.mlp([1, 2], output="softmax")
    X = np.array([[1.0], [-1.0], [0.5], [0.0]])
    T = np.eye(2)[[0, 1, 0, 1]]
    w0 = np.zeros(net.n_weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        sp = sample_posterior(net, X, T, w0, loss="softmax_ce", alpha=1.0,
                              n_draws=4, n_warmup=4, metric="identity")
    # draws with class-0 logit 10 and -2 at x = 1: mean probability
    # (0.99995 + 0.119) / 2 = 0.56, while the mean logit 4 would give 0.98
    draws = np.zeros((1, 2, net.n_weights))
    draws[0, 0, 0], draws[0, 1, 0] = 10.0, -2.0       # weight from x to class 0
    sp.draws = draws
    p = sp.predict_proba(np.array([[1.0]]))[0, 0]
    expected = np.mean([1 / (1 + np.exp(-10.0)), 1 / (1 + np.exp(2.0))])
    assert p == pytest.approx(expected, rel=1e-12)
    assert abs(p - 1 / (1 + np.exp(-4.0))) > 0.4


def test_classification_draws_and_probabilities():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 2))
    y = (X[:, 0] + 0.5 * rng.standard_normal(40) > 0).astype(int)
    net = sopt.mlp([2, 2], output="softmax")
    w = sopt.optimize.minimize(sopt.Objective(net, X, y, loss="softmax_ce", alpha=1.0),
                               np.zeros(net.n_weights)).x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        sp = sample_posterior(net, X, y, w, loss="softmax_ce", alpha=1.0,
                              n_draws=200, n_warmup=100, seed=6)
    p = sp.predict_proba(X)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert sp.draws.shape == (2, 200, net.n_weights)
    # 400 draws: R-hat's own noise is ~0.02 at this length
    assert sp.rhat.shape == (net.n_weights,) and sp.max_rhat < 1.05
    with pytest.raises(ValueError, match="predict_proba"):
        sp.predict(X)


@pytest.mark.parametrize("kwargs, name", [
    ({"n_draws": 0}, "n_draws"), ({"n_draws": 3}, "n_draws"),
    ({"n_chains": 0}, "n_chains"),
    ({"n_warmup": -1}, "n_warmup"), ({"target_accept": 1.0}, "target_accept"),
    ({"target_accept": 0.0}, "target_accept"), ({"metric": "dense"}, "metric"),
    ({"hyperprior": "cauchy"}, "hyperprior"), ({"hyper_update": "centred"}, "hyper_update"),
    ({"alpha": None}, "alpha"), ({"beta": None}, "beta"), ({"n_jobs": 0}, "n_jobs"),
])
def test_bad_settings_name_the_argument(kwargs, name):
    net, X, t, _ = _linear_problem()
    args = {"alpha": 1.0, "beta": 1.0, **kwargs}
    with pytest.raises(ValueError, match=name):
        sample_posterior(net, X, t, np.zeros(3), loss="sse", **args)


def test_non_finite_start_and_wrong_types_are_errors():
    net, X, t, _ = _linear_problem()
    with pytest.raises(ValueError, match="w_map"), np.errstate(over="ignore"):
        sample_posterior(net, X, t, np.full(3, 1e200), loss="sse", alpha=1.0,
                         beta=1.0, metric="identity")
    with pytest.raises(TypeError, match="n_draws"):
        sample_posterior(net, X, t, np.zeros(3), loss="sse", alpha=1.0, beta=1.0,
                         n_draws=10.5)
    with pytest.raises(TypeError, match="net"):
        sample_posterior("net", X, t)


@pytest.mark.parametrize("hyperprior", [None, "gamma"])
def test_chains_in_processes_give_the_serial_draws(hyperprior, capsys):
    """Each chain owns a generator spawned from the seed, so running the
    chains in forked processes changes nothing but the time; the workers'
    progress reaches this process's stderr."""
    net, X, t, Phi = _linear_problem()
    m, _ = _closed_form(Phi, t, 1.0, 4.0)
    runs = {}
    for n_jobs in (1, 3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)   # short chains
            runs[n_jobs] = sample_posterior(
                net, X, t, m, loss="sse", alpha=1.0, beta=4.0, n_draws=30,
                n_warmup=30, n_chains=3, seed=5, hyperprior=hyperprior,
                n_jobs=n_jobs, progress=True)
    serial, forked = runs[1], runs[3]
    np.testing.assert_array_equal(serial.draws, forked.draws)
    np.testing.assert_array_equal(serial.n_steps, forked.n_steps)
    assert not np.array_equal(serial.draws[0], serial.draws[1])   # chains differ
    if hyperprior is not None:
        np.testing.assert_array_equal(serial.alpha, forked.alpha)
    err = capsys.readouterr().err
    assert err.count("chain 3/3: iteration 60/60") == 2          # both runs


def test_default_n_jobs_samples_in_turn_beside_other_threads():
    """A fork copies only the calling thread: with other threads running
    (a threaded pool's worker), n_jobs=None runs the chains in turn; an
    explicit n_jobs is capped at the number of chains."""
    from sopt.bayes._sampling import _n_jobs
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert _n_jobs(None, 4) == 1
    finally:
        release.set()
        other.join()
    assert _n_jobs(1, 4) == 1 and _n_jobs(8, 3) == 3


def test_short_chains_warn():
    net, X, t, Phi = _linear_problem()
    m, _ = _closed_form(Phi, t, 1.0, 4.0)
    with pytest.warns(SamplingWarning, match="ESS"):
        sample_posterior(net, X, t, m, loss="sse", alpha=1.0, beta=4.0,
                         n_draws=20, n_warmup=10)


def test_diagnostics_on_known_chains():
    rng = np.random.default_rng(7)
    iid = rng.standard_normal((4, 1000, 2))
    assert np.all(np.abs(ess_bulk(iid) / 4000 - 1) < 0.15)
    assert np.all(rhat(iid) < 1.01)
    # AR(1) with phi = 0.8: ESS = M S (1 - phi) / (1 + phi) = 444
    ar = np.zeros((4, 2000, 1))
    e = rng.standard_normal(ar.shape)
    for s in range(1, 2000):
        ar[:, s] = 0.8 * ar[:, s - 1] + e[:, s]
    assert ess_bulk(ar)[0] == pytest.approx(8000 * 0.2 / 1.8, rel=0.25)
    shifted = iid.copy()
    shifted[0] += 1.0
    assert np.all(rhat(shifted) > 1.05)
