"""sopt.optimize.minimize training small networks through the Objective path:
XOR, a noisy regression on which every second-order method must find the
same minimum, Newton on indefinite Hessians and at a saddle.

Tolerances
----------
GTOL = 1e-6 (minimize's default, |g|_inf).
E_RTOL = 1e-10: at |g| <= gtol, E - E* ~ 1/2 g^T H*^{-1} g; on the
    regression problem below (W = 10, lambda_min(H*) = 1.5e-3, E* = 0.25)
    the observed relative gaps are <= 4e-11 (lm, which stops just under
    gtol) and ~1e-14 for the others.
Weights: w - w* ~ H(w)^{-1} g(w) (the Newton step), so each method's
    distance to the reference minimum is checked against
    W_SLACK * |H(w)^{-1} g(w)|_2 (+ 1e-9 for the reference's own error,
    whose gradient is <= 1e-9), after mapping both onto one representative of
    the hidden-unit sign-flip / permutation symmetry (tanh is odd, so the
    trust-region methods may land on a mirror image of Newton's minimum).
    Observed: distance / Newton-step = 1.000 +- 0.03 for every method
    (6.6e-5 for lm, 1.7e-5 newton-cg, 2.8e-6 trust-krylov, 1.8e-6
    trust-exact, 4e-8 trust-ncg), so W_SLACK = 1.5 is ample, while a
    method at another minimum or stopped early misses by orders of
    magnitude.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import sopt
from sopt.optimize import minimize

GTOL = 1e-6
E_RTOL = 1e-10
W_SLACK = 1.5

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_T = np.array([0, 1, 1, 0], dtype=float)


# ------------------------------------------------------------------ XOR
@pytest.mark.parametrize("loss", ["binary_ce", "sse"])
@pytest.mark.parametrize("method", ["newton", "lm"])
def test_xor(method, loss):
    """2-2-1 logistic network; XOR has no finite minimiser (E -> 0 as
    |w| -> inf), so stop on gtol = 1e-7 which gives E ~ 1e-7. Seed 2 at
    scale 2 reaches the global valley for all four cases (seeds 1 and 6 end
    at the E = ln 4 / 0.25 local plateaus)."""
    net = sopt.mlp([2, 2, 1], hidden="logistic", output="logistic")
    obj = sopt.Objective(net, XOR_X, XOR_T, loss=loss)
    w0 = net.init_weights(seed=2, scale=2.0)
    res = minimize(obj, w0, method=method, options={"gtol": 1e-7})
    assert res.success, res.message
    assert res.fun < 1e-6
    assert res.fun == pytest.approx(obj.value(res.x), rel=1e-12)
    assert res.nit <= 100
    y = net.forward(res.x, XOR_X)[:, 0]
    np.testing.assert_array_equal(np.round(y), XOR_T)
    assert np.max(np.abs(y - XOR_T)) < 1e-3
    assert np.all(np.diff(res.history["fun"]) <= 0)


# ------------------------------------------------------------ regression
def _regression_data(N=50, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (N, 1))
    t = np.sin(np.pi * X[:, 0]) + 0.1 * rng.standard_normal(N)
    return X, t


@pytest.fixture(scope="module")
def regression():
    """1-3-1 tanh network, N = 50, alpha = 1e-3; the reference minimum is
    Newton's from init_weights(seed=0) with gtol 1e-9."""
    X, t = _regression_data()
    net = sopt.mlp([1, 3, 1], hidden="tanh", output="identity")
    obj = sopt.Objective(net, X, t, loss="sse", alpha=1e-3)
    w0 = net.init_weights(seed=0)
    ref = minimize(obj, w0, method="newton", options={"gtol": 1e-9})
    assert ref.success
    H = obj.hessian(ref.x)
    return net, obj, w0, ref, H


def canonical(net, w):
    """One representative of w under the symmetries of a 1-M-1 tanh net:
    (v_j, w_j, b_j) -> -(v_j, w_j, b_j) and permutations of hidden units.
    Output weights made positive, units sorted by input weight."""
    (W1,), b1 = net.unpack(w)[0]
    (W2,), b2 = net.unpack(w)[1]
    s = np.sign(W2[0])
    W1, b1, W2 = W1 * s[:, None], b1 * s, W2 * s[None, :]
    o = np.argsort(W1[:, 0])
    return np.concatenate([W1[o].ravel(), b1[o], W2[:, o].ravel(), b2])


def test_regression_reference_is_a_strict_minimum(regression):
    net, obj, w0, ref, H = regression
    ev = np.linalg.eigvalsh(H)
    assert ev[0] > 1e-3              # >= alpha; a strict local minimum
    assert np.max(np.abs(obj.jac(ref.x))) <= 1e-9
    # the start is far from it: indefinite Hessian
    assert np.linalg.eigvalsh(obj.hessian(w0))[0] < -1.0
    # the function is not trivial: the fit explains most of the variance
    assert ref.fun < 0.1 * obj.value(np.zeros(net.n_weights))


@pytest.mark.parametrize("method", ["newton", "lm", "trust-exact", "trust-ncg",
                                    "trust-krylov", "newton-cg"])
def test_regression_methods_agree(regression, method):
    net, obj, w0, ref, H = regression
    res = minimize(obj, w0, method=method)
    assert res.success, res.message
    g = obj.jac(res.x)
    assert np.max(np.abs(g)) < GTOL
    np.testing.assert_allclose(res.jac, g, rtol=0, atol=1e-15)
    assert res.fun == pytest.approx(obj.value(res.x), rel=1e-13)
    assert abs(res.fun - ref.fun) <= E_RTOL * ref.fun
    assert res.fun >= ref.fun - 1e-14 * ref.fun       # ref is the minimum
    dist = np.linalg.norm(canonical(net, res.x) - canonical(net, ref.x))
    # the Newton step at res.x: H there is that of res's mirror of w*
    predicted = np.linalg.norm(np.linalg.solve(obj.hessian(res.x), g))
    assert dist <= W_SLACK * predicted + 1e-9
    assert dist <= 1e-4


def test_regression_dogleg_refuses_indefinite_start(regression):
    net, obj, w0, ref, H = regression
    with pytest.raises(ValueError, match="dogleg"):
        minimize(obj, w0, method="dogleg")


def test_regression_dogleg_from_positive_definite_start(regression):
    """Close to w* (1e-4 perturbation) H is positive definite (checked), and
    dogleg converges to the same minimum. (At 3e-4 H is already nearly
    singular: lambda_min(H*) = 1.5e-3.)"""
    net, obj, w0, ref, H = regression
    start = ref.x + 1e-4 * np.random.default_rng(1).standard_normal(net.n_weights)
    assert np.linalg.eigvalsh(obj.hessian(start))[0] > 1e-4
    assert np.max(np.abs(obj.jac(start))) > 100 * GTOL
    res = minimize(obj, start, method="dogleg")
    assert res.success, res.message
    assert np.max(np.abs(obj.jac(res.x))) < GTOL
    assert abs(res.fun - ref.fun) <= E_RTOL * ref.fun
    g = obj.jac(res.x)
    dist = np.linalg.norm(res.x - ref.x)
    assert dist <= W_SLACK * np.linalg.norm(np.linalg.solve(H, g)) + 1e-9


# ------------------------------------------------ Newton, non-convex E
def test_newton_monotone_from_indefinite_start(regression):
    net, obj, w0, ref, H = regression
    assert np.linalg.eigvalsh(obj.hessian(w0, kind="exact"))[0] < 0
    res = minimize(obj, w0, method="newton")
    f = np.array(res.history["fun"])
    assert len(f) == res.nit + 1
    assert np.all(np.diff(f) <= 0)
    assert f[-1] < 0.1 * f[0]
    # where H was indefinite Newton damped (mu > 0), later it took pure
    # Newton steps (mu = 0): quadratic convergence at the end
    damping = np.array(res.history["damping"][1:])
    assert damping[0] > 0 and damping[-1] == 0
    gi = np.array(res.history["grad_inf"])
    assert gi[-1] < 1e-3 * gi[-3] or gi[-1] < 1e-12


def test_newton_monotone_gauss_newton_start_classification():
    """Newton on a binary_ce classifier from an indefinite start."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 2))
    labels = (X[:, 0] * X[:, 1] > 0).astype(float)
    net = sopt.mlp([2, 4, 1], hidden="tanh", output="logistic")
    obj = sopt.Objective(net, X, labels, loss="binary_ce", alpha=1e-2)
    w0 = net.init_weights(seed=0, scale=2.0)
    assert np.linalg.eigvalsh(obj.hessian(w0))[0] < 0
    res = minimize(obj, w0, method="newton")
    assert res.success
    assert np.all(np.diff(res.history["fun"]) <= 0)
    assert np.max(np.abs(obj.jac(res.x))) < GTOL
    assert np.linalg.eigvalsh(obj.hessian(res.x))[0] > 0


def _saddle():
    f = lambda w: w[0] ** 2 - w[1] ** 2 + w[1] ** 4 / 4
    g = lambda w: np.array([2 * w[0], -2 * w[1] + w[1] ** 3])
    H = lambda w: np.array([[2.0, 0.0], [0.0, -2.0 + 3 * w[1] ** 2]])
    return f, g, H


def test_newton_escapes_saddle_line():
    """f = x^2 - y^2 + y^4/4 from (0.5, 0): the gradient along y is exactly
    zero on the line y = 0, which leads to the saddle (0, 0). Newton must
    leave along the negative curvature and reach a minimum (0, +-sqrt 2),
    f = -1."""
    f, g, H = _saddle()
    w0 = np.array([0.5, 0.0])
    assert g(w0)[1] == 0.0
    res = minimize(f, w0, method="newton", jac=g, hess=H)
    assert res.success, res.message
    assert abs(res.x[0]) <= 1e-6
    assert abs(abs(res.x[1]) - np.sqrt(2)) <= 1e-6
    assert res.fun == pytest.approx(-1.0, abs=1e-12)
    assert np.all(np.diff(res.history["fun"]) <= 0)
    # it did pass close to the saddle (f ~ 0) before leaving it
    assert min(abs(v) for v in res.history["fun"]) < 1e-10


def test_newton_escapes_exact_saddle():
    f, g, H = _saddle()
    res = minimize(f, np.zeros(2), method="newton", jac=g, hess=H)
    assert res.success
    assert res.nit >= 1
    assert res.fun == pytest.approx(-1.0, abs=1e-12)


# -------------------------------------- Newton at a singular-Hessian minimum
def test_newton_at_minimum_with_singular_psd_hessian():
    """f = x^2 + y^4 started at its minimiser (0, 0): g = 0 and H = diag(2, 0)
    is positive semidefinite, so there is no negative curvature to follow;
    Newton must report success with nit = 0 (as it does for a positive
    definite H), not 'Damping exceeded its maximum'."""
    f = lambda w: w[0] ** 2 + w[1] ** 4
    g = lambda w: np.array([2 * w[0], 4 * w[1] ** 3])
    H = lambda w: np.array([[2.0, 0.0], [0.0, 12 * w[1] ** 2]])
    res = minimize(f, np.zeros(2), method="newton", jac=g, hess=H)
    assert res.success, res.message
    assert res.nit == 0
    assert res.fun == 0.0


def test_newton_on_overparametrised_network():
    """y = v (w x + b) + c (1-1-1 network, identity hidden unit) fits a
    straight line with 4 weights for 2 numbers: with alpha = 0 every minimum
    lies on a 2-D valley and H* is PSD with two zero eigenvalues (rounded to
    +-1e-9). Newton must stop there with success like lm and trust-exact."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (20, 1))
    t = 2 * X[:, 0] + 1 + 0.1 * rng.standard_normal(20)
    net = sopt.mlp([1, 1, 1], hidden="identity", output="identity")
    obj = sopt.Objective(net, X, t, loss="sse", alpha=0.0)
    # least-squares line: the minimum value of E
    A = np.column_stack([X[:, 0], np.ones(20)])
    coef = np.linalg.lstsq(A, t, rcond=None)[0]
    E_star = 0.5 * np.sum((A @ coef - t) ** 2)
    w0 = net.init_weights(seed=0)
    for method in ("lm", "trust-exact"):
        other = minimize(obj, w0, method=method)
        assert other.success
        assert other.fun == pytest.approx(E_star, rel=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the failure mode warns; assert below
        res = minimize(obj, w0, method="newton")
    assert res.success, res.message
    assert res.fun == pytest.approx(E_star, rel=1e-10)
    assert np.max(np.abs(res.jac)) <= GTOL


# ---------------------------------- Newton below the round-off of E
def _abs_regression():
    """PRML Figure 5.3's |x| fit (1-3-1 tanh, N = 50, alpha = 1e-4)."""
    from sopt.experiments import regression
    x = regression.inputs()
    net = sopt.mlp([1, 3, 1], hidden="tanh", output="identity")
    return net, sopt.Objective(net, x[:, None], np.abs(x), loss="sse",
                               alpha=regression.ALPHA)


def test_newton_reaches_a_gtol_below_the_round_off_of_E():
    """From seed 1 the last Newton step predicts a decrease of 1.1e-18 on
    E = 4.6e-3 (below 8 macheps E) and E(w + p) comes out 1e-17 higher: E
    cannot rank the points. The step is judged by |g| instead (1.1e-8 ->
    3e-15), so gtol = 1e-8 is met instead of stopping with status 3."""
    net, obj = _abs_regression()
    res = minimize(obj, net.init_weights(seed=1), method="newton",
                   options={"gtol": 1e-8, "maxiter": 2000})
    assert res.success, res.message
    assert np.max(np.abs(res.jac)) <= 1e-8
    # E may rise only by its evaluation error: residuals r = y - t carry an
    # absolute error ~ macheps |y|, so E_n's is ~ macheps |r| |y|, summed
    rise = np.max(np.diff(res.history["fun"]))
    fp = obj.net.forward(res.x, obj.X)[:, 0]
    eval_error = np.finfo(float).eps * np.sum(np.abs(fp - obj.T[:, 0]) * np.abs(fp))
    assert rise <= 4 * eval_error, (rise, eval_error)


def test_newton_stops_cleanly_when_gtol_is_unattainable():
    """gtol = 1e-300 cannot be met: Newton converges to |g| ~ 1e-15, then
    must stop with status 3 (E's round-off) within a few dozen iterations,
    neither running to maxiter nor blowing the damping up (status 4)."""
    net, obj = _abs_regression()
    with pytest.warns(sopt.optimize.ConvergenceWarning, match="round-off"):
        res = minimize(obj, net.init_weights(seed=1), method="newton",
                       options={"gtol": 1e-300, "maxiter": 2000})
    assert res.status == 3
    assert np.max(np.abs(res.jac)) < 1e-12
    assert res.nit < 200


# ------------------------------------------- derivatives passed explicitly
@pytest.mark.parametrize("method, name", [("newton", "jac"), ("bfgs", "jac"),
                                          ("gd", "jac"), ("newton", "hess"),
                                          ("trust-ncg", "hessp"),
                                          ("lm", "gauss_newton")])
def test_given_derivative_replaces_the_objectives(method, name):
    """jac, hess, hessp and gauss_newton passed with an Objective are used,
    each alike (as scipy uses whatever it is given): a gradient scaled by 2
    is seen in res.jac."""
    net = sopt.mlp([1, 2, 1])
    X, t = _regression_data(N=8)
    obj = sopt.Objective(net, X, t)
    calls = []
    own = {"jac": obj.jac, "hess": obj.hess, "hessp": obj.hessp,
           "gauss_newton": lambda w: obj.hessian(w, kind="gauss_newton")}[name]
    scale = 2.0 if name == "jac" else 1.0

    def given(*args):
        calls.append(1)
        return scale * own(*args)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sopt.optimize.ConvergenceWarning)
        res = minimize(obj, net.init_weights(seed=0), method=method,
                       options={"maxiter": 2}, **{name: given})
    assert calls
    if name == "jac":
        np.testing.assert_allclose(res.jac, 2 * obj.jac(res.x), rtol=1e-12)
    if name == "jac" and method != "bfgs":   # scipy's: history re-evaluates g
        assert res.njev == len(calls)
