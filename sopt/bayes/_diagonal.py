"""The diagonal structure: the exact diagonal of the Gauss-Newton matrix
(as laplace-torch's DiagLaplace with an exact GGN backend).

Memory 8 W bytes. Cost Theta(K N W) to build (one backward pass of K
signals per pattern), O(W) per factorisation; predictive variances
O(K N W) for N new points.
"""
from __future__ import annotations

import numpy as np

from ..derivatives import SENSITIVITY_DOUBLES, gauss_newton_diagonal, items_in_budget
from ._structure import Curvature, Linearisation, Precision, StructureSpec

Array = np.ndarray


class Diagonal(StructureSpec):
    """diag(sum_n J_n^T M_n J_n) on the weights in use (Gauss-Newton only:
    the exact Hessian's diagonal would take W Hessian-vector products)."""

    name = "diagonal"
    kinds = ("gauss_newton",)

    def build(self, data, w_map, used, kind, clip_negative, max_bytes):
        net = data.net
        size = items_in_budget(net.n_outputs * net.n_weights, SENSITIVITY_DOUBLES)
        d = data.sum_over_batches(w_map, gauss_newton_diagonal, size=size)
        return DiagonalCurvature(used, kind, d[used])


class DiagonalCurvature(Curvature):
    """H as its diagonal, (W_c,)."""

    name = "diagonal"

    def __init__(self, covered, kind: str, d: Array):
        super().__init__(covered, kind)
        self.d = d

    def precision(self, alpha, scale):
        return DiagonalPrecision(alpha + scale * self.d, self.covered)

    def matrix(self):
        return np.diag(self.d)

    def scaled_eigenvalues(self, alpha):
        return np.sort(self.d / alpha)

    @property
    def nbytes(self) -> int:
        return self.d.nbytes

    def state(self) -> dict:
        return {"covered": self.covered, "kind": self.kind, "d": self.d}

    @classmethod
    def from_state(cls, state, net):
        covered, d = state["covered"], state["d"]
        if not (isinstance(d, np.ndarray) and d.dtype == float
                and d.shape == (len(covered),)):
            raise ValueError(f"d: expected a float ({len(covered)},) vector for "
                             "the covered weights")
        return cls(covered, state["kind"], d)


class DiagonalPrecision(Precision):
    """A = diag(a), a > 0."""

    def __init__(self, a: Array, covered: Array):
        if not np.all(a > 0):
            raise np.linalg.LinAlgError("diagonal precision: not positive")
        self.a, self.covered = a, covered
        self.log_det = float(np.sum(np.log(a)))

    def inverse_diagonal(self):
        return 1.0 / self.a

    def solve(self, B):
        return B / (self.a if B.ndim == 1 else self.a[:, None])

    def output_covariance(self, lin: Linearisation, full: bool):
        G = lin.jacobian(self.covered)
        V = G / np.sqrt(self.a)
        if full:
            return np.einsum("nkw,nlw->nkl", V, V)
        return np.einsum("nkw,nkw->nk", V, V)

    def draw(self, E):
        return E / np.sqrt(self.a)[:, None]

    def matrix(self):
        return np.diag(self.a)
