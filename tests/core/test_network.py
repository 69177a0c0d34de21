"""sopt.network: weight layout, views, pack/unpack, masks, initialisation,
the vectorised forward pass, a network of saturated units (finite values
and gradients for inputs of 1e3), and the checks of what builds a network
(topology, sizes, masks, one hidden activation or one per layer), each
refused with an error naming the argument."""
import warnings

import numpy as np
import pytest

import sopt
from sopt import testing

from helpers import EXACT_RTOL, LOGCOSH, fd_gradient, problem, random_weights
from sopt.testing import rel_err

D, M, K, N = 3, 4, 2, 5       # sizes of the mlp(hidden=...) tests


# ------------------------------------------------------------------ layout
def test_mlp_unpack_views_shapes_and_order():
    D, M, K = 3, 4, 2
    net = sopt.mlp([D, M, K])
    W = M * D + M + K * M + K
    assert net.n_weights == W
    w = np.arange(W, dtype=float)
    (W1, b1), (W2, b2) = [(lp.weights[0], lp.bias) for lp in net.unpack(w)]
    assert [p.shape for p in (W1, b1, W2, b2)] == [(M, D), (M,), (K, M), (K,)]
    # order: W1 row-major, b1, W2 row-major, b2
    np.testing.assert_array_equal(W1, np.arange(12).reshape(4, 3))
    np.testing.assert_array_equal(b1, [12, 13, 14, 15])
    np.testing.assert_array_equal(W2, np.arange(16, 24).reshape(2, 4))
    np.testing.assert_array_equal(b2, [24, 25])
    # views, not copies: they share memory and writes go through both ways
    for p in (W1, b1, W2, b2):
        assert np.shares_memory(p, w)
    W1[1, 2] = -1.0
    assert w[1 * D + 2] == -1.0
    b2[0] = -7.0
    assert w[24] == -7.0
    w[16] = 99.0
    assert W2[0, 0] == 99.0


def test_dag_layout_layers_then_edges_in_given_order_then_bias():
    net = sopt.Network(n_inputs=2)
    h1 = net.add_layer(3, "tanh", inputs=[net.input])                 # 3x2 + 3
    h2 = net.add_layer(2, "logistic", inputs=[h1, net.input])         # 2x3, 2x2, 2
    net.add_layer(1, "identity", inputs=[net.input, h2, h1], output=True)  # 1x2,1x2,1x3,1
    sizes = [6, 3, 6, 4, 2, 2, 2, 3, 1]
    assert net.n_weights == sum(sizes)
    w = np.arange(net.n_weights, dtype=float)
    params = net.parameters(w)
    shapes = [(3, 2), (3,), (2, 3), (2, 2), (2,), (1, 2), (1, 2), (1, 3), (1,)]
    assert [p.shape for p in params] == shapes
    start = 0
    for p, n in zip(params, sizes):
        np.testing.assert_array_equal(p.ravel(), np.arange(start, start + n))
        assert np.shares_memory(p, w)
        start += n
    lp = net.unpack(w)
    assert len(lp) == 3
    np.testing.assert_array_equal(lp[1].weights[0], np.arange(9, 15).reshape(2, 3))
    np.testing.assert_array_equal(lp[1].weights[1], np.arange(15, 19).reshape(2, 2))
    np.testing.assert_array_equal(lp[2].weights[2], [[25, 26, 27]])
    np.testing.assert_array_equal(lp[2].bias, [28])


def test_layout_is_what_forward_uses():
    """The documented slots are the ones the forward pass reads: build y by
    hand from the views of a random w on a skip-layer DAG."""
    rng = np.random.default_rng(0)
    net = sopt.Network(n_inputs=2)
    h1 = net.add_layer(3, "tanh", inputs=[net.input])
    h2 = net.add_layer(2, "logistic", inputs=[h1, net.input])
    net.add_layer(2, "identity", inputs=[net.input, h2, h1], output=True)
    w = rng.standard_normal(net.n_weights)
    X = rng.standard_normal((5, 2))
    (A,), a = net.unpack(w)[0]
    (B, C), b = net.unpack(w)[1]
    (E, F, G), c = net.unpack(w)[2]
    z1 = np.tanh(X @ A.T + a)
    z2 = 1 / (1 + np.exp(-(z1 @ B.T + X @ C.T + b)))
    y = X @ E.T + z2 @ F.T + z1 @ G.T + c
    assert rel_err(net.forward(w, X), y) <= EXACT_RTOL


@pytest.mark.parametrize("seed", range(6))
def test_a_layers_edges_are_its_inputs_in_layout_order(seed):
    """Each layer's edges: its sources in the order given, consecutive
    (fan_out, fan_in) blocks of w, then the bias; the per-edge tuples are
    views of the same list, and an edge bound at w holds the masked matrix
    the forward pass uses."""
    net = testing.random_network(seed, mask_prob=0.5, skip_prob=0.6)
    w = np.random.default_rng(seed).standard_normal(net.n_weights)
    start = 0
    for layer, lp, bound in zip(net.layers, net.unpack(w), net.edges_at(w)):
        assert layer.sources == tuple(e.source for e in layer.edges)
        assert layer.weight_slices == tuple(e.weights for e in layer.edges)
        assert all(m is e.mask for m, e in zip(layer.masks, layer.edges))
        for e, W, b in zip(layer.edges, lp.weights, bound):
            assert e.shape == (layer.size, e.source.size) == W.shape
            assert e.weights.start == start and e.weights.stop == start + W.size
            np.testing.assert_array_equal(e.indices().ravel(), np.arange(start, start + W.size))
            np.testing.assert_array_equal(b.W, W * e.dense_mask())
            assert b.source is e.source and e.W is None
            start += W.size
        assert layer.bias_slice == slice(start, start + layer.size)
        start += layer.size
    assert start == net.n_weights
    for mine, theirs in zip(net.effective_weights(w), net.edges_at(w)):
        for W, e in zip(mine, theirs):
            np.testing.assert_array_equal(W, e.W)


def test_items_in_budget_is_at_least_one_and_at_most_most():
    from sopt.derivatives import items_in_budget
    assert items_in_budget(10, 100) == 10
    assert items_in_budget(1000, 100) == 1          # one item, however large
    assert items_in_budget(0, 100) == 100            # free items: the budget
    assert items_in_budget(10, 100, most=3) == 3


@pytest.mark.parametrize("seed", range(3))
def test_network_derivative_methods_are_the_derivatives_functions(seed):
    from sopt import derivatives
    net = testing.random_network(seed, mask_prob=0.5)
    rng = np.random.default_rng(seed)
    w, X = rng.standard_normal(net.n_weights), rng.standard_normal((4, net.n_inputs))
    np.testing.assert_array_equal(net.jacobian(w, X), derivatives.input_jacobian(net, w, X))
    for of in ("a", "y"):
        np.testing.assert_array_equal(net.output_sensitivities(w, X, of, 3),
                                      derivatives.output_sensitivities(net, w, X, of, 3))
        for mine, theirs in zip(net.linearise(w, X, of), derivatives.linearise(net, w, X, of)):
            np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("seed", range(6))
def test_pack_unpack_round_trip(seed):
    net = testing.random_network(seed)
    w = np.random.default_rng(seed).standard_normal(net.n_weights)
    w2 = net.pack(net.unpack(w))
    w3 = net.pack(net.parameters(w))
    np.testing.assert_array_equal(w2, w)
    np.testing.assert_array_equal(w3, w)
    assert not np.shares_memory(w2, w)          # pack makes a new vector
    # pack of fresh arrays (not views) also works
    np.testing.assert_array_equal(net.pack([p.copy() for p in net.parameters(w)]), w)


def test_pack_rejects_wrong_number_or_shape_of_arrays():
    net = sopt.mlp([2, 3, 1])
    params = net.parameters(np.zeros(net.n_weights))
    with pytest.raises(ValueError, match="params"):
        net.pack(params[:-1])
    with pytest.raises(ValueError, match="params"):
        net.pack([params[0].T] + params[1:])


# ------------------------------------------------------------------- masks
def _masked_net():
    rng = np.random.default_rng(3)
    net = sopt.Network(n_inputs=3)
    m1 = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], float)
    h1 = net.add_layer(4, "tanh", inputs=[net.input], masks={net.input: m1})
    m2 = (rng.random((2, 4)) < 0.5).astype(float)
    m2[0, 0], m2[1, 1] = 0.0, 1.0
    m3 = np.array([[1, 0, 0], [0, 1, 0]], float)
    h2 = net.add_layer(2, "softplus", inputs=[h1, net.input],
                       masks={h1: m2, 0: m3})          # an int key also works
    net.add_layer(2, "identity", inputs=[h2, h1], output=True)
    return net


def _masked_slots(net):
    """Indices in w of masked-out weights."""
    out = []
    for layer in net.layers:
        for s, m in zip(layer.weight_slices, layer.masks):
            if m is not None:
                out.extend(np.arange(s.start, s.stop)[m.ravel() == 0])
    return np.array(out, dtype=int)


@pytest.mark.parametrize("loss", ["sse", "logcosh"])
def test_masked_weights_have_exactly_zero_gradient(loss):
    net = _masked_net()
    slots = _masked_slots(net)
    assert len(slots) >= 6
    w, X, T = problem(net, "gauss", seed=1)
    assert np.all(w[slots] != 0)        # masked entries hold non-zero junk
    obj = sopt.Objective(net, X, T, loss=LOGCOSH if loss == "logcosh" else loss,
                         alpha=0.0)
    g = obj.gradient(w)
    assert np.all(g[slots] == 0.0)
    unmasked = np.setdiff1d(np.arange(net.n_weights), slots)
    assert np.all(g[unmasked] != 0.0)   # the others are live
    S = obj.net.output_sensitivities(w, obj.X, of="y")
    assert np.all(S[:, :, slots] == 0.0)
    # chunked too
    g3 = sopt.Objective(net, X, T, loss="sse", chunk_size=3).gradient(w)
    assert np.all(g3[slots] == 0.0)


def test_used_weight_mask_is_zero_exactly_on_masked_entries():
    net = sopt.Network(n_inputs=3)
    mask = np.array([[1, 0, 1], [0, 0, 1]])
    h = net.add_layer(2, "tanh", inputs=[net.input], masks={net.input: mask})
    net.add_layer(1, "identity", inputs=[h, net.input], output=True)
    used = net.used_weight_mask()
    assert used.shape == (net.n_weights,) and used.dtype == float
    # layer 1: its (2, 3) matrix row-major, then 2 biases; layer 2 all in use
    np.testing.assert_array_equal(used, [1, 0, 1, 0, 0, 1, 1, 1] + [1] * 6)


def test_masked_weights_do_not_affect_outputs():
    net = _masked_net()
    slots = _masked_slots(net)
    w, X, T = problem(net, "gauss", seed=2)
    y = net.forward(w, X)
    J = net.jacobian(w, X)
    E = sopt.Objective(net, X, T).value(w)
    w2 = w.copy()
    w2[slots] = np.random.default_rng(0).standard_normal(len(slots)) * 1e3
    np.testing.assert_array_equal(net.forward(w2, X), y)
    np.testing.assert_array_equal(net.jacobian(w2, X), J)
    assert sopt.Objective(net, X, T).value(w2) == E
    # an unmasked weight does change them
    w3 = w.copy()
    w3[np.setdiff1d(np.arange(net.n_weights), slots)[0]] += 0.1
    assert np.abs(net.forward(w3, X) - y).max() > 1e-6


def test_all_masked_unit_sees_only_its_bias():
    net = sopt.Network(n_inputs=2)
    mask = np.array([[1, 1], [0, 0]], float)      # unit 1 has no connections
    net.add_layer(2, "identity", inputs=[net.input], masks={net.input: mask},
                  output=True)
    w = np.array([1.0, 2.0, 3.0, 4.0, 0.5, -0.25])
    y = net.forward(w, [[1.0, 1.0], [10.0, -3.0]])
    np.testing.assert_array_equal(y, [[3.5, -0.25], [4.5, -0.25]])


# --------------------------------------------------------- init_weights
def test_init_weights_reproducible_and_masked_entries_zero():
    net = _masked_net()
    w0, w0b = net.init_weights(seed=0), net.init_weights(seed=0)
    w1 = net.init_weights(seed=1)
    np.testing.assert_array_equal(w0, w0b)
    assert np.abs(w0 - w1).max() > 0.1
    assert np.all(w0[_masked_slots(net)] == 0.0)
    for layer in net.layers:
        assert np.all(w0[layer.bias_slice] == 0.0)
    # everything else is drawn (non-zero with probability 1)
    free = np.setdiff1d(np.arange(net.n_weights),
                        np.concatenate([_masked_slots(net)] +
                                       [np.arange(l.bias_slice.start, l.bias_slice.stop)
                                        for l in net.layers]))
    assert np.all(w0[free] != 0.0)


def test_init_weights_std_is_one_over_sqrt_fan_in():
    """W1 of mlp([400, 300, 1]): 120000 draws of N(0, 1/400). The sample std
    of n normal draws has relative standard error 1/sqrt(2n) ~ 2e-3; 2e-2
    is ~10 sigma. W2 (300 draws, N(0, 1/300)): s.e. 1/sqrt(600) ~ 4e-2, so
    0.25 (~6 sigma)."""
    net = sopt.mlp([400, 300, 1])
    (W1, b1), (W2, b2) = [(lp.weights[0], lp.bias) for lp in
                          net.unpack(net.init_weights(seed=0))]
    assert W1.std() * np.sqrt(400) == pytest.approx(1.0, rel=2e-2)
    assert abs(W1.mean()) * np.sqrt(400) < 5 / np.sqrt(W1.size)   # 5 s.e.
    assert W2.std() * np.sqrt(300) == pytest.approx(1.0, rel=0.25)
    # scale multiplies the std
    W1s = net.unpack(net.init_weights(seed=0, scale=3.0))[0].weights[0]
    np.testing.assert_allclose(W1s, 3 * W1, rtol=1e-15)


def test_init_weights_fan_in_counts_unmasked_connections_over_all_edges():
    """Unit j of a layer fed by two edges, of which a mask keeps k_j
    connections, gets std 1/sqrt(k_j): normalised weights have unit std.
    200 rows x ~600 kept entries: relative s.e. ~ 1/sqrt(2 * 1.2e5) ~ 2e-3."""
    rng = np.random.default_rng(5)
    net = sopt.Network(n_inputs=500)
    h = net.add_layer(400, "tanh", inputs=[net.input])
    mask = (rng.random((200, 500)) < rng.random((200, 1))).astype(float)
    mask[:, 0] = 1.0
    net.add_layer(200, "identity", inputs=[net.input, h], masks={net.input: mask},
                  output=True)
    (Wx, Wh), _ = net.unpack(net.init_weights(seed=0))[1]
    fan_in = mask.sum(axis=1) + 400
    kept = np.concatenate([(Wx * np.sqrt(fan_in)[:, None])[mask == 1],
                           (Wh * np.sqrt(fan_in)[:, None]).ravel()])
    assert kept.std() == pytest.approx(1.0, rel=2e-2)
    assert np.all(Wx[mask == 0] == 0.0)


# -------------------------------------------------------------- forward
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("output", ["identity", "softmax", "logistic"])
def test_forward_vectorised_equals_per_pattern_loop(seed, output):
    net = testing.random_network(seed, output=output,
                                 hidden=testing.SMOOTH_HIDDEN + ("relu",))
    rng = np.random.default_rng(seed)
    w = random_weights(net, rng)
    X = rng.standard_normal((13, net.n_inputs))
    Y = net.forward(w, X)
    assert Y.shape == (13, net.n_outputs)
    loop = np.array([net.forward(w, x[None, :])[0] for x in X])
    assert rel_err(Y, loop) <= EXACT_RTOL
    J = net.jacobian(w, X)
    Jloop = np.array([net.jacobian(w, x[None, :])[0] for x in X])
    assert rel_err(J, Jloop) <= EXACT_RTOL
    if output == "softmax":
        np.testing.assert_allclose(Y.sum(axis=1), 1.0, rtol=0, atol=1e-14)


def test_forward_does_not_modify_its_arguments():
    net = testing.random_network(1)
    rng = np.random.default_rng(1)
    w = random_weights(net, rng)
    X = rng.standard_normal((4, net.n_inputs))
    w0, X0 = w.copy(), X.copy()
    T = rng.standard_normal((4, net.n_outputs))
    obj = sopt.Objective(net, X, T, alpha=0.1)
    net.forward(w, X), net.jacobian(w, X), obj.value(w), obj.gradient(w)
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(X, X0)


def test_recycled_passes_overwrite_the_old_arrays_with_fresh_numbers():
    """propagate and backward with ``recycle=``: the numbers of fresh
    passes, written into the arrays of the recycled ones (no new memory)."""
    net = sopt.mlp([3, 4, 5, 2], hidden="tanh")
    rng = np.random.default_rng(0)
    X, w1, w2 = rng.standard_normal((6, 3)), net.init_weights(1), net.init_weights(2)
    delta = rng.standard_normal((6, 2))
    old = net.propagate(w1, X)
    old_sweep = net.backward(old, delta)
    old_a, old_deltas = list(old.a), list(old_sweep.deltas)
    fresh = net.propagate(w2, X)
    fresh_sweep = net.backward(fresh, delta)
    new = net.propagate(w2, X, recycle=old)
    new_sweep = net.backward(new, delta, recycle=old_sweep)
    for l in (1, 2, 3):
        assert new.a[l] is old_a[l]
        np.testing.assert_array_equal(new.a[l], fresh.a[l])
        np.testing.assert_array_equal(new.z[l], fresh.z[l])
    assert new_sweep.deltas[0] is old_deltas[0]
    for d, e in zip(new_sweep.deltas, fresh_sweep.deltas):
        np.testing.assert_array_equal(d, e)


def test_gradient_not_stale_after_in_place_change_of_w():
    """The forward-pass cache is keyed on the values of w, not its identity."""
    net = testing.random_network(2)
    rng = np.random.default_rng(2)
    w = random_weights(net, rng)
    X, T = rng.standard_normal((6, net.n_inputs)), rng.standard_normal((6, net.n_outputs))
    obj = sopt.Objective(net, X, T)
    v1, g1 = obj.value(w), obj.gradient(w)
    w += 0.1
    fresh = sopt.Objective(net, X, T)
    assert obj.value(w) == fresh.value(w) != v1
    np.testing.assert_array_equal(obj.gradient(w), fresh.gradient(w))
    assert np.abs(obj.gradient(w) - g1).max() > 1e-6


def test_unconnected_hidden_layer_gets_zero_gradient():
    """A layer that feeds nothing cannot change E: zero gradient for its
    weights, no effect on outputs, and the rest is still correct."""
    rng = np.random.default_rng(0)
    net = sopt.Network(n_inputs=2)
    h1 = net.add_layer(3, "tanh", inputs=[net.input])
    dead = net.add_layer(2, "tanh", inputs=[h1])           # feeds nothing
    net.add_layer(1, "identity", inputs=[h1], output=True)
    w = rng.standard_normal(net.n_weights)
    X, T = rng.standard_normal((5, 2)), rng.standard_normal((5, 1))
    obj = sopt.Objective(net, X, T)
    g = obj.gradient(w)
    layer = net.layers[dead.index - 1]
    sl = slice(layer.weight_slices[0].start, layer.bias_slice.stop)
    assert np.all(g[sl] == 0.0)
    assert rel_err(g, fd_gradient(obj.value, w)) <= 1e-7     # see helpers.FD_RTOL


# ------------------------------------------------------- saturated units
@pytest.mark.parametrize("output, loss, K", [
    ("identity", "sse", 2), ("logistic", "binary_ce", 1),
    ("logistic", "binary_ce", 3), ("softmax", "softmax_ce", 3),
])
@pytest.mark.parametrize("hidden", ["tanh", "logistic", "softplus", "identity", "relu"])
def test_value_and_gradient_finite_for_inputs_of_1e3(hidden, output, loss, K):
    rng = np.random.default_rng(0)
    net = sopt.Network(n_inputs=3)       # skip edge: outputs see x ~ 1e3 too
    h = net.add_layer(4, hidden, inputs=[net.input])
    net.add_layer(K, output, inputs=[h, net.input], output=True)
    w = rng.standard_normal(net.n_weights)
    X = rng.standard_normal((20, 3)) * 1e3
    T = (rng.standard_normal((20, K)) if loss == "sse" else
         rng.integers(0, 2, (20, K)).astype(float) if loss == "binary_ce" else
         np.eye(K)[rng.integers(0, K, 20)])
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
        warnings.simplefilter("error")
        obj = sopt.Objective(net, X, T, loss=loss)
        fp = net.propagate(w, obj.X)
        # hidden and output units really saturated
        assert np.median(np.abs(fp.a[1])) > 100 and np.median(np.abs(fp.a[-1])) > 100
        E, g, J = obj.value(w), obj.gradient(w), net.jacobian(w, X)
    assert np.isfinite(E) and np.all(np.isfinite(g)) and np.all(np.isfinite(J))


# ---------------------------------------------------- torch equivalence
# slow: importing torch costs seconds; test_forward_vectorised_equals_per_
# pattern_loop and the layout tests check the forward pass fast
@pytest.mark.slow
def test_torch_sequential_gives_the_same_outputs():
    torch = pytest.importorskip("torch")
    D, M, K = 3, 5, 2
    net = sopt.mlp([D, M, K], hidden="tanh", output="identity")
    w = net.init_weights(seed=0) + 0.1
    X = np.random.default_rng(0).standard_normal((7, D))
    model = torch.nn.Sequential(torch.nn.Linear(D, M), torch.nn.Tanh(),
                                torch.nn.Linear(M, K)).double()
    with torch.no_grad():
        for p, q in zip(model.parameters(), net.parameters(w)):
            p.copy_(torch.from_numpy(q.copy()))
        vec = torch.nn.utils.parameters_to_vector(model.parameters()).numpy()
        y_t = model(torch.from_numpy(X)).numpy()
    np.testing.assert_array_equal(vec, w)
    assert rel_err(net.forward(w, X), y_t) <= EXACT_RTOL


# ------------------------------------------------ topology and sizes: checks
def test_layer_fed_by_itself_or_a_later_layer():
    net = sopt.Network(n_inputs=2)
    with pytest.raises(ValueError, match=r"inputs: layer 1 cannot be fed by itself"):
        net.add_layer(3, "tanh", inputs=[1])
    with pytest.raises(ValueError, match=r"inputs: .*later layer \(node 4\)"):
        net.add_layer(3, "tanh", inputs=[0, 4])
    net.add_layer(3, "tanh", inputs=[0])
    with pytest.raises(ValueError, match=r"inputs: layer 2 cannot be fed by itself"):
        net.add_layer(3, "tanh", inputs=[1, 2])
    with pytest.raises(ValueError, match=r"inputs: node index must be >= 0"):
        net.add_layer(3, "tanh", inputs=[-1])
    # the failed calls left the network unchanged
    assert len(net.layers) == 1 and net.n_weights == 9


def test_inputs_malformed():
    net = sopt.Network(n_inputs=2)
    with pytest.raises(TypeError, match="inputs"):
        net.add_layer(3, "tanh", inputs=net.input)          # not a list
    with pytest.raises(ValueError, match="inputs: a layer needs at least one input"):
        net.add_layer(3, "tanh", inputs=[])
    with pytest.raises(ValueError, match="inputs: the same node is listed twice"):
        net.add_layer(3, "tanh", inputs=[0, net.input])
    with pytest.raises(TypeError, match="inputs"):
        net.add_layer(3, "tanh", inputs=["input"])
    other = sopt.Network(n_inputs=2)
    h_other = other.add_layer(3, "tanh", inputs=[0])
    net.add_layer(3, "tanh", inputs=[0])
    with pytest.raises(ValueError, match="inputs: .*another network"):
        net.add_layer(1, "tanh", inputs=[h_other])


def test_softmax_on_hidden_layer():
    with pytest.raises(ValueError, match=r"activation: 'softmax' is allowed on the "
                                         r"output layer only"):
        sopt.mlp([2, 3, 2], hidden="softmax", output="identity")


def test_softmax_output_layer_needs_two_units():
    with pytest.raises(ValueError, match="softmax"):
        sopt.mlp([2, 3, 1], output="softmax")
    net = sopt.Network(n_inputs=2)
    with pytest.raises(ValueError, match="at least 2"):
        net.add_layer(1, "softmax", inputs=[net.input], output=True)


def test_add_layer_after_output_layer():
    net = sopt.mlp([2, 3, 1])
    with pytest.raises(ValueError, match="add_layer: the output layer is already added"):
        net.add_layer(2, "tanh", inputs=[net.output])


def test_forward_without_output_layer():
    net = sopt.Network(n_inputs=2)
    net.add_layer(3, "tanh", inputs=[net.input])
    w = np.zeros(net.n_weights)
    X = np.zeros((4, 2))
    for call in (lambda: net.forward(w, X), lambda: net.jacobian(w, X),
                 lambda: sopt.Objective(net, X, np.zeros((4, 3)))):
        with pytest.raises(ValueError, match="no output layer"):
            call()


@pytest.mark.parametrize("size", [0, -2])
def test_nonpositive_sizes(size):
    with pytest.raises(ValueError, match="size"):
        sopt.Network(2).add_layer(size, "tanh", inputs=[0])
    with pytest.raises(ValueError, match="n_inputs"):
        sopt.Network(n_inputs=size)


def test_noninteger_sizes():
    with pytest.raises(TypeError, match="size"):
        sopt.Network(2).add_layer(2.5, "tanh", inputs=[0])
    with pytest.raises(TypeError, match="n_inputs"):
        sopt.Network(n_inputs="3")


def test_mlp_bad_sizes_and_hidden_count():
    with pytest.raises(ValueError, match="sizes"):
        sopt.mlp([3])
    with pytest.raises(ValueError, match="hidden: expected one activation, or a list of 2"):
        sopt.mlp([2, 3, 3, 1], hidden=["tanh"])


@pytest.mark.parametrize("sizes, error", [(5, TypeError), ("23", TypeError),
                                          ([2, 2.5, 1], TypeError),
                                          ([2, 0, 1], ValueError), ([2, -3], ValueError),
                                          ([2, True, 1], TypeError)])
def test_mlp_sizes(sizes, error):
    with pytest.raises(error, match="sizes"):
        sopt.mlp(sizes)


@pytest.mark.parametrize("scale, error", [(np.nan, ValueError), (-1.0, ValueError),
                                          (np.inf, ValueError), ("1", TypeError)])
def test_init_weights_scale(scale, error):
    with pytest.raises(error, match="scale"):
        sopt.mlp([2, 3, 1]).init_weights(0, scale=scale)


# ------------------------------------------------ masks: checks, own copy
@pytest.mark.parametrize("shape", [(2, 3), (3, 3), (3,), (3, 2, 1)])
def test_mask_wrong_shape(shape):
    net = sopt.Network(n_inputs=2)
    with pytest.raises(ValueError, match=r"masks: mask for .* must have shape "
                                         r"\(fan_out, fan_in\) = \(3, 2\)"):
        net.add_layer(3, "tanh", inputs=[net.input], masks={net.input: np.ones(shape)})


@pytest.mark.parametrize("value", [0.5, 2.0, -1.0, np.nan])
def test_mask_not_zero_one(value):
    net = sopt.Network(n_inputs=2)
    m = np.ones((3, 2))
    m[1, 0] = value
    with pytest.raises(ValueError, match="masks: entries must be 0 or 1"):
        net.add_layer(3, "tanh", inputs=[net.input], masks={net.input: m})


def test_mask_for_a_node_that_is_not_an_input():
    net = sopt.Network(n_inputs=2)
    h = net.add_layer(3, "tanh", inputs=[net.input])
    with pytest.raises(ValueError, match="masks: .* is not among this layer's inputs"):
        net.add_layer(2, "tanh", inputs=[h], masks={net.input: np.ones((2, 2))})
    with pytest.raises(TypeError, match="masks"):
        net.add_layer(2, "tanh", inputs=[h], masks=[np.ones((2, 3))])


def test_mask_is_copied_and_frozen():
    net = sopt.Network(n_inputs=2)
    m = np.ones((3, 2))
    m[0, 0] = 0
    net.add_layer(3, "identity", inputs=[net.input], masks={net.input: m}, output=True)
    m[0, 0] = 1                      # the caller's array is not the network's
    w = np.arange(1.0, 10.0)
    y = net.forward(w, [[1.0, 1.0]])
    assert y[0, 0] == 2.0 + 7.0      # w[0] still masked: 0*1 + 2*1 + b=7
    with pytest.raises(ValueError):
        net.layers[0].masks[0][0, 0] = 1.0


# ------------------------------------------- mlp(hidden=...): one or per layer
def _triple():
    h = np.tanh
    dh = lambda a: 1.0 - np.tanh(a) ** 2           # noqa: E731
    d2h = lambda a: -2.0 * np.tanh(a) * dh(a)       # noqa: E731
    return h, dh, d2h


@pytest.mark.parametrize("n_hidden", [1, 2, 3, 4])
@pytest.mark.parametrize("container", [tuple, list])
def test_mlp_triple_of_callables_is_one_activation(n_hidden, container):
    """(h, dh, d2h) is one activation for every hidden layer, also when the
    network happens to have three hidden layers."""
    h, dh, d2h = triple = _triple()
    net = sopt.mlp([D] + [M] * n_hidden + [K], hidden=container(triple))
    acts = [layer.activation for layer in net.layers[:-1]]
    assert len(acts) == n_hidden
    assert all(a is acts[0] for a in acts)
    assert (acts[0].h, acts[0].dh, acts[0].d2h) == (h, dh, d2h)
    # and it computes what tanh computes
    ref = sopt.mlp([D] + [M] * n_hidden + [K], hidden="tanh")
    w = ref.init_weights(seed=1)
    X = np.random.default_rng(0).standard_normal((N, D))
    np.testing.assert_allclose(net.forward(w, X), ref.forward(w, X), rtol=1e-12)


def test_mlp_activation_object_is_one_activation():
    act = sopt.Activation(*_triple(), name="mytanh")
    net = sopt.mlp([D, M, M, M, K], hidden=act)
    assert [layer.activation for layer in net.layers[:-1]] == [act] * 3


def test_mlp_list_is_one_activation_per_layer():
    triple = _triple()
    net = sopt.mlp([D, M, M, M, K], hidden=("tanh", "relu", "logistic"))
    assert [layer.activation.name for layer in net.layers[:-1]] == \
        ["tanh", "relu", "logistic"]
    net = sopt.mlp([D, M, M, K], hidden=["tanh", triple])
    assert net.layers[0].activation.name == "tanh"
    assert net.layers[1].activation.h is triple[0]


@pytest.mark.parametrize("hidden", [("tanh", "relu", "logistic"), ["tanh"],
                                    ("tanh", _triple())])
def test_mlp_per_layer_list_of_the_wrong_length(hidden):
    with pytest.raises(ValueError, match=r"hidden: expected one activation, or a "
                                         r"list of 4 \(one per hidden layer\)"):
        sopt.mlp([D, M, M, M, M, K], hidden=hidden)
