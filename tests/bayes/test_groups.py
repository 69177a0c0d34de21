"""Grouped priors of the evidence framework: one alpha per layer edge and
bias ("layers"), automatic relevance determination ("inputs"), and pruned
groups handled without a crash."""
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.preprocessing import StandardScaler

import sopt
from problems import noisy_sine, quiet_evidence_fit
from sopt.bayes import (BayesianMLPClassifier, BayesianMLPRegressor, laplace,
                        weight_groups)
from sopt.bayes._evidence import ALPHA_MAX, _reestimate


def test_layer_groups_give_a_skip_edge_its_own_alpha():
    net = sopt.Network(n_inputs=2)
    h = net.add_layer(3, "tanh", inputs=[net.input])
    net.add_layer(1, "identity", inputs=[h, net.input], output=True)
    index, names = weight_groups(net, "layers")
    assert names == ["layer 1 weights", "layer 1 biases", "layer 2 weights from layer 1",
                     "layer 2 weights from the inputs", "layer 2 biases"]
    assert np.bincount(index).tolist() == [6, 3, 3, 2, 1]


def test_ard_groups_are_the_columns_of_every_edge_leaving_the_inputs():
    net = sopt.Network(n_inputs=2)
    h = net.add_layer(3, "tanh", inputs=[net.input])
    net.add_layer(1, "identity", inputs=[h, net.input], output=True)
    index, names = weight_groups(net, "inputs")
    assert names[:2] == ["input 1", "input 2"]
    params = net.unpack(np.arange(net.n_weights, dtype=float))
    # every weight that multiplies input i is in group i, and no other
    for lp, layer in zip(params, net.layers):
        for W, src in zip(lp.weights, layer.sources):
            if src.index == 0:
                for i in range(2):
                    assert np.all(index[W[:, i].astype(int)] == i)
    assert np.sum(index < 2) == 2 * 3 + 2


def test_ard_gives_irrelevant_inputs_larger_alphas():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 5))            # inputs 3, 4, 5 are noise
    y = X[:, 0] - 0.7 * X[:, 1] + 0.4 * np.tanh(2 * X[:, 2]) \
        + 0.1 * rng.standard_normal(80)
    for hidden in [(), (2,)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sopt.optimize.ConvergenceWarning)
            reg = BayesianMLPRegressor(hidden=hidden, groups="inputs").fit(X, y)
        alpha = reg.prior_precision_[:5]
        assert reg.group_names_[:5] == [f"input {i}" for i in range(1, 6)]
        assert alpha[3:].min() > 10 * alpha[:3].max(), (hidden, alpha)


def test_a_group_with_gamma_zero_up_to_round_off_is_pruned():
    """diabetes, hidden=(5,), groups="layers" used to stop with 'gamma <= 0'
    at gamma_g = -3e-14: such a group is switched off (alpha capped), and
    only a clearly negative gamma (negative curvature) is an error."""
    post = SimpleNamespace(used=np.arange(4), w_map=np.array([1.0, 2.0, 1e-9, 0.0]),
                           gamma_per_weight=np.array([1.0, 1.0, 0.0, 0.0]),
                           n_data=10, data_error=4.0)
    groups = np.array([0, 0, 1, 1])
    alpha, beta = _reestimate(post, groups, np.array([2.0, -3e-14]), 1.0)
    assert alpha[0] == pytest.approx(2.0 / 5.0) and alpha[1] == ALPHA_MAX
    assert beta == pytest.approx((10 - 2.0) / 8.0)
    with pytest.raises(ValueError, match="negative curvature"):
        _reestimate(post, groups, np.array([2.0, -0.5]), 1.0)


@pytest.mark.parametrize("groups", ["layers", "inputs"])
def test_grouped_priors_run_on_bundled_sets(groups):
    for loader, est in ((load_diabetes, BayesianMLPRegressor),
                        (load_breast_cancer, BayesianMLPClassifier),
                        (load_iris, BayesianMLPClassifier)):
        X, y = loader(return_X_y=True)
        X = StandardScaler().fit_transform(X)[::4]
        y = y[::4]
        if est is BayesianMLPRegressor:
            y = (y - y.mean()) / y.std()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sopt.optimize.ConvergenceWarning)
            model = est(hidden=(2,), groups=groups, max_cycles=5,
                        method="newton").fit(X, y)
        alpha = model.prior_precision_
        assert np.all(np.isfinite(alpha)) and np.all(alpha > 0)
        assert np.isfinite(model.log_evidence_)
        assert len(alpha) == len(model.group_names_)


@pytest.mark.parametrize("groups", ["single", "layers"])
def test_laplace_takes_the_alphas_of_an_evidence_result(groups):
    """The posterior of an evidence fit is what laplace gives at its w, beta
    and alphas: one alpha (an array of one, as EvidenceResult.alpha holds)
    or one per weight from its groups."""
    X, t = noisy_sine(30, 2, 0.05)
    net = sopt.mlp([2, 3, 1])
    r = quiet_evidence_fit(net, X, t, groups=groups)
    alpha = r.alpha if groups == "single" else r.alpha_per_weight
    post = laplace(net, X, t, r.w, alpha=alpha, beta=r.beta, clip_negative=True)
    assert post.log_evidence == r.log_evidence
    np.testing.assert_array_equal(post.alpha, r.posterior.alpha)


def test_alpha_arrays_of_booleans_are_refused_as_numbers_are():
    net = sopt.mlp([2, 3, 1])
    X, t = np.zeros((4, 2)), np.zeros(4)
    for bad in (True, np.ones(net.n_weights, dtype=bool)):
        with pytest.raises(TypeError, match="alpha"):
            laplace(net, X, t, net.init_weights(seed=0), alpha=bad, beta=1.0)
        with pytest.raises(TypeError, match="alpha"):
            sopt.Objective(net, X, t, alpha=bad)
