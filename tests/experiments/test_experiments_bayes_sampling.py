"""The Laplace-against-sampling experiment (sopt/experiments/bayes_sampling.py):
its helpers on their own, and its quick form through ``reproduce``.

The quick run's chains are far too short to mix, so the tests on it check
what holds for any draws (variances never below the noise, the MAP and
Laplace means equal, counts consistent) and the verdicts the notes draw,
not the sampled numbers' values.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from sopt import mlp
from sopt.experiments import bayes_sampling as bs


# ---------------------------------------------------------------- helpers
def test_gap_data_leaves_the_gap_empty():
    x, t = bs.gap_data(500, 0)
    assert x.shape == t.shape == (1000,)
    assert np.all(((x >= 0) & (x <= 0.35)) | ((x >= 0.65) & (x <= 1)))
    assert np.sum(x <= 0.35) == 500
    # 1000 N(0, 0.1^2) residuals: s / sigma has s.d. ~ sqrt(1 / 2000) = 0.022,
    # so +-0.07 is over three of them
    r = t - np.sin(2 * np.pi * x)
    assert np.sqrt(np.mean(r ** 2)) == pytest.approx(bs.NOISE, rel=0.07)
    xg, _ = bs.gap_targets(200, 1)
    assert np.all((xg > 0.35) & (xg < 0.65))


def test_gaussian_nll_is_the_normal_log_density():
    rng = np.random.default_rng(0)
    t, m, v = rng.normal(size=50), rng.normal(size=50), rng.uniform(0.1, 2, 50)
    assert bs.gaussian_nll(t, m, v) == pytest.approx(
        -np.mean(norm.logpdf(t, m, np.sqrt(v))), rel=1e-12)


def test_batch_standard_error_of_a_mean():
    """For the mean of independent draws the batch s.e. estimates
    sd / sqrt(all draws); for a correlated chain it is larger by about
    sqrt((1 + rho) / (1 - rho)), which the plain formula would miss."""
    rng = np.random.default_rng(3)
    iid = rng.standard_normal((2, 5000, 1))
    se = bs.batch_standard_error(lambda b: float(b.mean()), iid, 5)
    # ten batches: the estimate's relative s.d. is ~ 1 / sqrt(18) = 0.24
    assert 0.5 * 0.01 < se < 1.6 * 0.01
    rho, ar = 0.9, np.empty((2, 5000, 1))
    ar[:, 0] = rng.standard_normal((2, 1))
    for s in range(1, 5000):
        ar[:, s] = rho * ar[:, s - 1] + math.sqrt(1 - rho ** 2) * rng.standard_normal((2, 1))
    se_ar = bs.batch_standard_error(lambda b: float(b.mean()), ar, 5)
    assert se_ar > 2.5 * se          # the factor is sqrt(19) = 4.4


def test_per_draw_outputs_match_forward():
    net = mlp([2, 3, 1], hidden="tanh", output="logistic")
    draws = np.random.default_rng(1).normal(size=(2, 3, net.n_weights))
    X = np.random.default_rng(2).normal(size=(5, 2))
    Y = bs.per_draw_outputs(net, draws, X)
    assert Y.shape == (2, 3, 5)
    np.testing.assert_allclose(Y[1, 2], net.forward(draws[1, 2], X)[:, 0], rtol=1e-15)


def test_mixes_thresholds():
    ok = {"rhat_predictive_max": 1.005, "n_divergent": 0, "ess_predictive_min": 400.0}
    assert bs.mixes(ok, 2)
    assert not bs.mixes({**ok, "rhat_predictive_max": 1.01}, 2)
    assert not bs.mixes({**ok, "n_divergent": 1}, 2)
    assert not bs.mixes({**ok, "ess_predictive_min": 199.0}, 2)


# ---------------------------------------------------- the quick reproduction
@pytest.fixture(scope="module")
def result(quick_reproduction):
    """The bayes_sampling part of the session's ``sopt reproduce --quick``."""
    out, report = quick_reproduction
    return out, report["bayes_sampling"]


@pytest.mark.slow
def test_regression_predictives(result):
    _, res = result
    s = res["summary"]
    noise = s["reg_noise_sd_fitted"]
    assert noise == pytest.approx(1 / math.sqrt(s["reg_beta"]))
    # the plug-in's variance is the noise alone; Laplace adds g^T A^-1 g >= 0
    # and the sampled predictive the draws' spread >= 0
    for region in ("data", "gap", "beyond"):
        assert s[f"reg_sd_{region}_map"] == pytest.approx(noise, rel=1e-12)
        assert s[f"reg_sd_{region}_laplace"] >= noise * (1 - 1e-12)
        assert s[f"reg_sd_{region}_sampled"] >= noise * (1 - 1e-12)
    # the Laplace predictive mean is the MAP output
    assert s["reg_rms_true_test_laplace"] == s["reg_rms_true_test_map"]
    # in the gap the mean's squared error plus the noise exceeds the plug-in
    # variance, and -ln N(t | m, v) decreases in v up to v = E(t - m)^2: a
    # wider (Laplace) variance below that gives the lower NLL
    mse = s["reg_rms_true_gap_laplace"] ** 2 + bs.NOISE ** 2
    assert noise ** 2 < s["reg_sd_gap_laplace"] ** 2 < mse
    assert s["reg_nll_gap_laplace"] < s["reg_nll_gap_map"]
    assert s["reg_nll_test_mcse_sampled"] > 0 and s["reg_nll_gap_mcse_sampled"] > 0


@pytest.mark.slow
def test_classification_numbers(result):
    _, res = result
    s, cfg = res["summary"], res["settings"]
    for method in ("map", "laplace", "sampled", "bayes_optimal"):
        assert 0 < s[f"cls_nll_test_{method}"] < math.log(2) + 0.2
        assert 0 <= s[f"cls_error_test_{method}"] <= 1
    # probit moderation shrinks the logit: never further from 0.5 than MAP
    assert (s["cls_mean_abs_p_minus_half_far_laplace"]
            <= s["cls_mean_abs_p_minus_half_far_map"] + 1e-12)
    # the Bayes-optimal rule has the lowest expected NLL; 2000 test points
    # give a standard error of ~0.01 on a difference of NLLs
    assert s["cls_nll_test_bayes_optimal"] < min(
        s[f"cls_nll_test_{m}"] for m in ("map", "laplace", "sampled")) + 0.02
    assert 0 <= s["cls_boundary_disagreement"] <= 1
    assert cfg["n_test"] == 2000


@pytest.mark.slow
def test_diagnostics_are_consistent(result):
    _, res = result
    cfg = res["settings"]
    rows = {r["case"]: r for r in res["tables"]["Sampler diagnostics"]}
    assert set(rows) == {"regression", "classification"}
    for case, r in rows.items():
        draws = cfg["reg_n_draws" if case == "regression" else "cls_n_draws"]
        assert r["n_transitions"] == cfg["n_chains"] * draws
        assert 0 <= r["n_divergent"] <= r["n_transitions"]
        assert 1 <= r["mean_leapfrog_steps"] <= 2 ** cfg["max_tree_depth"] - 1
        assert 1 <= r["mean_tree_depth"] <= cfg["max_tree_depth"]
        assert 0 <= r["fraction_at_max_tree_depth"] <= 1
        assert r["rhat_predictive_max"] > 0.9 and r["ess_predictive_min"] > 0
        assert r["ess_predictive_median"] >= r["ess_predictive_min"]
        prefix = "reg_" if case == "regression" else "cls_"
        assert res["summary"][prefix + "n_divergent"] == r["n_divergent"]


@pytest.mark.slow
def test_figures_and_tables(result):
    out, res = result
    assert res["figures"] == ["bayes_sampling_regression.png",
                              "bayes_sampling_classification.png"]
    for fig in res["figures"]:
        assert (out / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / fig).stat().st_size > 10_000
    rows = res["tables"]["Regression: held-out NLL and predictive s.d."]
    assert [r["method"] for r in rows] == ["MAP", "Laplace", "sampled"]
    assert [r["M"] for r in res["tables"]["Regression: log evidence over hidden units"]] \
        == [bs.REG_HIDDEN]
    assert bs.TITLE in (out / "report.md").read_text()


@pytest.mark.slow
def test_notes_words_follow_the_numbers(result):
    """The verdicts in the notes flip when the numbers they rest on do."""
    _, res = result
    s = dict(res["summary"])
    text = bs.notes(res)
    assert "Both widen in the gap" in text
    s["reg_nll_test_sampled"] = s["reg_nll_test_laplace"] - 3 * s["reg_nll_test_mcse_sampled"]
    s["reg_nll_gap_sampled"] = s["reg_nll_gap_laplace"] + s["reg_nll_gap_mcse_sampled"]
    s["reg_sd_gap_sampled"] = 0.5 * s["reg_sd_data_sampled"]
    text = bs.notes({**res, "summary": s})
    assert "lower than Laplace's on the test set" in text
    assert "within Monte Carlo error of it in the gap" in text
    assert "do not both widen" in text
    s["reg_beta"] = 1 / bs.NOISE ** 2
    assert "The evidence beta is" not in bs.notes({**res, "summary": s})
    s["reg_beta"] = 4 / bs.NOISE ** 2
    assert "narrower than the held-out noise" in bs.notes({**res, "summary": s})
    good = {"rhat_predictive_max": 1.001, "ess_predictive_min": 1000.0, "n_divergent": 0}
    tables = dict(res["tables"])
    tables["Sampler diagnostics"] = [{**r, **good} for r in tables["Sampler diagnostics"]]
    text = bs.notes({**res, "tables": tables})
    assert text.count("it passes the checks") == 2 and "does NOT pass" not in text
    tables["Sampler diagnostics"][0] = {**tables["Sampler diagnostics"][0], "n_divergent": 3}
    assert "does NOT pass" in bs.notes({**res, "tables": tables})
