"""sopt.evaluation: the evaluation at one w (Objective.at), and the table
of closed forms of sopt.losses.

Objective.at(w) is the one home of the state at w: its methods must give the
Objective's own numbers bit for bit, it must not see later changes of the
caller's w, and every entry of losses.CLOSED_FORMS must equal what the
general chain rule gives for the same loss on a look-alike
activation (a user copy, which the table does not recognise).
"""
import dataclasses

import numpy as np
import pytest

import sopt
from sopt.activations import ACTIVATIONS
from sopt.losses import CLOSED_FORMS, LOSSES, OutputLoss


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    net = sopt.mlp([3, 4, 2], hidden="tanh", output="logistic")
    X = rng.standard_normal((9, 3))
    T = rng.uniform(size=(9, 2))
    obj = sopt.Objective(net, X, T, loss="binary_ce", alpha=0.3)
    return net, obj, net.init_weights(seed=1)


def test_evaluation_gives_the_objectives_numbers(problem):
    net, obj, w = problem
    V = np.random.default_rng(2).standard_normal((net.n_weights, 3))
    ev = obj.at(w)
    assert ev.value() == obj.value(w)
    np.testing.assert_array_equal(ev.gradient(), obj.gradient(w))
    np.testing.assert_array_equal(ev.hvp(V), obj.hvp(w, V))
    np.testing.assert_array_equal(ev.gnvp(V[:, 0]), obj.gnvp(w, V[:, 0]))
    np.testing.assert_array_equal(ev.curvature("exact"), obj.hessian(w))
    np.testing.assert_array_equal(ev.hessian_diagonal(), obj.hessian_diagonal(w))


def test_evaluation_is_immutable_and_keeps_its_own_w(problem):
    net, obj, w = problem
    w_caller = w.copy()
    ev = obj.at(w_caller)
    g = ev.gradient()
    w_caller += 1.0                       # the caller moves on
    np.testing.assert_array_equal(ev.gradient(), g)
    np.testing.assert_array_equal(ev.w, w)
    with pytest.raises(ValueError):
        ev.w[0] = 0.0


def test_at_makes_a_new_pass_and_the_methods_keep_the_last(problem):
    net, obj, w = problem
    assert obj.at(w) is not obj.at(w)
    obj.value(w)
    kept = obj._kept.evaluation
    obj.gradient(w.copy())                # same w: the same evaluation
    assert obj._kept.evaluation is kept
    obj.gradient(w + 1e-3)
    assert obj._kept.evaluation is not kept


def test_chunked_evaluation_equals_whole_batch(problem):
    net, obj, w = problem
    chunked = sopt.Objective(net, obj.X, obj.T, loss="binary_ce", alpha=0.3,
                             chunk_size=2)
    V = np.random.default_rng(3).standard_normal((net.n_weights, 2))
    for a, b in ((chunked.at(w).gradient(), obj.gradient(w)),
                 (chunked.at(w).hvp(V), obj.hvp(w, V)),
                 (chunked.at(w).curvature("gauss_newton"), obj.hessian(w, "gauss_newton"))):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_linearise_is_one_pass_of_forward_and_sensitivities(problem):
    net, obj, w = problem
    for of, f in (("y", net.forward(w, obj.X)), ("a", net.propagate(w, obj.X).a[-1])):
        values, S = net.linearise(w, obj.X, of=of)
        np.testing.assert_array_equal(values, f)
        np.testing.assert_array_equal(S, net.output_sensitivities(w, obj.X, of=of))


def _look_alike(activation):
    """A copy of a built-in activation that is not the table's object."""
    return dataclasses.replace(activation)


@pytest.mark.parametrize("key", sorted(CLOSED_FORMS))
def test_every_closed_form_agrees_with_the_chain_rule(key):
    loss_name, act_name = key
    act = ACTIVATIONS[act_name]
    table = OutputLoss(LOSSES[loss_name], act)
    general = OutputLoss(LOSSES[loss_name], _look_alike(act))
    assert table.closed_form is CLOSED_FORMS[key] and general.closed_form is None
    rng = np.random.default_rng(4)
    a = rng.normal(scale=2.0, size=(6, 3))
    y = act.h(a)
    T = (np.eye(3)[rng.integers(0, 3, 6)] if loss_name == "softmax_ce"
         else rng.uniform(size=(6, 3)))
    R = rng.standard_normal((6, 2, 3))
    # relative accuracy of the y-forms (1/y, 1/(1-y)) at these a: ~1e-13
    close = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(table.pattern_errors(a, y, T),
                               general.pattern_errors(a, y, T), **close)
    np.testing.assert_allclose(table.delta(a, y, T), general.delta(a, y, T), **close)
    # canonical pairs split the Gauss-Newton curvature at the logits, where
    # the loss is convex, so theirs is the exact curvature; a pair that is
    # not canonical splits at the outputs, as the chain rule does
    for gn in (False, True):
        reference_gn = gn and not CLOSED_FORMS[key].canonical
        np.testing.assert_allclose(table.curvature_product(a, y, T, R, gn),
                                   general.curvature_product(a, y, T, R, reference_gn),
                                   **close)
    np.testing.assert_allclose(table.curvature(a, y, T), general.curvature(a, y, T), **close)
    M_gn = (general.curvature(a, y, T) if CLOSED_FORMS[key].canonical
            else general.gauss_newton_curvature(a, y, T))
    np.testing.assert_allclose(table.gauss_newton_curvature(a, y, T), M_gn, **close)
    B = table.gauss_newton_factor(a, y, T)
    if B is not None:
        G = (np.einsum("nk,kl->nkl", B**2, np.eye(3)) if B.ndim == 2
             else np.einsum("nki,nkj->nij", B, B))
        np.testing.assert_allclose(G, M_gn, **close)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("output, loss", [("identity", "sse"), ("logistic", "binary_ce"),
                                          ("softmax", "softmax_ce")])
def test_recycled_evaluations_give_the_numbers_of_fresh_ones(seed, output, loss):
    """The Objective's methods overwrite the arrays of its last evaluation
    when w changes: every result must equal, bit for bit, that of a fresh
    Objective, whatever the sequence of calls, the topology (skip layers,
    masks, identity hidden layers) and the activations; an evaluation made
    by ``at`` is never overwritten."""
    from sopt.testing import random_network, random_targets
    net = random_network(seed, output=output,
                         hidden=("tanh", "logistic", "identity", "softplus"))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((7, net.n_inputs))
    T = random_targets(rng, 7, net.n_outputs, loss)
    obj = sopt.Objective(net, X, T, loss=loss, alpha=0.1)
    ws = [net.init_weights(seed=s) for s in (1, 2, 3)]
    V = rng.standard_normal((net.n_weights, 2))
    held = obj.at(ws[0])
    held_gradient = held.gradient().copy()
    for w in (ws[0], ws[1], ws[0], ws[2], ws[2], ws[1]):
        fresh = sopt.Objective(net, X, T, loss=loss, alpha=0.1)
        np.testing.assert_array_equal(obj.hvp(w, V), fresh.hvp(w, V))
        np.testing.assert_array_equal(obj.gradient(w), fresh.gradient(w))
        assert obj.value(w) == fresh.value(w)
        np.testing.assert_array_equal(obj.hessian_diagonal(w), fresh.hessian_diagonal(w))
    np.testing.assert_array_equal(held.gradient(), held_gradient)


class _Interrupt(Exception):
    """Stands for Ctrl-C or a MemoryError partway through a forward pass."""


def _net_with_a_raising_layer():
    """A 3-4-3-1 net whose second hidden layer's activation raises on demand:
    the first layer's arrays are overwritten before it is reached."""
    armed = {"raise": False}

    def h(a):
        if armed["raise"]:
            raise _Interrupt
        return np.tanh(a)

    act = sopt.Activation(h, lambda a: 1 - np.tanh(a) ** 2,
                          lambda a: -2 * np.tanh(a) * (1 - np.tanh(a) ** 2), name="armed")
    net = sopt.Network(n_inputs=3)
    h1 = net.add_layer(4, "tanh", inputs=[net.input])
    h2 = net.add_layer(3, act, inputs=[h1])
    net.add_layer(1, "identity", inputs=[h2], output=True)
    return net, armed


def test_a_pass_interrupted_partway_leaves_no_stale_evaluation():
    """A forward pass at a new w that raises partway must not leave the
    half-overwritten arrays recorded as the evaluation at the old w."""
    net, armed = _net_with_a_raising_layer()
    rng = np.random.default_rng(3)
    X, t = rng.standard_normal((20, 3)), rng.standard_normal(20)
    obj = sopt.Objective(net, X, t, alpha=0.1)
    w_old, w_new = net.init_weights(seed=1), net.init_weights(seed=2)
    V = rng.standard_normal((net.n_weights, 2))
    g_old, E_old, HV_old = obj.gradient(w_old).copy(), obj.value(w_old), obj.hvp(w_old, V)
    armed["raise"] = True
    with pytest.raises(_Interrupt):
        obj.value(w_new)
    armed["raise"] = False
    np.testing.assert_array_equal(obj.gradient(w_old), g_old)
    np.testing.assert_array_equal(obj.hvp(w_old, V), HV_old)
    assert obj.value(w_old) == E_old
    fresh = sopt.Objective(net, X, t, alpha=0.1)
    np.testing.assert_array_equal(obj.gradient(w_new), fresh.gradient(w_new))


def test_assigning_alpha_takes_effect_and_spares_earlier_evaluations(problem):
    net, obj, w = problem
    held = obj.at(w)
    E_held, g_held = held.value(), held.gradient().copy()
    obj.gradient(w)                       # kept under the old alpha
    obj.alpha = 100.0
    reference = sopt.Objective(net, obj.X, obj.T, loss="binary_ce", alpha=100.0)
    assert obj.value(w) == reference.value(w)
    np.testing.assert_array_equal(obj.gradient(w), reference.gradient(w))
    np.testing.assert_array_equal(obj.hessian(w), reference.hessian(w))
    assert held.value() == E_held
    np.testing.assert_array_equal(held.gradient(), g_held)
    with pytest.raises(ValueError, match="alpha"):
        obj.alpha = -1.0
    obj.alpha = np.full(net.n_weights, 2.0)
    with pytest.raises(ValueError):
        obj.alpha[0] = 5.0                # read-only: an edit in place cannot be ignored


def test_curvature_checks_its_kind(problem):
    net, obj, w = problem
    with pytest.raises(ValueError, match="kind"):
        obj.at(w).curvature("exactt")
    with pytest.raises(TypeError, match="kind"):
        obj.at(w).curvature(None)
    with pytest.raises(ValueError, match="kind"):
        obj.at(w).curvature("diagonal")     # not a matrix of the passes
