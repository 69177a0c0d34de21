"""Tests that kill mutations the rest of the suite let through (each a change the other tests did not notice).

Each test names the mutation it is there for; each was checked by applying
the mutation, seeing the test fail, and reverting.
"""
from __future__ import annotations

import numpy as np
import pytest

import sopt
from sopt.activations import ACTIVATIONS, RELU
from sopt.losses import SOFTMAX_CE, OutputLoss
from sopt.optimize._line_search import armijo
from sopt.optimize._problem import make_problem


# ------------------------------------------------ relu: h'(0) := 0, not 1
def test_relu_derivative_at_the_kink_is_zero():
    np.testing.assert_array_equal(RELU.dh(np.array([-1.0, -0.0, 0.0, 1e-300, 2.0])),
                                  [0.0, 0.0, 0.0, 1.0, 1.0])


def test_gradient_with_a_relu_pre_activation_exactly_zero():
    """mlp [1, 1, 1], w = (W1, b1, W2, b2) = (1, -1, 2, 0.5), x = 1: the
    hidden pre-activation is exactly 0, so y = b2 = 0.5 and with t = 3,
    dE/dy = -2.5; with h'(0) = 0 nothing flows back into W1 and b1."""
    net = sopt.mlp([1, 1, 1], hidden="relu")
    obj = sopt.Objective(net, np.array([[1.0]]), np.array([3.0]))
    w = np.array([1.0, -1.0, 2.0, 0.5])
    np.testing.assert_array_equal(obj.gradient(w), [0.0, 0.0, 0.0, -2.5])


# ------------------------------------- Armijo: f(w + t p) <= f + c1 t g.p
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


# ------------------------------------------------ gtol is on |g|_inf, not |g|_2
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


# ---------------------------- softmax_ce canonical delta: y sum(t) - t, not y - t
def test_softmax_ce_delta_is_the_derivative_of_its_value_for_unnormalised_targets():
    """Targets twice a probability row (sum 2): the canonical delta must be
    dE/da of the canonical value, checked by central differences in a."""
    rng = np.random.default_rng(0)
    softmax = ACTIVATIONS["softmax"]
    output_loss = OutputLoss(SOFTMAX_CE, softmax)
    assert output_loss.canonical
    a = rng.standard_normal((4, 3))
    T = 2 * rng.dirichlet(np.ones(3), size=4)
    values = lambda a: output_loss.pattern_errors(a, softmax.h(a), T)      # noqa: E731
    h = 1e-6
    fd = np.stack([(values(a + h * e) - values(a - h * e)) / (2 * h)
                   for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(output_loss.delta(a, softmax.h(a), T), fd, atol=1e-8)
