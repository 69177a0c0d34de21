"""The training objective E(w) = sum_n E_n(w) + alpha/2 |w|^2 over a data set.

The weight-decay sum runs over the weights in use: masked-out entries of w
have zero gradient and zero Hessian rows whatever alpha is.
"""
from __future__ import annotations

import copy

import numpy as np
from scipy.sparse.linalg import LinearOperator

from ._validation import (as_float_array, check_finite, check_inputs,
                          check_positive_int, check_weights)
from ._validation import check_alpha as _check_alpha
from . import finite_diff
from . import hessian as _hessian
from .derivatives import (gauss_newton_vector_products, hessian_vector_products,
                          pattern_sensitivities, weight_gradient)
from .losses import OutputError, get_loss
from .network import Network

Array = np.ndarray


def check_targets(T, n_patterns: int, n_outputs: int, loss_name: str) -> Array:
    """T as a float (N, K) array valid for the loss.

    A 1-D T is accepted for K = 1, and for ``softmax_ce`` as integer class
    labels 0..K-1 (turned into one-hot rows).
    """
    T = as_float_array(T, "T")
    check_finite(T, "T")
    if T.ndim == 1 and loss_name == "softmax_ce" and n_outputs > 1:
        labels = T
        if not (np.all(labels == np.round(labels))
                and labels.min() >= 0 and labels.max() < n_outputs):
            raise ValueError(f"T: class labels must be integers in "
                             f"[0, {n_outputs - 1}]")
        T = np.eye(n_outputs)[labels.astype(int)]
    elif T.ndim == 1 and n_outputs == 1:
        T = T[:, None]
    if T.shape != (n_patterns, n_outputs):
        raise ValueError(f"T: expected shape (N, K) = ({n_patterns}, "
                         f"{n_outputs}), got {T.shape}")
    if loss_name in ("binary_ce", "softmax_ce") and (T.min() < 0 or T.max() > 1):
        raise ValueError(f"T: {loss_name} targets must lie in [0, 1]")
    if loss_name == "softmax_ce":
        sums = T.sum(axis=1)
        if not np.allclose(sums, 1.0, rtol=0, atol=1e-8):
            n = int(np.sum(~np.isclose(sums, 1.0, rtol=0, atol=1e-8)))
            raise ValueError(f"T: softmax_ce targets must be probability rows "
                             f"(sum to 1); {n} row(s) do not")
    return T


def _read_only_copy(a: Array) -> Array:
    """A private, read-only copy of a (one copy, even if a is already ours)."""
    a = np.array(a, dtype=float, order="K", copy=True)
    a.setflags(write=False)
    return a


HESSIAN_METHODS = ("exact", "fd", "mixed", "gauss_newton", "diagonal")


class ObjectiveCallables:
    """What every objective derives from its value, gradient, hvp, gnvp and
    hessian: scipy.optimize's callables and the LinearOperators (shared by
    :class:`Objective` and :class:`sopt.distributed.ShardedObjective`)."""

    def _hessian_without_data_pass(self, w: Array, method: str, eps, max_bytes):
        """The checks every ``hessian(w, method)`` makes, and the methods
        built from the objective's other derivatives ("fd", "mixed",
        "diagonal"); None for "exact" and "gauss_newton", which need the
        objective's own pass over the data."""
        if method not in HESSIAN_METHODS:
            raise ValueError(f"method: expected 'exact', 'fd', 'mixed', "
                             f"'gauss_newton' or 'diagonal', got {method!r}")
        _hessian.check_dense_size(self.net.n_weights, max_bytes)
        if method == "fd":
            return finite_diff.hessian(self.value, w, eps, max_bytes=max_bytes)
        if method == "mixed":
            return finite_diff.hessian_from_gradient(self.gradient, w, eps,
                                                     max_bytes=max_bytes)
        if method == "diagonal":
            return np.diag(self.hessian_diagonal(w))
        return None

    def hessian_operator(self, w) -> LinearOperator:
        """H at w as a scipy LinearOperator (matvec = hvp), for eigsh, cg and
        trust-region solvers. O(W) memory."""
        w = check_weights(w, self.net.n_weights).copy()
        return self._operator(lambda V: self.hvp(w, V))

    def gauss_newton_operator(self, w) -> LinearOperator:
        """The Gauss-Newton matrix at w as a LinearOperator (matvec = gnvp)."""
        w = check_weights(w, self.net.n_weights).copy()
        return self._operator(lambda V: self.gnvp(w, V))

    def _operator(self, product) -> LinearOperator:
        W = self.net.n_weights
        matvec = lambda v: product(np.ravel(v))   # noqa: E731
        return LinearOperator((W, W), matvec=matvec, rmatvec=matvec,
                              matmat=product, dtype=float)

    # scipy.optimize-ready callables
    def fun(self, w) -> float:
        return self.value(w)

    def jac(self, w) -> Array:
        return self.gradient(w)

    def hess(self, w) -> Array:
        return self.hessian(w, method="exact")

    def hessp(self, w, p) -> Array:
        return self.hvp(w, p)


class Objective(ObjectiveCallables):
    """E(w) = sum_n E_n(w) + alpha/2 w^T w for a network on a data set.

    Parameters
    ----------
    net : Network
    X : (N, D) inputs
    T : (N, K) targets (1-D allowed for K = 1, or class labels for softmax_ce)
    loss : "sse", "binary_ce", "softmax_ce", a Loss or (value, grad, hess)
    alpha : float >= 0, or (W,) array of them
        Weight-decay coefficient; an array gives each weight its own (e.g.
        one per weight group, as in MacKay's evidence framework).
    chunk_size : int, optional
        Patterns per chunk for the batched passes (bounds memory at
        O(chunk * units)); None means all at once.

    The scipy-ready callables are ``fun`` and ``jac``; the last forward pass
    is cached, so ``fun(w)`` then ``jac(w)`` at the same w runs it once.

    X and T are copied once into read-only float64 arrays (``self.X``,
    ``self.T``; memory N (D + K) doubles): changing the caller's arrays
    afterwards cannot make the objective answer from two data sets (a cached
    E and gradient from the old data, a Hessian from the new). Build a new
    Objective for new data.
    """

    def __init__(self, net: Network, X, T, loss="sse", alpha: float = 0.0,
                 chunk_size: int | None = None):
        if not isinstance(net, Network):
            raise TypeError(f"net: expected a Network, got {type(net).__name__}")
        self.net = net
        self.X = _read_only_copy(check_inputs(X, net.n_inputs))
        loss_obj = get_loss(loss)
        self.rule = OutputError(loss_obj, net.layers[-1].activation
                                if net.layers else net.output)
        self.loss = loss_obj
        self.T = _read_only_copy(
            check_targets(T, len(self.X), net.n_outputs, loss_obj.name))
        self._set_alpha(alpha)
        self.chunk_size = (None if chunk_size is None
                           else check_positive_int(chunk_size, "chunk_size"))

    def _set_alpha(self, alpha) -> None:
        """Weight decay alpha, and an empty cache (construction, with_alpha)."""
        self.alpha = _check_alpha(alpha, self.net.n_weights)
        self._decay = self.alpha * self.net.active_weights()  # alpha on used weights
        self._has_decay = bool(np.any(self._decay))
        self._cache_w: Array | None = None
        self._cache = None
        self._cache_backward = None

    def with_alpha(self, alpha) -> "Objective":
        """The same objective with weight decay ``alpha`` (a number or (W,)).

        The new Objective shares this one's read-only X and T (no copy, no
        second check of the data) and has its own cache of the last forward
        pass. The evidence framework uses it to retrain under new
        hyperparameters and, with ``alpha=0``, to get the data term alone.
        """
        new = copy.copy(self)
        new._set_alpha(alpha)
        return new

    @property
    def n_patterns(self) -> int:
        return len(self.X)

    def _chunks(self, size: int | None = None):
        size = size or self.chunk_size or self.n_patterns
        for start in range(0, self.n_patterns, size):
            yield slice(start, min(start + size, self.n_patterns))

    def _forward(self, w: Array):
        """Forward pass over the whole batch, cached for the last w."""
        if self._cache_w is not None and np.array_equal(w, self._cache_w):
            return self._cache
        # the pass keeps views of its weights: give it a copy no caller can change
        self._cache_w = w.copy()
        self._cache = self.net.propagate(self._cache_w, self.X)
        self._cache_backward = None
        return self._cache

    def _backward(self, fp):
        """(deltas, z-adjoints) of the cached full-batch pass ``fp``, kept with
        it: the gradient and every hvp at the same w share one backward pass
        (trust-region and CG loops call hvp many times per w)."""
        if self._cache_backward is None:
            self._cache_backward = self.net.backward(
                fp, self.rule.delta(fp.a[-1], fp.y, self.T), return_z_adjoints=True)
        return self._cache_backward

    def pattern_errors(self, w) -> Array:
        """E_n(w) for every pattern, shape (N,); no weight decay."""
        return self._pattern_errors(check_weights(w, self.net.n_weights))

    def _pattern_errors(self, w: Array) -> Array:
        if self.chunk_size is not None:
            return np.concatenate([self._chunk_errors(w, c) for c in self._chunks()])
        fp = self._forward(w)
        return self.rule.values(fp.a[-1], fp.y, self.T)

    def _chunk_errors(self, w, rows):
        fp = self.net.propagate(w, self.X[rows])
        return self.rule.values(fp.a[-1], fp.y, self.T[rows])

    def value(self, w) -> float:
        """E(w). Cost Theta(N W)."""
        w = check_weights(w, self.net.n_weights)
        return float(self._pattern_errors(w).sum() + 0.5 * (self._decay * w) @ w)

    def gradient(self, w) -> Array:
        """dE/dw by error backpropagation, shape (W,). Cost Theta(N W),
        memory O(chunk * units)."""
        w = check_weights(w, self.net.n_weights)
        if self.chunk_size is None:
            fp = self._forward(w)
            g = weight_gradient(self.net, fp, deltas=self._backward(fp)[0])
        else:
            g = np.zeros(self.net.n_weights)
            part = np.empty(self.net.n_weights)
            for rows in self._chunks():
                fp = self.net.propagate(w, self.X[rows])
                T = self.T[rows]
                g += weight_gradient(self.net, fp,
                                     self.rule.delta(fp.a[-1], fp.y, T), out=part)
        if self._has_decay:
            g += self._decay * w
        return g

    def output_sensitivities(self, w, of: str = "a", chunk_size: int | None = None):
        """Per-pattern d a_out/dw (``of="a"``) or dy/dw (``of="y"``), (N, K, W).

        Computed chunk by chunk (default: about 32 MB of result per chunk).
        Cost Theta(K N W); memory N K W doubles for the result.
        """
        w = check_weights(w, self.net.n_weights)
        if of not in ("a", "y"):
            raise ValueError(f"of: expected 'a' or 'y', got {of!r}")
        K, W = self.net.n_outputs, self.net.n_weights
        if chunk_size is None:
            chunk_size = max(1, (4 * 2**20) // (K * W))
        out = np.empty((self.n_patterns, K, W))
        for rows in self._chunks(check_positive_int(chunk_size, "chunk_size")):
            fp = self.net.propagate(w, self.X[rows])
            seeds = (self.net.output_seeds(fp) if of == "y"
                     else np.broadcast_to(np.eye(K), (len(fp.y), K, K)))
            out[rows] = pattern_sensitivities(self.net, fp, seeds)
        return out

    # ----- second derivatives -----
    def _directions(self, v) -> tuple[Array, bool]:
        v = as_float_array(v, "v")
        W = self.net.n_weights
        if v.shape not in ((W,), (W, v.shape[-1] if v.ndim == 2 else -1)) \
                or v.size == 0:
            raise ValueError(f"v: expected shape ({W},) or ({W}, P) with P >= 1, "
                             f"got {v.shape}")
        check_finite(v, "v")
        return (v[:, None], True) if v.ndim == 1 else (v, False)

    def _products(self, w, v, product, needs_backward: bool) -> Array:
        w = check_weights(w, self.net.n_weights)
        V, single = self._directions(v)
        out = np.zeros(V.shape)
        # bound the (N, P, units) work arrays of the R-passes to ~64 MB
        units = sum(layer.size for layer in self.net.layers)
        size = self.chunk_size or max(1, _hessian.CHUNK_DOUBLES // (4 * units * V.shape[1]))
        for rows in self._chunks(size):
            if rows.stop - rows.start == self.n_patterns:
                fp = self._forward(w)
                shared = {"backward": self._backward(fp)} if needs_backward else {}
                out += product(self.net, self.rule, fp, self.T, V, **shared)
            else:
                out += product(self.net, self.rule,
                               self.net.propagate(w, self.X[rows]), self.T[rows], V)
        if self._has_decay:
            out += self._decay[:, None] * V
        return out[:, 0] if single else out

    def hvp(self, w, v) -> Array:
        """Hessian-vector product H v by R-propagation (Pearlmutter 1994).

        v of shape (W,) or a (W, P) block of directions. Exact, including
        weight decay. Cost Theta(P N W), memory O(chunk P units).
        """
        return self._products(w, v, hessian_vector_products, needs_backward=True)

    def gnvp(self, w, v) -> Array:
        """Gauss-Newton-vector product (sum_n J_n^T M_n J_n + alpha I) v.
        Shapes and cost as :meth:`hvp`."""
        return self._products(w, v, gauss_newton_vector_products, needs_backward=False)

    def hessian(self, w, method: str = "exact", eps: float | None = None,
                max_bytes: float | None = None, algorithm: str = "structured") -> Array:
        """The W x W Hessian of E (weight decay included), shape (W, W).

        method : str
            ``"exact"`` O(N W^2) (see :mod:`sopt.hessian`; ``algorithm``
            chooses "structured" or "rop"); ``"fd"`` four-point
            differences of E, O(W^3), error O(eps^2); ``"mixed"`` central
            differences of the backprop gradient, O(W^2); ``"gauss_newton"``
            sum_n J_n^T M_n J_n (PSD for the built-in losses); ``"diagonal"``
            Becker and Le Cun's approximation as a diagonal matrix.
        max_bytes : float, optional
            Refuse (MemoryError) if the dense result would exceed this
            (default :data:`sopt.hessian.DEFAULT_MAX_BYTES`, 4 GiB).
        """
        w = check_weights(w, self.net.n_weights)
        W = self.net.n_weights
        H = self._hessian_without_data_pass(w, method, eps, max_bytes)
        if H is not None:
            return H
        if method == "gauss_newton":
            H = _hessian.gauss_newton(self.net, self.rule, w, self.X, self.T,
                                      self.chunk_size)
        else:
            H = _hessian.exact_hessian(self.net, self.rule, w, self.X, self.T,
                                       algorithm, self.chunk_size)
        H[np.diag_indices(W)] += self._decay
        return H

    def hessian_diagonal(self, w) -> Array:
        """Becker and Le Cun's diagonal approximation (PRML sec. 5.4.1) plus
        alpha, shape (W,). An approximation; cost Theta(N W)."""
        w = check_weights(w, self.net.n_weights)
        d = np.zeros(self.net.n_weights)
        for rows in self._chunks():
            fp = self.net.propagate(w, self.X[rows])
            d += _hessian.diagonal_approximation(self.net, self.rule, fp,
                                                 self.T[rows])
        return d + self._decay

    def inverse_outer_product(self, w, block_size: int = 1,
                              max_bytes: float | None = None) -> Array:
        """(alpha I + sum_n J_n^T M_n J_n)^{-1} by sequential rank-one updates,
        one pattern and output at a time (PRML eq. 5.89), without a W^3
        factorisation. Needs alpha > 0 and a factorable M (built-in losses).
        With masks the inverse is taken on the weights in use (masked rows
        and columns of A are zero; theirs are zero in the result too).
        Cost O(N K W^2), memory W^2 + N K W."""
        w = check_weights(w, self.net.n_weights)
        block_size = check_positive_int(block_size, "block_size")
        _hessian.check_dense_size(self.net.n_weights, max_bytes, "inverse")
        fp = self._forward(w)
        B = self.rule.gauss_newton_factor(fp.a[-1], fp.y, self.T)
        if B is None:
            raise ValueError("loss: the outer-product inverse needs a loss whose "
                             "output curvature has a known factor (sse, "
                             "binary_ce, softmax_ce)")
        J = self.output_sensitivities(w)
        G = (J * B[:, :, None] if B.ndim == 2 else np.matmul(B, J)).reshape(
            -1, self.net.n_weights)
        used = np.flatnonzero(self.net.active_weights())
        inverse = np.zeros((self.net.n_weights,) * 2)
        inverse[np.ix_(used, used)] = _hessian.sequential_inverse(
            G[:, used], self._decay[used], block_size)
        return inverse

    def __repr__(self) -> str:
        return (f"Objective({self.net!r}, N={self.n_patterns}, {self.rule!r}, "
                f"alpha={self.alpha})")
