"""The work of an evidence fit: how many curvature matrices, Newton steps
and cycles it takes, counted on small problems (timings live in
experiments/bench_evidence_counts.py, never here)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import sopt
from problems import noisy_sine, quiet_evidence_fit
from sopt.bayes import evidence_fit, laplace
from sopt.bayes._evidence import gauss_newton_is_exact
from sopt.evaluation import Evaluation
from sopt.optimize import minimize


@pytest.fixture
def built(monkeypatch):
    """(method, w) of every data-term curvature matrix built (not served
    from an evaluation's cache)."""
    calls = []
    original = Evaluation._data_curvature

    def counting(self, method, algorithm):
        calls.append((method, self.w.tobytes()))
        return original(self, method, algorithm)

    monkeypatch.setattr(Evaluation, "_data_curvature", counting)
    return calls


def softmax_problem(n: int = 90, d: int = 4, k: int = 3, seed: int = 0):
    """Overlapping Gaussian classes: X (n, d), one-hot T (n, k)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    X = rng.standard_normal((n, d)) + 0.8 * np.eye(k, d)[labels]
    return X, np.eye(k)[labels]


@pytest.mark.parametrize("output, loss", [("identity", "sse"),
                                          ("logistic", "binary_ce"),
                                          ("softmax", "softmax_ce")])
def test_gauss_newton_is_the_hessian_of_a_linear_model_on_a_canonical_pair(output, loss):
    """Where gauss_newton_is_exact says so, the two matrices agree to
    round-off (they are sums of the same N K outer products; 1e-12 of the
    largest entry allows for a different order of summation)."""
    rng = np.random.default_rng(1)
    k = 1 if output != "softmax" else 3
    net = sopt.mlp([4, k], output=output)
    X = rng.standard_normal((30, 4))
    T = rng.random((30, k)) if loss == "binary_ce" else (
        np.eye(k)[rng.integers(0, k, 30)] if loss == "softmax_ce"
        else rng.standard_normal((30, k)))
    obj = sopt.Objective(net, X, T, loss=loss)
    w = net.init_weights(seed=2)
    assert gauss_newton_is_exact(obj)
    H, G = obj.hessian(w, "exact"), obj.hessian(w, "gauss_newton")
    assert np.allclose(H, G, rtol=0, atol=1e-12 * np.abs(H).max())


@pytest.mark.parametrize("sizes, output, loss", [
    ([4, 3, 1], "identity", "sse"),            # a hidden layer: residual term
    ([4, 1], "logistic", "sse"),               # not a canonical pair
])
def test_gauss_newton_is_not_exact_elsewhere(sizes, output, loss):
    rng = np.random.default_rng(3)
    net = sopt.mlp(sizes, output=output)
    obj = sopt.Objective(net, rng.standard_normal((30, 4)), rng.random(30), loss=loss)
    assert not gauss_newton_is_exact(obj)
    w = net.init_weights(seed=4)
    H, G = obj.hessian(w, "exact"), obj.hessian(w, "gauss_newton")
    assert np.abs(H - G).max() > 1e-6 * np.abs(H).max()


def test_the_laplace_step_of_a_linear_model_reuses_the_last_newton_matrix(built):
    """Linear softmax model: Newton trains on the Gauss-Newton matrix (its
    exact Hessian), so the Laplace step at each cycle's w_MAP finds the
    matrix of the last Newton step at that w. One matrix per Newton
    iterate: the start, then one per iteration (each cycle starts where the
    last ended); with a separate Laplace matrix there would be one more per
    cycle."""
    X, T = softmax_problem()
    res = quiet_evidence_fit(sopt.mlp([4, 3], output="softmax"), X, T,
                             loss="softmax_ce")
    assert res.n_cycles >= 3 and all(res.history["train_converged"])
    assert {method for method, _ in built} == {"gauss_newton"}
    assert len(built) == len(set(built)) == 1 + sum(res.history["train_iterations"])


@pytest.mark.parametrize("hessian", ["gauss_newton", "exact"])
def test_a_network_with_hidden_units_still_trains_on_the_exact_hessian(built, hessian):
    """Newton on the exact Hessian, one per iterate; the Laplace step adds a
    Gauss-Newton matrix per cycle, or (hessian="exact") finds the exact
    Hessian of the last Newton iterate. Training at each cycle's alpha and
    the Laplace step are with_alpha copies of one objective: they share the
    evaluation at a w, so no matrix is built twice at the same weights."""
    X, t = noisy_sine(60, 3, 0.1)
    res = quiet_evidence_fit(sopt.mlp([3, 5, 1]), X, t, hessian=hessian)
    assert res.n_cycles >= 3 and all(res.history["train_converged"])
    exact = [b for b in built if b[0] == "exact"]
    assert len(exact) == 1 + sum(res.history["train_iterations"])
    assert len(built) == len(exact) + (res.n_cycles if hessian == "gauss_newton" else 0)
    assert len(built) == len(set(built))


# ------------------------------------------------ fewer cycles, same fixed point
def mackay_fixed_point(obj, w, alpha: float, beta: float | None, cycles: int = 500):
    """MacKay's plain re-estimation (PRML eqs. 5.178, 5.180) for one alpha,
    written out independently of evidence_fit, each w_MAP to |g|_inf 1e-11,
    until alpha and beta change by less than 1e-13 (relative): alpha, beta,
    the log evidence, and the cycle at which the change first fell below
    1e-7."""
    n_data = obj.n_patterns * obj.net.n_outputs
    first_below = None
    for cycle in range(1, cycles + 1):
        decay = alpha if beta is None else alpha / beta
        w = minimize(obj.with_alpha(decay), w, options={"gtol": 1e-11, "maxiter": 200}).x
        post = laplace(obj, w, alpha=alpha, beta=beta)
        new_alpha = post.gamma / (w @ w)
        new_beta = None if beta is None else (n_data - post.gamma) / (2 * post.data_error)
        change = max(abs(new_alpha / alpha - 1),
                     0.0 if beta is None else abs(new_beta / beta - 1))
        if first_below is None and change < 1e-7:
            first_below = cycle
        if change < 1e-13:
            return alpha, beta, post.log_evidence, first_below
        alpha, beta = new_alpha, new_beta
    raise AssertionError("the plain re-estimation did not settle")


def regression_problem():
    """A linear target in 3 inputs (one irrelevant) with noise std 0.3."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((80, 3))
    return X, X @ [1.0, -0.5, 0.0] + 0.3 * rng.standard_normal(80)


@pytest.mark.parametrize("kind", ["softmax", "regression"])
def test_the_loop_lands_on_mackays_fixed_point_in_fewer_cycles(kind):
    """Linear models (one fixed point): the secant steps and the polish end
    within 1e-6 of the fixed point of the plain re-estimation (the polish
    stops once a cycle changes alpha and beta by < POLISH * tol = 1e-7; the
    distance left is about that change over 1 - rho, rho the plain rate,
    about 0.5 here), in no more cycles than the plain loop takes to change
    them by < 1e-7 (regression: 4, as gamma is nearly W from the start),
    under half as many where it converges slowly. Before, the loop stopped
    at a change below tol = 1e-4, alpha 1.1e-4 (softmax) and 8e-6
    (regression) away."""
    if kind == "softmax":
        X, T = softmax_problem()
        net, loss, beta0 = sopt.mlp([4, 3], output="softmax"), "softmax_ce", None
    else:
        (X, T), loss, beta0 = regression_problem(), "sse", 1.0
        net = sopt.mlp([3, 1])
    obj = sopt.Objective(net, X, T, loss=loss)
    alpha, beta, log_ev, plain_cycles = mackay_fixed_point(
        obj, net.init_weights(seed=0), 0.01, beta0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # converged, trained to gtol
        res = evidence_fit(net, X, T, loss=loss, w0=net.init_weights(seed=0))
    assert res.converged and res.n_cycles <= plain_cycles
    if kind == "softmax":       # plain rate about 0.5 here: under half the cycles
        assert 2 * res.n_cycles < plain_cycles
    assert res.alpha[0] == pytest.approx(alpha, rel=1e-6)
    assert res.log_evidence == pytest.approx(log_ev, rel=1e-6)
    if beta is not None:
        assert res.beta == pytest.approx(beta, rel=1e-6)


def test_the_first_cycles_of_a_linear_model_train_loosely_the_last_to_gtol():
    """At the guessed alpha of the first cycle the training stops at a tenth
    of its start gradient (fewer Newton steps than a full run there), and the
    final posterior is still at a minimum: |g|_inf <= gtol = 1e-7."""
    X, T = softmax_problem()
    net = sopt.mlp([4, 3], output="softmax")
    obj = sopt.Objective(net, X, T, loss="softmax_ce", alpha=0.01)
    full = minimize(obj, net.init_weights(seed=0), options={"gtol": 1e-7})
    res = quiet_evidence_fit(net, X, T, loss="softmax_ce")
    assert res.history["train_iterations"][0] < full.nit
    assert np.max(np.abs(res.posterior.gradient)) <= 1e-7


def test_a_loop_settled_on_loose_training_trains_once_more(monkeypatch):
    """However loose the cycles' training, the loop does not end on it:
    with every cycle stopped at half its start gradient, it settles, trains
    once more to gtol, and ends at the same fixed point (1e-6, as above)."""
    from sopt.bayes import _evidence
    monkeypatch.setattr(_evidence, "_loosened", lambda options, change: {
        **options, "gtol_rel": 0.5 if change > 0 else 0.0})
    X, T = softmax_problem()
    net = sopt.mlp([4, 3], output="softmax")
    obj = sopt.Objective(net, X, T, loss="softmax_ce")
    alpha, _, _, _ = mackay_fixed_point(obj, net.init_weights(seed=0), 0.01, None)
    res = quiet_evidence_fit(net, X, T, loss="softmax_ce")
    assert res.converged and res.n_cycles < 50
    assert np.max(np.abs(res.posterior.gradient)) <= 1e-7
    assert res.alpha[0] == pytest.approx(alpha, rel=1e-6)


def test_an_evidence_fit_sets_the_blas_limit_once(monkeypatch):
    """The fit's own scope holds one BLAS thread; the scopes of each cycle's
    posterior (its construction, its solve) inside it set nothing again."""
    import sopt._threads as threads
    calls = []
    controller = threads._controller()

    class Counting:
        def limit(self, **kwargs):
            calls.append(kwargs)
            return controller.limit(**kwargs)

    monkeypatch.setattr(threads, "_kept", [Counting()])
    X, T = softmax_problem()
    res = quiet_evidence_fit(sopt.mlp([4, 3], output="softmax"), X, T,
                             loss="softmax_ce")
    assert res.n_cycles >= 3 and len(calls) == 1
