"""The low-rank structure: H ~ U diag(lam) U^T from the k largest
eigenpairs of the Gauss-Newton or Hessian products on the weights in use
(:func:`sopt.spectral.eigenpairs`), and the precision
A = diag(alpha) + s U diag(lam) U^T: the prior is the diagonal, as in
laplace-torch's LowRankLaplace (P = V diag(l) V^T + P_0), so the two are
comparable. Optionally (Gauss-Newton only) the diagonal of the remainder
H - U diag(lam) U^T is added, so that diag(A) is exact; it is not the
default because it makes the structure differ from laplace-torch's.

All primitives go through one factorisation of A, O(W k^2):
A = D^{1/2} (I + B J B^T) D^{1/2} with D = diag(alpha + s c) (c the
correction, or 0), B = D^{-1/2} U |s lam|^{1/2}, J = sign(lam); with
B = Q_B R (thin QR) and R J R^T = E diag(mu) E^T (k x k), Q = Q_B E has
orthonormal columns and

    A = D^{1/2} (I + Q diag(mu) Q^T) D^{1/2},
    ln|A| = sum ln d + sum ln(1 + mu)         (matrix determinant lemma),
    A^{-1} = D^{-1/2} [(I - Q Q^T) + Q diag(1 / (1 + mu)) Q^T] D^{-1/2},
    A^{-1/2}-type factor D^{-1/2} [I + Q diag((1 + mu)^{-1/2} - 1) Q^T],

(Woodbury's identity in an orthonormal basis), A positive definite iff
every 1 + mu > 0 (negative eigenvalues of an exact Hessian kept without
clip_negative may make it indefinite: LinAlgError).

Memory 8 W k bytes for U, as much again for Q (and, while building, the
eigensolver's 8 W m bytes for its m Lanczos vectors). Cost: building, the
eigensolver's Hessian- or Gauss-Newton-vector products (Theta(N W) each;
about 5 k for a well-separated top of the spectrum) and, with the
correction, one pass of K backward signals per pattern; O(W k^2) per
factorisation; O(W k) per solve or draw; O(N K W k) for the predictive
variances of N points.
"""
from __future__ import annotations

import numpy as np

from ..derivatives import SENSITIVITY_DOUBLES, gauss_newton_diagonal, items_in_budget
from ..spectral import eigenpairs
from .._validation import check_bool, check_positive_int, check_real
from ._structure import (Curvature, Linearisation, Precision, StructureSpec,
                         check_assemble)

Array = np.ndarray


class LowRank(StructureSpec):
    """The top-``rank`` eigenpairs of H (block Lanczos, ``block_size``
    products per call, to relative residual ``tol``) on the weights in use,
    plus, with ``diagonal_correction`` (Gauss-Newton only), the exact
    diagonal of the remainder. With clip_negative, negative eigenvalues are
    dropped. A rank of at least the number of weights in use gives the
    whole matrix (the dense structure, to the eigensolver's accuracy)."""

    name = "lowrank"
    kinds = ("gauss_newton", "exact")

    def __init__(self, rank: int = 20, diagonal_correction: bool = False,
                 tol: float = 1e-10, block_size: int = 4, seed: int = 0):
        self.rank = check_positive_int(rank, "rank")
        self.diagonal_correction = check_bool(diagonal_correction,
                                              "diagonal_correction")
        self.tol = check_real(tol, "tol", 0.0, 1.0, high_open=True)
        self.block_size = check_positive_int(block_size, "block_size")
        self.seed = seed

    def build(self, data, w_map, used, kind, clip_negative, max_bytes):
        if self.diagonal_correction and kind != "gauss_newton":
            raise ValueError("LowRank: diagonal_correction needs the Gauss-Newton "
                             "matrix (its diagonal is exact and cheap)")
        pairs = eigenpairs(data, w_map, min(self.rank, len(used)), "largest", kind,
                           weights=used, tol=self.tol, block_size=self.block_size,
                           seed=self.seed, max_bytes=max_bytes)
        keep = pairs.values >= 0 if clip_negative else slice(None)
        U, lam = pairs.vectors[:, keep], pairs.values[keep]
        correction = None
        if self.diagonal_correction:
            correction = np.maximum(_gauss_newton_diagonal(data, w_map)[used]
                                    - (U * U) @ lam, 0.0)
        return LowRankCurvature(used, kind, U, lam, correction)

    def __repr__(self) -> str:
        extra = ", diagonal_correction=True" if self.diagonal_correction else ""
        return f"LowRank(rank={self.rank}{extra})"


def _gauss_newton_diagonal(data, w_map) -> Array:
    """diag of sum_n J_n^T M_n J_n over all weights, (W,): one pass of K
    backward signals per pattern."""
    net = data.net
    size = items_in_budget(net.n_outputs * net.n_weights, SENSITIVITY_DOUBLES)
    return data.sum_over_batches(w_map, gauss_newton_diagonal, size=size)


class LowRankCurvature(Curvature):
    """H as U diag(lam) U^T (+ diag(correction)): U (W_c, k), lam (k,),
    correction (W_c,) or None."""

    name = "lowrank"

    def __init__(self, covered, kind: str, U: Array, lam: Array,
                 correction: Array | None = None):
        super().__init__(covered, kind)
        self.U, self.lam, self.correction = U, lam, correction

    def precision(self, alpha, scale):
        d = np.asarray(alpha, dtype=float) + np.zeros(len(self.covered))
        if self.correction is not None:
            d = d + scale * self.correction
        return LowRankPrecision(d, self.U, scale * self.lam, self.covered)

    def matrix(self):
        check_assemble(len(self.covered), "lowrank curvature", self.name)
        H = (self.U * self.lam) @ self.U.T
        if self.correction is not None:
            H[np.diag_indices_from(H)] += self.correction
        return H

    def scaled_eigenvalues(self, alpha):
        """From the k x k problem, O(W k^2), without the correction (which
        makes H full rank: then from the assembled matrix)."""
        if self.correction is not None:
            return super().scaled_eigenvalues(alpha)
        d = np.asarray(alpha, dtype=float) + np.zeros(len(self.covered))
        mu = _capacitance_eigen(self.U / np.sqrt(d)[:, None], self.lam)[0]
        return np.sort(np.concatenate([mu, np.zeros(len(d) - len(mu))]))

    @property
    def nbytes(self) -> int:
        extra = 0 if self.correction is None else self.correction.nbytes
        return self.U.nbytes + self.lam.nbytes + extra

    def state(self) -> dict:
        return {"covered": self.covered, "kind": self.kind, "U": self.U,
                "lam": self.lam, "correction": self.correction}

    @classmethod
    def from_state(cls, state, net):
        covered = _checked_covered(state.get("covered"), net.n_weights)
        kind = state.get("kind")
        if kind not in LowRank.kinds:
            raise ValueError(f"lowrank curvature: kind must be one of "
                             f"{LowRank.kinds}, got {kind!r}")
        n = len(covered)
        U = _checked_float(state.get("U"), "U", (n, None))
        lam = _checked_float(state.get("lam"), "lam", (U.shape[1],))
        correction = state.get("correction")
        if correction is not None:
            correction = _checked_float(correction, "correction", (n,))
            if np.any(correction < 0):
                raise ValueError("lowrank curvature: correction must be >= 0")
        if U.shape[1] > n:
            raise ValueError("lowrank curvature: more eigenvectors than weights")
        return cls(covered, kind, U, lam, correction)


def _checked_covered(covered, n_weights: int) -> Array:
    if not (isinstance(covered, np.ndarray) and covered.ndim == 1
            and covered.dtype.kind in "iu" and covered.size
            and np.all(np.diff(covered) > 0) and covered[0] >= 0
            and covered[-1] < n_weights):
        raise ValueError("lowrank curvature: covered must be increasing weight "
                         f"indices in [0, {n_weights - 1}]")
    return covered.astype(np.intp)


def _checked_float(a, name: str, shape: tuple) -> Array:
    if not (isinstance(a, np.ndarray) and a.dtype == float and a.ndim == len(shape)
            and all(s is None or s == m for s, m in zip(shape, a.shape))
            and np.all(np.isfinite(a))):
        raise ValueError(f"lowrank curvature: {name} must be a finite float array "
                         f"of shape {tuple('k' if s is None else s for s in shape)}")
    return a


def _capacitance_eigen(V: Array, s: Array) -> tuple:
    """mu (k,) and Q (n, k), orthonormal, with V diag(s) V^T = Q diag(mu) Q^T
    for V (n, k) and signed s (k,): B = V |s|^{1/2} = Q_B R, then
    R sign(s) R^T = E diag(mu) E^T and Q = Q_B E. O(n k^2)."""
    if len(s) == 0:
        return np.zeros(0), np.zeros((len(V), 0))
    QB, R = np.linalg.qr(V * np.sqrt(np.abs(s)))
    mu, E = np.linalg.eigh((R * np.sign(s)) @ R.T)
    return mu, QB @ E


class LowRankPrecision(Precision):
    """A = diag(d) + U diag(s) U^T = D^{1/2} (I + Q diag(mu) Q^T) D^{1/2}
    (see the module docstring); LinAlgError if not positive definite."""

    def __init__(self, d: Array, U: Array, s: Array, covered: Array):
        if not np.all(d > 0):
            raise np.linalg.LinAlgError("lowrank precision: its diagonal is not "
                                        "positive")
        self.d, self.U, self.s, self.covered = d, U, s, covered
        self.root_d = np.sqrt(d)
        self.mu, self.Q = _capacitance_eigen(U / self.root_d[:, None], s)
        if not np.all(1.0 + self.mu > 0):
            raise np.linalg.LinAlgError("lowrank precision: not positive definite "
                                        "(negative curvature beyond the prior)")
        self.log_det = float(np.sum(np.log(d)) + np.sum(np.log1p(self.mu)))

    def inverse_diagonal(self):
        # 1 - sum_j Q_ij^2 is diag(I - Q Q^T) >= 0 (clipped: round-off). Its
        # absolute round-off, eps / d_i, is within cond(A) eps of the result,
        # as in a dense factorisation's A^{-1}.
        outside = np.maximum(1.0 - np.einsum("ij,ij->i", self.Q, self.Q), 0.0)
        inside = (self.Q * self.Q) @ (1.0 / (1.0 + self.mu))
        return (outside + inside) / self.d

    def solve(self, B):
        scale = self.root_d if B.ndim == 1 else self.root_d[:, None]
        Y = B / scale
        C = self.Q.T @ Y
        shrink = self.mu / (1.0 + self.mu)
        C = C * (shrink if B.ndim == 1 else shrink[:, None])
        return (Y - self.Q @ C) / scale

    def output_covariance(self, lin: Linearisation, full: bool):
        """J A^{-1} J^T as the sum of two Gram matrices, the part outside
        span(Q) and the part inside shrunk by 1 / (1 + mu) (no
        cancellation however large mu). Memory 2 N K W_c doubles."""
        V = lin.jacobian(self.covered) / self.root_d
        P = V @ self.Q                                  # (N, K, k)
        outside = V - P @ self.Q.T
        inside = P / np.sqrt(1.0 + self.mu)
        if full:
            return (np.einsum("nkw,nlw->nkl", outside, outside)
                    + np.einsum("nkj,nlj->nkl", inside, inside))
        return (np.einsum("nkw,nkw->nk", outside, outside)
                + np.einsum("nkj,nkj->nk", inside, inside))

    def draw(self, E):
        # (I + Q diag(c) Q^T)^2 = (I + Q diag(mu) Q^T)^{-1} for
        # (1 + c)^2 = 1 / (1 + mu)
        c = np.expm1(-0.5 * np.log1p(self.mu))
        return (E + self.Q @ (c[:, None] * (self.Q.T @ E))) / self.root_d[:, None]

    def matrix(self):
        check_assemble(len(self.d), "lowrank precision", "lowrank")
        A = (self.U * self.s) @ self.U.T
        A[np.diag_indices_from(A)] += self.d
        return A
