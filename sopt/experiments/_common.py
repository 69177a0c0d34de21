"""What every experiment gets: where to write, whether to run the reduced
version, a progress printer, and figure saving (matplotlib, Agg backend)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Context:
    """Run settings of one experiment.

    out : directory for PNGs; quick : the reduced version (< 2 min for all);
    log : progress printer (one line per step of long work).
    """

    out: Path
    quick: bool = False
    verbose: bool = True
    started: float = field(default_factory=time.perf_counter)

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"  [{time.perf_counter() - self.started:6.1f} s] {message}", flush=True)

    def savefig(self, fig, name: str) -> str:
        """Save ``fig`` as ``out/name.png`` and close it; return the file name."""
        import matplotlib.pyplot as plt
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.log(f"wrote {path}")
        return path.name


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def script_main(module, argv=None) -> int:
    """``python experiments/NAME.py [--out DIR] [--quick]`` for one experiment."""
    from . import reproduce
    import argparse
    parser = argparse.ArgumentParser(description=module.TITLE)
    parser.add_argument("--out", default="results", help="output directory")
    parser.add_argument("--quick", action="store_true", help="reduced version")
    args = parser.parse_args(argv)
    return reproduce([module.NAME], out=args.out, quick=args.quick)


def compose(ctx, compute, plot, notes) -> dict:
    """An experiment's ``run``: ``results = compute(ctx)``, then
    ``plot(results, ctx)`` (figure file names) and ``notes(results)`` (prose).

    Returns what report.json stores: the numbers of ``compute`` ("summary",
    "tables" and the "settings" the notes quote), the figure names and the
    notes; ``results["data"]`` (arrays for the plots) stays out.
    """
    results = compute(ctx)
    out = {key: results[key] for key in ("summary", "tables", "settings")
           if key in results}
    return {**out, "figures": list(plot(results, ctx)), "notes": notes(results)}

