"""Hypothesis property tests of the backprop core over small random DAGs:
both sopt.testing.random_network with drawn seeds and DAGs drawn directly
from hypothesis strategies (sizes, edges, masks, activations).

Tolerances (see tests/helpers.py): FD_RTOL = 1e-7 for central differences,
round-off-only identities at 1e-12 relative.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import sopt
from sopt import testing

from helpers import (CAUCHY, FD_RTOL, fd_gradient, fd_rowwise_jacobian, make_targets,
                     problem)
from sopt.testing import rel_err

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    # the autouse np.errstate fixture is per-test, harmless
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

# (output activation, loss, K or None = any, target kind)
OUTPUT_RULES = [("identity", "sse", None, "gauss"),
                ("logistic", "binary_ce", None, "unit"),
                ("softmax", "softmax_ce", 3, "onehot"),
                ("logistic", "sse", None, "unit"),
                ("softmax", "sse", 2, "gauss"),
                ("identity", CAUCHY, None, "gauss")]
HIDDEN_CHOICES = [testing.SMOOTH_HIDDEN, ("tanh",), ("relu",), ("softplus", "relu")]


@st.composite
def seeded_networks(draw):
    """random_network(seed) with a drawn seed, hidden set and output rule."""
    seed = draw(st.integers(0, 2**31 - 1))
    hidden = draw(st.sampled_from(HIDDEN_CHOICES))
    output, loss, K, kind = draw(st.sampled_from(OUTPUT_RULES))
    net = testing.random_network(seed, hidden=hidden, output=output, n_outputs=K,
                                 max_units=4)
    return net, loss, kind, seed


@st.composite
def drawn_dags(draw):
    """A DAG built directly from strategies: layer sizes, which earlier nodes
    feed each layer, 0/1 masks per edge, activations."""
    D = draw(st.integers(1, 3))
    net = sopt.Network(n_inputs=D)
    nodes = [net.input]
    for _ in range(draw(st.integers(0, 3))):
        size = draw(st.integers(1, 4))
        extra = (draw(st.lists(st.sampled_from(nodes[:-1]), unique=True))
                 if len(nodes) > 1 else [])
        inputs = [nodes[-1]] + extra
        masks = {}
        for src in inputs:
            if draw(st.booleans()):
                bits = draw(st.lists(st.booleans(), min_size=size * src.size,
                                     max_size=size * src.size))
                masks[src] = np.array(bits, float).reshape(size, src.size)
        act = draw(st.sampled_from(testing.SMOOTH_HIDDEN))
        nodes.append(net.add_layer(size, act, inputs=inputs, masks=masks))
    K = draw(st.integers(1, 3))
    srcs = [nodes[-1]] + draw(st.lists(st.sampled_from(nodes[:-1]), unique=True)) \
        if len(nodes) > 1 else [nodes[-1]]
    out_mask = {}
    if draw(st.booleans()):
        src = srcs[0]
        out_mask[src] = np.array(draw(st.lists(st.booleans(), min_size=K * src.size,
                                               max_size=K * src.size)),
                                 float).reshape(K, src.size)
    outputs = ["identity", "logistic"] + (["softmax"] if K > 1 else [])
    output = draw(st.sampled_from(outputs))
    net.add_layer(K, output, inputs=srcs, masks=out_mask, output=True)
    return net


def _loss_for(net):
    return {"identity": ("sse", "gauss"), "logistic": ("binary_ce", "unit"),
            "softmax": ("softmax_ce", "onehot")}[net.layers[-1].activation.name]


def _masked_slots(net):
    out = [np.arange(s.start, s.stop)[m.ravel() == 0]
           for layer in net.layers for s, m in zip(layer.weight_slices, layer.masks)
           if m is not None]
    return np.concatenate(out).astype(int) if out else np.zeros(0, int)


@SETTINGS
@given(seeded_networks())
def test_gradient_matches_central_differences(case):
    net, loss, kind, seed = case
    w, X, T = problem(net, kind, seed=seed % 10_000, n=5)
    obj = sopt.Objective(net, X, T, loss=loss, alpha=0.01)
    assert rel_err(obj.gradient(w), fd_gradient(obj.value, w)) <= FD_RTOL


@SETTINGS
@given(drawn_dags(), st.integers(0, 1000))
def test_gradient_matches_central_differences_on_drawn_dags(net, seed):
    loss, kind = _loss_for(net)
    w, X, T = problem(net, kind, seed=seed, n=4)
    obj = sopt.Objective(net, X, T, loss=loss)
    g = obj.gradient(w)
    assert rel_err(g, fd_gradient(obj.value, w)) <= FD_RTOL


@SETTINGS
@given(seeded_networks())
def test_jacobian_matches_central_differences(case):
    net, _, _, seed = case
    w, X, _ = problem(net, "gauss", seed=seed % 10_000, n=5)
    J_fd = fd_rowwise_jacobian(lambda Z: net.forward(w, Z), X)
    assert rel_err(net.jacobian(w, X), J_fd) <= FD_RTOL


@SETTINGS
@given(drawn_dags(), st.integers(0, 1000))
def test_jacobian_matches_central_differences_on_drawn_dags(net, seed):
    w, X, _ = problem(net, "gauss", seed=seed, n=4)
    J_fd = fd_rowwise_jacobian(lambda Z: net.forward(w, Z), X)
    assert rel_err(net.jacobian(w, X), J_fd) <= FD_RTOL


@SETTINGS
@given(seeded_networks(), st.integers(1, 6), st.integers(1, 6),
       st.floats(0.0, 2.0))
def test_gradient_of_union_is_sum_of_gradients(case, n1, n2, alpha):
    """E over A u B = E over A + E over B (+ the decay term once). Only the
    order of the sums over patterns differs: round-off ~ N macheps of the
    summed magnitudes, bounded here by 1e-12 (|g_A| + |g_B| + alpha |w|)."""
    net, loss, kind, seed = case
    rng = np.random.default_rng(seed)
    w = problem(net, kind, seed=seed % 10_000, n=2)[0]
    XA = rng.standard_normal((n1, net.n_inputs))
    XB = rng.standard_normal((n2, net.n_inputs))
    TA, TB = (make_targets(rng, n, net.n_outputs, kind) for n in (n1, n2))
    gA = sopt.Objective(net, XA, TA, loss=loss).gradient(w)
    gB = sopt.Objective(net, XB, TB, loss=loss).gradient(w)
    union = sopt.Objective(net, np.vstack([XA, XB]), np.concatenate([TA, TB]),
                           loss=loss, alpha=alpha)
    g = union.gradient(w)
    w_used = net.used_weight_mask() * w       # no decay on masked entries
    scale = np.linalg.norm(gA) + np.linalg.norm(gB) + alpha * np.linalg.norm(w)
    assert np.linalg.norm(g - (gA + gB + alpha * w_used)) <= 1e-12 * scale
    EA = sopt.Objective(net, XA, TA, loss=loss).value(w)
    EB = sopt.Objective(net, XB, TB, loss=loss).value(w)
    assert union.value(w) == pytest.approx(EA + EB + 0.5 * alpha * w_used @ w_used,
                                           rel=1e-12)


@SETTINGS
@given(drawn_dags(), st.integers(0, 1000))
def test_masked_weights_have_zero_gradient_and_no_effect(net, seed):
    slots = _masked_slots(net)
    assume(len(slots) > 0)
    loss, kind = _loss_for(net)
    w, X, T = problem(net, kind, seed=seed, n=4)
    obj = sopt.Objective(net, X, T, loss=loss)
    g = obj.gradient(w)
    assert np.all(g[slots] == 0.0)
    S = obj.net.output_sensitivities(w, obj.X, of="y")
    assert np.all(S[:, :, slots] == 0.0)
    w2 = w.copy()
    w2[slots] += 10.0
    np.testing.assert_array_equal(net.forward(w2, X), net.forward(w, X))
    np.testing.assert_array_equal(obj.gradient(w2)[slots], 0.0)


@SETTINGS
@given(drawn_dags(), st.integers(0, 2**31 - 1))
def test_pack_unpack_round_trip(net, seed):
    w = np.random.default_rng(seed).standard_normal(net.n_weights)
    np.testing.assert_array_equal(net.pack(net.unpack(w)), w)
    np.testing.assert_array_equal(net.pack(net.parameters(w)), w)
    params = net.parameters(w)
    assert sum(p.size for p in params) == net.n_weights
    # views in layout order tile w exactly: concatenating them gives w back
    np.testing.assert_array_equal(np.concatenate([p.ravel() for p in params]), w)
    assert all(np.shares_memory(p, w) for p in params)
