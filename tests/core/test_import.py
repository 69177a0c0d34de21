"""What ``import sopt`` costs: no scikit-learn, dask or matplotlib until a
part that needs them is used.

One fresh interpreter serves every test here (each start of Python with
numpy and scipy costs about a second of CPU): it imports sopt's modules,
prints what is loaded, then loads a file holding an estimator and prints
what is loaded again."""
import subprocess
import sys

import pytest

from helpers import DATA

HEAVY = ("sklearn", "dask", "distributed", "matplotlib")


def _loaded_modules(code: str) -> list:
    """Run ``code`` in a fresh interpreter; ``code`` calls ``dump()`` to print
    the names in sys.modules on one line. Returns one set per ``dump()``."""
    prelude = "import sys\ndef dump():\n    print(' '.join(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", prelude + code],
                         capture_output=True, text=True, check=True)
    return [set(line.split()) for line in out.stdout.splitlines()]


@pytest.fixture(scope="module")
def loaded():
    """{'sopt': modules after ``import sopt``, 'import': after importing
    sopt's public modules, 'load': after also loading a file holding a
    regressor}."""
    fixture = DATA / "format2.sopt"
    after_sopt, after_import, after_load = _loaded_modules(
        "import sopt\ndump()\n"
        "import sopt.bayes, sopt.optimize, sopt.spectral\ndump()\n"
        f"m = sopt.load({str(fixture)!r})\n"
        "assert type(m['regressor']).__name__ == 'BayesianMLPRegressor'\ndump()\n")
    return {"sopt": after_sopt, "import": after_import, "load": after_load}


def test_import_sopt_loads_only_the_core(loaded):
    """``import sopt`` gives the network, objective and derivatives; the
    subpackages and the heavy parts of scipy (each 0.2-0.4 s of import)
    come with the first use of what needs them."""
    assert "sopt.objective" in loaded["sopt"]
    for lazy in ("sopt.bayes", "sopt.optimize", "sopt.spectral", "scipy.optimize",
                 "scipy.special", "scipy.sparse", "scipy.stats"):
        assert lazy not in loaded["sopt"], lazy


def test_import_sopt_imports_no_heavy_dependency(loaded):
    assert "sopt.bayes" in loaded["import"]      # the probe did import them
    for heavy in HEAVY:
        assert heavy not in loaded["import"], heavy


def test_importing_spectral_does_not_import_matplotlib(loaded):
    assert "sopt.spectral" in loaded["import"]
    assert "matplotlib" not in loaded["import"]


def test_a_file_holding_an_estimator_imports_scikit_learn_on_load(loaded):
    """Its class is registered by the estimators' module, imported when the
    file names it."""
    assert "sklearn" in loaded["load"]
