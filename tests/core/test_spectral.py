"""sopt.spectral against dense linear algebra on tiny networks (W = 50-74).

Tolerances: the eigensolver stops when every residual |M v - theta v| is
below tol |M|_2 (tol = 1e-10), and for a symmetric M an eigenvalue lies
within the residual of each Ritz value, so the eigenvalues are compared at
1e-8 |M|_2. The Monte Carlo estimates are compared with the truth in units
of their own standard error (one fixed seed each: 4 SE is exceeded with
probability 6e-5 for a normal error), and the standard error itself with
the probes' known variance (Hutchinson: 2 sum_{i != j} M_ij^2 per probe).
Where the quadrature runs n steps it is exact per probe, and is compared
with z^T f(M) z computed densely for the same probes at round-off level.
"""

import numpy as np
import pytest

import sopt
from sopt import spectral
from sopt.spectral import SpectralWarning

EIG_RTOL = 1e-8         # 100 x the solver's residual tolerance (see above)


@pytest.fixture(scope="module")
def problem():
    """(objective, w) of a 3-8-2 tanh network on 40 patterns, untrained (its
    exact Hessian indefinite), W = 50."""
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (40, 3))
    T = np.column_stack([np.sin(2 * X[:, 0]), X[:, 1] * X[:, 2]])
    net = sopt.mlp([3, 8, 2], hidden="tanh", output="identity")
    return sopt.Objective(net, X, T, alpha=0.0), net.init_weights(seed=1)


def masked_problem():
    """A skip-layer network with masked weights: (objective, w, used)."""
    rng = np.random.default_rng(4)
    net = sopt.Network(n_inputs=3)
    mask = (rng.uniform(size=(6, 3)) > 0.3).astype(float)
    h = net.add_layer(6, "tanh", inputs=[net.input], masks={net.input: mask})
    net.add_layer(2, "identity", inputs=[h, net.input], output=True)
    X = rng.uniform(-1, 1, (30, 3))
    T = np.column_stack([np.sin(X[:, 0]), X[:, 1] ** 2])
    used = np.flatnonzero(net.used_weight_mask())
    return sopt.Objective(net, X, T, alpha=0.3), net.init_weights(seed=2), used


def dense(objective, w, matrix):
    return objective.hessian(w, matrix)


# ------------------------------------------------------------ eigenpairs
@pytest.mark.parametrize("matrix", ["exact", "gauss_newton"])
@pytest.mark.parametrize("which", ["largest", "smallest"])
@pytest.mark.parametrize("block_size", [1, 4])
def test_eigenpairs_equal_eigvalsh(problem, matrix, which, block_size):
    obj, w = problem
    H = dense(obj, w, matrix)
    lam = np.linalg.eigvalsh(H)
    norm = np.abs(lam).max()
    e = spectral.eigenpairs(obj, w, 6, which, matrix, block_size=block_size)
    want = lam[-6:] if which == "largest" else lam[:6]
    assert np.all(np.diff(e.values) >= 0)
    assert np.abs(e.values - want).max() < EIG_RTOL * norm
    # the reported residuals are those of the dense matrix, and small
    residual = np.linalg.norm(H @ e.vectors - e.vectors * e.values, axis=0)
    np.testing.assert_allclose(e.residual_norms, residual, rtol=0, atol=1e-12 * norm)
    assert e.residual_norms.max() < EIG_RTOL * norm
    np.testing.assert_allclose(e.vectors.T @ e.vectors, np.eye(6), atol=1e-10)


def test_eigenpairs_by_arpack_equal_eigvalsh(problem):
    obj, w = problem
    lam = np.linalg.eigvalsh(dense(obj, w, "exact"))
    for which, want in (("largest", lam[-3:]), ("smallest", lam[:3])):
        e = spectral.eigenpairs(obj, w, 3, which, method="arpack")
        assert np.abs(e.values - want).max() < EIG_RTOL * np.abs(lam).max()


def test_eigenpairs_are_those_of_the_weights_in_use():
    obj, w, used = masked_problem()
    H = dense(obj, w, "exact")
    lam = np.linalg.eigvalsh(H[np.ix_(used, used)])
    e = spectral.eigenpairs(obj, w, 4, "smallest")
    np.testing.assert_array_equal(e.weights, used)
    assert e.vectors.shape == (len(used), 4)
    # the masked weights' zero rows would otherwise bring zero eigenvalues
    assert np.abs(e.values - lam[:4]).max() < EIG_RTOL * np.abs(lam).max()
    sub = used[::2]
    e = spectral.eigenpairs(obj, w, 2, weights=sub)
    want = np.linalg.eigvalsh(H[np.ix_(sub, sub)])[-2:]
    assert np.abs(e.values - want).max() < EIG_RTOL * np.abs(want).max()


@pytest.mark.parametrize("block_size", [1, 4])
def test_eigenpairs_find_every_copy_of_a_repeated_eigenvalue(problem, block_size):
    """The Gauss-Newton matrix of a network whose hidden unit feeds nothing
    has the zero eigenvalue four times over (that unit's incoming weights
    and bias), the next one at 1e-10 |G|. A single vector's Krylov space
    holds one copy and closes (it spans at most as many dimensions as there
    are distinct eigenvalues); the solver then continues from random
    directions orthogonal to it, and so finds all four."""
    obj, w = problem
    w = w.copy()
    w[obj.net.layers[1].weight_slices[0]][::8] = 0.0    # unit 0 -> both outputs
    G = dense(obj, w, "gauss_newton")
    lam = np.linalg.eigvalsh(G)
    norm = lam.max()
    assert np.all(np.abs(lam[:4]) < 1e-14 * norm) and lam[4] > 5e-11 * norm
    e = spectral.eigenpairs(obj, w, 4, "smallest", "gauss_newton",
                            block_size=block_size)
    assert np.abs(e.values).max() < 1e-12 * norm
    assert np.linalg.norm(G @ e.vectors) < 1e-12 * norm


def test_eigenpairs_warn_at_their_memory_limit(problem):
    obj, w = problem
    n = obj.net.n_weights
    with pytest.warns(SpectralWarning, match="memory limit"):
        e = spectral.eigenpairs(obj, w, 6, "smallest", max_bytes=8 * n * 12)
    assert e.residual_norms.max() > 1e-10 * np.abs(e.values).max()


# ------------------------------------------------------------ Hutchinson
@pytest.mark.parametrize("matrix", ["exact", "gauss_newton"])
def test_hutchinson_trace_within_its_standard_error(problem, matrix):
    obj, w = problem
    H = dense(obj, w, matrix)
    est = spectral.hutchinson_trace(obj, w, n_probes=400, matrix=matrix, seed=5)
    sd = np.sqrt(2 * (np.sum(H ** 2) - np.sum(np.diag(H) ** 2)) / 400)
    assert 0.8 < est.standard_error / sd < 1.25      # 400 probes: +-~7% spread
    assert abs(est.value - np.trace(H)) < 4 * est.standard_error
    assert est.standard_error < 0.1 * abs(np.trace(H))
    assert est.n_products == 400


def test_hutchinson_diagonal_within_its_standard_errors(problem):
    obj, w = problem
    H = dense(obj, w, "gauss_newton")
    est = spectral.hutchinson_diagonal(obj, w, n_probes=400, matrix="gauss_newton",
                                       block_size=7, seed=6)
    sd = np.sqrt((np.sum(H ** 2, axis=1) - np.diag(H) ** 2) / 400)
    assert 0.85 < np.median(est.standard_error / sd) < 1.15
    z = (est.value - np.diag(H)) / est.standard_error
    assert np.abs(z).max() < 4.5                      # 50 entries
    assert 0.85 < np.mean(np.abs(z) < 2) <= 1.0       # ~95% expected
    assert est.value.shape == est.standard_error.shape == (obj.net.n_weights,)


def test_moments_merged_block_by_block_equal_those_of_all_samples():
    """The diagonal's running mean and spread, merged block by block, equal
    numpy's two-pass ones over all samples, also where the spread is 1e-8
    of the mean: there mean(x^2) - mean(x)^2 would lose every digit (its
    round-off, eps 1e8, is the variance itself), while each deviation
    carries only 1e4 eps / 1e-4 ~ 1e-8 relative round-off (hence 1e-7)."""
    rng = np.random.default_rng(0)
    X = 1e4 + 1e-4 * rng.standard_normal((5, 23))
    count, mean, m2 = 0, np.zeros(5), np.zeros(5)
    for start in range(0, 23, 7):
        count, mean, m2 = spectral._merge_moments(count, mean, m2, X[:, start:start + 7])
    np.testing.assert_allclose(mean, X.mean(axis=1), rtol=1e-15)
    np.testing.assert_allclose(m2 / (count - 1), X.var(axis=1, ddof=1), rtol=1e-7)


# ------------------------------------------------------------ SLQ
def probes_of(n, n_probes, block_size, seed):
    """The Rademacher probes lanczos_quadrature draws, (n, n_probes)."""
    rng = np.random.default_rng(seed)
    blocks = [spectral.rademacher(rng, (n, min(block_size, n_probes - s)))
              for s in range(0, n_probes, block_size)]
    return np.hstack(blocks)


def test_quadrature_with_n_steps_is_exact_per_probe(problem):
    """With n steps each probe's Gauss rule integrates any f exactly:
    n_probes^-1 sum_z z^T log(A) z for A = 0.5 I + 2 G, to round-off."""
    obj, w = problem
    G = dense(obj, w, "gauss_newton")
    n = len(G)
    q = spectral.lanczos_quadrature(obj, w, n_probes=6, n_steps=n,
                                    matrix="gauss_newton", block_size=4, seed=9)
    Z = probes_of(n, 6, 4, 9)
    lam, V = np.linalg.eigh(0.5 * np.eye(n) + 2 * G)
    L = (V * np.log(lam)) @ V.T
    want = np.mean(np.einsum("ip,ij,jp->p", Z, L, Z))
    got = spectral.log_det(q, shift=0.5, scale=2.0).value
    # relative to the terms' size: ln of eigenvalues up to ~1e2, n of them
    assert abs(got - want) < 1e-10 * np.abs(np.log(lam)).sum()
    # and the density's mean is the probes' mean of z^T G z / n, exactly
    grid, density = spectral.spectral_density(q, n_grid=4000)
    mean = np.trapezoid(grid * density, grid)
    assert abs(mean - np.mean(np.einsum("ip,ij,jp->p", Z, G, Z)) / n) < 1e-6 * G.max()


def test_slq_log_det_within_its_error_estimate(problem):
    obj, w = problem
    G = dense(obj, w, "gauss_newton")
    alpha, beta = 0.05, 3.0
    _, want = np.linalg.slogdet(alpha * np.eye(len(G)) + beta * G)
    est = spectral.log_det(obj, w, alpha, beta, matrix="gauss_newton", n_probes=50,
                           n_steps=30, seed=2)
    # 30 steps of 50: the truncation (below the change from 15 steps) is far
    # below the Monte Carlo error
    assert est.quadrature_change < 0.01 * est.standard_error
    assert abs(est.value - want) < 4 * est.standard_error
    assert est.standard_error < 0.05 * abs(want)
    assert est.n_products == 50 * 30


def test_evidence_terms_match_the_dense_evidence(problem):
    obj, w = problem
    data_with_decay = obj.with_alpha(0.7)      # not the prior: ignored
    G = dense(obj, w, "gauss_newton")
    n = len(G)
    alpha, beta = 0.2, 5.0
    A = alpha * np.eye(n) + beta * G
    q = spectral.lanczos_quadrature(obj, w, n_probes=60, n_steps=30,
                                    matrix="gauss_newton", seed=4)
    terms = spectral.evidence_terms(q, alpha=alpha, beta=beta)
    gamma = n - alpha * np.trace(np.linalg.inv(A))
    assert abs(terms.gamma.value - gamma) < 4 * terms.gamma.standard_error
    assert abs(terms.log_det.value - np.linalg.slogdet(A)[1]) \
        < 4 * terms.log_det.standard_error
    # from the objective: the same probes (seed), the data term, GN default
    again = spectral.evidence_terms(data_with_decay, w, alpha, beta, n_probes=60,
                                    n_steps=30, seed=4)
    assert abs(again.gamma.value - terms.gamma.value) < 1e-10 * n
    # gamma in [0, n], and gamma's trace taken without cancellation
    assert 0 < terms.gamma.value < n


def test_log_det_of_an_indefinite_hessian(problem):
    obj, w = problem
    H = dense(obj, w, "exact")
    lam = np.linalg.eigvalsh(H)
    assert lam[0] < -1e-3 * lam[-1]                   # indefinite
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        spectral.log_det(obj, w, 1e-3, 1.0, n_probes=10, n_steps=30)
    # clipped: ln|a I + b max(H, 0)| from H's eigenvalues
    a, b = 0.5, 2.0
    want = np.sum(np.log(a + b * np.maximum(lam, 0)))
    est = spectral.log_det(obj, w, a, b, clip_negative=True, n_probes=40,
                           n_steps=len(H), seed=1)
    assert abs(est.value - want) < 4 * est.standard_error


def test_density_integrates_to_one_and_plots(problem, tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    obj, w = problem
    q = spectral.lanczos_quadrature(obj, w, n_probes=8, n_steps=20, seed=0)
    grid, density = spectral.spectral_density(q)
    assert abs(np.trapezoid(density, grid) - 1.0) < 1e-6
    assert np.all(density >= 0)
    low, high = q.support()
    lam = np.linalg.eigvalsh(dense(obj, w, "exact"))
    assert lam[0] - 1e-9 <= low and high <= lam[-1] + 1e-9   # Ritz values inside
    fig = spectral.plot_spectral_density(q)
    fig.savefig(tmp_path / "density.png")
    assert (tmp_path / "density.png").stat().st_size > 0
    assert fig.axes[0].get_yscale() == "log"
    import matplotlib.pyplot as plt
    plt.close(fig)


# ------------------------------------------------------------ bad input
def test_bad_input(problem):
    obj, w = problem
    n = obj.net.n_weights
    with pytest.raises(TypeError, match="objective"):
        spectral.eigenpairs(np.eye(3), w, 2)
    with pytest.raises(ValueError, match="k: expected at most"):
        spectral.eigenpairs(obj, w, n + 1)
    with pytest.raises(ValueError, match="which"):
        spectral.eigenpairs(obj, w, 2, which="biggest")
    with pytest.raises(ValueError, match="matrix"):
        spectral.hutchinson_trace(obj, w, matrix="fd")
    with pytest.raises(ValueError, match="weights"):
        spectral.hutchinson_trace(obj, w, weights=[0, n])
    with pytest.raises(ValueError, match="n_probes"):
        spectral.hutchinson_trace(obj, w, n_probes=1)
    with pytest.raises(ValueError, match="w: expected shape"):
        spectral.hutchinson_trace(obj, w[:-1])
    q = spectral.lanczos_quadrature(obj, w, n_probes=3, n_steps=5)
    with pytest.raises(TypeError, match="already holds"):
        spectral.log_det(q, w)
    with pytest.raises(ValueError, match="with_alpha"):
        spectral.evidence_terms(spectral.lanczos_quadrature(
            obj.with_alpha(0.1), w, n_probes=3, n_steps=5), alpha=1.0)
    with pytest.raises(TypeError, match="w: required"):
        spectral.log_det(obj)
    with pytest.raises(TypeError, match="alpha: required"):
        spectral.evidence_terms(q)
    with pytest.raises(ValueError, match="alpha"):
        spectral.evidence_terms(q, alpha=-1.0)


# ------------------------------------------------------------ sharded
# slow: three tools on a cluster, each of many round trips. They take the
# objective's products only (hvp, gnvp), which
# tests/sharded/test_sharded_objective.py::test_products_equal_in_memory
# checks fast against the in-memory ones, on vectors and blocks alike
@pytest.mark.slow
def test_spectral_tools_on_a_sharded_objective(problem, client):
    """The same probes give the same numbers: the sharded products differ
    from the in-memory ones by the order of summation only."""
    da = pytest.importorskip("dask.array")
    from sopt.distributed import ShardedObjective
    obj, w = problem
    X = da.from_array(obj.X, chunks=(15, 3))
    T = da.from_array(obj.T, chunks=(15, 2))
    with ShardedObjective(obj.net, X, T) as sharded:
        e = spectral.eigenpairs(sharded, w, 3, block_size=3)
        t = spectral.hutchinson_trace(sharded, w, n_probes=20, seed=1)
        ld = spectral.log_det(sharded, w, 1.0, 1.0, matrix="gauss_newton",
                              n_probes=5, n_steps=10, seed=1)
    ref_e = spectral.eigenpairs(obj, w, 3, block_size=3)
    ref_t = spectral.hutchinson_trace(obj, w, n_probes=20, seed=1)
    ref_ld = spectral.log_det(obj, w, 1.0, 1.0, matrix="gauss_newton",
                              n_probes=5, n_steps=10, seed=1)
    norm = np.abs(ref_e.values).max()
    assert np.abs(e.values - ref_e.values).max() < 1e-10 * norm
    assert abs(t.value - ref_t.value) < 1e-10 * abs(ref_t.value)
    assert abs(ld.value - ref_ld.value) < 1e-10 * abs(ref_ld.value)
