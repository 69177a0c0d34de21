"""sopt.hessian: the exact Hessian of Objective on random feed-forward DAGs, for every
output-activation x loss pairing.

Checks: the structured second-order adjoint (algorithm="structured") against
batched R-propagation (algorithm="rop"), against the mixed Hessian (central
differences of the backprop gradient) and the four-point Hessian (second
differences of E), against hvp on the unit vectors; symmetry; hvp == H v;
masked weights; chunking; relu; weight decay; a hand-computable linear case.

Tolerances
----------
EXACT_RTOL = 1e-12 (norm-wise relative): two exact algorithms that sum the
    same O(N W) terms in a different order differ by round-off only, a few
    ulps (2.2e-16) per operation times a modest growth factor; observed
    ~1e-16. A missing or wrong term gives errors >= 1e-3.
MIXED_TOL = 1e-8 (max-abs error / scale, scale = max(max|H|, max|g|)):
    central differences of the gradient with h ~ macheps^(1/3) max(1,|w_i|)
    ~ 6e-6 have truncation h^2 |g'''| / 6 ~ 1e-11 |g'''| and round-off
    macheps |g| / h ~ 4e-11 |g|, so ~1e-10 of the scale; observed <= 1.2e-10.
FD_TOL = 1e-6 (max-abs error / scale, scale = max(max|H|, |E|)): the
    four-point formula with h ~ macheps^(1/4) ~ 1.2e-4 has truncation
    h^2 |E''''| / 3 ~ 5e-9 |E''''| and round-off ~ macheps |E| / h^2
    ~ 1.5e-8 |E|; so ~1e-8 of the scale; observed <= 3.1e-8 with the
    moderate weights used here (W <= 24).
"""
from __future__ import annotations

import numpy as np
import pytest

import sopt
from sopt import testing

from helpers import ARCTAN_TRIPLE as ARCTAN, SWISH, UNIT_CAUCHY, make_targets
from sopt.testing import rel_err

EXACT_RTOL = 1e-12
MIXED_TOL = 1e-8
FD_TOL = 1e-6
SYM_TOL = 1e-13
N_PATTERNS = 6
ALPHA = 0.3


# ------------------------------------------------------------ user-defined
# a user triple that happens to be the logistic: with binary_ce it is NOT
# recognised as the canonical pair, so the general chain rule is exercised
USER_LOGISTIC = (lambda a: 0.5 * (1 + np.tanh(0.5 * a)),
                 lambda a: 0.25 / np.cosh(0.5 * a) ** 2,
                 lambda a: -0.25 * np.tanh(0.5 * a) / np.cosh(0.5 * a) ** 2)

# a user Activation that only borrows the name "identity" (it is arctan):
# must not be taken for the canonical sse + identity pair
FAKE_IDENTITY = sopt.Activation(*ARCTAN, name="identity")

SMOOTH = ("tanh", "logistic", "softplus", "identity")
USER_HIDDEN = (ARCTAN, SWISH, "tanh")


# ------------------------------------------------------------ cases
# id -> (output activation, loss, K (None: random), target kind, hidden set)
CASES = {
    "identity-sse": ("identity", "sse", None, "gauss", SMOOTH),
    "logistic-binary_ce-K1": ("logistic", "binary_ce", 1, "unit1d", SMOOTH),
    "logistic-binary_ce-K3": ("logistic", "binary_ce", 3, "unit", SMOOTH),
    "softmax-softmax_ce": ("softmax", "softmax_ce", 3, "onehot", SMOOTH),
    "softmax-softmax_ce-labels": ("softmax", "softmax_ce", 3, "labels", SMOOTH),
    "softmax-softmax_ce-soft": ("softmax", "softmax_ce", 2, "prob", SMOOTH),
    "logistic-sse": ("logistic", "sse", None, "unit", SMOOTH),
    "softmax-sse": ("softmax", "sse", 3, "gauss", SMOOTH),
    "softmax-binary_ce": ("softmax", "binary_ce", 3, "unit", SMOOTH),
    "identity-cauchy": ("identity", UNIT_CAUCHY, None, "gauss2", SMOOTH),
    "arctan_out-sse": (ARCTAN, "sse", 2, "gauss", SMOOTH),
    "user_logistic_out-binary_ce": (USER_LOGISTIC, "binary_ce", 2, "unit", SMOOTH),
    "named_identity_out-sse": (FAKE_IDENTITY, "sse", 2, "gauss", SMOOTH),
    "identity-sse-user_hidden": ("identity", "sse", 2, "gauss", USER_HIDDEN),
}
LAYERS = (1, 2, 3)             # hidden layers
PARAMS = [pytest.param(c, L, id=f"{c}-L{L}") for c in CASES for L in LAYERS]
MAX_W = 40                      # small dense matrices
FD_MAX_W = 24                   # keeps the O(W^3) four-point Hessian cheap


def random_dag(case, L, max_w=MAX_W):
    """The first random DAG (seeded from the case and L, so reproducible)
    with L hidden layers of at most 3 units and W <= max_w; skip edges and
    masks each with probability 1/2."""
    out, loss, K, kind, hidden = CASES[case]
    base = 1000 * list(CASES).index(case) + 100 * L
    for seed in range(base, base + 100):
        net = testing.random_network(seed, n_hidden_layers=L, max_units=3,
                                     n_outputs=K, output=out, hidden=hidden,
                                     skip_prob=0.5, mask_prob=0.5)
        if net.n_weights <= max_w:
            return net, seed
    raise AssertionError("no small network")


def build(case, L, alpha=ALPHA, chunk_size=None, n=N_PATTERNS, max_w=MAX_W):
    """(net, obj, w) for a case with L hidden layers; moderate weights
    (fan-in scaled plus N(0, 0.3^2) on every entry, biases and masked ones
    included), N(0, 1) inputs."""
    out, loss, K, kind, hidden = CASES[case]
    net, seed = random_dag(case, L, max_w)
    rng = np.random.default_rng(seed)
    w = net.init_weights(seed=seed) + 0.3 * rng.standard_normal(net.n_weights)
    X = rng.standard_normal((n, net.n_inputs))
    T = make_targets(rng, n, net.n_outputs, kind)
    obj = sopt.Objective(net, X, T, loss=loss, alpha=alpha, chunk_size=chunk_size)
    return net, obj, w


def masked_indices(net):
    """Indices in w of masked-out connections."""
    idx = []
    for layer in net.layers:
        for s, m in zip(layer.weight_slices, layer.masks):
            if m is not None:
                idx.extend(s.start + np.flatnonzero(m.ravel() == 0))
    return np.array(idx, dtype=int)


# ------------------------------------------------------------ test of the tests
def test_cases_cover_the_topologies_and_the_user_parts():
    """The generated networks really have skip edges, masks with zeros,
    1-3 hidden layers and every hidden activation; the user loss and
    activation have correct derivatives (else comparisons prove little)."""
    skips = masks = 0
    acts = set()
    for case in CASES:
        for L in LAYERS:
            net, obj, w = build(case, L)
            assert len(net.layers) == L + 1
            skips += any(len(layer.sources) > 1 for layer in net.layers)
            masks += len(masked_indices(net)) > 0
            acts |= {layer.activation.name for layer in net.layers[:-1]}
            assert net.n_weights <= 40
    assert skips >= 10 and masks >= 10, (skips, masks)
    # both output paths are exercised: the canonical pairs (delta = y - t)
    # and the general chain rule for everything else
    canonical = {c for c in CASES if build(c, 1)[1].output_loss.canonical}
    assert canonical == {"identity-sse", "logistic-binary_ce-K1",
                         "logistic-binary_ce-K3", "softmax-softmax_ce",
                         "softmax-softmax_ce-labels", "softmax-softmax_ce-soft",
                         "identity-sse-user_hidden"}, canonical
    assert set(SMOOTH) | {"swish", "custom"} <= acts, acts
    # derivative checks of the user-defined parts (central differences, ~1e-10)
    rng = np.random.default_rng(0)
    y, T = rng.standard_normal((5, 2)), 2 * rng.standard_normal((5, 2))
    errs = testing.check_loss(UNIT_CAUCHY, y, T)
    assert errs["grad"] < 1e-8 and errs["hess"] < 1e-8, errs
    for act in (ARCTAN, SWISH, USER_LOGISTIC):
        errs = testing.check_activation(act)
        assert errs["dh"] < 1e-8 and errs["d2h"] < 1e-8, errs


def test_cauchy_case_has_indefinite_output_curvature():
    """The robust loss is exercised where its curvature is negative."""
    net, obj, w = build("identity-cauchy", 2)
    r = net.forward(w, obj.X) - obj.T
    assert (np.abs(r) > 1).any() and (np.abs(r) < 1).any()


# ------------------------------------------------------------ comparisons
@pytest.mark.parametrize("case, L", PARAMS)
def test_structured_equals_rop(case, L):
    net, obj, w = build(case, L)
    H = obj.hessian(w)
    Hr = obj.hessian(w, algorithm="rop")
    assert H.shape == (net.n_weights,) * 2
    assert rel_err(H, Hr) < EXACT_RTOL          # round-off only
    assert np.abs(H).max() > 1e-2               # not vacuous


@pytest.mark.parametrize("case, L", PARAMS)
def test_exact_equals_mixed_hessian(case, L):
    net, obj, w = build(case, L)
    H = obj.hessian(w)
    Hm = obj.hessian(w, algorithm="mixed")
    scale = max(np.abs(H).max(), np.abs(obj.gradient(w)).max())
    # O(h^2) truncation + macheps |g| / h round-off ~ 1e-10 of scale
    assert np.abs(H - Hm).max() <= MIXED_TOL * scale


# slow (W^2 values of E per case): test_exact_equals_mixed_hessian checks
# every case fast against central differences of the gradient, itself
# checked against central differences of E in test_derivatives.py
@pytest.mark.slow
@pytest.mark.parametrize("case, L", PARAMS)
def test_exact_equals_four_point_hessian(case, L):
    net, obj, w = build(case, L, max_w=FD_MAX_W)   # O(W^3) reference: small W
    H = obj.hessian(w)
    Hf = obj.hessian(w, algorithm="fd")
    scale = max(np.abs(H).max(), abs(obj.value(w)))
    # truncation h^2 E''''/3 and round-off macheps |E| / h^2, each ~1e-8
    assert np.abs(H - Hf).max() <= FD_TOL * scale


@pytest.mark.parametrize("case, L", PARAMS)
def test_hvp_on_unit_vectors_symmetry_and_products(case, L):
    net, obj, w = build(case, L)
    W = net.n_weights
    H = obj.hessian(w)
    # every column by R-propagation: exact, round-off only
    assert rel_err(obj.hvp(w, np.eye(W)), H) < EXACT_RTOL
    cols = np.column_stack([obj.hvp(w, e) for e in np.eye(W)[:3]])
    assert rel_err(cols, H[:, :3]) < EXACT_RTOL
    # symmetric to round-off
    assert np.abs(H - H.T).max() <= SYM_TOL * np.abs(H).max()
    rng = np.random.default_rng(L)
    v = rng.standard_normal(W)
    Hv = obj.hvp(w, v)
    assert Hv.shape == (W,)
    assert rel_err(Hv, H @ v) < EXACT_RTOL
    V = rng.standard_normal((W, 4))
    HV = obj.hvp(w, V)
    assert HV.shape == (W, 4)
    assert rel_err(HV, H @ V) < EXACT_RTOL
    assert rel_err(obj.hvp(w, V[:, :1]), H @ V[:, :1]) < EXACT_RTOL
    # scipy callables
    assert rel_err(obj.hessp(w, v), Hv) < EXACT_RTOL
    np.testing.assert_array_equal(obj.hess(w), H)


@pytest.mark.parametrize("case", list(CASES))
def test_masked_weights_have_zero_hessian_rows(case):
    # first seed (1-3 hidden layers) whose network masks out some weights
    for L in LAYERS:
        net, obj0, w = build(case, L, alpha=0.0)
        idx = masked_indices(net)
        if len(idx):
            break
    assert len(idx), "no masked weight in any seed"
    W = net.n_weights
    rng = np.random.default_rng(5)
    V = rng.standard_normal((W, 3))
    for algorithm in ("structured", "rop"):
        H = obj0.hessian(w, algorithm=algorithm)
        assert np.all(H[idx, :] == 0.0) and np.all(H[:, idx] == 0.0)
    assert np.all(obj0.hvp(w, V)[idx] == 0.0)
    # weight decay alpha/2 |w|^2 runs over the weights in use only, so the
    # rows of masked entries stay exactly zero with alpha > 0 too
    _, obj, _ = build(case, L, alpha=ALPHA)
    H = obj.hessian(w)
    assert np.all(H[idx, :] == 0.0) and np.all(H[:, idx] == 0.0)
    assert np.all(obj.hvp(w, V)[idx] == 0.0)


@pytest.mark.parametrize("case, L", PARAMS)
def test_chunked_objective_gives_the_same_second_derivatives(case, L):
    net, obj, w = build(case, L, n=7)
    _, objc, _ = build(case, L, n=7, chunk_size=2)     # chunks 2, 2, 2, 1
    np.testing.assert_array_equal(objc.X, obj.X)
    H = obj.hessian(w)
    assert rel_err(objc.hessian(w), H) < EXACT_RTOL
    assert rel_err(objc.hessian(w, algorithm="rop"), H) < EXACT_RTOL
    rng = np.random.default_rng(L)
    v = rng.standard_normal(net.n_weights)
    V = rng.standard_normal((net.n_weights, 3))
    assert rel_err(objc.hvp(w, v), H @ v) < EXACT_RTOL
    assert rel_err(objc.hvp(w, V), H @ V) < EXACT_RTOL


@pytest.mark.parametrize("algorithm", ["structured", "rop"])
def test_exact_hessian_propagates_chunk_size_patterns_at_a_time(algorithm, monkeypatch):
    """Objective(chunk_size=2) bounds the work arrays of both algorithms at
    O(2 units): no forward pass over more than 2 patterns."""
    net, obj, w = build("identity-sse", 3, n=7, chunk_size=2)
    sizes = []
    propagate = type(net).propagate

    def recording(self, w, X, **kwargs):
        sizes.append(len(X))
        return propagate(self, w, X, **kwargs)
    monkeypatch.setattr(type(net), "propagate", recording)
    obj.hessian(w, algorithm=algorithm)
    assert sizes == [2, 2, 2, 1]


def test_gradient_and_hvps_at_one_w_share_one_backward_pass(monkeypatch):
    """The Objective keeps the backward pass with its cached forward pass:
    a gradient and any number of hvps at the same w run it once, and a new
    w runs it again. The products are the same as without the cache."""
    net, obj, w = build("identity-sse", 3, n=7)
    V = np.random.default_rng(5).standard_normal((net.n_weights, 2))
    fresh = sopt.Objective(net, obj.X, obj.T, loss=obj.loss, alpha=obj.alpha)
    g_ref, h_ref = fresh.gradient(w), fresh.hvp(w, V)
    calls = []
    backward = type(net).backward

    def counting(self, *args, **kwargs):
        calls.append(1)
        return backward(self, *args, **kwargs)
    monkeypatch.setattr(type(net), "backward", counting)
    g = obj.gradient(w)
    products = [obj.hvp(w, V) for _ in range(3)]
    assert len(calls) == 1
    np.testing.assert_array_equal(g, g_ref)
    for HV in products:
        np.testing.assert_array_equal(HV, h_ref)
    obj.hvp(w + 1e-3, V)
    assert len(calls) == 2


@pytest.mark.parametrize("case", ["identity-sse", "softmax-softmax_ce",
                                  "logistic-sse", "identity-cauchy"])
def test_internal_chunking_and_rop_blocks(case, monkeypatch):
    """Shrinking sopt.hessian.CHUNK_DOUBLES forces the structured algorithm
    to chunk patterns, "rop" to use many direction blocks and hvp to chunk:
    same results to round-off."""
    net, obj, w = build(case, 3, n=9)
    H = obj.hessian(w)
    Hr = obj.hessian(w, algorithm="rop")
    V = np.random.default_rng(1).standard_normal((net.n_weights, 5))
    HV = obj.hvp(w, V)
    import sopt.hessian as sh
    monkeypatch.setattr(sh, "CHUNK_DOUBLES", 300)
    _, obj2, _ = build(case, 3, n=9)
    assert rel_err(obj2.hessian(w), H) < EXACT_RTOL
    assert rel_err(obj2.hessian(w, algorithm="rop"), Hr) < EXACT_RTOL
    assert rel_err(obj2.hvp(w, V), HV) < EXACT_RTOL
    assert rel_err(HV, H @ V) < EXACT_RTOL


@pytest.mark.parametrize("case, L", PARAMS[::3] + PARAMS[1::6])
def test_weight_decay_adds_alpha_identity(case, L):
    net, obj0, w = build(case, L, alpha=0.0)
    _, obj, _ = build(case, L, alpha=0.7)
    W = net.n_weights
    # the decay runs over the weights in use (masked entries get none)
    D = 0.7 * np.diag(net.used_weight_mask())
    H0, H = obj0.hessian(w), obj.hessian(w)
    # alpha is added once to each diagonal entry: one rounding, <= ulp(|H|)
    tol = 2 * np.finfo(float).eps * (np.abs(H).max() + 0.7)
    assert np.abs((H - H0) - D).max() <= tol
    off = ~np.eye(W, dtype=bool)
    np.testing.assert_array_equal(H[off], H0[off])
    Hm0, Hm = obj0.hessian(w, algorithm="mixed"), obj.hessian(w, algorithm="mixed")
    # the mixed Hessian of alpha/2 |w|^2 is alpha I (exact for a quadratic)
    # up to the round-off of differencing g + alpha w: macheps |g| / h ~ 4e-11 |g|
    scale = max(1.0, np.abs(obj.gradient(w)).max())
    assert np.abs((Hm - Hm0) - D).max() <= MIXED_TOL * scale
    v = np.random.default_rng(2).standard_normal(W)
    Hv0, Hv = obj0.hvp(w, v), obj.hvp(w, v)
    # H v + alpha v: one more rounding of a number of size |Hv| + alpha |v|
    tol = 2 * np.finfo(float).eps * (np.abs(Hv).max() + 0.7 * np.abs(v).max())
    assert np.abs(Hv - Hv0 - D @ v).max() <= tol


# ------------------------------------------------------------ relu
def _relu_problem(seed, loss="sse", output="identity", K=2, margin=0.05):
    """A relu DAG and data whose relu pre-activations all stay >= margin
    from the kink, so that a finite-difference stencil (moving a
    pre-activation by ~h |z| ~ 1e-5) never crosses it."""
    for s in range(seed, seed + 500):
        net = testing.random_network(s, n_hidden_layers=1 + s % 3, max_units=3,
                                     n_outputs=K, output=output,
                                     hidden=("relu", "relu", "tanh"))
        if (net.n_weights > FD_MAX_W
                or not any(l.activation.name == "relu" for l in net.layers[:-1])):
            continue
        rng = np.random.default_rng(s)
        w = net.init_weights(seed=s) + 0.3 * rng.standard_normal(net.n_weights)
        X = rng.standard_normal((5, net.n_inputs))
        fp = net.propagate(w, X)
        ok = all(np.abs(fp.a[l + 1]).min() > margin
                 for l, layer in enumerate(net.layers[:-1])
                 if layer.activation.name == "relu")
        active = any(((fp.a[l + 1] > 0).any() and (fp.a[l + 1] < 0).any())
                     for l, layer in enumerate(net.layers[:-1])
                     if layer.activation.name == "relu")
        if ok and active:
            T = (rng.random((5, K)) if loss == "binary_ce"
                 else rng.standard_normal((5, K)))
            return net, sopt.Objective(net, X, T, loss=loss, alpha=0.1), w
    raise AssertionError("no relu problem off the kinks")


@pytest.mark.parametrize("seed, loss, output", [(0, "sse", "identity"),
                                                (40, "binary_ce", "logistic"),
                                                (80, "sse", "logistic")])
def test_relu_hidden_units(seed, loss, output):
    net, obj, w = _relu_problem(seed, loss, output)
    H = obj.hessian(w)
    assert rel_err(obj.hessian(w, algorithm="rop"), H) < EXACT_RTOL
    scale = max(np.abs(H).max(), np.abs(obj.gradient(w)).max())
    assert np.abs(obj.hessian(w, algorithm="mixed") - H).max() <= MIXED_TOL * scale
    scale = max(np.abs(H).max(), abs(obj.value(w)))
    assert np.abs(obj.hessian(w, algorithm="fd") - H).max() <= FD_TOL * scale
    V = np.random.default_rng(seed).standard_normal((net.n_weights, 2))
    assert rel_err(obj.hvp(w, V), H @ V) < EXACT_RTOL


def test_relu_single_hidden_layer_sse_hessian_by_hand():
    """One relu hidden layer, identity output, sse: h'' = 0, so the
    Hessian is J^T J plus only the bilinear cross terms between a hidden
    unit's input weights and its output weights:
    d2E/(dw1_ji dw2_kj) = sum_n (y_k - t_k) h'(a_j) x_i (and for the
    hidden bias, x_i -> 1)."""
    rng = np.random.default_rng(3)
    D, M, K, N = 2, 3, 2, 6
    net = sopt.mlp([D, M, K], hidden="relu", output="identity")
    w = rng.standard_normal(net.n_weights)
    X = rng.standard_normal((N, D))
    T = rng.standard_normal((N, K))
    obj = sopt.Objective(net, X, T)
    fp = net.propagate(w, X)
    assert np.abs(fp.a[1]).min() > 1e-3
    J = obj.net.output_sensitivities(w, obj.X).reshape(N * K, -1)
    H = J.T @ J
    r = fp.y - T                                          # (N, K)
    hp = (fp.a[1] > 0).astype(float)                      # (N, M)
    X1 = np.hstack([X, np.ones((N, 1))])
    for j in range(M):
        for i in range(D + 1):
            p = j * D + i if i < D else M * D + j         # W1 row-major, then b1
            for k in range(K):
                q = M * D + M + k * M + j                 # W2[k, j]
                c = np.sum(r[:, k] * hp[:, j] * X1[:, i])
                H[p, q] += c
                H[q, p] += c
    assert rel_err(obj.hessian(w), H) < EXACT_RTOL
    assert rel_err(obj.hessian(w, algorithm="rop"), H) < EXACT_RTOL


# ------------------------------------------------------------ special topologies
def test_hidden_layer_feeding_nothing():
    """A hidden layer whose outputs reach no unit: its weights have zero
    gradient and zero Hessian rows (alpha = 0); the rest is unaffected."""
    rng = np.random.default_rng(4)
    net = sopt.Network(n_inputs=2)
    h1 = net.add_layer(3, "tanh", inputs=[net.input])
    net.add_layer(2, "softplus", inputs=[net.input, h1])          # dead end
    net.add_layer(2, "identity", inputs=[h1, net.input], output=True)
    w = net.init_weights(seed=4) + 0.3 * rng.standard_normal(net.n_weights)
    X, T = rng.standard_normal((6, 2)), rng.standard_normal((6, 2))
    obj = sopt.Objective(net, X, T)
    H = obj.hessian(w)
    layer = net.layers[1]
    dead = np.r_[np.arange(layer.weight_slices[0].start, layer.bias_slice.stop)]
    assert np.all(H[dead] == 0) and np.all(H[:, dead] == 0)
    assert rel_err(obj.hessian(w, algorithm="rop"), H) < EXACT_RTOL
    scale = max(np.abs(H).max(), np.abs(obj.gradient(w)).max())
    assert np.abs(obj.hessian(w, algorithm="mixed") - H).max() <= MIXED_TOL * scale


def test_output_fed_by_every_earlier_node_with_masks():
    """A hand-built DAG: every layer fed by every earlier node, masks on
    several edges, mixed activations, softmax + softmax_ce."""
    rng = np.random.default_rng(6)
    net = sopt.Network(n_inputs=3)
    h1 = net.add_layer(3, "logistic", inputs=[net.input],
                       masks={net.input: [[1, 0, 1], [0, 1, 1], [1, 1, 0]]})
    h2 = net.add_layer(2, "softplus", inputs=[h1, net.input],
                       masks={h1: [[1, 1, 0], [0, 1, 1]]})
    h3 = net.add_layer(2, "tanh", inputs=[h2, h1, net.input])
    net.add_layer(3, "softmax", inputs=[h3, h2, h1, net.input],
                  masks={net.input: [[1, 0, 0], [0, 1, 0], [0, 0, 1]]},
                  output=True)
    w = net.init_weights(seed=6) + 0.3 * rng.standard_normal(net.n_weights)
    X = rng.standard_normal((6, 3))
    T = rng.integers(0, 3, 6)
    obj = sopt.Objective(net, X, T, loss="softmax_ce", alpha=0.05)
    H = obj.hessian(w)
    assert rel_err(obj.hessian(w, algorithm="rop"), H) < EXACT_RTOL
    scale = max(np.abs(H).max(), np.abs(obj.gradient(w)).max())
    assert np.abs(obj.hessian(w, algorithm="mixed") - H).max() <= MIXED_TOL * scale
    idx = masked_indices(net)
    assert len(idx) == 3 + 2 + 6
    # masked entries: no weight decay either, so zero rows and columns
    assert np.all(H[idx, :] == 0.0) and np.all(H[:, idx] == 0.0)


@pytest.mark.parametrize("full_index_limit, rows", [(10**6, 256), (10**6, 3), (0, 256), (0, 3)])
def test_blocks_go_into_h_by_full_index_or_by_rows_alike(full_index_limit, rows,
                                                         monkeypatch):
    """The accumulated blocks enter H through one kept (W, W) index (small
    networks) or block by block in groups of rows (larger ones): each way
    forced on a masked DAG with cross blocks in both directions, against
    R-propagation; masked weights keep zero rows and columns."""
    monkeypatch.setattr(sopt.hessian, "FULL_INDEX_MAX_WEIGHTS", full_index_limit)
    monkeypatch.setattr(sopt.hessian, "SCATTER_ROWS", rows)
    rng = np.random.default_rng(12)
    net = sopt.Network(n_inputs=4)
    h1 = net.add_layer(3, "tanh", inputs=[net.input],
                       masks={net.input: [[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 1]]})
    net.add_layer(2, "identity", inputs=[h1, net.input],
                  masks={h1: [[1, 1, 0], [0, 1, 1]]}, output=True)
    w = net.init_weights(seed=3) + 0.3 * rng.standard_normal(net.n_weights)
    X = rng.standard_normal((9, 4))
    obj = sopt.Objective(net, X, rng.standard_normal((9, 2)), loss="sse")
    H = obj.hessian(w)
    assert rel_err(obj.hessian(w, algorithm="rop"), H) < EXACT_RTOL
    idx = masked_indices(net)
    assert len(idx) == 4 + 2
    assert np.all(H[idx, :] == 0.0) and np.all(H[:, idx] == 0.0)


def test_the_kept_layout_is_shared_and_goes_with_its_network():
    """The exact Hessian's index arrays are built once per network (a second
    objective on the same network reuses them, read-only) and are dropped
    with the network, so that hidden="auto"'s candidates leave nothing
    behind."""
    import gc
    import weakref
    from sopt.hessian import _LAYOUTS, _BlockLayout
    net = sopt.mlp([3, 4, 2], hidden="tanh")
    rng = np.random.default_rng(0)
    X, T = rng.standard_normal((10, 3)), rng.standard_normal((10, 2))
    sopt.Objective(net, X, T).hessian(net.init_weights(seed=0))
    layout = _BlockLayout.of(net)
    sopt.Objective(net, X[:5], T[:5]).hessian(net.init_weights(seed=1))
    assert _BlockLayout.of(net) is layout
    assert not layout.full_index().flags.writeable
    net_alive, layout_alive = weakref.ref(net), weakref.ref(layout)
    assert any(kept is layout for kept in _LAYOUTS.values())
    del net, layout
    gc.collect()
    assert net_alive() is None and layout_alive() is None


@pytest.mark.parametrize("unit_pairs_limit", [0, 36, 10**6])
def test_layer_blocks_by_unit_and_by_pairs_agree(unit_pairs_limit, monkeypatch):
    """The layer blocks are summed either over gathered (unit, input) pairs
    or by one product per unit, by the layer sizes: a 9-unit layer (45 unit
    pairs) and 2-unit layers, cross blocks with fewer and more unit pairs
    than inputs, and masks; each way forced for the diagonal blocks against
    R-propagation."""
    monkeypatch.setattr(sopt.hessian, "DIRECT_MAX_UNIT_PAIRS", unit_pairs_limit)
    rng = np.random.default_rng(11)
    net = sopt.Network(n_inputs=7)
    wide = net.add_layer(9, "tanh", inputs=[net.input])
    narrow = net.add_layer(2, "logistic", inputs=[wide, net.input],
                           masks={net.input: np.eye(2, 7)})
    net.add_layer(3, "softmax", inputs=[narrow, wide, net.input], output=True)
    w = net.init_weights(seed=2) + 0.3 * rng.standard_normal(net.n_weights)
    X = rng.standard_normal((13, 7))
    obj = sopt.Objective(net, X, rng.integers(0, 3, 13), loss="softmax_ce")
    H = obj.hessian(w)
    assert rel_err(obj.hessian(w, algorithm="rop"), H) < EXACT_RTOL
    assert rel_err(obj.hessian(w, "gauss_newton"),
                   obj.hessian(w, "gauss_newton", algorithm="rop")) < EXACT_RTOL



# ------------------------------------------------------------ by hand
@pytest.mark.parametrize("K", [1, 3])
def test_linear_model_sse_hessian_by_hand(K):
    """No hidden layer, identity output, sse: E = 1/2 sum_n |W x_n + b - t_n|^2
    so d2E/(dW_kf dW_k'f') = delta_kk' sum_n x1_nf x1_nf' with x1 = [x, 1],
    i.e. X1^T X1 in every output's own block, in the layout (W row-major,
    then b), plus alpha I; independent of w and T."""
    rng = np.random.default_rng(7 + K)
    D, N, alpha = 4, 9, 0.25
    net = sopt.Network(n_inputs=D)
    net.add_layer(K, "identity", inputs=[net.input], output=True)
    assert net.n_weights == K * D + K
    X = rng.standard_normal((N, D))
    T = rng.standard_normal((N, K))
    w = rng.standard_normal(net.n_weights)
    X1 = np.hstack([X, np.ones((N, 1))])
    G = X1.T @ X1                                          # (D+1, D+1)
    # position of (output k, input f) in w; f = D is the bias
    pos = lambda k, f: k * D + f if f < D else K * D + k
    H_expected = alpha * np.eye(net.n_weights)
    for k in range(K):
        for f in range(D + 1):
            for f2 in range(D + 1):
                H_expected[pos(k, f), pos(k, f2)] += G[f, f2]
    if K == 1:      # then the layout is exactly [W, b] = X1's column order
        np.testing.assert_allclose(H_expected, G + alpha * np.eye(D + 1),
                                   rtol=0, atol=0)
    obj = sopt.Objective(net, X, T, loss="sse", alpha=alpha)
    # same sums in another order: round-off only
    for H in (obj.hessian(w), obj.hessian(w, algorithm="rop"),
              obj.hvp(w, np.eye(net.n_weights)),
              obj.hessian(w, kind="gauss_newton")):
        assert rel_err(H, H_expected) < EXACT_RTOL
    # zero rows/cols between different outputs: exactly zero
    H = obj.hessian(w)
    if K > 1:
        assert H[pos(0, 0), pos(1, 0)] == 0.0 and H[pos(0, D), pos(2, D)] == 0.0
    # the four-point Hessian of a quadratic has no truncation error:
    # round-off macheps |E| / h^2 only (~1e-8 |E|)
    scale = max(np.abs(H).max(), obj.value(w))
    assert np.abs(obj.hessian(w, algorithm="fd") - H_expected).max() <= FD_TOL * scale


def test_loss_without_hess_is_refused_clearly():
    """A (value, grad) loss has no d2E/dy2: every second-derivative path says
    so with a ValueError naming the loss, not a crash deep inside."""
    net = testing.random_network(3, n_hidden_layers=1, n_outputs=2)
    rng = np.random.default_rng(3)
    loss = (lambda y, T: ((y - T) ** 2).sum(axis=1), lambda y, T: 2 * (y - T))
    obj = sopt.Objective(net, rng.standard_normal((4, net.n_inputs)),
                         rng.standard_normal((4, 2)), loss=loss)
    w = net.init_weights(seed=3)
    W = net.n_weights
    for call in (lambda: obj.hessian(w), lambda: obj.hessian(w, algorithm="rop"),
                 lambda: obj.hvp(w, np.ones(W)),
                 lambda: obj.hessian(w, kind="gauss_newton"),
                 lambda: obj.gnvp(w, np.ones(W)), lambda: obj.hessian_diagonal(w)):
        with pytest.raises(ValueError, match="loss"):
            call()
    # first derivatives still work and the mixed Hessian needs only those:
    # it equals the exact Hessian of the same E with hess = 2 I (~1e-10)
    Hm = obj.hessian(w, algorithm="mixed")
    obj2 = sopt.Objective(net, obj.X, obj.T,
                          loss=loss + (lambda y, T: 2 * np.broadcast_to(
                              np.eye(2), y.shape + (2,)).copy(),))
    H = obj2.hessian(w)
    scale = max(np.abs(H).max(), np.abs(obj.gradient(w)).max())
    assert np.abs(Hm - H).max() <= MIXED_TOL * scale


@pytest.mark.parametrize("bad, exc", [("bogus", ValueError), (None, TypeError),
                                      ("diagonal", ValueError)])
def test_curvature_matrix_refuses_an_unknown_kind(bad, exc):
    from sopt.hessian import curvature_matrix
    net, obj, w = build("identity-sse", 1)
    with pytest.raises(exc, match="kind"):
        curvature_matrix(net, obj.at(w).batches(), kind=bad)


@pytest.mark.parametrize("bad, exc", [("bogus", ValueError), (None, TypeError)])
def test_unknown_kind_or_algorithm(bad, exc):
    net, obj, w = build("identity-sse", 1)
    with pytest.raises(exc, match="kind"):
        obj.hessian(w, kind=bad)
    with pytest.raises(exc, match="algorithm"):
        obj.hessian(w, algorithm=bad)


@pytest.mark.parametrize("kind, algorithm", [
    ("gauss_newton", "fd"), ("gauss_newton", "mixed"), ("diagonal", "rop"),
    ("diagonal", "fd"), ("diagonal", "mixed")])
def test_a_kind_without_that_algorithm_is_refused(kind, algorithm):
    """Differences of E give the exact Hessian only, and the diagonal
    approximation has its own backward pass: no silent substitute."""
    net, obj, w = build("identity-sse", 1)
    with pytest.raises(ValueError, match=f"algorithm: {algorithm!r}|not {algorithm!r}"):
        obj.hessian(w, kind=kind, algorithm=algorithm)
    with pytest.raises(ValueError, match="algorithm"):
        obj.at(w).curvature("exact", algorithm="fd")    # an evaluation: its passes only
