"""Derivatives of the network by error backpropagation.

Pure functions of a forward pass and its backward sweep (the products take
a :class:`sopt.evaluation.BatchPass`, which holds both). Every pass is a few
matrix products over the whole batch; loops run over layers and edges only,
never over patterns or units.
"""
from __future__ import annotations

import functools

import numpy as np

from .network import ForwardPass, Network, matmul_rows

Array = np.ndarray


def weight_gradient(net: Network, fp: ForwardPass, deltas: list,
                    out: Array | None = None) -> Array:
    """sum_n dE/dw from the backward sweep's ``deltas``, shape (W,).
    Cost Theta(N W).

    dE_n/dw_ji = delta_j z_i (PRML eq. 5.53); biases get sum_n delta_j.
    Masked weights get exactly zero. ``out`` (W,), if given, is overwritten.
    """
    if out is None:
        out = np.empty(net.n_weights)
    for layer, delta in zip(net.layers, deltas):
        for src, s, m in zip(layer.sources, layer.weight_slices, layer.masks):
            G = out[s].reshape(layer.size, src.size)
            np.matmul(delta.T, fp.z[src.index], out=G)
            if m is not None:
                G *= m
        column_sums(delta, out=out[layer.bias_slice])
    return out


def column_sums(A: Array, out: Array | None = None) -> Array:
    """sum_n A[n, :] for a 2-D A, as a matrix-vector product: BLAS does it
    at two to four times the speed of numpy's axis-0 reduction."""
    return np.matmul(_ones(len(A)), A, out=out)


@functools.lru_cache(maxsize=8)
def _ones(n: int) -> Array:
    """A read-only vector of n ones, kept for the next call of the same n."""
    ones = np.ones(n)
    ones.flags.writeable = False
    return ones


def _edge_directions(V: Array, s: slice, fan_out: int, fan_in: int,
                     mask: Array | None) -> Array:
    """The (fan_out, fan_in, P) block of P weight directions for one edge."""
    Ve = V[s].reshape(fan_out, fan_in, V.shape[1])
    return Ve if mask is None else Ve * mask[:, :, None]


def _directions(net: Network, V: Array) -> list:
    return [[_edge_directions(V, s, layer.size, src.size, m)
             for src, s, m in zip(layer.sources, layer.weight_slices, layer.masks)]
            for layer in net.layers]


def r_forward(net: Network, Ws: list, fp: ForwardPass, V: Array,
              dirs: list | None = None) -> tuple[list, list]:
    """Directional derivatives R{a_l} = (d a_l/dw) V and R{z_l}, each (N, P, M_l).

    R{a_l} = sum_e (V_e z_src + W_e R{z_src}) + v_b, R{z_l} = h'(a_l) R{a_l}
    (softmax: its Jacobian times R{a}); R{z_0} = 0. Lists indexed by node
    (entry 0 is None). Cost Theta(P N W).
    """
    N, P = len(fp.y), V.shape[1]
    dirs = _directions(net, V) if dirs is None else dirs
    Ra, Rz = [None], [None]
    for li, layer in enumerate(net.layers):
        acc = None
        for src, W, Ve in zip(layer.sources, Ws[li], dirs[li]):
            term = (fp.z[src.index] @ Ve.transpose(1, 2, 0).reshape(src.size, -1)
                    ).reshape(N, P, -1)
            acc = term if acc is None else np.add(acc, term, out=acc)
            if src.index:
                acc += matmul_rows(Rz[src.index], W.T)
        acc += V[layer.bias_slice].T            # (P, M_l), broadcast over n
        Ra.append(acc)
        Rz.append(fp.times_dh(li + 1, acc))
    return Ra, Rz


def weight_vjp(net: Network, fp: ForwardPass, deltas: list) -> Array:
    """sum_n delta_l^T z_src for P signals: deltas (N, P, M_l) -> (W, P)."""
    N, P = deltas[-1].shape[:2]
    out = np.empty((net.n_weights, P))
    for layer, d in zip(net.layers, deltas):
        for src, s, m in zip(layer.sources, layer.weight_slices, layer.masks):
            G = (d.reshape(N, -1).T @ fp.z[src.index]).reshape(P, layer.size, src.size)
            if m is not None:
                G *= m
            out[s] = G.transpose(1, 2, 0).reshape(-1, P)
        out[layer.bias_slice] = column_sums(d.reshape(N, -1)).reshape(P, -1).T
    return out


def gauss_newton_vector_products(batch, V: Array) -> Array:
    """sum_n J_n^T M_n J_n V with J_n = d a_out/dw, M_n the Gauss-Newton
    curvature of the outputs, over the patterns of ``batch`` (a
    :class:`sopt.evaluation.BatchPass`): one R-forward pass for J V, one
    backward pass for J^T (M J V) (Schraudolph, Neural Computation 14,
    2002). (W, P); cost Theta(P N W), memory O(P N U)."""
    net, fp = batch.net, batch.fp
    Ra, _ = r_forward(net, fp.weights, fp, V)
    seeds = batch.rule.curvature_product(fp.a[-1], fp.y, batch.T, Ra[-1],
                                         gauss_newton=True)
    return weight_vjp(net, fp, net.backward(fp, seeds).deltas)


def hessian_vector_products(batch, V: Array) -> Array:
    """sum_n H_n V for a (W, P) block of directions by R-propagation, over
    the patterns of ``batch`` (a :class:`sopt.evaluation.BatchPass`, whose
    backward pass it uses).

    Pearlmutter's R{.} operator (Neural Computation 6, 1994; PRML sec. 5.4.6):
    forward R{a_l} = sum_e (V_e z_src + W_e R{z_src}) + v_b, R{z} = h'(a) R{a};
    at the outputs R{delta} = M R{a} with M = d2E/da2; backward
    R{delta_l} = h''(a) R{a} g + h'(a) sum_c (R{delta_c} W_e + delta_c V_e), with
    g = dE/dz_l; then R{dE/dW_e} = R{delta}^T z + delta^T R{z}. Exact for any
    topology, activation and error; no weight decay here.

    Cost Theta(P N W) (a few passes per direction); memory O(P N U).
    Returns (W, P).
    """
    net, fp = batch.net, batch.fp
    N, P = len(fp.y), V.shape[1]
    layers = net.layers
    Ws = fp.weights
    dirs = _directions(net, V)
    Ra, Rz = r_forward(net, Ws, fp, V, dirs)
    deltas, gz = batch.backward
    Rdelta: list = [None] * len(layers)
    Rg: list = [None] * (len(layers) + 1)
    Rdelta[-1] = batch.rule.curvature_product(fp.a[-1], fp.y, batch.T, Ra[-1])
    for li in range(len(layers) - 1, -1, -1):
        layer, l = layers[li], li + 1
        if li < len(layers) - 1:
            rg = Rg[l] if Rg[l] is not None else np.zeros((N, P, layer.size))
            Rd = (fp.d2h(l) * gz[li])[:, None, :] * Ra[l]
            Rdelta[li] = np.add(Rd, fp.times_dh(l, rg), out=Rd)
        Rd, d = Rdelta[li], deltas[li]
        for src, W, Ve in zip(layer.sources, Ws[li], dirs[li]):
            if src.index:
                back = (matmul_rows(Rd, W)
                        + (d @ Ve.reshape(layer.size, -1)).reshape(N, src.size, P)
                        .transpose(0, 2, 1))
                Rg[src.index] = back if Rg[src.index] is None else Rg[src.index] + back
    # R{dE/dW_e}[j, i, p] = sum_n Rd[n, p, j] z[n, i] + d[n, j] Rz[n, p, i]
    out = weight_vjp(net, fp, Rdelta)
    for layer, d in zip(layers, deltas):
        for src, s, m in zip(layer.sources, layer.weight_slices, layer.masks):
            if src.index:
                fo, fi = layer.size, src.size
                G = (d.T @ Rz[src.index].reshape(N, -1)).reshape(fo, P, fi)
                if m is not None:
                    G *= m[:, None, :]
                out[s] += G.transpose(0, 2, 1).reshape(fo * fi, P)
    return out
