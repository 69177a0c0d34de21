"""sopt.fastmath: the table method against numpy's np.tanh, and the choice
between them."""
import time

import numpy as np
import pytest

import sopt.fastmath as fastmath
from sopt.fastmath import table_tanh

# Each step before the final (T + u) / (1 + T u) is exact and the Taylor
# remainder is 2^-57 relative, so the result carries the rounding of five
# operations on values of the same sign: a few ulp (measured 3; see module).
MAX_ULP = 4


def tanh(x):
    """The table method at every size and shape (fastmath.tanh sends small
    arrays and scalars to np.tanh, and on some machines all arrays)."""
    x = np.asarray(x, dtype=float)
    return table_tanh(x.reshape(-1)).reshape(x.shape)


@pytest.fixture
def choice(monkeypatch):
    """A fresh choice of method (none made yet), restored afterwards."""
    monkeypatch.setattr(fastmath, "_chosen", None)
    monkeypatch.delenv(fastmath.ENV, raising=False)
    return monkeypatch


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


def test_sign_of_zero_is_kept():
    x = np.zeros(3000)
    x[::2] = -0.0
    assert np.array_equal(np.signbit(table_tanh(x)), np.signbit(x))
    assert np.signbit(tanh(-0.0)) and not np.signbit(tanh(0.0))


@pytest.mark.parametrize("forced", ["numpy", "table", " Table "])
def test_environment_forces_the_method(choice, forced):
    choice.setenv(fastmath.ENV, forced)
    choice.setattr(fastmath, "_measure", lambda: pytest.fail("measured"))
    assert fastmath.method() == forced.strip().lower()
    y = np.random.default_rng(3).standard_normal(4096) * 3
    expected = np.tanh(y) if fastmath.method() == "numpy" else table_tanh(y)
    np.testing.assert_array_equal(fastmath.tanh(y), expected)
    assert not np.array_equal(np.tanh(y), table_tanh(y))     # they differ here


def test_unknown_environment_value_is_an_error(choice):
    choice.setenv(fastmath.ENV, "fast")
    with pytest.raises(ValueError, match="SOPT_TANH"):
        fastmath.method()


def test_measured_once_and_kept(choice):
    calls = []
    choice.setattr(fastmath, "_measure", lambda: calls.append(1) or "table")
    y = np.random.default_rng(5).standard_normal(4096)
    fastmath.tanh(y[:10])                     # small: no choice needed
    assert calls == []
    fastmath.tanh(y)
    fastmath.tanh(y)
    assert calls == [1] and fastmath.method() == "table"


def test_fastest_picks_the_faster_function():
    slow = lambda x: time.sleep(2e-3) or x
    assert fastmath.fastest({"slow": slow, "fast": np.negative}, np.ones(4)) == "fast"
    assert fastmath.fastest({"fast": np.negative, "slow": slow}, np.ones(4)) == "fast"
    assert fastmath._measure() in fastmath.METHODS


def test_small_arrays_use_libm(choice):
    choice.setenv(fastmath.ENV, "table")
    x = np.random.default_rng(4).standard_normal(fastmath.SMALL - 1) * 3
    np.testing.assert_array_equal(fastmath.tanh(x), np.tanh(x))
    y = np.random.default_rng(4).standard_normal(fastmath.SMALL) * 3
    assert not np.array_equal(fastmath.tanh(y), np.tanh(y))     # the table method
    assert ulp_error(fastmath.tanh(y), np.tanh(y)).max() <= MAX_ULP
