"""Derivatives of the network by error backpropagation.

Pure functions of a forward pass and its backward sweep (the products take
a :class:`sopt.evaluation.BatchPass`, which holds both). Every pass is a few
matrix products over the whole batch; loops run over layers and edges only,
never over patterns or units. The derivative rules of one edge
(:class:`sopt.network.Edge`) are the ``edge_*`` functions; every pass here
and in :mod:`sopt.hessian` applies them.
"""
from __future__ import annotations

import functools

import numpy as np

from ._validation import check_inputs, check_positive_int, check_weights
from .network import Edge, ForwardPass, Network, add_to, matmul_rows

Array = np.ndarray

#: Doubles of output sensitivities computed per chunk of patterns (~32 MB).
SENSITIVITY_DOUBLES = 4 * 2**20


def items_in_budget(doubles_each: int, budget: int, most: int | None = None) -> int:
    """How many items of ``doubles_each`` doubles of work memory fit in
    ``budget`` doubles: at least 1, at most ``most`` (if given). The one
    rule by which every chunked pass sizes its chunks."""
    n = budget // max(1, doubles_each)
    return max(1, n if most is None else min(most, n))


# ----- the derivative rules of one edge a_l += W_e x -----
def edge_gradient(e: Edge, delta: Array, x: Array, out: Array,
                  add: bool = False) -> None:
    """Write sum_n delta_n x_n^T, masked, into the edge's rows of ``out``:
    (W,) for delta (N, fan_out) and x (N, fan_in); (W, P) when one of them
    carries P signals or directions on axis 1 (then ``add`` adds instead of
    writing). Cost 2 N P fan_out fan_in flops."""
    N, (fo, fi) = len(delta), e.shape
    if delta.ndim == x.ndim == 2:                 # straight into out
        G = np.matmul(delta.T, x, out=out[e.weights].reshape(fo, fi))
        if e.mask is not None:
            G *= e.mask
        return
    if x.ndim == 2:                               # P signals on delta
        G = (delta.reshape(N, -1).T @ x).reshape(-1, fo, fi)
        m, order = e.mask, (1, 2, 0)
    else:                                         # P directions on x
        G = (delta.T @ x.reshape(N, -1)).reshape(fo, -1, fi)
        m, order = None if e.mask is None else e.mask[:, None, :], (0, 2, 1)
    if m is not None:
        G *= m
    G = G.transpose(order).reshape(fo * fi, -1)
    if add:
        out[e.weights] += G
    else:
        out[e.weights] = G


def edge_pattern_gradients(e: Edge, delta: Array, x: Array, out: Array) -> None:
    """Write delta_n x_n^T for every pattern and signal, masked, into the
    edge's columns of ``out`` (N, P, W), for delta (N, P, fan_out) and x
    (N, fan_in). Memory N P fan_out fan_in doubles."""
    G = delta[:, :, :, None] * x[:, None, None, :]
    if e.mask is not None:
        G *= e.mask
    out[:, :, e.weights] = G.reshape(G.shape[:2] + (-1,))


def edge_r_forward(e: Edge, x: Array, Rx: Array | None, acc: Array | None) -> Array:
    """acc + x V_e^T + R{x} W_e^T, the edge's share of R{a_l}, (N, P, fan_out),
    for x (N, fan_in) and R{x} (N, P, fan_in) (None for the input); ``e`` is
    bound to W and V. ``acc`` (None: nothing yet) is added to in place."""
    N, P = len(x), e.V.shape[2]
    term = (x @ e.V.transpose(1, 2, 0).reshape(e.source.size, -1)).reshape(N, P, -1)
    acc = term if acc is None else np.add(acc, term, out=acc)
    if Rx is not None:
        acc += matmul_rows(Rx, e.W.T)
    return acc


def edge_r_backward(e: Edge, delta: Array, Rdelta: Array, adjoints: list) -> None:
    """adjoints[src] += R{delta W_e} = R{delta} W_e + delta V_e, shape
    (N, P, fan_in), for delta (N, fan_out) and R{delta} (N, P, fan_out)."""
    N, (fo, fi) = len(delta), e.shape
    Vd = (delta @ e.V.reshape(fo, -1)).reshape(N, fi, -1).transpose(0, 2, 1)
    add_to(adjoints, e.source.index, matmul_rows(Rdelta, e.W) + Vd)


# ----- passes over the network -----
def weight_gradient(net: Network, fp: ForwardPass, deltas: list,
                    out: Array | None = None) -> Array:
    """sum_n dE/dw from the backward sweep's ``deltas``: (W,) for deltas
    (N, M_l), (W, P) for P signals, deltas (N, P, M_l). Cost Theta(P N W).

    dE_n/dw_ji = delta_j z_i (PRML eq. 5.53); biases get sum_n delta_j.
    Masked weights get exactly zero. ``out``, if given, is overwritten.
    """
    N = len(deltas[-1])
    if out is None:
        out = np.empty((net.n_weights,) + deltas[-1].shape[1:-1])
    for layer, edges, d in zip(net.layers, fp.edges, deltas):
        for e in edges:
            edge_gradient(e, d, fp.z[e.source.index], out)
        if d.ndim == 2:         # straight into out: no temporary on the gradient's path
            column_sums(d, out=out[layer.bias_slice])
        else:
            out[layer.bias_slice] = column_sums(d.reshape(N, -1)).reshape(d.shape[1:]).T
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


def directed_edges(fp: ForwardPass, V: Array) -> list:
    """Per layer, the pass's edges bound also to their blocks of the (W, P)
    directions V (:meth:`Edge.along`; masked copies where masked)."""
    return [tuple(e.along(V) for e in edges) for edges in fp.edges]


def r_forward(net: Network, fp: ForwardPass, V: Array,
              edges: list | None = None) -> tuple[list, list]:
    """Directional derivatives R{a_l} = (d a_l/dw) V and R{z_l}, each (N, P, M_l).

    R{a_l} = sum_e (V_e z_src + W_e R{z_src}) + v_b, R{z_l} = h'(a_l) R{a_l}
    (softmax: its Jacobian times R{a}); R{z_0} = 0. Lists indexed by node
    (entry 0 is None). ``edges``: :func:`directed_edges` of V, if made
    already. Cost Theta(P N W).
    """
    edges = directed_edges(fp, V) if edges is None else edges
    Ra, Rz = [None], [None]
    for li, layer in enumerate(net.layers):
        acc = None
        for e in edges[li]:
            acc = edge_r_forward(e, fp.z[e.source.index], Rz[e.source.index], acc)
        acc += V[layer.bias_slice].T            # (P, M_l), broadcast over n
        Ra.append(acc)
        Rz.append(fp.times_dh(li + 1, acc))
    return Ra, Rz


def gauss_newton_vector_products(batch, V: Array) -> Array:
    """sum_n J_n^T M_n J_n V with J_n = d a_out/dw, M_n the Gauss-Newton
    curvature of the outputs, over the patterns of ``batch`` (a
    :class:`sopt.evaluation.BatchPass`): one R-forward pass for J V, one
    backward pass for J^T (M J V) (Schraudolph, Neural Computation 14,
    2002). (W, P); cost Theta(P N W), memory O(P N U)."""
    net, fp = batch.net, batch.fp
    Ra, _ = r_forward(net, fp, V)
    seeds = batch.output_loss.curvature_product(fp.a[-1], fp.y, batch.T, Ra[-1],
                                         gauss_newton=True)
    return weight_gradient(net, fp, net.backward(fp, seeds).deltas)


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
    edges = directed_edges(fp, V)
    Ra, Rz = r_forward(net, fp, V, edges)
    # R{dE/dW_e}[j, i, p] = sum_n Rd[n, p, j] z[n, i] + d[n, j] Rz[n, p, i]
    out = weight_gradient(net, fp, _r_backward(batch, edges, Ra))
    for layer_edges, d in zip(fp.edges, batch.backward.deltas):
        for e in layer_edges:
            if e.source.index:
                edge_gradient(e, d, Rz[e.source.index], out, add=True)
    return out


def _r_backward(batch, edges: list, Ra: list) -> list:
    """R{delta_l} for every layer (index l - 1), (N, P, M_l), from R{a} and
    the directed ``edges`` (see :func:`hessian_vector_products`)."""
    fp, layers = batch.fp, batch.net.layers
    deltas, gz = batch.backward
    N, P = Ra[-1].shape[:2]
    Rdelta: list = [None] * len(layers)
    Rg: list = [None] * (len(layers) + 1)      # R{dE/dz}, by node
    Rdelta[-1] = batch.output_loss.curvature_product(fp.a[-1], fp.y, batch.T, Ra[-1])
    for li in range(len(layers) - 1, -1, -1):
        l = li + 1
        if li < len(layers) - 1:
            rg = Rg[l] if Rg[l] is not None else np.zeros((N, P, layers[li].size))
            Rd = (fp.d2h(l) * gz[li])[:, None, :] * Ra[l]
            Rdelta[li] = np.add(Rd, fp.times_dh(l, rg), out=Rd)
        for e in edges[li]:
            if e.source.index:
                edge_r_backward(e, deltas[li], Rdelta[li], Rg)
    return Rdelta


# ----- derivatives of the outputs -----
def input_jacobian(net: Network, w, X) -> Array:
    """dy_k/dx_i by backpropagation, shape (N, K, D).

    Backpropagates the K signals dy_k/da_j from the output units (PRML
    sec. 5.3.4), then J_ki = sum_j w_ji dy_k/da_j over the input edges.
    Cost Theta(K N W); memory O(K N U).
    """
    w = check_weights(w, net.n_weights)
    X = check_inputs(X, net.n_inputs)
    fp = net.propagate(w, X)
    return net.input_adjoint(w, net.backward(fp, net.output_seeds(fp)).deltas)


def output_sensitivities(net: Network, w, X, of: str = "a",
                         chunk_size: int | None = None) -> Array:
    """Per-pattern d a_out/dw (``of="a"``) or dy/dw (``of="y"``), (N, K, W).

    Computed chunk by chunk (default: about 32 MB of result per chunk).
    Cost Theta(K N W); memory N K W doubles for the result.
    """
    return linearise(net, w, X, of, chunk_size)[1]


def linearise(net: Network, w, X, of: str = "a", chunk_size: int | None = None):
    """(f, S) from one forward pass: f the output pre-activations
    (``of="a"``) or outputs (``of="y"``), (N, K), and S = df/dw as in
    :func:`output_sensitivities`, (N, K, W); what a linearised (Laplace)
    predictive needs. Cost Theta(K N W); memory N K W doubles for S."""
    w = check_weights(w, net.n_weights)
    X = check_inputs(X, net.n_inputs)
    if of not in ("a", "y"):
        raise ValueError(f"of: expected 'a' or 'y', got {of!r}")
    K, W = net.n_outputs, net.n_weights
    size = (items_in_budget(K * W, SENSITIVITY_DOUBLES) if chunk_size is None
            else check_positive_int(chunk_size, "chunk_size"))
    f, S = np.empty((len(X), K)), np.empty((len(X), K, W))
    for start in range(0, len(X), size):
        rows = slice(start, start + size)
        fp = net.propagate(w, X[rows])
        seeds = (net.output_seeds(fp) if of == "y"
                 else np.broadcast_to(np.eye(K), (len(fp.y), K, K)))
        f[rows] = fp.y if of == "y" else fp.a[-1]
        S[rows] = weight_sensitivities(net, fp, seeds)
    return f, S


def weight_sensitivities(net: Network, fp: ForwardPass, seeds: Array) -> Array:
    """Per-pattern derivatives of P signals with respect to w, (N, P, W),
    for ``seeds`` (N, P, K) = d(signal_p)/da_out. Cost Theta(P N W);
    memory N P W doubles."""
    N, P = seeds.shape[:2]
    out = np.empty((N, P, net.n_weights))
    deltas = net.backward(fp, seeds).deltas
    for layer, edges, delta in zip(net.layers, fp.edges, deltas):
        for e in edges:
            edge_pattern_gradients(e, delta, fp.z[e.source.index], out)
        out[:, :, layer.bias_slice] = delta
    return out


def gauss_newton_seeds(batch) -> Array:
    """S (N, R, K) with sum_r S[n, r]^T S[n, r] = M_n, the Gauss-Newton
    curvature of the outputs of each pattern of ``batch`` (a
    :class:`sopt.evaluation.BatchPass`): backpropagated like output
    sensitivities, row r gives the factor s_r^T J_n with
    J_n^T M_n J_n = sum_r (s_r^T J_n)^T (s_r^T J_n). The pairing's cheap
    factor where there is one (R = K), else the eigendecomposition of M_n
    with negative eigenvalues set to zero (a user loss whose d2E/dy2 is
    not PSD). Cost O(N K^3) at most."""
    fp, output_loss, T = batch.fp, batch.output_loss, batch.T
    a, y = fp.a[-1], fp.y
    B = output_loss.gauss_newton_factor(a, y, T)
    if B is None:
        lam, V = np.linalg.eigh(output_loss.gauss_newton_curvature(a, y, T))
        return np.sqrt(np.maximum(lam, 0.0))[:, :, None] * np.swapaxes(V, 1, 2)
    if B.ndim == 2:                       # diagonal factor, (N, K)
        K = B.shape[1]
        return B[:, :, None] * np.eye(K)
    return B


def gauss_newton_diagonal(batch) -> Array:
    """diag(sum_n J_n^T M_n J_n) over the patterns of ``batch``, exactly:
    sum_n sum_r (s_r^T J_n)^2 with the factors of :func:`gauss_newton_seeds`.
    (W,); cost Theta(R N W) (R = K), memory N R W."""
    S = weight_sensitivities(batch.net, batch.fp, gauss_newton_seeds(batch))
    return np.einsum("nrw,nrw->w", S, S)


def gauss_newton_block(batch, columns: Array) -> Array:
    """The Gauss-Newton matrix's block on the weights ``columns``,
    (C, C), over the patterns of ``batch``. Cost Theta(R N W + R N C^2),
    memory N R W."""
    S = weight_sensitivities(batch.net, batch.fp, gauss_newton_seeds(batch))[:, :, columns]
    S = S.reshape(-1, len(columns))
    return S.T @ S


def output_curvature_block(batch, columns: Array) -> Array:
    """sum_n J_n^T C_n J_n on the weights ``columns`` with C_n the exact
    curvature d2E_n/da2 of the output pre-activations: the exact Hessian's
    block for weights that enter the output pre-activations linearly (the
    output layer's). (C, C); cost Theta(K N W + K^2 N C^2)."""
    fp = batch.fp
    K = batch.net.n_outputs
    C = batch.output_loss.curvature(fp.a[-1], fp.y, batch.T)
    eye = np.broadcast_to(np.eye(K), (len(fp.y), K, K))
    J = weight_sensitivities(batch.net, fp, eye)[:, :, columns]
    return np.einsum("nkw,nkl,nlv->wv", J, C, J)
