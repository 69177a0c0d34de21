"""float64 tanh: np.tanh against sopt.tanh_table's table method and its choice.

Run:  OPENBLAS_NUM_THREADS=1 python experiments/bench_tanh.py [--rounds R] [--choices P]

Times ``np.tanh``, ``tanh_table.table_tanh`` and ``tanh_table.tanh`` (whichever
method this machine's choice picked), each writing into a given array as the
forward pass does, on a sorted linspace of 16384 values, 16384 standard
normal values and the hidden layers of the 10-50-3 (N = 1000) and 20-100-5
(N = 2000) networks. The three take turns for R rounds; the figures are
medians. Then P fresh processes each make the choice, as a program's first
tanh would, and print what they chose and what the choice cost. The load
average is printed before and after: on a shared machine read the figures
with it.
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys

import numpy as np

from bench_hessian import simd_level
from sopt import _timing, tanh_table

ARRAYS = {
    "linspace(-4, 4, 16384)": lambda rng: np.linspace(-4.0, 4.0, 16384),
    "16384 normal": lambda rng: rng.standard_normal(16384),
    "1000 x 50 normal": lambda rng: rng.standard_normal((1000, 50)),
    "2000 x 100 normal": lambda rng: rng.standard_normal((2000, 100)),
}
# One fresh process: the choice as a program's first tanh makes it.
CHOICE = ("import time, numpy as np, sopt.tanh_table as f; np.tanh(np.ones(3)); "
          "t = time.perf_counter(); m = f.method(); "
          "print(m, round(1e3 * (time.perf_counter() - t), 1))")


def cpu_model() -> str:
    """The CPU's model name and whether it has AVX2 and AVX-512F (Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or "unknown"
    names = [ln.split(":", 1)[1].strip() for ln in info.splitlines()
             if ln.startswith("model name")]
    has = {flag: "yes" if flag in info.split() else "no" for flag in ("avx2", "avx512f")}
    return f"{names[0] if names else 'unknown'} (avx2 {has['avx2']}, avx512f {has['avx512f']})"


def load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def times_us(x: np.ndarray, rounds: int) -> dict:
    """Median microseconds of each tanh on x, into one given array."""
    out = np.empty_like(x)
    calls = {"np.tanh": lambda: np.tanh(x, out=out),
             "table_tanh": lambda: tanh_table.table_tanh(x, out=out),
             "tanh_table.tanh": lambda: tanh_table.tanh(x, out=out)}
    return {k: 1e6 * t for k, t in _timing.median_times(calls, rounds, max_repeat=rounds).items()}


def fresh_choices(processes: int) -> list:
    """(method, milliseconds) chosen by each of ``processes`` new processes."""
    found = []
    for _ in range(processes):
        line = subprocess.run([sys.executable, "-c", CHOICE], capture_output=True,
                              text=True, check=True).stdout.split()
        found.append((line[0], float(line[1])))
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=101)
    parser.add_argument("--choices", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"{cpu_model()}; numpy {np.__version__}, SIMD: {simd_level()}; load {load()}")
    print(f"this process chose: {tanh_table.method()}")
    rng = np.random.default_rng(0)
    print(f"{'array':24s} {'np.tanh':>9s} {'table':>9s} {'chosen':>9s}  chosen/np")
    for name, make in ARRAYS.items():
        t = times_us(make(rng), args.rounds)
        print(f"{name:24s} {t['np.tanh']:7.0f}us {t['table_tanh']:7.0f}us "
              f"{t['tanh_table.tanh']:7.0f}us  {t['tanh_table.tanh'] / t['np.tanh']:.2f}")
    for chosen, ms in fresh_choices(args.choices):
        print(f"fresh process chose {chosen} in {ms} ms")
    print(f"load {load()}")


if __name__ == "__main__":
    main()
