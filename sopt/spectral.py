"""Spectral tools on Hessian- or Gauss-Newton-vector products of any
objective (:class:`sopt.Objective`, :class:`sopt.distributed.ShardedObjective`
or any :class:`sopt.objective.ObjectiveProtocol`): nothing here holds a
W x W matrix.

- :func:`eigenpairs`: the k largest or smallest eigenpairs, by block
  Lanczos with full reorthogonalisation (or ARPACK's implicitly restarted
  Lanczos, :func:`scipy.sparse.linalg.eigsh`, which restarts badly at a
  clustered end: measured in experiments/bench_spectral.py);
- :func:`hutchinson_trace`, :func:`hutchinson_diagonal`: Hutchinson's
  estimates with Rademacher probes (Hutchinson 1990; Bekas, Kokiopoulou and
  Saad 2007 for the diagonal), each with its standard error;
- :func:`lanczos_quadrature`: stochastic Lanczos quadrature (Ubaru, Chen and
  Saad 2017, SIAM J. Matrix Anal. Appl. 38(4)), on which :func:`log_det`,
  :func:`evidence_terms` (ln|A| and gamma of the evidence framework),
  :func:`spectral_density` and :func:`plot_spectral_density` (the smoothed
  spectral density of Ghorbani, Krishnan and Xiao 2019, ICML) are written.

The matrix M is the objective's Hessian (``matrix="exact"``, hvp) or
Gauss-Newton matrix (``"gauss_newton"``, gnvp), weight decay included,
restricted to ``weights`` (indices into w; default the weights in use:
masked-out weights are not parameters). Costs are counted in products
M v; one product costs about one pass over the data, Theta(N W).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.linalg import eig_banded, eigh_tridiagonal
from scipy.sparse.linalg import LinearOperator, eigsh

from ._validation import (DEFAULT_MAX_BYTES, as_float_array, check_bool, check_choice,
                          check_int, check_positive, check_positive_int, check_real,
                          check_weights)
from .objective import ObjectiveProtocol, missing_members

Array = np.ndarray
MATRICES = ("exact", "gauss_newton")
WHICH = ("largest", "smallest")
# A Krylov space has closed (an invariant subspace found) where the next
# vector's norm is at the round-off full reorthogonalisation leaves of a
# product, O(eps |M|).
BREAKDOWN = 1e3 * np.finfo(float).eps


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate: ``value`` (a float or an array), its
    ``standard_error`` (same shape: the probes' sample standard deviation
    over sqrt(n_probes)), and what it cost. Lanczos quadrature adds
    ``quadrature_change``: how far the same probes' estimate moves between
    half the Lanczos steps and all of them. The quadrature's truncation
    error, which the standard error does not see, falls with the steps; a
    change well above the standard error says to take more. It indicates,
    it does not bound: while both rules are far from converged the error
    can exceed it (6 times, for gamma at 50 steps in
    experiments/bench_spectral.py)."""

    value: float | Array
    standard_error: float | Array
    n_probes: int
    n_products: int
    quadrature_change: float | None = None


@dataclass(frozen=True)
class Eigenpairs:
    """``values`` (k,) ascending, ``vectors`` (n, k) orthonormal columns on
    the ``weights`` (n,) they were computed on, ``residual_norms`` (k,)
    |M v - lambda v| (each value lies within its residual norm of an
    eigenvalue of M), ``n_products`` used."""

    values: Array
    vectors: Array
    weights: Array
    residual_norms: Array
    n_products: int


# ------------------------------------------------------------ the operator
class RestrictedProducts:
    """V -> (M [V embedded in w's space])[weights], M = H or the
    Gauss-Newton matrix of ``objective`` at w; counts the products.

    V of shape (n,) or (n, P) with n = len(weights); memory W P doubles per
    call for the embedding."""

    def __init__(self, objective, w, matrix: str = "exact", weights=None):
        objective = check_objective(objective)
        W = objective.net.n_weights
        self.w = check_weights(w, W).copy()
        check_choice(matrix, "matrix", MATRICES)
        self.product = objective.hvp if matrix == "exact" else objective.gnvp
        self.weights = weights_in_use(objective.net, weights)
        self.n_weights, self.n_products = W, 0

    @property
    def size(self) -> int:
        return len(self.weights)

    def __call__(self, V: Array) -> Array:
        # one direction goes as a vector: the objectives' single-vector
        # products are faster than blocks of one (bench_spectral.py)
        single = V.ndim == 1 or V.shape[1] == 1
        full = np.zeros(self.n_weights if single else (self.n_weights, V.shape[1]))
        full[self.weights] = V.ravel() if single else V
        out = self.product(self.w, full)[self.weights]
        self.n_products += 1 if single else V.shape[1]
        return out.reshape(V.shape)

    def operator(self, shift: float = 0.0, sign: float = 1.0) -> LinearOperator:
        """sign M + shift I as a LinearOperator (counting its products)."""
        n = self.size
        mv = lambda v: sign * self(np.ravel(v)) + shift * np.ravel(v)   # noqa: E731
        mm = lambda V: sign * self(V) + shift * V                        # noqa: E731
        return LinearOperator((n, n), matvec=mv, rmatvec=mv, matmat=mm, dtype=float)


def check_objective(objective):
    """objective if it provides :class:`~sopt.objective.ObjectiveProtocol`,
    else a TypeError naming what it lacks."""
    if not isinstance(objective, ObjectiveProtocol):
        raise TypeError(f"objective: expected an objective (sopt.Objective, "
                        f"sopt.distributed.ShardedObjective), got "
                        f"{type(objective).__name__} (no "
                        f"{', '.join(missing_members(objective))})")
    return objective


def weights_in_use(net, weights=None) -> Array:
    """Sorted unique indices into w: ``weights`` checked, or (None) those in
    use (not masked out), (n,)."""
    if weights is None:
        return np.flatnonzero(net.used_weight_mask())
    idx = np.asarray(weights)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError("weights: expected a non-empty 1-D array of integer "
                         "indices into w")
    idx = np.unique(idx)
    if idx[0] < 0 or idx[-1] >= net.n_weights:
        raise ValueError(f"weights: indices must lie in [0, {net.n_weights - 1}]")
    return idx.astype(np.intp)


def _rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


# ------------------------------------------------------------ eigenpairs
class SpectralWarning(RuntimeWarning):
    """An eigensolver stopped (at its memory limit) before every wanted
    pair met its tolerance; the residual norms say how far each is."""


def eigenpairs(objective, w, k: int, which: str = "largest", matrix: str = "exact",
               *, weights=None, tol: float = 1e-10, method: str = "lanczos",
               block_size: int = 4, seed=0, max_bytes=None) -> Eigenpairs:
    """The k largest or smallest (algebraic) eigenpairs of M at w.

    ``method="lanczos"`` (default): block Lanczos with full
    reorthogonalisation and no restarts, ``block_size`` products per call,
    until every wanted Ritz pair (theta, y) has |M y - theta y| <=
    tol * |M|_2 (|M|_2 estimated by the largest |Ritz value|), so each
    eigenvalue is within that of one of M's, however close to zero.
    Memory 8 n m bytes for the m Lanczos vectors (refused beyond
    ``max_bytes``, default 4 GiB: the solver then stops with a
    :class:`SpectralWarning`); cost m products and O(n m^2) flops.
    A block of P vectors finds eigenvalues of multiplicity up to P (one
    vector finds the further copies only once its Krylov space closes);
    blocks do not save time in memory (a block of P products costs more
    than P single ones), but they do for a sharded objective, one cluster
    round trip per block.

    ``method="arpack"``: scipy's ARPACK (implicitly restarted Lanczos,
    memory O(n k)) on sign M + |M|_2 I (which puts the same tolerance on
    every pair). Its restarts cost many products where the wanted end is
    clustered (the smallest eigenvalues of a network's Hessian: tens of
    thousands at W = 2,285, against about 800 for ``"lanczos"``,
    experiments/bench_spectral.py); it suits a large, well-separated end.

    Returns :class:`Eigenpairs` on ``weights`` (default those in use), with
    the residual norms (k more products) and the products used.
    """
    products = RestrictedProducts(objective, w, matrix, weights)
    n = products.size
    k = check_positive_int(k, "k")
    if k > n:
        raise ValueError(f"k: expected at most n = {n} (the weights it is "
                         f"computed on), got {k}")
    check_choice(which, "which", WHICH)
    check_choice(method, "method", ("lanczos", "arpack"))
    tol = check_real(tol, "tol", 0.0, 1.0, high_open=True)
    block_size = min(check_positive_int(block_size, "block_size"), n)
    if method == "arpack":
        values, vectors = _arpack_eigenpairs(products, k, which, tol, _rng(seed))
    else:
        cap = _lanczos_capacity(n, block_size, max_bytes)
        values, vectors = _block_lanczos(products, k, which, tol, block_size, cap,
                                         _rng(seed))
    residuals = products(vectors) - vectors * values
    return Eigenpairs(values, vectors, products.weights,
                      np.linalg.norm(residuals, axis=0), products.n_products)


def _lanczos_capacity(n: int, block_size: int, max_bytes) -> int:
    """Lanczos vectors that fit in max_bytes: all n, or whole blocks."""
    limit = DEFAULT_MAX_BYTES if max_bytes is None else check_positive(max_bytes,
                                                                       "max_bytes")
    fit = int(limit // (8 * n))
    if fit >= n:
        return n
    if fit < 2 * block_size:
        raise MemoryError(f"max_bytes: {limit:.3g} bytes hold {fit} Lanczos "
                          f"vectors of {n} weights; at least {2 * block_size} "
                          "are needed")
    return fit // block_size * block_size


def _block_lanczos(products, k, which, tol, P, cap, rng) -> tuple:
    """Block Lanczos (full reorthogonalisation, no restart) for the k wanted
    Ritz pairs. The block tridiagonal T = V^T M V of the Lanczos vectors V
    (kept as the rows of ``basis``) is held as a band of half-width P (each
    new block rotated so that its coupling B is upper triangular) and its
    wanted eigenpairs found at dimensions 1.25 apart (O(m^2 P) each)."""
    n = products.size
    # the Lanczos vectors as rows: each one contiguous, and the
    # reorthogonalisation reads one contiguous (dim, n) block
    basis, band = np.empty((cap, n)), np.zeros((P + 1, cap))
    Q = np.linalg.qr(rng.standard_normal((n, P)))[0]
    basis[:P] = Q.T
    low, dim, next_check, scale = 0, P, k, 0.0
    while True:
        R = products(Q)
        _put_block(band, low, low, 0.5 * (Q.T @ R + R.T @ Q))
        R = _orthogonalise_block(R, basis[:dim])
        width = min(P, n - dim)          # 0 once the whole space is spanned
        if dim >= next_check or width == 0 or dim + width > cap:
            theta, S = _ritz(band[:, :dim], k, which)
            scale = max(scale, float(np.abs(theta).max()))
            residual = np.linalg.norm(R @ S[low:dim], axis=0)
            if np.all(residual <= tol * scale) or width == 0:
                break
            if dim + width > cap:
                warnings.warn(f"eigenpairs: stopped at {dim} Lanczos vectors (the "
                              f"memory limit) with residuals up to "
                              f"{residual.max() / scale:.1e} |M|", SpectralWarning,
                              stacklevel=3)
                break
            next_check = max(dim + P, int(1.25 * dim))
        Q, B = _next_block(R, width, basis[:dim], max(scale, 1e-300), rng)
        _put_block(band, dim, low, B)
        basis[dim:dim + len(B)] = Q.T
        low, dim = dim, dim + len(B)
    return theta, basis[:dim].T @ S


def _put_block(band: Array, row: int, col: int, block: Array) -> None:
    """Write the lower-band entries of ``block`` (placed at T[row:, col:])
    into ``band`` (band[d, j] = T[j + d, j], scipy's lower band storage)."""
    r, c = np.indices(block.shape)
    d = row + r - col - c
    keep = (d >= 0) & (d < len(band))
    band[d[keep], col + c[keep]] = block[keep]


def _ritz(band: Array, k: int, which: str) -> tuple:
    """The k wanted eigenpairs of the banded projected matrix, ascending."""
    m = band.shape[1]
    k = min(k, m)
    index = (m - k, m - 1) if which == "largest" else (0, k - 1)
    return eig_banded(band, lower=True, select="i", select_range=index)


def _orthogonalise_block(R: Array, basis: Array) -> Array:
    """R (n, P) made orthogonal to the rows of basis (m, n), twice."""
    for _ in range(2):
        R = R - basis.T @ (basis @ R)
    return R


def _next_block(R: Array, width: int, basis: Array, scale: float, rng) -> tuple:
    """The next orthonormal block Q (n, width) spanning R's range, completed
    with random directions orthogonal to everything (``basis`` (m, n) and Q)
    where R is rank deficient (an invariant subspace found), and B = Q^T R."""
    U, s, _ = np.linalg.svd(R, full_matrices=False)
    Q = U[:, s > BREAKDOWN * scale][:, :width]
    while Q.shape[1] < width:
        extra = rng.standard_normal((len(R), width - Q.shape[1]))
        extra = _orthogonalise_block(extra, np.vstack([basis, Q.T]))
        Q = np.hstack([Q, np.linalg.qr(extra)[0]])
    # rotate Q within its span so that B = Q^T R is upper triangular (T stays
    # banded, of half-width P)
    rotation, B = np.linalg.qr(Q.T @ R, mode="complete")
    return Q @ rotation, B


def _arpack_eigenpairs(products, k, which, tol, rng) -> tuple:
    n = products.size
    ncv = min(n, max(2 * k + 1, 20))
    if ncv >= n or k >= n:
        raise ValueError(f"method='arpack': k = {k} too large for n = {n} "
                         "(ARPACK needs max(2 k + 1, 20) < n); use method='lanczos'")
    norm = abs(eigsh(products.operator(), k=1, which="LM", tol=1e-2,
                     v0=rng.standard_normal(n), ncv=min(n - 1, 20),
                     return_eigenvectors=False)[0])
    sign = 1.0 if which == "largest" else -1.0
    theta, vectors = eigsh(products.operator(shift=norm, sign=sign), k=k, which="LA",
                           tol=tol, v0=rng.standard_normal(n), ncv=ncv)
    values = sign * (theta - norm)
    order = np.argsort(values)
    return values[order], vectors[:, order]


# ------------------------------------------------------------ Hutchinson
def hutchinson_trace(objective, w, n_probes: int = 100, matrix: str = "exact", *,
                     weights=None, block_size: int = 10, seed=0) -> Estimate:
    """tr M ~ mean over Rademacher probes z of z^T M z (Hutchinson 1990,
    Commun. Statist. Simul. Comput. 19).

    Each probe is unbiased with variance 2 sum_{i != j} M_ij^2, so the
    standard error (from the probes' spread) falls as 1 / sqrt(n_probes)
    and is small where M is diagonally dominant. Cost n_probes products,
    ``block_size`` per call; memory 2 n block_size doubles (plus the
    objective's own per-product memory)."""
    products = RestrictedProducts(objective, w, matrix, weights)
    n_probes, block_size = _check_probes(n_probes, block_size)
    samples = np.concatenate([np.einsum("ip,ip->p", Z, MZ) for Z, MZ in
                              _probe_blocks(products, n_probes, block_size, _rng(seed))])
    return Estimate(float(samples.mean()),
                    float(samples.std(ddof=1) / np.sqrt(n_probes)),
                    n_probes, products.n_products)


def hutchinson_diagonal(objective, w, n_probes: int = 100, matrix: str = "exact", *,
                        weights=None, block_size: int = 10, seed=0) -> Estimate:
    """diag(M) ~ mean over Rademacher probes z of z * (M z), elementwise
    (Bekas, Kokiopoulou and Saad 2007, Appl. Numer. Math. 57): entry i is
    unbiased with variance sum_{j != i} M_ij^2. ``value`` and
    ``standard_error`` are (n,) arrays on ``weights``. Cost n_probes
    products, ``block_size`` per call; memory 3 n block_size doubles."""
    products = RestrictedProducts(objective, w, matrix, weights)
    n_probes, block_size = _check_probes(n_probes, block_size)
    count, mean, m2 = 0, np.zeros(products.size), np.zeros(products.size)
    for Z, MZ in _probe_blocks(products, n_probes, block_size, _rng(seed)):
        count, mean, m2 = _merge_moments(count, mean, m2, Z * MZ)
    return Estimate(mean, np.sqrt(m2 / (count - 1) / count), n_probes,
                    products.n_products)


def _merge_moments(count: int, mean: Array, m2: Array, X: Array) -> tuple:
    """Running count, mean and sum of squared deviations per row, with the
    columns of X (n, P) added (Chan, Golub and LeVeque's pairwise update:
    no cancellation where the spread is small against the mean)."""
    P = X.shape[1]
    block_mean = X.mean(axis=1)
    block_m2 = ((X - block_mean[:, None]) ** 2).sum(axis=1)
    total = count + P
    delta = block_mean - mean
    return (total, mean + delta * (P / total),
            m2 + block_m2 + delta ** 2 * (count * P / total))


def _probe_blocks(products: RestrictedProducts, n_probes: int, block_size: int,
                  rng: np.random.Generator):
    """(Z, M Z) for blocks of at most ``block_size`` Rademacher probes."""
    for start in range(0, n_probes, block_size):
        Z = rademacher(rng, (products.size, min(block_size, n_probes - start)))
        yield Z, products(Z)


def rademacher(rng: np.random.Generator, shape) -> Array:
    """Independent +-1 entries with probability 1/2 each."""
    return 2.0 * rng.integers(0, 2, size=shape) - 1.0


def _check_probes(n_probes, block_size) -> tuple:
    n_probes = check_int(n_probes, "n_probes", low=2)   # two for a spread
    return n_probes, check_positive_int(block_size, "block_size")


# ------------------------------------------------------------ SLQ
@dataclass(frozen=True)
class Quadrature:
    """Stochastic Lanczos quadrature of M (Ubaru, Chen and Saad 2017): per
    Rademacher probe z, the m-point Gauss rule of the measure
    sum_i (u_i^T z)^2 / n delta(t - lambda_i) from m Lanczos steps on z.

    ``nodes`` (n_probes, m) the Ritz values theta, ``node_weights``
    (n_probes, m) tau (each row sums to 1; zero where a probe's Krylov space
    closed early), ``half_nodes`` and ``half_weights`` the rules of the first
    m // 2 steps, ``size`` n, ``matrix``, ``decay`` (the largest weight-decay
    coefficient of the objective the products came from: 0 for a data term)
    and ``n_products``. tr f(M) ~ n mean_z sum_j tau_j f(theta_j): exact in
    expectation over probes for polynomials of degree < 2 m, with an error
    falling geometrically in m for f analytic on M's spectrum (Ubaru et al.,
    Theorem 4.2), slowly where the spectrum spans decades (a trained
    network's Gauss-Newton matrix: experiments/bench_spectral.py)."""

    nodes: Array
    node_weights: Array
    half_nodes: Array
    half_weights: Array
    size: int
    matrix: str
    decay: float
    n_products: int

    @property
    def n_probes(self) -> int:
        return len(self.nodes)

    def trace(self, f) -> Estimate:
        """tr f(M), f a vectorised function of the eigenvalue, with the
        standard error over probes and the change from the half-length rule
        (see :class:`Estimate`)."""
        samples = self._samples(f, self.nodes, self.node_weights)
        half = self._samples(f, self.half_nodes, self.half_weights)
        return Estimate(float(samples.mean()),
                        float(samples.std(ddof=1) / np.sqrt(self.n_probes)),
                        self.n_probes, self.n_products,
                        float(abs(samples.mean() - half.mean())))

    def _samples(self, f, nodes: Array, weights: Array) -> Array:
        """n sum_j tau_j f(theta_j) per probe (f only where tau > 0)."""
        values = np.zeros(nodes.shape)
        used = weights > 0
        values[used] = f(nodes[used])
        return self.size * np.sum(weights * values, axis=1)

    def support(self) -> tuple:
        """(lowest, highest) Ritz value: inside M's spectrum's hull (the
        half-length rule's nodes lie inside these, by interlacing)."""
        nodes = self.nodes[self.node_weights > 0]
        return float(nodes.min()), float(nodes.max())


def lanczos_quadrature(objective, w, n_probes: int = 30, n_steps: int = 100,
                       matrix: str = "exact", *, weights=None, block_size: int = 10,
                       seed=0) -> Quadrature:
    """The SLQ rules of M from ``n_probes`` Rademacher probes, ``n_steps``
    Lanczos steps each (at most n), with full reorthogonalisation.

    The probes run side by side, ``block_size`` of them per product call.
    Cost n_probes n_steps products and O(n_probes n_steps^2 n) flops for the
    reorthogonalisation; memory block_size n_steps n doubles (the Lanczos
    vectors of a block). One rule serves any f, and any shift and scale
    alpha I + beta M (Krylov spaces are shift-invariant), so an evidence
    loop over alpha and beta needs one at each w."""
    products = RestrictedProducts(objective, w, matrix, weights)
    n_probes, block_size = _check_probes(n_probes, block_size)
    steps = min(check_positive_int(n_steps, "n_steps"), products.size)
    rng, full, half = _rng(seed), [], []
    for start in range(0, n_probes, block_size):
        Z = rademacher(rng, (products.size, min(block_size, n_probes - start)))
        diag, offdiag, lengths = _lanczos(products, Z / np.sqrt(products.size), steps)
        full.append(_gauss_rules(diag, offdiag, lengths))
        half.append(_gauss_rules(diag, offdiag, np.minimum(lengths, max(1, steps // 2))))
    decay = float(np.max(np.abs(np.asarray(objective.alpha, dtype=float))))
    return Quadrature(*(np.concatenate(part) for part in zip(*full)),
                      *(np.concatenate(part) for part in zip(*half)),
                      products.size, matrix, decay, products.n_products)


def _lanczos(products, Q: Array, m: int) -> tuple:
    """m Lanczos steps from each unit column of Q (n, P), side by side, each
    new vector orthogonalised twice against all earlier ones of its probe
    (classical Gram-Schmidt twice: "twice is enough", Giraud et al. 2005).
    Returns the tridiagonals' diagonals (P, m), off-diagonals (P, m) and
    lengths (P,) (a probe whose Krylov space closed stops early)."""
    n, P = Q.shape
    basis = np.empty((P, m, n))
    diag, offdiag = np.zeros((P, m)), np.zeros((P, m))
    lengths, open_ = np.full(P, m), np.ones(P, dtype=bool)
    scale = 0.0
    for j in range(m):
        basis[:, j] = Q.T
        R = products(Q)
        diag[:, j] = np.einsum("ip,ip->p", Q, R)
        if j == m - 1:
            break
        R = _orthogonalise(R, basis[:, :j + 1])
        norms = np.linalg.norm(R, axis=0)
        scale = max(scale, float(np.max(np.abs(diag[:, j]) + norms)))
        closed = open_ & (norms <= BREAKDOWN * scale)
        lengths[closed], open_ = j + 1, open_ & ~closed
        offdiag[:, j] = np.where(open_, norms, 0.0)
        Q = np.where(open_, R / np.where(open_, norms, 1.0), 0.0)
    return diag, offdiag, lengths


def _orthogonalise(R: Array, basis: Array) -> Array:
    """R (n, P) with each column made orthogonal to its probe's basis
    (P, j, n), twice. Cost 8 j n P flops."""
    r = R.T[:, :, None]
    for _ in range(2):
        r = r - np.matmul(basis.transpose(0, 2, 1), np.matmul(basis, r))
    return r[:, :, 0].T


def _gauss_rules(diag: Array, offdiag: Array, lengths: Array) -> tuple:
    """Each probe's Gauss rule from its tridiagonal: nodes = eigenvalues,
    weights = squared first components of the eigenvectors (Golub and Welsch
    1969); padded with weight 0 past the probe's length. (P, m) each."""
    P, m = diag.shape
    nodes, weights = np.empty((P, m)), np.zeros((P, m))
    for p in range(P):
        L = lengths[p]
        theta, S = eigh_tridiagonal(diag[p, :L], offdiag[p, :L - 1])
        nodes[p, :L], nodes[p, L:] = theta, theta[0]
        weights[p, :L] = S[0] ** 2
    return nodes, weights


def _quadrature_of(source, w, lanczos: dict, data_term: bool = False) -> Quadrature:
    """``source`` if it is a Quadrature (then no w and no Lanczos options),
    else the quadrature of the objective ``source`` at w (of its data term,
    weight decay removed, when ``data_term``)."""
    if isinstance(source, Quadrature):
        if w is not None or lanczos:
            raise TypeError("a Quadrature already holds its rules: pass neither w "
                            f"nor {', '.join(lanczos) or 'Lanczos options'}")
        return source
    if w is None:
        raise TypeError("w: required with an objective")
    objective = check_objective(source)
    if data_term:
        objective = objective.with_alpha(0.0)
    return lanczos_quadrature(objective, w, **lanczos)


def _shifted(q: Quadrature, shift: float, scale: float, clip_negative: bool):
    """t -> shift + scale t (t clipped at 0 if asked), checked positive at
    every node of the rule (a Ritz value <= 0 proves the matrix is not
    positive definite)."""
    def shifted(t):
        return shift + scale * (np.maximum(t, 0.0) if clip_negative else t)
    low = float(shifted(q.nodes[q.node_weights > 0]).min())
    if not low > 0:
        raise np.linalg.LinAlgError(
            f"{shift:g} I + {scale:g} M has a Ritz value {low:.3g} <= 0: it is "
            "not positive definite (M indefinite). Use matrix='gauss_newton', or "
            "clip_negative=True to set M's negative eigenvalues to zero")
    return shifted


def log_det(objective, w=None, shift: float = 0.0, scale: float = 1.0, *,
            clip_negative: bool = False, **lanczos) -> Estimate:
    """ln|shift I + scale M| by stochastic Lanczos quadrature (f = ln).

    ``objective`` an objective (then w, and any options of
    :func:`lanczos_quadrature`) or a :class:`Quadrature` already made
    (reused: no products). The matrix must be positive definite: a Ritz
    value <= 0 (which proves it is not) raises LinAlgError; an exact Hessian
    can be indefinite with every Ritz value positive, and the estimate then
    answers for the part of the spectrum the probes saw. ``clip_negative``
    takes the log-determinant with M's negative eigenvalues set to zero
    (f(t) = ln(shift + scale max(t, 0)), as the dense Laplace posterior
    clips them); its quadrature converges more slowly, f having a kink at 0.
    Cost and memory: those of the quadrature, then O(n_probes n_steps)."""
    shift = check_real(shift, "shift")
    scale = check_real(scale, "scale")
    clip_negative = check_bool(clip_negative, "clip_negative")
    q = _quadrature_of(objective, w, lanczos)
    shifted = _shifted(q, shift, scale, clip_negative)
    return q.trace(lambda t: np.log(shifted(t)))


@dataclass(frozen=True)
class EvidenceTerms:
    """ln|A| and gamma = n - alpha tr(A^{-1}) for A = alpha I + beta H, each
    an :class:`Estimate` (same probes)."""

    log_det: Estimate
    gamma: Estimate


def evidence_terms(objective, w=None, alpha: float | None = None, beta: float = 1.0,
                   *, clip_negative: bool = False, **lanczos) -> EvidenceTerms:
    """The evidence framework's ln|A| and gamma (PRML eqs. 5.175, 5.179) for
    A = alpha I + beta H on the weights in use, H the data term's
    Gauss-Newton matrix (the default; ``matrix="exact"`` for the Hessian),
    where nothing can be factorised: SLQ with f = ln(alpha + beta t) and
    f = 1 - alpha / (alpha + beta t) (whose trace is gamma = n - alpha
    tr(A^{-1}) without subtracting from n).

    ``objective``: an objective, whose own weight decay is not the prior
    and is ignored (its data term is used), with w and any options of
    :func:`lanczos_quadrature`; or a :class:`Quadrature` of a data term
    (decay 0), reusable for every alpha and beta of an evidence loop at one
    w. alpha scalar (one rule serves every shift; per-weight alpha would
    need Lanczos on A itself). beta = 1 for a loss without a noise
    precision. Each term's standard error is over probes; its
    ``quadrature_change`` flags the quadrature's bias, which dominates over
    spectra spanning decades (a trained network: about 200 steps for 1% at
    W = 4,820, docs/PERFORMANCE.md). Cost and memory: the quadrature's
    (n_probes n_steps products), then O(n_probes n_steps)."""
    if alpha is None:
        raise TypeError("alpha: required (the prior's precision)")
    alpha = check_positive(alpha, "alpha")
    beta = check_positive(beta, "beta")
    clip_negative = check_bool(clip_negative, "clip_negative")
    if not isinstance(objective, Quadrature):
        lanczos.setdefault("matrix", "gauss_newton")
    q = _quadrature_of(objective, w, lanczos, data_term=True)
    if q.decay != 0:
        raise ValueError("objective: the quadrature was made on an objective with "
                         "weight decay; make it on objective.with_alpha(0.0)")
    shifted = _shifted(q, alpha, beta, clip_negative)
    return EvidenceTerms(q.trace(lambda t: np.log(shifted(t))),
                         q.trace(lambda t: 1.0 - alpha / shifted(t)))


# ------------------------------------------------------------ density
#: Default Gaussian width of the density, as a fraction of the Ritz values'
#: range (Ghorbani et al. use variance 1e-5 on a spectrum scaled to
#: [-1, 1], a width of 0.0016 of the range: sharper, for far more steps).
SIGMA_FRACTION = 0.005


def spectral_density(objective, w=None, *, n_grid: int = 1000, sigma=None,
                     grid=None, **lanczos) -> tuple:
    """The spectral density of M smoothed by a Gaussian of width ``sigma``:
    phi(t) = mean over probes of sum_j tau_j N(t; theta_j, sigma^2)
    (Ghorbani, Krishnan and Xiao 2019, eq. 4 with the SLQ rules); it
    integrates to 1. ``objective`` an objective (with w and any options of
    :func:`lanczos_quadrature`) or a :class:`Quadrature`. ``sigma`` defaults
    to :data:`SIGMA_FRACTION` of the Ritz values' range; ``grid`` to
    ``n_grid`` points over that range padded by 5 sigma. Returns (grid,
    density), (n_grid,) each. Cost O(n_grid n_probes n_steps) after the
    quadrature."""
    q = _quadrature_of(objective, w, lanczos)
    low, high = q.support()
    if sigma is None:
        sigma = SIGMA_FRACTION * ((high - low) or max(abs(high), 1.0))
    sigma = check_positive(sigma, "sigma")
    if grid is None:
        grid = np.linspace(low - 5 * sigma, high + 5 * sigma,
                           check_int(n_grid, "n_grid", low=2))
    grid = as_float_array(grid, "grid")
    if grid.ndim != 1 or not np.all(np.isfinite(grid)):
        raise ValueError("grid: expected a 1-D array of finite values")
    return grid, _smoothed(q, grid, sigma)


def _smoothed(q: Quadrature, grid: Array, sigma: float) -> Array:
    """sum of the rules' weighted Gaussians at the grid points, in blocks of
    grid points (memory 256 n_probes n_steps doubles)."""
    used = q.node_weights > 0
    nodes, tau = q.nodes[used], q.node_weights[used] / q.n_probes
    out = np.empty(len(grid))
    for start in range(0, len(grid), 256):
        u = (grid[start:start + 256, None] - nodes) / sigma
        out[start:start + 256] = np.exp(-0.5 * u * u) @ tau
    return out / (sigma * np.sqrt(2 * np.pi))


def plot_spectral_density(objective, w=None, *, ax=None, log_scale: bool = True,
                          n_grid: int = 1000, sigma=None, grid=None, **lanczos):
    """Plot :func:`spectral_density` (same arguments) on ``ax`` (a new
    figure if None), the density on a log axis as Ghorbani et al. show it
    (floored at 1e-10 of its peak, the axis's lower end). Returns the
    matplotlib Figure.
    matplotlib is imported here, not by ``import sopt``."""
    import matplotlib.pyplot as plt

    grid, density = spectral_density(objective, w, n_grid=n_grid, sigma=sigma,
                                     grid=grid, **lanczos)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    if check_bool(log_scale, "log_scale"):
        floor = 1e-10 * density.max()
        ax.plot(grid, np.maximum(density, floor), lw=1.2)
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
    else:
        ax.plot(grid, density, lw=1.2)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    return ax.figure
