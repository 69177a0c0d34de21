"""Cost of the sharded objective against the in-memory one (issue 13).

On a LocalCluster of single-threaded worker processes, with N patterns of a
10-20-1 tanh network created on the workers (dask.array, never gathered):

- gradient and Gauss-Newton matrix times of ``ShardedObjective`` over those
  of ``sopt.Objective`` on the same data in this process (targets: at most
  1.5x and 1.2x with 2 workers at N = 1e6);
- the same with 1 worker (scaling from 1 to 2 workers);
- with ``--big N``, the client's peak memory while a gradient and a
  Gauss-Newton matrix are computed over N patterns made on the workers
  (it should stay flat: only W-vectors and W x W matrices come back).

Times are medians of ``--repeat`` calls, each at a new w (the objectives
cache by w). Run: ``python experiments/bench_distributed.py`` (about a
minute; ``--quick`` uses N = 2e5, ``--big 10000000`` adds the memory run).
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np

import sopt
from sopt.allocator import tune_allocator

D, M, K = 10, 20, 1


def make_data(N: int, n_chunks: int):
    """X (N, D) and t (N,) as lazy dask arrays, made chunk by chunk where
    they are computed: t = sin(x_1) + x_2 x_3 / 2 + 0.1 noise."""
    import dask.array as da
    rows = -(-N // n_chunks)
    X = da.random.default_rng(0).standard_normal((N, D), chunks=(rows, D))
    noise = da.random.default_rng(1).standard_normal(N, chunks=rows)
    t = da.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + 0.1 * noise
    return X, t


def median_time(f, weights) -> float:
    times = []
    for w in weights:
        t0 = time.perf_counter()
        f(w)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def time_pair(net, obj, weights) -> dict:
    obj.gradient(weights[0])            # warm-up: first calls set things up
    return {"gradient": median_time(obj.gradient, weights[1:]),
            "gauss_newton": median_time(
                lambda w: obj.hessian(w, method="gauss_newton"), weights[1:])}


def run_cluster(n_workers: int, N: int, n_chunks: int, net, weights,
                tuned: bool = False):
    """Times on a fresh LocalCluster of n_workers single-threaded processes
    (``tuned``: with sopt.allocator.tune_allocator() run on every worker)."""
    from distributed import Client, LocalCluster
    from sopt.distributed import ShardedObjective
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        if tuned:
            client.run(tune_allocator)
        X, t = make_data(N, n_chunks)
        with ShardedObjective(net, X, t, loss="sse") as obj:
            return time_pair(net, obj, weights)


def peak_client_memory(N: int, n_chunks: int, net, w) -> dict:
    """The client's peak RSS (MB) before and after a gradient and a
    Gauss-Newton matrix over N patterns made on 2 workers."""
    from distributed import Client, LocalCluster
    from sopt.distributed import ShardedObjective
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        X, t = make_data(N, n_chunks)
        t0 = time.perf_counter()
        with ShardedObjective(net, X, t, loss="sse", chunk_size=100_000) as obj:
            g = obj.gradient(w)
            G = obj.hessian(w, method="gauss_newton")
        seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data_mb = N * (D + 1) * 8 / 2**20
    return {"N": N, "data_MB": data_mb, "client_peak_MB_before": before,
            "client_peak_MB_after": after, "seconds": seconds,
            "finite": bool(np.all(np.isfinite(g)) and np.all(np.isfinite(G)))}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 2e5")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--chunks", type=int, default=8, help="row chunks")
    parser.add_argument("--big", type=int, default=0,
                        help="also measure the client's memory over this many patterns")
    args = parser.parse_args(argv)
    N = 200_000 if args.quick else 1_000_000
    net = sopt.mlp([D, M, K])
    weights = [net.init_weights(seed=s) for s in range(args.repeat + 1)]

    result = {}
    if args.big:        # first: peak RSS only grows, so measure it before the rest
        result["memory"] = peak_client_memory(
            args.big, max(args.chunks, args.big // 250_000), net, weights[0])
    X, t = make_data(N, args.chunks)
    local = sopt.Objective(net, X.compute(), t.compute(), loss="sse")
    mem = time_pair(net, local, weights)
    del local
    rows = {"in-memory": mem}
    for n_workers in (1, 2):
        rows[f"{n_workers} worker(s)"] = run_cluster(n_workers, N, args.chunks, net, weights)
    rows["2, tuned"] = run_cluster(2, N, args.chunks, net, weights, tuned=True)

    print(f"N = {N}, {D}-{M}-{K} tanh network, W = {net.n_weights}, "
          f"{args.chunks} row chunks; medians of {args.repeat} calls")
    print(f"{'':14s} {'gradient (s)':>13s} {'GN matrix (s)':>14s} "
          f"{'grad / mem':>11s} {'GN / mem':>9s}")
    for name, r in rows.items():
        print(f"{name:14s} {r['gradient']:13.4f} {r['gauss_newton']:14.4f} "
              f"{r['gradient'] / mem['gradient']:11.2f} "
              f"{r['gauss_newton'] / mem['gauss_newton']:9.2f}")
    two, one = rows["2 worker(s)"], rows["1 worker(s)"]
    print(f"targets with 2 workers: gradient <= 1.5x ({two['gradient'] / mem['gradient']:.2f}), "
          f"Gauss-Newton <= 1.2x ({two['gauss_newton'] / mem['gauss_newton']:.2f})")
    print(f"scaling 1 -> 2 workers: gradient {one['gradient'] / two['gradient']:.2f}x, "
          f"Gauss-Newton {one['gauss_newton'] / two['gauss_newton']:.2f}x faster")
    result["rows"] = rows
    if args.big:
        m = result["memory"]
        print(f"client peak memory over N = {m['N']} ({m['data_MB']:.0f} MB of data on "
              f"the workers): {m['client_peak_MB_before']:.0f} MB before, "
              f"{m['client_peak_MB_after']:.0f} MB after ({m['seconds']:.1f} s, "
              f"finite: {m['finite']})")
    return result


if __name__ == "__main__":
    main()
