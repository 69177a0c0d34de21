"""What every posterior structure provides, and the registry of structures.

A structure holds the curvature H of the data term E_D at w_MAP in some
form (dense, diagonal, Kronecker-factored, low-rank, a block of weights)
and turns it into the factorised precision A = diag(alpha) + s H (s = beta
for a loss with a noise precision, else 1) for any alpha and s. The Laplace
posterior (:mod:`sopt.bayes._posterior`) writes the log evidence, gamma,
the evidence loop's updates and every predictive once, on these primitives:

==========================  ================================================
``Precision.log_det``       ln |A|
``inverse_diagonal()``      diag(A^{-1}), (W_c,): gamma_i = 1 - alpha_i (A^{-1})_ii
``solve(B)``                A^{-1} B
``output_covariance(lin)``  J A^{-1} J^T of the outputs' Jacobian J per row
``draw(E)``                 A^{-1/2}-type transform: covariance A^{-1}
==========================  ================================================

W_c is the number of weights the structure covers (``Curvature.covered``,
indices into the full weight vector): all weights in use, or a subset (the
last layer) with the others fixed at w_MAP.

Adding a structure: a module with a :class:`StructureSpec` subclass (its
``build``) and its :class:`Curvature` and :class:`Precision`, and one line
in :data:`STRUCTURES` (docs/DESIGN.md, "Posterior structures").
"""
from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np

from ..derivatives import weight_sensitivities

Array = np.ndarray
# Matrices a structure assembles densely only on request (tests, the
# ``precision`` attribute) are refused above this many bytes.
ASSEMBLE_MAX_BYTES = 2 ** 31


class Linearisation:
    """The network at w on one block of rows X (N, D): f = y or the output
    pre-activations a, (N, K), and its weight Jacobian in the form a
    structure asks for. One forward pass; the backward passes on demand."""

    def __init__(self, net, w: Array, X: Array, of: str):
        self.net, self.w = net, w
        self.fp = net.propagate(w, X)
        K = net.n_outputs
        self.seeds = (net.output_seeds(self.fp) if of == "y"
                      else np.broadcast_to(np.eye(K), (len(X), K, K)))
        self.f = self.fp.y.copy() if of == "y" else self.fp.a[-1].copy()
        self._deltas = None

    @property
    def n_rows(self) -> int:
        return len(self.f)

    def jacobian(self, columns: Array) -> Array:
        """df/dw on the given weights, (N, K, len(columns)). Memory N K W."""
        return weight_sensitivities(self.net, self.fp, self.seeds)[:, :, columns]

    def deltas(self) -> list:
        """Per layer l, df_k/da_l: (N, K, size_l), from one backward pass."""
        if self._deltas is None:
            self._deltas = self.net.backward(self.fp, self.seeds).deltas
        return self._deltas

    def source_values(self, node) -> Array:
        """z of a node feeding an edge (the inputs for node 0), (N, size)."""
        return self.fp.z[node.index]


class Precision(abc.ABC):
    """A = diag(alpha) + s H on the covered weights, factorised once."""

    log_det: float

    @abc.abstractmethod
    def inverse_diagonal(self) -> Array:
        """diag(A^{-1}), (W_c,)."""

    @abc.abstractmethod
    def solve(self, B: Array) -> Array:
        """A^{-1} B for B (W_c,) or (W_c, P)."""

    @abc.abstractmethod
    def output_covariance(self, lin: Linearisation, full: bool) -> Array:
        """J A^{-1} J^T for J = df/dw of ``lin``'s rows: (N, K) variances or,
        with ``full``, (N, K, K) covariances."""

    @abc.abstractmethod
    def draw(self, E: Array) -> Array:
        """D (W_c, n) with D D^T / n -> A^{-1} for E (W_c, n) standard normal."""

    def matrix(self) -> Array:
        """A assembled, (W_c, W_c) (tests and small W only)."""
        raise NotImplementedError


CURVATURE_CLASSES: dict = {}


class Curvature(abc.ABC):
    """H of the data term at w_MAP on the covered weights, in one structure.

    ``covered``: (W_c,) indices into the full weight vector. ``kind``:
    "gauss_newton" or "exact" (the matrix H approximates or is)."""

    name: str

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        CURVATURE_CLASSES[cls.__name__] = cls     # what a saved file may name

    def __init__(self, covered: Array, kind: str):
        self.covered = np.asarray(covered, dtype=np.intp)
        self.kind = kind
        self.name = type(self).name     # a subset structure renames its own

    @abc.abstractmethod
    def precision(self, alpha: Array, scale: float) -> Precision:
        """Factorise diag(alpha) + scale H, alpha (W_c,) > 0."""

    @abc.abstractmethod
    def matrix(self) -> Array:
        """H assembled, (W_c, W_c) (tests and small W only)."""

    @abc.abstractmethod
    def state(self) -> dict:
        """Numbers and arrays that rebuild this curvature (saving)."""

    @classmethod
    @abc.abstractmethod
    def from_state(cls, state: dict, net) -> "Curvature":
        """The curvature from :meth:`state`'s dict, checked (ValueError)."""

    @property
    @abc.abstractmethod
    def nbytes(self) -> int:
        """Memory held, in bytes."""

    def scaled_eigenvalues(self, alpha: Array) -> Array:
        """Eigenvalues of diag(alpha)^{-1/2} H diag(alpha)^{-1/2} (the
        evidence loop's beta root, rarely needed). Default: from the
        assembled matrix, O(W_c^3)."""
        from scipy.linalg import eigh
        s = 1.0 / np.sqrt(alpha)
        return eigh(s[:, None] * self.matrix() * s, eigvals_only=True)


class StructureSpec(abc.ABC):
    """A structure's name and options; ``build`` computes its curvature."""

    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]] = ("gauss_newton", "exact")

    @abc.abstractmethod
    def build(self, data, w_map: Array, used: Array, kind: str,
              clip_negative: bool, max_bytes) -> Curvature:
        """The curvature of ``data`` (an objective without weight decay) at
        w_map; ``used`` the weights in use (masked-out ones excluded)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def check_assemble(n: int, what: str, structure: str) -> None:
    """Refuse to assemble an (n, n) matrix above :data:`ASSEMBLE_MAX_BYTES`."""
    if 8.0 * n * n > ASSEMBLE_MAX_BYTES:
        raise MemoryError(f"{what}: the dense ({n}, {n}) matrix would take "
                          f"{8.0 * n * n / 2 ** 30:.1f} GiB; the {structure!r} "
                          "structure does not hold it")


# name -> spec class; filled by sopt.bayes._structures (one line per structure)
STRUCTURES: dict[str, type] = {}



def get_structure(structure) -> StructureSpec:
    """A StructureSpec from a name in :data:`STRUCTURES` or a spec instance."""
    if isinstance(structure, StructureSpec):
        return structure
    if isinstance(structure, str) and structure in STRUCTURES:
        return STRUCTURES[structure]()
    raise ValueError(f"structure: expected one of {sorted(STRUCTURES)} or a "
                     f"StructureSpec (e.g. sopt.bayes.LowRank(rank=50)), got "
                     f"{structure!r}")
