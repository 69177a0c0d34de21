"""The 'derivatives' and 'training' experiments (sopt/experiments/
derivatives.py and training.py), run in their quick versions.

Accuracy numbers are deterministic (fixed seeds) and asserted against the
tolerances of the testing idiom: central differences of a smooth function at
the default step agree with the analytic derivative to ~1e-10 relative, the
four-point Hessian to ~1e-8 (round-off / eps^2), so 1e-7 / 1e-6 / 1e-5 leave
two or more orders of magnitude of headroom while a wrong derivative gives
O(1e-2)-O(1).

Timings are not deterministic, and no test asserts one: the fitted
cost slopes and their ordering are printed by ``sopt reproduce derivatives``
(its notes compare them) and measured by ``experiments/bench_hessian.py``.
Only that the timing table covers the sizes in order is checked.
"""
from __future__ import annotations

import numpy as np
import pytest

from sopt.experiments import derivatives, training

pytestmark = pytest.mark.slow     # runs sopt's experiments

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def deriv(quick_reproduction):
    """From the session's ``sopt reproduce --quick`` run (tests/experiments/conftest.py)."""
    out, report = quick_reproduction
    return out, report[derivatives.NAME]


@pytest.fixture(scope="module")
def train(quick_reproduction):
    out, report = quick_reproduction
    return out, report[training.NAME]


def _check_contract(out, result, n_figures):
    assert set(result) >= {"summary", "tables", "figures", "notes"}
    for key, value in result["summary"].items():
        assert isinstance(key, str)
        assert isinstance(value, (int, float)) and np.isfinite(value), (key, value)
    for title, rows in result["tables"].items():
        assert "|" not in title
        assert rows and all(isinstance(r, dict) for r in rows), title
        assert all(list(r) == list(rows[0]) for r in rows), title
        # a "|" in a column name would break the markdown table
        assert not any("|" in k for k in rows[0]), title
    assert len(result["figures"]) == n_figures
    for name in result["figures"]:
        path = out / name
        assert path.suffix == ".png"
        data = path.read_bytes()
        assert data[:8] == PNG_MAGIC
        assert len(data) > 10_000, (name, len(data))
    assert isinstance(result["notes"], str) and len(result["notes"]) > 200


# ------------------------------------------------------------ derivatives
def test_derivatives_contract(deriv):
    out, result = deriv
    _check_contract(out, result, 2)
    assert set(result["figures"]) == {"derivatives_step_size.png",
                                      "derivatives_cost.png"}


def test_derivatives_accuracy(deriv):
    s = deriv[1]["summary"]
    assert s["rel_err_gradient"] < 1e-7
    assert s["rel_err_jacobian"] < 1e-7
    assert s["rel_err_hessian_vs_mixed"] < 1e-6
    assert s["rel_err_hessian_vs_fd"] < 1e-5
    assert s["rel_err_hvp"] < 1e-12          # no finite differences: round-off only
    # the four-point Hessian is the least accurate, by round-off / eps^2
    assert s["rel_err_hessian_vs_fd"] > s["rel_err_hessian_vs_mixed"]
    table = deriv[1]["tables"]["Accuracy against finite differences (random DAG)"]
    assert [r["derivative"] for r in table] == [
        "gradient", "jacobian", "hvp", "hessian_vs_mixed", "hessian_vs_fd"]


def test_derivatives_accuracy_net_has_skips_and_masks():
    net, _, _ = derivatives.accuracy_net()
    assert any(len(layer.sources) > 1 for layer in net.layers)
    assert any(m is not None for layer in net.layers for m in layer.masks)
    assert net.used_weight_mask().sum() < net.n_weights


def test_derivatives_step_sweep(deriv):
    s = deriv[1]["summary"]
    # truncation error O(eps^2) on the large steps
    for key in ("gradient", "mixed", "fd"):
        assert 1.9 < s[f"truncation_slope_{key}"] < 2.1, key
    # best steps near macheps^(1/3) ~ 6e-6 and macheps^(1/4) ~ 1.2e-4
    # (the quick sweep has one step per decade)
    assert 1e-7 <= s["best_eps_gradient"] <= 1e-4
    assert 1e-7 <= s["best_eps_mixed"] <= 1e-4
    assert 1e-5 <= s["best_eps_fd"] <= 1e-2
    assert s["best_eps_fd"] > s["best_eps_mixed"]
    assert s["best_rel_err_gradient"] < 1e-9
    assert s["best_rel_err_mixed"] < 1e-9
    assert 1e-10 < s["best_rel_err_fd"] < 1e-6


def test_derivatives_timing_table_covers_the_sizes_in_order(deriv):
    rows = deriv[1]["tables"]["Time per call (ms, medians)"]
    assert [r["W"] for r in rows] == sorted(r["W"] for r in rows)


# ------------------------------------------------------------ training
def test_training_contract(train):
    out, result = train
    _check_contract(out, result, 1)
    assert result["figures"] == ["training_convergence.png"]


def test_training_second_order_methods_converge(train):
    result = train[1]
    rows = {r["method"]: r for r in result["tables"][training.TABLE]}
    assert set(rows) == {m for m, *_ in training.METHODS}
    s = result["summary"]
    for method in ("newton", "lm"):
        assert rows[method]["success"] is True, method
        assert rows[method]["max abs gradient"] <= training.GTOL, method
        # the same minimum, to within what |g|_inf <= 1e-6 allows
        assert abs(rows[method]["final E"] - s["E_min"]) < 1e-8, method
        assert s[f"success_{method}"] == 1
    # gradient descent is capped and does not get there in the quick run
    assert rows["gd"]["iterations"] == training.GD_MAXITER_QUICK
    assert rows["gd"]["success"] is False


def test_training_newton_needs_fewer_iterations_than_lbfgs(train):
    s = train[1]["summary"]
    assert s["iterations_newton"] < s["iterations_l-bfgs-b"]
    assert s["iterations_lm"] < s["iterations_l-bfgs-b"]
    assert s["iterations_lbfgs_over_newton"] == pytest.approx(
        s["iterations_l-bfgs-b"] / s["iterations_newton"])
    assert s["iterations_lbfgs_over_lm"] > 1


def test_training_data_is_seeded():
    x1, t1 = training.data()
    x2, t2 = training.data()
    assert np.array_equal(x1, x2) and np.array_equal(t1, t2)
    assert x1.shape == (training.N,) and np.all(np.abs(x1) < 1)
    # targets are sin(pi x) plus noise of standard deviation NOISE
    assert abs(np.std(t1 - np.sin(np.pi * x1)) - training.NOISE) < 0.02


def test_training_claims_of_the_notes(train):
    result = train[1]
    rows = {r["method"]: r for r in result["tables"][training.TABLE]}
    # scipy's trust-region methods stop on |g|_2 <= gtol, and |g|_inf <= |g|_2
    for method in ("trust-exact", "trust-ncg", "trust-krylov"):
        assert rows[method]["success"] is True, method
        assert rows[method]["max abs gradient"] <= training.GTOL, method
    converged = [m for m, *_ in training.METHODS if rows[m]["success"]]
    assert f"Converged: {', '.join(converged)}." in result["notes"]
    # the per-iteration verdict follows the timings
    s = dict(result["summary"])
    s["seconds_newton"] = s["seconds_lm"] = 0.0
    assert "cost not more" in training.notes({**result, "summary": s})


def test_derivatives_notes_follow_the_numbers(deriv):
    result = deriv[1]
    s = dict(result["summary"])
    text = derivatives.notes(result)
    assert "truncation error falling as eps^2" in text
    assert "four-point Hessian only to" in text
    assert "its best step is larger" in text
    s["truncation_slope_fd"] = 1.0
    s["rel_err_hessian_vs_fd"] = 0.5 * s["rel_err_hessian_vs_mixed"]
    s["best_eps_fd"] = s["best_eps_mixed"]
    text = derivatives.notes({**result, "summary": s})
    assert "not falling as eps^2 everywhere" in text
    assert "no worse than the mixed one" in text
    assert "its best step is not larger" in text
    # the slope shortfalls named are the largest ones of the table
    rows = result["tables"]["Fitted log-log slopes of time against W"]
    worst = min(rows, key=lambda r: r["fitted slope"] - r["expected"])
    if worst["fitted slope"] < worst["expected"]:
        assert f"most of all those of the {worst['method']}" in text
