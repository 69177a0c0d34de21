"""What ``import sopt`` costs: no scikit-learn, dask or matplotlib until a
part that needs them is used."""
import subprocess
from pathlib import Path
import sys

from helpers import DATA


def _modules_after(code: str) -> set:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\n"
                          "print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_sopt_imports_no_heavy_dependency():
    loaded = _modules_after("import sopt, sopt.bayes, sopt.optimize")
    for heavy in ("sklearn", "dask", "distributed", "matplotlib"):
        assert heavy not in loaded, heavy


def test_a_file_holding_an_estimator_imports_scikit_learn_on_load():
    """Its class is registered by the estimators' module, imported when the
    file names it."""
    fixture = DATA / "format2.sopt"
    loaded = _modules_after(f"import sopt\nm = sopt.load({str(fixture)!r})\n"
                            "assert type(m['regressor']).__name__ == 'BayesianMLPRegressor'")
    assert "sklearn" in loaded
