"""The ``sopt`` command line (sopt/cli.py), the README's Quick start and the
CI script; bad arguments exit with status 2 before any work is done."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from helpers import ROOT, must_not_be_called
from sopt.cli import CHECKED_PAIRS, TOLERANCE, main

README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"


def parse_check_table(out: str) -> list[dict]:
    """Rows of the ``sopt check`` table as dicts keyed by the header."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.split()[:2] == ["output", "loss"])
    header = lines[start].split()
    assert set(lines[start + 1]) == {"-"}
    rows = []
    for line in lines[start + 2:]:
        if not line.strip():
            break
        cells = line.split()
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells)))
    return rows


def test_check_passes_with_small_errors(capsys):
    status = main(["check"])
    out = capsys.readouterr().out
    rows = parse_check_table(out)
    # every pairing, each with the gradient and the Jacobian
    assert {(r["output"], r["loss"], r["derivative"]) for r in rows} == {
        (o, l, d) for o, l in CHECKED_PAIRS for d in ("gradient", "jacobian")}
    assert len(rows) == 2 * len(CHECKED_PAIRS)
    errors = [float(r["rel.error"]) for r in rows]
    # O(eps^2) truncation and O(macheps/eps) round-off: ~1e-10 (see cli.py);
    # exactly 0 would mean the finite differences did not run
    assert all(0 < e < TOLERANCE for e in errors), errors
    assert TOLERANCE == 1e-6
    for r in rows:
        assert float(r["analytic_ms"]) > 0 and float(r["fd_ms"]) > 0
        assert r["ok"] == "ok"
    assert {r["pairing"] for r in rows} == {"canonical", "chain-rule"}
    # the network printed is non-trivial: skip edges, masks, >= 2 hidden layers
    net_line = next(line for line in out.splitlines()
                    if line.startswith("network: Network("))
    assert re.search(r"W=\d+", net_line)
    m = re.search(r"(\d+) hidden layers .*?(\d+) skip-layer, (\d+) masked", out)
    assert m and int(m[1]) >= 2 and int(m[2]) >= 1 and int(m[3]) >= 1
    assert out.rstrip().splitlines()[-1].startswith("PASS")
    assert status == 0


def test_check_fails_with_a_coarse_step(capsys):
    # eps = 0.1: O(eps^2) truncation error far above the 1e-6 threshold
    status = main(["check", "--eps", "0.1", "--patterns", "5"])
    out = capsys.readouterr().out
    errors = [float(r["rel.error"]) for r in parse_check_table(out)]
    assert max(errors) > TOLERANCE
    assert out.rstrip().splitlines()[-1].startswith("FAIL")
    assert status == 1


@pytest.mark.parametrize("argv", [["check", "--patterns", "0"],
                                  ["check", "--eps", "-1"],
                                  ["check", "--eps", "nan"],
                                  ["nosuchcommand"], []])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage: sopt" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1e-5", "-0.5", "2e3"])
def test_a_step_out_of_range_is_reported_with_the_range(value, capsys):
    """A negative step in scientific notation is a value, not an option."""
    with pytest.raises(SystemExit) as exc:
        main(["check", "--eps", value])
    assert exc.value.code == 2
    assert "expected a step in [1e-10, 1]" in capsys.readouterr().err


# slow: a fresh interpreter; the tests above run the command line fast
# through main(), which sopt/__main__.py calls
@pytest.mark.slow
def test_python_m_sopt():
    out = subprocess.run([sys.executable, "-m", "sopt", "--version"],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip().startswith("sopt ")


# ------------------------------------------------------------ README and CI

def quick_start_lines() -> list[str]:
    """Command lines of the first code block under '## Quick start'."""
    text = README.read_text()
    section = text.split("\n## Quick start\n", 1)
    assert len(section) == 2, "README needs a '## Quick start' section"
    m = re.search(r"```(\w*)\n(.*?)```", section[1], re.S)
    assert m, "no code block in Quick start"
    assert m[1] == "bash"
    return [line for line in m[2].splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_readme_quick_start_has_two_command_lines():
    lines = quick_start_lines()
    assert len(lines) == 2, lines
    assert "sopt reproduce" in lines[0]
    assert "pytest" in lines[1]
    # pytest -q on top of addopts = "-q" gives -qq, which drops the closing
    # "N passed" line that people and CI read
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text()).get(
        "tool", {}).get("pytest", {}).get("ini_options", {}).get("addopts", "")
    quiet = lambda s: s.split().count("-q")          # noqa: E731
    assert quiet(addopts) + quiet(lines[1].split("pytest", 1)[1]) <= 1


def test_ci_runs_the_readme_test_command():
    test_command = quick_start_lines()[1]
    commands = [line.strip() for line in CI_RUN.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    # the last command, so that its status is the script's exit status
    assert commands[-1] == test_command
    assert "set -euo pipefail" in commands
    assert CI_RUN.stat().st_mode & 0o111, ".ci/run must be executable"


def test_readme_example_runs(capsys):
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README needs a python example"
    exec(compile(blocks[0], str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    # exact against mixed Hessian: O(eps^2) truncation ~1e-10 relative at most
    assert float(out[0]) < 1e-8
    success, nit, gmax = out[1].split()
    assert success == "True" and int(nit) > 0 and float(gmax) <= 1e-6
    gamma, log_evidence = map(float, out[2].split())
    assert 0 < gamma < 16 and np.isfinite(log_evidence)   # W = 16 weights
    alpha, beta, gamma, log_evidence = map(float, out[3].split())
    # noise sd 0.1: beta near 100 (sampling factor ~1.5 with N - gamma ~ 40)
    assert alpha > 0 and 50 < beta < 200 and 0 < gamma < 16


@pytest.mark.slow      # runs an experiment script in a fresh interpreter
def test_bench_gradient_quick(tmp_path):
    path = tmp_path / "bench.json"
    out = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "bench_gradient.py"),
         "--quick", "--repeats", "3", "--json", str(path)],
        capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert "gradient/value" in out and "log-log slope" in out
    result = json.loads(path.read_text())
    assert [(r["D"], r["M"], r["K"], r["N"]) for r in result["ratio"]] == [
        (10, 50, 3, 1000), (2, 200, 1, 5000)]
    for r in result["ratio"]:
        assert r["W"] == r["M"] * (r["D"] + 1) + r["K"] * (r["M"] + 1)
        assert r["ratio"] > 0
    assert len(result["scaling"]["rows"]) >= 3
    assert list(tmp_path.iterdir()) == [path]      # writes nothing else


# ------------------------------------------------------- bad arguments
@pytest.mark.parametrize("argv", [["check", "--seed", "-1"], ["check", "--seed", "x"],
                                  ["check", "--eps", "1e300"], ["check", "--eps", "2"],
                                  ["check", "--eps", "1e-300"]])
def test_check_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: sopt" in err and argv[1] in err


@pytest.fixture
def no_experiment(monkeypatch):
    import sopt.experiments
    monkeypatch.setattr(sopt.experiments, "reproduce", must_not_be_called)


def test_reproduce_twice_the_same_name_is_refused(no_experiment, capsys, tmp_path):
    assert main(["reproduce", "regression", "regression", "--out", str(tmp_path)]) == 2
    assert "regression" in capsys.readouterr().err


def test_reproduce_out_is_an_existing_file(no_experiment, capsys, tmp_path):
    target = tmp_path / "report"
    target.write_text("keep me")
    assert main(["reproduce", "regression", "--out", str(target)]) == 2
    assert "--out" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_reproduce_out_not_writable(no_experiment, capsys):
    assert main(["reproduce", "regression", "--out", "/proc/sopt-results"]) == 2
    assert "--out" in capsys.readouterr().err
