"""The low-rank posterior structure against the same computations on its
assembled dense precision A = diag(alpha) + s U diag(lam) U^T.

Tolerances: each primitive is an exact rewriting of a dense computation
(Woodbury's identity, the determinant lemma) in floating point, so the two
differ by round-off amplified by A's conditioning: at most about
cond(A) eps per entry. The problems keep cond(A) below 1e4 (asserted), so
1e-10 relative leaves a margin of ~10^2 over cond(A) eps ~ 1e-12. With the
rank equal to the number of weights in use the structure is the dense one
up to the eigensolver's accuracy (residuals below 1e-10 |H|), compared
at 1e-8.
"""
import numpy as np
import pytest

import sopt
import sopt.bayes._structures  # noqa: F401  (fills the registry)
from sopt.bayes._dense import DenseCurvature
from sopt.bayes._lowrank import LowRank, LowRankCurvature
from sopt.bayes._structure import Linearisation, get_structure

RTOL = 1e-10        # cond(A) < 1e4 times eps, with a margin (see above)
EIG_RTOL = 1e-8     # the eigensolver's accuracy (see above)


def rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


def problem(masked: bool = False):
    """(data objective, w, used weights, X) of a small tanh network; with
    ``masked``, a skip-layer network with masked-out weights."""
    rng = np.random.default_rng(11)
    X = rng.uniform(-1, 1, (40, 3))
    T = np.column_stack([np.sin(2 * X[:, 0]), X[:, 1] * X[:, 2]])
    if masked:
        net = sopt.Network(n_inputs=3)
        mask = (rng.uniform(size=(7, 3)) > 0.3).astype(float)
        h = net.add_layer(7, "tanh", inputs=[net.input], masks={net.input: mask})
        net.add_layer(2, "identity", inputs=[h, net.input], output=True)
    else:
        net = sopt.mlp([3, 8, 2], hidden="tanh", output="identity")
    w = net.init_weights(seed=3)
    w[w == 0] = 0.1           # no zero biases: a generic point
    used = np.flatnonzero(net.used_weight_mask())
    return sopt.Objective(net, X, T, alpha=0.0), w, used, X


def build(spec, kind="gauss_newton", clip_negative=True, masked=False):
    data, w, used, X = problem(masked)
    return spec.build(data, w, used, kind, clip_negative, None), data, w, used, X


def per_weight_alpha(n, seed=0):
    return np.random.default_rng(seed).uniform(0.5, 2.0, n)


CASES = {  # name: (spec, kind, clip_negative)
    "gauss_newton": (LowRank(rank=8), "gauss_newton", True),
    "corrected": (LowRank(rank=8, diagonal_correction=True), "gauss_newton", True),
    "exact_signed": (LowRank(rank=60), "exact", False),   # all 50, some < 0
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_primitives_equal_the_assembled_precision(case):
    spec, kind, clip = CASES[case]
    curv, data, w, used, X = build(spec, kind, clip)
    n = len(used)
    alpha, scale = per_weight_alpha(n), 3.0
    if case == "exact_signed":
        assert curv.lam.min() < 0          # negative curvature kept
        alpha = alpha + 1.5 * scale * abs(curv.lam.min())
    prec = curv.precision(alpha, scale)
    A = prec.matrix()
    np.testing.assert_allclose(A, np.diag(alpha) + scale * curv.matrix(), rtol=0,
                               atol=1e-14 * np.abs(A).max())
    assert np.linalg.cond(A) < 1e4
    cov = np.linalg.inv(A)
    # ln|A| to RTOL of the size of its terms (ln of the diagonal)
    log_terms = np.abs(np.log(np.diag(A))).sum()
    assert abs(prec.log_det - np.linalg.slogdet(A)[1]) < RTOL * log_terms
    assert rel(prec.inverse_diagonal(), np.diag(cov)) < RTOL
    B = np.random.default_rng(1).standard_normal((n, 3))
    assert rel(prec.solve(B), np.linalg.solve(A, B)) < RTOL
    assert rel(prec.solve(B[:, 0]), np.linalg.solve(A, B[:, 0])) < RTOL
    D = prec.draw(np.eye(n))             # D D^T = A^{-1} exactly
    assert rel(D @ D.T, cov) < RTOL
    lin = Linearisation(data.net, w, X[:7], "y")
    J = lin.jacobian(used)
    full = np.einsum("nkw,wv,nlv->nkl", J, cov, J)
    assert rel(prec.output_covariance(lin, full=True), full) < RTOL
    assert rel(prec.output_covariance(lin, full=False),
               np.einsum("nkk->nk", full)) < RTOL


def test_variances_keep_their_digits_where_the_data_dominate():
    """Output variances of training inputs under a full-rank U, alpha = 1e-6,
    s = 1e3: J's rows lie in span(U) and the variance is ~1e-8 of
    J D^-1 J^T, so the Woodbury form J D^-1 J^T - (...) would lose eight
    digits; the two Gram matrices (outside and inside span Q) lose none.
    A is ill-conditioned here, so the reference is the same quantity in
    closed form, a sum of positive terms: with alpha = a I and no
    correction, J A^-1 J^T = J (I - U U^T) J^T / a
    + J U diag(1 / (a + s lam)) U^T J^T."""
    data, w, used, X = problem()
    curv = LowRank(rank=len(used)).build(data, w, used, "gauss_newton", True, None)
    a, scale = 1e-6, 1e3
    prec = curv.precision(np.full(len(used), a), scale)
    lin = Linearisation(data.net, w, X[:5], "y")
    J = lin.jacobian(used)
    U = curv.U
    inside = J @ U                                       # (N, K, k)
    outside = J - inside @ U.T
    want = (np.einsum("nkw,nkw->nk", outside, outside) / a
            + np.einsum("nkj,j,nkj->nk", inside, 1 / (a + scale * curv.lam), inside))
    assert np.max(want / np.einsum("nkw,nkw->nk", J, J) * a) < 1e-7   # cancels
    assert rel(prec.output_covariance(lin, full=False), want) < 1e-10


@pytest.mark.parametrize("kind", ["gauss_newton", "exact"])
def test_full_rank_equals_the_dense_structure(kind):
    data, w, used, X = problem(masked=True)
    H = data.hessian(w, kind)[np.ix_(used, used)]
    curv = LowRank(rank=len(used)).build(data, w, used, kind, False, None)
    assert curv.U.shape == (len(used), len(used))
    lam = np.linalg.eigvalsh(H)
    alpha = per_weight_alpha(len(used), 2) + 2 * max(0.0, -lam.min())
    low = curv.precision(alpha, 2.0)
    dense = DenseCurvature(used, kind, H).precision(alpha, 2.0)
    assert abs(low.log_det - dense.log_det) < EIG_RTOL * abs(dense.log_det)
    assert rel(low.inverse_diagonal(), dense.inverse_diagonal()) < EIG_RTOL
    assert rel(curv.matrix(), H) < EIG_RTOL


def test_top_eigenpairs_and_the_masked_weights():
    curv, data, w, used, X = build(LowRank(rank=5), masked=True)
    assert len(used) < data.net.n_weights
    np.testing.assert_array_equal(curv.covered, used)
    H = data.hessian(w, "gauss_newton")[np.ix_(used, used)]
    lam = np.linalg.eigvalsh(H)
    assert rel(curv.lam, lam[-5:]) < EIG_RTOL
    assert curv.nbytes == curv.U.nbytes + curv.lam.nbytes == 8 * len(used) * 5 + 40


def test_the_correction_makes_the_diagonal_exact():
    curv, data, w, used, X = build(LowRank(rank=6, diagonal_correction=True))
    H = data.hessian(w, "gauss_newton")[np.ix_(used, used)]
    assert np.all(curv.correction >= 0)
    assert rel(np.diag(curv.matrix()), np.diag(H)) < 1e-10


def test_scaled_eigenvalues_from_the_small_problem():
    curv, *_ = build(LowRank(rank=8))
    alpha = per_weight_alpha(len(curv.covered), 4)
    got = curv.scaled_eigenvalues(alpha)
    want = super(LowRankCurvature, curv).scaled_eigenvalues(alpha)   # dense eigh
    assert np.abs(got - want).max() < RTOL * want.max()


def test_not_positive_definite_raises():
    curv, *_ = build(LowRank(rank=60), kind="exact", clip_negative=False)
    n = len(curv.covered)
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        curv.precision(np.full(n, 1e-3), 1.0)
    with pytest.raises(np.linalg.LinAlgError, match="diagonal"):
        curv.precision(np.zeros(n), 1.0)


def test_clip_negative_drops_negative_eigenvalues():
    curv, *_ = build(LowRank(rank=60), kind="exact", clip_negative=True)
    assert len(curv.lam) < len(curv.covered) and curv.lam.min() >= 0


# ------------------------------------------------------------ state
def test_state_round_trip_and_validation():
    curv, data, w, used, X = build(LowRank(rank=4, diagonal_correction=True))
    net = data.net
    again = LowRankCurvature.from_state(curv.state(), net)
    np.testing.assert_array_equal(again.matrix(), curv.matrix())
    assert again.kind == curv.kind and again.name == "lowrank"
    good = curv.state()
    bad_states = {
        "covered out of range": dict(good, covered=np.append(used[:-1], net.n_weights)),
        "covered not increasing": dict(good, covered=used[::-1].copy()),
        "kind": dict(good, kind="fisher"),
        "U shape": dict(good, U=curv.U[:-1]),
        "lam shape": dict(good, lam=curv.lam[:-1]),
        "U not finite": dict(good, U=np.where(curv.U > 0.5, np.nan, curv.U)),
        "negative correction": dict(good, correction=-np.abs(curv.correction) - 1),
        "lam integer": dict(good, lam=np.arange(4)),
    }
    for what, state in bad_states.items():
        with pytest.raises(ValueError, match="lowrank curvature"):
            LowRankCurvature.from_state(state, net)
    plain = LowRankCurvature.from_state(dict(good, correction=None), net)
    assert plain.correction is None


# ------------------------------------------------------------ spec
def test_registry_and_spec_checks():
    spec = get_structure("lowrank")
    assert isinstance(spec, LowRank) and spec.rank == 20
    assert repr(LowRank(rank=3, diagonal_correction=True)) == \
        "LowRank(rank=3, diagonal_correction=True)"
    with pytest.raises(ValueError, match="rank"):
        LowRank(rank=0)
    with pytest.raises(TypeError, match="diagonal_correction"):
        LowRank(diagonal_correction=1)
    data, w, used, X = problem()
    with pytest.raises(ValueError, match="Gauss-Newton"):
        LowRank(diagonal_correction=True).build(data, w, used, "exact", True, None)
