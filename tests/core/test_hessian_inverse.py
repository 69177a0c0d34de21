"""The inverse outer-product matrix by sequential rank-one updates (PRML
eq. 5.89), sopt.hessian.sequential_inverse, and the dense-size guard
(MemoryError instead of allocating a huge W x W matrix).

Tolerances
----------
INV_RTOL = 1e-10 (norm-wise relative) against np.linalg.inv: both are
    backward stable, so each has error ~ cond(A) * macheps; alpha = 0.5
    keeps cond(alpha I + G) below ~1e3 here (asserted), i.e. errors ~1e-13.
BLOCK_RTOL = 1e-12: different block sizes are algebraically equal updates
    (Woodbury); they differ by round-off ~ cond * macheps ~ 1e-13 at most.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import sopt
import sopt.hessian as sh
from sopt import testing

from helpers import UNIT_CAUCHY, make_targets
from sopt.testing import rel_err

INV_RTOL = 1e-10
BLOCK_RTOL = 1e-12


# id -> (output, loss, K, target kind)
CASES = {
    "sse-K1": ("identity", "sse", 1, "gauss"),
    "sse-K3": ("identity", "sse", 3, "gauss"),
    "binary_ce-K1": ("logistic", "binary_ce", 1, "unit"),
    "binary_ce-K2": ("logistic", "binary_ce", 2, "unit"),
    "softmax_ce": ("softmax", "softmax_ce", 3, "onehot"),
    "softmax_ce-soft": ("softmax", "softmax_ce", 3, "prob"),
    "logistic-sse": ("logistic", "sse", 2, "unit"),     # non-canonical, factor h'(a)
}


def build(case, seed, alpha=0.5, n=8):
    out, loss, K, kind = CASES[case]
    net = testing.random_network(seed, n_hidden_layers=1 + seed % 2, max_units=4,
                                 n_outputs=K, output=out, mask_prob=0.3)
    rng = np.random.default_rng(seed)
    w = net.init_weights(seed=seed) + 0.3 * rng.standard_normal(net.n_weights)
    X = rng.standard_normal((n, net.n_inputs))
    T = make_targets(rng, n, K, kind)
    return net, sopt.Objective(net, X, T, loss=loss, alpha=alpha), w


# ------------------------------------------------------------------ inverse
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("seed", [1, 2])
def test_inverse_outer_product_equals_inverse_of_gauss_newton(case, seed):
    net, obj, w = build(case, seed)
    # masked entries have zero rows in A (no data term, no decay): the
    # inverse is taken over the weights in use and is zero elsewhere
    used = np.flatnonzero(net.used_weight_mask())
    A_full = obj.hessian(w, kind="gauss_newton")
    A = A_full[np.ix_(used, used)]                 # alpha I + G on used weights
    G = A - 0.5 * np.eye(len(used))
    assert np.abs(G).max() > 1e-2                  # G is not negligible
    assert np.linalg.cond(A) < 1e3                 # see INV_RTOL
    Ainv_full = obj.inverse_outer_product(w)
    assert Ainv_full.shape == (net.n_weights,) * 2
    masked = np.setdiff1d(np.arange(net.n_weights), used)
    assert np.all(Ainv_full[masked, :] == 0) and np.all(Ainv_full[:, masked] == 0)
    Ainv = Ainv_full[np.ix_(used, used)]
    assert rel_err(Ainv, np.linalg.inv(A)) < INV_RTOL
    assert rel_err(Ainv @ A, np.eye(len(used))) < INV_RTOL
    # symmetric
    assert np.abs(Ainv - Ainv.T).max() <= 1e-14 * np.abs(Ainv).max()
    for b in (7, 1000):
        assert rel_err(obj.inverse_outer_product(w, block_size=b), Ainv_full) < BLOCK_RTOL


def test_inverse_outer_product_is_the_pattern_sum_by_hand():
    """sse, K = 1: (alpha I + sum_n g_n g_n^T)^{-1} with g_n = dy_n/dw."""
    net, obj, w = build("sse-K1", 3, alpha=0.8)
    used = np.flatnonzero(net.used_weight_mask())     # masked entries excluded
    J = obj.net.output_sensitivities(w, obj.X)[:, 0, used]
    A = 0.8 * np.eye(len(used)) + J.T @ J
    Ainv = obj.inverse_outer_product(w)[np.ix_(used, used)]
    assert rel_err(Ainv, np.linalg.inv(A)) < INV_RTOL


def test_inverse_outer_product_needs_alpha():
    net, obj, w = build("sse-K3", 1, alpha=0.0)
    with pytest.raises(ValueError, match="alpha"):
        obj.inverse_outer_product(w)


@pytest.mark.parametrize("output, loss, K, kind", [
    ("identity", UNIT_CAUCHY, 2, "gauss"),          # indefinite curvature: no factor
    ("softmax", "sse", 3, "gauss"),
    ("softmax", "binary_ce", 3, "unit")])
def test_inverse_outer_product_refuses_losses_without_a_factor(output, loss, K, kind):
    net = testing.random_network(1, n_hidden_layers=1, n_outputs=K, output=output)
    rng = np.random.default_rng(1)
    w = net.init_weights(seed=1)
    X = rng.standard_normal((5, net.n_inputs))
    obj = sopt.Objective(net, X, make_targets(rng, 5, K, kind), loss=loss, alpha=1.0)
    with pytest.raises(ValueError, match="loss"):
        obj.inverse_outer_product(w)


@pytest.mark.parametrize("R, W", [(1, 5), (12, 8), (30, 20), (5, 40)])
@pytest.mark.parametrize("alpha", [0.1, 2.0])
def test_sequential_inverse_on_random_rows(R, W, alpha):
    rng = np.random.default_rng(R * 100 + W)
    G = rng.standard_normal((R, W))
    A = alpha * np.eye(W) + G.T @ G
    ref = np.linalg.inv(A)
    assert np.linalg.cond(A) < 1e5         # error ~ cond * macheps <= 2e-11
    for b in (1, 3, R, R + 10):
        Ainv = sh.sequential_inverse(G, alpha, block_size=b)
        assert Ainv.shape == (W, W)
        assert rel_err(Ainv, ref) < INV_RTOL


def test_sequential_inverse_single_row_by_sherman_morrison():
    """One rank-one update from (alpha I)^-1: I/alpha - b b^T / (alpha (alpha + |b|^2))."""
    b = np.array([1.0, -2.0, 0.5])
    alpha = 0.5
    expected = np.eye(3) / alpha - np.outer(b, b) / (alpha * (alpha + b @ b))
    assert rel_err(sh.sequential_inverse(b, alpha), expected) < 1e-14


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_sequential_inverse_rejects_nonpositive_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        sh.sequential_inverse(np.ones((2, 3)), alpha)


# ------------------------------------------------------------------ memory guard
def _net_with_100_weights():
    net = sopt.Network(n_inputs=9)
    net.add_layer(10, "identity", inputs=[net.input], output=True)
    assert net.n_weights == 100
    rng = np.random.default_rng(0)
    obj = sopt.Objective(net, rng.standard_normal((4, 9)),
                         rng.standard_normal((4, 10)), alpha=0.1)
    return net, obj, rng.standard_normal(100)


def _states_w_and_bytes(msg, W, need):
    """The message names W and the bytes needed (with or without separators)."""
    assert re.search(rf"\b{W}\b", msg.replace(",", "")), msg
    assert f"{need:,}" in msg or str(need) in msg, msg


#: every (kind, algorithm) pair of Objective.hessian
HESSIAN_PAIRS = [("exact", "structured"), ("exact", "rop"), ("exact", "fd"),
                 ("exact", "mixed"), ("gauss_newton", "structured"),
                 ("gauss_newton", "rop"), ("diagonal", "structured")]


@pytest.mark.parametrize("kind, algorithm", HESSIAN_PAIRS)
def test_hessian_refuses_over_max_bytes(kind, algorithm):
    net, obj, w = _net_with_100_weights()
    with pytest.raises(MemoryError) as info:
        obj.hessian(w, kind, algorithm, max_bytes=1000)
    _states_w_and_bytes(str(info.value), 100, 80_000)


def test_max_bytes_boundary():
    """8 W^2 = 80,000 bytes: allowed at exactly that limit, refused below."""
    net, obj, w = _net_with_100_weights()
    H = obj.hessian(w, max_bytes=80_000)
    assert H.shape == (100, 100)
    with pytest.raises(MemoryError):
        obj.hessian(w, max_bytes=79_999)
    with pytest.raises(MemoryError):
        obj.hessian(w, algorithm="rop", max_bytes=79_999)


def test_inverse_outer_product_refuses_over_max_bytes():
    net, obj, w = _net_with_100_weights()
    with pytest.raises(MemoryError) as info:
        obj.inverse_outer_product(w, max_bytes=1000)
    _states_w_and_bytes(str(info.value), 100, 80_000)
    A = obj.hessian(w, kind="gauss_newton")
    assert rel_err(obj.inverse_outer_product(w, max_bytes=80_000),
                   np.linalg.inv(A)) < INV_RTOL


def test_check_dense_size_default_limit():
    assert sh.DEFAULT_MAX_BYTES == 4 * 2**30
    # largest W with 8 W^2 <= 4 GiB is 23170 (8 * 23171^2 = 4,295,003,528)
    sh.check_dense_size(23170)
    with pytest.raises(MemoryError) as info:
        sh.check_dense_size(23171)
    _states_w_and_bytes(str(info.value), 23171, 8 * 23171**2)
    sh.check_dense_size(10, max_bytes=800)
    with pytest.raises(MemoryError):
        sh.check_dense_size(10, max_bytes=799)
    with pytest.raises(MemoryError):
        sh.check_dense_size(100, 1000, "inverse")


def test_objective_refuses_by_default_before_allocating():
    """W = 24,481 > 23,170: the default 4 GiB guard refuses every dense
    method at once (nothing W x W is allocated: the call is instantaneous),
    while hvp, O(W) memory, still works."""
    net = sopt.mlp([100, 240, 1], hidden="tanh")
    W = net.n_weights
    assert W == 100 * 240 + 240 + 240 + 1
    rng = np.random.default_rng(0)
    obj = sopt.Objective(net, rng.standard_normal((2, 100)), rng.standard_normal(2),
                         alpha=0.1)
    w = net.init_weights(seed=0)
    for kind, algorithm in HESSIAN_PAIRS:
        with pytest.raises(MemoryError) as info:
            obj.hessian(w, kind, algorithm)
        _states_w_and_bytes(str(info.value), W, 8 * W**2)
    with pytest.raises(MemoryError):
        obj.hess(w)
    with pytest.raises(MemoryError):
        obj.inverse_outer_product(w)
    v = rng.standard_normal(W)
    Hv = obj.hvp(w, v)
    assert Hv.shape == (W,) and np.isfinite(Hv).all()
    # the diagonal as a vector is O(W): allowed
    assert obj.hessian_diagonal(w).shape == (W,)


# ------------------------------------------------------------------ bad block sizes
@pytest.mark.parametrize("block_size", [0, -1, -7])
def test_inverse_outer_product_rejects_nonpositive_block_size(block_size):
    """block_size must be a positive integer. Found: -1 silently returns
    (alpha I)^{-1}, ignoring all the data (range(0, R, -1) is empty), and 0
    raises numpy/range's "range() arg 3 must not be zero" naming nothing."""
    net, obj, w = build("sse-K3", 1)
    with pytest.raises(ValueError, match="block_size"):
        obj.inverse_outer_product(w, block_size=block_size)


@pytest.mark.parametrize("block_size", [0, -1])
def test_sequential_inverse_rejects_nonpositive_block_size(block_size):
    G = np.random.default_rng(0).standard_normal((5, 3))
    with pytest.raises(ValueError, match="block_size"):
        sh.sequential_inverse(G, 2.0, block_size=block_size)


def test_inverse_outer_product_rejects_non_integer_block_size():
    net, obj, w = build("sse-K3", 1)
    with pytest.raises(TypeError, match="block_size"):
        obj.inverse_outer_product(w, block_size=2.5)


@pytest.mark.parametrize("max_bytes, exc", [(float("nan"), ValueError),
                                             ("4GB", TypeError)])
def test_max_bytes_is_validated(max_bytes, exc):
    """A NaN limit silently disables the guard (need > nan is False); a
    string gives a bare "'>' not supported" TypeError. Both should name
    max_bytes (docs/DESIGN.md: bad input -> clear ValueError/TypeError)."""
    net, obj, w = _net_with_100_weights()
    with pytest.raises(exc, match="max_bytes"):
        obj.hessian(w, max_bytes=max_bytes)
