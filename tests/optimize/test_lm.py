"""Levenberg-Marquardt (sopt/optimize/_lm.py). Its round-off endgame:
where E can no longer rank two points, a step that halves |g|_inf is taken
(as in Newton's line search), so LM reaches gtol instead of stopping with
'Damping exceeded mu_max'. Its update options are checked, and its damping
loop ends (bounded by a count, also from a damping that underflowed to 0;
under a SIGALRM guard)."""
import numpy as np
import pytest
import scipy.linalg

import sopt
from problems import nowhere_lower
from sopt.optimize._lm import LevenbergMarquardtStep
from sopt.optimize._loop import MAX_DAMPING_RAISES
from sopt.optimize._problem import make_problem


@pytest.mark.parametrize("seed", [6, 8])
def test_lm_meets_gtol_where_e_round_off_hides_the_decrease(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, 3))
    t = (X[:, 0] * X[:, 1] + 0.3 * rng.normal(size=400) > 0).astype(float)
    net = sopt.mlp([3, 4, 1], output="logistic")
    obj = sopt.Objective(net, X, t, loss="binary_ce", alpha=1e-3)
    # before the endgame these stopped with status 4 at |g|_inf = 4.8e-7
    # (seed 6) and 2.8e-7 (seed 8)
    res = sopt.optimize.minimize(obj, net.init_weights(seed), "lm",
                                 {"gtol": 1e-7, "maxiter": 1000})
    assert res.success, res.message
    assert np.abs(res.jac).max() <= 1e-7
    # E may rise only by its evaluation error: a sum of N = 400 terms
    # carries up to N macheps relative error
    fs = np.array(res.history["fun"])
    assert np.all(np.diff(fs) <= 400 * np.finfo(float).eps * np.abs(fs[:-1]))


# --------------------------------------- large residuals: the damping stall
def _noisy_regression():
    """50 noisy points of sin(x1) x2 (noise sd 0.5: large residuals at the
    minimum), a 2-4-1 tanh net, alpha = 1e-3."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (50, 2))
    t = np.sin(X[:, 0]) * X[:, 1] + 0.5 * rng.normal(size=50)
    net = sopt.mlp([2, 4, 1])
    return sopt.Objective(net, X, t, alpha=1e-3), net.init_weights(seed=0)


def _counting(fn, calls):
    def wrapper(w):
        calls.append(1)
        return fn(w)
    return wrapper


@pytest.fixture(scope="module")
def stall():
    """The old rule (tenfold mu, no hybrid) and the default from one w0."""
    obj, w0 = _noisy_regression()
    with pytest.warns(sopt.optimize.ConvergenceWarning):
        old = sopt.optimize.minimize(obj, w0, "lm", {
            "gtol": 1e-6, "maxiter": 120, "update": "tenfold", "hybrid": False})
    hess_calls = []
    new = sopt.optimize.minimize(obj, w0, "lm", {"gtol": 1e-6},
                                 hess=_counting(obj.hess, hess_calls))
    return obj, old, new, hess_calls


def test_tenfold_damping_oscillates_without_progress(stall):
    """Near the minimum the Gauss-Newton step at mu = 0.005 raises E, the
    one at 0.05 lowers it, and mu / 10 starts over: mu swings between two
    values a decade apart, nearly every iteration costing a rejected step,
    and convergence is linear and slow: 120 iterations leave |g|_inf above
    gtol."""
    obj, old, new, _ = stall
    assert old.status == 1 and np.abs(old.jac).max() > 1e-6
    # the last 40 steps were taken at two values of mu a decade apart
    levels = np.unique(np.round(np.log10(old.history["damping"][-40:]), 9))
    np.testing.assert_allclose(np.diff(levels), [1.0], rtol=1e-9)
    assert old.nfev >= 2 * old.nit - 20          # nearly every step rejected once
    # it is near the minimum the default reaches (within 1e-4 E), not at
    # another, but creeps: its gap in E shrinks less than 100-fold in 40
    # iterations (measured 22-fold; 300 iterations end at |g|_inf = 4.7e-6)
    gap = np.array(old.history["fun"]) - new.fun
    assert 0 < gap[-1] < 1e-4 * new.fun
    assert gap[-1] > 0.01 * gap[-41]


def test_the_gauss_newton_model_repels_the_minimum(stall):
    """Why: the undamped Gauss-Newton iteration linearised at w* is
    w - w* -> -G^{-1} R (w - w*), R = H - G the residual term; an eigenvalue
    of G^{-1} R above 1 makes w* repelling, so LM holds there only by a
    large mu, i.e. by gradient-descent steps."""
    obj, old, new, _ = stall
    G = obj.hessian(new.x, kind="gauss_newton")
    H = obj.hessian(new.x)
    assert np.linalg.eigvalsh(H)[0] > 0                   # a minimum
    assert scipy.linalg.eigh(H - G, G, eigvals_only=True)[-1] > 5


def test_default_lm_turns_to_newton_and_converges(stall):
    """The default (gain-ratio mu, hybrid) meets gtol in 60 iterations (the
    old rule: 300 do not), switching to the exact Hessian on the way."""
    obj, old, new, hess_calls = stall
    assert new.success, new.message
    assert np.abs(new.jac).max() <= 1e-6
    assert new.nit <= 70
    assert len(hess_calls) > 0


def test_gain_ratio_damping_alone_does_not_oscillate():
    """Without the hybrid the gain-ratio rule still converges, Gauss-Newton
    only, with under a half of its mu changes reversing the last one (0.28-
    0.31). It converges linearly here, so round-off moves the count: 211-270
    iterations over OpenBLAS's Haswell, Sandy Bridge and Nehalem kernels,
    each with and without numpy's AVX2 loops; hence the limit of 400."""
    obj, w0 = _noisy_regression()
    res = sopt.optimize.minimize(obj, w0, "lm", {"gtol": 1e-6, "hybrid": False,
                                                 "maxiter": 400},
                                 hess=lambda w: pytest.fail("hess used"))
    assert res.success, res.message
    mu = np.log(np.array(res.history["damping"][1:]))
    assert np.mean(np.diff(np.sign(np.diff(mu))) != 0) < 0.5


def test_hybrid_needs_large_residuals():
    """|g|_inf < 0.02 E never holds on three iterates while E -> 0: a
    zero-residual fit stays with Gauss-Newton (no Hessian evaluated)."""
    X = np.linspace(-1, 1, 30)[:, None]
    net = sopt.mlp([1, 3, 1])
    w_true = net.init_weights(seed=1)
    obj = sopt.Objective(net, X, net.forward(w_true, X)[:, 0], alpha=0.0)
    res = sopt.optimize.minimize(obj, net.init_weights(seed=2), "lm",
                                 {"gtol": 1e-8},
                                 hess=lambda w: pytest.fail("hess used"))
    assert res.success and res.fun < 1e-10


@pytest.mark.parametrize("options, error, match", [
    ({"update": "halve"}, ValueError, "update: expected one of"),
    ({"update": 1}, TypeError, "update"),
    ({"hybrid": 1}, TypeError, "hybrid: expected True or False"),
    ({"mu_inc": 5.0}, ValueError, "mu_dec, mu_inc: used by update='tenfold' only"),
    ({"mu_dec": 0.5, "update": "gain"}, ValueError, "mu_dec, mu_inc")])
def test_lm_update_options_are_checked(options, error, match):
    obj, w0 = _noisy_regression()
    with pytest.raises(error, match=match):
        sopt.optimize.minimize(obj, w0, "lm", options)


# ------------------------------------------------ bounded damping loops
@pytest.mark.usefixtures("no_hang")
def test_lm_damping_loop_is_bounded_by_a_count():
    f, w0 = nowhere_lower()
    problem = make_problem(f, jac=lambda x: np.ones(2),
                           gauss_newton=lambda x: np.eye(2))
    rule = LevenbergMarquardtStep(problem, mu=1e-300, mu_max=1e300, mu_inc=1.5,
                                  update="tenfold")
    with pytest.raises(Exception, match="Damping") as info:
        rule.step(w0, 0.0, np.ones(2))
    assert info.value.status == 4
    assert f.calls <= MAX_DAMPING_RAISES + 1


@pytest.mark.usefixtures("no_hang")
def test_lm_recovers_from_a_damping_that_underflowed_to_zero():
    """After many successes mu * mu_dec^k underflows to 0; a raise must still
    move it (0 * mu_inc = 0 would spin until the count runs out)."""
    f = lambda x: 0.5 * x @ x                                    # noqa: E731
    problem = make_problem(f, jac=lambda x: x,
                           gauss_newton=lambda x: np.diag([1.0, 0.0]))
    rule = LevenbergMarquardtStep(problem)
    rule.damping = 0.0
    w = np.array([1.0, 1.0])
    w_new, f_new, info = rule.step(w, f(w), w)
    assert f_new < f(w) and 0 < info["damping"] < 10
