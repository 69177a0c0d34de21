"""The Armijo backtracking line search (sopt/optimize/_line_search.py),
shared by Newton and gradient descent."""
from __future__ import annotations

import numpy as np

from sopt.optimize._line_search import armijo
from sopt.optimize._problem import make_problem


# a mutation the rest of the suite let through: the Armijo condition is
# f(w + t p) <= f + c1 t g.p
def test_armijo_halves_when_the_full_step_does_not_decrease_enough():
    """f = x.x at x = 1, p = -2x: t = 1 lands on x = -1 with f = 1, which
    fails f <= 1 + c1 (g.p = -4); t = 1/2 lands on the minimum."""
    problem = make_problem(lambda x: x @ x, jac=lambda x: 2 * x)
    x = np.array([1.0])
    w_new, f_new, t = armijo(problem, x, 1.0, 2 * x, -2 * x)
    assert t == 0.5
    np.testing.assert_array_equal(w_new, [0.0])
    assert f_new == 0.0


def test_line_search_names_still_import_from_the_newton_module():
    """Levenberg-Marquardt and older code import the line search's pieces
    from sopt.optimize._newton; they are the line-search module's own."""
    from sopt.optimize import _line_search, _newton
    for name in ("armijo", "RoundOff", "ROUND_OFF_MESSAGE", "gradient_halved",
                 "round_off_of"):
        assert getattr(_newton, name) is getattr(_line_search, name)
