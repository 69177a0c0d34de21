"""The Bayesian experiments (sopt/experiments/bayes_regression.py and
bayes_classification.py), run in their quick form through ``reproduce``.

Both are seeded, so their numbers are deterministic up to floating-point
round-off across BLAS builds; the bounds below are set by what the method
guarantees or by sampling arguments, not by the values one run printed,
so that a correct change of seed or solver would still pass.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sopt.experiments import bayes_classification as bc
from sopt.experiments import bayes_regression as br

pytestmark = pytest.mark.slow     # runs sopt's experiments


@pytest.fixture(scope="module")
def report(quick_reproduction):
    """The session's ``sopt reproduce --quick`` run (tests/experiments/conftest.py)."""
    return quick_reproduction


# --------------------------------------------------------------- helpers
def test_demev1_data_is_netlabs_design():
    x, t = br.demev1_data()
    np.testing.assert_allclose(x, 0.25 + 0.07 * np.arange(16))
    r = t - np.sin(2 * np.pi * x)
    # 16 N(0, 0.1^2) residuals: their RMS lies in [0.05, 0.15] with
    # probability > 0.99 (chi-square with 16 degrees of freedom)
    assert 0.05 < np.sqrt(np.mean(r ** 2)) < 0.15
    np.testing.assert_array_equal(t, br.demev1_data()[1])        # fixed seed


def test_symmetry_term():
    assert br.symmetry_term(3) == pytest.approx(math.log(6 * 8))
    assert br.symmetry_term(1) == pytest.approx(math.log(2))


def test_mixture_sampler_and_true_posterior():
    X, t = bc.sample_mixture(20000, 0)
    assert X.shape == (20000, 2) and set(np.unique(t)) == {0.0, 1.0}
    assert np.mean(t) == pytest.approx(0.5, abs=0.02)        # priors 0.5 / 0.5
    # P(class 1 | x) against Bayes' rule written out with scipy's densities
    from scipy.stats import multivariate_normal as mvn
    G = np.random.default_rng(1).normal(size=(50, 2)) * 2
    dens = [p * mvn(c, v * np.eye(2)).pdf(G) for p, c, v in
            zip(bc.MIXTURE["priors"], bc.MIXTURE["centres"], bc.MIXTURE["variances"])]
    np.testing.assert_allclose(bc.true_posterior(G),
                               (dens[1] + dens[2]) / (dens[0] + dens[1] + dens[2]),
                               rtol=1e-12)
    # the empirical class frequency among points with posterior ~0.8 is ~0.8
    p = bc.true_posterior(X)
    band = (p > 0.7) & (p < 0.9)
    assert np.mean(t[band]) == pytest.approx(np.mean(p[band]), abs=0.03)


# ------------------------------------------------------------ regression
def test_regression_numbers(report):
    _, data = report
    s = data["bayes_regression"]["summary"]
    # beta: the re-estimate (N - gamma) / sum r^2 has about N - gamma ~ 8.5
    # degrees of freedom, relative s.d. sqrt(2 / 8.5) ~ 0.5, so a factor of 2
    # around the true 100 is the ~95% range of a correct estimate
    assert 50 < s["beta"] < 200
    assert s["beta_true"] == 100
    assert 0 < s["alpha"] < 10 and math.isfinite(s["alpha"])
    # gamma counts well-determined parameters: between 0 and W = 10; a fit
    # of a sine on [0.25, 1.3] needs several of them
    assert 3 < s["gamma"] < s["n_weights"] == 10
    assert math.isfinite(s["log_evidence"]) and s["converged"] == 1
    # calibrated error bars on 5000 fresh targets: nominal 95.4% and 68.3%;
    # binomial s.e. is < 0.7%, the rest of the margin is for the Laplace
    # approximation and beta's own sampling error
    assert 0.88 < s["coverage_2sigma"] < 0.99
    assert 0.55 < s["coverage_1sigma"] < 0.80
    # the mean follows sin(2 pi x) to within the noise level
    assert s["test_rms_true_function"] < 0.1
    assert s["test_rms_noisy_targets"] == pytest.approx(
        math.hypot(0.1, s["test_rms_true_function"]), rel=0.1)


def test_regression_evidence_history_and_model_selection(report):
    _, data = report
    res = data["bayes_regression"]
    cycles = res["tables"]["Evidence cycles (demev1 network)"]
    assert cycles[0]["alpha"] == 0.01 and cycles[0]["beta"] == 50.0
    assert cycles[-1]["log_evidence"] == pytest.approx(res["summary"]["log_evidence"])
    assert cycles[-1]["log_evidence"] > cycles[0]["log_evidence"] + 1
    rows = res["tables"]["Model selection over hidden units"]
    assert [r["M"] for r in rows] == [1, 2, 3, 4]
    ev = {r["M"]: r["log_evidence"] for r in rows}
    # one tanh unit cannot follow a full period of the sine: lowest evidence
    # and a test error of the order of the signal itself
    assert ev[1] < min(ev[M] for M in (2, 3, 4)) - 3
    assert rows[0]["test_rms_true"] > 0.3
    assert all(r["test_rms_true"] < 0.1 for r in rows[1:])
    s = res["summary"]
    assert s["best_M_evidence"] == max(ev, key=ev.get) and s["best_M_evidence"] >= 2
    assert s["best_M_test_error"] >= 2
    for r in rows:
        assert r["log_evidence_sym"] == pytest.approx(
            r["log_evidence"] + br.symmetry_term(r["M"]))


# -------------------------------------------------------- classification
def test_classification_numbers(report):
    _, data = report
    s = data["bayes_classification"]["summary"]
    bayes, ml, evid = s["bayes_error"], s["ml_test_error"], s["evidence_test_error"]
    # the mixture's Bayes error (about 0.17) on 20000 test points, s.e. 0.003
    assert 0.14 < bayes < 0.20
    # nothing beats the Bayes classifier on the same test points beyond noise
    assert ml > bayes - 0.01 and evid > bayes - 0.01
    # the evidence-regularised net generalises at least as well as ML
    # (PRML Fig. 5.22), and is close to optimal
    assert evid <= ml + 0.01
    assert evid - bayes < 0.05
    # ML overfits: lower training error than the regularised net
    assert s["ml_train_error"] < s["evidence_train_error"]
    assert s["alpha"] > 0 and math.isfinite(s["log_evidence"])
    assert 0 < s["gamma"] < s["n_weights"]
    assert s["evidence_converged"] == 1


def test_classification_moderation(report):
    _, data = report
    s = data["bayes_classification"]["summary"]
    # moderation scales the logit by kappa in (0, 1]: never further from 0.5,
    # never across it (the y = 0.5 contour stays), and markedly closer to 0.5
    # far from the data where the logit's variance is large
    assert s["moderated_never_further_from_half"] == 1.0
    assert s["moderated_same_side_of_half"] == 1.0
    assert s["moderated_test_error"] == s["evidence_test_error"]
    far_point = s["mean_abs_p_minus_half_far_point"]
    far_mod = s["mean_abs_p_minus_half_far_moderated"]
    assert far_mod < far_point - 0.02
    # ... and more so far away than near the data (relative shrinkage)
    near_point = s["mean_abs_p_minus_half_near_point"]
    near_mod = s["mean_abs_p_minus_half_near_moderated"]
    assert far_mod / far_point < near_mod / near_point
    # averaging over the posterior does not hurt the test log loss
    assert s["moderated_test_nll"] <= s["evidence_test_nll"] + 1e-3
    assert s["ml_test_nll"] > s["evidence_test_nll"]


def test_regression_claims_of_the_notes(report):
    _, data = report
    res = data["bayes_regression"]
    s = res["summary"]
    # g^T A^{-1} g grows away from the data: wider bars at both plot ends
    assert s["predictive_std_min_at_plot_ends"] > s["predictive_std_max_in_data_range"]
    # ... and never below the noise floor 1/sqrt(beta)
    assert s["predictive_std_max_in_data_range"] >= s["noise_std_estimate"]
    # M = 1 collapses to a constant: alpha -> inf, no well-determined parameter
    one = res["tables"]["Model selection over hidden units"][0]
    assert one["M"] == 1 and one["alpha"] > 1e3 and one["gamma"] < 0.1
    assert 0 <= s["restarts_at_best_evidence"] <= s["restarts"]


def test_classification_claims_of_the_notes(report):
    _, data = report
    s = data["bayes_classification"]["summary"]
    # no prior: the weights grow until the iteration limit stops them
    assert s["ml_weight_norm"] > 10 * s["evidence_weight_norm"]
    assert s["ml_converged"] == 0
    # w_MAP minimises E + alpha/2 |w|^2 and the data Hessian is clipped only
    # in the evidence updates: alpha I + H is positive definite, H is not
    assert s["negative_hessian_eigenvalues_at_w_map"] >= 1
    assert s["alpha"] + s["smallest_hessian_eigenvalue_at_w_map"] > 0
    assert s["smallest_hessian_eigenvalue_at_w_map"] < 0


def test_hidden_unit_census():
    """bc._hidden_units counts dead units and sign-flipped or equal copies."""
    net = bc.mlp([2, 4, 1], hidden="tanh", output="logistic")
    U = np.array([[1.0, -2.0, 0.5], [-1.0, 2.0, -0.5], [0.0, 0.0, 0.0], [3.0, 1.0, 0.2]])
    v = np.array([0.7, -0.7, 0.0, 1.1])
    pack = lambda: net.pack([U[:, :2], U[:, 2], v[None, :], np.array([0.3])])  # noqa: E731
    assert bc._hidden_units(net, pack()) == (1, 2)
    U[1] = [-1.0, 2.5, -0.5]                   # no longer a copy
    assert bc._hidden_units(net, pack()) == (1, 0)


# ------------------------------------------------------------ figures
def test_figures_written(report):
    out, data = report
    expected = {"bayes_regression": ["bayes_regression_fit.png",
                                     "bayes_regression_cycles.png",
                                     "bayes_regression_model_selection.png"],
                "bayes_classification": ["bayes_classification_boundaries.png",
                                         "bayes_classification_moderation.png"]}
    for name, figures in expected.items():
        assert data[name]["figures"] == figures
        for fig in figures:
            path = out / fig
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert path.stat().st_size > 10_000, fig
    md = (out / "report.md").read_text()
    assert br.TITLE in md and bc.TITLE in md
    assert all(data[name]["notes"] for name in expected)



def test_notes_words_follow_the_numbers(report):
    """The verdicts in the notes flip when the numbers they rest on do."""
    _, data = report
    reg = {**data["bayes_regression"]}
    s = dict(reg["summary"])
    assert "error bars widen" in br.notes(reg)
    s["predictive_std_min_at_plot_ends"] = 0.5 * s["predictive_std_max_in_data_range"]
    assert "do not all widen" in br.notes({**reg, "summary": s})
    cls = {**data["bayes_classification"]}
    s = dict(cls["summary"])
    assert "more shrinkage far away" in bc.notes(cls)
    s["mean_abs_p_minus_half_far_moderated"] = s["mean_abs_p_minus_half_far_point"]
    assert "less shrinkage far away" in bc.notes({**cls, "summary": s})
    s["smallest_hessian_eigenvalue_at_w_map"] = -2 * s["alpha"]
    assert "not positive definite" in bc.notes({**cls, "summary": s})
