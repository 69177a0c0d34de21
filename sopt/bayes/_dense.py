"""The dense structure: the whole W x W curvature of the weights in use (or
of a subset of them), factorised by Cholesky.

Memory 8 W_c^2 bytes for H, as much again for A's factor and, once asked
for, A^{-1}. Cost O(N W^2) for H, W_c^3 / 3 per factorisation and W_c^3
for diag(A^{-1}) (gamma).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, eigh, solve_triangular

from ._structure import Curvature, Linearisation, Precision, StructureSpec

Array = np.ndarray


class Dense(StructureSpec):
    """All weights in use, the full matrix: exact Hessian or Gauss-Newton."""

    name = "dense"

    def build(self, data, w_map, used, kind, clip_negative, max_bytes):
        try:
            H = data.hessian(w_map, kind, max_bytes=max_bytes)
        except MemoryError as err:
            raise MemoryError(f"{err}; or use a structure that does not hold the "
                              "W x W matrix: structure='kfac', 'diagonal', "
                              "'lowrank' or 'last_layer'.") from None
        return DenseCurvature(used, kind, H[np.ix_(used, used)], clip_negative)


class DenseCurvature(Curvature):
    """H as a (W_c, W_c) array, its negative eigenvalues clipped if asked."""

    name = "dense"

    def __init__(self, covered, kind: str, H: Array, clip_negative: bool = False):
        super().__init__(covered, kind)
        self.H = clip_negative_eigenvalues(H) if clip_negative else H

    def precision(self, alpha, scale):
        A = scale * self.H
        A[np.diag_indices_from(A)] += alpha
        return DensePrecision(A, self.covered)

    def matrix(self):
        return self.H

    def scaled_eigenvalues(self, alpha):
        s = 1.0 / np.sqrt(alpha)
        return eigh(s[:, None] * self.H * s, eigvals_only=True)

    @property
    def nbytes(self) -> int:
        return self.H.nbytes

    def state(self) -> dict:
        return {"covered": self.covered, "kind": self.kind, "H": self.H}

    @classmethod
    def from_state(cls, state, net):
        covered, H = state["covered"], state["H"]
        if not (isinstance(H, np.ndarray) and H.dtype == float
                and H.shape == (len(covered),) * 2):
            raise ValueError(f"H: expected a float ({len(covered)}, {len(covered)}) "
                             f"matrix for the covered weights")
        return cls(covered, state["kind"], H)


class DensePrecision(Precision):
    """A = L L^T (Cholesky, LinAlgError if A is not positive definite)."""

    def __init__(self, A: Array, covered: Array):
        self.A, self.covered = A, covered
        self.factor = cho_factor(A, lower=True)
        self.log_det = 2.0 * float(np.sum(np.log(np.diag(self.factor[0]))))
        self._covariance = None

    @property
    def covariance(self) -> Array:
        """A^{-1}, (W_c, W_c), from the factor (W_c^3), kept."""
        if self._covariance is None:
            self._covariance = cho_solve(self.factor, np.eye(len(self.A)))
        return self._covariance

    def inverse_diagonal(self):
        return np.diag(self.covariance).copy()

    def solve(self, B):
        return cho_solve(self.factor, B)

    def output_covariance(self, lin: Linearisation, full: bool):
        G = lin.jacobian(self.covered)
        N, K, _ = G.shape
        V = solve_triangular(self.factor[0], G.reshape(N * K, -1).T, lower=True)
        V = V.T.reshape(N, K, -1)
        if full:
            return np.einsum("nkw,nlw->nkl", V, V)
        return np.einsum("nkw,nkw->nk", V, V)

    def draw(self, E):
        # L^{-T} e has covariance (L L^T)^{-1} = A^{-1}
        return solve_triangular(self.factor[0], E, lower=True, trans="T")

    def matrix(self):
        return self.A


def clip_negative_eigenvalues(H: Array) -> Array:
    """H with its negative eigenvalues set to zero (as Netlab's evidence
    does): a positive semi-definite (W, W) matrix, whatever scale the caller
    multiplies it by (the evidence loop uses beta H with beta up to 1e12).

    Two shortcuts avoid the eigendecomposition (about 9 W^3) where one or two
    Cholesky factorisations (W^3 / 3 each) settle it: a positive definite H
    is returned as it is; where only H + delta I is (delta = 10 W eps
    |H|_inf, about the round-off of forming and factorising H), every
    eigenvalue of H lies in [-delta, inf), and H + delta I is returned: it is
    positive definite and within delta (2-norm) of the clipped matrix, as a
    PSD H with a null space (softmax outputs) gives. Otherwise the
    eigenvalues below zero are set to zero."""
    if _is_positive_definite(H):
        return H
    delta = 10 * len(H) * np.finfo(float).eps * float(np.abs(H).sum(axis=1).max(initial=0.0))
    shifted = H + delta * np.eye(len(H))
    if _is_positive_definite(shifted):
        return shifted
    lam, V = eigh(H)
    return (V * np.maximum(lam, 0.0)) @ V.T


def _is_positive_definite(H: Array) -> bool:
    """Whether H has a Cholesky factor (an empty H has one)."""
    try:
        cho_factor(H, lower=True)
        return True
    except LinAlgError:
        return False
