"""The options of sopt.optimize.minimize (sopt/optimize/_options.py): a bad
value or a bad pair of values gives a clear TypeError or ValueError naming
the option, before the iterations start; an unknown option warns and is
ignored; numpy scalars are accepted; valid trust-region options are used.
Every test runs under a SIGALRM guard (tests/optimize/conftest.py), so a
hang fails the test instead of stalling the suite.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import OptimizeWarning, rosen, rosen_der, rosen_hess

from helpers import must_not_be_called
from problems import small_objective
from sopt.optimize import ConvergenceWarning, minimize

X0 = np.array([-1.2, 1.0])        # Rosenbrock's classic start

pytestmark = pytest.mark.usefixtures("no_hang")


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


# ten iterations use each option (the runs to gtol take ~150)
@pytest.mark.parametrize("options", [{"gtol": np.float32(1e-5), "maxiter": 10},
                                     {"maxiter": np.int64(3)},
                                     {"mu_min": np.float64(1e-6), "c1": 0.25, "maxiter": 10}])
def test_numpy_scalars_are_accepted(options):
    obj, w = small_objective()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = minimize(obj, w, "newton", options)
    assert np.isfinite(res.fun) and res.fun <= obj.value(w)

