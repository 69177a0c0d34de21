"""report.md and report.json from the experiments' results."""
from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np


def _plain(value):
    """JSON-ready copy: numpy scalars and arrays to Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _cell(value) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|")      # a literal | would end the cell


def _table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    keys = list(rows[0])
    lines = ["| " + " | ".join(map(_cell, keys)) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(r.get(k, "")) for k in keys) + " |" for r in rows]
    return lines + [""]


def write_reports(results: dict, out: Path, quick: bool, seconds: float) -> None:
    """Write report.json (all numbers) and report.md (tables and figures)."""
    meta = {"quick": quick, "seconds": round(seconds, 1),
            "python": platform.python_version(), "numpy": np.__version__}
    (out / "report.json").write_text(json.dumps(_plain({"meta": meta, **results}),
                                                indent=2) + "\n")
    lines = ["# sopt reproduction report", "",
             f"{'Quick (reduced) run' if quick else 'Full run'} in {seconds:.0f} s "
             f"(Python {meta['python']}, numpy {meta['numpy']}). Seeds are fixed: "
             "a rerun gives the same numbers, except the timings.", ""]
    for name, res in results.items():
        lines += [f"## {res.get('title', name)}", ""]
        if res.get("notes"):
            lines += [res["notes"], ""]
        summary = res.get("summary", {})
        if summary:
            lines += _table([{"quantity": k, "value": v} for k, v in summary.items()])
        for title, rows in res.get("tables", {}).items():
            lines += [f"**{title}**", ""] + _table(rows)
        for fig in res.get("figures", []):
            lines += [f"![{fig}]({fig})", ""]
    (out / "report.md").write_text("\n".join(lines))
