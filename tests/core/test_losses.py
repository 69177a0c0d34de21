"""sopt.losses: the values and deltas of cross-entropy on saturated
outputs (from the logits, never inf), the general chain rule of a
non-canonical pair (softmax outputs with binary_ce, a user copy of the
logistic) free of overflow, the canonical softmax_ce delta, and the choice
of a loss by name (unknown names and outputs outside the loss's domain are
refused, naming the argument)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import sopt
from problems import small_regression
from sopt import finite_diff
from sopt.activations import ACTIVATIONS, LOGISTIC, Activation
from sopt.losses import SOFTMAX_CE, OutputLoss
from sopt.testing import rel_err


# ------------------------------------------- non-canonical pairs: no overflow
def _check_finite_and_fd(obj, w, fd_rtol=1e-6):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        E, g = obj.value(w), obj.gradient(w)
        H = obj.hessian(w)
        Hv = obj.hvp(w, np.ones_like(w))
        G = obj.hessian(w, kind="gauss_newton")
    assert np.isfinite(E) and np.all(np.isfinite(g))
    assert np.all(np.isfinite(H)) and np.all(np.isfinite(Hv)) and np.all(np.isfinite(G))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g_fd = finite_diff.gradient(obj.value, w)
    assert rel_err(g, g_fd) < fd_rtol
    return E, g, H


def test_softmax_outputs_with_binary_ce_stay_finite_at_large_logits():
    net, X, _ = small_regression()
    net = sopt.mlp([2, 3, 3], output="softmax")
    T = np.eye(3)[np.random.default_rng(1).integers(0, 3, len(X))]
    obj = sopt.Objective(net, X, T, loss="binary_ce")
    for scale in (1.0, 20.0, 60.0, 600.0):
        w = scale * net.init_weights(0)
        E, g, H = _check_finite_and_fd(obj, w)
        assert E > 0
    # the logits really are spread far enough for y to round to 0 and 1
    a = net.propagate(w, X).a[-1]
    assert np.ptp(a, axis=1).max() > 800     # exp(-800) underflows


def test_softmax_binary_ce_matches_the_y_form_where_that_is_accurate():
    net, X, _ = small_regression()
    net = sopt.mlp([2, 3, 3], output="softmax")
    T = np.eye(3)[np.random.default_rng(1).integers(0, 3, len(X))]
    obj = sopt.Objective(net, X, T, loss="binary_ce")
    w = net.init_weights(0)
    y = net.forward(w, X)
    E_y = -np.sum(T * np.log(y) + (1 - T) * np.log1p(-y))
    assert obj.value(w) == pytest.approx(E_y, rel=1e-13)
    # exact Hessian against central differences of the gradient
    H_fd = finite_diff.hessian_from_gradient(obj.gradient, w)
    assert rel_err(obj.hessian(w), H_fd) < 1e-6


def test_user_logistic_with_binary_ce_stays_finite():
    _, X, _ = small_regression()
    user = Activation(LOGISTIC.h, LOGISTIC.dh, LOGISTIC.d2h, "my logistic")
    net = sopt.Network(n_inputs=2)
    h = net.add_layer(3, "tanh", inputs=[net.input])
    net.add_layer(1, user, inputs=[h], output=True)
    t = (X[:, 0] > 0).astype(float)
    obj = sopt.Objective(net, X, t, loss="binary_ce")
    w = 30 * net.init_weights(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        E, g = obj.value(w), obj.gradient(w)
        H = obj.hessian(w)
    assert np.isfinite(E) and np.all(np.isfinite(g)) and np.all(np.isfinite(H))
    # where y does not round to 0 or 1 the numbers are the canonical pair's
    w1 = net.init_weights(0)
    ref = sopt.Network(n_inputs=2)
    hr = ref.add_layer(3, "tanh", inputs=[ref.input])
    ref.add_layer(1, "logistic", inputs=[hr], output=True)
    ref_obj = sopt.Objective(ref, X, t, loss="binary_ce")
    assert obj.value(w1) == pytest.approx(ref_obj.value(w1), rel=1e-12)
    assert rel_err(obj.gradient(w1), ref_obj.gradient(w1)) < 1e-10


# ------------------------------------------- canonical pairs: saturated outputs
def test_cross_entropy_values_for_saturated_outputs():
    """With |a| = 1e3 the canonical values come from the logits:
    binary_ce = softplus(a) - t a, softmax_ce = logsumexp(a) - a_t; a wrong
    prediction costs ~|a| (not inf), a right one ~exp(-|a|) ~ 0."""
    net = sopt.mlp([1, 1], output="logistic")
    w = np.array([1.0, 0.0])                       # a = x
    X = np.array([[1e3], [-1e3], [1e3], [-1e3]])
    obj = sopt.Objective(net, X, [[0.0], [1.0], [1.0], [0.0]], loss="binary_ce")
    np.testing.assert_allclose(obj.pattern_errors(w), [1e3, 1e3, 0, 0],
                               rtol=1e-15, atol=1e-300)
    # saturated: y - t = (1, -1, 0, 0) exactly, so
    # dE/dw = sum (y - t) x = 1e3 + 1e3 and dE/db = sum (y - t) = 0
    np.testing.assert_array_equal(obj.gradient(w), [2e3, 0.0])

    net = sopt.mlp([1, 3], output="softmax")
    # W = [[1], [0], [-1]], b = 0: a = (x, 0, -x)
    w = np.array([1.0, 0.0, -1.0, 0.0, 0.0, 0.0])
    X = np.array([[1e3], [1e3]])
    obj = sopt.Objective(net, X, [2, 0], loss="softmax_ce")
    np.testing.assert_allclose(obj.pattern_errors(w), [2e3, 0.0], rtol=1e-15, atol=1e-300)
    g = obj.gradient(w)
    assert np.all(np.isfinite(g))
    # delta = y - t = (1, 0, -1) for pattern 1, (0, 0, 0) for pattern 2
    np.testing.assert_allclose(g, [1e3, 0, -1e3, 1, 0, -1], rtol=1e-15)


# a mutation the rest of the suite let through: softmax_ce's canonical delta
# is y sum(t) - t, not y - t
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


# ----------------------------------------------------------- by name
def test_unknown_loss_name():
    net, X, _ = small_regression()
    with pytest.raises(ValueError, match=r"loss: unknown name 'mse'"):
        sopt.Objective(net, X, X[:, 0], loss="mse")
    with pytest.raises(TypeError, match="loss"):
        sopt.Objective(net, X, X[:, 0], loss=42)


@pytest.mark.parametrize("output, loss", [("identity", "binary_ce"), ("tanh", "binary_ce"),
                                          ("identity", "softmax_ce"),
                                          ("logistic", "softmax_ce")])
def test_cross_entropy_on_outputs_not_in_unit_interval(output, loss):
    _, X, _ = small_regression()
    net = sopt.mlp([2, 3, 3], output=output)
    T = np.tile([1.0, 0.0, 0.0], (len(X), 1))
    with pytest.raises(ValueError, match=rf"loss: '{loss}' needs outputs in \(0, 1\)"):
        sopt.Objective(net, X, T, loss=loss)
