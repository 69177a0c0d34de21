"""Command-line interface: ``sopt <command>`` (also ``python -m sopt``).

Commands
--------
check
    Backpropagated derivatives against central differences on a random
    feed-forward DAG (skip-layer connections, masks, mixed activations), for
    canonical and non-canonical output/loss pairings. Exit status 0 if every
    relative error is below :data:`TOLERANCE`, 1 otherwise.

New commands register themselves in :data:`COMMANDS` (name -> function that
adds its subparser and sets ``func``), so ``main`` never changes.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

import numpy as np

from . import __version__, finite_diff
from .allocator import tune_allocator
from .losses import get_loss
from .network import Network
from .objective import Objective
from .testing import SMOOTH_HIDDEN, random_network, random_targets

# Pass/fail threshold on ||analytic - fd|| / ||fd||. Central differences with
# the default step h ~ macheps^(1/3) ~ 6e-6 have truncation error
# h^2 f'''/6 = O(h^2) ~ 4e-11 and round-off O(macheps |f| / h) ~ 4e-11
# (relative), so correct backpropagation agrees to ~1e-10; a wrong term,
# sign or mask gives errors of order 1. 1e-6 leaves four decades of margin
# both ways. A user-chosen --eps of 1e-3 already has O(eps^2) = 1e-6
# truncation and may fail: that is the step's fault, not the derivative's.
TOLERANCE = 1e-6

# Output activation / loss pairings exercised by ``check``: the three
# canonical pairs (delta = y - t) and one that goes through the general
# chain rule at the output layer.
PAIRINGS = (("identity", "sse"), ("logistic", "binary_ce"),
            ("softmax", "softmax_ce"), ("logistic", "sse"))

# Default random topology of ``check``: seed 2 draws 3 hidden layers of 3
# different activations (logistic, softplus, tanh) and 8 edges, 4 of them
# skip-layer connections and 7 of them masked.
CHECK_SEED = 2
CHECK_TOPOLOGY = dict(n_inputs=3, n_hidden_layers=3, max_units=5, n_outputs=3,
                      hidden=SMOOTH_HIDDEN, skip_prob=0.5, mask_prob=0.5)


# ------------------------------------------------------------------ helpers

def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, "
                                         f"got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, "
                                         f"got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, "
                                         f"got {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, "
                                         f"got {value}")
    return value


def _median_time(fn: Callable[[int], object], repeats: int) -> float:
    """Median wall time in seconds of fn(r) over r = 0 .. repeats-1."""
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        fn(r)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _rel_error(analytic: np.ndarray, fd: np.ndarray) -> float:
    """Norm-wise ||analytic - fd|| / ||fd||."""
    return float(np.linalg.norm(analytic - fd)
                 / max(np.linalg.norm(fd), np.finfo(float).tiny))


def describe(net: Network) -> str:
    """One line on the topology: hidden layers, skip edges, masks."""
    hidden = net.layers[:-1]
    edges = [(layer, src, m) for layer in net.layers
             for src, m in zip(layer.sources, layer.masks)]
    skips = sum(src.index != layer.node.index - 1 for layer, src, _ in edges)
    masked = [(m.size, int(m.size - m.sum())) for _, _, m in edges
              if m is not None]
    acts = sorted({layer.activation.name for layer in hidden})
    return (f"{len(hidden)} hidden layers ({', '.join(acts)}), "
            f"{len(edges)} edges of which {skips} skip-layer, "
            f"{len(masked)} masked ({sum(r for _, r in masked)} of "
            f"{sum(s for s, _ in masked)} connections removed)")


# ------------------------------------------------------------------- check

def check_rows(seed: int = CHECK_SEED, n_patterns: int = 50,
               eps: float | None = None, repeats: int = 5) -> tuple[list, Network]:
    """Errors and timings of every (pairing, derivative) of ``sopt check``.

    Returns (rows, net) where each row is a dict with keys output, loss,
    canonical, derivative ("gradient" or "jacobian"), error, analytic_ms,
    fd_ms, and net is the network of the first pairing (all pairings share
    its topology and weights; only the output activation differs).
    """
    rows, first = [], None
    for output, loss in PAIRINGS:
        # n_outputs is given, so the seed draws the same DAG for every output
        net = random_network(seed, output=output, **CHECK_TOPOLOGY)
        first = first or net
        rng = np.random.default_rng([seed, 1])
        w = net.init_weights(seed=rng)
        X = rng.standard_normal((n_patterns, net.n_inputs))
        T = random_targets(rng, n_patterns, net.n_outputs, loss)
        obj = Objective(net, X, T, loss=loss)
        canonical = get_loss(loss).canonical == output

        # The objective caches its last forward pass: alternate two weight
        # vectors so that every timed gradient runs the whole forward pass.
        ws = (w, w + 1e-3 * rng.standard_normal(w.shape))
        g = obj.gradient(w)
        g_fd = finite_diff.gradient(obj.value, w, eps)
        t_g = _median_time(lambda r: obj.gradient(ws[r % 2]), repeats)
        t_gfd = _median_time(lambda r: finite_diff.gradient(obj.value, w, eps),
                             max(1, repeats // 2))

        f = lambda Z: net.forward(w, Z)          # noqa: E731
        J = net.jacobian(w, X)
        J_fd = finite_diff.rowwise_jacobian(f, X, eps)
        t_j = _median_time(lambda r: net.jacobian(w, X), repeats)
        t_jfd = _median_time(lambda r: finite_diff.rowwise_jacobian(f, X, eps),
                             repeats)

        for name, a, fd, ta, tf in (("gradient", g, g_fd, t_g, t_gfd),
                                    ("jacobian", J, J_fd, t_j, t_jfd)):
            rows.append(dict(output=output, loss=loss, canonical=canonical,
                             derivative=name, error=_rel_error(a, fd),
                             analytic_ms=1e3 * ta, fd_ms=1e3 * tf))
    return rows, first


HEADER = ("output", "loss", "pairing", "derivative", "rel.error",
          "analytic_ms", "fd_ms", "fd/analytic", "ok")


def format_table(rows: list) -> list[str]:
    """Aligned text table of check_rows, one line per row, with a header."""
    cells = [HEADER] + [(
        r["output"], r["loss"], "canonical" if r["canonical"] else "chain-rule",
        r["derivative"], f"{r['error']:.2e}", f"{r['analytic_ms']:.3f}",
        f"{r['fd_ms']:.3f}", f"{r['fd_ms'] / max(r['analytic_ms'], 1e-9):.1f}x",
        "ok" if r["error"] < TOLERANCE else "FAIL") for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    left = 4      # text columns left-aligned, numbers right-aligned
    lines = []
    for c in cells:
        lines.append("  ".join(s.ljust(wd) if i < left else s.rjust(wd)
                               for i, (s, wd) in enumerate(zip(c, widths))).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return lines


def run_check(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    rows, net = check_rows(args.seed, args.patterns, args.eps)
    step = (f"{args.eps:g}" if args.eps is not None else
            f"default macheps^(1/3)*max(1,|w_i|) = "
            f"{finite_diff.FIRST_DIFF_STEP:.1e}")
    print(f"sopt {__version__} check: seed {args.seed}, N = {args.patterns} "
          f"patterns, central-difference step {step}")
    print(f"network: {net!r}")
    print(f"  {describe(net)};")
    print("  same DAG and weights for every row, output activation as listed")
    print("errors: ||analytic - fd|| / ||fd||; gradient: backprop vs "
          "finite_diff.gradient,\n        jacobian: net.jacobian vs "
          "finite_diff.rowwise_jacobian; times: median ms")
    print()
    for line in format_table(rows):
        print(line)
    print()
    worst = max(r["error"] for r in rows)
    n_bad = sum(r["error"] >= TOLERANCE for r in rows)
    verdict = "PASS" if n_bad == 0 else "FAIL"
    print(f"{verdict}: {len(rows) - n_bad} of {len(rows)} relative errors below "
          f"{TOLERANCE:g} (worst {worst:.2e}) in "
          f"{time.perf_counter() - start:.1f} s")
    return 0 if n_bad == 0 else 1


def _add_check(subparsers) -> None:
    p = subparsers.add_parser(
        "check", help="check backprop derivatives against finite differences",
        description="Compare the backpropagated gradient and input Jacobian "
        "of a random feed-forward DAG with central differences, for several "
        f"output/loss pairings. Exit status 0 if every relative error is "
        f"below {TOLERANCE:g}, 1 otherwise.")
    p.add_argument("--seed", type=int, default=CHECK_SEED,
                   help=f"seed of the random network and data "
                   f"(default {CHECK_SEED})")
    p.add_argument("--patterns", type=_positive_int, default=50, metavar="N",
                   help="number of random input patterns (default 50)")
    p.add_argument("--eps", type=_positive_float, default=None,
                   help="central-difference step (default: macheps^(1/3) "
                   "scaled by max(1, |x|))")
    p.set_defaults(func=run_check)


def run_reproduce(args: argparse.Namespace) -> int:
    from .experiments import NAMES, reproduce
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        print(f"sopt reproduce: unknown experiment(s) {', '.join(unknown)}; "
              f"choose from {', '.join(NAMES)}", file=sys.stderr)
        return 2
    return reproduce(args.names, out=args.out, quick=args.quick)


def _add_reproduce(subparsers) -> None:
    from .experiments import NAMES
    p = subparsers.add_parser(
        "reproduce", help="run the experiments: figures, report.md, report.json",
        description="Run the experiment scripts (default: all of them), "
        "writing one PNG per figure plus report.md and report.json into "
        "--out. Seeds are fixed. Experiments: " + ", ".join(NAMES) + ".")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="experiments to run (default: all)")
    p.add_argument("--out", default="results", metavar="DIR",
                   help="output directory (default results/)")
    p.add_argument("--quick", action="store_true",
                   help="reduced version of every experiment (< 2 minutes)")
    p.set_defaults(func=run_reproduce)


# name -> function adding the subcommand's parser (and its ``func``)
COMMANDS: dict[str, Callable] = {"check": _add_check, "reproduce": _add_reproduce}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sopt", description="sopt: exact first and second derivatives "
        "of feed-forward neural networks.")
    parser.add_argument("--version", action="version",
                        version=f"sopt {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True,
                                       metavar="COMMAND")
    for add in COMMANDS.values():
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``sopt`` with ``argv`` (default sys.argv[1:]); return the exit status."""
    args = build_parser().parse_args(argv)
    tune_allocator()        # our own process: keep numpy's temporaries cheap
    try:
        return args.func(args)
    except BrokenPipeError:     # e.g. ``sopt check | head``: stop quietly
        sys.stderr.close()
        return 1


if __name__ == "__main__":
    sys.exit(main())
