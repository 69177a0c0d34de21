"""Hooks of the sopt.bayes tests (tests/bayes/).

Long tests of files that other branches are still changing are marked
``slow`` here rather than by decorators in those files, so that the marks
do not collide with their edits; each entry names the fast test of the same
file that covers its subject. Once those branches are in, the marks can move
into the files as ``@pytest.mark.slow``.
"""
import ast
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

# file -> {test name, or name[parameter id] -> the fast test that covers it}
SLOW = {
    "test_sampling.py": {
        "test_hyperprior_matches_the_exact_posterior_of_alpha_and_beta[joint]":
            "test_non_centred_density_is_the_joint_posterior_in_its_coordinates "
            "and test_gibbs_step_draws_alpha_and_beta_from_their_conditionals",
        "test_hyperprior_matches_the_exact_posterior_of_alpha_and_beta[gibbs]":
            "test_gibbs_step_draws_alpha_and_beta_from_their_conditionals",
        "test_hyperprior_matches_the_exact_posterior_of_alpha_and_beta[marginal]":
            "test_collapsed_and_non_centred_gradients_match_finite_differences",
        "test_laplace_metric_beats_identity_on_a_badly_scaled_posterior":
            "test_conjugate_regression_matches_closed_form (samples with the "
            "Laplace metric)",
        "test_classification_draws_and_probabilities":
            "test_predict_proba_averages_probabilities_not_logits",
    },
    "test_estimator_sampling.py": {
        "test_classifier_averages_probabilities_not_logits":
            "test_two_classes_and_a_hyperprior (a sampled classifier's "
            "probabilities)",
    },
    "test_auto.py": {
        "test_auto_picks_fewer_hidden_units_on_a_linear_target":
            "test_linear_data_keep_the_linear_model and "
            "test_default_regressor_finds_a_product_of_inputs",
        "test_default_classifier_finds_the_nonlinear_boundary[circles]":
            "the same test on xor",
        "test_default_classifier_finds_the_nonlinear_boundary[moons]":
            "the same test on xor",
    },
    "test_groups.py": {
        "test_grouped_priors_run_on_bundled_sets[inputs]":
            "the same test with groups='layers', and "
            "test_ard_gives_irrelevant_inputs_larger_alphas",
    },
    "test_scaling.py": {
        "test_regressor_is_equivariant_to_the_units_of_y[_diabetes]":
            "the same test on the synthetic data",
    },
    "test_api.py": {
        "test_clip_negative_fits_tiny_targets":
            "test_clipped_matrix_stays_psd_at_any_scale",
    },
}


def _defined_tests(path: Path) -> set:
    return {node.name for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.FunctionDef)}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Mark the tests of SLOW; an entry naming a test its file no longer
    defines is an error (a renamed test would otherwise quietly turn fast)."""
    for name, tests in SLOW.items():
        missing = {t.partition("[")[0] for t in tests} - _defined_tests(HERE / name)
        if missing:
            raise pytest.UsageError(f"tests/bayes/conftest.py marks {sorted(missing)} "
                                    f"slow, which {name} does not define")
    for item in items:
        if item.path.parent == HERE and (
                item.name in SLOW.get(item.path.name, ())
                or item.originalname in SLOW.get(item.path.name, ())):
            item.add_marker(pytest.mark.slow)
