"""The contract of sopt.optimize.minimize around the solvers: maxiter,
callback, history, evaluation counts, input checking before any evaluation,
warnings, and numerical failure as a status rather than an exception
(also where no step can ever be accepted); gtol is on |g|_inf.

Rosenbrock from (-1.2, 1) is the workhorse: no method converges in 3
iterations and every method converges in < 100 (gd excepted: ~13000).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import (OptimizeWarning, rosen, rosen_der, rosen_hess,
                            rosen_hess_prod)

import sopt
from problems import nowhere_lower
from sopt.optimize import ConvergenceWarning, minimize

STEP_RULE_METHODS = ["newton", "lm", "gd"]
SCIPY = ["trust-exact", "trust-ncg", "trust-krylov", "newton-cg", "dogleg",
         "bfgs", "l-bfgs-b", "cg"]
ALL = STEP_RULE_METHODS + SCIPY
SECOND_ORDER = ["newton", "lm", "trust-exact", "trust-ncg", "trust-krylov",
                "newton-cg", "dogleg"]
X0 = np.array([-1.2, 1.0])


def rosen_gauss_newton(x):
    J = np.array([[-20.0 * x[0], 10.0], [-1.0, 0.0]])
    return 2.0 * J.T @ J


DERIVATIVES = dict(jac=rosen_der, hess=rosen_hess, hessp=rosen_hess_prod,
                   gauss_newton=rosen_gauss_newton)


def run(method, x0=X0, **kwargs):
    kw = {**DERIVATIVES, **kwargs}
    return minimize(kw.pop("fun", rosen), np.array(x0, dtype=float),
                    method=method, **kw)


def quadratic():
    """f = 1/2 x^T A x - b^T x, cond(A) = 10: gd converges in ~100 steps."""
    A = np.diag([1.0, 3.0, 10.0])
    b = np.array([1.0, -2.0, 0.5])
    return (lambda x: 0.5 * x @ A @ x - b @ x, lambda x: A @ x - b,
            lambda x: A, np.linalg.solve(A, b))


# ---------------------------------------------------------------- maxiter
@pytest.mark.parametrize("method", ALL)
def test_maxiter(method):
    with pytest.warns(ConvergenceWarning, match=method):
        res = run(method, options={"maxiter": 3})
    assert res.nit == 3
    assert res.success is False
    assert res.status == 1
    assert isinstance(res.message, str) and res.message
    assert len(res.history["fun"]) == 4
    assert np.max(np.abs(res.jac)) > 1e-6       # genuinely not converged
    # x, fun and jac belong together
    assert res.fun == pytest.approx(rosen(res.x), rel=1e-12)
    np.testing.assert_allclose(res.jac, rosen_der(res.x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ALL)
def test_maxiter_zero(method):
    with pytest.warns(ConvergenceWarning):
        res = run(method, options={"maxiter": 0})
    assert (res.nit, res.status, res.success) == (0, 1, False)
    np.testing.assert_array_equal(res.x, X0)
    assert "maxiter = 0" in res.message
    assert (res.nfev, res.njev) == (1, 1)       # f and g at w0 only
    assert len(res.history["fun"]) == 1


def test_maxiter_zero_at_a_minimum_is_converged():
    for method in ALL:
        res = run(method, x0=[1.0, 1.0], options={"maxiter": 0})
        assert (res.nit, res.status, res.success) == (0, 0, True), method


def test_convergence_warning_points_at_the_caller():
    """The ConvergenceWarning should be attributed to the user's call of
    minimize (like the OptimizeWarning for unknown options), not to a line
    inside sopt/optimize."""
    with pytest.warns(ConvergenceWarning) as record:
        run("newton", options={"maxiter": 1})
    with pytest.warns(OptimizeWarning) as record_opt:
        run("newton", options={"bogus": 1})
    assert record_opt[0].filename == __file__
    assert record[0].filename == __file__


# ---------------------------------------------------------------- callback
@pytest.mark.parametrize("method", ALL)
def test_callback_once_per_iteration(method):
    seen = []
    if method == "gd":              # ~13000 iterations on Rosenbrock
        f, g, H, _ = quadratic()
        res = minimize(f, np.zeros(3), method="gd", jac=g,
                       callback=lambda r: seen.append(r.x.copy()))
    else:
        f = rosen
        res = run(method, callback=lambda r: seen.append(r.x.copy()))
    assert res.success, res.message
    assert res.nit >= 5
    assert len(seen) == res.nit
    np.testing.assert_array_equal(seen[-1], res.x)
    # the callback sees the iterates the history records
    if method in STEP_RULE_METHODS:
        assert [float(f(x)) for x in seen] == pytest.approx(
            res.history["fun"][1:], rel=1e-14)


@pytest.mark.parametrize("method", ALL)
def test_callback_stops(method):
    seen = []

    def stop_on_second(r):
        seen.append(r.x.copy())
        return len(seen) == 2

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)   # none expected
        res = run(method, callback=stop_on_second)
    assert res.status == 2
    assert res.success is False
    assert res.nit == 2
    assert len(seen) == 2
    np.testing.assert_array_equal(res.x, seen[-1])
    assert len(res.history["fun"]) == 3


@pytest.mark.parametrize("method", ALL)
def test_callback_cannot_change_the_solver_state(method):
    """Zeroing the iterate's x and jac in place inside the callback changes
    nothing: the callback gets copies."""
    def vandal(r):
        r.x[:] = 0.0
        r.jac[:] = 0.0

    options = {"maxiter": 40}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = run(method, options=options)
        edited = run(method, options=options, callback=vandal)
    assert edited.nit == plain.nit and edited.status == plain.status
    np.testing.assert_array_equal(edited.x, plain.x)


@pytest.mark.parametrize("method", ALL)
def test_callback_sees_x_fun_jac_nit(method):
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        run(method, options={"maxiter": 3},
            callback=lambda r: seen.append((r.x, r.fun, r.jac, r.nit)))
    assert [nit for *_, nit in seen] == [1, 2, 3]
    for x, fun, jac, _ in seen:
        assert fun == pytest.approx(rosen(x), rel=1e-12)
        np.testing.assert_allclose(jac, rosen_der(x), rtol=1e-12)


@pytest.mark.parametrize("method", ["newton", "lm", "gd", "trust-ncg", "bfgs"])
def test_callback_returning_an_array_is_refused(method):
    with pytest.raises(TypeError, match="callback: must return None, False or True"):
        run(method, callback=lambda r: r.x)


# ----------------------------------------------------------- gtol_rel
# gd slow (thousands of iterations on Rosenbrock): newton and lm, fast, stop
# through the same outer loop (optimize/_loop.py) and its gtol_rel test
@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m == "gd"
                                    else m for m in ALL])
def test_gtol_rel_needs_no_rescaling(method):
    """E = c rosen, as a sum over c patterns would scale it: gtol_rel = 1e-3
    stops every method at |g|_inf <= 1e-3 |g(w0)|_inf for c = 1 and c = 1e6
    alike, well before the exact minimum (the absolute gtol set out of
    reach; the largest overshoot seen is dogleg's, 9e-5), and Newton and trust-exact,
    invariant to the scale of E, take the same iterations for both."""
    g0 = np.max(np.abs(rosen_der(X0)))
    nits = []
    for c in (1.0, 1e6):
        res = run(method, fun=lambda x: c * rosen(x), jac=lambda x: c * rosen_der(x),
                  hess=lambda x: c * rosen_hess(x),
                  hessp=lambda x, p: c * rosen_hess_prod(x, p),
                  gauss_newton=lambda x: c * rosen_gauss_newton(x),
                  options={"gtol": 1e-300, "gtol_rel": 1e-3, "maxiter": 3000})
        assert res.success, res.message
        assert np.max(np.abs(res.jac)) <= 1e-3 * c * g0
        if method != "newton-cg":   # scipy's newton-cg stops on xtol only
            # stopped by gtol_rel, not run on to the exact minimum (g = 0)
            assert np.max(np.abs(res.jac)) > 1e-8 * c * g0
        nits.append(res.nit)
    if method in ("newton", "trust-exact"):
        assert nits[0] == nits[1]


@pytest.mark.parametrize("value, error", [(1.0, ValueError), (-0.1, ValueError),
                                          ("1e-3", TypeError)])
def test_gtol_rel_checked(value, error):
    with pytest.raises(error, match="gtol_rel: expected"):
        minimize(must_not_be_called, X0, method="newton", options={"gtol_rel": value},
                 **NO_EVAL)


# --------------------------------------------------------------------- disp
@pytest.mark.parametrize("method", ALL)
def test_disp_prints_one_line_per_iteration(method, capsys):
    with pytest.warns(ConvergenceWarning):
        res = run(method, options={"maxiter": 3, "disp": True})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == res.nit + 2          # the start, 3 iterations, the result
    for k, line in enumerate(lines[:-1]):
        assert line.startswith(f"{method}: iter {k:4d}  E = ")
        E = float(line.split("E = ")[1].split()[0])
        g = float(line.split("|g|_inf = ")[1].split()[0])
        assert E == pytest.approx(res.history["fun"][k], rel=1e-8)
        assert g == pytest.approx(res.history["grad_inf"][k], rel=1e-3)
        assert ("mu = " in line) == (method in ("newton", "lm"))
        assert ("lr = " in line) == (method == "gd")
    assert res.message in lines[-1]


@pytest.mark.parametrize("method", ALL)
def test_no_output_without_disp(method, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        run(method, options={"maxiter": 3, "disp": False})
        run(method, options={"maxiter": 3})
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------------ history
@pytest.mark.parametrize("method", STEP_RULE_METHODS)
def test_history_own_methods(method):
    calls = {"f": 0, "g": 0, "h": 0}

    def counted(name, fn):
        def wrapper(*args):
            calls[name] += 1
            return fn(*args)
        return wrapper

    f, g, H, x_star = quadratic()
    res = minimize(counted("f", f), np.zeros(3), method=method,
                   jac=counted("g", g), hess=counted("h", H),
                   gauss_newton=counted("h", H))
    assert res.success, res.message
    np.testing.assert_allclose(res.x, x_star, atol=1e-5)
    h = res.history
    assert set(h) >= {"fun", "grad_inf", "step", "damping", "time"}
    assert all(isinstance(v, list) and len(v) == res.nit + 1 for v in h.values())
    fun = np.array(h["fun"])
    assert np.all(np.diff(fun) <= 0)
    assert fun[0] == f(np.zeros(3)) and fun[-1] == res.fun
    assert h["grad_inf"][0] == np.max(np.abs(g(np.zeros(3))))
    assert h["grad_inf"][-1] == np.max(np.abs(res.jac)) <= 1e-6
    assert h["step"][0] == 0.0 and all(s > 0 for s in h["step"][1:])
    assert np.all(np.diff(h["time"]) >= 0)
    # counts are the true numbers of evaluations
    for key in ("nfev", "njev", "nhev"):
        assert isinstance(res[key], int) and res[key] >= 0
    assert (res.nfev, res.njev, res.nhev) == (calls["f"], calls["g"], calls["h"])
    assert res.njev == res.nit + 1
    assert res.nfev >= res.nit + 1
    if method == "gd":
        assert res.nhev == 0
    else:
        assert res.nhev >= res.nit >= 1


@pytest.mark.parametrize("method", ["newton", "lm", "gd"])
def test_history_fun_non_increasing_on_rosenbrock(method):
    options = {"maxiter": 300} if method == "gd" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = run(method, options=options)
    fun = np.array(res.history["fun"])
    assert len(fun) == res.nit + 1
    assert np.all(np.diff(fun) <= 0)
    assert fun[-1] < fun[0]


@pytest.mark.parametrize("method", ALL)
def test_history_and_counts_all_methods(method):
    options = {"maxiter": 50}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = run(method, options=options)
    lengths = {k: len(v) for k, v in res.history.items()}
    assert set(lengths.values()) == {res.nit + 1}, lengths
    assert res.history["fun"][0] == rosen(X0)
    assert res.history["fun"][-1] == pytest.approx(res.fun, rel=1e-14)
    for key in ("nfev", "njev", "nhev"):
        assert isinstance(res[key], int), (key, type(res[key]))
    assert res.nfev >= 1 and res.njev >= 1
    if method in SECOND_ORDER:
        assert res.nhev >= 1
    else:
        assert res.nhev == 0


# ------------------------------------------------- bad input, no evaluation
def must_not_be_called(*args):
    raise AssertionError("evaluated before the input was checked")


NO_EVAL = dict(jac=must_not_be_called, hess=must_not_be_called,
               hessp=must_not_be_called, gauss_newton=must_not_be_called)


@pytest.mark.parametrize("method", ["newtn", "Trust-Region", ""])
def test_unknown_method(method):
    with pytest.raises(ValueError, match="method"):
        minimize(must_not_be_called, X0, method=method, **NO_EVAL)


@pytest.mark.parametrize("method", [None, 3])
def test_method_not_a_name(method):
    with pytest.raises(TypeError, match="method"):
        minimize(must_not_be_called, X0, method=method, **NO_EVAL)


@pytest.mark.parametrize("bad", [np.array([0.0, np.nan]), np.array([np.inf, 1.0]),
                                 np.zeros((2, 1)), np.zeros((1, 2)),
                                 np.float64(1.0)])
@pytest.mark.parametrize("method", ["newton", "lm", "trust-exact", "bfgs"])
def test_bad_w0_plain_callable(method, bad):
    with pytest.raises(ValueError, match="w0"):
        minimize(must_not_be_called, bad, method=method, **NO_EVAL)


def _objective_that_must_not_be_called():
    net = sopt.mlp([1, 2, 1])
    rng = np.random.default_rng(0)
    obj = sopt.Objective(net, rng.standard_normal((5, 1)), rng.standard_normal(5))
    for name in ("fun", "jac", "hess", "hessp", "hessian"):
        setattr(obj, name, must_not_be_called)
    return net, obj


@pytest.mark.parametrize("method", ["newton", "lm", "trust-ncg", "l-bfgs-b"])
def test_bad_w0_objective(method):
    net, obj = _objective_that_must_not_be_called()
    W = net.n_weights
    for bad in (np.zeros(W - 1), np.zeros(W + 1), np.zeros((W, 1))):
        with pytest.raises(ValueError, match=f"w0.*{W}"):
            minimize(obj, bad, method=method)
    w = np.zeros(W)
    w[3] = np.nan
    with pytest.raises(ValueError, match="w0"):
        minimize(obj, w, method=method)


def test_w0_not_modified():
    x0 = X0.copy()
    for method in ALL:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            run(method, x0=x0, options={"maxiter": 5})
        np.testing.assert_array_equal(x0, X0)


@pytest.mark.parametrize("method", ["newton", "lm", "gd"])
def test_unknown_option_warns(method):
    f, g, H, x_star = quadratic()
    with pytest.warns(OptimizeWarning, match="mu_initial"):
        res = minimize(f, np.zeros(3), method=method, jac=g, hess=H,
                       gauss_newton=H, options={"mu_initial": 1.0})
    assert res.success                 # and the run goes on as usual
    np.testing.assert_allclose(res.x, x_star, atol=1e-5)


@pytest.mark.parametrize("options", [{"gtol": 0.0}, {"gtol": -1e-6},
                                     {"maxiter": -1}])
def test_bad_tolerances(options):
    with pytest.raises(ValueError, match="gtol|maxiter"):
        minimize(must_not_be_called, X0, method="newton", options=options,
                 **NO_EVAL)


def test_lm_needs_gauss_newton():
    with pytest.raises(ValueError, match="gauss_newton"):
        minimize(must_not_be_called, X0, method="lm", jac=must_not_be_called,
                 hess=must_not_be_called)


@pytest.mark.parametrize("method, missing", [("newton", "hess"),
                                             ("trust-exact", "hess"),
                                             ("dogleg", "hess"),
                                             ("trust-ncg", "hessp"),
                                             ("trust-krylov", "hessp"),
                                             ("newton-cg", "hessp")])
def test_second_derivative_needed(method, missing):
    kw = {k: v for k, v in NO_EVAL.items() if k != missing}
    with pytest.raises(ValueError, match=missing):
        minimize(must_not_be_called, X0, method=method, **kw)


def test_plain_callable_needs_jac():
    with pytest.raises(ValueError, match="jac"):
        minimize(must_not_be_called, X0, method="bfgs")


def test_not_callable():
    with pytest.raises(TypeError, match="obj"):
        minimize("rosen", X0, method="bfgs", jac=must_not_be_called)
    with pytest.raises(TypeError, match="callback"):
        minimize(must_not_be_called, X0, method="bfgs", jac=must_not_be_called,
                 callback=3)


def test_dogleg_at_indefinite_hessian():
    x0 = np.array([0.0, 1.0])        # H = [[-398, 0], [0, 200]]
    assert np.linalg.eigvalsh(rosen_hess(x0))[0] < 0
    with pytest.raises(ValueError, match="dogleg"):
        minimize(must_not_be_called, x0, method="dogleg", jac=must_not_be_called,
                 hess=rosen_hess)


# ------------------------------------------------ numerical failure in the loop
def nan_after(n_calls, fn, *, on="value"):
    """fn, but returning NaN (of fn's shape) from call n_calls + 1 on."""
    count = [0]

    def wrapper(*args):
        count[0] += 1
        out = fn(*args)
        return out * np.nan if count[0] > n_calls else out
    return wrapper


@pytest.mark.parametrize("method", ALL)
def test_nan_value_is_a_status(method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = run(method, fun=nan_after(3, rosen), options={"maxiter": 200})
    assert res.success is False, res.message
    assert res.status != 0
    assert isinstance(res.message, str) and res.message
    assert len(res.history["fun"]) == res.nit + 1


@pytest.mark.parametrize("method", ALL)
def test_nan_gradient_is_a_status(method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = run(method, jac=nan_after(3, rosen_der), options={"maxiter": 200})
    assert res.success is False, res.message
    assert res.status != 0
    assert isinstance(res.message, str) and res.message


@pytest.mark.parametrize("method", SECOND_ORDER)
def test_nan_curvature_is_a_status(method):
    kw = dict(hess=nan_after(2, rosen_hess), hessp=nan_after(4, rosen_hess_prod),
              gauss_newton=nan_after(2, rosen_gauss_newton))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = run(method, options={"maxiter": 200}, **kw)
    assert res.success is False, res.message
    assert res.status != 0
    assert isinstance(res.message, str) and res.message


@pytest.mark.parametrize("method", ALL)
def test_nan_gradient_status_is_5(method):
    with pytest.warns(ConvergenceWarning, match="Non-finite"):
        res = run(method, jac=nan_after(3, rosen_der))
    assert res.status == 5
    assert np.all(np.isfinite(res.x))


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("method", ALL)
def test_first_non_finite_f_stops(method, value):
    """f turns NaN (or inf) at its 4th evaluation: every method stops right
    there (status 5, said in the message) at its last finite point, instead
    of backtracking or damping around it for hundreds of evaluations."""
    def f(x, count=[0]):
        count[0] += 1
        return rosen(x) if count[0] <= 3 else value

    with pytest.warns(ConvergenceWarning, match="Non-finite value of f"):
        res = run(method, fun=f)
    assert (res.status, res.success, res.nfev) == (5, False, 4)
    assert res.fun == rosen(res.x) and np.isfinite(res.fun)


def test_non_finite_start_is_a_status():
    for method in ALL:
        with pytest.warns(ConvergenceWarning, match="Non-finite f or gradient at w0"):
            res = run(method, fun=lambda x: np.nan)
        assert (res.status, res.nit, res.nfev) == (5, 0, 1), method


@pytest.mark.parametrize("method, options", [("newton-cg", {"xtol": 0.1}),
                                             ("l-bfgs-b", {"ftol": 1e-2})])
def test_scipy_stopping_short_of_gtol_says_so(method, options):
    """scipy's own stopping test (xtol, ftol) met before gtol: success is
    False and the message must not claim success."""
    with pytest.warns(ConvergenceWarning):
        res = run(method, options=options)
    assert (res.success, res.status) == (False, 3)
    assert np.max(np.abs(res.jac)) > 1e-6
    assert "success" not in res.message.lower() and "gtol" in res.message


# ------------------------------------------------ no step ever accepted
@pytest.mark.usefixtures("no_hang")
@pytest.mark.parametrize("method", ["newton", "lm"])
def test_no_decrease_anywhere_is_a_status(method):
    f, w0 = nowhere_lower()
    with pytest.warns(ConvergenceWarning):
        res = minimize(f, w0, method, {"mu_max": 1e300}, jac=lambda x: np.ones(2),
                       hess=lambda x: -np.eye(2), gauss_newton=lambda x: np.eye(2))
    assert res.status == 4 and not res.success
    np.testing.assert_array_equal(res.x, w0)


# ---------------------------------------- gtol is on |g|_inf, not |g|_2
# (a mutation the rest of the suite let through)
@pytest.mark.parametrize("method", sopt.optimize.METHODS)
def test_gtol_is_on_the_largest_gradient_entry(method):
    """At x0 = (1, 1, 1, 1) on f = |x|^2 / 2: |g|_inf = 1 <= gtol = 1.5 < |g|_2 = 2,
    so every method stops at once, converged."""
    x0 = np.ones(4)
    I = np.eye(4)
    res = sopt.optimize.minimize(lambda x: 0.5 * x @ x, x0, method, {"gtol": 1.5},
                                 jac=lambda x: x, hess=lambda x: I,
                                 hessp=lambda x, p: p, gauss_newton=lambda x: I)
    assert res.success and res.status == 0
    assert res.nit == 0
    np.testing.assert_array_equal(res.x, x0)
