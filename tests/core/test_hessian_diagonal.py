"""sopt.hessian: Becker and Le Cun's diagonal Hessian approximation (PRML
sec. 5.4.1), Objective.hessian_diagonal and hessian(kind="diagonal").

The reference is the recursion of PRML eqs. (5.79)-(5.81) written out in this
file for a layered MLP, with its own forward and backward passes:

    output units:  d2E/da_k^2 = M_kk (the exact output curvature's diagonal)
    hidden units:  d2E/da_j^2 ~ h'(a_j)^2 sum_k w_kj^2 d2E/da_k^2
                               + h''(a_j) sum_k w_kj delta_k
    weights:       d2E/dw_ji^2 ~ sum_n z_i^2 d2E/da_j^2   (z = 1 for a bias)

Tolerances: EXACT_RTOL = 1e-12 relative where the same sums are taken in a
different order (round-off only, observed ~1e-16). The approximation drops
the off-diagonal terms sum_{k != k'} w_kj w_k'j d2E/(da_k da_k'), which are
O(1) on these networks, so "differs" is asserted as a relative difference
> 1e-6 (observed >= 7e-3 of max|diag H|), far above round-off.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

import sopt
from sopt import testing

from helpers import UNIT_CAUCHY, make_targets
from sopt.testing import rel_err

EXACT_RTOL = 1e-12

# hidden activations as (h, h', h'') written out here
HIDDEN = {
    "tanh": (np.tanh, lambda a: 1 - np.tanh(a) ** 2,
             lambda a: -2 * np.tanh(a) * (1 - np.tanh(a) ** 2)),
    "logistic": (expit, lambda a: expit(a) * (1 - expit(a)),
                 lambda a: expit(a) * (1 - expit(a)) * (1 - 2 * expit(a))),
    "softplus": (lambda a: np.logaddexp(0, a), expit,
                 lambda a: expit(a) * (1 - expit(a))),
}


def _softmax(a):
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# output rules: (output activation, loss, target kind,
#                f(a, T) -> (y, dE/da, diag of d2E/da^2))
def _rule_sse_identity(a, T):
    return a, a - T, np.ones_like(a)


def _rule_bce_logistic(a, T):
    y = expit(a)
    return y, y - T, y * (1 - y)


def _rule_ce_softmax(a, T):
    y = _softmax(a)
    s = T.sum(axis=1, keepdims=True)
    return y, s * y - T, s * y * (1 - y)


def _rule_sse_logistic(a, T):
    y = expit(a)
    hp, hpp = y * (1 - y), y * (1 - y) * (1 - 2 * y)
    return y, (y - T) * hp, hp**2 + (y - T) * hpp


def _rule_cauchy_identity(a, T):
    r = a - T
    return a, 2 * r / (1 + r * r), 2 * (1 - r * r) / (1 + r * r) ** 2


RULES = {
    "identity-sse": ("identity", "sse", "gauss", _rule_sse_identity),
    "logistic-binary_ce": ("logistic", "binary_ce", "unit", _rule_bce_logistic),
    "softmax-softmax_ce": ("softmax", "softmax_ce", "onehot", _rule_ce_softmax),
    "logistic-sse": ("logistic", "sse", "unit", _rule_sse_logistic),
    "identity-cauchy": ("identity", UNIT_CAUCHY, "gauss2", _rule_cauchy_identity),
}
# output rules whose curvature d2E/da^2 is diagonal
DIAGONAL_M = ["identity-sse", "logistic-binary_ce", "logistic-sse", "identity-cauchy"]


def build_mlp(rule, sizes, hidden, seed, alpha=0.0, n=8, chunk_size=None):
    out, loss, kind, _ = RULES[rule]
    net = sopt.mlp(sizes, hidden=list(hidden), output=out)
    rng = np.random.default_rng(seed)
    w = net.init_weights(seed=seed) + 0.3 * rng.standard_normal(net.n_weights)
    X = rng.standard_normal((n, sizes[0]))
    T = make_targets(rng, n, sizes[-1], kind)
    obj = sopt.Objective(net, X, T, loss=loss, alpha=alpha, chunk_size=chunk_size)
    return net, obj, w


def becker_lecun_reference(net, hidden, rule, w, X, T):
    """PRML eqs. 5.79-5.81 for a layered MLP, written independently: own
    forward pass from the (W row-major, then b) layout, own backprop."""
    params = net.unpack(w)
    Ws = [p.weights[0] for p in params]
    bs = [p.bias for p in params]
    acts = [HIDDEN[h] for h in hidden]
    # forward
    zs, a_s = [X], []
    for l, (W, b) in enumerate(zip(Ws, bs)):
        a = zs[-1] @ W.T + b
        a_s.append(a)
        if l < len(hidden):
            zs.append(acts[l][0](a))
    _, delta, d2 = RULES[rule][3](a_s[-1], T)
    out = []
    for l in range(len(Ws) - 1, -1, -1):
        z = zs[l]
        # (5.81): d2E/dw_ji^2 ~ sum_n z_i^2 d2E/da_j^2, bias with z = 1
        out.append((d2.T @ (z * z)).ravel().tolist() + d2.sum(axis=0).tolist())
        if l == 0:
            break
        h, dh, d2h = acts[l - 1]
        a = a_s[l - 1]
        back_d2 = d2 @ (Ws[l] ** 2)          # sum_k w_kj^2 d2E/da_k^2
        back_delta = delta @ Ws[l]           # sum_k w_kj delta_k
        d2 = dh(a) ** 2 * back_d2 + d2h(a) * back_delta     # (5.80)
        delta = dh(a) * back_delta
    return np.array([x for block in reversed(out) for x in block])


# ------------------------------------------------------------------ recursion
TWO_HIDDEN = [(("tanh", "logistic"), [3, 4, 3, 2]),
              (("softplus", "tanh"), [2, 3, 5, 3]),
              (("logistic", "softplus"), [4, 2, 3, 1])]


def two_hidden(rule, k):
    """(hidden activations, sizes) of TWO_HIDDEN[k]; softmax gets 3 outputs
    where the case has one."""
    hidden, sizes = TWO_HIDDEN[k]
    if rule == "softmax-softmax_ce" and sizes[-1] == 1:
        sizes = sizes[:-1] + [3]
    return hidden, sizes


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("k", range(len(TWO_HIDDEN)))
def test_diagonal_equals_prml_recursion_two_hidden_layers(rule, k):
    hidden, sizes = two_hidden(rule, k)
    net, obj, w = build_mlp(rule, sizes, hidden, seed=10 + k, alpha=0.3)
    ref = becker_lecun_reference(net, hidden, rule, w, obj.X, obj.T)
    assert ref.shape == (net.n_weights,)
    d = obj.hessian_diagonal(w)
    assert d.shape == (net.n_weights,)
    assert rel_err(d, ref + 0.3) < EXACT_RTOL


def test_reference_recursion_is_the_exact_diagonal_for_one_hidden_layer():
    """The test's own recursion equals the exact Hessian's diagonal where it
    should (one hidden layer, diagonal M): checks the reference itself."""
    net, obj, w = build_mlp("logistic-sse", [3, 4, 2], ("tanh",), seed=3)
    ref = becker_lecun_reference(net, ("tanh",), "logistic-sse", w, obj.X, obj.T)
    assert rel_err(ref, np.diag(obj.hessian(w, algorithm="rop"))) < EXACT_RTOL


# ------------------------------------------------------------------ exactness
@pytest.mark.parametrize("rule, K", [("identity-sse", 1), ("identity-sse", 3),
                                     ("logistic-binary_ce", 1),
                                     ("logistic-binary_ce", 2),
                                     ("logistic-sse", 2), ("identity-cauchy", 2)])
@pytest.mark.parametrize("hidden", ["tanh", "logistic", "softplus"])
def test_diagonal_is_exact_for_one_hidden_layer_with_diagonal_output_curvature(
        rule, K, hidden):
    net, obj, w = build_mlp(rule, [3, 4, K], (hidden,), seed=K, alpha=0.2)
    d = obj.hessian_diagonal(w)
    H = obj.hessian(w)
    assert rel_err(d, np.diag(H)) < EXACT_RTOL


@pytest.mark.parametrize("rule", DIAGONAL_M)
def test_diagonal_is_exact_one_hidden_layer_with_skip_and_masks(rule):
    """One hidden layer plus a direct input -> output edge and masks: the
    first-layer units still reach E only through a diagonal M."""
    out, loss, kind, _ = RULES[rule]
    rng = np.random.default_rng(21)
    net = sopt.Network(n_inputs=3)
    h = net.add_layer(4, "tanh", inputs=[net.input],
                      masks={net.input: (rng.random((4, 3)) < 0.7).astype(float)})
    net.add_layer(2, out, inputs=[h, net.input], output=True,
                  masks={h: [[1, 0, 1, 1], [1, 1, 0, 1]]})
    w = net.init_weights(seed=21) + 0.3 * rng.standard_normal(net.n_weights)
    X = rng.standard_normal((7, 3))
    obj = sopt.Objective(net, X, make_targets(rng, 7, 2, kind), loss=loss)
    assert rel_err(obj.hessian_diagonal(w), np.diag(obj.hessian(w))) < EXACT_RTOL


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("k", range(len(TWO_HIDDEN)))
def test_diagonal_differs_from_exact_for_two_hidden_layers(rule, k):
    hidden, sizes = two_hidden(rule, k)
    net, obj, w = build_mlp(rule, sizes, hidden, seed=10 + k)
    d = obj.hessian_diagonal(w)
    exact = np.diag(obj.hessian(w))
    # an approximation: the first layer's entries are off by O(1e-2..1)
    assert np.abs(d - exact).max() > 1e-6 * np.abs(exact).max()
    first = slice(0, sizes[0] * sizes[1] + sizes[1])
    assert rel_err(d[first], exact[first]) > 1e-6
    # the output layer's own weights are exact for any M: d2E/dw_kj^2 = z_j^2 M_kk
    last = net.layers[-1]
    o = slice(last.weight_slices[0].start, last.bias_slice.stop)
    assert rel_err(d[o], exact[o]) < EXACT_RTOL


def test_diagonal_differs_for_one_hidden_layer_softmax():
    """With softmax outputs M is not diagonal, so even one hidden layer is
    only approximated (the dropped terms are the off-diagonal M_kk')."""
    net, obj, w = build_mlp("softmax-softmax_ce", [3, 4, 3], ("tanh",), seed=5)
    d, exact = obj.hessian_diagonal(w), np.diag(obj.hessian(w))
    assert rel_err(d[:16], exact[:16]) > 1e-6
    assert rel_err(d[16:], exact[16:]) < EXACT_RTOL


# ------------------------------------------------------------------ API
@pytest.mark.parametrize("rule", ["identity-sse", "softmax-softmax_ce", "logistic-sse"])
def test_method_diagonal_and_chunking(rule):
    net, obj, w = build_mlp(rule, [3, 4, 3, 3], ("tanh", "softplus"), seed=8, alpha=0.4)
    _, objc, _ = build_mlp(rule, [3, 4, 3, 3], ("tanh", "softplus"), seed=8,
                           alpha=0.4, chunk_size=3)
    d = obj.hessian_diagonal(w)
    D = obj.hessian(w, kind="diagonal")
    assert D.shape == (net.n_weights,) * 2
    np.testing.assert_array_equal(D, np.diag(d))
    assert rel_err(objc.hessian_diagonal(w), d) < EXACT_RTOL
    # weight decay adds alpha to every entry (one rounding each)
    _, obj0, _ = build_mlp(rule, [3, 4, 3, 3], ("tanh", "softplus"), seed=8)
    assert np.abs(d - obj0.hessian_diagonal(w) - 0.4).max() <= 4e-16 * (np.abs(d).max() + 1)


def test_masked_weights_have_zero_diagonal():
    net = testing.random_network(4, n_hidden_layers=2, mask_prob=1.0, max_units=4)
    rng = np.random.default_rng(4)
    w = net.init_weights(seed=4) + 0.3 * rng.standard_normal(net.n_weights)
    X = rng.standard_normal((6, net.n_inputs))
    obj = sopt.Objective(net, X, rng.standard_normal((6, net.n_outputs)))
    d = obj.hessian_diagonal(w)
    idx = [s.start + i for layer in net.layers
           for s, m in zip(layer.weight_slices, layer.masks) if m is not None
           for i in np.flatnonzero(m.ravel() == 0)]
    assert len(idx) > 0
    assert np.all(d[idx] == 0.0)
