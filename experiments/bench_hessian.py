"""Derivatives against the simplest numpy code and JAX; Hessians; scaling in W.

Run:  python experiments/bench_hessian.py [--quick] [--first-order] [--json PATH]

Float64 MLPs with tanh hidden units, identity outputs, sum-of-squares:
C3 = (D, M, K, N) = (10, 50, 3, 1000), W = 703 and C4 = (20, 100, 5, 2000),
W = 2605. Everything is measured in this run, and the CPU's SIMD level is
printed with it (numpy's tanh is vectorised on some CPUs only).

Gradient and hvp: sopt, the same computation as the simplest numpy code
would write it (numpy_gradient, numpy_hvp: np.tanh, no buffer reuse, no
generality) and JAX take turns over several rounds, each timed after 0.15 s
of warm-up calls; the ratios are medians of per-round ratios, so the
machine's drift cancels. Calls cycle through two data sets and three weight
vectors, so no cache helps. They run first in the library's default
configuration, then again after ``sopt.allocator.tune_allocator()``.
Hessians (tuned allocator): medians over repeats. JAX (optional,
``pip install .[peers]``) is jitted and warmed up first, so compile time is
excluded. Without JAX the peer columns are skipped.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
import tracemalloc

import numpy as np

import sopt
from sopt import _timing as timing, tanh_table
from sopt.allocator import tune_allocator

try:
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
except ImportError:           # the peer is optional
    jax = None


def median_time(f, repeat: int) -> float:
    """Median of ``repeat`` timed calls f() after one untimed call."""
    return timing.median_time(lambda r: f(), repeat, warmup=1)


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


def paired_times(timers: dict, rounds: int) -> dict:
    """Per-round times from every timer (a callable returning seconds per
    call), the timers taking turns round after round, so that drift in the
    machine's speed (large on shared 2-core VMs) hits them alike. Ratios are
    taken round by round, then the median."""
    times = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            times[name].append(timer())
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


def numpy_gradient(w, X, T, D, M, K):
    """The D-M-K tanh/sse gradient as the simplest numpy code would write it
    (np.tanh, natural expressions, no generality, no buffer reuse): the
    reference of the first-order targets."""
    W1, b1, W2, b2 = _mlp_views(w, D, M, K)
    z = np.tanh(X @ W1.T + b1)
    r = z @ W2.T + b2 - T                    # delta_out = y - t
    d = (1 - z * z) * (r @ W2)               # delta_hidden = h'(a) W2^T delta_out
    return np.concatenate([(d.T @ X).ravel(), d.sum(0), (r.T @ z).ravel(), r.sum(0)])


def numpy_hvp(w, v, X, T, D, M, K):
    """H v for the same net by R-propagation, written the same simple way."""
    W1, b1, W2, b2 = _mlp_views(w, D, M, K)
    V1, c1, V2, c2 = _mlp_views(v, D, M, K)
    z = np.tanh(X @ W1.T + b1)
    r = z @ W2.T + b2 - T
    dh = 1 - z * z
    Ra = X @ V1.T + c1
    Rz = dh * Ra
    Ry = Rz @ W2.T + z @ V2.T + c2           # R{delta_out} (sse, identity)
    Rd = -2 * z * dh * (r @ W2) * Ra + dh * (Ry @ W2 + r @ V2)   # R{delta_hidden}
    return np.concatenate([(Rd.T @ X).ravel(), Rd.sum(0),
                           (Ry.T @ z + r.T @ Rz).ravel(), Ry.sum(0)])


def simd_level() -> str:
    """The SIMD extensions numpy found on this CPU, as np.show_runtime() lists."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as found
    except ImportError:
        return "unknown"
    levels = [k for k in ("X86_V4", "X86_V3", "X86_V2", "AVX512_SPR", "AVX512_ICL",
                          "AVX512_SKX", "AVX2", "ASIMD", "SVE") if found.get(k)]
    return ", ".join(levels) or "baseline only"


def faults_per_call(f, number: int = 50) -> float:
    """Minor page faults per call of f (fresh pages the allocator mapped)."""
    f()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(number):
        f()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / number


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


def problems(D, M, K, N, seed=0):
    """Two data sets of the same shape (their Objectives), three weight
    vectors and a direction v: the calls timed cycle through them, so no
    cache by w helps and the patterns change between calls."""
    rng = np.random.default_rng(seed)
    net = sopt.mlp([D, M, K], hidden="tanh", output="identity")
    objs = [sopt.Objective(net, rng.standard_normal((N, D)),
                           rng.standard_normal((N, K)), loss="sse") for _ in range(2)]
    ws = [net.init_weights(seed + i) for i in range(3)]
    return net, objs, ws, rng.standard_normal(net.n_weights)


def contenders(D, M, K, N) -> dict:
    """Calls to time, by name: sopt's gradient and hvp, and the simplest
    numpy code's gradient and hvp, on the problems of :func:`problems`."""
    net, objs, ws, v = problems(D, M, K, N)
    obj, w = objs[0], ws[0]
    for got, ref in ((obj.gradient(w), numpy_gradient(w, obj.X, obj.T, D, M, K)),
                     (obj.hvp(w, v), numpy_hvp(w, v, obj.X, obj.T, D, M, K))):
        assert np.abs(got - ref).max() <= 1e-10 * np.abs(ref).max()
    state = {"i": 0}

    def next_call():            # (objective, weights) of the next call
        state["i"] += 1
        return objs[state["i"] % 2], ws[state["i"] % 3]

    def call_numpy(f, *args):
        o, w = next_call()
        return f(w, *args, o.X, o.T, D, M, K)

    return {"gradient": lambda: (lambda o, w: o.gradient(w))(*next_call()),
            "hvp": lambda: (lambda o, w: o.hvp(w, v))(*next_call()),
            "numpy_gradient": lambda: call_numpy(numpy_gradient),
            "numpy_hvp": lambda: call_numpy(numpy_hvp, v)}


def _serve(conn, shape, names, tuned):
    """A worker process: times its contenders on request. Each contender
    family runs in its own process, as in a program that uses only it, so
    none inherits the other's heap layout (glibc's page-fault behaviour
    depends on it)."""
    if tuned:
        tune_allocator()
    fns = {name: f for name, f in contenders(*shape).items() if name in names}
    while (request := conn.recv()) is not None:
        what, name = request
        conn.send(settled_time(fns[name], 20) if what == "time"
                  else faults_per_call(fns[name]))


class Worker:
    """A spawned process running :func:`_serve`; ``timer(name)`` is a
    callable for :func:`paired_times` that times ``name`` there."""

    def __init__(self, shape, names, tuned):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, shape, names, tuned))
        self.process.start()

    def ask(self, what, name):
        self.conn.send((what, name))
        return self.conn.recv()

    def timer(self, name):
        return lambda: self.ask("time", name)

    def close(self):
        self.conn.send(None)
        self.process.join()


def first_order(D, M, K, N, repeat) -> dict:
    """Gradient and hvp of sopt and of the simplest numpy code, each family in
    its own process, with the default and the tuned allocator, and JAX (in
    this process): all take turns round after round; medians of times and of
    per-round ratios."""
    shape = (D, M, K, N)
    workers, timers = [], {}
    for tuned, suffix in ((False, ""), (True, "_tuned")):
        for names in (("gradient", "hvp"), ("numpy_gradient", "numpy_hvp")):
            worker = Worker(shape, names, tuned)
            workers.append((worker, names, suffix))
            timers.update({name + suffix: worker.timer(name) for name in names})
    if jax is not None:
        net, objs, ws, v = problems(D, M, K, N)
        E = jax_error(D, M, K, objs[0].X, objs[0].T)
        wj, vj = jnp.asarray(ws[0]), jnp.asarray(v)
        grad = jax.jit(jax.grad(E))
        hvp = jax.jit(lambda w, v: jax.jvp(jax.grad(E), (w,), (v,))[1])
        timers["jax_gradient"] = lambda: settled_time(
            lambda: grad(wj).block_until_ready(), 20)
        timers["jax_hvp"] = lambda: settled_time(
            lambda: hvp(wj, vj).block_until_ready(), 20)
    times = paired_times(timers, rounds=2 * repeat + 1)
    row = {key: float(np.median(t)) for key, t in times.items()}
    row["faults"] = {}              # page faults per call, in each one's process
    for worker, names, suffix in workers:
        for name in names:
            row["faults"][name + suffix] = worker.ask("faults", name)
        worker.close()
    for suffix in ("", "_tuned"):
        for key in ("gradient", "hvp"):
            ratio = times[key + suffix] / times["numpy_" + key + suffix]
            row[f"{key}{suffix}_over_numpy"] = float(np.median(ratio))
            row[f"{key}{suffix}_over_numpy_range"] = [float(ratio.min()),
                                                      float(ratio.max())]
    for key in ("gradient", "hvp"):
        for who in ("", "numpy_"):
            row[f"{who}{key}_tuned_over_default"] = median_ratio(
                times, who + key + "_tuned", who + key)
        if jax is not None:
            row[f"{key}_over_jax"] = median_ratio(times, key, "jax_" + key)
            row[f"numpy_{key}_over_jax"] = median_ratio(times, "numpy_" + key, "jax_" + key)
    return row


def second_order(D, M, K, N, repeat, chunked_peer) -> dict:
    """Exact and Gauss-Newton Hessians; JAX's Hessian if installed."""
    net, objs, ws, _ = problems(D, M, K, N)
    obj, w, W = objs[0], ws[0], net.n_weights
    # obj.at(w) is a new evaluation: an Objective keeps the Hessian it built
    # at w, so obj.hessian(w) again would time a copy
    row = {"exact": median_time(lambda: obj.at(w).curvature("exact"), repeat),
           "gauss_newton": median_time(lambda: obj.at(w).curvature("gauss_newton"),
                                       repeat)}
    row["gn_gflops"] = 2 * N * K * W**2 / row["exact"] / 1e9
    row["peak_extra_over_hessian"] = (peak_extra_bytes(lambda: obj.at(w).curvature("exact"))
                                      / (8 * W * W))
    if jax is not None:
        E = jax_error(D, M, K, obj.X, obj.T)
        hvp = jax.jit(lambda w, v: jax.jvp(jax.grad(E), (w,), (v,))[1])
        if chunked_peer:
            batch = 64
            eye = jnp.eye(W)
            hess = jax.jit(lambda w: jax.lax.map(lambda e: hvp(w, e), eye,
                                                 batch_size=batch))
            row["jax_hessian_kind"] = f"lax.map(hvp, eye, batch_size={batch})"
        else:
            hess = jax.jit(jax.hessian(E))
            row["jax_hessian_kind"] = "jax.hessian"
        wj = jnp.asarray(w)
        row["jax_hessian"] = median_time(lambda: hess(wj).block_until_ready(), repeat)
        row["exact_over_jax"] = row["exact"] / row["jax_hessian"]
        H_jax = np.asarray(hess(wj))
        row["max_rel_diff_vs_jax"] = float(np.abs(obj.hessian(w) - H_jax).max()
                                           / np.abs(H_jax).max())
    return row


TARGETS = {"gradient": 1.5, "hvp": 2.0, "exact": 1 / 3}   # sopt / JAX
NUMPY_TARGETS = {"gradient": 1.2, "hvp": 1.3}   # sopt / simplest numpy


def print_first_order(name, r):
    print(f"  {name}: sopt / simplest numpy, median of per-round ratios [min-max]")
    for key in ("gradient", "hvp"):
        target = NUMPY_TARGETS[key]
        line = f"    {key:<9}"
        for suffix, label in (("", "default allocator"), ("_tuned", "tuned")):
            ratio = r[f"{key}{suffix}_over_numpy"]
            lo, hi = r[f"{key}{suffix}_over_numpy_range"]
            line += (f"{label} {ratio:.2f} [{lo:.2f}-{hi:.2f}]"
                     f"{'' if ratio <= target else ' MISSED'};  ")
        print(line + f"target <= {target}")
        print(f"      ms: sopt {r[key] * 1e3:.2f}, numpy {r['numpy_' + key] * 1e3:.2f}"
              f" (tuned: {r[key + '_tuned'] * 1e3:.2f}, "
              f"{r['numpy_' + key + '_tuned'] * 1e3:.2f}); tuned / default: sopt "
              f"{r[key + '_tuned_over_default']:.2f}, numpy "
              f"{r['numpy_' + key + '_tuned_over_default']:.2f}"
              + (f"; JAX {r['jax_' + key] * 1e3:.2f} ms, sopt/JAX "
                 f"{r[key + '_over_jax']:.2f}, numpy/JAX "
                 f"{r['numpy_' + key + '_over_jax']:.2f}" if "jax_" + key in r else ""))
    print("    page faults per call: "
          + ", ".join(f"{key} {n:.0f}" for key, n in r["faults"].items()))


def print_second_order(name, W, N, r, rate):
    print(f"  {name} (W = {W}, N = {N}): exact Hessian {r['exact'] * 1e3:.1f} ms, "
          f"2NKW^2 at {r['gn_gflops']:.1f} GFLOP/s ({r['gn_gflops'] / rate:.0%} "
          f"of dgemm), peak extra memory {r['peak_extra_over_hessian']:.2f} x the "
          f"Hessian; Gauss-Newton {r['gauss_newton'] * 1e3:.1f} ms")
    if "jax_hessian" in r:
        ratio = r["exact_over_jax"]
        print(f"    JAX Hessian ({r['jax_hessian_kind']}) {r['jax_hessian'] * 1e3:.1f} ms:"
              f" sopt/JAX {ratio:.3f}, target <= {TARGETS['exact']:.3g}"
              f"{'  met' if ratio <= TARGETS['exact'] else '  MISSED'}; max rel. "
              f"difference {r['max_rel_diff_vs_jax']:.1e}")


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
            r["exact"] = median_time(lambda: obj.at(w).curvature("exact"), repeat)
            r["fd_gradient"] = median_time(lambda: sopt.finite_diff.gradient(obj.value, w), 1)
            r["mixed"] = median_time(lambda: obj.hessian(w, algorithm="mixed"), 1)
        if M in fd_sizes:
            r["fd"] = median_time(lambda: obj.hessian(w, algorithm="fd"), 1)
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--first-order", action="store_true",
                        help="gradient and hvp only (no Hessians, no scaling)")
    parser.add_argument("--json", help="write the numbers to this file")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else 5
    rate = gemm_rate()
    print(f"numpy {np.__version__}, SIMD: {simd_level()}; sopt's tanh: "
          f"{tanh_table.method()} (sopt.tanh_table); dgemm {rate:.1f} GFLOP/s"
          + ("" if jax else "\n(JAX not installed: peer columns skipped)"))
    cases = [("C3", 10, 50, 3, 1000, False)]
    if not args.quick:
        cases.append(("C4", 20, 100, 5, 2000, True))
    rows = [{"case": name, "D": D, "M": M, "K": K, "N": N} for name, D, M, K, N, _ in cases]
    print("\nFirst-order passes (sopt and numpy each in its own process, with "
          "the default\nallocator and with sopt.allocator.tune_allocator()):")
    for row in rows:
        row.update(first_order(row["D"], row["M"], row["K"], row["N"], repeat))
        print_first_order(row["case"], row)
    tune_allocator()   # for what follows, as the sopt command does
    if args.first_order:
        return dump(args.json, {"simd": simd_level(), "cases": rows})
    print("\nSecond derivatives (tuned allocator; medians over repeats):")
    for row, (name, D, M, K, N, chunked) in zip(rows, cases):
        row.update(second_order(D, M, K, N, repeat, chunked))
        print_second_order(name, M * (D + 1) + K * (M + 1), N, row, rate)
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
    dump(args.json, {"simd": simd_level(), "gemm_gflops": rate, "cases": rows,
                     "scaling": srows, "slopes": slopes})


def dump(path, numbers):
    if path:
        with open(path, "w") as fh:
            json.dump(numbers, fh, indent=2)


if __name__ == "__main__":
    main()
