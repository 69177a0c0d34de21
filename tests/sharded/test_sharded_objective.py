"""sopt.distributed.ShardedObjective against the in-memory Objective.

Same data, same network, same w: every quantity is the same sum over
patterns taken in a different order (per shard, then pairwise over shards),
so the two agree to round-off: EXACT_RTOL (1e-12, norm-wise).
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import sopt
from helpers import EXACT_RTOL, make_targets
from sopt.testing import rel_err
from sopt.distributed import ShardedObjective


def dag(output: str, K: int):
    """Input -> tanh(4) -> logistic(3) with a skip edge from the input and a
    mask on the h1 edge -> output from h1, h2 and the input."""
    net = sopt.Network(n_inputs=3)
    h1 = net.add_layer(4, "tanh", inputs=[net.input])
    mask = np.array([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 1]])
    h2 = net.add_layer(3, "logistic", inputs=[net.input, h1], masks={h1: mask})
    net.add_layer(K, output, inputs=[h1, h2, net.input], output=True)
    return net


def case(name: str):
    """(net, X, T, loss, alpha) for one named case; N = 90 in uneven shards."""
    rng = np.random.default_rng(13)
    N = 90
    if name == "mlp-sse":
        net, loss, kind = sopt.mlp([3, 5, 2], hidden="tanh", output="identity"), "sse", "gauss"
    elif name == "mlp-sse-1d":
        net, loss, kind = sopt.mlp([3, 4, 1], hidden="tanh", output="identity"), "sse", "unit1d"
    elif name == "dag-binary_ce":
        net, loss, kind = dag("logistic", 2), "binary_ce", "unit"
    elif name == "dag-softmax_ce":
        net, loss, kind = dag("softmax", 3), "softmax_ce", "labels"
    X = rng.standard_normal((N, net.n_inputs))
    T = make_targets(rng, N, net.n_outputs, kind)
    alpha = (rng.random(net.n_weights) if name == "dag-binary_ce"
             else 0.0 if name == "dag-softmax_ce" else 0.1)
    return net, X, T, loss, alpha


def shard(A, rows=(25, 25, 25, 15)):
    return da.from_array(A, chunks=(rows,) + A.shape[1:])


CASES = ["mlp-sse", "mlp-sse-1d", "dag-binary_ce", "dag-softmax_ce"]


@pytest.fixture(scope="module", params=CASES)
def pair(request, client):
    """(in-memory Objective, ShardedObjective, w) on the same data."""
    net, X, T, loss, alpha = case(request.param)
    ref = sopt.Objective(net, X, T, loss=loss, alpha=alpha)
    sharded = ShardedObjective(net, shard(X), shard(T), loss=loss, alpha=alpha)
    w = net.init_weights(seed=1) + 0.3 * np.random.default_rng(2).standard_normal(net.n_weights)
    yield ref, sharded, w
    sharded.close()


def test_protocol_attributes(pair):
    ref, sharded, _ = pair
    assert sharded.n_patterns == ref.n_patterns == 90
    assert sharded.n_shards == 4
    assert sharded.net is ref.net
    assert sharded.loss.name == ref.loss.name
    assert np.array_equal(np.asarray(sharded.alpha), np.asarray(ref.alpha))


def test_value_and_gradient_equal_in_memory(pair):
    ref, sharded, w = pair
    assert rel_err(sharded.value(w), ref.value(w)) < EXACT_RTOL
    assert rel_err(sharded.fun(w), ref.fun(w)) < EXACT_RTOL
    assert rel_err(sharded.gradient(w), ref.gradient(w)) < EXACT_RTOL
    assert rel_err(sharded.jac(w), ref.jac(w)) < EXACT_RTOL


def test_products_equal_in_memory(pair):
    ref, sharded, w = pair
    rng = np.random.default_rng(3)
    v, V = rng.standard_normal(w.size), rng.standard_normal((w.size, 3))
    assert rel_err(sharded.hvp(w, v), ref.hvp(w, v)) < EXACT_RTOL
    assert rel_err(sharded.hessp(w, v), ref.hessp(w, v)) < EXACT_RTOL
    assert rel_err(sharded.hvp(w, V), ref.hvp(w, V)) < EXACT_RTOL
    assert rel_err(sharded.gnvp(w, v), ref.gnvp(w, v)) < EXACT_RTOL
    assert rel_err(sharded.gnvp(w, V), ref.gnvp(w, V)) < EXACT_RTOL
    assert rel_err(sharded.hessian_operator(w) @ v, ref.hvp(w, v)) < EXACT_RTOL
    assert rel_err(sharded.gauss_newton_operator(w) @ V, ref.gnvp(w, V)) < EXACT_RTOL


@pytest.mark.parametrize("kind, algorithm", [
    ("exact", "structured"), ("exact", "rop"), ("gauss_newton", "structured"),
    ("gauss_newton", "rop"), ("diagonal", "structured")])
def test_hessians_equal_in_memory(pair, kind, algorithm):
    ref, sharded, w = pair
    H = sharded.hessian(w, kind=kind, algorithm=algorithm)
    assert rel_err(H, ref.hessian(w, kind=kind, algorithm=algorithm)) < EXACT_RTOL
    if (kind, algorithm) == ("exact", "structured"):
        assert rel_err(sharded.hess(w), H) == 0.0


def test_chunk_size_inside_shards_changes_nothing(client):
    net, X, T, loss, alpha = case("dag-binary_ce")
    ref = sopt.Objective(net, X, T, loss=loss, alpha=alpha)
    w = net.init_weights(seed=4)
    with ShardedObjective(net, shard(X), shard(T), loss=loss, alpha=alpha,
                          chunk_size=7, client=client) as sharded:
        assert rel_err(sharded.gradient(w), ref.gradient(w)) < EXACT_RTOL
        assert rel_err(sharded.hessian(w), ref.hessian(w)) < EXACT_RTOL


def minimize_problem():
    rng = np.random.default_rng(5)
    net = sopt.mlp([2, 3, 1], hidden="tanh", output="identity")
    X = rng.standard_normal((60, 2))
    t = np.sin(X[:, 0]) + 0.1 * rng.standard_normal(60)
    return net, X, t, net.init_weights(seed=0)


# lm is slow (cluster round trips); newton covers the loop fast, and
# test_hessians_equal_in_memory the Gauss-Newton matrix LM uses
@pytest.mark.parametrize("method", ["newton", pytest.param("lm", marks=pytest.mark.slow)])
def test_minimize_reaches_the_in_memory_minimum(client, method):
    """Each method from one of its own in-memory iterates, to spare cluster
    round trips: Newton (17 iterations from w0 in memory) from its 12th
    (5 iterations left), Levenberg-Marquardt (16 iterations) from its 8th."""
    net, X, t, w0 = minimize_problem()
    ref = sopt.Objective(net, X, t, alpha=0.5)
    with pytest.warns(sopt.optimize.ConvergenceWarning):
        w0 = sopt.optimize.minimize(ref, w0, method=method,
                                    options={"maxiter": {"newton": 12, "lm": 8}[method]}).x
    with ShardedObjective(net, shard(X, (20, 20, 20)), shard(t, (20, 20, 20)),
                          alpha=0.5) as sharded:
        res = sopt.optimize.minimize(sharded, w0, method=method,
                                     options={"gtol": 1e-8})
    expected = sopt.optimize.minimize(ref, w0, method=method, options={"gtol": 1e-8})
    assert res.success and expected.success
    assert abs(res.fun - expected.fun) < 1e-10 * abs(expected.fun)
    assert rel_err(res.x, expected.x) < 1e-6
    assert np.abs(res.jac).max() < 1e-8


# trust-exact and trust-ncg are slow (cluster round trips); bfgs covers the
# scipy path fast, test_hessians_equal_in_memory and
# test_products_equal_in_memory the hess and hessp they call
@pytest.mark.parametrize("method", ["bfgs", pytest.param("trust-exact", marks=pytest.mark.slow),
                                    pytest.param("trust-ncg", marks=pytest.mark.slow)])
def test_scipy_methods_follow_the_in_memory_iterates(client, method):
    """Five iterations (the full runs take ~100 cluster round trips): the
    same iterates as in memory, up to round-off."""
    net, X, t, w0 = minimize_problem()
    ref = sopt.Objective(net, X, t, alpha=0.5)
    options = {"maxiter": 5}
    with pytest.warns(sopt.optimize.ConvergenceWarning):
        expected = sopt.optimize.minimize(ref, w0, method=method, options=options)
    with ShardedObjective(net, shard(X, (20, 20, 20)), shard(t, (20, 20, 20)),
                          alpha=0.5) as sharded, \
            pytest.warns(sopt.optimize.ConvergenceWarning):
        res = sopt.optimize.minimize(sharded, w0, method=method, options=options)
    assert res.nit == expected.nit == 5
    assert rel_err(res.x, expected.x) < 1e-9
    assert abs(res.fun - expected.fun) < 1e-12 * abs(expected.fun)
    assert res.fun < ref.value(w0)


def test_many_shards_deep_tree(client):
    """20 shards summed with fan-in 2 (five levels) and 8 (two levels),
    the second with the tasks outside kept_heap."""
    net, X, T, loss, alpha = case("mlp-sse")
    ref = sopt.Objective(net, X, T, loss=loss, alpha=alpha)
    w = net.init_weights(seed=6)
    rows = (5,) * 16 + (2, 3, 0, 5)
    with ShardedObjective(net, shard(X, rows), shard(T, rows), alpha=alpha) as sharded:
        assert sharded.n_shards == 19          # the empty chunk is skipped
        for k, keep_heap in ((2, True), (8, False)):
            sharded.split_every, sharded.keep_heap = k, keep_heap
            assert rel_err(sharded.gradient(w), ref.gradient(w)) < EXACT_RTOL
            assert rel_err(sharded.value(w), ref.value(w)) < EXACT_RTOL


# ------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def data():
    net, X, T, loss, alpha = case("mlp-sse")
    return net, X, T


def test_columns_chunked(client, data):
    net, X, T = data
    with pytest.raises(ValueError, match="X: must be chunked along patterns"):
        ShardedObjective(net, da.from_array(X, chunks=(30, 2)), shard(T))
    with pytest.raises(ValueError, match="T: must be chunked along patterns"):
        ShardedObjective(net, shard(X), da.from_array(T, chunks=(30, 1)))


def test_different_row_chunks_or_lengths(client, data):
    net, X, T = data
    with pytest.raises(ValueError, match="same row chunks"):
        ShardedObjective(net, shard(X), shard(T, (30, 30, 30)))
    with pytest.raises(ValueError, match="different numbers of patterns"):
        ShardedObjective(net, shard(X), da.from_array(T[:80], chunks=(20, -1)))


def test_network_width_mismatch(client, data):
    net, X, T = data
    with pytest.raises(ValueError, match=r"X: expected shape \(N, 4\)"):
        ShardedObjective(sopt.mlp([4, 5, 2]), shard(X), shard(T))
    with pytest.raises(ValueError, match=r"T: expected shape \(N, 3\)"):
        ShardedObjective(sopt.mlp([3, 5, 3]), shard(X), shard(T))


def test_non_finite_in_one_chunk(client, data):
    net, X, T = data
    X = X.copy(); X[57, 1] = np.nan
    with pytest.raises(ValueError, match="rows 50:75.*X.*(NaN|finite)"):
        ShardedObjective(net, shard(X), shard(T))
    T = T.copy(); T[3, 0] = np.inf
    with pytest.raises(ValueError, match="rows 0:25.*T"):
        ShardedObjective(net, shard(data[1]), shard(T))


def test_not_dask_arrays_and_bad_arguments(client, data):
    net, X, T = data
    with pytest.raises(TypeError, match="X: expected a dask.array"):
        ShardedObjective(net, X, shard(T))
    with pytest.raises(TypeError, match="net: expected a Network"):
        ShardedObjective("net", shard(X), shard(T))
    with pytest.raises(ValueError, match="loss"):
        ShardedObjective(net, shard(X), shard(T), loss="nope")
    with ShardedObjective(net, shard(X), shard(T)) as sharded:
        with pytest.raises(ValueError, match="v: expected shape"):
            sharded.hvp(net.init_weights(), np.ones(3))
        with pytest.raises(ValueError, match="method"):
            sharded.hessian(net.init_weights(), method="nope")


# slow: a fresh interpreter; tests/test_import.py checks the same (no dask
# or distributed after importing sopt, sopt.optimize and sopt.bayes)
@pytest.mark.slow
def test_import_sopt_does_not_import_dask():
    code = "import sys, sopt, sopt.optimize, sopt.bayes; print('dask' in sys.modules)"
    root = Path(sopt.__file__).resolve().parents[1]    # this checkout's sopt
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"


# ------------------------------------------------- the workers' allocator
KEPT_HEAP_PROBE = '''
import importlib.util, json, resource, sys
import numpy as np
spec = importlib.util.spec_from_file_location("allocator", sys.argv[1])
allocator = importlib.util.module_from_spec(spec)      # without sopt's
spec.loader.exec_module(allocator)                      # other imports
kept_heap, pinned_thresholds = allocator.kept_heap, allocator.pinned_thresholds

def faults(times=20):
    """Minor page faults per fresh 2 MiB array (under numpy's huge-page
    size, over glibc's default mmap threshold: 512 pages if mmapped)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        np.ones(2**18)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / times

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

if sys.argv[2] == "settings":       # what kept_heap reads, nothing measured
    with kept_heap() as acts:
        print(json.dumps({"pinned": pinned_thresholds(), "acts": acts}))
    sys.exit()
out = {"pinned": pinned_thresholds(), "outside": faults(), "rss0": rss_mb()}
with kept_heap() as acts:
    out["acts"], out["inside"] = acts, faults()
    with kept_heap():           # a nested (or a concurrent) block:
        pass                    # its end leaves the outer one's setting
    out["nested"] = faults()
    blocks = [np.ones(2**17) for _ in range(200)]     # 200 MiB in 1 MiB blocks
    del blocks
    out["rss_kept"] = rss_mb()
out["after"], out["rss_after"] = faults(), rss_mb()
print(json.dumps(out))
'''


def kept_heap_probe(mode="measure", **environ) -> dict:
    """Run the probe in a fresh interpreter under ``environ`` (glibc reads
    its malloc settings at start): mode "measure" counts page faults and
    resident memory in and out of kept_heap (0.3 s of CPU), "settings" only
    reports the thresholds it reads and whether it acts."""
    import json
    import os
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", KEPT_HEAP_PROBE, sopt.allocator.__file__, mode],
                         capture_output=True, text=True, check=True, env={**env, **environ})
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_heap_scopes_the_allocator_setting():
    """Under Dask's worker setting (MALLOC_TRIM_THRESHOLD_=65536) a 2 MiB
    temporary is a fresh mmap (512 page faults); inside kept_heap() it is
    reused from the heap, and on leaving, the setting is back and the kept
    memory returned to the system."""
    out = kept_heap_probe(MALLOC_TRIM_THRESHOLD_="65536")
    assert out["pinned"] == {"trim": 65536, "mmap": 128 * 1024} and out["acts"]
    assert out["outside"] > 500 and out["after"] > 500
    assert out["inside"] < 50 and out["nested"] < 50
    assert out["rss_kept"] - out["rss0"] > 150 and out["rss_after"] - out["rss0"] < 20
    # GLIBC_TUNABLES spells the same; an unset threshold is glibc's default
    out = kept_heap_probe("settings", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=262144")
    assert out["pinned"] == {"trim": 128 * 1024, "mmap": 262144} and out["acts"]
    # nothing pinned: glibc's dynamic threshold rules, and kept_heap leaves it
    out = kept_heap_probe("settings")
    assert out["pinned"] is None and not out["acts"]
