"""Second derivatives: speed against JAX, peak memory, and scaling with W.

Run:  python experiments/bench_hessian.py [--quick] [--json PATH]

Float64 MLPs with tanh hidden units, identity outputs, sum-of-squares:
C3 = (D, M, K, N) = (10, 50, 3, 1000), W = 703 and C4 = (20, 100, 5, 2000),
W = 2605. Every time is a median over repeats, measured in this run; JAX
(optional, ``pip install .[peers]``) is jitted and warmed up first, so
compile time is excluded. Without JAX the peer columns are skipped.
"""
from __future__ import annotations

import argparse
import json
import time
import tracemalloc

import numpy as np

import sopt
from sopt.allocator import tune_allocator

try:
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
except ImportError:           # the peer is optional
    jax = None


def median_time(f, repeat: int) -> float:
    f()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def problem(D, M, K, N, seed=0):
    rng = np.random.default_rng(seed)
    net = sopt.mlp([D, M, K], hidden="tanh", output="identity")
    X, T = rng.standard_normal((N, D)), rng.standard_normal((N, K))
    return net, sopt.Objective(net, X, T, loss="sse"), net.init_weights(seed)


def jax_error(D, M, K, X, T):
    """E(w) in JAX with sopt's layout: W1 (M, D), b1, W2 (K, M), b2."""
    X, T = jnp.asarray(X), jnp.asarray(T)
    s = np.cumsum([0, M * D, M, K * M, K])

    def E(w):
        W1, b1 = w[s[0]:s[1]].reshape(M, D), w[s[1]:s[2]]
        W2, b2 = w[s[2]:s[3]].reshape(K, M), w[s[3]:s[4]]
        y = jnp.tanh(X @ W1.T + b1) @ W2.T + b2
        return 0.5 * jnp.sum((y - T) ** 2)
    return E


def gemm_rate(n: int = 1500) -> float:
    """This machine's dgemm rate in GFLOP/s, measured now."""
    A = np.random.default_rng(0).standard_normal((n, n))
    return 2 * n**3 / median_time(lambda: A @ A, 3) / 1e9


def peak_extra_bytes(f) -> int:
    """Peak memory allocated while f runs (numpy reports to tracemalloc)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    result = f()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del result
    return peak


def compare(name, D, M, K, N, repeat, chunked_peer):
    net, obj, w = problem(D, M, K, N)
    W = net.n_weights
    v = np.random.default_rng(1).standard_normal(W)
    ws = [w, w + 1e-9]              # alternate: the one-entry cache must miss
    state = {"i": 0}

    def next_w():
        state["i"] += 1
        return ws[state["i"] % 2]

    row = {"case": name, "W": W, "N": N}
    row["value"] = median_time(lambda: obj.value(next_w()), 10 * repeat)
    row["gradient"] = median_time(lambda: obj.gradient(next_w()), 10 * repeat)
    row["hvp"] = median_time(lambda: obj.hvp(next_w(), v), 10 * repeat)
    row["exact"] = median_time(lambda: obj.hessian(w), repeat)
    row["gauss_newton"] = median_time(lambda: obj.hessian(w, method="gauss_newton"), repeat)
    row["gn_gflops"] = 2 * N * K * W**2 / row["exact"] / 1e9
    row["peak_extra_over_hessian"] = peak_extra_bytes(lambda: obj.hessian(w)) / (8 * W * W)
    if jax is not None:
        E = jax_error(D, M, K, obj.X, obj.T)
        wj, vj = jnp.asarray(w), jnp.asarray(v)
        grad = jax.jit(jax.grad(E))
        hvp = jax.jit(lambda w, v: jax.jvp(jax.grad(E), (w,), (v,))[1])
        row["jax_gradient"] = median_time(lambda: grad(wj).block_until_ready(), 10 * repeat)
        row["jax_hvp"] = median_time(lambda: hvp(wj, vj).block_until_ready(), 10 * repeat)
        if chunked_peer:
            batch = 64
            eye = jnp.eye(W)
            hess = jax.jit(lambda w: jax.lax.map(lambda e: hvp(w, e), eye,
                                                 batch_size=batch))
            row["jax_hessian_kind"] = f"lax.map(hvp, eye, batch_size={batch})"
        else:
            hess = jax.jit(jax.hessian(E))
            row["jax_hessian_kind"] = "jax.hessian"
        row["jax_hessian"] = median_time(lambda: hess(wj).block_until_ready(), repeat)
        H_jax = np.asarray(hess(wj))
        row["max_rel_diff_vs_jax"] = float(np.abs(obj.hessian(w) - H_jax).max()
                                           / np.abs(H_jax).max())
    return row


def scaling(hidden_sizes, N, repeat):
    """Time against W for every derivative method; fitted log-log slopes."""
    rows = []
    for M in hidden_sizes:
        net, obj, w = problem(4, M, 2, N)
        W = net.n_weights
        v = np.ones(W)
        r = {"M": M, "W": W,
             "gradient": median_time(lambda: obj.gradient(w + 1e-12 * np.random.rand()), repeat),
             "fd_gradient": median_time(lambda: sopt.finite_diff.gradient(obj.value, w), 1),
             "hvp": median_time(lambda: obj.hvp(w, v), repeat),
             "exact": median_time(lambda: obj.hessian(w), repeat),
             "mixed": median_time(lambda: obj.hessian(w, method="mixed"), 1)}
        if W <= 200:   # O(W^3): only the small sizes
            r["fd"] = median_time(lambda: obj.hessian(w, method="fd"), 1)
        rows.append(r)
    slopes = {}
    for key in ("gradient", "fd_gradient", "hvp", "exact", "mixed", "fd"):
        pts = [(r["W"], r[key]) for r in rows if key in r]
        if len(pts) >= 2:
            x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
            slopes[key] = float(np.polyfit(x, y, 1)[0])
    return rows, slopes


def main(argv=None):
    tune_allocator()   # as the sopt command does; see sopt/allocator.py
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--json", help="write the numbers to this file")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else 5
    rate = gemm_rate()
    print(f"dgemm on this machine: {rate:.1f} GFLOP/s"
          + ("" if jax else "   (JAX not installed: peer columns skipped)"))
    cases = [("C3", 10, 50, 3, 1000, False)]
    if not args.quick:
        cases.append(("C4", 20, 100, 5, 2000, True))
    rows = []
    for name, D, M, K, N, chunked in cases:
        r = compare(name, D, M, K, N, repeat, chunked)
        rows.append(r)
        print(f"\n{name}: W = {r['W']}, N = {r['N']}")
        print(f"  {'quantity':<14}{'sopt ms':>10}{'JAX ms':>10}{'sopt/JAX':>10}")
        for key in ("gradient", "hvp", "exact"):
            peer = {"exact": "jax_hessian"}.get(key, "jax_" + key)
            line = f"  {key:<14}{r[key] * 1e3:>10.2f}"
            if peer in r:
                line += f"{r[peer] * 1e3:>10.2f}{r[key] / r[peer]:>10.3f}"
            print(line)
        print(f"  value (forward) {r['value'] * 1e3:.2f} ms; gradient/value "
              f"{r['gradient'] / r['value']:.2f}; Gauss-Newton {r['gauss_newton'] * 1e3:.1f} ms")
        print(f"  exact Hessian: 2NKW^2 at {r['gn_gflops']:.1f} GFLOP/s "
              f"({r['gn_gflops'] / rate:.0%} of dgemm); peak extra memory "
              f"{r['peak_extra_over_hessian']:.2f} x the Hessian")
        if "jax_hessian_kind" in r:
            print(f"  JAX Hessian: {r['jax_hessian_kind']}; max rel. difference "
                  f"{r['max_rel_diff_vs_jax']:.1e}")
    sizes = [4, 8, 16] if args.quick else [8, 16, 32, 64]
    srows, slopes = scaling(sizes, 200, repeat)
    print(f"\nScaling with W (D=4, K=2, N=200, hidden {sizes}):")
    print("  " + "  ".join(f"W={r['W']}" for r in srows))
    print("  log-log slopes: " + ", ".join(f"{k} {v:.2f}" for k, v in slopes.items()))
    print("  expected ~1 (gradient, hvp), ~2 (fd gradient, exact, mixed), ~3 (fd)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"gemm_gflops": rate, "cases": rows, "scaling": srows,
                       "slopes": slopes}, fh, indent=2)


if __name__ == "__main__":
    main()
