"""The K-FAC structure, tested on its own (no posterior).

Factors: where K-FAC is exact (a linear model with the sum-of-squares
error, whose B_n = I is constant; any network on one pattern; every bias
block) its blocks equal the dense Gauss-Newton matrix's to EXACT_RTOL: both
sides are the same sums of products taken in another order. Elsewhere each
block must be (1/N) (sum_n B_n) ⊗ (sum_n x_n x_n^T), with B_n read off the
dense Gauss-Newton bias block of pattern n alone.

Primitives: each equals the same quantity computed from the assembled
dense precision A. Both are backward stable in A, so they differ by about
cond(A) eps per entry; the problems keep cond(A) below COND_MAX = 1e4
(asserted), so PRIMITIVE_RTOL = 1e-10 leaves a factor ~50 over
cond(A) eps W.
"""
import numpy as np
import pytest

import sopt
from helpers import EXACT_RTOL
from sopt.testing import rel_err
from sopt.bayes import weight_groups
from sopt.bayes._kfac import (KFAC, EigenBlock, KFACCurvature, KroneckerBlock,
                              kronecker_factor_sums)
from sopt.bayes._structure import Linearisation, get_structure

PRIMITIVE_RTOL = 1e-10   # see module docstring
COND_MAX = 1e4


def dag_net():
    """input(3) -> 1: tanh(4); 2: tanh(3) <- [1, input (masked)];
    3: softmax(3) <- [2, 1 (skip-layer)]: two layers with two incoming
    edges, a skip-layer edge and a masked edge."""
    net = sopt.Network(3)
    h1 = net.add_layer(4, "tanh", inputs=[net.input])
    mask = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1.]])
    h2 = net.add_layer(3, "tanh", inputs=[h1, net.input], masks={net.input: mask})
    net.add_layer(3, "softmax", inputs=[h2, h1], output=True)
    return net


def problem(kind: str, n: int, seed: int = 0):
    """(objective without weight decay, w): kind "linear" (3 -> 2, sse),
    "mlp" (3-5-2 tanh, sse) or "dag" (:func:`dag_net`, softmax_ce)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    if kind == "dag":
        net, loss = dag_net(), "softmax_ce"
        T = np.eye(3)[rng.integers(0, 3, n)]
    else:
        sizes = [3, 2] if kind == "linear" else [3, 5, 2]
        net, loss = sopt.mlp(sizes, hidden="tanh"), "sse"
        T = rng.standard_normal((n, 2))
    obj = sopt.Objective(net, X, T, loss=loss, alpha=0.0)
    return obj, net.init_weights(seed=seed, scale=1.5)


def used_weights(net):
    return np.flatnonzero(net.used_weight_mask())


def build(obj, w, used=None):
    used = used_weights(obj.net) if used is None else used
    return KFAC().build(obj, w, used, "gauss_newton", True, None)


def gauss_newton(obj, w, used):
    return obj.hessian(w, "gauss_newton")[np.ix_(used, used)]


def block_error(curv, H, blocks) -> float:
    """Largest relative difference of the K-FAC and H on the given blocks."""
    M = curv.matrix()
    return max(rel_err(M[np.ix_(b.positions, b.positions)],
                       H[np.ix_(b.positions, b.positions)]) for b in blocks)


# ------------------------------------------------ the factors
@pytest.mark.parametrize("n", [1, 9])
def test_linear_model_with_sse_is_exact_for_any_number_of_patterns(n):
    obj, w = problem("linear", n)
    used = used_weights(obj.net)
    curv = build(obj, w)
    assert [type(b) for b in curv.blocks] == [KroneckerBlock] * 2
    assert block_error(curv, gauss_newton(obj, w, used), curv.blocks) < EXACT_RTOL


@pytest.mark.parametrize("kind", ["mlp", "dag"])
def test_one_pattern_is_exact_on_every_block(kind):
    obj, w = problem(kind, 1)
    used = used_weights(obj.net)
    curv = build(obj, w)
    if kind == "dag":   # the masked edge is held densely
        assert sum(isinstance(b, EigenBlock) for b in curv.blocks) == 1
    assert block_error(curv, gauss_newton(obj, w, used), curv.blocks) < EXACT_RTOL


def test_bias_blocks_are_exact_for_any_number_of_patterns():
    obj, w = problem("dag", 8)
    used = used_weights(obj.net)
    curv = build(obj, w)
    biases = [b for b in curv.blocks if b.source is None]
    assert len(biases) == 3
    assert block_error(curv, gauss_newton(obj, w, used), biases) < EXACT_RTOL


def pattern_objective(obj, n):
    return sopt.Objective(obj.net, obj.X[n:n + 1], obj.T[n:n + 1],
                          loss=obj.loss.name, alpha=0.0)


def test_weight_blocks_are_mean_input_factor_times_summed_output_factor():
    """(1/N) (sum_n B_n) ⊗ (sum_n x_n x_n^T) restricted to the used weights,
    with B_n the bias block of pattern n's own Gauss-Newton matrix; every
    cross block (weights-bias, edge-edge, layer-layer) zero."""
    obj, w = problem("dag", 6)
    net, N = obj.net, 6
    H_n = [pattern_objective(obj, n).hessian(w, "gauss_newton") for n in range(N)]
    z = net.propagate(w, obj.X).z
    want = np.zeros((net.n_weights,) * 2)
    for layer in net.layers:
        b = np.arange(layer.bias_slice.start, layer.bias_slice.stop)
        G = sum(H[np.ix_(b, b)] for H in H_n)
        want[np.ix_(b, b)] = G
        for e in layer.edges:
            x = z[e.source.index]
            idx = e.indices().ravel()
            want[np.ix_(idx, idx)] = np.kron(G, x.T @ x / N)
    used = used_weights(net)
    assert rel_err(build(obj, w).matrix(), want[np.ix_(used, used)]) < EXACT_RTOL


def test_batches_add_up_to_one_pass():
    obj, w = problem("dag", 7)
    one = obj.sum_over_batches(w, kronecker_factor_sums)
    batched = obj.sum_over_batches(w, kronecker_factor_sums, size=2)
    assert one[-1] == batched[-1] == 7
    assert rel_err(batched, one) < EXACT_RTOL


# ------------------------------------------------ the primitives
def layer_alphas(net, used):
    """One alpha per "layers" group (each edge's weights, each bias), all different."""
    index, names = weight_groups(net, "layers")
    return (0.2 + 0.3 * np.arange(len(names)))[index[used]]


def covered_cases():
    """(name, objective, w, covered): all weights in use, and a subset
    missing one bias and one unmasked weight (two more dense blocks)."""
    for kind in ("mlp", "dag"):
        obj, w = problem(kind, 9, seed=3)
        used = used_weights(obj.net)
        yield kind, obj, w, used
    bias0 = obj.net.layers[0].bias_slice.start
    yield "dag-subset", obj, w, np.setdiff1d(used, [bias0, 1])


CASES = list(covered_cases())


@pytest.fixture(params=CASES, ids=[c[0] for c in CASES])
def posed(request):
    """(objective, w, curvature, covered, alpha, scale, precision, A)."""
    _, obj, w, covered = request.param
    curv = build(obj, w, covered)
    alpha, scale = layer_alphas(obj.net, covered), 3.0
    prec = curv.precision(alpha, scale)
    A = prec.matrix()
    assert np.linalg.cond(A) < COND_MAX
    return obj, w, curv, covered, alpha, scale, prec, A


def test_precision_matrix_is_prior_plus_scaled_curvature(posed):
    obj, w, curv, covered, alpha, scale, prec, A = posed
    assert rel_err(A, np.diag(alpha) + scale * curv.matrix()) < EXACT_RTOL
    if len(covered) < len(used_weights(obj.net)):
        assert sum(isinstance(b, EigenBlock) for b in curv.blocks) == 3


def test_log_det_inverse_diagonal_and_solve_against_dense(posed):
    *_, covered, alpha, scale, prec, A = posed
    sign, log_det = np.linalg.slogdet(A)
    assert sign == 1 and abs(prec.log_det - log_det) < PRIMITIVE_RTOL * abs(log_det)
    inverse = np.linalg.inv(A)
    assert rel_err(prec.inverse_diagonal(), np.diag(inverse)) < PRIMITIVE_RTOL
    B = np.random.default_rng(1).standard_normal((len(covered), 3))
    assert rel_err(prec.solve(B), inverse @ B) < PRIMITIVE_RTOL
    assert rel_err(prec.solve(B[:, 0]), inverse @ B[:, 0]) < PRIMITIVE_RTOL


@pytest.mark.parametrize("full", [True, False])
def test_output_covariance_against_dense_jacobian(posed, full):
    obj, w, curv, covered, alpha, scale, prec, A = posed
    X = np.random.default_rng(2).standard_normal((5, 3))
    J = obj.net.linearise(w, X, of="a")[1][:, :, covered]
    want = np.einsum("nkw,wv,nlv->nkl", J, np.linalg.inv(A), J)
    if not full:
        want = np.einsum("nkk->nk", want)
    got = prec.output_covariance(Linearisation(obj.net, w, X, "a"), full)
    assert got.shape == want.shape and rel_err(got, want) < PRIMITIVE_RTOL


def test_draws_of_identity_columns_have_the_inverse_as_covariance(posed):
    *_, covered, alpha, scale, prec, A = posed
    D = prec.draw(np.eye(len(covered)))
    assert rel_err(D @ D.T, np.linalg.inv(A)) < PRIMITIVE_RTOL


def test_scaled_eigenvalues_against_dense(posed):
    *_, curv, covered, alpha, scale, prec, A = posed
    s = 1.0 / np.sqrt(alpha)
    want = np.linalg.eigvalsh(s[:, None] * curv.matrix() * s)
    got = curv.scaled_eigenvalues(alpha)
    assert np.abs(got - want).max() < PRIMITIVE_RTOL * want.max()


# ------------------------------------------------ the prior, memory, bad input
def test_alpha_varying_inside_a_block_is_refused():
    obj, w = problem("dag", 5)
    used = used_weights(obj.net)
    curv = build(obj, w)
    index, names = weight_groups(obj.net, "inputs")   # one alpha per input unit
    alpha = (1.0 + np.arange(len(names)))[index[used]]
    with pytest.raises(ValueError, match="one alpha per Kronecker block"):
        curv.precision(alpha, 1.0)
    curv.precision(np.full(len(used), 0.5), 1.0)      # one alpha: fine


def test_memory_is_the_factors_never_w_squared():
    """16 (sum fan_out^2 + sum fan_in^2) for factors and eigenvectors, 8 per
    eigenvalue, 8 per weight for the block positions (and 16 for the bias's
    constant input factor)."""
    net = sopt.mlp([20, 30, 5], hidden="tanh")
    rng = np.random.default_rng(0)
    obj = sopt.Objective(net, rng.standard_normal((10, 20)),
                         rng.standard_normal((10, 5)), loss="sse", alpha=0.0)
    curv = build(obj, net.init_weights(seed=0))
    squares = 30 ** 2 + 5 ** 2 + 20 ** 2 + 30 ** 2
    assert curv.nbytes == 16 * squares + 8 * (30 + 5 + 20 + 30) + 16 + 8 * net.n_weights
    assert curv.nbytes < 8 * net.n_weights ** 2 / 20


def test_dense_blocks_over_max_bytes_are_refused():
    obj, w = problem("dag", 3)
    with pytest.raises(MemoryError, match="masked edges"):
        KFAC().build(obj, w, used_weights(obj.net), "gauss_newton", True, 8)


def test_state_round_trip_and_bad_states():
    obj, w = problem("dag", 6)
    used = used_weights(obj.net)
    curv = build(obj, w)
    alpha = np.full(len(used), 0.7)
    again = KFACCurvature.from_state(curv.state(), obj.net)
    assert again.precision(alpha, 2.0).log_det == curv.precision(alpha, 2.0).log_det
    np.testing.assert_array_equal(again.matrix(), curv.matrix())
    for key, value in [("G", curv.G[:-1]), ("A", [np.eye(2)] * 3),
                       ("n_data", -1.0), ("kind", "exact"),
                       ("covered", np.array([0, 0])), ("covered", used + 0.5)]:
        with pytest.raises(ValueError, match="kfac curvature"):
            KFACCurvature.from_state({**curv.state(), key: value}, obj.net)


def test_registry_and_kind():
    import sopt.bayes  # noqa: F401 (its import fills the registry)
    assert isinstance(get_structure("kfac"), KFAC)
    obj, w = problem("linear", 3)
    with pytest.raises(ValueError, match="Gauss-Newton"):
        KFAC().build(obj, w, used_weights(obj.net), "exact", True, None)


# ------------------------------------------------ sharded
def test_sharded_objective_gives_the_same_factors(request):
    pytest.importorskip("distributed")
    da = pytest.importorskip("dask.array")
    from sopt.distributed import ShardedObjective
    request.getfixturevalue("client")
    obj, w = problem("dag", 12)
    ref = build(obj, w)
    X, T = (da.from_array(a, chunks=((5, 7), a.shape[1])) for a in (obj.X, obj.T))
    with ShardedObjective(obj.net, X, T, loss="softmax_ce") as sharded:
        curv = build(sharded, w)
    assert curv.n_data == 12
    for mine, theirs in zip(curv.G + curv.A[:2], ref.G + ref.A[:2]):
        assert rel_err(mine, theirs) < EXACT_RTOL


# ------------------------------------------------ laplace-torch (optional)
@pytest.mark.slow
@pytest.mark.parametrize("likelihood", ["classification", "regression"])
def test_same_precision_and_predictive_as_laplace_torch_kron(likelihood):
    """KronLaplace (exact output Hessian, per-tensor prior = groups "layers",
    noise precision beta) holds the same matrix: ln|A|, A and the GLM logit
    covariance agree to round-off (PRIMITIVE_RTOL: two factorisations of a
    matrix of condition < COND_MAX)."""
    torch = pytest.importorskip("torch")
    laplace = pytest.importorskip("laplace")
    from torch.utils.data import DataLoader, TensorDataset
    rng = np.random.default_rng(0)
    X, X_new = rng.standard_normal((30, 3)), rng.standard_normal((5, 3))
    if likelihood == "classification":
        y = rng.integers(0, 2, 30)
        T, loss, out, target, beta = np.eye(2)[y], "softmax_ce", "softmax", y, 1.0
    else:
        T, loss, out, beta = rng.standard_normal((30, 2)), "sse", "identity", 4.0
        target = T
    net = sopt.mlp([3, 4, 2], hidden="tanh", output=out)
    w = net.init_weights(seed=2, scale=1.5)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                                torch.nn.Linear(4, 2)).double()
    torch.nn.utils.vector_to_parameters(torch.tensor(w), model.parameters())
    per_tensor = np.array([0.3, 0.5, 0.7, 1.1])        # W1, b1, W2, b2
    la = laplace.KronLaplace(model, likelihood, prior_precision=torch.tensor(per_tensor),
                             sigma_noise=beta ** -0.5)
    la.fit(DataLoader(TensorDataset(torch.tensor(X), torch.tensor(target)), batch_size=30))
    obj = sopt.Objective(net, X, T, loss=loss, alpha=0.0)
    prec = build(obj, w).precision(per_tensor[weight_groups(net, "layers")[0]], beta)
    theirs = la.posterior_precision
    assert abs(prec.log_det - float(theirs.logdet())) < PRIMITIVE_RTOL * abs(prec.log_det)
    assert rel_err(prec.matrix(), theirs.to_matrix().numpy()) < PRIMITIVE_RTOL
    _, f_var = la._glm_predictive_distribution(torch.tensor(X_new))
    mine = prec.output_covariance(Linearisation(net, w, X_new, "a"), True)
    assert rel_err(mine, f_var.detach().numpy()) < PRIMITIVE_RTOL
