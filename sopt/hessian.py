"""Dense curvature matrices of E(w): the exact Hessian, Gauss-Newton, the
diagonal approximation, and the inverse outer-product matrix by sequential
rank-one updates.

The exact Hessian uses the second-order adjoint identity for a composition
of simple operations (the DAG of a_l = sum_e W_e z_src + b_l, z_l = h(a_l),
E(a_out)), per pattern:

    H_n = J^T M J                                  output curvature
        + sum_{hidden l} S_l^T diag(g_l h''(a_l)) S_l   activation curvature
        + sum_{edges e: src -> l} (C_e + C_e^T)      bilinear a = W z terms

with J = d a_out/dw, M = d2E/da_out^2, S_l = d a_l/dw, g_l = dE/dz_l and
C_e[(j,i), :] = delta_lj h'(a_src,i) S_src,i. This is Bishop's exact Hessian
(Neural Computation 4, 1992; PRML sec. 5.4.5) written for an arbitrary DAG.
Its cost is dominated by J^T M J, 2 N K W^2 flops of large matrix products
(about half with a symmetric rank-k update when M has a cheap factor), plus
terms that are small for shallow networks because S_l has the structure
d a_lj / d w_(e,j,i) = z_src,i on the layer's own weights and is dense only
on the weights of earlier layers. For deep wide nets, where those terms grow
as N M_l W^2, batched R-propagation (``algorithm="rop"``) is used instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .derivatives import (gauss_newton_vector_products,
                          hessian_vector_products, pattern_sensitivities)
from .network import ForwardPass, Layer, Network

Array = np.ndarray

#: Largest dense W x W matrix built without being asked explicitly (bytes).
DEFAULT_MAX_BYTES = 4 * 2**30
#: Doubles of per-chunk work arrays the dense methods aim for (~64 MB).
CHUNK_DOUBLES = 8 * 2**20


def check_dense_size(n_weights: int, max_bytes: float | None = None,
                     what: str = "Hessian") -> None:
    """Refuse a dense W x W float64 matrix larger than ``max_bytes``."""
    limit = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    need = 8 * n_weights**2
    if need > limit:
        raise MemoryError(
            f"a dense {what} for W = {n_weights} weights needs {need:,} bytes "
            f"({need / 2**30:.2f} GiB), over the limit of {int(limit):,} bytes; "
            "raise max_bytes, or use hvp / hessian_operator (O(W) memory)")


@dataclass(frozen=True)
class _Own:
    """Where a layer's own parameters sit, unit by unit.

    ``cols[j, f]`` is the index in w of the f-th parameter of unit j (the
    concatenated incoming weights of all edges, then the bias); ``mask[j, f]``
    is 0 for masked connections (None: no masks).
    """

    cols: Array
    mask: Array | None
    start: int                  # first weight of the layer: the prefix length

    @classmethod
    def of(cls, layer: Layer) -> "_Own":
        M = layer.size
        blocks, masks = [], []
        for src, s, m in zip(layer.sources, layer.weight_slices, layer.masks):
            blocks.append(s.start + np.arange(M * src.size).reshape(M, src.size))
            masks.append(np.ones((M, src.size)) if m is None else m)
        blocks.append(layer.bias_slice.start + np.arange(M)[:, None])
        masks.append(np.ones((M, 1)))
        has_mask = any(m is not None for m in layer.masks)
        return cls(np.hstack(blocks), np.hstack(masks) if has_mask else None,
                   layer.weight_slices[0].start)


def _inputs_with_one(fp: ForwardPass, layer: Layer) -> Array:
    """[z_src1, z_src2, ..., 1] of a layer, shape (N, fan_in + 1)."""
    return np.hstack([fp.z[src.index] for src in layer.sources]
                     + [np.ones((len(fp.y), 1))])


def _masked(x: Array, mask: Array | None) -> Array:
    return x if mask is None else x * mask


def _output_jacobian(net: Network, w: Array, fp: ForwardPass) -> Array:
    K = net.n_outputs
    return pattern_sensitivities(net, w, fp,
                                 np.broadcast_to(np.eye(K), (len(fp.y), K, K)))


def _add_sandwich(H: Array, J: Array, B: Array | None, M: Array | None) -> None:
    """H += sum_n J_n^T M_n J_n, as G^T G with G = B J when M = B^T B is
    factored (numpy then uses a symmetric rank-k update), else with M."""
    W = J.shape[2]
    if B is not None:
        G = (J * B[:, :, None] if B.ndim == 2 else np.matmul(B, J)).reshape(-1, W)
        H += G.T @ G
    else:
        H += J.reshape(-1, W).T @ np.matmul(M, J).reshape(-1, W)


def _add_output_term(H: Array, net, rule, w, fp, T) -> None:
    """H += sum_n J_n^T M_n J_n with J_n = d a_out/dw and the exact M_n."""
    a, y = fp.a[-1], fp.y
    B = rule.gauss_newton_factor(a, y, T) if rule.canonical else None
    _add_sandwich(H, _output_jacobian(net, w, fp), B,
                  None if B is not None else rule.curvature(a, y, T))


def _upstream_sensitivities(net, Ws, fp, own, Zs) -> list:
    """U_l = d a_l / d w over the weights of earlier layers, (N, M_l, start_l),
    for the hidden layers (None where the prefix is empty or not needed)."""
    N = len(fp.y)
    U: list = [None] * len(net.layers)
    for li, layer in enumerate(net.layers[:-1]):
        if own[li].start == 0:
            continue
        Ul = np.zeros((N, layer.size, own[li].start))
        for src, W in zip(layer.sources, Ws[li]):
            if src.index == 0:
                continue
            si = src.index - 1
            hp = net.layers[si].activation.dh(fp.a[src.index])
            if U[si] is not None:
                Ul[:, :, :own[si].start] += np.matmul(W, hp[:, :, None] * U[si])
            # own part of S_src: d a_src,i / d w_(i, f) = Z_src[n, f]
            A = W[None, :, :] * hp[:, None, :]                   # (N, M_l, M_src)
            Zm = _masked(Zs[si][:, None, :], own[si].mask)       # (N, M_src, F)
            Ul[:, :, own[si].cols.ravel()] += (
                A[:, :, :, None] * Zm[:, None, :, :]).reshape(N, layer.size, -1)
        U[li] = Ul
    return U


def _add_activation_terms(H, net, fp, gz, own, Zs, U) -> None:
    """H += sum_n S_l^T diag(g_l h''(a_l)) S_l for every hidden layer."""
    N = len(fp.y)
    for li, layer in enumerate(net.layers[:-1]):
        c = gz[li] * layer.activation.d2h(fp.a[li + 1])          # (N, M)
        Z, o, M = Zs[li], own[li], layer.size
        F = Z.shape[1]
        blocks = ((c[:, :, None] * Z[:, None, :]).reshape(N, -1).T @ Z).reshape(M, F, F)
        if o.mask is not None:
            blocks *= o.mask[:, :, None] * o.mask[:, None, :]
        H[o.cols[:, :, None], o.cols[:, None, :]] += blocks
        if U[li] is None:
            continue
        P = o.start
        Uc = U[li] * c[:, :, None]                               # (N, M, P)
        cross = np.matmul(Uc.transpose(1, 2, 0), Z)              # (M, P, F)
        if o.mask is not None:
            cross *= o.mask[:, None, :]
        rows = np.arange(P)[None, :, None]
        H[rows, o.cols[:, None, :]] += cross
        H[o.cols[:, None, :], rows] += cross
        H[:P, :P] += Uc.reshape(-1, P).T @ U[li].reshape(-1, P)


def _add_bilinear_terms(H, net, fp, deltas, own, Zs, U) -> None:
    """H += C_e + C_e^T for every edge fed by a hidden layer."""
    N = len(fp.y)
    for li, layer in enumerate(net.layers):
        d = deltas[li]
        for src, s, m in zip(layer.sources, layer.weight_slices, layer.masks):
            if src.index == 0:
                continue
            si = src.index - 1
            hp = net.layers[si].activation.dh(fp.a[src.index])
            Dh = d[:, :, None] * hp[:, None, :]                  # (N, M_l, M_src)
            C = (Dh.reshape(N, -1).T @ Zs[si]).reshape(layer.size, src.size, -1)
            C = _masked(C, own[si].mask)
            if m is not None:
                C *= m[:, :, None]
            rows = s.start + np.arange(layer.size * src.size).reshape(layer.size, src.size)
            H[rows[:, :, None], own[si].cols[None, :, :]] += C
            H[own[si].cols[None, :, :], rows[:, :, None]] += C
            if U[si] is not None:
                P = own[si].start
                CU = np.matmul(Dh.transpose(2, 1, 0), U[si].transpose(1, 0, 2))
                CU = CU.transpose(1, 0, 2)                       # (M_l, M_src, P)
                if m is not None:
                    CU *= m[:, :, None]
                CU = CU.reshape(-1, P)
                H[s, :P] += CU
                H[:P, s] += CU.T


def structured_flops(net: Network, n_patterns: int) -> tuple[float, float]:
    """Rough flop counts (structured, R-propagation) of the exact Hessian."""
    W, K = net.n_weights, net.n_outputs
    own = [_Own.of(layer) for layer in net.layers]
    structured = 2.0 * n_patterns * K * W**2
    for li, layer in enumerate(net.layers[:-1]):
        P = own[li].start
        structured += 2.0 * n_patterns * layer.size * (P * P + 2 * P * own[li].cols.shape[1])
    return structured, 14.0 * n_patterns * W**2


def exact_hessian(net: Network, rule, w: Array, X: Array, T: Array,
                  algorithm: str = "auto", chunk_size: int | None = None) -> Array:
    """sum_n d2E_n/dw2, exact, shape (W, W). No weight decay.

    ``algorithm``: "structured" (the identity in the module docstring),
    "rop" (R-propagation along all W unit directions, in blocks), or "auto"
    (the one with fewer flops). Cost O(N W^2); peak memory the W x W result,
    one W x W temporary, and O(chunk (K W + sum_l M_l start_l)) work arrays.
    """
    if algorithm == "auto":
        s, r = structured_flops(net, len(X))
        algorithm = "structured" if s <= r else "rop"
    W = net.n_weights
    H = np.zeros((W, W))
    if algorithm == "rop":
        block = max(1, min(W, CHUNK_DOUBLES // max(1, len(X) * sum(
            layer.size for layer in net.layers) * 4)))
        fp = net.propagate(w, X)
        for start in range(0, W, block):
            E = np.zeros((W, min(block, W - start)))
            E[start + np.arange(E.shape[1]), np.arange(E.shape[1])] = 1.0
            H[:, start:start + E.shape[1]] = hessian_vector_products(
                net, rule, w, fp, T, E)
        return _symmetrise(H)
    if algorithm != "structured":
        raise ValueError(f"algorithm: expected 'auto', 'structured' or 'rop', "
                         f"got {algorithm!r}")
    own = [_Own.of(layer) for layer in net.layers]
    per_pattern = 3 * net.n_outputs * W + sum(
        layer.size * (o.start + o.cols.size) for layer, o in zip(net.layers, own))
    n = chunk_size or max(1, CHUNK_DOUBLES // per_pattern)
    Ws = net.effective_weights(w)
    for start in range(0, len(X), n):
        rows = slice(start, start + n)
        fp = net.propagate(w, X[rows])
        Tc = T[rows]
        deltas, gz = net.backward(w, fp, rule.delta(fp.a[-1], fp.y, Tc),
                                  return_z_adjoints=True)
        Zs = [_inputs_with_one(fp, layer) for layer in net.layers]
        U = _upstream_sensitivities(net, Ws, fp, own, Zs)
        _add_output_term(H, net, rule, w, fp, Tc)
        _add_activation_terms(H, net, fp, gz, own, Zs, U)
        _add_bilinear_terms(H, net, fp, deltas, own, Zs, U)
    return H


def _symmetrise(H: Array) -> Array:
    H += H.T
    H *= 0.5
    return H


def gauss_newton(net: Network, rule, w: Array, X: Array, T: Array,
                 chunk_size: int | None = None) -> Array:
    """sum_n J_n^T M_n J_n, J_n = d a_out/dw, M_n the Gauss-Newton output
    curvature (PRML eq. 5.84 for sum-of-squares); PSD whenever M_n is.
    Cost 2 N K W^2 flops (N K W^2 with a factor of M); memory W^2 + chunk K W.
    """
    W, K = net.n_weights, net.n_outputs
    H = np.zeros((W, W))
    n = chunk_size or max(1, CHUNK_DOUBLES // (3 * K * W))
    for start in range(0, len(X), n):
        rows = slice(start, start + n)
        fp = net.propagate(w, X[rows])
        a, y, Tc = fp.a[-1], fp.y, T[rows]
        B = rule.gauss_newton_factor(a, y, Tc)
        _add_sandwich(H, _output_jacobian(net, w, fp), B,
                      None if B is not None else rule.gauss_newton_curvature(a, y, Tc))
    return _symmetrise(H)


def diagonal_approximation(net: Network, rule, w: Array, fp: ForwardPass,
                           T: Array) -> Array:
    """Becker and Le Cun's diagonal Hessian approximation, shape (W,).

    Backpropagates only the diagonal of d2E/da2 (PRML eqs. 5.79-5.81):
    at the outputs diag(M); at hidden units
    d2E/da_j^2 ~ h'(a_j)^2 sum_k w_kj^2 d2E/da_k^2 + h''(a_j) sum_k w_kj delta_k,
    dropping the off-diagonal terms; then d2E/dw_ji^2 ~ z_i^2 d2E/da_j^2.
    An approximation: exact only where the dropped terms vanish (e.g. one
    hidden layer with diagonal M). Cost Theta(N W), memory O(N U).
    """
    a_out, y = fp.a[-1], fp.y
    deltas, gz = net.backward(w, fp, rule.delta(a_out, y, T), return_z_adjoints=True)
    M = rule.curvature(a_out, y, T)
    layers = net.layers
    Ws = net.effective_weights(w)
    D: list = [None] * len(layers)
    D[-1] = np.einsum("nkk->nk", M)
    acc: list = [None] * (len(layers) + 1)
    out = np.empty(net.n_weights)
    for li in range(len(layers) - 1, -1, -1):
        layer = layers[li]
        if li < len(layers) - 1:
            a = fp.a[li + 1]
            s = acc[li + 1] if acc[li + 1] is not None else 0.0
            D[li] = layer.activation.dh(a) ** 2 * s + layer.activation.d2h(a) * gz[li]
        for src, s_, W, m in zip(layer.sources, layer.weight_slices, Ws[li], layer.masks):
            z = fp.z[src.index]
            G = D[li].T @ (z * z)
            out[s_] = (G if m is None else G * m).ravel()
            if src.index:
                contrib = D[li] @ (W * W)
                acc[src.index] = contrib if acc[src.index] is None else acc[src.index] + contrib
        out[layer.bias_slice] = D[li].sum(axis=0)
    return out


def sequential_inverse(G: Array, alpha: float, block_size: int = 1) -> Array:
    """(alpha I + G^T G)^{-1} by sequential updates over the rows b of G.

    PRML eq. 5.89: starting from (alpha I)^{-1}, each row b (one pattern and
    output of the outer-product matrix) updates
    A^{-1} <- A^{-1} - (A^{-1} b)(A^{-1} b)^T / (1 + b^T A^{-1} b).
    ``block_size`` > 1 applies the same update to blocks of rows at once
    (Woodbury identity), which is faster and algebraically equal.
    Cost O(R W^2) for R rows, memory W^2; no W^3 factorisation.
    """
    G = np.atleast_2d(np.asarray(G, dtype=float))
    if not alpha > 0:
        raise ValueError(f"alpha: the sequential inverse starts from (alpha I)^-1 "
                         f"and needs alpha > 0, got {alpha}")
    W = G.shape[1]
    Ainv = np.eye(W) / alpha
    for start in range(0, len(G), block_size):
        B = G[start:start + block_size]                 # (b, W)
        AB = Ainv @ B.T                                 # (W, b)
        S = np.eye(len(B)) + B @ AB                     # (b, b), SPD
        Ainv -= AB @ np.linalg.solve(S, AB.T)
    return _symmetrise(Ainv)
