"""Command-line interface: ``sopt <command>`` (also ``python -m sopt``).

Commands
--------
check
    Backpropagated derivatives against central differences on a random
    feed-forward DAG (skip-layer connections, masks, mixed activations), for
    canonical and non-canonical output/loss pairings. Exit status 0 if every
    relative error is below :data:`TOLERANCE`, 1 otherwise.
reproduce
    The textbook experiments of :mod:`sopt.experiments` (figures,
    ``report.md`` and ``report.json``); exit status 2 for an unknown
    experiment name or an output folder that cannot be written.

New commands register themselves in :data:`COMMANDS` (name -> function that
adds its subparser and sets ``func``), so ``main`` never changes.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__, finite_diff
from ._deprecation import renamed_attributes
from ._timing import median_time
from .allocator import tune_allocator
from .network import Network
from .objective import Objective
from .testing import SMOOTH_HIDDEN, random_network, random_targets, rel_err

# Pass/fail threshold on ||analytic - fd|| / ||fd||. Central differences with
# the default step h ~ macheps^(1/3) ~ 6e-6 have truncation error
# h^2 f'''/6 = O(h^2) ~ 4e-11 and round-off O(macheps |f| / h) ~ 4e-11
# (relative), so correct backpropagation agrees to ~1e-10; a wrong term,
# sign or mask gives errors of order 1. 1e-6 leaves four decades of margin
# both ways. A user-chosen --eps of 1e-3 already has O(eps^2) = 1e-6
# truncation and may fail: that is the step's fault, not the derivative's.
TOLERANCE = 1e-6

# The (output activation, loss) pairs ``check`` exercises: the three
# canonical pairs (delta = y - t) and one that goes through the general
# chain rule at the output layer.
CHECKED_PAIRS = (("identity", "sse"), ("logistic", "binary_ce"),
            ("softmax", "softmax_ce"), ("logistic", "sse"))

# Default random topology of ``check``: seed 2 draws 3 hidden layers of 3
# different activations (logistic, softplus, tanh) and 8 edges, 4 of them
# skip-layer connections and 7 of them masked.
CHECK_SEED = 2
CHECK_TOPOLOGY = dict(n_inputs=3, n_hidden_layers=3, max_units=5, n_outputs=3,
                      hidden=SMOOTH_HIDDEN, skip_prob=0.5, mask_prob=0.5)


# ------------------------------------------------------------------ helpers

def _integer(low: int):
    """argparse type: an integer >= low."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, "
                                             f"got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, "
                                             f"got {value}")
        return value
    return parse


_positive_int = _integer(1)

# Range of a user-chosen --eps: below 1e-10 the round-off macheps |f| / eps
# of a central difference is already above TOLERANCE (and the step can round
# to 0 at a weight of order 1); above 1 the difference is no longer local
# (truncation eps^2 f^(3) / 6 of the order of f) and the perturbed inputs
# can overflow.
EPS_RANGE = (1e-10, 1.0)


def _step(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    low, high = EPS_RANGE
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected a step in [{low:g}, {high:g}], "
                                         f"got {value:g}")
    return value


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
    for output, loss in CHECKED_PAIRS:
        # n_outputs is given, so the seed draws the same DAG for every output
        net = random_network(seed, output=output, **CHECK_TOPOLOGY)
        first = first or net
        rng = np.random.default_rng([seed, 1])
        w = net.init_weights(seed=rng)
        X = rng.standard_normal((n_patterns, net.n_inputs))
        T = random_targets(rng, n_patterns, net.n_outputs, loss)
        obj = Objective(net, X, T, loss=loss)
        canonical = obj.output_loss.canonical

        # obj.at(w) is a new evaluation: each timed gradient runs the whole
        # forward and backward pass
        g = obj.gradient(w)
        g_fd = finite_diff.gradient(obj.value, w, eps)
        t_g = median_time(lambda r: obj.at(w).gradient(), repeats)
        t_gfd = median_time(lambda r: finite_diff.gradient(obj.value, w, eps),
                             max(1, repeats // 2))

        f = lambda Z: net.forward(w, Z)          # noqa: E731
        J = net.jacobian(w, X)
        J_fd = finite_diff.rowwise_jacobian(f, X, eps)
        t_j = median_time(lambda r: net.jacobian(w, X), repeats)
        t_jfd = median_time(lambda r: finite_diff.rowwise_jacobian(f, X, eps),
                             repeats)

        for name, a, fd, ta, tf in (("gradient", g, g_fd, t_g, t_gfd),
                                    ("jacobian", J, J_fd, t_j, t_jfd)):
            rows.append(dict(output=output, loss=loss, canonical=canonical,
                             derivative=name, error=rel_err(a, fd),
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
    p.add_argument("--seed", type=_integer(0), default=CHECK_SEED,
                   help=f"seed of the random network and data "
                   f"(default {CHECK_SEED})")
    p.add_argument("--patterns", type=_positive_int, default=50, metavar="N",
                   help="number of random input patterns (default 50)")
    p.add_argument("--eps", type=_step, default=None,
                   help=f"central-difference step in [{EPS_RANGE[0]:g}, "
                   f"{EPS_RANGE[1]:g}] (default: macheps^(1/3) scaled by "
                   "max(1, |x|))")
    p.set_defaults(func=run_check)


def _bad_names(names: list, known) -> str | None:
    """Why the experiment names cannot be run, or None."""
    unknown = [n for n in names if n not in known]
    if unknown:
        return (f"unknown experiment(s) {', '.join(unknown)}; "
                f"choose from {', '.join(known)}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        return f"experiment(s) given more than once: {', '.join(twice)}"
    return None


def _unwritable(out: str) -> str | None:
    """Why the results cannot be written into directory ``out``, or None
    (creating it): checked before any experiment runs."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        return f"--out {out}: exists and is not a directory; give a directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        return (f"--out {out}: cannot write there ({err.strerror or err}); "
                "give a writable directory")
    return None


def run_reproduce(args: argparse.Namespace) -> int:
    from .experiments import NAMES, reproduce
    problem = _bad_names(args.names, NAMES) or _unwritable(args.out)
    if problem:
        print(f"sopt reproduce: {problem}", file=sys.stderr)
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
                   help="experiments to run (default: all); a name given "
                   "twice is an error (exit status 2)")
    p.add_argument("--out", default="results", metavar="DIR",
                   help="output directory, created if needed and checked "
                   "writable before anything runs (default results/)")
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


def _join_negative_numbers(argv: list[str]) -> list[str]:
    """``--eps -1e-5`` as ``--eps=-1e-5``: argparse takes a token in
    scientific notation with a leading minus for an option and would report
    a missing value instead of the range the value must lie in."""
    out = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _is_number(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return token.startswith("-")


def main(argv: list[str] | None = None) -> int:
    """Run ``sopt`` with ``argv`` (default sys.argv[1:]); return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(_join_negative_numbers(argv))
    tune_allocator()        # our own process: keep numpy's temporaries cheap
    try:
        return args.func(args)
    except BrokenPipeError:     # e.g. ``sopt check | head``: stop quietly
        sys.stderr.close()
        return 1


__getattr__ = renamed_attributes(__name__, {"PAIRINGS": "CHECKED_PAIRS"})


if __name__ == "__main__":
    sys.exit(main())

