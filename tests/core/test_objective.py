"""sopt.objective.Objective's own arguments: targets T of each loss's
domain and shape, the decay alpha (one number or one per weight), chunk
sizes, max_bytes, directions v, 0-d arrays; bad ones give a ValueError or
TypeError that names the argument (docs/DESIGN.md: "never a numpy broadcast
error from deep inside"). The Objective keeps its own read-only copy of
the data. Checks of w and X, which every entry point shares, are in
test_validation.py."""
import numpy as np
import pytest

import sopt
from problems import small_regression

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


# ------------------------------------------------ alpha, chunk_size, net
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


# ------------------------------------------------ its own copy of the data
def test_objective_copies_its_data_so_later_changes_cannot_mix_data_sets():
    net, X, w = small_regression()
    obj = sopt.Objective(net, X, X[:, 0])
    e, g, H = obj.value(w), obj.gradient(w), obj.hessian(w)
    X *= 2                      # the caller changes its array afterwards
    assert obj.value(w) == e
    assert np.array_equal(obj.gradient(w), g)
    assert np.array_equal(obj.hessian(w), H)
    assert not obj.X.flags.writeable and not obj.T.flags.writeable
    with pytest.raises(ValueError):
        obj.X[0, 0] = 1.0


def test_objective_copy_matches_a_fresh_objective_on_the_same_numbers():
    net, X, w = small_regression()
    obj = sopt.Objective(net, X, X[:, 0])
    assert obj.value(w) == sopt.Objective(net, X.copy(), X[:, 0].copy()).value(w)


# ------------------------------------------------ v, 0-d arrays, max_bytes
def test_hvp_with_no_directions_names_v():
    net, X, w = small_regression()
    obj = sopt.Objective(net, X, X[:, 0])
    with pytest.raises(ValueError, match=r"v: .*\(13, P\)"):
        obj.hvp(w, np.zeros((13, 0)))
    with pytest.raises(ValueError, match=r"v: "):
        obj.gnvp(w, np.zeros((13, 0)))


def test_zero_dimensional_arrays_are_accepted_as_numbers():
    net, X, w = small_regression()
    a = sopt.Objective(net, X, X[:, 0], alpha=np.array(0.1))
    b = sopt.Objective(net, X, X[:, 0], alpha=0.1)
    assert a.value(w) == b.value(w)
    c = sopt.Objective(net, X, X[:, 0], chunk_size=np.array(4))
    assert c.value(w) == pytest.approx(b.value(w) - 0.05 * w @ w, rel=1e-12)
    with pytest.raises(ValueError, match="alpha"):
        sopt.Objective(net, X, X[:, 0], alpha=np.array(-0.1))
    with pytest.raises(TypeError, match="alpha"):
        sopt.Objective(net, X, X[:, 0], alpha=np.array("a"))


def test_objective_passes_max_bytes_on_to_the_finite_difference_hessians(monkeypatch):
    """A caller who raises max_bytes above the default must not be refused
    by finite_diff's own guard (default lowered here to stay small)."""
    import sopt._validation as validation       # the limit's one home
    net, X, w = small_regression()
    obj = sopt.Objective(net, X, X[:, 0])
    monkeypatch.setattr(validation, "DEFAULT_MAX_BYTES", 100)
    for algorithm in ("fd", "mixed"):
        with pytest.raises(MemoryError, match="max_bytes"):
            obj.hessian(w, algorithm=algorithm)
        H = obj.hessian(w, algorithm=algorithm, max_bytes=10**6)
        assert H.shape == (net.n_weights, net.n_weights)


# ------------------------------------------------- value_and_gradient
@pytest.mark.parametrize("output,loss", [("identity", "sse"), ("logistic", "binary_ce"),
                                         ("softmax", "softmax_ce")])
@pytest.mark.parametrize("chunk_size", [None, 2])
def test_value_and_gradient_equals_value_then_gradient(output, loss, chunk_size):
    """The lean path (one pass each way, w not compared with the last one)
    gives the objective's own value and gradient at a stream of new w,
    decay included, to round-off; and the kept evaluation it leaves is the
    one at the last w (a value there is not recomputed from stale passes)."""
    rng = np.random.default_rng(1)
    net = sopt.mlp([D, M, 3], hidden="tanh", output=output)
    X = rng.standard_normal((N, D))
    T = np.eye(3)[rng.integers(0, 3, N)] if loss != "sse" else rng.standard_normal((N, 3))
    lean = sopt.Objective(net, X, T, loss=loss, alpha=0.3, chunk_size=chunk_size)
    reference = sopt.Objective(net, X, T, loss=loss, alpha=0.3, chunk_size=chunk_size)
    for seed in range(4):
        w = net.init_weights(seed=seed) * 3.0
        value, gradient = (lean.value_and_gradient(w) if seed % 2
                           else lean.unchecked_value_and_gradient(w))
        assert value == pytest.approx(reference.value(w), rel=1e-12)
        np.testing.assert_allclose(gradient, reference.gradient(w), rtol=1e-12,
                                   atol=1e-12 * np.abs(reference.gradient(w)).max())
        assert lean.value(w) == pytest.approx(value, rel=1e-12)


def test_value_and_gradient_checks_w(net, data):
    obj = sopt.Objective(net, *data)
    with pytest.raises(ValueError, match="w: expected shape"):
        obj.value_and_gradient(np.zeros(net.n_weights + 1))
