"""sopt.derivatives: backprop gradient, input Jacobian and output
sensitivities against full central differences on seeded random DAGs
(skip edges, masks, mixed activations), over every hidden activation x
output/loss pairing.

Tolerances: FD_RTOL = 1e-7 norm-wise, EXACT_RTOL = 1e-12; see tests/helpers.py
(central-difference error ~ h^2 |f'''| + macheps |f| / h ~ 1e-10 relative).
"""
import numpy as np
import pytest

import sopt
from sopt import testing
from sopt.losses import OutputLoss, get_loss

from helpers import (ARCTAN_TRIPLE, EXACT_RTOL, FD_RTOL, LOGCOSH, OUTPUT_LOSS_CASES,
                     OUTPUT_LOSS_IDS, SWISH, fd_gradient, fd_jacobian,
                     fd_rowwise_jacobian, has_masks, has_skip_edges, make_targets,
                     problem, relu_margin)
from sopt.testing import rel_err

HIDDEN = ["tanh", "logistic", "softplus", "identity", "relu", "mixed"]
TOPOLOGY_SEEDS = [0, 1, 5]      # 4-layer DAG (5); skip edges + masks (all)


def build(topology_seed, hidden, output, K):
    hid = testing.SMOOTH_HIDDEN if hidden == "mixed" else (hidden,)
    return testing.random_network(topology_seed, hidden=hid, output=output,
                                  n_outputs=K)


@pytest.mark.parametrize("hidden", HIDDEN)
def test_topologies_cover_skip_edges_masks_and_depth(hidden):
    """The seeds really exercise the DAG features (else the parametrised tests
    below would silently test plain MLPs only); seed 5, the one that
    test_gradient_matches_finite_differences runs fast, has all three for
    every output and loss pairing."""
    for output, K in (("identity", None), ("softmax", 3), ("logistic", 1)):
        nets = [build(s, hidden, output, K) for s in TOPOLOGY_SEEDS]
        assert sum(has_skip_edges(n) for n in nets) >= 2
        assert sum(has_masks(n) for n in nets) >= 2
        assert max(len(n.layers) for n in nets) >= 4     # >= 3 hidden layers
    for _, output, _, K, _ in OUTPUT_LOSS_CASES:
        net = build(5, hidden, output, K)
        assert has_skip_edges(net) and has_masks(net) and len(net.layers) >= 4
    if hidden == "mixed":
        names = {layer.activation.name for s in TOPOLOGY_SEEDS
                 for layer in build(s, hidden, "identity", None).layers[:-1]}
        assert len(names) >= 3


# seeds 0 and 1 slow (132 cases, 2.5 s): seed 5 draws, for every hidden
# activation and output/loss pairing, a DAG of three hidden layers with skip
# edges and masks (see test_topologies_cover_skip_edges_masks_and_depth),
# and runs every pairing fast
@pytest.mark.parametrize("topology_seed", [
    pytest.param(s, marks=pytest.mark.slow) if s != 5 else s for s in TOPOLOGY_SEEDS])
@pytest.mark.parametrize("case", OUTPUT_LOSS_CASES, ids=OUTPUT_LOSS_IDS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_gradient_matches_finite_differences(hidden, case, topology_seed):
    _, output, loss, K, kind = case
    net = build(topology_seed, hidden, output, K)
    w, X, T = problem(net, kind, seed=100 * topology_seed)
    obj = sopt.Objective(net, X, T, loss=loss)
    g = obj.gradient(w)
    g_fd = fd_gradient(obj.value, w)
    assert g.shape == (net.n_weights,)
    assert rel_err(g, g_fd) <= FD_RTOL
    # the backprop gradient does not depend on a preceding value() call (cache)
    obj2 = sopt.Objective(net, X, T, loss=loss)
    np.testing.assert_array_equal(obj2.gradient(w), g)


@pytest.mark.parametrize("topology_seed", TOPOLOGY_SEEDS)
@pytest.mark.parametrize("output", ["identity", "logistic", "softmax", "relu"])
@pytest.mark.parametrize("hidden", HIDDEN)
def test_input_jacobian_matches_finite_differences(hidden, output, topology_seed):
    net = build(topology_seed, hidden, output, 3 if output == "softmax" else None)
    w, X, _ = problem(net, "gauss", seed=100 * topology_seed)
    J = net.jacobian(w, X)
    assert J.shape == (len(X), net.n_outputs, net.n_inputs)
    J_fd = fd_rowwise_jacobian(lambda Z: net.forward(w, Z), X)
    assert rel_err(J, J_fd) <= FD_RTOL


def test_relu_problems_are_off_the_kink():
    """The relu cases above are only meaningful away from a = 0."""
    for s in TOPOLOGY_SEEDS:
        net = build(s, "relu", "identity", None)
        w, X, _ = problem(net, "gauss", seed=100 * s)
        assert relu_margin(net, w, X) > 1e-3
        # and some relu units are actually off (a < 0), i.e. the kink matters
        fp = net.propagate(w, X)
        assert any((fp.a[l] < 0).any() for l in range(1, len(net.layers)))


@pytest.mark.parametrize("topology_seed", TOPOLOGY_SEEDS)
@pytest.mark.parametrize("activation", [ARCTAN_TRIPLE, SWISH],
                         ids=["triple-arctan", "Activation-swish"])
def test_user_defined_activation(activation, topology_seed):
    """A user activation (h, dh, d2h) triple or sopt.Activation in hidden and
    output layers: gradient and Jacobian by backprop match central differences."""
    rng = np.random.default_rng(topology_seed)
    net = sopt.Network(n_inputs=3)
    h1 = net.add_layer(4, activation, inputs=[net.input])
    h2 = net.add_layer(3, "tanh", inputs=[h1, net.input],
                       masks={net.input: (rng.random((3, 3)) < 0.6).astype(float)})
    net.add_layer(2, activation, inputs=[h2, h1], output=True)
    w, X, T = problem(net, "gauss", seed=topology_seed)
    obj = sopt.Objective(net, X, T, loss="sse")
    assert rel_err(obj.gradient(w), fd_gradient(obj.value, w)) <= FD_RTOL
    J_fd = fd_rowwise_jacobian(lambda Z: net.forward(w, Z), X)
    assert rel_err(net.jacobian(w, X), J_fd) <= FD_RTOL
    # it is really used: outputs differ from the same net with tanh
    # (h = arctan/swish != tanh for the O(1) pre-activations here)
    net_t = sopt.Network(n_inputs=3)
    a = net_t.add_layer(4, "tanh", inputs=[net_t.input])
    b = net_t.add_layer(3, "tanh", inputs=[a, net_t.input],
                        masks={net_t.input: net.layers[1].masks[1]})
    net_t.add_layer(2, "tanh", inputs=[b, a], output=True)
    assert np.abs(net_t.forward(w, X) - net.forward(w, X)).max() > 1e-3


@pytest.mark.parametrize("case", OUTPUT_LOSS_CASES, ids=OUTPUT_LOSS_IDS)
def test_weight_decay_adds_alpha_w(case):
    _, output, loss, K, kind = case
    net = build(1, "mixed", output, K)
    w, X, T = problem(net, kind, seed=3)
    alpha = 0.37
    plain = sopt.Objective(net, X, T, loss=loss)
    decayed = sopt.Objective(net, X, T, loss=loss, alpha=alpha)
    g0, g = plain.gradient(w), decayed.gradient(w)
    # the decay runs over the weights in use: masked entries get none
    w_used = net.used_weight_mask() * w
    # g - g0 cancels two O(|g0|) vectors: round-off ~ macheps |g0|, i.e.
    # relative to |alpha w| it is ~ macheps |g0| / |alpha w|
    assert rel_err(g - g0, alpha * w_used) <= EXACT_RTOL * max(
        1.0, np.linalg.norm(g0) / np.linalg.norm(alpha * w_used))
    assert decayed.value(w) == pytest.approx(
        plain.value(w) + 0.5 * alpha * w_used @ w_used, rel=EXACT_RTOL)
    assert rel_err(g, fd_gradient(decayed.value, w)) <= FD_RTOL
    # scipy-ready aliases are the same functions
    assert decayed.fun(w) == decayed.value(w)
    np.testing.assert_array_equal(decayed.jac(w), g)


@pytest.mark.parametrize("of", ["a", "y"])
@pytest.mark.parametrize("topology_seed", TOPOLOGY_SEEDS)
@pytest.mark.parametrize("output", ["identity", "logistic", "softmax", "tanh"])
def test_output_sensitivities(output, topology_seed, of):
    net = build(topology_seed, "mixed", output, 3 if output == "softmax" else None)
    w, X, T = problem(net, "gauss", seed=7 + topology_seed)
    obj = sopt.Objective(net, X, T, loss="sse")
    S = obj.net.output_sensitivities(w, obj.X, of=of)
    N, K, W = len(X), net.n_outputs, net.n_weights
    assert S.shape == (N, K, W)
    if of == "a":
        f = lambda v: net.propagate(v, X).a[-1]      # noqa: E731
    else:
        f = lambda v: net.forward(v, X)               # noqa: E731
    S_fd = fd_jacobian(f, w)
    assert S_fd.shape == (N, K, W)
    assert rel_err(S, S_fd) <= FD_RTOL
    # chunking the patterns (2 per chunk, last chunk partial) changes nothing
    assert rel_err(obj.net.output_sensitivities(w, obj.X, of=of, chunk_size=2), S) <= EXACT_RTOL


def test_output_sensitivities_chain_rule_gives_gradient():
    """sum_n sum_k (dE_n/da_k) (da_k/dw) = dE/dw: for sse on identity
    dE_n/da = y - t, so the Gauss-Newton rows reproduce the gradient."""
    net = build(5, "mixed", "identity", None)
    w, X, T = problem(net, "gauss", seed=11)
    obj = sopt.Objective(net, X, T, loss="sse")
    S = obj.net.output_sensitivities(w, obj.X, of="a")
    r = net.forward(w, X) - T
    assert rel_err(np.einsum("nk,nkw->w", r, S), obj.gradient(w)) <= EXACT_RTOL * 100


def test_output_sensitivities_rejects_unknown_of():
    net = build(0, "tanh", "identity", None)
    w, X, T = problem(net, "gauss", seed=0)
    with pytest.raises(ValueError, match="of"):
        net.output_sensitivities(w, X, of="z")


@pytest.mark.parametrize("case", OUTPUT_LOSS_CASES, ids=OUTPUT_LOSS_IDS)
@pytest.mark.parametrize("topology_seed", [0, 7])
def test_chunked_objective_equals_unchunked(case, topology_seed):
    _, output, loss, K, kind = case
    net = build(topology_seed, "mixed", output, K)
    w, X, T = problem(net, kind, seed=5, n=10)      # 10 = 3 + 3 + 3 + 1
    whole = sopt.Objective(net, X, T, loss=loss, alpha=0.1)
    for chunk in (3, 1, 64):
        chunked = sopt.Objective(net, X, T, loss=loss, alpha=0.1, chunk_size=chunk)
        assert chunked.value(w) == pytest.approx(whole.value(w), rel=EXACT_RTOL)
        assert rel_err(chunked.gradient(w), whole.gradient(w)) <= EXACT_RTOL
        assert rel_err(chunked.pattern_errors(w), whole.pattern_errors(w)) <= EXACT_RTOL


@pytest.mark.parametrize("output, loss, K, kind", [
    ("identity", "sse", 2, "gauss"),
    ("logistic", "binary_ce", 1, "unit"),
    ("logistic", "binary_ce", 3, "unit"),
    ("softmax", "softmax_ce", 3, "onehot"),
    ("softmax", "softmax_ce", 3, "prob"),
])
def test_canonical_delta_is_y_minus_t(output, loss, K, kind):
    net = build(1, "mixed", output, K)
    w, X, T = problem(net, kind, seed=2)
    output_loss = OutputLoss(get_loss(loss), net.layers[-1].activation)
    assert output_loss.canonical
    fp = net.propagate(w, X)
    delta = output_loss.delta(fp.a[-1], fp.y, T)
    # exactly y - t, no chain rule round-off
    np.testing.assert_array_equal(delta, fp.y - T)
    # ... and it is dE_n/da: the general chain rule h'(a) dE/dy agrees, and so
    # does a central difference of the per-pattern error in a
    act = net.layers[-1].activation
    chain = act.vjp(fp.a[-1], fp.y, get_loss(loss).grad(fp.y, T))
    assert rel_err(delta, chain) <= 1e-12 * 1e3    # 1/(y(1-y)) amplifies round-off
    values = lambda A: output_loss.pattern_errors(A, act.h(A), T)          # noqa: E731
    d_fd = fd_rowwise_jacobian(lambda A: values(A)[:, None], fp.a[-1])[:, 0, :]
    assert rel_err(delta, d_fd) <= FD_RTOL


@pytest.mark.parametrize("output, loss, K, kind", [
    ("identity", "sse", 2, "gauss"),
    ("logistic", "binary_ce", 3, "unit"),
    ("softmax", "softmax_ce", 3, "onehot"),
])
def test_output_bias_gradient_is_sum_of_y_minus_t(output, loss, K, kind):
    """Public-API view of delta = y - t: with no hidden layer, dE/db_k is
    sum_n (y_nk - t_nk) and dE/dW_ki is sum_n (y_nk - t_nk) x_ni."""
    net = sopt.mlp([4, K], output=output)
    rng = np.random.default_rng(4)
    w = rng.standard_normal(net.n_weights)
    X = rng.standard_normal((9, 4))
    T = make_targets(rng, 9, K, kind)
    g = sopt.Objective(net, X, T, loss=loss).gradient(w)
    r = net.forward(w, X) - T
    W_grad, b_grad = net.unpack(g)[0]
    assert rel_err(b_grad, r.sum(axis=0)) <= EXACT_RTOL * 10
    assert rel_err(W_grad[0], r.T @ X) <= EXACT_RTOL * 10


def test_loss_given_as_tuple_of_callables():
    """loss=(value, grad) and (value, grad, hess) tuples work like a Loss."""
    net = build(1, "mixed", "identity", None)
    w, X, T = problem(net, "gauss", seed=4)
    ref = sopt.Objective(net, X, T, loss=LOGCOSH)
    for spec in ((LOGCOSH.value, LOGCOSH.grad),
                 (LOGCOSH.value, LOGCOSH.grad, LOGCOSH.hess)):
        obj = sopt.Objective(net, X, T, loss=spec)
        assert obj.value(w) == ref.value(w)
        np.testing.assert_array_equal(obj.gradient(w), ref.gradient(w))
        assert rel_err(obj.gradient(w), fd_gradient(obj.value, w)) <= FD_RTOL
    # and it differs from sse (so the tuple is really used)
    assert abs(sopt.Objective(net, X, T).value(w) - ref.value(w)) > 1e-3


def test_softmax_ce_labels_equal_one_hot():
    net = build(0, "mixed", "softmax", 3)
    w, X, labels = problem(net, "labels", seed=1)
    a = sopt.Objective(net, X, labels, loss="softmax_ce")
    b = sopt.Objective(net, X, np.eye(3)[labels], loss="softmax_ce")
    assert a.value(w) == b.value(w)
    np.testing.assert_array_equal(a.gradient(w), b.gradient(w))
    # the value is -sum_n log y_{n, label_n}
    y = net.forward(w, X)
    expected = -np.log(y[np.arange(len(labels)), labels]).sum()
    assert a.value(w) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("case", OUTPUT_LOSS_CASES, ids=OUTPUT_LOSS_IDS)
def test_value_is_sum_of_pattern_errors(case):
    """E(w) = sum_n E_n with E_n computed from the outputs by the loss formula."""
    _, output, loss, K, kind = case
    net = build(5, "mixed", output, K)
    w, X, T = problem(net, kind, seed=9)
    obj = sopt.Objective(net, X, T, loss=loss)
    y = net.forward(w, X)
    En = get_loss(loss).value(y, obj.T)
    assert rel_err(obj.pattern_errors(w), En) <= 1e-12 * 1e2   # log-sum-exp vs log(y)
    assert obj.value(w) == pytest.approx(En.sum(), rel=1e-12 * 1e2)


# ------------------------------------------------ relu: h'(0) := 0, not 1
# (a mutation the rest of the suite let through)
def test_gradient_with_a_relu_pre_activation_exactly_zero():
    """mlp [1, 1, 1], w = (W1, b1, W2, b2) = (1, -1, 2, 0.5), x = 1: the
    hidden pre-activation is exactly 0, so y = b2 = 0.5 and with t = 3,
    dE/dy = -2.5; with h'(0) = 0 nothing flows back into W1 and b1."""
    net = sopt.mlp([1, 1, 1], hidden="relu")
    obj = sopt.Objective(net, np.array([[1.0]]), np.array([3.0]))
    w = np.array([1.0, -1.0, 2.0, 0.5])
    np.testing.assert_array_equal(obj.gradient(w), [0.0, 0.0, 0.0, -2.5])
