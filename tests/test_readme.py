"""The README's error-bar recipe runs as printed, and its band widens away
from the data as the text says."""
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _recipe() -> str:
    text = README.read_text()
    section = text[text.index("## Error bars in five lines"):]
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
