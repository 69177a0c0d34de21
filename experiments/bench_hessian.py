"""Second derivatives: speed against JAX, peak memory, and scaling with W.

Run:  python experiments/bench_hessian.py [--quick] [--json PATH]

Float64 MLPs with tanh hidden units, identity outputs, sum-of-squares:
C3 = (D, M, K, N) = (10, 50, 3, 1000), W = 703 and C4 = (20, 100, 5, 2000),
W = 2605. Everything is measured in this run. Gradient and hvp: sopt, the
same computation written in the fewest numpy calls ("floor": what numpy
itself costs, see floor_gradient) and JAX take turns over several rounds, each
timed after 0.15 s of warm-up calls; the ratios are medians of per-round
ratios, so the machine's drift cancels. Hessians: medians over repeats. JAX
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
from sopt.fastmath import tanh as fast_tanh

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


def settled_time(f, number: int, warm: float = 0.15) -> float:
    """Mean time of ``number`` calls after ``warm`` seconds of calls: each
    contender is timed in its own steady state (BLAS threads spin for a while
    after their last product and would slow whoever runs next)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < warm:
        f()
    t0 = time.perf_counter()
    for _ in range(number):
        f()
    return (time.perf_counter() - t0) / number


def paired_times(fns: dict, rounds: int, number: int) -> dict:
    """Per-round times of every function, the functions taking turns round
    after round, so that drift in the machine's speed (large on shared 2-core
    VMs) hits them alike. Ratios are taken round by round, then the median."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, f in fns.items():
            times[name].append(settled_time(f, number))
    return {name: np.array(t) for name, t in times.items()}


def median_ratio(times: dict, a: str, b: str) -> float:
    return float(np.median(times[a] / times[b]))


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


def _mlp_views(w, D, M, K):
    s = np.cumsum([0, M * D, M, K * M, K])
    return (w[s[0]:s[1]].reshape(M, D), w[s[1]:s[2]],
            w[s[2]:s[3]].reshape(K, M), w[s[3]:s[4]])


def _floor_forward(X, T, W1, b1, W2, b2):
    """Hidden outputs z = tanh(X W1^T + b1) and output deltas y - t."""
    a = X @ W1.T
    a += b1
    z = fast_tanh(a)
    r = z @ W2.T
    r += b2
    r -= T
    return z, r


def floor_gradient(w, X, T, D, M, K):
    """The D-M-K tanh/sse gradient in the fewest numpy calls we could write:
    what numpy itself costs, without sopt's generality (DAGs, masks, losses,
    checks). Uses sopt.fastmath.tanh, as sopt does."""
    W1, b1, W2, b2 = _mlp_views(w, D, M, K)
    z, r = _floor_forward(X, T, W1, b1, W2, b2)
    d = z * z
    np.subtract(1.0, d, out=d)
    d *= r @ W2                              # delta_hidden = h'(a) W2^T delta_out
    return np.concatenate([(d.T @ X).ravel(), d.sum(0), (r.T @ z).ravel(), r.sum(0)])


def floor_hvp(w, v, X, T, D, M, K):
    """H v for the same net by R-propagation, in the fewest numpy calls."""
    W1, b1, W2, b2 = _mlp_views(w, D, M, K)
    V1, c1, V2, c2 = _mlp_views(v, D, M, K)
    z, r = _floor_forward(X, T, W1, b1, W2, b2)
    g = r @ W2                               # dE/dz
    dh = z * z
    np.subtract(1.0, dh, out=dh)
    Ra = X @ V1.T
    Ra += c1
    Rz = dh * Ra
    Ry = Rz @ W2.T
    Ry += z @ V2.T
    Ry += c2                                 # R{delta_out} (sse, identity)
    Rg = Ry @ W2
    Rg += r @ V2
    Rd = z * -2.0
    Rd *= dh
    Rd *= g
    Rd *= Ra                                 # h''(a) g R{a}
    Rg *= dh
    Rd += Rg                                 # R{delta_hidden}
    return np.concatenate([(Rd.T @ X).ravel(), Rd.sum(0),
                           (Ry.T @ z + r.T @ Rz).ravel(), Ry.sum(0)])


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
    X, T = obj.X, obj.T
    v = np.random.default_rng(1).standard_normal(W)
    for got, floor in ((obj.gradient(w), floor_gradient(w, X, T, D, M, K)),
                       (obj.hvp(w, v), floor_hvp(w, v, X, T, D, M, K))):
        assert np.abs(got - floor).max() <= 1e-10 * np.abs(floor).max()
    ws = [w, w + 1e-9]              # alternate: the one-entry cache must miss
    state = {"i": 0}

    def next_w():
        state["i"] += 1
        return ws[state["i"] % 2]

    fns = {"value": lambda: obj.value(next_w()),
           "gradient": lambda: obj.gradient(next_w()),
           "hvp": lambda: obj.hvp(next_w(), v),
           "floor_gradient": lambda: floor_gradient(next_w(), X, T, D, M, K),
           "floor_hvp": lambda: floor_hvp(next_w(), v, X, T, D, M, K)}
    if jax is not None:
        E = jax_error(D, M, K, X, T)
        wj, vj = jnp.asarray(w), jnp.asarray(v)
        grad = jax.jit(jax.grad(E))
        hvp = jax.jit(lambda w, v: jax.jvp(jax.grad(E), (w,), (v,))[1])
        fns["jax_gradient"] = lambda: grad(wj).block_until_ready()
        fns["jax_hvp"] = lambda: hvp(wj, vj).block_until_ready()
    times = paired_times(fns, rounds=2 * repeat + 1, number=20)
    row = {"case": name, "W": W, "N": N}
    row.update({key: float(np.median(t)) for key, t in times.items()})
    for key in ("gradient", "hvp"):
        row[f"{key}_over_floor"] = median_ratio(times, key, "floor_" + key)
        if jax is not None:
            row[f"{key}_over_jax"] = median_ratio(times, key, "jax_" + key)
            row[f"floor_{key}_over_jax"] = median_ratio(times, "floor_" + key, "jax_" + key)
    row["exact"] = median_time(lambda: obj.hessian(w), repeat)
    row["gauss_newton"] = median_time(lambda: obj.hessian(w, method="gauss_newton"), repeat)
    row["gn_gflops"] = 2 * N * K * W**2 / row["exact"] / 1e9
    row["peak_extra_over_hessian"] = peak_extra_bytes(lambda: obj.hessian(w)) / (8 * W * W)
    if jax is not None:
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
        row["exact_over_jax"] = row["exact"] / row["jax_hessian"]
        H_jax = np.asarray(hess(wj))
        row["max_rel_diff_vs_jax"] = float(np.abs(obj.hessian(w) - H_jax).max()
                                           / np.abs(H_jax).max())
    return row


TARGETS = {"gradient": 1.5, "hvp": 2.0, "exact": 1 / 3}   # sopt / JAX, issue 3


def print_case(r, rate):
    print(f"\n{r['case']}: W = {r['W']}, N = {r['N']}  (medians; ratios are "
          "medians of per-round ratios)")
    print(f"  {'quantity':<10}{'sopt ms':>9}{'floor ms':>10}{'JAX ms':>9}"
          f"{'sopt/JAX':>10}{'floor/JAX':>11}{'target':>8}")
    for key in ("gradient", "hvp", "exact"):
        line = f"  {key:<10}{r[key] * 1e3:>9.2f}"
        line += (f"{r['floor_' + key] * 1e3:>10.2f}" if "floor_" + key in r
                 else f"{'':>10}")
        peer = "jax_hessian" if key == "exact" else "jax_" + key
        if peer in r:
            ratio = r.get(f"{key}_over_jax", r[key] / r[peer])
            floor = r.get(f"floor_{key}_over_jax")
            line += (f"{r[peer] * 1e3:>9.2f}{ratio:>10.3f}"
                     + (f"{floor:>11.3f}" if floor is not None else f"{'':>11}")
                     + f"{'<= %.3g' % TARGETS[key]:>8}"
                     + ("  met" if ratio <= TARGETS[key] else "  MISSED"))
        print(line)
    print(f"  floor = the same net's gradient / hvp in the fewest numpy calls "
          f"(no DAG, masks, checks);\n  sopt/floor: gradient "
          f"{r['gradient_over_floor']:.2f}, hvp {r['hvp_over_floor']:.2f}")
    print(f"  value (forward) {r['value'] * 1e3:.2f} ms; gradient/value "
          f"{r['gradient'] / r['value']:.2f}; Gauss-Newton {r['gauss_newton'] * 1e3:.1f} ms")
    print(f"  exact Hessian: 2NKW^2 at {r['gn_gflops']:.1f} GFLOP/s "
          f"({r['gn_gflops'] / rate:.0%} of dgemm); peak extra memory "
          f"{r['peak_extra_over_hessian']:.2f} x the Hessian")
    if "jax_hessian_kind" in r:
        print(f"  JAX Hessian: {r['jax_hessian_kind']}; max rel. difference "
              f"{r['max_rel_diff_vs_jax']:.1e}")


def scaling(hidden_sizes, fd_sizes, N, repeat):
    """Time against W for every derivative method at fixed N (D = 4, K = 2);
    log-log slopes fitted over the sizes given. The four-point Hessian,
    O(N W^3), runs on its own smaller sizes."""
    rows = []
    for M in sorted(set(hidden_sizes) | set(fd_sizes)):
        net, obj, w = problem(4, M, 2, N)
        W = net.n_weights
        v = np.ones(W)
        ws = [w, w + 1e-9]
        state = {"i": 0}

        def next_w():
            state["i"] += 1
            return ws[state["i"] % 2]

        r = {"M": M, "W": W}
        if M in hidden_sizes:
            r["gradient"] = median_time(lambda: obj.gradient(next_w()), 10 * repeat)
            r["hvp"] = median_time(lambda: obj.hvp(next_w(), v), 10 * repeat)
            r["exact"] = median_time(lambda: obj.hessian(w), repeat)
            r["fd_gradient"] = median_time(lambda: sopt.finite_diff.gradient(obj.value, w), 1)
            r["mixed"] = median_time(lambda: obj.hessian(w, method="mixed"), 1)
        if M in fd_sizes:
            r["fd"] = median_time(lambda: obj.hessian(w, method="fd"), 1)
            r["value"] = median_time(lambda: obj.value(next_w()), 10 * repeat)
        rows.append(r)
    slopes = {}
    for key in ("gradient", "hvp", "fd_gradient", "exact", "mixed", "fd", "value"):
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
        print_case(r, rate)
    N = 1000
    sizes, fd_sizes = (([16, 32, 64], [4, 8]) if args.quick
                       else ([16, 32, 64, 128, 256], [4, 8, 16, 24]))
    srows, slopes = scaling(sizes, fd_sizes, N, repeat)
    print(f"\nScaling with W at N = {N} (D = 4, K = 2; hidden {sizes}, "
          f"four-point Hessian on hidden {fd_sizes}):")
    for key, expected in (("gradient", 1), ("hvp", 1), ("fd_gradient", 2),
                          ("exact", 2), ("mixed", 2), ("fd", 3)):
        pts = [r for r in srows if key in r]
        print(f"  {key:<12} slope {slopes[key]:.2f} (expected ~{expected}) over W "
              f"{pts[0]['W']}..{pts[-1]['W']}: "
              + ", ".join(f"{r[key] * 1e3:.3g}" for r in pts) + " ms")
    print(f"  the four-point Hessian is ~2W^2 evaluations of E, and on its sizes E's "
          f"own time grows with slope {slopes['value']:.2f}\n  (a fixed per-call "
          f"cost dominates), so expect about 2 + {slopes['value']:.2f} there; 3 only "
          f"where E's time grows like W")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"gemm_gflops": rate, "cases": rows, "scaling": srows,
                       "slopes": slopes}, fh, indent=2)


if __name__ == "__main__":
    main()
