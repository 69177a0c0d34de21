"""Fixtures of the experiment and command-line tests (tests/experiments/)."""
import json

import pytest


@pytest.fixture(scope="session")
def quick_reproduction(tmp_path_factory):
    """``sopt reproduce --quick`` run once for the whole session, as a user
    runs it: returns the output folder and the parsed report.json."""
    from sopt.cli import main
    out = tmp_path_factory.mktemp("reproduce")
    assert main(["reproduce", "--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "report.json").read_text())
