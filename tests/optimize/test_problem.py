"""Plain callables given to sopt.optimize.minimize (wrapped by
sopt/optimize/_problem.py): ones that are not callable, that return the
wrong shape or type, and an empty w0 are refused with an error naming the
argument, before the iterations start (under a SIGALRM guard)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import rosen, rosen_der, rosen_hess

from problems import small_objective
from sopt.optimize import minimize

X0 = np.array([-1.2, 1.0])        # Rosenbrock's classic start

pytestmark = pytest.mark.usefixtures("no_hang")


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
