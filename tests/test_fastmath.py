"""sopt.fastmath.tanh against the C library's tanh (numpy's np.tanh)."""
import numpy as np
import pytest

import sopt.fastmath as fastmath
from sopt.fastmath import tanh

# Each step before the final (T + u) / (1 + T u) is exact and the Taylor
# remainder is 2^-57 relative, so the result carries the rounding of five
# operations on values of the same sign: a few ulp (measured 3; see module).
MAX_ULP = 4


@pytest.fixture(autouse=True)
def table_method_at_every_size(monkeypatch):
    """Small arrays go to np.tanh; the tests here are about the table method."""
    monkeypatch.setattr(fastmath, "SMALL", 0)


def ulp_error(got, ref):
    return np.abs(got - ref) / np.spacing(np.abs(ref))


@pytest.mark.parametrize("scale", [1e-300, 1e-8, 1e-3, 0.1, 1.0, 3.0, 10.0, 1e3])
def test_within_a_few_ulp_of_libm(scale):
    x = np.random.default_rng(0).standard_normal(200_000) * scale
    assert ulp_error(tanh(x), np.tanh(x)).max() <= MAX_ULP


def test_grid_points_and_the_clipping_limit():
    # grid points (r = 0), midpoints (|r| = 2^-9, the largest remainder) and
    # the neighbourhood of the clip at |x| = 20
    x = np.concatenate([np.arange(-5000, 5001) / 256, (np.arange(-5000, 5000) + 0.5) / 256,
                        np.linspace(19.5, 20.5, 1001), -np.linspace(19.5, 20.5, 1001)])
    assert ulp_error(tanh(x), np.tanh(x)).max() <= MAX_ULP


def test_extremes():
    x = np.array([0.0, 5e-324, -5e-324, 1e300, -1e300, np.inf, -np.inf, 800.0, -800.0])
    np.testing.assert_array_equal(tanh(x), [0.0, 5e-324, -5e-324, 1, -1, 1, -1, 1, -1])
    out = tanh(np.array([np.nan, 0.5]))
    assert np.isnan(out[0]) and out[1] == pytest.approx(np.tanh(0.5), rel=1e-15)


def test_no_warnings_on_extremes():
    with np.errstate(all="raise"):
        tanh(np.array([np.nan, np.inf, -np.inf, 1e308, -1e308]))


def test_shapes_scalars_and_layouts():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((30, 7))
    assert tanh(A).shape == (30, 7)
    np.testing.assert_allclose(tanh(A.T), np.tanh(A.T), rtol=1e-15, atol=0)
    np.testing.assert_allclose(tanh(A[::2, 1:]), np.tanh(A[::2, 1:]), rtol=1e-15, atol=0)
    assert tanh(0.5) == pytest.approx(np.tanh(0.5), rel=1e-15)
    assert tanh([0.25, -0.25]).tolist() == pytest.approx(np.tanh([0.25, -0.25]), rel=1e-15)
    assert tanh(np.empty((0, 3))).shape == (0, 3)


def test_input_is_not_modified():
    x = np.random.default_rng(2).standard_normal(1000) * 30
    before = x.copy()
    tanh(x)
    np.testing.assert_array_equal(x, before)



def test_small_arrays_use_libm(monkeypatch):
    monkeypatch.setattr(fastmath, "SMALL", 2048)
    x = np.random.default_rng(4).standard_normal(2047) * 3
    np.testing.assert_array_equal(tanh(x), np.tanh(x))
    y = np.random.default_rng(4).standard_normal(2048) * 3
    assert not np.array_equal(tanh(y), np.tanh(y))     # the table method
    assert ulp_error(tanh(y), np.tanh(y)).max() <= MAX_ULP
