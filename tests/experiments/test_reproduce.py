"""``sopt reproduce --quick`` end to end: every experiment ran, wrote its
figures and put its numbers in report.json and report.md (the numbers
themselves are checked in tests/experiments/test_experiments_*.py on the same
run)."""
import json

import pytest

from sopt.cli import main
from sopt.experiments import NAMES, load

pytestmark = pytest.mark.slow     # runs sopt's experiments

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_has_every_experiment(quick_reproduction):
    out, report = quick_reproduction
    assert report["meta"]["quick"] is True
    assert set(NAMES) <= set(report)
    md = (out / "report.md").read_text()
    for name in NAMES:
        result = report[name]
        assert result["title"] in md
        assert result["figures"], name
        for fig in result["figures"]:
            assert (out / fig).read_bytes()[:8] == PNG_MAGIC
            assert f"]({fig})" in md
        for key, value in result["summary"].items():
            assert isinstance(value, (int, float)), (name, key)


def test_reproduce_is_deterministic_apart_from_timings(quick_reproduction, tmp_path):
    """Fixed seeds: rerunning one experiment gives the same numbers."""
    _, report = quick_reproduction
    assert main(["reproduce", "regression", "--quick", "--out", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "report.json").read_text())["regression"]
    assert again["summary"] == report["regression"]["summary"]


def test_unknown_experiment_is_refused(capsys):
    assert main(["reproduce", "nonsense"]) == 2
    assert "unknown experiment" in capsys.readouterr().err


@pytest.mark.parametrize("name", NAMES)
def test_notes_are_made_from_the_reported_numbers(quick_reproduction, name):
    """notes(results) reads only what report.json holds (summary, tables,
    settings): formatting the parsed report again gives the same prose, so
    no finding in it can go stale when the numbers change."""
    _, report = quick_reproduction
    result = report[name]
    assert load(name).notes(result) == result["notes"]

