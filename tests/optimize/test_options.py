"""No option value makes a solver loop without bound, and
bad options or badly behaved plain callables give a clear TypeError or
ValueError naming the argument, raised before the iterations start.

Every test runs under a SIGALRM guard, so a hang fails the test instead of
the whole suite.
"""
from __future__ import annotations

import signal
import warnings

import numpy as np
import pytest
from scipy.optimize import OptimizeWarning, rosen, rosen_der, rosen_hess

import sopt
from helpers import Counted
from sopt.optimize import ConvergenceWarning, minimize
from sopt.optimize._loop import MAX_DAMPING_RAISES
from sopt.optimize._newton import NewtonStep
from sopt.optimize._lm import LevenbergMarquardtStep
from sopt.optimize._problem import make_problem

X0 = np.array([-1.2, 1.0])


@pytest.fixture(autouse=True)
def no_hang():
    def timeout(signum, frame):
        raise TimeoutError("the solver did not return within 20 s")
    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def small_objective():
    r = np.random.default_rng(0)
    net = sopt.mlp([2, 3, 1])
    X = r.normal(size=(10, 2))
    return sopt.Objective(net, X, X[:, 0]), net.init_weights(0)


def saddle():
    """f = x0^2 - x1^2 + x1^4 / 4 from the saddle at 0 side: H indefinite."""
    f = lambda x: x[0] ** 2 - x[1] ** 2 + 0.25 * x[1] ** 4       # noqa: E731
    g = lambda x: np.array([2 * x[0], -2 * x[1] + x[1] ** 3])     # noqa: E731
    H = lambda x: np.diag([2.0, -2.0 + 3 * x[1] ** 2])            # noqa: E731
    return f, g, H


# ------------------------------------------------------------ option values
BAD_VALUES = [
    ("newton", "mu_min", 0, ValueError), ("newton", "mu_min", -1, ValueError),
    ("newton", "mu_min", np.nan, ValueError), ("newton", "mu_max", np.inf, ValueError),
    ("newton", "mu_max", 0.0, ValueError), ("newton", "c1", 2, ValueError),
    ("newton", "c1", 0.0, ValueError), ("newton", "c1", "0.1", TypeError),
    ("newton", "mu_min", True, TypeError),
    ("lm", "mu", 0.0, ValueError), ("lm", "mu", np.inf, ValueError),
    ("lm", "mu_inc", 1.0, ValueError), ("lm", "mu_dec", np.nan, ValueError),
    ("lm", "mu_max", np.inf, ValueError), ("lm", "mu", None, TypeError),
    ("gd", "lr", np.inf, ValueError), ("gd", "lr", -0.1, ValueError),
    ("gd", "lr", "big", TypeError),
    ("trust-exact", "initial_trust_radius", 0.0, ValueError),
    ("trust-ncg", "eta", 0.5, ValueError), ("trust-krylov", "inexact", 1, TypeError),
    ("bfgs", "c1", -1.0, ValueError), ("bfgs", "xrtol", np.nan, ValueError),
    ("l-bfgs-b", "maxcor", 0, ValueError), ("l-bfgs-b", "maxls", 2.5, TypeError),
    ("cg", "return_all", "yes", TypeError), ("newton-cg", "xtol", -1.0, ValueError),
]
for _m in ["newton", "lm", "gd", "trust-exact", "bfgs", "l-bfgs-b", "cg"]:
    BAD_VALUES += [(_m, "gtol", "abc", TypeError), (_m, "gtol", np.nan, ValueError),
                   (_m, "maxiter", 2.7, TypeError), (_m, "maxiter", None, TypeError),
                   (_m, "maxiter", True, TypeError), (_m, "maxiter", -1, ValueError)]


@pytest.mark.parametrize("method, name, value, error", BAD_VALUES)
def test_bad_option_value_names_the_option(method, name, value, error):
    obj, w = small_objective()
    with pytest.raises(error, match=f"{name}: expected"):
        minimize(obj, w, method, {name: value})


def test_error_states_the_domain():
    obj, w = small_objective()
    with pytest.raises(ValueError, match=r"c1: expected a number in \(0, 1\), got 2"):
        minimize(obj, w, "newton", {"c1": 2})
    with pytest.raises(TypeError, match=r"maxiter: expected an integer >= 0, got float"):
        minimize(obj, w, "newton", {"maxiter": 2.7})


def must_not_be_called(*args):
    raise AssertionError("evaluated before the options were checked")


@pytest.mark.parametrize("method", ["trust-exact", "dogleg", "trust-ncg", "trust-krylov"])
@pytest.mark.parametrize("options", [{"eta": 0.25}, {"eta": -0.01},
                                     {"max_trust_radius": 0.5},
                                     {"initial_trust_radius": 2.0, "max_trust_radius": 2.0},
                                     {"initial_trust_radius": 2000.0}])
def test_trust_region_options_in_scipy_domain(method, options):
    """scipy needs 0 <= eta < 1/4 and initial < max radius (its defaults 1
    and 1000 filling in); sopt says so, naming the options, before any
    evaluation (scipy would raise a bare Exception or an unnamed ValueError)."""
    name = "eta" if "eta" in options else "initial_trust_radius, max_trust_radius"
    with pytest.raises(ValueError, match=f"{name}: expected"):
        minimize(must_not_be_called, X0, method, options, jac=must_not_be_called,
                 hess=must_not_be_called, hessp=must_not_be_called)


@pytest.mark.parametrize("method", ["bfgs", "cg", "newton-cg"])
@pytest.mark.parametrize("options", [{"c1": 0.5, "c2": 0.3}, {"c1": 0.95}])
def test_wolfe_constants_in_order(method, options):
    with pytest.raises(ValueError, match="c1, c2: expected c1 < c2"):
        minimize(must_not_be_called, X0, method, options, jac=must_not_be_called,
                 hessp=must_not_be_called)


def test_valid_trust_region_options_are_used():
    res = minimize(rosen, X0, "trust-ncg", {"max_trust_radius": 0.5, "initial_trust_radius": 0.1,
                                            "eta": 0.2}, jac=rosen_der,
                   hessp=lambda x, p: rosen_hess(x) @ p)
    assert res.success
    assert max(res.history["step"]) <= 0.5 * (1 + 1e-12)


@pytest.mark.parametrize("options", ["gtol", ["gtol", 1e-6], 3])
def test_options_must_be_a_mapping(options):
    obj, w = small_objective()
    with pytest.raises(TypeError, match="options: expected a dict"):
        minimize(obj, w, "newton", options)


@pytest.mark.parametrize("method, pair", [("newton", {"mu_min": 1.0, "mu_max": 0.1}),
                                          ("lm", {"mu": 10.0, "mu_max": 1.0})])
def test_damping_bounds_in_order(method, pair):
    obj, w = small_objective()
    with pytest.raises(ValueError, match="mu_max"):
        minimize(obj, w, method, pair)


@pytest.mark.parametrize("method", ["newton", "lm", "gd", "bfgs", "trust-ncg"])
def test_unknown_option_warns_and_is_ignored(method):
    obj, w = small_objective()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(OptimizeWarning, match="unknown.*'nosuch'"):
            res = minimize(obj, w, method, {"nosuch": 1, "maxiter": 2})
    assert res.nit <= 2


@pytest.mark.parametrize("options", [{"gtol": np.float32(1e-5)}, {"maxiter": np.int64(3)},
                                     {"mu_min": np.float64(1e-6), "c1": 0.25}])
def test_numpy_scalars_are_accepted(options):
    obj, w = small_objective()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = minimize(obj, w, "newton", options)
    assert np.isfinite(res.fun) and res.fun <= obj.value(w)


# ------------------------------------------------------------- no hangs
def test_newton_on_indefinite_hessian_returns():
    """Valid options on a network whose H is indefinite at w: the damping
    must terminate."""
    obj, w = small_objective()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = minimize(obj, w, "newton", {"maxiter": 20})
    assert res.fun < obj.value(w)


def _nowhere_lower():
    """f(w0) = 0 and 1 everywhere else: no step can ever be accepted (a
    finite value, as a NaN stops the solvers at once)."""
    w0 = np.array([0.5, -0.5])
    f = Counted(lambda x: 0.0 if np.array_equal(x, w0) else 1.0)
    return f, w0


def test_newton_damping_loop_is_bounded_by_a_count():
    """mu_max = 1e300 would allow ~300 tenfold raises of mu: the count stops
    first, after at most MAX_DAMPING_RAISES line searches."""
    f, w0 = _nowhere_lower()
    g = np.full(2, 1e150)      # p = -g / (mu - 1): 40 halvings for every mu < 1e150
    problem = make_problem(f, jac=lambda x: g, hess=lambda x: -np.eye(2))
    rule = NewtonStep(problem, gtol=1e-6, mu_min=1e-300, mu_max=1e300)
    with pytest.raises(Exception, match="Damping") as info:
        rule.step(w0, 0.0, g)
    assert info.value.status == 4
    assert f.calls <= 41 * (MAX_DAMPING_RAISES + 1)


def test_lm_damping_loop_is_bounded_by_a_count():
    f, w0 = _nowhere_lower()
    problem = make_problem(f, jac=lambda x: np.ones(2),
                           gauss_newton=lambda x: np.eye(2))
    rule = LevenbergMarquardtStep(problem, mu=1e-300, mu_max=1e300, mu_inc=1.5,
                                  update="tenfold")
    with pytest.raises(Exception, match="Damping") as info:
        rule.step(w0, 0.0, np.ones(2))
    assert info.value.status == 4
    assert f.calls <= MAX_DAMPING_RAISES + 1


@pytest.mark.parametrize("method", ["newton", "lm"])
def test_no_decrease_anywhere_is_a_status(method):
    f, w0 = _nowhere_lower()
    with pytest.warns(ConvergenceWarning):
        res = minimize(f, w0, method, {"mu_max": 1e300}, jac=lambda x: np.ones(2),
                       hess=lambda x: -np.eye(2), gauss_newton=lambda x: np.eye(2))
    assert res.status == 4 and not res.success
    np.testing.assert_array_equal(res.x, w0)


# ------------------------------------------------- plain callables misbehaving
def test_jac_must_be_callable():
    with pytest.raises(TypeError, match="jac: expected a callable, got int"):
        minimize(rosen, X0, "bfgs", jac=5)
    obj, w = small_objective()
    for name in ("jac", "hess", "hessp", "gauss_newton"):
        with pytest.raises(TypeError, match=f"{name}: expected a callable, got str"):
            minimize(obj, w, "newton", **{name: "exact"})


@pytest.mark.parametrize("method", ["newton", "bfgs", "trust-ncg"])
@pytest.mark.parametrize("w0", [np.array([]), []])
def test_empty_w0(method, w0):
    with pytest.raises(ValueError, match="w0: .*at least one weight"):
        minimize(rosen, w0, method, jac=rosen_der, hess=rosen_hess,
                 hessp=lambda x, p: rosen_hess(x) @ p)


@pytest.mark.parametrize("method", ["newton", "bfgs", "trust-exact"])
def test_f_returning_an_array(method):
    with pytest.raises(ValueError, match=r"obj: must return a scalar.*\(2,\)"):
        minimize(lambda x: x ** 2, X0, method, jac=rosen_der, hess=rosen_hess)


def test_f_returning_a_string():
    with pytest.raises(TypeError, match="obj: must return real numbers, got str"):
        minimize(lambda x: "one", X0, "newton", jac=rosen_der, hess=rosen_hess)


def test_f_returning_a_size_one_array_is_accepted():
    res = minimize(lambda x: np.array([rosen(x)]), X0, "newton", jac=rosen_der,
                   hess=rosen_hess)
    assert res.success


@pytest.mark.parametrize("method", ["newton", "lm", "gd", "bfgs", "trust-ncg"])
def test_wrong_shaped_jac(method):
    with pytest.raises(ValueError, match=r"jac: returned shape \(3,\), expected \(2,\)"):
        minimize(rosen, X0, method, jac=lambda x: np.zeros(3), hess=rosen_hess,
                 hessp=lambda x, p: p, gauss_newton=rosen_hess)


@pytest.mark.parametrize("method, name", [("newton", "hess"), ("trust-exact", "hess"),
                                          ("dogleg", "hess"), ("lm", "gauss_newton"),
                                          ("trust-ncg", "hessp"),
                                          ("trust-krylov", "hessp")])
def test_wrong_shaped_curvature(method, name):
    bad = dict(hess=lambda x: np.eye(3), hessp=lambda x, p: np.zeros(3),
               gauss_newton=lambda x: np.eye(3))
    kw = {name: bad[name], **{k: v for k, v in dict(
        hess=rosen_hess, hessp=lambda x, p: rosen_hess(x) @ p,
        gauss_newton=rosen_hess).items() if k != name}}
    with pytest.raises(ValueError, match=f"{name}: returned shape"):
        minimize(rosen, X0, method, jac=rosen_der, **kw)


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


@pytest.mark.parametrize("options, error, name", [
    ({"gtol": "1e-6"}, TypeError, "gtol"), ({"gtol": -1.0}, ValueError, "gtol"),
    ({"maxiter": 2.5}, TypeError, "maxiter"), ({"mu_min": "small"}, TypeError, "mu_min")])
def test_evidence_fit_checks_the_options_it_passes_to_minimize(options, error, name):
    """evidence_fit uses gtol itself (divided by beta) before minimize sees
    it: the option is checked first, with minimize's message."""
    obj, w = small_objective()
    with pytest.raises(error, match=f"{name}: expected"):
        sopt.bayes.evidence_fit(obj, beta=1.0, max_cycles=1, options=options)


def test_evidence_fit_options_not_a_dict():
    obj, w = small_objective()
    with pytest.raises(TypeError, match="options: expected a dict"):
        sopt.bayes.evidence_fit(obj, beta=1.0, max_cycles=1, options=["gtol", 1e-6])
