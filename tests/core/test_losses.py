"""Core: no stale answers, no overflow in the general chain
rule, clear errors for bad arguments (sparse X, 0-d arrays, empty v,
one-unit softmax)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import sopt
from sopt import finite_diff
from sopt.activations import LOGISTIC, Activation

from sopt.testing import rel_err


def _setup():
    r = np.random.default_rng(0)
    net = sopt.mlp([2, 3, 1])
    X = r.normal(size=(10, 2))
    return net, X, net.init_weights(0)


# ------------------------------------------------------ item 2: stale data
def test_objective_copies_its_data_so_later_changes_cannot_mix_data_sets():
    net, X, w = _setup()
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
    net, X, w = _setup()
    obj = sopt.Objective(net, X, X[:, 0])
    assert obj.value(w) == sopt.Objective(net, X.copy(), X[:, 0].copy()).value(w)


# ---------------------------------------- item 3: non-canonical overflow
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
    net, X, _ = _setup()
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
    net, X, _ = _setup()
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
    _, X, _ = _setup()
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


# ------------------------------------------------ item 5: softmax of one
def test_softmax_output_layer_needs_two_units():
    with pytest.raises(ValueError, match="softmax"):
        sopt.mlp([2, 3, 1], output="softmax")
    net = sopt.Network(n_inputs=2)
    with pytest.raises(ValueError, match="at least 2"):
        net.add_layer(1, "softmax", inputs=[net.input], output=True)


# ------------------------------------------------- item 6: clear errors
def test_hvp_with_no_directions_names_v():
    net, X, w = _setup()
    obj = sopt.Objective(net, X, X[:, 0])
    with pytest.raises(ValueError, match=r"v: .*\(13, P\)"):
        obj.hvp(w, np.zeros((13, 0)))
    with pytest.raises(ValueError, match=r"v: "):
        obj.gnvp(w, np.zeros((13, 0)))


def test_sparse_inputs_are_refused_with_advice():
    net, X, _ = _setup()
    with pytest.raises(TypeError, match=r"X: .*sparse.*toarray"):
        sopt.Objective(net, sp.csr_matrix(X), X[:, 0])
    with pytest.raises(TypeError, match=r"T: .*sparse"):
        sopt.Objective(net, X, sp.csr_matrix(X[:, :1]))


def test_zero_dimensional_arrays_are_accepted_as_numbers():
    net, X, w = _setup()
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
    import sopt._validation as validation
    net = sopt.mlp([2, 3, 1])
    X = np.random.default_rng(0).normal(size=(10, 2))
    obj = sopt.Objective(net, X, X[:, 0])
    w = net.init_weights(0)
    monkeypatch.setattr(validation, "DEFAULT_MAX_BYTES", 100)
    for algorithm in ("fd", "mixed"):
        with pytest.raises(MemoryError, match="max_bytes"):
            obj.hessian(w, algorithm=algorithm)
        H = obj.hessian(w, algorithm=algorithm, max_bytes=10**6)
        assert H.shape == (net.n_weights, net.n_weights)


def test_estimator_memory_error_says_what_the_estimator_user_can_do(monkeypatch):
    import sopt._validation as validation
    monkeypatch.setattr(validation, "DEFAULT_MAX_BYTES", 100)
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(MemoryError, match="use fewer hidden units.*evidence_fit"):
        sopt.bayes.BayesianMLPRegressor(hidden=(3,)).fit(X, X[:, 0])
