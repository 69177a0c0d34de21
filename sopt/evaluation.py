"""The objective at one w: one forward pass held, the backward pass computed
when first asked for, and every derivative a pure function of them.

A :class:`BatchPass` is the state of one batch of patterns at w (what the
derivative functions of :mod:`sopt.derivatives` and :mod:`sopt.hessian`
take); an :class:`Evaluation` is the objective's state at w: the batch
of all patterns (or, for a chunked objective, a fresh batch per chunk) plus
the weight decay. ``Objective.at(w)`` makes one; the Objective's own
methods keep the last one, so that caching lives in exactly one place.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from . import hessian as _hessian
from ._deprecation import renamed_method, renamed_property
from ._validation import as_float_array, check_finite, check_positive_int
from .derivatives import (gauss_newton_vector_products, hessian_vector_products,
                          weight_gradient)
from .network import Backward

Array = np.ndarray


class BatchPass:
    """The forward pass of ``net`` at w over the patterns X with targets T,
    and its backward sweep of dE/da from the outputs, computed on first use
    and kept (a gradient and any number of Hessian-vector products share it).
    ``output_loss`` (a :class:`sopt.losses.OutputLoss`) gives E_n and its
    derivatives in the output pre-activations.

    Memory O(N U) for the pass (U units), as much again for the sweep.
    """

    __slots__ = ("net", "output_loss", "fp", "T", "_backward", "_recycled_backward")

    def __init__(self, net, output_loss, w: Array, X: Array, T: Array,
                 recycle: "BatchPass | None" = None):
        self.net, self.output_loss, self.T = net, output_loss, T
        self.fp = net.propagate(w, X, recycle=None if recycle is None else recycle.fp)
        self._backward: Backward | None = None
        self._recycled_backward = None if recycle is None else recycle._backward

    @property
    def backward(self) -> Backward:
        """(deltas, z_adjoints) of the error signal (see Network.backward)."""
        if self._backward is None:
            fp = self.fp
            self._backward = self.net.backward(
                fp, self.output_loss.delta(fp.a[-1], fp.y, self.T),
                self._recycled_backward)
            self._recycled_backward = None
        return self._backward

    def pattern_errors(self) -> Array:
        """E_n for every pattern, shape (N,)."""
        return self.output_loss.pattern_errors(self.fp.a[-1], self.fp.y, self.T)

    def gradient(self, out: Array | None = None) -> Array:
        """sum_n dE_n/dw, shape (W,); written into ``out`` if given."""
        return weight_gradient(self.net, self.fp, self.backward.deltas, out)

    rule = renamed_property("rule", "output_loss")
    errors = renamed_method("errors", "pattern_errors")


#: Curvature matrices up to this size are kept with their evaluation, so
#: that the objective and its with_alpha copies build each once per w
#: (memory: one more W x W matrix, W up to 8192).
KEEP_CURVATURE_BYTES = 512 * 2**20


class Evaluation:
    """The objective E(w) = sum_n E_n(w) + alpha/2 |w|^2 at one w.

    Immutable: w is a private read-only copy, the objective's data are read
    only. Without a chunk size the forward pass over all patterns is made
    here and held; with one, each method runs a pass per chunk (memory
    O(chunk units)) and keeps nothing. Costs as the Objective's methods.

    ``recycle``: an evaluation of the same objective that will not be used
    again, whose arrays the new passes overwrite instead of taking fresh
    memory (fresh pages cost page faults on every call with glibc's
    default allocator). The Objective recycles only its own last one.
    """

    __slots__ = ("objective", "w", "_whole", "_decay", "_has_decay", "_curvatures")

    def __init__(self, objective, w: Array, recycle: "Evaluation | None" = None):
        self.objective = objective
        # the prior when evaluated: a later ``objective.alpha = ...`` does not
        # change an evaluation already made
        self._decay, self._has_decay = objective._decay, objective._has_decay
        self.w = np.array(w, dtype=float, copy=True)
        self.w.setflags(write=False)
        self._whole = (None if objective.chunk_size is not None
                       else BatchPass(objective.net, objective.output_loss, self.w,
                                      objective.X, objective.T,
                                      None if recycle is None else recycle._whole))
        self._curvatures: dict = {}     # data-term matrices, by (kind, algorithm)

    @property
    def prior(self) -> Array:
        """The weight decay on each weight, (W,) (alpha on the weights in use)."""
        return self._decay

    def with_prior(self, decay: Array) -> "Evaluation":
        """The same data term at the same w under another weight decay
        ``decay`` (W,): shares the passes and every curvature matrix built."""
        new = object.__new__(Evaluation)
        new.objective, new.w, new._whole = self.objective, self.w, self._whole
        new._curvatures = self._curvatures
        new._decay, new._has_decay = decay, bool(np.any(decay))
        return new

    def batches(self, size: int | None = None) -> Iterator[BatchPass]:
        """The data as batches of at most ``size`` patterns (default: the
        objective's chunk size): the held pass when it covers them all."""
        obj = self.objective
        size = size or obj.chunk_size or obj.n_patterns
        if self._whole is not None and size >= obj.n_patterns:
            yield self._whole
            return
        for start in range(0, obj.n_patterns, size):
            rows = slice(start, min(start + size, obj.n_patterns))
            yield BatchPass(obj.net, obj.output_loss, self.w, obj.X[rows], obj.T[rows])

    def pattern_errors(self) -> Array:
        """E_n(w) for every pattern, shape (N,); no weight decay."""
        if self._whole is not None:
            return self._whole.pattern_errors()
        return np.concatenate([b.pattern_errors() for b in self.batches()])

    def value(self) -> float:
        """E(w), weight decay included."""
        decay = self._decay
        return float(self.pattern_errors().sum() + 0.5 * (decay * self.w) @ self.w)

    def gradient(self) -> Array:
        """dE/dw, shape (W,)."""
        if self._whole is not None:
            g = self._whole.gradient()
        else:
            g, part = np.zeros(self.w.shape), np.empty(self.w.shape)
            for batch in self.batches():
                g += batch.gradient(out=part)
        if self._has_decay:
            g += self._decay * self.w
        return g

    def hvp(self, v) -> Array:
        """H v for v (W,) or a (W, P) block; weight decay included."""
        return self._products(v, hessian_vector_products)

    def gnvp(self, v) -> Array:
        """(sum_n J_n^T M_n J_n + alpha) v for v (W,) or (W, P)."""
        return self._products(v, gauss_newton_vector_products)

    def _products(self, v, product) -> Array:
        V, single = _directions(v, self.w.size)
        out = np.zeros(V.shape)
        # bound the (N, P, units) work arrays of the R-passes to ~64 MB
        size = _hessian.r_pass_chunk(self.objective.net, V.shape[1])
        for batch in self.batches(self.objective.chunk_size or size):
            out += product(batch, V)
        if self._has_decay:
            out += self._decay[:, None] * V
        return out[:, 0] if single else out

    def curvature(self, kind: str = "exact", algorithm: str = "structured", *,
                  method: str | None = None) -> Array:
        """The W x W exact Hessian (``kind="exact"``) or Gauss-Newton matrix
        (``kind="gauss_newton"``), weight decay included, by ``algorithm``
        "structured" (:func:`sopt.hessian.curvature_matrix`) or "rop"
        (:func:`sopt.hessian.rop_hessian`). ``method`` is the deprecated
        name of ``kind``."""
        kind, algorithm = _hessian.hessian_request(
            kind, algorithm, method, _hessian.CURVATURE_KINDS, ("structured", "rop"))
        key = (kind, algorithm)
        if key in self._curvatures:
            H = self._curvatures[key].copy()
        else:
            H = self._data_curvature(kind, algorithm)
            if H.nbytes <= KEEP_CURVATURE_BYTES:
                self._curvatures[key] = H.copy()    # the caller may change H
        H[np.diag_indices_from(H)] += self._decay
        return H

    def _data_curvature(self, kind: str, algorithm: str) -> Array:
        net, size = self.objective.net, self.objective.chunk_size
        if algorithm == "rop":
            return _hessian.rop_hessian(net, self.batches(size), kind)
        size = size or _hessian.patterns_per_chunk(net)
        return _hessian.curvature_matrix(net, self.batches(size), kind)

    def hessian_diagonal(self) -> Array:
        """Becker and Le Cun's diagonal approximation plus alpha, (W,)."""
        d = np.zeros(self.w.shape)
        for batch in self.batches():
            d += _hessian.diagonal_approximation(batch)
        return d + self._decay

    def inverse_outer_product(self, block_size: int = 1) -> Array:
        """(alpha I + sum_n J_n^T M_n J_n)^{-1} by sequential rank-one updates
        (PRML eq. 5.89); see Objective.inverse_outer_product."""
        obj = self.objective
        block_size = check_positive_int(block_size, "block_size")
        fp = next(self.batches(obj.n_patterns)).fp
        B = obj.output_loss.gauss_newton_factor(fp.a[-1], fp.y, obj.T)
        if B is None:
            raise ValueError("loss: the outer-product inverse needs a loss whose "
                             "output curvature has a known factor (sse, "
                             "binary_ce, softmax_ce)")
        W = obj.net.n_weights
        J = obj.net.output_sensitivities(self.w, obj.X)
        G = (J * B[:, :, None] if B.ndim == 2 else np.matmul(B, J)).reshape(-1, W)
        used = np.flatnonzero(obj.net.used_weight_mask())
        inverse = np.zeros((W, W))
        inverse[np.ix_(used, used)] = _hessian.sequential_inverse(
            G[:, used], self._decay[used], block_size)
        return inverse


def _directions(v, n_weights: int) -> tuple[Array, bool]:
    """v as a (W, P) block, and whether it was one (W,) vector."""
    v = as_float_array(v, "v")
    W = n_weights
    if v.shape not in ((W,), (W, v.shape[-1] if v.ndim == 2 else -1)) \
            or v.size == 0:
        raise ValueError(f"v: expected shape ({W},) or ({W}, P) with P >= 1, "
                         f"got {v.shape}")
    check_finite(v, "v")
    return (v[:, None], True) if v.ndim == 1 else (v, False)
