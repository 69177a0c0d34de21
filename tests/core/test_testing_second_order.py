"""sopt.testing.check_hvp and check_hessian: the library's own products
pass, a 1% error is caught, and the cost does not grow with W."""
import numpy as np
import pytest

import sopt
from sopt.testing import check_hessian, check_hvp

# central differences of the gradient with eps ~ macheps^(1/3): truncation
# O(eps^2) ~ 1e-11 and round-off ~ macheps |g| / eps ~ 1e-11 relative; 1e-6
# leaves room for conditioning and is far below the 1e-2 error to catch
TOL = 1e-6


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    net = sopt.testing.random_network(3, n_outputs=2)
    X = rng.standard_normal((30, net.n_inputs))
    obj = sopt.Objective(net, X, rng.standard_normal((30, 2)), alpha=0.1)
    return obj, net.init_weights(seed=1)


def test_library_products_pass(problem):
    obj, w = problem
    assert check_hvp(obj.gradient, obj.hvp, w).max() < TOL
    # the Gauss-Newton product is not the Hessian's where residuals are large
    assert check_hvp(obj.gradient, obj.gnvp, w).min() > 0.1
    assert check_hessian(obj.gradient, obj.hessian, w).max() < TOL


def test_a_one_percent_error_is_caught(problem):
    obj, w = problem
    assert check_hvp(obj.gradient, lambda w, v: 1.01 * obj.hvp(w, v), w).min() > 5e-3
    H = obj.hessian(w)
    H[0, :] *= 1.01
    H[:, 0] *= 1.01
    worst = check_hessian(obj.gradient, lambda w: H, w, n_directions=20).max()
    assert worst > 1e-4


def test_cost_does_not_grow_with_w(problem):
    obj, w = problem
    calls = {"grad": 0, "hvp": 0}

    def grad(x):
        calls["grad"] += 1
        return obj.gradient(x)

    def hvp(x, v):
        calls["hvp"] += 1
        return obj.hvp(x, v)

    check_hvp(grad, hvp, w, n_directions=4)
    assert calls == {"grad": 8, "hvp": 4}


def test_bad_shapes_and_steps_are_named():
    w = np.zeros(3)
    with pytest.raises(ValueError, match="hvp: returned shape"):
        check_hvp(lambda x: x, lambda x, v: np.zeros(2), w)
    with pytest.raises(ValueError, match="hess: returned shape"):
        check_hessian(lambda x: x, lambda x: np.zeros((3, 2)), w)
    with pytest.raises(ValueError, match="eps"):
        check_hvp(lambda x: x, lambda x, v: v, w, eps=0.0)
