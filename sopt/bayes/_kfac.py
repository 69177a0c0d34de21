"""The Kronecker-factored (K-FAC) structure: the Gauss-Newton matrix as one
Kronecker product per weight matrix (Martens and Grosse 2015, "Optimizing
neural networks with Kronecker-factored approximate curvature", ICML; the
Laplace approximation on it: Ritter, Botev and Barber 2018, "A scalable
Laplace approximation for neural networks", ICLR; its log evidence: Immer
et al. 2021, "Scalable marginal likelihood estimation for model selection
in deep learning", ICML).

The factors. An edge e: a_l += W_e x of a layer l (W_e (fan_out, fan_in),
stored row-major in w: weight (o, i) at o * fan_in + i) contributes
J_n = (d_nr ⊗ x_n) per output-curvature factor r to pattern n's Jacobian,
with x_n the edge's source values z and d_nr the r-th Gauss-Newton seed
backpropagated to a_l (:func:`sopt.derivatives.gauss_newton_seeds`). The
edge's Gauss-Newton block is therefore exactly sum_n B_n ⊗ x_n x_n^T with
B_n = sum_r d_nr d_nr^T. K-FAC replaces it by

    G_l ⊗ A_s,   G_l = sum_n B_n,   A_s = (1/N) sum_n x_n x_n^T,

the sum over r taken exactly (Botev, Ritter and Barber 2017, "Practical
Gauss-Newton optimisation for deep learning", ICML: "KFLR"). G_l is shared
by every edge into layer l, A_s by every edge out of node s. The bias of
layer l is an edge from a constant 1: its block G_l ⊗ [1] = sum_n B_n is
exact. The approximation is exact for N = 1 and for a linear model with a
constant B_n (the sum-of-squares error): B_n = B gives N B ⊗ A.

These are laplace-torch's ``KronLaplace`` conventions (Daxberger et al.
2021, "Laplace Redux"; version 0.3 with its default curvlinops backend and
the exact output Hessian): output factor first, summed over patterns; input
factor (1/N) sum a a^T; the bias block the output factor alone; factors'
eigenvalues clamped at 0; ln|A| = sum ln(s g_p a_q + alpha) (its
``damping=False``). Its per-tensor prior is groups="layers" (each edge's
weights, each bias). On an MLP both hold the same matrix, so the log
evidence and the GLM predictive agree up to round-off.

Blocks dropped: the precision is block diagonal with one block per edge
and one per bias. The cross blocks between a layer's weights and its
biases, between two edges into the same layer (several incoming edges,
skip-layer edges) and between layers are set to zero.

Masked weights: restricted to its used entries, an edge's block
(G_l ⊗ A_s)[used, used] is no longer a Kronecker product; it is held as a
dense (m, m) matrix for the edge's m used weights and eigendecomposed
(memory 8 m^2 bytes, m^3 to build). So is a bias of which only some
entries are covered.

The prior. Each Kronecker block is held as eigendecompositions
G = Q_G diag(g) Q_G^T, A = Q_A diag(a) Q_A^T, so that
diag(alpha) + s G ⊗ A = (Q_G ⊗ Q_A) diag(s g ⊗ a + alpha) (Q_G ⊗ Q_A)^T for
any alpha and s without refactorising. This needs one alpha on each block
(groups "single" or "layers"; "inputs" varies alpha inside the input
edges' blocks and is refused). The factors are Gram matrices: their
negative eigenvalues are round-off, set to zero whatever ``clip_negative``.

Memory: 16 (sum over layers fan_out^2 + sum over source nodes fan_in^2)
bytes for the factors and their eigenvectors, 8 W for the blocks'
positions, plus 8 m^2 per masked edge, never 8 W^2; a precision adds 8 W
bytes. Cost: building the factors Theta(N sum_l K fan_out^2 + N sum_s
fan_in^2 + K N W) (one backward pass of K seeds per pattern), in batches
of bounded memory (about 32 MB of work arrays); factorising
Theta(sum fan_out^3 + fan_in^3); log det and a new alpha Theta(W);
diag(A^{-1}) and a solve Theta(sum_e fan_out fan_in (fan_out + fan_in));
output variances of N points Theta(N K sum_l fan_out^2 + N sum_e fan_in
(fan_in + fan_out)), never the (N, K, W) Jacobian.
"""
from __future__ import annotations

import numbers

import numpy as np
from scipy.linalg import eigh

from .._threads import blas_threads_for
from ..derivatives import SENSITIVITY_DOUBLES, gauss_newton_seeds, items_in_budget
from ..network import matmul_rows
from ._structure import Curvature, Linearisation, Precision, StructureSpec, check_assemble

Array = np.ndarray
ALPHA_PER_BLOCK = ("K-FAC needs one alpha per Kronecker block: groups='single' "
                   "or 'layers'")


class KFAC(StructureSpec):
    """Kronecker-factored Gauss-Newton per edge and bias (see the module)."""

    name = "kfac"
    kinds = ("gauss_newton",)

    def build(self, data, w_map, used, kind, clip_negative, max_bytes):
        if kind not in self.kinds:
            raise ValueError(f"kfac: the curvature is the Gauss-Newton matrix "
                             f"only, got kind={kind!r}")
        net = data.net
        size = items_in_budget(_doubles_per_pattern(net), SENSITIVITY_DOUBLES)
        G, S, n = split_factor_sums(net, data.sum_over_batches(
            w_map, kronecker_factor_sums, size=size))
        A = [None if s is None else s / n for s in S]
        return KFACCurvature(used, kind, net, G, A, n, max_bytes)


# ----- the statistic (one data pass, sharded too) -----
def source_nodes(net) -> list:
    """The nodes feeding at least one edge, by index."""
    nodes = {e.source.index: e.source for layer in net.layers for e in layer.edges}
    return [nodes[i] for i in sorted(nodes)]


def _doubles_per_pattern(net) -> int:
    """Work memory per pattern of :func:`kronecker_factor_sums`: the forward
    pass and a backward sweep of K seeds (K + 3 values per unit)."""
    units = sum(layer.size for layer in net.layers)
    return (net.n_outputs + 3) * units + net.n_inputs


def kronecker_factor_sums(batch) -> Array:
    """sum_n B_n per layer and sum_n x_n x_n^T per source node over the
    patterns of ``batch`` (a :class:`sopt.evaluation.BatchPass`), and N:
    one flat array (sharded sums add it), split by :func:`split_factor_sums`.
    Cost Theta(K N W + N sum_l K fan_out^2 + N sum_s fan_in^2); memory
    O(K N U)."""
    net, fp = batch.net, batch.fp
    deltas = net.backward(fp, gauss_newton_seeds(batch)).deltas
    parts = []
    for d in deltas:
        d = d.reshape(-1, d.shape[-1])
        parts.append((d.T @ d).ravel())      # numpy takes d^T d as a syrk
    for node in source_nodes(net):
        x = fp.z[node.index]
        parts.append((x.T @ x).ravel())
    parts.append(np.array([float(len(fp.y))]))
    return np.concatenate(parts)


def split_factor_sums(net, flat: Array) -> tuple[list, list, float]:
    """(G per layer, S per node (None if it feeds nothing), N) from the
    flat sums of :func:`kronecker_factor_sums`."""
    G, start = [], 0
    for layer in net.layers:
        m = layer.size
        G.append(_symmetric(flat[start:start + m * m].reshape(m, m)))
        start += m * m
    S = [None] * len(net.layers)
    for node in source_nodes(net):
        m = node.size
        S[node.index] = _symmetric(flat[start:start + m * m].reshape(m, m))
        start += m * m
    return G, S, float(flat[start])


def _symmetric(M: Array) -> Array:
    """(M + M^T) / 2: exactly symmetric (a product BLAS did not take as a
    syrk, or a sum over shards, may differ from its transpose by round-off)."""
    return 0.5 * (M + M.T)


# ----- the blocks -----
def nonnegative_eigh(M: Array) -> tuple[Array, Array]:
    """Eigenvalues (clipped at 0: round-off of a Gram matrix) and
    eigenvectors of a symmetric M, by divide and conquer (LAPACK's syevd:
    the fastest driver for all eigenvectors). Cost O(m^3)."""
    lam, Q = eigh(M, driver="evd")
    return np.maximum(lam, 0.0), Q


class KroneckerBlock:
    """One edge's (or bias's) block G ⊗ A on its weights, all covered:
    ``positions`` (fan_out * fan_in,) in the covered vector, row-major.
    ``source`` the Node feeding the edge, None for the bias (x = 1)."""

    def __init__(self, layer: int, source, positions: Array, g_eig, a_eig):
        self.layer, self.source, self.positions = layer, source, positions
        (self.g, self.QG), (self.a, self.QA) = g_eig, a_eig

    @property
    def spectrum(self) -> Array:
        """Eigenvalues of G ⊗ A, (fan_out, fan_in): entry (p, q) is g_p a_q."""
        return np.outer(self.g, self.a)

    def rotate(self, X: Array, transpose: bool = False) -> Array:
        """(Q_G ⊗ Q_A) X, or its transpose, for X (fan_out * fan_in, P), by
        the vec trick: Q_G X_p Q_A^T per column. Cost Theta(P fo fi (fo + fi))."""
        QG, QA = (self.QG.T, self.QA.T) if transpose else (self.QG, self.QA)
        fo, fi, P = len(self.g), len(self.a), X.shape[1]
        Y = (QG @ X.reshape(fo, fi * P)).reshape(fo, fi, P)
        # one 2-D product: numpy's stacked matmul is many times slower
        Y = matmul_rows(Y.transpose(0, 2, 1), QA.T)        # (fo, P, fi)
        return Y.transpose(0, 2, 1).reshape(fo * fi, P)

    def inverse_diagonal(self, D: Array) -> Array:
        """diag((Q_G ⊗ Q_A) diag(D)^{-1} (Q_G ⊗ Q_A)^T) = (Q_G^2) D^{-1} (Q_A^2)^T."""
        return ((self.QG ** 2) @ (1.0 / D) @ (self.QA ** 2).T).ravel()

    def matrix(self, D: Array) -> Array:
        """(Q_G ⊗ Q_A) diag(D) (Q_G ⊗ Q_A)^T, dense (tests only)."""
        Q = np.kron(self.QG, self.QA)
        return (Q * D.ravel()) @ Q.T


class EigenBlock:
    """A block held densely as V diag(lam) V^T: an edge's (G ⊗ A)
    restricted to its used entries (masked), or a partly covered bias.
    ``rows``, ``cols`` (m,): each weight's (o, i) in the edge's matrix."""

    def __init__(self, layer: int, source, positions: Array, rows: Array,
                 cols: Array, G: Array, A: Array):
        self.layer, self.source, self.positions = layer, source, positions
        self.rows, self.cols = rows, cols
        self.spectrum, self.V = nonnegative_eigh(
            G[np.ix_(rows, rows)] * A[np.ix_(cols, cols)])

    def rotate(self, X: Array, transpose: bool = False) -> Array:
        return (self.V.T if transpose else self.V) @ X

    def inverse_diagonal(self, D: Array) -> Array:
        return (self.V ** 2) @ (1.0 / D)

    def matrix(self, D: Array) -> Array:
        return (self.V * D) @ self.V.T

    def jacobian(self, d: Array, x: Array) -> Array:
        """The block's columns of df/dw, (N, K, m), for d (N, K, fan_out) and
        x (N, fan_in). Memory N K m."""
        return d[:, :, self.rows] * x[:, None, self.cols]


BIAS_FACTOR = (np.ones(1), np.ones((1, 1)))    # the constant input of a bias


def factor_eigh(net, G: list, A: list) -> tuple[list, dict]:
    """Eigendecompositions of every G_l (by layer) and A_s (by node index;
    None: the bias's constant input). Cost O(sum fo^3 + sum fi^3), on one
    BLAS thread below the size where threads pay (:mod:`sopt._threads`)."""
    largest = max([len(Gl) for Gl in G] + [n.size for n in source_nodes(net)])
    with blas_threads_for(largest):
        g_eig = [nonnegative_eigh(Gl) for Gl in G]
        a_eig = {node.index: nonnegative_eigh(A[node.index])
                 for node in source_nodes(net)}
    a_eig[None] = BIAS_FACTOR
    return g_eig, a_eig


def make_blocks(net, covered: Array, G: list, A: list, g_eig: list, a_eig: dict,
                max_bytes=None) -> list:
    """The blocks of every edge and bias on the covered weights: Kronecker
    where all of an edge's (bias's) weights are covered, dense otherwise
    (MemoryError above ``max_bytes`` bytes in all)."""
    position = np.full(net.n_weights, -1)
    position[covered] = np.arange(len(covered))
    blocks, dense_bytes = [], 0
    for li, layer in enumerate(net.layers):
        parts = [(e.source, e.indices()) for e in layer.edges]
        parts.append((None, np.arange(layer.bias_slice.start,
                                      layer.bias_slice.stop)[:, None]))
        for source, index in parts:
            pos = position[index]
            key = None if source is None else source.index
            if np.all(pos >= 0):
                blocks.append(KroneckerBlock(li, source, pos.ravel(), g_eig[li],
                                             a_eig[key]))
            elif np.any(pos >= 0):
                rows, cols = np.nonzero(pos >= 0)
                dense_bytes += 8 * len(rows) ** 2
                _check_dense_bytes(dense_bytes, max_bytes)
                A_s = BIAS_FACTOR[1] if source is None else A[source.index]
                blocks.append(EigenBlock(li, source, pos[rows, cols], rows, cols,
                                         G[li], A_s))
    if sum(len(b.positions) for b in blocks) != len(covered):
        raise ValueError("kfac: covered weights must be distinct weight indices")
    return blocks


def _check_dense_bytes(n_bytes: int, max_bytes) -> None:
    if max_bytes is not None and n_bytes > max_bytes:
        raise MemoryError(f"kfac: the dense blocks of the masked edges would take "
                          f"{n_bytes / 2 ** 30:.2f} GiB, over max_bytes = "
                          f"{max_bytes / 2 ** 30:.2f} GiB")


# ----- the curvature and its precision -----
class KFACCurvature(Curvature):
    """H as per-layer G_l (fan_out, fan_out), per-node A_s (fan_in, fan_in)
    (None where a node feeds nothing), their eigendecompositions and the
    dense blocks of masked edges. ``n_data`` the N of A's 1/N."""

    name = "kfac"

    def __init__(self, covered, kind: str, net, G: list, A: list, n_data: float,
                 max_bytes=None):
        super().__init__(covered, kind)
        self.net, self.G, self.A, self.n_data = net, G, A, n_data
        self.g_eig, self.a_eig = factor_eigh(net, G, A)
        self.blocks = make_blocks(net, self.covered, G, A, self.g_eig, self.a_eig,
                                  max_bytes)

    def block_alphas(self, alpha: Array) -> list:
        """alpha's one value on each block (ValueError if it is not constant)."""
        alpha = np.asarray(alpha, dtype=float)
        if alpha.shape != self.covered.shape:
            raise ValueError(f"alpha: expected shape {self.covered.shape}, got "
                             f"{alpha.shape}")
        values = []
        for b in self.blocks:
            a = alpha[b.positions]
            if a.min() != a.max():
                raise ValueError(ALPHA_PER_BLOCK)
            values.append(float(a[0]))
        return values

    def precision(self, alpha, scale):
        return KFACPrecision(self, self.block_alphas(alpha), float(scale))

    def matrix(self):
        return _assemble(self, [b.spectrum for b in self.blocks], "the K-FAC curvature")

    def scaled_eigenvalues(self, alpha):
        values = [b.spectrum.ravel() / a
                  for b, a in zip(self.blocks, self.block_alphas(alpha))]
        return np.sort(np.concatenate(values))

    @property
    def nbytes(self) -> int:
        held = [M for M in (*self.G, *self.A) if M is not None]
        held += [v for pair in (*self.g_eig, *self.a_eig.values()) for v in pair]
        held += [b.V for b in self.blocks if isinstance(b, EigenBlock)]
        held += [b.positions for b in self.blocks]
        return int(sum(M.nbytes for M in held))

    def state(self) -> dict:
        return {"covered": self.covered, "kind": self.kind, "n_data": self.n_data,
                "G": list(self.G),
                "A": [np.zeros((0, 0)) if M is None else M for M in self.A]}

    @classmethod
    def from_state(cls, state, net):
        covered, n = state.get("covered"), state.get("n_data")
        if not (isinstance(covered, np.ndarray) and covered.ndim == 1
                and covered.dtype.kind in "iu"
                and np.all((covered >= 0) & (covered < net.n_weights))
                and len(np.unique(covered)) == len(covered)):
            raise ValueError("kfac curvature: covered is not a vector of distinct "
                             "weight indices of its network")
        if state.get("kind") != "gauss_newton":
            raise ValueError("kfac curvature: kind must be 'gauss_newton'")
        if isinstance(n, bool) or not isinstance(n, numbers.Real) or not n > 0:
            raise ValueError("kfac curvature: n_data must be a positive number")
        G = _factor_list(state.get("G"), [l.size for l in net.layers], "G")
        sources = {node.index for node in source_nodes(net)}
        sizes = [net.input.size] + [l.size for l in net.layers[:-1]]
        A = _factor_list(state.get("A"), [m if i in sources else 0
                                          for i, m in enumerate(sizes)], "A")
        A = [M if i in sources else None for i, M in enumerate(A)]
        return cls(covered, "gauss_newton", net, G, A, float(n))


def _factor_list(factors, sizes: list, name: str) -> list:
    """A list of finite symmetric float (m, m) matrices, one per size."""
    ok = isinstance(factors, (list, tuple)) and len(factors) == len(sizes)
    for M, m in zip(factors if ok else [], sizes):
        ok = ok and (isinstance(M, np.ndarray) and M.dtype == float
                     and M.shape == (m, m) and bool(np.all(np.isfinite(M)))
                     and np.array_equal(M, M.T))
    if not ok:
        raise ValueError(f"kfac curvature: {name} is not a list of {len(sizes)} "
                         f"finite symmetric matrices of sizes {sizes}")
    return list(factors)


def _assemble(curv: KFACCurvature, spectra: list, what: str) -> Array:
    """The block-diagonal (W_c, W_c) matrix with each block's eigenvalues
    replaced by ``spectra`` (tests and small W only)."""
    n = len(curv.covered)
    check_assemble(n, what, "kfac")
    M = np.zeros((n, n))
    for b, D in zip(curv.blocks, spectra):
        M[np.ix_(b.positions, b.positions)] = b.matrix(D)
    return M


class KFACPrecision(Precision):
    """A = diag(alpha) + s H block by block: eigenvalues D_b = s spectrum_b
    + alpha_b on each block's eigenvectors. Memory 8 W_c bytes."""

    def __init__(self, curv: KFACCurvature, alphas: list, scale: float):
        self.curv = curv
        self.D = [scale * b.spectrum + a for b, a in zip(curv.blocks, alphas)]
        if not all(np.all(D > 0) for D in self.D):
            raise np.linalg.LinAlgError("kfac precision: not positive definite")
        self.log_det = float(sum(np.sum(np.log(D)) for D in self.D))

    def inverse_diagonal(self):
        out = np.empty(len(self.curv.covered))
        for b, D in zip(self.curv.blocks, self.D):
            out[b.positions] = b.inverse_diagonal(D)
        return out

    def solve(self, B):
        B = np.asarray(B, dtype=float)
        X = B.reshape(len(B), -1)
        out = np.empty_like(X)
        for b, D in zip(self.curv.blocks, self.D):
            Y = b.rotate(X[b.positions], transpose=True) / D.reshape(-1, 1)
            out[b.positions] = b.rotate(Y)
        return out.reshape(B.shape)

    def draw(self, E):
        out = np.empty_like(E, dtype=float)
        for b, D in zip(self.curv.blocks, self.D):
            out[b.positions] = b.rotate(E[b.positions] / np.sqrt(D).reshape(-1, 1))
        return out

    def matrix(self):
        return _assemble(self.curv, self.D, "the K-FAC precision")

    def doubles_per_row(self, n_outputs: int) -> int:
        """Work memory of :meth:`output_covariance` per input row: the
        forward pass, K deltas per unit and their rotations, and a masked
        block's Jacobian; never K W as the dense Jacobian would take."""
        net = self.curv.net
        units = net.n_inputs + sum(layer.size for layer in net.layers)
        masked = sum(len(b.positions) for b in self.curv.blocks
                     if isinstance(b, EigenBlock))
        return (2 * n_outputs + 4) * units + n_outputs * masked

    def output_covariance(self, lin: Linearisation, full: bool):
        """J A^{-1} J^T per row without the Jacobian: per layer the deltas
        d (N, K, fan_out) rotated once by Q_G, per node x by Q_A; then
        sum_p d'_kp d'_lp U_p with U_p = sum_e sum_q x'_q^2 / D_e[p, q].
        Cost Theta(N K sum_l fan_out^2 + N sum_e fan_in (fan_in + fan_out)
        + N K^2 sum_l fan_out); masked blocks N K m^2."""
        deltas, N = lin.deltas(), lin.n_rows
        K = deltas[-1].shape[1]
        out = np.zeros((N, K, K) if full else (N, K))
        rotated_x: dict = {}
        by_layer: dict = {}
        for b, D in zip(self.curv.blocks, self.D):
            x = _source_values(lin, b.source, N)
            if isinstance(b, EigenBlock):
                V = matmul_rows(b.jacobian(deltas[b.layer], x), b.V / np.sqrt(D))
                out += _gram(V, full)
                continue
            key = None if b.source is None else b.source.index
            if key not in rotated_x:
                rotated_x[key] = (x @ b.QA) ** 2
            U = rotated_x[key] @ (1.0 / D).T                 # (N, fan_out)
            QG, U0 = by_layer.get(b.layer, (b.QG, 0.0))
            by_layer[b.layer] = (QG, U0 + U)
        for layer, (QG, U) in by_layer.items():
            d = matmul_rows(deltas[layer], QG)               # (N, K, fan_out)
            out += _gram(d * np.sqrt(U)[:, None, :], full)
        return out


def _source_values(lin: Linearisation, source, n: int) -> Array:
    """x of a block's edge, (N, fan_in); ones (N, 1) for a bias."""
    return np.ones((n, 1)) if source is None else lin.source_values(source)


def _gram(V: Array, full: bool) -> Array:
    """V V^T per row, (N, K, K), or its diagonal (N, K), for V (N, K, m)."""
    if full:
        return np.matmul(V, V.transpose(0, 2, 1))
    return np.einsum("nkm,nkm->nk", V, V)
