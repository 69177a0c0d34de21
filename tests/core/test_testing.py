"""sopt.testing helpers: small errors for correct derivatives, large ones for
deliberately wrong derivatives (else the checks could not catch anything).

Thresholds: a correct derivative gives the central-difference error,
~ h^2 |f'''| + macheps |f| / h ~ 1e-10 relative with h ~ 6e-6, so < 1e-7
has three orders of headroom; each wrong derivative below is off by an
O(1) relative amount, so > 1e-3 is still two orders below what it gives.
Bad steps, direction counts and network sizes are refused, naming the
argument. (check_hvp and check_hessian: test_testing_second_order.py.)
"""
import numpy as np
import pytest

import sopt
from sopt import testing

from helpers import (ARCTAN_TRIPLE, CAUCHY, LOGCOSH, SWISH, make_targets,
                     must_not_be_called, problem)
from sopt.testing import check_activation, check_gradient, check_jacobian, random_network

GOOD = 1e-7
BAD = 1e-3


# ------------------------------------------------------------ activations
@pytest.mark.parametrize("act", ["tanh", "logistic", "softplus", "identity", "relu",
                                 ARCTAN_TRIPLE, SWISH],
                         ids=["tanh", "logistic", "softplus", "identity", "relu",
                              "arctan", "swish"])
def test_check_activation_small_for_correct(act):
    err = testing.check_activation(act)
    assert set(err) == {"dh", "d2h"}
    assert err["dh"] < GOOD and err["d2h"] < GOOD


@pytest.mark.parametrize("which", ["dh", "d2h"])
def test_check_activation_large_for_wrong_derivative(which):
    h, dh, d2h = ARCTAN_TRIPLE
    if which == "dh":
        bad = (h, lambda a: 1.0 / (1.0 + a * a) ** 2, d2h)   # wrong power
    else:
        bad = (h, dh, lambda a: 2.0 * a / (1.0 + a * a) ** 2)  # wrong sign
    err = testing.check_activation(bad)
    assert err[which] > BAD
    other = "d2h" if which == "dh" else "dh"
    if which == "d2h":
        assert err[other] < GOOD          # the error is localised correctly


def test_check_activation_tanh_with_logistic_derivative():
    wrong = sopt.Activation(np.tanh, lambda a: 1 - np.tanh(a), lambda a: 0 * a)
    assert testing.check_activation(wrong)["dh"] > BAD


def test_check_activation_rejects_softmax():
    with pytest.raises(ValueError, match="activation"):
        testing.check_activation("softmax")


# ------------------------------------------------------------------ losses
@pytest.mark.parametrize("loss, kind", [("sse", "gauss"), ("binary_ce", "unit"),
                                        ("softmax_ce", "prob"), (LOGCOSH, "gauss"),
                                        (CAUCHY, "gauss")],
                         ids=["sse", "binary_ce", "softmax_ce", "logcosh", "cauchy"])
def test_check_loss_small_for_correct(loss, kind):
    rng = np.random.default_rng(0)
    y = rng.uniform(0.1, 0.9, (6, 3))          # inside (0, 1) for the CEs
    T = make_targets(rng, 6, 3, kind)
    err = testing.check_loss(loss, y, T)
    assert err["grad"] < GOOD and err["hess"] < GOOD


def test_check_loss_large_for_wrong_grad_and_hess():
    rng = np.random.default_rng(1)
    y, T = rng.standard_normal((6, 2)), rng.standard_normal((6, 2))
    wrong_grad = sopt.Loss(LOGCOSH.value, lambda y, T: np.tanh(T - y), LOGCOSH.hess)
    err = testing.check_loss(wrong_grad, y, T)
    assert err["grad"] > BAD
    wrong_hess = sopt.Loss(LOGCOSH.value, LOGCOSH.grad,
                           lambda y, T: 2 * LOGCOSH.hess(y, T))
    err = testing.check_loss(wrong_hess, y, T)
    assert err["grad"] < GOOD and err["hess"] > BAD
    # no hess: only "grad" is reported
    assert set(testing.check_loss(sopt.Loss(LOGCOSH.value, LOGCOSH.grad), y, T)) == {"grad"}


# ------------------------------------------------------------ gradients
def _quadratic():
    A = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
    return (lambda w: 0.5 * w @ A @ w + np.sin(w).sum(),
            lambda w: A @ w + np.cos(w), A)


def test_check_gradient_small_for_correct_and_large_for_wrong():
    f, g, A = _quadratic()
    w = np.array([0.3, -1.2, 2.0])
    errs = testing.check_gradient(f, g, w, n_directions=8)
    assert errs.shape == (8,)
    assert errs.max() < GOOD
    errs = testing.check_gradient(f, lambda w: A @ w - np.cos(w), w, n_directions=8)
    assert errs.max() > BAD                      # sign error in one term
    errs = testing.check_gradient(f, lambda w: A.T @ w * 1.01 + np.cos(w), w)
    assert errs.max() > BAD                      # 1% scale error
    with pytest.raises(ValueError, match="grad"):
        testing.check_gradient(f, lambda w: np.zeros(2), w)


def test_check_gradient_on_objective_and_on_a_broken_gradient():
    net = testing.random_network(3, output="logistic", n_outputs=2)
    w, X, T = problem(net, "unit", seed=0)
    obj = sopt.Objective(net, X, T, loss="binary_ce", alpha=0.1)
    assert testing.check_gradient(obj.value, obj.gradient, w).max() < GOOD
    # forgetting the weight-decay term
    no_decay = sopt.Objective(net, X, T, loss="binary_ce")
    assert testing.check_gradient(obj.value, no_decay.gradient, w).max() > BAD


def test_check_jacobian_small_for_correct_and_large_for_wrong():
    M = np.array([[1.0, 2.0], [0.5, -1.0], [0.0, 3.0]])
    f = lambda x: np.tanh(M @ x)                                   # noqa: E731
    J = lambda x: (1 - np.tanh(M @ x) ** 2)[:, None] * M           # noqa: E731
    x = np.array([0.2, -0.4])
    assert testing.check_jacobian(f, J, x).max() < GOOD
    assert testing.check_jacobian(f, lambda x: M, x).max() > BAD    # missing h'
    with pytest.raises(ValueError, match="jac"):
        testing.check_jacobian(f, lambda x: M.T, x)


# ------------------------------------------------------------ networks
@pytest.mark.parametrize("seed, output, loss", [(0, "identity", "sse"),
                                                (1, "logistic", "binary_ce"),
                                                (2, "softmax", "softmax_ce"),
                                                (4, "identity", LOGCOSH)])
def test_check_network_small_for_correct_network(seed, output, loss):
    net = testing.random_network(seed, output=output)
    w, X, _ = problem(net, "gauss", seed=seed)
    errs = testing.check_network(net, w, X, loss=loss, alpha=0.05)
    assert set(errs) == {"gradient", "jacobian", "sensitivities"}
    assert max(errs.values()) < GOOD


def test_check_network_large_for_user_activation_with_wrong_dh():
    """A hidden activation whose dh is wrong corrupts backprop: the gradient
    and the Jacobian checks both fail, the forward-only parts stay right."""
    h, dh, d2h = ARCTAN_TRIPLE
    wrong = (h, lambda a: 1.0 / (1.0 + a * a) ** 2, d2h)
    for act, expect_bad in ((ARCTAN_TRIPLE, False), (wrong, True)):
        net = sopt.Network(n_inputs=2)
        h1 = net.add_layer(4, act, inputs=[net.input])
        net.add_layer(2, "identity", inputs=[h1, net.input], output=True)
        w, X, _ = problem(net, "gauss", seed=0)
        errs = testing.check_network(net, w, X)
        if expect_bad:
            assert errs["gradient"] > BAD
            assert errs["jacobian"] > BAD
            assert errs["sensitivities"] > BAD
        else:
            assert max(errs.values()) < GOOD


def test_check_network_large_for_loss_with_wrong_grad():
    """A loss whose grad is wrong (on a non-canonical pairing, so it is used):
    the gradient check fails, Jacobian and sensitivities (loss-free) pass."""
    wrong = sopt.Loss(CAUCHY.value, lambda y, T: (y - T), CAUCHY.hess)
    net = testing.random_network(5, output="identity")
    w, X, T = problem(net, "gauss", seed=5)
    T = T * 3                                   # large residuals: Cauchy != sse
    errs = testing.check_network(net, w, X, T=T, loss=wrong)
    assert errs["gradient"] > BAD
    assert errs["jacobian"] < GOOD and errs["sensitivities"] < GOOD
    errs = testing.check_network(net, w, X, T=T, loss=CAUCHY)
    assert errs["gradient"] < GOOD


def test_random_network_is_reproducible_and_well_formed():
    a, b = testing.random_network(11), testing.random_network(11)
    assert repr(a) == repr(b)
    assert a.n_weights == b.n_weights
    for seed in range(20):
        net = testing.random_network(seed, output="softmax")
        assert net.n_outputs >= 2                # softmax over 1 unit is constant
        assert net.layers[-1].node is net.output
        for layer in net.layers:
            assert all(src.index < layer.node.index for src in layer.sources)


def test_random_targets_valid_for_each_loss():
    rng = np.random.default_rng(0)
    T = testing.random_targets(rng, 50, 3, "binary_ce")
    assert T.shape == (50, 3) and T.min() >= 0 and T.max() <= 1
    T = testing.random_targets(rng, 50, 3, "softmax_ce")
    np.testing.assert_array_equal(T.sum(axis=1), 1.0)
    assert set(np.unique(T)) == {0.0, 1.0}
    T = testing.random_targets(rng, 50, 3, "sse")
    assert T.shape == (50, 3) and T.min() < 0 < T.max()


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("eps, error", [(0, ValueError), (-1e-6, ValueError),
                                        (np.nan, ValueError), (np.inf, ValueError),
                                        ("1e-6", TypeError), (True, TypeError)])
def test_check_functions_refuse_a_bad_step(eps, error):
    f, g = (lambda w: w @ w), (lambda w: 2 * w)
    with pytest.raises(error, match="eps: expected"):
        check_gradient(f, g, np.ones(3), eps=eps)
    with pytest.raises(error, match="eps: expected"):
        check_jacobian(g, lambda w: 2 * np.eye(3), np.ones(3), eps=eps)
    with pytest.raises(error, match="eps: expected"):
        check_activation("tanh", eps=eps)


@pytest.mark.parametrize("n, error", [(0, ValueError), (2.0, TypeError)])
def test_check_gradient_refuses_bad_n_directions(n, error):
    with pytest.raises(error, match="n_directions"):
        check_gradient(must_not_be_called, must_not_be_called, np.ones(3), n_directions=n)


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(n_hidden_layers=-1), ValueError, "n_hidden_layers"),
    (dict(n_hidden_layers=1.5), TypeError, "n_hidden_layers"),
    (dict(n_outputs=0), ValueError, "n_outputs"),
    (dict(n_inputs=0), ValueError, "n_inputs"),
    (dict(max_units=0), ValueError, "max_units"),
    (dict(skip_prob=1.5), ValueError, "skip_prob"),
    (dict(mask_prob=np.nan), ValueError, "mask_prob"),
    (dict(hidden=()), ValueError, "hidden"),
])
def test_random_network_refuses_bad_sizes(kwargs, error, name):
    with pytest.raises(error, match=f"{name}: expected"):
        random_network(0, **kwargs)


def test_random_network_with_no_hidden_layers_is_allowed():
    net = random_network(0, n_inputs=2, n_hidden_layers=0, n_outputs=3)
    assert len(net.layers) == 1 and net.n_outputs == 3
