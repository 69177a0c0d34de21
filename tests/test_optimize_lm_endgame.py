"""Levenberg-Marquardt's round-off endgame: where E can no longer rank two
points, a step that halves |g|_inf is taken (as in Newton's line search),
so LM reaches gtol instead of stopping with 'Damping exceeded mu_max'."""
import numpy as np
import pytest

import sopt


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
