"""The training objective E(w) = sum_n E_n(w) + alpha/2 |w|^2 over a data set."""
from __future__ import annotations

import numpy as np

from ._validation import (as_float_array, check_finite, check_inputs,
                          check_nonnegative, check_positive_int, check_weights)
from .derivatives import pattern_sensitivities, weight_gradient
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


class Objective:
    """E(w) = sum_n E_n(w) + alpha/2 w^T w for a network on a data set.

    Parameters
    ----------
    net : Network
    X : (N, D) inputs
    T : (N, K) targets (1-D allowed for K = 1, or class labels for softmax_ce)
    loss : "sse", "binary_ce", "softmax_ce", a Loss or (value, grad, hess)
    alpha : float >= 0
        Weight-decay coefficient.
    chunk_size : int, optional
        Patterns per chunk for the batched passes (bounds memory at
        O(chunk * units)); None means all at once.

    The scipy-ready callables are ``fun`` and ``jac``; the last forward pass
    is cached, so ``fun(w)`` then ``jac(w)`` at the same w runs it once.
    """

    def __init__(self, net: Network, X, T, loss="sse", alpha: float = 0.0,
                 chunk_size: int | None = None):
        if not isinstance(net, Network):
            raise TypeError(f"net: expected a Network, got {type(net).__name__}")
        self.net = net
        self.X = check_inputs(X, net.n_inputs)
        loss_obj = get_loss(loss)
        self.rule = OutputError(loss_obj, net.layers[-1].activation
                                if net.layers else net.output)
        self.loss = loss_obj
        self.T = check_targets(T, len(self.X), net.n_outputs, loss_obj.name)
        self.alpha = check_nonnegative(alpha, "alpha")
        self.chunk_size = (None if chunk_size is None
                           else check_positive_int(chunk_size, "chunk_size"))
        self._cache_w: Array | None = None
        self._cache = None

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
        fp = self.net.propagate(w, self.X)
        self._cache = fp
        self._cache_w = w.copy()
        return fp

    def pattern_errors(self, w) -> Array:
        """E_n(w) for every pattern, shape (N,); no weight decay."""
        w = check_weights(w, self.net.n_weights)
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
        return float(self.pattern_errors(w).sum() + 0.5 * self.alpha * (w @ w))

    def gradient(self, w) -> Array:
        """dE/dw by error backpropagation, shape (W,). Cost Theta(N W),
        memory O(chunk * units)."""
        w = check_weights(w, self.net.n_weights)
        if self.chunk_size is None:
            fp = self._forward(w)
            g = weight_gradient(self.net, w, fp,
                                self.rule.delta(fp.a[-1], fp.y, self.T))
        else:
            g = np.zeros(self.net.n_weights)
            part = np.empty(self.net.n_weights)
            for rows in self._chunks():
                fp = self.net.propagate(w, self.X[rows])
                T = self.T[rows]
                g += weight_gradient(self.net, w, fp,
                                     self.rule.delta(fp.a[-1], fp.y, T), out=part)
        if self.alpha:
            g += self.alpha * w
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
            out[rows] = pattern_sensitivities(self.net, w, fp, seeds)
        return out

    # scipy.optimize-ready callables
    def fun(self, w) -> float:
        return self.value(w)

    def jac(self, w) -> Array:
        return self.gradient(w)

    def __repr__(self) -> str:
        return (f"Objective({self.net!r}, N={self.n_patterns}, {self.rule!r}, "
                f"alpha={self.alpha})")
