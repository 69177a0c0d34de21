"""Where do BLAS threads pay for the dense work of the Bayesian layer?

Run:  python experiments/bench_blas_threads.py [--sizes 100,200,...] [--repeat 5]

Times, for each matrix size n and each BLAS thread count 1..cores (set with
threadpoolctl, as sopt does for its own calls), the operations of the
evidence loop and the posterior: the Cholesky factorisation of an n x n SPD
matrix, a solve with its factor for n right-hand sides (the covariance),
the symmetric eigendecomposition (clipping), and an (n, 4n) x (4n, n)
product (a Hessian block accumulated over patterns). Prints medians in ms,
the speed-up of each thread count over one thread, and the load average:
``sopt._threads.BLAS_MIN_SIZE`` is the smallest n at which more threads
were faster for the factorisations on a busy 2-core machine.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy.linalg import cho_factor, cho_solve, eigh
from threadpoolctl import threadpool_limits


def operations(n: int, rng):
    A = rng.standard_normal((n, n))
    S = A @ A.T + n * np.eye(n)
    F = cho_factor(S, lower=True)
    B = rng.standard_normal((n, 4 * n))
    return {"cholesky": lambda: cho_factor(S, lower=True),
            "solve n rhs": lambda: cho_solve(F, np.eye(n)),
            "eigh": lambda: eigh(S),
            "gemm (n,4n)(4n,n)": lambda: B @ B.T}


def median_ms(f, repeat: int) -> float:
    f()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,100,200,400,800,1600")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    rng = np.random.default_rng(0)
    print(f"cores {cores}, load {os.getloadavg()[0]:.1f}")
    for n in [int(s) for s in args.sizes.split(",")]:
        for name, f in operations(n, rng).items():
            row = []
            for threads in range(1, cores + 1):
                with threadpool_limits(limits=threads, user_api="blas"):
                    row.append(median_ms(f, args.repeat))
            gains = " ".join(f"{row[0] / t:.2f}x" for t in row[1:])
            print(f"n={n:5d} {name:18s} " + " ".join(f"{t:9.2f}" for t in row)
                  + f"  speed-up over 1 thread: {gains}  load {os.getloadavg()[0]:.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
