"""sopt.optimize.minimize on Rosenbrock through the bare-callable path, in
the style of scipy's trust-region tests: easy and hard starts, the start at
the optimum, and agreement between solvers.

Tolerances
----------
GTOL = 1e-6 is minimize's default stop, |g|_inf <= gtol.
X_ATOL = 1e-5: near the minimiser x* = 1, x - x* ~ H*^{-1} g, so
    |x - x*|_2 <= |g|_2 / lambda_min(H*) <= sqrt(n) gtol / lambda_min.
    lambda_min(H*) = 0.399 (n = 2) and 0.497 (n = 5), hence
    |x - x*| <= 3.6e-6 (n = 2) and 4.5e-6 (n = 5): 1e-5 leaves a factor 2,
    while a solver stopped early (|g| ~ 1e-3) misses by ~1e-3.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import rosen, rosen_der, rosen_hess, rosen_hess_prod

from sopt.optimize import minimize

GTOL = 1e-6
X_ATOL = 1e-5

SECOND_ORDER = ["newton", "trust-exact", "trust-ncg", "trust-krylov",
                "newton-cg", "dogleg"]
FIRST_ORDER = ["bfgs", "l-bfgs-b", "cg"]
METHODS = SECOND_ORDER + FIRST_ORDER

EASY = (-1.2, 1.0)
HARD = (-3.0, -4.0)
# A 5-D start from which every method reaches x* = 1 (from (-1.2, 1, -1.2,
# 1, -1.2) Newton correctly lands on the other local minimum of 5-D
# Rosenbrock, near (-0.96, 0.94, 0.91, 0.81, 0.67)). H is indefinite here
# (lambda_min = -54.7), so dogleg refuses it (tested below).
HARD_5D = (1.3, 0.7, 0.8, 1.9, 1.2)
STARTS = {"easy": EASY, "hard": HARD, "hard-5d": HARD_5D}


def rosen_residuals(x):
    """rosen(x) = |r|^2 for n = 2: r = [10 (x1 - x0^2), 1 - x0]."""
    return np.array([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def rosen_residual_jacobian(x):
    return np.array([[-20.0 * x[0], 10.0], [-1.0, 0.0]])


def rosen_gauss_newton(x):
    """Hessian of |r|^2 without the residual-curvature term: 2 J^T J."""
    J = rosen_residual_jacobian(x)
    return 2.0 * J.T @ J


def run(x0, method, **options):
    return minimize(rosen, np.array(x0, dtype=float), method=method,
                    jac=rosen_der, hess=rosen_hess, hessp=rosen_hess_prod,
                    gauss_newton=rosen_gauss_newton, options=options or None)


def assert_at_minimum(res, n):
    assert res.success, res.message
    assert res.status == 0
    assert res.x.shape == (n,)
    assert np.max(np.abs(res.x - 1.0)) <= X_ATOL
    assert np.max(np.abs(res.jac)) <= GTOL
    # the reported gradient and value are those of the returned x
    np.testing.assert_allclose(res.jac, rosen_der(res.x), rtol=0, atol=1e-12)
    assert res.fun == pytest.approx(rosen(res.x), rel=1e-12, abs=1e-300)
    assert 0.0 <= res.fun <= 1e-10


# ---------------------------------------------------------------- checks
def test_residual_form_is_rosenbrock():
    rng = np.random.default_rng(0)
    for x in rng.standard_normal((5, 2)) * 2:
        r = rosen_residuals(x)
        assert r @ r == pytest.approx(rosen(x), rel=1e-14)
        # gradient of |r|^2 is 2 J^T r
        np.testing.assert_allclose(2 * rosen_residual_jacobian(x).T @ r,
                                   rosen_der(x), rtol=1e-13, atol=1e-12)
    # at the minimum the residual vanishes, so 2 J^T J is the exact Hessian
    np.testing.assert_allclose(rosen_gauss_newton(np.ones(2)),
                               rosen_hess(np.ones(2)), rtol=1e-14)


def test_hard_5d_start_has_negative_curvature():
    assert np.linalg.eigvalsh(rosen_hess(np.array(HARD_5D)))[0] < -50


# --------------------------------------------------------- easy and hard
@pytest.mark.parametrize("start", list(STARTS), ids=list(STARTS))
@pytest.mark.parametrize("method", METHODS)
def test_rosenbrock(method, start):
    x0 = STARTS[start]
    if method == "dogleg" and start == "hard-5d":
        with pytest.raises(ValueError, match="dogleg"):
            run(x0, method)
        return
    res = run(x0, method)
    assert_at_minimum(res, len(x0))
    assert res.nit >= 1
    assert res.method == method


@pytest.mark.parametrize("start", ["easy", "hard"])
def test_rosenbrock_lm_least_squares_form(start):
    res = run(STARTS[start], "lm")
    assert_at_minimum(res, 2)
    # each LM step uses one Gauss-Newton matrix; none of rosen_hess
    assert res.nhev == res.nit


def test_lm_uses_gauss_newton_not_hess():
    calls = {"gn": 0, "hess": 0}

    def gn(x):
        calls["gn"] += 1
        return rosen_gauss_newton(x)

    def hess(x):
        calls["hess"] += 1
        return rosen_hess(x)

    res = minimize(rosen, np.array(EASY), method="lm", jac=rosen_der,
                   hess=hess, gauss_newton=gn)
    assert res.success
    assert calls == {"gn": res.nit, "hess": 0}
    assert res.nhev == res.nit


# ---------------------------------------------------- start at the optimum
@pytest.mark.parametrize("method", METHODS + ["lm", "gd"])
def test_start_at_optimum(method):
    x0 = np.ones(2)
    assert np.all(rosen_der(x0) == 0)
    res = run(x0, method)
    assert res.success, res.message
    assert res.status == 0
    assert res.nit == 0
    np.testing.assert_array_equal(res.x, x0)
    assert res.fun == 0.0
    assert len(res.history["fun"]) == 1


# ------------------------------------------------- agreement of the solvers
def test_solvers_agree_on_rosenbrock():
    """Every method from the same start lands on the same point: pairwise
    differences are within twice the per-method bound X_ATOL."""
    xs = np.array([run(HARD, m).x for m in METHODS + ["lm"]])
    assert np.max(np.abs(xs - xs[0])) <= 2 * X_ATOL
    assert np.max(np.abs(xs.mean(axis=0) - 1)) <= X_ATOL
