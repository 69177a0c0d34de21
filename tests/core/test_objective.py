"""Bad input gives a ValueError/TypeError that names the argument (docs/DESIGN.md:
"never a numpy broadcast error from deep inside")."""
import numpy as np
import pytest

import sopt

D, M, K, N = 3, 4, 2, 5


@pytest.fixture
def net():
    return sopt.mlp([D, M, K], hidden="tanh", output="identity")


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, D)), rng.standard_normal((N, K))


@pytest.fixture
def w(net):
    return net.init_weights(seed=0)


def _call_all_w(net, w, X, T):
    """Every public entry point that takes w."""
    obj = sopt.Objective(net, X, T)
    return [lambda: net.forward(w, X), lambda: net.jacobian(w, X),
            lambda: net.unpack(w), lambda: net.parameters(w),
            lambda: obj.value(w), lambda: obj.gradient(w),
            lambda: net.output_sensitivities(w, X), lambda: obj.fun(w),
            lambda: obj.jac(w), lambda: obj.pattern_errors(w)]


# ------------------------------------------------------------------- w
@pytest.mark.parametrize("bad", [lambda W: np.zeros(W - 1), lambda W: np.zeros(W + 1),
                                 lambda W: np.zeros((W, 1)), lambda W: np.zeros((1, W)),
                                 lambda W: np.float64(0.0)],
                         ids=["short", "long", "column", "row", "scalar"])
def test_w_wrong_shape(net, data, bad):
    X, T = data
    for call in _call_all_w(net, bad(net.n_weights), X, T):
        with pytest.raises(ValueError, match=rf"w: .*\({net.n_weights},\)"):
            call()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_w_not_finite(net, data, w, value):
    X, T = data
    w = w.copy()
    w[3] = value
    for call in _call_all_w(net, w, X, T):
        with pytest.raises(ValueError, match=r"w: .*NaN or infinite"):
            call()


def test_w_not_numbers(net, data):
    X, T = data
    for call in _call_all_w(net, ["a"] * net.n_weights, X, T):
        with pytest.raises(TypeError, match="w"):
            call()


def test_w_complex_is_rejected_not_silently_truncated(net, data, w):
    """A complex w is outside the domain (real numbers); dropping the
    imaginary part (with at most a ComplexWarning) gives wrong numbers.
    (sopt/_validation.py as_float_array: np.asarray(x, dtype=float) casts.)"""
    X, T = data
    wc = w + 1j
    for call in _call_all_w(net, wc, X, T):
        with pytest.raises((TypeError, ValueError), match="w"):
            call()


def test_X_and_T_complex_are_rejected(net, data, w):
    X, T = data
    with pytest.raises((TypeError, ValueError), match="X"):
        net.forward(w, X + 1j)
    with pytest.raises((TypeError, ValueError), match="X"):
        sopt.Objective(net, X + 1j, T)
    with pytest.raises((TypeError, ValueError), match="T"):
        sopt.Objective(net, X, T + 1j)


# ------------------------------------------------------------------- X
@pytest.mark.parametrize("shape", [(N, D + 1), (N, D - 1), (N, D, 1), (N * D,), ()],
                         ids=["wide", "narrow", "3d", "1d", "scalar"])
def test_X_wrong_shape(net, data, w, shape):
    X_bad = np.zeros(shape)
    _, T = data
    with pytest.raises(ValueError, match=rf"X: expected shape \(N, {D}\)"):
        net.forward(w, X_bad)
    with pytest.raises(ValueError, match=rf"X: expected shape \(N, {D}\)"):
        net.jacobian(w, X_bad)
    with pytest.raises(ValueError, match=rf"X: expected shape \(N, {D}\)"):
        sopt.Objective(net, X_bad, T)


def test_X_1d_for_single_input_hints_reshape():
    net = sopt.mlp([1, 2, 1])
    w = net.init_weights(seed=0)
    with pytest.raises(ValueError, match=r"X: .*reshape\(-1, 1\)"):
        net.forward(w, np.linspace(0, 1, 5))
    with pytest.raises(ValueError, match=r"X: .*reshape\(-1, 1\)"):
        sopt.Objective(net, np.linspace(0, 1, 5), np.zeros(5))


def test_X_empty(net, w):
    with pytest.raises(ValueError, match="X: .*at least one"):
        net.forward(w, np.zeros((0, D)))


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_X_not_finite(net, data, w, value):
    X, T = data
    X = X.copy()
    X[2, 1] = value
    with pytest.raises(ValueError, match="X: .*NaN or infinite"):
        net.forward(w, X)
    with pytest.raises(ValueError, match="X: .*NaN or infinite"):
        net.jacobian(w, X)
    with pytest.raises(ValueError, match="X: .*NaN or infinite"):
        sopt.Objective(net, X, T)


def test_X_not_numbers(net, w):
    with pytest.raises(TypeError, match="X"):
        net.forward(w, [["a", "b", "c"]])


# ------------------------------------------------------------------- T
@pytest.mark.parametrize("shape", [(N, K + 1), (N + 1, K), (N - 1, K), (N,), (N, K, 1)],
                         ids=["wide", "N+1", "N-1", "1d", "3d"])
def test_T_wrong_shape(net, data, shape):
    X, _ = data
    with pytest.raises(ValueError, match=rf"T: expected shape \(N, K\) = \({N}, {K}\)"):
        sopt.Objective(net, X, np.zeros(shape))


def test_mismatched_N_between_X_and_T(net, data):
    X, T = data
    with pytest.raises(ValueError, match=r"T: .*\(5, 2\).*\(4, 2\)"):
        sopt.Objective(net, X, T[:4])
    with pytest.raises(ValueError, match=r"T: .*\(4, 2\).*\(5, 2\)"):
        sopt.Objective(net, X[:4], T)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_T_not_finite(net, data, value):
    X, T = data
    T = T.copy()
    T[0, 0] = value
    with pytest.raises(ValueError, match="T: .*NaN or infinite"):
        sopt.Objective(net, X, T)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_binary_ce_targets_outside_unit_interval(data, bad):
    X, _ = data
    net = sopt.mlp([D, M, K], output="logistic")
    T = np.full((N, K), 0.5)
    T[1, 1] = bad
    with pytest.raises(ValueError, match=r"T: binary_ce targets must lie in \[0, 1\]"):
        sopt.Objective(net, X, T, loss="binary_ce")


def test_softmax_ce_targets_outside_unit_interval(data):
    X, _ = data
    net = sopt.mlp([D, M, 3], output="softmax")
    T = np.tile([1.5, -0.5, 0.0], (N, 1))       # rows sum to 1 but not in [0, 1]
    with pytest.raises(ValueError, match=r"T: softmax_ce targets must lie in \[0, 1\]"):
        sopt.Objective(net, X, T, loss="softmax_ce")


def test_softmax_ce_targets_not_probability_rows(data):
    X, _ = data
    net = sopt.mlp([D, M, 3], output="softmax")
    T = np.tile([0.5, 0.2, 0.2], (N, 1))
    T[0] = [0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match=r"T: softmax_ce targets must be probability "
                                         r"rows .*4 row\(s\)"):
        sopt.Objective(net, X, T, loss="softmax_ce")


@pytest.mark.parametrize("labels", [[0, 1, 3, 0, 1], [0, 1, -1, 0, 1],
                                    [0, 1, 1.5, 0, 1]],
                         ids=["too-large", "negative", "fractional"])
def test_labels_outside_the_classes(data, labels):
    X, _ = data
    net = sopt.mlp([D, M, 3], output="softmax")
    with pytest.raises(ValueError, match=r"T: class labels must be integers in \[0, 2\]"):
        sopt.Objective(net, X, np.array(labels), loss="softmax_ce")


# ------------------------------------------------------------ names
@pytest.mark.parametrize("where", ["hidden", "output", "add_layer"])
def test_unknown_activation_name(where):
    with pytest.raises(ValueError, match=r"activation: unknown name 'tanhh'"):
        if where == "hidden":
            sopt.mlp([2, 3, 1], hidden="tanhh")
        elif where == "output":
            sopt.mlp([2, 3, 1], output="tanhh")
        else:
            sopt.Network(2).add_layer(3, "tanhh", inputs=[0])


@pytest.mark.parametrize("spec", [3, (np.tanh, np.tanh), None])
def test_activation_of_wrong_type(spec):
    with pytest.raises(TypeError, match="activation"):
        sopt.Network(2).add_layer(3, spec, inputs=[0])


def test_unknown_loss_name(net, data):
    X, T = data
    with pytest.raises(ValueError, match=r"loss: unknown name 'mse'"):
        sopt.Objective(net, X, T, loss="mse")
    with pytest.raises(TypeError, match="loss"):
        sopt.Objective(net, X, T, loss=42)


@pytest.mark.parametrize("output, loss", [("identity", "binary_ce"), ("tanh", "binary_ce"),
                                          ("identity", "softmax_ce"),
                                          ("logistic", "softmax_ce")])
def test_cross_entropy_on_outputs_not_in_unit_interval(data, output, loss):
    X, _ = data
    net = sopt.mlp([D, M, 3], output=output)
    T = np.tile([1.0, 0.0, 0.0], (N, 1))
    with pytest.raises(ValueError, match=rf"loss: '{loss}' needs outputs in \(0, 1\)"):
        sopt.Objective(net, X, T, loss=loss)


# ------------------------------------------------------------ topology
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


# ------------------------------------------------------------ masks
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


# ------------------------------------------------------------ objective
@pytest.mark.parametrize("alpha", [-1e-3, -1.0, np.nan, np.inf])
def test_bad_alpha(net, data, alpha):
    X, T = data
    with pytest.raises(ValueError, match="alpha: expected a finite number >= 0"):
        sopt.Objective(net, X, T, alpha=alpha)


@pytest.mark.parametrize("alpha", ["0.1", None])
def test_alpha_wrong_type(net, data, alpha):
    X, T = data
    with pytest.raises(TypeError, match="alpha"):
        sopt.Objective(net, X, T, alpha=alpha)


@pytest.mark.parametrize("bad", ["two-entry list", "short", "negative", "nan"])
def test_alpha_array_must_be_one_nonnegative_finite_value_per_weight(net, data, bad):
    X, T = data
    alpha = {"two-entry list": [0.1, 0.2],
             "short": np.ones(net.n_weights - 1),
             "negative": -np.ones(net.n_weights),
             "nan": np.full(net.n_weights, np.nan)}[bad]
    with pytest.raises(ValueError, match="alpha"):
        sopt.Objective(net, X, T, alpha=alpha)


def test_alpha_of_one_entry_is_one_number(net, data, w):
    """[0.1] is 0.1 (as numpy broadcasts it): an evidence fit's single
    group alpha passes on as it is."""
    X, T = data
    obj = sopt.Objective(net, X, T, alpha=np.array([0.1]))
    assert obj.alpha == 0.1
    assert obj.value(w) == sopt.Objective(net, X, T, alpha=0.1).value(w)


def test_alpha_per_weight_adds_its_own_decay(net, data, w):
    X, T = data
    alpha = np.linspace(0.1, 2.0, net.n_weights)
    g0 = sopt.Objective(net, X, T).gradient(w)
    obj = sopt.Objective(net, X, T, alpha=alpha)
    # one addition per entry: round-off <= ulp of |g0| + |alpha w|
    tol = 4 * np.finfo(float).eps * (np.abs(g0) + np.abs(alpha * w)).max()
    assert np.abs(obj.gradient(w) - g0 - alpha * w).max() <= tol
    H0 = sopt.Objective(net, X, T).hessian(w)
    assert np.abs(obj.hessian(w) - H0 - np.diag(alpha)).max() <= tol + 4 * np.finfo(float).eps * np.abs(H0).max()


@pytest.mark.parametrize("chunk", [0, -3])
def test_bad_chunk_size(net, data, w, chunk):
    X, T = data
    with pytest.raises(ValueError, match="chunk_size"):
        sopt.Objective(net, X, T, chunk_size=chunk)
    with pytest.raises(ValueError, match="chunk_size"):
        net.output_sensitivities(w, X, chunk_size=chunk)


def test_net_not_a_network(data):
    X, T = data
    with pytest.raises(TypeError, match="net: expected a Network"):
        sopt.Objective("net", X, T)


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
