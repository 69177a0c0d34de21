"""sopt.tanh_table: the table method against numpy's np.tanh, and the choice
between them."""
import threading
import time
import tracemalloc

import numpy as np
import pytest

import sopt.tanh_table as tanh_table
from sopt import _timing
from sopt.tanh_table import table_tanh

# Each step before the final (T + u) / (1 + T u) is exact and the Taylor
# remainder is 2^-57 relative, so the result carries the rounding of five
# operations on values of the same sign: a few ulp of the true tanh
# (measured 2.8, on every x86-64 CPU alike; see the module).
MAX_ULP = 4


def tanh(x):
    """The table method at every size and shape (tanh_table.tanh sends small
    arrays and scalars to np.tanh, and on some machines all arrays)."""
    x = np.asarray(x, dtype=float)
    return table_tanh(x.reshape(-1)).reshape(x.shape)


@pytest.fixture
def choice(monkeypatch):
    """A fresh choice of method (none made yet), restored afterwards."""
    monkeypatch.setattr(tanh_table, "_chosen", None)
    monkeypatch.delenv(tanh_table.ENV, raising=False)
    return monkeypatch


def ulp_error(got, x):
    """|got - tanh(x)| in units of the last place of float64 tanh(x), the
    reference in long double: 11 bits more than float64 on x86-64, so that
    the bound holds against the true tanh, whatever the machine's float64
    np.tanh (SIMD loops or libm, which differ by 1-2 ulp between CPUs)."""
    ref = np.tanh(np.asarray(x, dtype=np.longdouble))
    spacing = np.spacing(np.abs(ref.astype(np.float64))).astype(np.longdouble)
    return (np.abs(got.astype(np.longdouble) - ref) / spacing).astype(np.float64)


@pytest.mark.parametrize("scale", [1e-300, 1e-8, 1e-3, 0.1, 1.0, 3.0, 10.0, 1e3])
def test_within_a_few_ulp_of_the_true_tanh(scale):
    x = np.random.default_rng(0).standard_normal(200_000) * scale
    assert ulp_error(tanh(x), x).max() <= MAX_ULP


def test_grid_points_and_the_clipping_limit():
    # grid points (r = 0), midpoints (|r| = 2^-9, the largest remainder) and
    # the neighbourhood of the clip at |x| = 20
    x = np.concatenate([np.arange(-5000, 5001) / 256, (np.arange(-5000, 5000) + 0.5) / 256,
                        np.linspace(19.5, 20.5, 1001), -np.linspace(19.5, 20.5, 1001)])
    assert ulp_error(tanh(x), x).max() <= MAX_ULP


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


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 1000 values, so that tiny arrays span several."""
    monkeypatch.setattr(tanh_table, "BLOCK", 1000)
    monkeypatch.setattr(tanh_table, "_local", threading.local())


def test_blocks_give_the_same_values_as_one_block(small_blocks):
    x = np.random.default_rng(6).standard_normal((7, 450)) * 4     # 3150 values
    x[0, :3] = [-0.0, np.nan, -np.inf]
    whole = np.array([table_tanh(row) for row in x.reshape(-1, 450)]).reshape(x.shape)
    got = table_tanh(x)
    assert np.array_equal(got, whole, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(whole))
    assert ulp_error(got[1:], x[1:]).max() <= MAX_ULP


def test_out_in_place_and_overlapping(small_blocks):
    x = np.random.default_rng(7).standard_normal(2500) * 3
    expected = table_tanh(x)
    out = np.full_like(x, 7.0)
    assert table_tanh(x, out=out) is out and np.array_equal(out, expected)
    y = x.copy()
    assert table_tanh(y, out=y) is y and np.array_equal(y, expected)
    z = np.concatenate([[0.0], x])        # out one value before x, overlapping
    table_tanh(z[1:], out=z[:-1])
    assert np.array_equal(z[:-1], expected)
    F = np.asfortranarray(x.reshape(50, 50))                  # a strided out
    table_tanh(x.reshape(50, 50), out=F)
    assert np.array_equal(F, expected.reshape(50, 50))


def test_no_fresh_memory_beyond_the_result(small_blocks):
    x = np.random.default_rng(8).standard_normal(10_000)
    out = np.empty_like(x)
    table_tanh(x, out=out)                # makes this thread's work arrays
    peaks = []
    # tracemalloc also counts other threads' allocations (a worker left by an
    # earlier test); the least of three peaks is this call's own
    for _ in range(3):
        tracemalloc.start()
        try:
            table_tanh(x, out=out)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert min(peaks) < x.nbytes / 4      # unblocked: four x-sized arrays


def test_each_thread_has_its_own_work_arrays(small_blocks):
    found = []
    threads = [threading.Thread(target=lambda: found.append(tanh_table._work()))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first, second = found
    assert not any(np.shares_memory(u, v) for u in first for v in second)
    assert tanh_table._work() is tanh_table._work()                 # kept


@pytest.mark.parametrize("forced", ["numpy", "table", " Table "])
def test_environment_forces_the_method(choice, forced):
    choice.setenv(tanh_table.ENV, forced)
    choice.setattr(tanh_table, "_measure", lambda: pytest.fail("measured"))
    assert tanh_table.method() == forced.strip().lower()
    y = np.random.default_rng(3).standard_normal(4096) * 3
    expected = np.tanh(y) if tanh_table.method() == "numpy" else table_tanh(y)
    np.testing.assert_array_equal(tanh_table.tanh(y), expected)
    assert not np.array_equal(np.tanh(y), table_tanh(y))     # they differ here


def test_unknown_environment_value_is_an_error(choice):
    choice.setenv(tanh_table.ENV, "fast")
    with pytest.raises(ValueError, match="SOPT_TANH"):
        tanh_table.method()


def test_measured_once_and_kept(choice):
    calls = []
    choice.setattr(tanh_table, "_measure", lambda: calls.append(1) or "table")
    y = np.random.default_rng(5).standard_normal(4096)
    tanh_table.tanh(y[:10])                     # small: no choice needed
    assert calls == []
    tanh_table.tanh(y)
    tanh_table.tanh(y)
    assert calls == [1] and tanh_table.method() == "table"


def test_fastest_picks_the_faster_function():
    slow = lambda: time.sleep(2e-3)
    fast = lambda: np.negative(np.ones(4))
    assert tanh_table.fastest({"slow": slow, "fast": fast}, rounds=3) == "fast"
    assert tanh_table.fastest({"fast": fast, "slow": slow}, rounds=3) == "fast"
    assert tanh_table._measure() in tanh_table.METHODS


def simulated(choice, numpy_cost, table_cost):
    """Make the chooser time two fake methods: each returns its simulated
    cost in seconds, cost(x) for the array x it is given, which a fake
    clock reports as the call's duration. Returns the arrays timed."""
    seen = []

    def fake(cost):
        def f(x, out=None):
            seen.append(x)
            return cost(x)
        return f

    choice.setattr(tanh_table, "_candidates",
                   lambda: {"numpy": fake(numpy_cost), "table": fake(table_cost)})
    choice.setattr(_timing, "elapsed", lambda fn: fn())
    return seen


def libm(x):
    """np.tanh by the scalar C library: 17.5 ns a value at any size."""
    return 17.5e-9 * x.size


def cached_table(x):
    """A table method 1.6x faster than libm on 16384 values (its arrays in
    cache) but 2x slower from 50000 on (as before it ran in blocks)."""
    return (11e-9 if x.size <= 16384 else 35e-9) * x.size


@pytest.mark.parametrize("numpy_cost, table_cost, expected", [
    (libm, cached_table, "numpy"),
    (libm, lambda x: 0.5 * libm(x), "table"),
    (lambda x: 0.5 * libm(x), libm, "numpy"),
])
def test_choice_picks_the_method_twice_as_fast_on_a_network_layer(
        choice, numpy_cost, table_cost, expected):
    seen = simulated(choice, numpy_cost, table_cost)
    assert tanh_table.method() == expected
    x = seen[0]
    assert x.size >= 1000 * 50 and all(y is x for y in seen)
    assert not np.all(np.diff(x) >= 0) and 0.8 < x.std() < 1.2     # random normal
    # the one-off cost of the choice stays bounded at a libm speed
    assert sum(libm(y) + cached_table(y) for y in seen) / 2 < 0.05


def test_choice_cost_is_bounded_on_a_slow_machine(choice):
    """Each call 4 ms (both methods): a warm-up call and the minimum number
    of rounds each, not the full count."""
    seen = simulated(choice, lambda x: 4e-3, lambda x: 2e-3)
    assert tanh_table.method() == "table"
    assert len(seen) == 2 * (tanh_table.MIN_ROUNDS + 1) < 2 * (tanh_table.ROUNDS + 1)


def test_choice_survives_bursts_of_load(choice):
    """The table method 2x faster, but a third of its timings (and none of
    numpy's) hit by a burst of load ten times its time: still chosen."""
    calls = []

    def noisy_table(x):
        calls.append(1)
        return 0.5 * libm(x) * (10 if len(calls) % 3 == 0 else 1)

    simulated(choice, libm, noisy_table)
    assert tanh_table.method() == "table"


def test_small_arrays_use_libm(choice):
    choice.setenv(tanh_table.ENV, "table")
    x = np.random.default_rng(4).standard_normal(tanh_table.SMALL - 1) * 3
    np.testing.assert_array_equal(tanh_table.tanh(x), np.tanh(x))
    y = np.random.default_rng(4).standard_normal(tanh_table.SMALL) * 3
    assert not np.array_equal(tanh_table.tanh(y), np.tanh(y))     # the table method
    assert ulp_error(tanh_table.tanh(y), y).max() <= MAX_ULP
