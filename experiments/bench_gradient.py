"""Cost of the backprop gradient relative to the forward pass.

Backpropagation evaluates dE/dw in Theta(W) per pattern, a small constant
times the forward pass (PRML sec. 5.3.3); the target here is
gradient / value <= 3. Two experiments, on MLPs with tanh hidden units,
identity outputs and the sum-of-squares error:

1. ratio: median time of ``Objective.value`` and ``Objective.gradient`` for
   (D, M, K, N) = (10, 50, 3, 1000) and (2, 200, 1, 5000);
2. scaling: gradient time against W over hidden sizes M at fixed N, with the
   slope of log(time) on log(W) fitted by least squares (expected ~1).

Every timed call alternates between two slightly different weight vectors
(value at w0, gradient at w1, ...), so the objective's one-entry
forward-pass cache never short-circuits a call.
Timings are ratios within one run, never absolute targets.

Usage::

    python experiments/bench_gradient.py [--quick] [--repeats R] [--json PATH]

Prints tables; writes a file only with ``--json PATH``.

BLAS runs on one thread unless OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or
MKL_NUM_THREADS is set: on a small machine shared with other jobs, threaded
BLAS waits for busy cores and single calls slow down tenfold at random,
while one thread gives stable medians (and the ratios are what matter).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import _bench_setup  # noqa: F401  (one BLAS thread, this checkout's sopt)

import numpy as np  # noqa: E402


import sopt  # noqa: E402
from sopt._timing import median_time, median_times  # noqa: E402
from sopt.allocator import tune_allocator  # noqa: E402

RATIO_CASES = ((10, 50, 3, 1000), (2, 200, 1, 5000))   # (D, M, K, N)
TARGET_RATIO = 3.0
SCALING = dict(D=10, K=3, N=1000, hidden=(25, 50, 100, 200, 400, 800))
SCALING_QUICK = dict(D=10, K=3, N=1000, hidden=(50, 100, 200, 400))


def make_problem(D: int, M: int, K: int, N: int, seed: int = 0):
    """MLP D-M-K (tanh, identity, sse) on random data; two weight vectors."""
    rng = np.random.default_rng(seed)
    net = sopt.mlp([D, M, K], hidden="tanh", output="identity")
    X = rng.standard_normal((N, D))
    T = rng.standard_normal((N, K))
    obj = sopt.Objective(net, X, T, loss="sse")
    w0 = net.init_weights(seed=seed)
    w1 = w0 + 1e-6 * rng.standard_normal(w0.shape)
    return obj, (w0, w1)


def bench_ratio(cases, repeats: int) -> list[dict]:
    """Interleaved timings: value at w0, gradient at w1, value at w0, ...

    Each call misses the one-entry cache (the previous call was at the other
    w), and a burst of load from other processes hits both columns alike.
    """
    rows = []
    for D, M, K, N in cases:
        obj, (w0, w1) = make_problem(D, M, K, N)
        # warm-up, then value and gradient in turns: repeats calls of each
        t = median_times({"value": lambda: obj.value(w0),
                          "gradient": lambda: obj.gradient(w1)},
                         min_repeat=repeats, max_repeat=repeats)
        t_value, t_grad = t["value"], t["gradient"]
        rows.append(dict(D=D, M=M, K=K, N=N, W=obj.net.n_weights,
                         value_ms=1e3 * t_value, gradient_ms=1e3 * t_grad,
                         ratio=t_grad / t_value))
    return rows


def bench_scaling(D: int, K: int, N: int, hidden, repeats: int) -> dict:
    rows = []
    for M in hidden:
        obj, ws = make_problem(D, M, K, N)
        rows.append(dict(M=M, W=obj.net.n_weights,
                         gradient_ms=1e3 * median_time(
                             lambda r: obj.gradient(ws[r % len(ws)]),
                             repeats, warmup=1)))
    W = np.array([r["W"] for r in rows], dtype=float)
    t = np.array([r["gradient_ms"] for r in rows])
    slope = float(np.polyfit(np.log(W), np.log(t), 1)[0])
    return dict(D=D, K=K, N=N, rows=rows, slope=slope)


def table(header, rows) -> str:
    """Right-aligned text table."""
    cells = [tuple(header)] + [tuple(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(s.rjust(w) for s, w in zip(c, widths)) for c in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv=None) -> int:
    tune_allocator()   # as the sopt command does; see sopt/allocator.py
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats and hidden sizes (a few seconds)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per median (default 41, quick 11)")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    repeats = args.repeats or (11 if args.quick else 41)
    if repeats < 1:
        parser.error("--repeats: expected a positive integer")

    threads = os.environ.get("OPENBLAS_NUM_THREADS",
                             os.environ.get("OMP_NUM_THREADS", "?"))
    print(f"sopt {sopt.__version__}, numpy {np.__version__}, BLAS threads "
          f"{threads}; medians of {repeats} calls alternating two weight vectors")
    print()
    ratio_rows = bench_ratio(RATIO_CASES, repeats)
    print("1. gradient (backprop) vs value (forward pass), tanh MLP, sse")
    print(table(("D", "M", "K", "N", "W", "value_ms", "gradient_ms",
                 "gradient/value"),
                [(str(r["D"]), str(r["M"]), str(r["K"]), str(r["N"]),
                  str(r["W"]), f"{r['value_ms']:.3f}", f"{r['gradient_ms']:.3f}",
                  f"{r['ratio']:.2f}x") for r in ratio_rows]))
    worst = max(r["ratio"] for r in ratio_rows)
    print(f"target gradient/value <= {TARGET_RATIO:g}: "
          f"{'met' if worst <= TARGET_RATIO else 'NOT met'} (worst {worst:.2f}x)")
    print()

    sc = bench_scaling(**(SCALING_QUICK if args.quick else SCALING),
                       repeats=repeats)
    print(f"2. gradient time vs W (D = {sc['D']}, K = {sc['K']}, "
          f"N = {sc['N']}, hidden sizes M)")
    print(table(("M", "W", "gradient_ms", "us/(N W) x1e3"),
                [(str(r["M"]), str(r["W"]), f"{r['gradient_ms']:.3f}",
                  f"{1e6 * r['gradient_ms'] / (sc['N'] * r['W']):.3f}")
                 for r in sc["rows"]]))
    print(f"log-log slope of gradient time on W: {sc['slope']:.2f} "
          f"(Theta(W) backprop: expected ~1)")

    if args.json:
        result = dict(sopt=sopt.__version__, numpy=np.__version__,
                      repeats=repeats, quick=args.quick,
                      target_ratio=TARGET_RATIO, ratio=ratio_rows, scaling=sc)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
