"""Cost of the sharded objective against the in-memory one.

On a LocalCluster of single-threaded worker processes, with N patterns of a
10-20-1 tanh network created on the workers (dask.array, never gathered):

- gradient and Gauss-Newton matrix times of ``ShardedObjective`` over those
  of ``sopt.Objective`` on the same data in this process (targets: at most
  1.5x and 1.2x with 2 workers at N = 1e6), the two timed in turn at each w
  so that both see the same load on the machine;
- rows: 2 workers as they come (Dask's allocator settings; sopt's tasks run
  in ``sopt.allocator.kept_heap()``, the active design), 1 worker (scaling),
  2 workers after ``client.run(tune_allocator)`` ("tuned"), and with
  ``--unscoped`` 2 workers with ``keep_heap = False`` (the tasks under
  Dask's settings: the design before kept_heap, slow);
- each worker's RSS (MB) after the shards are built and a first gradient
  taken, and after the timed calls: kept_heap trims what it kept, so the
  two should be close; and the workers' page faults per shard and w;
- with ``--big N``, the client's peak memory while a gradient and a
  Gauss-Newton matrix are computed over N patterns made on the workers
  (it should stay flat: only W-vectors and W x W matrices come back).

Times are medians of ``--repeat`` calls, each at a new w (the objectives
cache by w); the load average is printed with every row (2 cores shared
with other jobs: rerun when it is high). Run:
``OPENBLAS_NUM_THREADS=1 python experiments/bench_distributed.py`` (a few
minutes; ``--quick`` uses N = 2e5, ``--big 10000000`` adds the memory run).
"""
from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

import sopt
from sopt.allocator import pinned_thresholds, tune_allocator

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


def interleaved(objectives: dict, weights) -> dict:
    """Median gradient and Gauss-Newton times of each objective, the
    objectives called in turn at each w (after one warm-up gradient)."""
    times = {name: {"gradient": [], "gauss_newton": []} for name in objectives}
    for obj in objectives.values():
        obj.gradient(weights[0])            # first calls set things up
    for w in weights[1:]:
        for name, obj in objectives.items():
            for what, f in (("gradient", obj.gradient),
                            ("gauss_newton", lambda w: obj.hessian(w, kind="gauss_newton"))):
                t0 = time.perf_counter()
                f(w)
                times[name][what].append(time.perf_counter() - t0)
    return {name: {k: float(np.median(v)) for k, v in t.items()}
            for name, t in times.items()}


def worker_rss_mb() -> float:
    """This process's resident memory (run on the workers)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker_faults() -> int:
    """This process's minor page faults so far (run on the workers)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def run_cluster(n_workers: int, N: int, n_chunks: int, net, local, weights,
                setting: str = "default") -> dict:
    """Times on a fresh LocalCluster of n_workers single-threaded processes,
    interleaved with the in-memory objective ``local``. ``setting``:
    "default" (the cluster as Dask makes it), "tuned" (tune_allocator() run
    on every worker first) or "unscoped" (keep_heap = False)."""
    from distributed import Client, LocalCluster
    from sopt.distributed import ShardedObjective
    load = os.getloadavg()[0]
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        paths = set(client.run(lambda: __import__("sopt").__file__).values())
        assert paths == {sopt.__file__}, f"workers import another sopt: {paths}"
        if setting == "tuned":
            client.run(tune_allocator)
        pinned = set(map(str, client.run(pinned_thresholds).values()))
        X, t = make_data(N, n_chunks)
        with ShardedObjective(net, X, t, loss="sse") as obj:
            obj.keep_heap = setting != "unscoped"
            obj.gradient(weights[0])        # the shards' caches filled
            rss_before = sorted(client.run(worker_rss_mb).values())
            faults = client.run(worker_faults)
            times = interleaved({"in-memory": local, "sharded": obj}, weights)
            faults = sum(client.run(worker_faults).values()) - sum(faults.values())
            rss_after = sorted(client.run(worker_rss_mb).values())
    return {**times["sharded"], "in-memory": times["in-memory"],
            "load": (load, os.getloadavg()[0]), "pinned": pinned,
            "rss_before": rss_before, "rss_after": rss_after,
            "faults": faults / (len(weights) - 1) / n_chunks}


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
            G = obj.hessian(w, kind="gauss_newton")
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
    parser.add_argument("--unscoped", action="store_true",
                        help="add the row with keep_heap = False (slow)")
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
    configs = {"2 workers": (2, "default"), "1 worker": (1, "default"),
               "2, tuned": (2, "tuned")}
    if args.unscoped:
        configs["2, unscoped"] = (2, "unscoped")
    rows = {name: run_cluster(n, N, args.chunks, net, local, weights, setting)
            for name, (n, setting) in configs.items()}

    from numpy._core._multiarray_umath import __cpu_features__ as cpu
    print(f"N = {N}, {D}-{M}-{K} tanh network, W = {net.n_weights}, "
          f"{args.chunks} row chunks; medians of {args.repeat} calls; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; "
          f"AVX512_ICL: {bool(cpu.get('AVX512_ICL'))}, AVX2: {bool(cpu.get('AVX2'))}")
    print("active design: each shard's task runs in sopt.allocator.kept_heap() "
          "(workers' malloc thresholds raised for the task, restored and "
          "trimmed after it)")
    print(f"{'':12s} {'grad (s)':>9s} {'mem (s)':>8s} {'GN (s)':>8s} {'mem (s)':>8s} "
          f"{'grad/mem':>9s} {'GN/mem':>7s} {'load':>10s} {'faults':>8s}  "
          f"worker RSS MB before -> after")
    for name, r in rows.items():
        m = r["in-memory"]
        r["ratios"] = {k: r[k] / m[k] for k in ("gradient", "gauss_newton")}
        print(f"{name:12s} {r['gradient']:9.4f} {m['gradient']:8.4f} "
              f"{r['gauss_newton']:8.4f} {m['gauss_newton']:8.4f} "
              f"{r['ratios']['gradient']:9.2f} {r['ratios']['gauss_newton']:7.2f} "
              f"{r['load'][0]:4.1f}-{r['load'][1]:4.1f} {r['faults']:8.0f}  "
              f"{', '.join(f'{b:.0f} -> {a:.0f}' for b, a in zip(r['rss_before'], r['rss_after']))}")
    print("faults: the workers' minor page faults per shard and w (one gradient "
          "and one Gauss-Newton matrix)")
    print("workers' pinned malloc thresholds (sopt.allocator.pinned_thresholds): "
          + "; ".join(f"{name}: {', '.join(r['pinned'])}" for name, r in rows.items()))
    two = rows["2 workers"]["ratios"]
    print(f"targets with 2 workers: gradient <= 1.5x ({two['gradient']:.2f}), "
          f"Gauss-Newton <= 1.2x ({two['gauss_newton']:.2f})")
    one, two = rows["1 worker"], rows["2 workers"]
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
