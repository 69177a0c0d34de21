"""sopt.hessian and sopt.derivatives: the Gauss-Newton (outer-product)
matrix G = sum_n J_n^T M_n J_n, its products, and the scipy LinearOperators
of G and H.

J_n = d a_out / dw comes from Network.output_sensitivities (itself checked
here once against central differences), and M_n, the generalised
Gauss-Newton curvature of the outputs, is written out independently in each
test from its textbook formula.

Tolerances
----------
EXACT_RTOL = 1e-12 (norm-wise relative): G against J^T M J built in the test,
    gnvp against G v, exact H against G at zero residual: the same sums in
    a different order, round-off only (observed ~1e-16).
PSD_TOL = 1e-12: the smallest eigenvalue of a PSD matrix computed in
    floating point is >= -O(W macheps) max|lambda| ~ -1e-14 max|lambda|.
FD_RTOL = 1e-8 for J against central differences (h ~ 6e-6): truncation
    h^2 |a'''| / 6 ~ 1e-11 and round-off macheps |a| / h ~ 4e-11.
EIG_RTOL = 1e-9: ARPACK (eigsh, tol=0 means machine precision) converges the
    extreme Ritz value to ~macheps |lambda|_max; 1e-9 leaves wide headroom.
CG_RTOL: cg stops at |r| <= 1e-12 |b|, so |x - x*| / |x*| <= cond * 1e-12;
    cond <= 1e3 here (checked), hence 1e-8 is safe.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.linalg import LinearOperator, cg, eigsh

import sopt
from sopt import finite_diff, testing

from helpers import UNIT_CAUCHY, diag_matrices, make_targets
from sopt.testing import rel_err

EXACT_RTOL = 1e-12
PSD_TOL = 1e-12
FD_RTOL = 1e-8
EIG_RTOL = 1e-9
N_PATTERNS = 7


def _softmax_jac(y):
    """dy/da = diag(y) - y y^T, (N, K, K)."""
    return diag_matrices(y) - y[:, :, None] * y[:, None, :]


# Output Gauss-Newton curvatures M_n (N, K, K) from (a, y, T), written out
# from their definitions: J_y^T (d2E/dy2) J_y with J_y = dy/da.
def _M_sse_identity(a, y, T):
    return diag_matrices(np.ones_like(y))


def _M_logistic_bce(a, y, T):
    return diag_matrices(y * (1 - y))


def _M_softmax_ce(a, y, T):
    return T.sum(axis=1)[:, None, None] * _softmax_jac(y)


def _M_logistic_sse(a, y, T):
    return diag_matrices((y * (1 - y)) ** 2)                   # h'(a)^2


def _M_softmax_sse(a, y, T):
    J = _softmax_jac(y)
    return J @ J                                        # J symmetric, L = I


def _M_softmax_bce(a, y, T):
    J = _softmax_jac(y)
    return J @ diag_matrices(T / y**2 + (1 - T) / (1 - y) ** 2) @ J


def _M_cauchy(a, y, T):
    r2 = (y - T) ** 2
    return diag_matrices(2 * (1 - r2) / (1 + r2) ** 2)


# id -> (output, loss, K, target kind, M, PSD expected)
CASES = {
    "identity-sse": ("identity", "sse", 2, "gauss", _M_sse_identity, True),
    "identity-sse-K1": ("identity", "sse", 1, "gauss", _M_sse_identity, True),
    "logistic-binary_ce": ("logistic", "binary_ce", 1, "unit", _M_logistic_bce, True),
    "logistic-binary_ce-K3": ("logistic", "binary_ce", 3, "unit", _M_logistic_bce, True),
    "softmax-softmax_ce": ("softmax", "softmax_ce", 3, "onehot", _M_softmax_ce, True),
    "softmax-softmax_ce-soft": ("softmax", "softmax_ce", 3, "prob", _M_softmax_ce, True),
    "logistic-sse": ("logistic", "sse", 2, "unit", _M_logistic_sse, True),
    "softmax-sse": ("softmax", "sse", 3, "gauss", _M_softmax_sse, True),
    "softmax-binary_ce": ("softmax", "binary_ce", 3, "unit", _M_softmax_bce, True),
    "identity-cauchy": ("identity", UNIT_CAUCHY, 2, "gauss2", _M_cauchy, False),
}
BUILTIN = [c for c, v in CASES.items() if v[5]]


def build(case, seed, alpha=0.0, chunk_size=None, T=None, n=N_PATTERNS):
    out, loss, K, kind, _, _ = CASES[case]
    net = testing.random_network(seed, n_hidden_layers=1 + seed % 3, max_units=4,
                                 n_outputs=K, output=out, mask_prob=0.4)
    rng = np.random.default_rng(seed)
    w = net.init_weights(seed=seed) + 0.3 * rng.standard_normal(net.n_weights)
    X = rng.standard_normal((n, net.n_inputs))
    if T is None:
        T = make_targets(rng, n, K, kind)
    elif callable(T):
        T = T(net, w, X)
    obj = sopt.Objective(net, X, T, loss=loss, alpha=alpha, chunk_size=chunk_size)
    return net, obj, w


def reference_gn(obj, w, M_fun):
    """sum_n J_n^T M_n J_n with J_n from output_sensitivities, M_n as given."""
    fp = obj.net.propagate(w, obj.X)
    J = obj.net.output_sensitivities(w, obj.X)                        # (N, K, W)
    M = M_fun(fp.a[-1], fp.y, obj.T)
    return np.einsum("nkw,nkl,nlv->wv", J, M, J)


SEEDS = (1, 2, 3)        # 2, 3, 1 hidden layers
PARAMS = [pytest.param(c, s, id=f"{c}-{s}") for c in CASES for s in SEEDS]


# ------------------------------------------------------------------ formula
def test_output_sensitivities_match_central_differences():
    """The reference J used below is right: d a_out/dw by differences."""
    for case in ("softmax-softmax_ce", "logistic-sse", "identity-sse"):
        net, obj, w = build(case, 2)
        J = obj.net.output_sensitivities(w, obj.X)
        Jfd = finite_diff.jacobian(lambda v: net.propagate(v, obj.X).a[-1], w)
        assert Jfd.shape == J.shape
        assert rel_err(J, Jfd) < FD_RTOL


@pytest.mark.parametrize("case, seed", PARAMS)
def test_gauss_newton_equals_jt_m_j(case, seed):
    net, obj, w = build(case, seed)
    G = obj.hessian(w, kind="gauss_newton")
    assert G.shape == (net.n_weights,) * 2
    reference = reference_gn(obj, w, CASES[case][4])
    assert rel_err(G, reference) < EXACT_RTOL
    assert np.abs(G - G.T).max() <= 1e-13 * np.abs(G).max()
    # by R-propagation (Gauss-Newton-vector products along every unit direction)
    G_rop = obj.hessian(w, kind="gauss_newton", algorithm="rop")
    assert rel_err(G_rop, reference) < EXACT_RTOL


@pytest.mark.parametrize("seed", SEEDS)
def test_sse_gauss_newton_is_jt_j_plus_alpha(seed):
    """PRML eq. 5.84: G = J^T J with J the (N K, W) matrix of d y/dw."""
    net, obj, w = build("identity-sse", seed, alpha=0.4)
    J = obj.net.output_sensitivities(w, obj.X).reshape(-1, net.n_weights)
    G = obj.hessian(w, kind="gauss_newton")
    # the decay covers the weights in use (masked entries get none)
    assert rel_err(G, J.T @ J + 0.4 * np.diag(net.used_weight_mask())) < EXACT_RTOL
    # output_sensitivities(of="y") is the same J for identity outputs
    Jy = obj.net.output_sensitivities(w, obj.X, of="y").reshape(-1, net.n_weights)
    np.testing.assert_allclose(Jy, J, rtol=0, atol=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_ce_gauss_newton_is_jt_diag_y1my_j(seed):
    net, obj, w = build("logistic-binary_ce", seed)
    J = obj.net.output_sensitivities(w, obj.X)[:, 0, :]                # (N, W), K = 1
    y = net.forward(w, obj.X)[:, 0]
    G = obj.hessian(w, kind="gauss_newton")
    assert rel_err(G, J.T @ np.diag(y * (1 - y)) @ J) < EXACT_RTOL


@pytest.mark.parametrize("seed", SEEDS)
def test_softmax_ce_gauss_newton_is_jt_diag_y_minus_yyt_j(seed):
    net, obj, w = build("softmax-softmax_ce", seed)
    J = obj.net.output_sensitivities(w, obj.X)                         # (N, K, W)
    y = net.forward(w, obj.X)
    G_ref = sum(J[n].T @ (np.diag(y[n]) - np.outer(y[n], y[n])) @ J[n]
                for n in range(len(y)))
    assert rel_err(obj.hessian(w, kind="gauss_newton"), G_ref) < EXACT_RTOL


@pytest.mark.parametrize("seed", SEEDS)
def test_logistic_sse_generalised_gauss_newton(seed):
    """Non-canonical sse on logistic outputs: G = sum_n sum_k h'(a_k)^2 b b^T,
    b = d a_k/dw (not J^T J with J = dy/dw and not the exact Hessian)."""
    net, obj, w = build("logistic-sse", seed)
    B = obj.net.output_sensitivities(w, obj.X)                         # d a/dw
    a = net.propagate(w, obj.X).a[-1]
    hp = np.exp(-a) / (1 + np.exp(-a)) ** 2                 # logistic'(a)
    G_ref = np.zeros((net.n_weights,) * 2)
    for n in range(B.shape[0]):
        for k in range(B.shape[1]):
            G_ref += hp[n, k] ** 2 * np.outer(B[n, k], B[n, k])
    G = obj.hessian(w, kind="gauss_newton")
    assert rel_err(G, G_ref) < EXACT_RTOL
    # the same as J_y^T J_y with J_y = dy/dw
    Jy = obj.net.output_sensitivities(w, obj.X, of="y").reshape(-1, net.n_weights)
    assert rel_err(G, Jy.T @ Jy) < EXACT_RTOL
    # and it is an approximation: away from zero residual it is not H
    assert rel_err(G, obj.hessian(w)) > 1e-3


@pytest.mark.parametrize("case", BUILTIN)
def test_gauss_newton_is_psd_for_builtin_losses(case):
    for seed in SEEDS:
        net, obj, w = build(case, seed)
        lam = np.linalg.eigvalsh(obj.hessian(w, kind="gauss_newton"))
        assert lam[0] >= -PSD_TOL * lam[-1]
        assert lam[-1] > 1e-3


def test_psd_is_not_a_tautology():
    """The exact Hessians of the same problems are indefinite (so PSD of G
    is a property of the approximation, not of the problems)."""
    n_indefinite = 0
    for case in BUILTIN:
        for seed in SEEDS:
            _, obj, w = build(case, seed)
            lam = np.linalg.eigvalsh(obj.hessian(w))
            n_indefinite += lam[0] < -1e-3 * lam[-1]
    assert n_indefinite >= len(BUILTIN)


def test_cauchy_gauss_newton_is_indefinite_and_still_jt_m_j():
    net, obj, w = build("identity-cauchy", 1)
    G = obj.hessian(w, kind="gauss_newton")
    lam = np.linalg.eigvalsh(G)
    assert lam[0] < -1e-3 * lam[-1]            # the robust loss's curvature < 0


# ------------------------------------------------------------------ zero residual
def _zero_residual(net, w, X):
    return net.forward(w, X)


@pytest.mark.parametrize("case", ["identity-sse", "identity-sse-K1", "logistic-sse",
                                  "softmax-sse", "identity-cauchy",
                                  "logistic-binary_ce-K3", "softmax-softmax_ce-soft"])
@pytest.mark.parametrize("seed", SEEDS)
def test_gauss_newton_equals_exact_hessian_at_zero_residual(case, seed):
    """T = y(w): dE/dy = 0 at every output, so every term of H except
    J^T M J vanishes (PRML sec. 5.4.2); the output curvature is exactly the
    Gauss-Newton one there (sse: h'^2, Cauchy: 2, cross-entropies: the
    canonical curvature)."""
    net, obj, w = build(case, seed, alpha=0.2, T=_zero_residual)
    w_used = net.used_weight_mask() * w       # the decay skips masked entries
    assert np.abs(obj.gradient(w) - 0.2 * w_used).max() <= 1e-14 * np.abs(w).max()
    G = obj.hessian(w, kind="gauss_newton")
    H = obj.hessian(w)
    assert rel_err(H, G) < EXACT_RTOL
    assert rel_err(obj.hessian(w, algorithm="rop"), G) < EXACT_RTOL
    assert np.abs(G).max() > 1e-2


def test_zero_residual_comparison_is_not_vacuous():
    """Move T off y and the non-canonical GN departs from H."""
    net, obj, w = build("logistic-sse", 2, T=lambda net, w, X: net.forward(w, X) * 0.5)
    assert rel_err(obj.hessian(w), obj.hessian(w, kind="gauss_newton")) > 1e-3


# ------------------------------------------------------------------ products
@pytest.mark.parametrize("case, seed", PARAMS)
def test_gnvp_equals_g_times_v(case, seed):
    net, obj, w = build(case, seed, alpha=0.3)
    G = obj.hessian(w, kind="gauss_newton")
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(net.n_weights)
    V = rng.standard_normal((net.n_weights, 3))
    Gv = obj.gnvp(w, v)
    assert Gv.shape == (net.n_weights,)
    assert rel_err(Gv, G @ v) < EXACT_RTOL
    assert rel_err(obj.gnvp(w, V), G @ V) < EXACT_RTOL
    assert rel_err(obj.gnvp(w, np.eye(net.n_weights)), G) < EXACT_RTOL


@pytest.mark.parametrize("case", ["identity-sse", "softmax-softmax_ce", "logistic-sse",
                                  "softmax-binary_ce"])
def test_chunked_gauss_newton(case):
    net, obj, w = build(case, 3, alpha=0.1)
    _, objc, _ = build(case, 3, alpha=0.1, chunk_size=3)      # 3, 3, 1
    G = obj.hessian(w, kind="gauss_newton")
    assert rel_err(objc.hessian(w, kind="gauss_newton"), G) < EXACT_RTOL
    V = np.random.default_rng(0).standard_normal((net.n_weights, 2))
    assert rel_err(objc.gnvp(w, V), G @ V) < EXACT_RTOL


# ------------------------------------------------------------------ operators
def _larger_net(case, seed, alpha):
    """W ~ 60-120 so that eigsh / cg have something to do."""
    out, loss, K, kind, _, _ = CASES[case]
    net = sopt.Network(n_inputs=3)
    h1 = net.add_layer(6, "tanh", inputs=[net.input])
    h2 = net.add_layer(5, "softplus", inputs=[h1, net.input])
    net.add_layer(K, out, inputs=[h2, h1], output=True)
    rng = np.random.default_rng(seed)
    w = net.init_weights(seed=seed) + 0.2 * rng.standard_normal(net.n_weights)
    X = rng.standard_normal((10, 3))
    T = make_targets(rng, 10, K, kind)
    return net, sopt.Objective(net, X, T, loss=loss, alpha=alpha), w


@pytest.mark.parametrize("case", ["identity-sse", "softmax-softmax_ce",
                                  "logistic-binary_ce-K3"])
def test_gauss_newton_operator_with_eigsh_and_cg(case):
    net, obj, w = _larger_net(case, 5, alpha=0.5)
    W = net.n_weights
    assert 60 <= W <= 120
    G = obj.hessian(w, kind="gauss_newton")                # includes 0.5 I
    lam = np.linalg.eigvalsh(G)
    op = obj.gauss_newton_operator(w)
    assert isinstance(op, LinearOperator) and op.shape == (W, W)
    top = eigsh(op, k=3, which="LA", tol=0, return_eigenvectors=False)
    np.testing.assert_allclose(np.sort(top), lam[-3:], rtol=EIG_RTOL, atol=0)
    # cg on the SPD system (alpha I + G) x = b
    b = np.random.default_rng(1).standard_normal(W)
    assert lam[-1] / lam[0] < 1e3                           # see CG_RTOL
    x, info = cg(op, b, rtol=1e-12, atol=0, maxiter=10 * W)
    assert info == 0
    assert rel_err(x, np.linalg.solve(G, b)) < 1e-8
    # matvec / matmat / rmatvec are the gnvp
    V = np.random.default_rng(2).standard_normal((W, 2))
    assert rel_err(op @ V, G @ V) < EXACT_RTOL
    assert rel_err(op.rmatvec(V[:, 0]), G @ V[:, 0]) < EXACT_RTOL


@pytest.mark.parametrize("case", ["identity-sse", "softmax-softmax_ce", "logistic-sse"])
def test_hessian_operator_with_eigsh_and_cg(case):
    net, obj0, w = _larger_net(case, 6, alpha=0.0)
    W = net.n_weights
    H0 = obj0.hessian(w)
    lam0 = np.linalg.eigvalsh(H0)
    op0 = obj0.hessian_operator(w)
    # both ends of the (indefinite) spectrum by Lanczos
    hi = eigsh(op0, k=2, which="LA", tol=0, return_eigenvectors=False)
    lo = eigsh(op0, k=1, which="SA", tol=0, return_eigenvectors=False)
    scale = np.abs(lam0).max()
    assert np.abs(np.sort(hi) - lam0[-2:]).max() <= EIG_RTOL * scale
    assert abs(lo[0] - lam0[0]) <= EIG_RTOL * scale
    # shift by weight decay until H + alpha I is SPD, then cg
    alpha = max(0.0, -lam0[0]) + 0.1 * scale
    net, obj, _ = _larger_net(case, 6, alpha=alpha)
    op = obj.hessian_operator(w)
    H = obj.hessian(w)
    lam = np.linalg.eigvalsh(H)
    assert lam[0] > 0 and lam[-1] / lam[0] < 1e3            # see CG_RTOL
    b = np.random.default_rng(3).standard_normal(W)
    x, info = cg(op, b, rtol=1e-12, atol=0, maxiter=10 * W)
    assert info == 0
    assert rel_err(x, np.linalg.solve(H, b)) < 1e-8
    V = np.random.default_rng(4).standard_normal((W, 3))
    assert rel_err(op @ V, H @ V) < EXACT_RTOL


def test_operators_keep_their_own_copy_of_w():
    net, obj, w = _larger_net("identity-sse", 7, alpha=0.1)
    v = np.random.default_rng(0).standard_normal(net.n_weights)
    Hop, Gop = obj.hessian_operator(w), obj.gauss_newton_operator(w)
    Hv, Gv = obj.hvp(w, v), obj.gnvp(w, v)
    w_saved = w.copy()
    w += 1.0                                                # caller reuses its buffer
    assert rel_err(Hop @ v, Hv) < EXACT_RTOL
    assert rel_err(Gop @ v, Gv) < EXACT_RTOL
    w[:] = w_saved
