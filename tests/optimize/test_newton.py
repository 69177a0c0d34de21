"""Damped Newton (sopt/optimize/_newton.py): its damping loop ends, on an
indefinite Hessian and where no step can ever be accepted (under a SIGALRM
guard, so that a hang fails the test instead of stalling the suite)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from problems import nowhere_lower, small_objective
from sopt.optimize import ConvergenceWarning, minimize
from sopt.optimize._loop import MAX_DAMPING_RAISES
from sopt.optimize._newton import NewtonStep
from sopt.optimize._problem import make_problem

pytestmark = pytest.mark.usefixtures("no_hang")


def test_newton_on_indefinite_hessian_returns():
    """Valid options on a network whose H is indefinite at w: the damping
    must terminate."""
    obj, w = small_objective()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = minimize(obj, w, "newton", {"maxiter": 20})
    assert res.fun < obj.value(w)


def test_newton_damping_loop_is_bounded_by_a_count():
    """mu_max = 1e300 would allow ~300 tenfold raises of mu: the count stops
    first, after at most MAX_DAMPING_RAISES line searches."""
    f, w0 = nowhere_lower()
    g = np.full(2, 1e150)      # p = -g / (mu - 1): 40 halvings for every mu < 1e150
    problem = make_problem(f, jac=lambda x: g, hess=lambda x: -np.eye(2))
    rule = NewtonStep(problem, gtol=1e-6, mu_min=1e-300, mu_max=1e300)
    with pytest.raises(Exception, match="Damping") as info:
        rule.step(w0, 0.0, g)
    assert info.value.status == 4
    assert f.calls <= 41 * (MAX_DAMPING_RAISES + 1)
