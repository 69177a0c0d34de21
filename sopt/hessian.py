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

The first two terms are computed together, block by block: every weight of
layer l is (unit j, input f) with d a_lj / dw = z_f, so the block between
layers l and l' is sum_n Lambda_n[j, j'] z_nf z'_nf', Lambda = d2E/(da da')
seen through the output and every hidden layer's curvature. That is one
matrix product over patterns per pair of layers (:class:`_ExactBlockAccumulator`),
about N W_l^2 / 2 flops for a diagonal block against N K W^2 for J^T M J.
The bilinear terms are small for shallow networks. ``algorithm="rop"``
(R-propagation along every unit direction) is the independent check.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ._deprecation import warn_renamed
from ._validation import (DEFAULT_MAX_BYTES, check_dense_size,  # noqa: F401 (re-exported)
                          check_choice, check_positive_int)
from .derivatives import (edge_gradient, gauss_newton_vector_products,
                          hessian_vector_products, items_in_budget)
from .network import ForwardPass, Layer, Network, add_to

Array = np.ndarray

#: Doubles of per-chunk work arrays the dense methods aim for (~64 MB).
CHUNK_DOUBLES = 8 * 2**20
#: The least the exact Hessian's chunks aim for (16 MB): below it the
#: products over patterns get too short to run at the matrix-product rate.
CHUNK_FLOOR_DOUBLES = 2**21


@dataclass(frozen=True)
class _ParameterPositions:
    """Where a layer's own parameters (its weights and biases) sit in w,
    unit by unit.

    ``cols[j, f]`` is the index in w of the f-th parameter of unit j (the
    concatenated incoming weights of all edges, then the bias); ``mask[j, f]``
    is 0 for masked connections (None: no masks).
    """

    cols: Array
    mask: Array | None
    start: int                  # first weight of the layer: the prefix length

    @classmethod
    def of(cls, layer: Layer) -> "_ParameterPositions":
        M, edges = layer.size, layer.edges
        cols = np.hstack([e.indices() for e in edges]
                         + [layer.bias_slice.start + np.arange(M)[:, None]])
        mask = None
        if any(e.mask is not None for e in edges):
            mask = np.hstack([e.dense_mask() for e in edges] + [np.ones((M, 1))])
        return cls(_read_only(cols), None if mask is None else _read_only(mask),
                   edges[0].weights.start)


def _inputs_with_one(fp: ForwardPass, layer: Layer) -> Array:
    """[z_src1, z_src2, ..., 1] of a layer, shape (N, fan_in + 1)."""
    return np.hstack([fp.z[src.index] for src in layer.sources]
                     + [np.ones((len(fp.y), 1))])


def _unit_offsets(net: Network) -> list[int]:
    """Position of each layer's first unit among all non-input units."""
    return list(np.cumsum([0] + [layer.size for layer in net.layers]))


def _pre_jacobians(net: Network, edges: list, hp: list, offs: list, n: int) -> list:
    """P_m = d a_m / d a_{<m}, shape (n, M_m, offs[m]): how each layer's
    pre-activations depend on those of all earlier layers (zero where there is
    no path). P_m = sum_{e: src -> m} W_e diag(h'_src) [P_src | I | 0]."""
    P = []
    for li, layer in enumerate(net.layers):
        Pm = np.zeros((n, layer.size, offs[li]))
        for e in edges[li]:
            if e.source.index == 0:
                continue
            si = e.source.index - 1
            Wh = e.W[None, :, :] * hp[si][:, None, :]
            Pm[:, :, offs[si]:offs[si + 1]] += Wh
            if offs[si]:
                Pm[:, :, :offs[si]] += Wh @ P[si]
        P.append(Pm)
    return P


def _curvature_weights(net, batch, kind: str) -> list:
    """C_m: (n, K, K) at the outputs (``kind`` "exact" or "gauss_newton"),
    and for hidden layers the diagonal g_m h''(a_m) as (n, M_m) (exact
    only, else None)."""
    exact = kind == "exact"
    fp, output_loss, T = batch.fp, batch.output_loss, batch.T
    a, y = fp.a[-1], fp.y
    out = (output_loss.curvature(a, y, T) if exact
           else output_loss.gauss_newton_curvature(a, y, T))
    gz = batch.backward.z_adjoints if exact else None
    hidden = [gz[li] * fp.d2h(li + 1) if exact else None
              for li in range(len(net.layers) - 1)]
    return hidden + [out]


def _stacked_product(A: Array, B: Array) -> Array:
    """A[n]^T B[n] for stacks (n, k, p) and (n, k, q).

    numpy's stacked matmul pays a few microseconds per matrix; when each
    product is tiny (k p q below ~2500) the sum of k outer products costs
    less."""
    n, k, p = A.shape
    if k * p * B.shape[2] > 2500:
        return A.transpose(0, 2, 1) @ B
    out = A[:, 0, :, None] * B[:, 0, None, :]
    for i in range(1, k):
        out += A[:, i, :, None] * B[:, i, None, :]
    return out


def _unit_curvature(P: list, C: list, offs: list) -> Array:
    """Lambda = sum_m [P_m | I]^T C_m [P_m | I] over all units, (n, U, U):
    d2E/(da da') seen through every curvature vertex m (Bishop's b_jl)."""
    n, U = len(P[-1]), offs[-1]
    Lam = np.zeros((n, U, U))
    for li, (Pm, Cm) in enumerate(zip(P, C)):
        if Cm is None:
            continue
        o, sl = offs[li], slice(offs[li], offs[li + 1])
        if Cm.ndim == 2:                      # diagonal, hidden layer
            CP = Cm[:, :, None] * Pm
            idx = np.arange(o, offs[li + 1])
            Lam[:, idx, idx] += Cm
        else:
            CP = _stacked_product(Cm.transpose(0, 2, 1), Pm)     # C P
            Lam[:, sl, sl] += Cm
        if o:
            Lam[:, :o, :o] += _stacked_product(Pm, CP)           # P^T C P
            Lam[:, sl, :o] += CP
            Lam[:, :o, sl] += CP.transpose(0, 2, 1)
    return Lam


@lru_cache(maxsize=128)
def _triu_pairs(k: int) -> tuple[Array, Array, Array]:
    """Upper-triangle pairs (i <= j) of a k x k matrix and the (k, k) map from
    (i, j) to the pair's index (symmetric); read-only, kept per k."""
    iu, ju = np.triu_indices(k)
    index = np.empty((k, k), dtype=np.intp)
    index[iu, ju] = index[ju, iu] = np.arange(len(iu))
    return _read_only(iu), _read_only(ju), _read_only(index)


def _read_only(a: Array) -> Array:
    a.flags.writeable = False
    return a


def _upper_pairs(B: Array) -> Array:
    """For each row, the pairs i <= j of the last axis in np.triu_indices
    order, (n, k (k + 1) / 2), stored pairs-major (the transpose of a
    C-ordered array): the products B[:, i] B[:, j] for a 2-D B of k columns,
    the entries B[:, i, j] for a 3-D B. Built from slices, not fancy
    indexing: a gather of the same values costs several times the matrix
    product that follows it."""
    n, k = len(B), B.shape[-1]
    out = np.empty((k * (k + 1) // 2, n))
    rows = np.ascontiguousarray(B.T) if B.ndim == 2 else None     # (k, n)
    start = 0
    for i in range(k):
        part = out[start:start + k - i]
        if rows is not None:
            np.multiply(rows[i], rows[i:], out=part)
        else:
            part[...] = B[:, i, i:].T
        start += k - i
    return out.T


#: Below this many unit pairs M (M + 1) / 2 a layer's own block is summed by
#: one product per unit (_add_diagonal_by_unit) rather than over gathered
#: pairs: the gather of F (F + 1) / 2 input pairs per pattern cost about as
#: much as 40 flops of the product per element on one core (measured on a
#: 2-unit layer of 65 inputs: 7.8 ms gather, 2.8 ms product for 1257
#: patterns), so pairs pay only where many unit pairs share each gather.
DIRECT_MAX_UNIT_PAIRS = 36

#: Up to this many weights the exact Hessian's blocks go into H through a
#: (W, W) index kept with the network (4 W^2 bytes: 16 MB at the limit),
#: instead of computing the indices block by block on every call, which
#: cost about a seventh of a 2-unit digits network's Hessian.
FULL_INDEX_MAX_WEIGHTS = 2048
#: Rows of H per gather when the blocks go into H, either way.
SCATTER_ROWS = 256


class _ExactBlockAccumulator:
    """Accumulates sum_n Lambda_n^{ll'} (x) z_n^l z_n^l'^T over pattern chunks:
    the exact layer blocks of the Hessian (or of the Gauss-Newton matrix).

    Every weight of layer l is (unit j, input f) with d a_lj/dw = z^l_f (z^l =
    the layer's inputs and a 1 for the bias), so the block of H between
    layers l and l' is sum_n Lambda_n[j, j'] z_nf z_nf'. That is one matrix
    product over patterns, (M_l M_l' x n)(n x F_l F_l'): 2 n W_l W_l' flops
    for l != l' and, using the symmetry in (j, j') and in (f, f'), about
    n W_l^2 / 2 for l = l' (against n K W^2 for J^T M J); for layers of few
    units, one product per unit instead (``_add_*_by_unit``), which avoids
    gathering the (n, F_l F_l') input pairs.

    Exact, not Kronecker-factored: each pattern's Kronecker product is
    summed as it is, with nothing dropped. K-FAC (Martens and Grosse, ICML
    2015) approximates the same sum by the Kronecker product of the two
    pattern sums, (sum_n Lambda_n) (x) (sum_n z_n z_n^T) / N, which equals
    it only when Lambda_n and z_n z_n^T are uncorrelated over patterns.
    """

    def __init__(self, layout: "_BlockLayout"):
        self.layout = layout
        self.sizes, self.fans = layout.sizes, layout.fans
        self.pairs_M, self.pairs_F = layout.pairs_M, layout.pairs_F
        # every block a view of one buffer, whose last entry stays 0 (where
        # masked weights gather from in scatter)
        self.buffer = np.zeros(layout.buffer_size + 1)
        self.Q = {key: self.buffer[o:o + rows * cols].reshape(rows, cols)
                  for key, (o, rows, cols) in layout.blocks.items()}

    def add(self, Lam: Array, offs: list, Zs: list) -> None:
        n = len(Lam)
        for (l, lp), Q in self.Q.items():
            block = Lam[:, offs[l]:offs[l + 1], offs[lp]:offs[lp + 1]]
            if l == lp and len(self.pairs_M[l][0]) < DIRECT_MAX_UNIT_PAIRS:
                self._add_diagonal_by_unit(Q, block, Zs[l], l)
            elif l == lp:
                Q += _upper_pairs(block).T @ _upper_pairs(Zs[l])
            elif self.sizes[l] * self.sizes[lp] < self.fans[l]:
                self._add_cross_by_unit(Q, block, Zs[l], Zs[lp], l, lp)
            else:
                Z = (Zs[l][:, :, None] * Zs[lp][:, None, :]).reshape(n, -1)
                Q += block.reshape(n, -1).T @ Z

    def _add_diagonal_by_unit(self, Q: Array, block: Array, Z: Array, l: int) -> None:
        """Q += the pairs layout of sum_n Lambda_n[j, j'] z_n z_n^T, one
        product Z^T (Lambda[:, j, j:] z) per unit j: about twice the flops
        of the pairs product, without its (n, F (F + 1) / 2) gather, which
        costs more than the product where the layer has few units."""
        M, F = self.sizes[l], self.fans[l]
        iu, ju, _ = self.pairs_F[l]
        row = 0
        for j in range(M):
            Y = (block[:, j, j:, None] * Z[:, None, :]).reshape(len(Z), -1)
            R = (Z.T @ Y).reshape(F, M - j, F)
            Q[row:row + M - j] += R[iu, :, ju].T
            row += M - j

    def _add_cross_by_unit(self, Q: Array, block: Array, Z: Array, Zp: Array,
                           l: int, lp: int) -> None:
        """Q (M_l M_l', F_l F_l') += sum_n Lambda_n[j, j'] z_nf z'_nf', one
        product Z^T (Lambda[:, j, :] z') per unit j of layer l: the same flops
        as the outer-product form with an (n, M_l' F_l') temporary instead
        of (n, F_l F_l'), for layers of fewer units than inputs."""
        M, Mp, F, Fp = self.sizes[l], self.sizes[lp], self.fans[l], self.fans[lp]
        out = Q.reshape(M, Mp, F, Fp)
        for j in range(M):
            Y = (block[:, j, :, None] * Zp[:, None, :]).reshape(len(Z), -1)
            out[j] += (Z.T @ Y).reshape(F, Mp, Fp).transpose(1, 0, 2)

    def scatter(self, H: Array) -> None:
        """Add the blocks into H in layout order, masked weights zeroed:
        gathered through the layout's kept (W, W) index where the layout
        keeps one (:meth:`_BlockLayout.full_index`), else block by block;
        SCATTER_ROWS rows of H at a time either way, so that the temporaries
        stay O(SCATTER_ROWS W)."""
        full = self.layout.full_index()
        if full is not None:
            for r0 in range(0, len(full), SCATTER_ROWS):
                H[r0:r0 + SCATTER_ROWS] += self.buffer[full[r0:r0 + SCATTER_ROWS]]
            return
        for (l, lp) in self.Q:
            (s0, unit, _, _), (t0, unit_c, _, _) = self.layout.where[l], self.layout.where[lp]
            for r0 in range(0, len(unit), SCATTER_ROWS):
                block = self.buffer[self.layout.block_index(l, lp, r0, r0 + SCATTER_ROWS)]
                rows = slice(s0 + r0, s0 + r0 + len(block))
                H[rows, t0:t0 + len(unit_c)] += block
                if l != lp:
                    H[t0:t0 + len(unit_c), rows] += block.T

@dataclass(frozen=True, eq=False)
class _BlockLayout:
    """What the exact Hessian needs of a network's layout, per layer: where
    its parameters sit (``positions``, and ``where``: the first index and each
    weight's unit j, input f and mask in layout order), the unit offsets, the
    sizes M_l and fans F_l (inputs + 1), and the pairs of units and of
    inputs. Built once per network (:meth:`of`): on a small network that
    index work costs as much as the Hessian's products."""

    positions: list
    offs: list
    sizes: list
    fans: list
    pairs_M: list
    pairs_F: list
    where: list
    #: (l, l') -> (offset, rows, columns) of each block in the accumulator's buffer
    blocks: dict
    buffer_size: int
    _kept: dict

    @classmethod
    def of(cls, net: Network) -> "_BlockLayout":
        """The layout of ``net``, kept while the network lives. A network only
        grows by appending layers, which leaves the earlier ones' weights
        where they were, so a kept layout with as many layers is current."""
        kept = _LAYOUTS.get(net)
        if kept is not None and len(kept.sizes) == len(net.layers):
            return kept
        positions = [_ParameterPositions.of(layer) for layer in net.layers]
        sizes = [layer.size for layer in net.layers]
        fans = [p.cols.shape[1] for p in positions]
        pairs_M, pairs_F = [_triu_pairs(m) for m in sizes], [_triu_pairs(f) for f in fans]
        blocks, offset = {}, 0
        for l in range(len(sizes)):
            for lp in range(l, len(sizes)):
                rows = len(pairs_M[l][0]) if l == lp else sizes[l] * sizes[lp]
                cols = len(pairs_F[l][0]) if l == lp else fans[l] * fans[lp]
                blocks[l, lp] = (offset, rows, cols)
                offset += rows * cols
        layout = cls(positions, _unit_offsets(net), sizes, fans, pairs_M, pairs_F,
                     [_weight_layout(at, f) for at, f in zip(positions, fans)],
                     blocks, offset, {})
        _LAYOUTS[net] = layout
        return layout

    def block_index(self, l: int, lp: int, r0: int, r1: int) -> Array:
        """For rows r0:r1 of layer l's weights (layout order) against all of
        layer l''s: where each entry of that part of H sits in the
        accumulator's buffer (the buffer's last, zero entry for a masked
        weight). Shape (r1 - r0, W_l') or less at the layer's end."""
        (_, unit, inp, mask), (_, unit_c, inp_c, mask_c) = self.where[l], self.where[lp]
        j, f = unit[r0:r1, None], inp[r0:r1, None]
        if l == lp:
            n_f = len(self.pairs_F[l][0])
            index = (self.pairs_M[l][2][j, unit_c[None, :]] * n_f
                     + self.pairs_F[l][2][f, inp_c[None, :]])
        else:       # the block as (M_l, M_l', F_l, F_l')
            index = (((j * self.sizes[lp] + unit_c[None, :]) * self.fans[l] + f)
                     * self.fans[lp] + inp_c[None, :])
        index += self.blocks[l, lp][0]
        if mask is not None:
            index[mask[r0:r1] == 0, :] = self.buffer_size
        if mask_c is not None:
            index[:, mask_c == 0] = self.buffer_size
        return index

    def full_index(self) -> Array | None:
        """The (W, W) buffer index of every entry of H, kept with the layout
        once built, for networks of at most FULL_INDEX_MAX_WEIGHTS weights
        (None for larger ones, whose index of 4 W^2 bytes would be kept for
        as long as the network lives)."""
        W = sum(len(where[1]) for where in self.where)
        if W > FULL_INDEX_MAX_WEIGHTS:
            return None
        if "full" not in self._kept:
            full = np.empty((W, W), dtype=np.int32 if self.buffer_size < 2**31 else np.intp)
            for (l, lp) in self.blocks:
                (s0, unit, _, _), (t0, unit_c, _, _) = self.where[l], self.where[lp]
                index = self.block_index(l, lp, 0, len(unit))
                full[s0:s0 + len(unit), t0:t0 + len(unit_c)] = index
                full[t0:t0 + len(unit_c), s0:s0 + len(unit)] = index.T
            self._kept["full"] = _read_only(full)
        return self._kept["full"]


_LAYOUTS: "weakref.WeakKeyDictionary[Network, _BlockLayout]" = weakref.WeakKeyDictionary()


def _weight_layout(at: _ParameterPositions, fan: int):
    """For a layer's weights in layout order: the first index, and each
    weight's unit j, input f and mask (None without masks)."""
    pos = at.cols.ravel() - at.start
    unit, inp = np.empty(len(pos), dtype=np.intp), np.empty(len(pos), dtype=np.intp)
    unit[pos], inp[pos] = np.divmod(np.arange(len(pos)), fan)
    mask = None
    if at.mask is not None:
        mask = np.empty(len(pos))
        mask[pos] = at.mask.ravel()
        mask = _read_only(mask)
    return at.start, _read_only(unit), _read_only(inp), mask


def _flat_mask(at: _ParameterPositions) -> Array:
    return np.ones(at.cols.size) if at.mask is None else at.mask.ravel()


def _add_bilinear_terms(H, net, fp, deltas, hp, P, offs, positions, Zs) -> None:
    """H += C_e + C_e^T for every edge e: src -> l with src a hidden layer,
    C_e[(j,i), w'] = sum_n delta_lj h'(a_src,i) d a_src,i / d w' (the term from
    a_lj = sum_i w_ji z_i being bilinear in w_ji and z_i)."""
    n = len(fp.y)
    for li, layer in enumerate(net.layers):
        d = deltas[li]
        for e in layer.edges:
            if e.source.index == 0:
                continue
            src, si = e.source, e.source.index - 1
            Dh = d[:, :, None] * hp[si][:, None, :]            # (n, M_l, M_src)
            rows, row_mask = e.indices(), e.dense_mask()
            # weights of src itself: d a_src,i / d w_(i, f) = z^src_f
            C = (Dh.reshape(n, -1).T @ Zs[si]).reshape(layer.size, src.size, -1)
            C *= row_mask[:, :, None]
            if positions[si].mask is not None:
                C *= positions[si].mask[None, :, :]
            H[rows[:, :, None], positions[si].cols[None, :, :]] += C
            H[positions[si].cols[None, :, :], rows[:, :, None]] += C
            # weights of earlier layers l': through P_src
            for lp in range(si):
                Psl = P[si][:, :, offs[lp]:offs[lp + 1]]         # (n, M_src, M_l')
                if not Psl.any():
                    continue
                X = (Dh[:, :, :, None] * Psl[:, None, :, :]).reshape(n, -1)
                B = (X.T @ Zs[lp]).reshape(layer.size * src.size, -1)
                B *= row_mask.ravel()[:, None] * _flat_mask(positions[lp])[None, :]
                r, c = rows.ravel(), positions[lp].cols.ravel()
                H[r[:, None], c[None, :]] += B
                H[c[:, None], r[None, :]] += B.T


def patterns_per_chunk(net: Network) -> int:
    """Patterns per chunk for :func:`curvature_matrix`, so that the work
    arrays stay near a quarter of the W x W result (at least
    CHUNK_FLOOR_DOUBLES, at most CHUNK_DOUBLES)."""
    layout = _BlockLayout.of(net)
    offs, sizes, fans = layout.offs, layout.sizes, layout.fans
    L = len(sizes)
    per = offs[-1] ** 2 + sum(m * o for m, o in zip(sizes, offs[:-1]))
    per += sum(sizes[l] * sizes[k] + fans[l] * fans[k]
               for l in range(L) for k in range(l, L))
    budget = max(CHUNK_FLOOR_DOUBLES, net.n_weights**2 // 4)
    return items_in_budget(per, min(CHUNK_DOUBLES, budget))


def r_pass_chunk(net: Network, other: int, most: int | None = None) -> int:
    """Patterns (for ``other`` directions) or directions (for ``other``
    patterns) per chunk of the R-passes, so that their (N, P, units) work
    arrays stay near CHUNK_DOUBLES; at most ``most``."""
    units = sum(layer.size for layer in net.layers)
    return items_in_budget(4 * units * other, CHUNK_DOUBLES, most)


#: The dense matrices :func:`curvature_matrix` and :func:`rop_hessian` build.
CURVATURE_KINDS = ("exact", "gauss_newton")

#: Which W x W matrix an objective's ``hessian(w, kind, algorithm)`` gives:
#: the exact Hessian, the Gauss-Newton matrix, or Becker and Le Cun's
#: diagonal approximation (as a diagonal matrix).
HESSIAN_KINDS = ("exact", "gauss_newton", "diagonal")

#: How it is computed: "structured" (:func:`curvature_matrix`; the backward
#: pass of :func:`diagonal_approximation` for "diagonal"), "rop" (R-passes
#: along every unit direction, :func:`rop_hessian`), "fd" (four-point
#: differences of E) or "mixed" (central differences of the backprop
#: gradient); the last two for kind="exact" only.
HESSIAN_ALGORITHMS = ("structured", "rop", "fd", "mixed")

#: The deprecated ``hessian(w, method=...)``: each method as (kind,
#: algorithm), None keeping the algorithm given.
METHOD_AS_KIND = {"exact": ("exact", None), "gauss_newton": ("gauss_newton", None),
                  "diagonal": ("diagonal", None), "fd": ("exact", "fd"),
                  "mixed": ("exact", "mixed")}


def hessian_request(kind, algorithm, method=None, kinds: tuple = HESSIAN_KINDS,
                    algorithms: tuple = HESSIAN_ALGORITHMS) -> tuple[str, str]:
    """(kind, algorithm) of a ``hessian`` call (or of a ``curvature`` call,
    which takes fewer ``kinds`` and ``algorithms``), checked: ValueError for
    a pair that does not exist (differences give the exact Hessian only;
    the diagonal has one algorithm). The deprecated
    ``method=`` (or a method's name in kind's place, "fd", "mixed") is
    mapped by :data:`METHOD_AS_KIND`, with a DeprecationWarning at the
    caller of the function that calls this one."""
    named = isinstance(kind, str)
    if method is not None and not (named and kind == "exact"):
        raise TypeError("hessian: pass kind (and algorithm), or the deprecated "
                        "method, not both")
    old = method if method is not None else kind if named and kind in ("fd", "mixed") else None
    if old is not None:
        kind, fixed = METHOD_AS_KIND[check_choice(old, "method", tuple(METHOD_AS_KIND))]
        algorithm = fixed or algorithm
        warn_renamed(f"hessian(w, method={old!r})", f"hessian(w, kind={kind!r}"
                     f"{'' if fixed is None else f', algorithm={fixed!r}'})",
                     stacklevel=4)
    check_choice(kind, "kind", kinds)
    check_choice(algorithm, "algorithm", algorithms)
    if algorithm in ("fd", "mixed") and kind != "exact":
        raise ValueError(f"algorithm: {algorithm!r} differentiates E numerically "
                         f"and gives the exact Hessian only (kind='exact'), "
                         f"not kind={kind!r}")
    if kind == "diagonal" and algorithm != "structured":
        raise ValueError(f"algorithm: the diagonal approximation is computed by "
                         f"its own backward pass (algorithm='structured'), "
                         f"not {algorithm!r}")
    return kind, algorithm


def curvature_matrix(net: Network, batches, kind: str = "exact", *,
                     exact: bool | None = None) -> Array:
    """The exact Hessian (``kind="exact"``) or the Gauss-Newton matrix
    (``kind="gauss_newton"``) of sum_n E_n over the patterns of ``batches``
    (an iterable of :class:`sopt.evaluation.BatchPass` at one w), shape
    (W, W), no weight decay; see the module docstring. ``exact`` (a bool,
    also accepted in place of ``kind``) is the deprecated spelling.

    Cost: O(N W^2) flops in a few large matrix products (dominated by
    about N (sum_l W_l^2 / 2 + sum_{l<l'} 2 W_l W_l') for the blocks) plus
    O(N U^3) for the unit curvatures. Peak memory: the W x W result plus
    about as much again for the block accumulators, and the work arrays of
    one batch (:func:`patterns_per_chunk` bounds them); for W up to
    FULL_INDEX_MAX_WEIGHTS the network also keeps a (W, W) int32 index
    (half the result's memory, 16 MiB at most) while it lives.
    """
    kind = _curvature_kind(kind, exact)
    W = net.n_weights
    layout = _BlockLayout.of(net)
    positions, offs = layout.positions, layout.offs
    acc = _ExactBlockAccumulator(layout)
    H = np.zeros((W, W))
    for batch in batches:
        fp = batch.fp
        hp = [fp.dh(li + 1) if layer.activation.elementwise else None
              for li, layer in enumerate(net.layers)]
        P = _pre_jacobians(net, fp.edges, hp, offs, len(fp.y))
        C = _curvature_weights(net, batch, kind)
        Zs = [_inputs_with_one(fp, layer) for layer in net.layers]
        acc.add(_unit_curvature(P, C, offs), offs, Zs)
        if kind == "exact":
            _add_bilinear_terms(H, net, fp, batch.backward.deltas, hp, P, offs,
                                positions, Zs)
    acc.scatter(H)
    return H


def _curvature_kind(kind, exact) -> str:
    """curvature_matrix's ``kind``, from the deprecated bool ``exact`` (as a
    keyword or in kind's place) if given; a warning at the caller of
    curvature_matrix."""
    old_positional = isinstance(kind, (bool, np.bool_))
    if exact is not None and (old_positional or kind != "exact"):
        raise TypeError("curvature_matrix: pass kind, or the deprecated exact, "
                        "not both")
    if old_positional:
        kind, exact = "exact", kind
    if exact is not None:
        new = "exact" if exact else "gauss_newton"
        warn_renamed(f"curvature_matrix(..., exact={bool(exact)})",
                     f"curvature_matrix(..., kind={new!r})", stacklevel=4)
        return new
    return check_choice(kind, "kind", CURVATURE_KINDS)


def rop_hessian(net: Network, batches, kind: str = "exact") -> Array:
    """sum_n d2E_n/dw2 (``kind="exact"``) or the Gauss-Newton matrix
    (``kind="gauss_newton"``) by R-propagation along all W unit directions,
    in blocks (about 14 N W^2 flops for the exact one), shape (W, W): the
    independent check of :func:`curvature_matrix`. No weight decay."""
    product = {"exact": hessian_vector_products, "gauss_newton":
               gauss_newton_vector_products}[check_choice(kind, "kind", CURVATURE_KINDS)]
    W = net.n_weights
    H = np.zeros((W, W))
    for batch in batches:
        block = r_pass_chunk(net, len(batch.fp.y), most=W)
        for start in range(0, W, block):
            E = np.zeros((W, min(block, W - start)))
            E[start + np.arange(E.shape[1]), np.arange(E.shape[1])] = 1.0
            H[:, start:start + E.shape[1]] += product(batch, E)
    return _symmetrise(H)


def _symmetrise(H: Array) -> Array:
    H += H.T
    H *= 0.5
    return H


def diagonal_approximation(batch) -> Array:
    """Becker and Le Cun's diagonal Hessian approximation over the patterns
    of ``batch`` (a :class:`sopt.evaluation.BatchPass`), shape (W,).

    Backpropagates only the diagonal of d2E/da2 (PRML eqs. 5.79-5.81):
    at the outputs diag(M); at hidden units
    d2E/da_j^2 ~ h'(a_j)^2 sum_k w_kj^2 d2E/da_k^2 + h''(a_j) sum_k w_kj delta_k,
    dropping the off-diagonal terms; then d2E/dw_ji^2 ~ z_i^2 d2E/da_j^2.
    An approximation: exact only where the dropped terms vanish (e.g. one
    hidden layer with diagonal M). Cost Theta(N W), memory O(N U).
    """
    net, fp = batch.net, batch.fp
    gz = batch.backward.z_adjoints
    M = batch.output_loss.curvature(fp.a[-1], fp.y, batch.T)
    layers = net.layers
    D: list = [None] * len(layers)
    D[-1] = np.einsum("nkk->nk", M)
    acc: list = [None] * (len(layers) + 1)
    out = np.empty(net.n_weights)
    for li in range(len(layers) - 1, -1, -1):
        layer = layers[li]
        if li < len(layers) - 1:
            s = acc[li + 1] if acc[li + 1] is not None else 0.0
            D[li] = fp.dh(li + 1) ** 2 * s + fp.d2h(li + 1) * gz[li]
        for e in fp.edges[li]:
            z = fp.z[e.source.index]
            edge_gradient(e, D[li], z * z, out)
            if e.source.index:      # the backward rule through the squared weights
                add_to(acc, e.source.index, D[li] @ (e.W * e.W))
        out[layer.bias_slice] = D[li].sum(axis=0)
    return out


def sequential_inverse(G: Array, alpha, block_size: int = 1) -> Array:
    """(alpha I + G^T G)^{-1} by sequential updates over the rows b of G
    (alpha a number or one per column: then diag(alpha) replaces alpha I).

    PRML eq. 5.89: starting from (alpha I)^{-1}, each row b (one pattern and
    output of the outer-product matrix) updates
    A^{-1} <- A^{-1} - (A^{-1} b)(A^{-1} b)^T / (1 + b^T A^{-1} b).
    ``block_size`` > 1 applies the same update to blocks of rows at once
    (Woodbury identity), which is faster and algebraically equal.
    Cost O(R W^2) for R rows, memory W^2; no W^3 factorisation.
    """
    G = np.atleast_2d(np.asarray(G, dtype=float))
    block_size = check_positive_int(block_size, "block_size")
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), G.shape[1:])
    if not np.all(alpha > 0):
        raise ValueError("alpha: the sequential inverse starts from (alpha I)^-1 "
                         f"and needs alpha > 0, got min {alpha.min() if alpha.size else alpha}")
    Ainv = np.diag(1.0 / alpha)
    for start in range(0, len(G), block_size):
        B = G[start:start + block_size]                 # (b, W)
        AB = Ainv @ B.T                                 # (W, b)
        S = np.eye(len(B)) + B @ AB                     # (b, b), SPD
        Ainv -= AB @ np.linalg.solve(S, AB.T)
    return _symmetrise(Ainv)
