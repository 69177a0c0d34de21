"""The experiments behind ``sopt reproduce``: each module has NAME, TITLE and
``run(ctx) -> dict`` (numbers under "summary" and "tables", the settings the
prose quotes under "settings", PNG names under "figures", prose under
"notes"); ``experiments/NAME.py`` runs one alone.

``run`` is ``_common.compose`` of three parts: ``compute(ctx)`` returns the
results (the numbers, plus arrays for the plots under "data"),
``plot(results, ctx)`` draws them, and ``notes(results)`` writes the prose
from the numbers alone, so ``notes`` applied to report.json gives the stored
prose again (tests/experiments/test_reproduce.py)."""
from __future__ import annotations

import importlib
import time
from pathlib import Path

from ._common import Context

#: run order; names are module names in this package
NAMES = ("regression", "classification", "derivatives", "training",
         "bayes_regression", "bayes_classification", "bayes_sampling")


def load(name: str):
    if name not in NAMES:
        raise ValueError(f"experiment: unknown {name!r}; expected some of {NAMES}")
    return importlib.import_module(f"{__name__}.{name}")


def reproduce(names=None, out="results", quick: bool = False,
              verbose: bool = True) -> int:
    """Run the experiments ``names`` (default: all), writing one PNG per
    figure and report.md / report.json into ``out``. Returns 0."""
    from ._report import write_reports
    names = list(names or NAMES)
    modules = [load(n) for n in names]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = {}
    for i, module in enumerate(modules, 1):
        if verbose:
            print(f"[{i}/{len(modules)}] {module.TITLE}", flush=True)
        ctx = Context(out=out, quick=quick, verbose=verbose)
        result = module.run(ctx)
        result.setdefault("title", module.TITLE)
        result["seconds"] = round(time.perf_counter() - ctx.started, 1)
        results[module.NAME] = result
    seconds = time.perf_counter() - start
    write_reports(results, out, quick, seconds)
    if verbose:
        print(f"done in {seconds:.0f} s: {out / 'report.md'}, {out / 'report.json'}")
    return 0
