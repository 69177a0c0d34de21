"""Newton's damping ladder: the factor ``mu_inc`` of each raise of mu."""
from __future__ import annotations

import numpy as np
import pytest

from sopt.optimize import ConvergenceWarning, minimize

# f(x) = x^T H x / 2 + b^T x with H = diag(-1, 4): indefinite, so the first
# step needs mu > 1 for H + mu I to have a Cholesky factor
H = np.diag([-1.0, 4.0])
B = np.array([1.0, 1.0])


def first_damping(**options) -> float:
    """The mu of one Newton step from 0 (f is unbounded below: maxiter ends it)."""
    with pytest.warns(ConvergenceWarning, match="Maximum number of iterations"):
        res = minimize(lambda x: 0.5 * x @ H @ x + B @ x, np.zeros(2), method="newton",
                       jac=lambda x: H @ x + B, hess=lambda x: H,
                       options={"maxiter": 1, **options})
    return res.history["damping"][1]


@pytest.mark.parametrize("mu_inc", [2.0, 10.0])
def test_the_ladder_overshoots_the_smallest_damping_by_at_most_mu_inc(mu_inc):
    """From mu_min max|H_ii| = 4e-8 the ladder climbs by mu_inc; the first
    mu with H + mu I positive definite (mu > 1) is at most mu_inc (4e-8
    2^25 = 1.34 for 2, 4e-8 10^8 = 4 for the default 10)."""
    mu = first_damping(mu_inc=mu_inc)
    assert 1.0 < mu <= mu_inc
    assert mu == pytest.approx(4e-8 * mu_inc ** np.ceil(np.log(1 / 4e-8) / np.log(mu_inc)))


def test_the_default_raise_is_tenfold():
    assert first_damping() == pytest.approx(4.0)


@pytest.mark.parametrize("value, error", [(1.0, ValueError), (0.5, ValueError),
                                          (np.inf, ValueError), ("2", TypeError),
                                          (True, TypeError)])
def test_mu_inc_is_checked_before_f_is_used(value, error):
    def must_not_be_called(x):
        raise AssertionError("f evaluated before the options were checked")
    with pytest.raises(error, match="mu_inc"):
        minimize(must_not_be_called, np.zeros(2), method="newton",
                 jac=must_not_be_called, hess=must_not_be_called,
                 options={"mu_inc": value})
