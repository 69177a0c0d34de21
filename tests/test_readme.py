"""The README's error-bar recipe runs as printed, and its band widens away
from the data as the text says."""
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _recipe(heading: str = "## Error bars in five lines") -> str:
    text = README.read_text()
    section = text[text.index(heading):]
    start = section.index("```python") + len("```python")
    return section[start:section.index("```", start)]


def test_error_bar_recipe_runs_and_widens_away_from_the_data():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    code = _recipe()
    assert len(code.strip().splitlines()) == 5
    scope = {}
    exec(compile(code.replace("plt.show()", "plt.close()"), "README", "exec"), scope)
    grid, std = scope["grid"][:, 0], scope["std"]
    inside, outside = np.abs(grid) <= 1.0, np.abs(grid) >= 1.4
    assert std[outside].min() > 2 * np.median(std[inside])


# slow: the example trains a 1,413-weight network on 1,000 patterns; the
# error-bar recipe above checks fast that the README's code runs as printed,
# and tests/bayes/test_structures.py checks K-FAC's evidence fixed point
@pytest.mark.slow
def test_structure_example_runs_and_moves_alpha_to_the_evidence_fixed_point():
    scope = {}
    exec(compile(_recipe("## Large networks: posterior structures"), "README", "exec"), scope)
    post, proba = scope["post"], scope["proba"]
    assert post.structure == "kfac" and proba.shape == (5, 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    w = post.w_map
    # MacKay's fixed point alpha = gamma / |w|^2 at the end of optimize_prior
    assert abs(post.alpha[0] * (w @ w) - post.gamma) < 1e-5 * post.gamma
    assert post.alpha[0] != 1.0
