"""sopt.bayes on a ShardedObjective against the in-memory Objective.

laplace(obj, w_map, alpha=, beta=) and evidence_fit(obj, ...) take the
network, data and loss from the objective. On the same data the sharded sums
differ from the in-memory ones by the order of summation only, so the
posterior agrees to EXACT_RTOL (1e-12); the evidence loop retrains w_MAP in
every cycle, round-off feeding through the Newton iterations, so its
alpha, beta and log evidence are compared at 1e-8.
"""
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import sopt
from helpers import EXACT_RTOL, local_cluster
from sopt.testing import rel_err
from sopt.bayes import evidence_fit, laplace
from sopt.distributed import ShardedObjective

EVIDENCE_RTOL = 1e-8    # see module docstring


def evidence_close(got, want) -> bool:
    """ln p(D) to EXACT_RTOL of the terms it is the sum of (beta E_D,
    E_W, ln|A| / 2, N K ln beta / 2: they cancel to a few nats)."""
    beta = want.beta or 1.0
    scale = (beta * want.data_error + want.weight_error + 0.5 * abs(want.log_det)
             + 0.5 * want.n_data * (abs(np.log(beta)) + np.log(2 * np.pi)))
    return abs(got.log_evidence - want.log_evidence) < EXACT_RTOL * scale


def shard(A, rows=(25, 25, 10)):
    return da.from_array(A, chunks=(rows,) + A.shape[1:])


def problem(loss: str):
    """(net, X, T, alpha, beta, w_map): a trained small network, N = 60."""
    rng = np.random.default_rng(7)
    X = rng.uniform(-1, 1, (60, 2))
    f = np.sin(2 * X[:, :1]) + 0.5 * X[:, 1:]
    if loss == "sse":
        net = sopt.mlp([2, 4, 1], hidden="tanh", output="identity")
        T, alpha, beta = f + 0.1 * rng.standard_normal(f.shape), 1.2, 117.0
        decay = alpha / beta
    else:
        net = sopt.mlp([2, 4, 1], hidden="tanh", output="logistic")
        T = (f + 0.3 * rng.standard_normal(f.shape) > 0).astype(float)
        alpha, beta = 0.5, None
        decay = alpha
    obj = sopt.Objective(net, X, T, loss=loss, alpha=decay)
    res = sopt.optimize.minimize(obj, net.init_weights(seed=0), method="newton",
                                 options={"gtol": 1e-10, "maxiter": 500})
    return net, X, T, alpha, beta, res.x


@pytest.mark.parametrize("loss", ["sse", "binary_ce"])
def test_laplace_on_sharded_objective_equals_in_memory(client, loss):
    net, X, T, alpha, beta, w = problem(loss)
    ref = laplace(net, X, T, w, loss=loss, alpha=alpha, beta=beta)
    # an objective's own weight decay is not the prior: 0.7 is ignored
    mem = laplace(sopt.Objective(net, X, T, loss=loss, alpha=0.7), w,
                  alpha=alpha, beta=beta)
    assert mem.log_evidence == ref.log_evidence and mem.gamma == ref.gamma
    np.testing.assert_array_equal(mem.precision, ref.precision)
    with ShardedObjective(net, shard(X), shard(T), loss=loss, alpha=0.7) as obj:
        post = laplace(obj, w, alpha=alpha, beta=beta)
    assert rel_err(post.data_error, ref.data_error) < EXACT_RTOL
    assert rel_err(post.log_det, ref.log_det) < EXACT_RTOL
    assert evidence_close(post, ref)
    assert rel_err(post.precision, ref.precision) < EXACT_RTOL
    assert post.n_data == ref.n_data and post.newton_decrement < 1e-8
    # A^{-1} moves by up to cond(A) times A's relative change
    inverse_rtol = np.linalg.cond(ref.precision) * EXACT_RTOL
    # gamma = sum_i 1 - alpha (A^{-1})_ii: each term moves by up to
    # alpha |(A^{-1})_ii| inverse_rtol (here A is ill-conditioned, and the
    # terms cancel to a gamma that a relative test of 1e-12 cannot resolve
    # on every CPU's BLAS kernels)
    gamma_tol = inverse_rtol * alpha * np.abs(np.diag(ref.covariance)).sum()
    assert abs(post.gamma - ref.gamma) < gamma_tol
    X_new = np.random.default_rng(3).uniform(-1.5, 1.5, (35, 2))
    if loss == "sse":
        (m, v), (m_ref, v_ref) = post.predict(X_new), ref.predict(X_new)
        assert rel_err(m, m_ref) < EXACT_RTOL and rel_err(v, v_ref) < inverse_rtol
    else:
        p, p_ref = post.predict_proba(X_new), ref.predict_proba(X_new)
        assert rel_err(p, p_ref) < inverse_rtol
    # new inputs as a dask array: block by block, numpy out, same numbers
    X_dask = da.from_array(X_new, chunks=(10, 1))
    if loss == "sse":
        for full_cov in (False, True):
            got, want = post.predict(X_dask, full_cov), post.predict(X_new, full_cov)
            for g, v in zip(got, want):
                assert isinstance(g, np.ndarray) and rel_err(g, v) < EXACT_RTOL
    else:
        p = post.predict_proba(X_dask)
        assert isinstance(p, np.ndarray)
        assert rel_err(p, post.predict_proba(X_new)) < EXACT_RTOL


def test_laplace_rejects_what_is_not_an_objective(client):
    net, X, T, alpha, beta, w = problem("sse")
    with pytest.raises(TypeError, match="net: expected a Network .* or an objective"):
        laplace(X, w, alpha=alpha, beta=beta)
    with pytest.raises(TypeError, match="net: expected a Network"):
        evidence_fit(X, w0=w)
    obj = sopt.Objective(net, X, T, loss="sse")
    with pytest.raises(ValueError, match="beta"):
        laplace(obj, w, alpha=alpha)
    with pytest.raises(TypeError, match="loss"):     # the objective's loss rules
        laplace(obj, w, loss="sse", alpha=alpha, beta=beta)


# slow: 43 cluster round trips. An evidence cycle on shards is minimize and
# laplace on the objective and its with_alpha copy, each checked fast here
# (test_laplace_on_sharded_objective_equals_in_memory,
# test_with_alpha_shares_the_data) and in test_sharded_objective.py
# (test_minimize_reaches_the_in_memory_minimum)
@pytest.mark.slow
def test_evidence_fit_on_sharded_objective_follows_in_memory(client):
    net, X, T, alpha, beta, w = problem("sse")     # start at a w_MAP: few
    kw = dict(w0=w, alpha=alpha, beta=beta, max_cycles=2)   # Newton steps a cycle
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = evidence_fit(net, X, T, loss="sse", **kw)
        mem = evidence_fit(sopt.Objective(net, X, T, alpha=3.0), **kw)
        with ShardedObjective(net, shard(X), shard(T), alpha=3.0) as obj:
            res = evidence_fit(obj, **kw)
    # the in-memory objective runs the very same arithmetic
    assert mem.log_evidence == ref.log_evidence and mem.beta == ref.beta
    np.testing.assert_array_equal(mem.alpha, ref.alpha)
    assert res.n_cycles == ref.n_cycles
    assert rel_err(res.alpha, ref.alpha) < EVIDENCE_RTOL
    assert rel_err(res.beta, ref.beta) < EVIDENCE_RTOL
    assert rel_err(res.log_evidence, ref.log_evidence) < EVIDENCE_RTOL
    assert rel_err(res.w, ref.w) < EVIDENCE_RTOL


def test_with_alpha_shares_the_data(client):
    net, X, T, _, _, w = problem("sse")
    obj = sopt.Objective(net, X, T, alpha=0.1)
    other = obj.with_alpha(0.3)
    assert other.X is obj.X and other.T is obj.T and obj.alpha == 0.1
    assert other.value(w) == sopt.Objective(net, X, T, alpha=0.3).value(w)
    sharded = ShardedObjective(net, shard(X), shard(T), alpha=0.1)
    copy = sharded.with_alpha(0.3)
    assert [f.key for f in copy._parts] == [f.key for f in sharded._parts]
    sharded.close()         # the copy holds its own references to the shards
    assert rel_err(copy.gradient(w), other.gradient(w)) < EXACT_RTOL
    assert rel_err(copy.target_sum_of_squares(), np.sum(T ** 2)) < EXACT_RTOL
    copy.alpha = 0.1                    # the prior is assigned like the Objective's
    assert rel_err(copy.value(w), obj.value(w)) < EXACT_RTOL
    copy.close()
    # closed: every sum refuses, none is a silent 0
    for call in (copy.target_sum_of_squares, lambda: copy.value(w)):
        with pytest.raises(ValueError, match="closed"):
            call()


def test_sharded_objective_refuses_pickle_clearly(client):
    import pickle
    net, X, T, _, _, _ = problem("sse")
    with ShardedObjective(net, shard(X), shard(T)) as obj:
        with pytest.raises(TypeError, match="cannot be pickled.*Dask cluster"):
            pickle.dumps(obj)


def test_a_lost_worker_is_survived():
    """A worker closed abruptly (in-process: LocalCluster(processes=True)
    cannot start its nannies here) loses the shards it held; the scheduler
    recomputes them on the other worker from the graph they were built from
    (da.from_array chunks, in the graph), and the next call equals the
    in-memory one. Data that are not in a graph (scattered) would be lost."""
    net, X, T, alpha, beta, w = problem("sse")
    ref = sopt.Objective(net, X, T, alpha=0.2)
    cluster = local_cluster()
    try:
        with distributed.Client(cluster) as c:
            obj = ShardedObjective(net, shard(X), shard(T), alpha=0.2, client=c)
            assert rel_err(obj.gradient(w), ref.gradient(w)) < EXACT_RTOL
            held = c.who_has(obj._parts)
            victim = next(iter(held.values()))[0]
            worker = next(wk for wk in cluster.workers.values()
                          if wk.address == victim)
            c.sync(worker.close, reason="test: worker lost")
            assert victim not in c.scheduler_info()["workers"]
            assert rel_err(obj.gradient(w), ref.gradient(w)) < EXACT_RTOL
            post = laplace(obj, w, alpha=alpha, beta=beta)
            want = laplace(net, X, T, w, alpha=alpha, beta=beta)
            assert evidence_close(post, want)
            obj.close()
    finally:
        cluster.close()
