"""Names renamed for clarity keep working for one release: each still gives
what its new name gives, and warns with a DeprecationWarning that points at
the line using it (the test file's, not sopt's)."""
from __future__ import annotations

import numpy as np
import pytest

import sopt
from sopt import losses


def _problem(loss="sse", output="identity"):
    net = sopt.mlp([2, 3, 2], output=output)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 2))
    T = rng.random((5, 2)) if loss != "softmax_ce" else np.eye(2)[rng.integers(0, 2, 5)]
    return net, sopt.Objective(net, X, T, loss=loss, alpha=0.1), net.init_weights(seed=1)


def _warns(match: str):
    """pytest.warns for a DeprecationWarning whose message names ``match``."""
    return pytest.warns(DeprecationWarning, match=match)


def _points_here(record) -> None:
    assert {r.filename for r in record} == {__file__}, [r.filename for r in record]


# ------------------------------------------------- sopt.losses.OutputLoss
def test_output_error_is_output_loss():
    with _warns("OutputError.*OutputLoss") as rec:
        from sopt.losses import OutputError
    _points_here(rec)
    assert OutputError is losses.OutputLoss
    with _warns("OutputError") as rec:
        assert losses.OutputError is losses.OutputLoss
    _points_here(rec)


def test_objective_rule_is_output_loss():
    _, obj, _ = _problem()
    with _warns(r"Objective\.rule.*output_loss") as rec:
        rule = obj.rule
    _points_here(rec)
    assert rule is obj.output_loss


def test_batch_pass_rule_is_output_loss():
    _, obj, w = _problem()
    batch = next(obj.at(w).batches())
    with _warns(r"BatchPass\.rule.*output_loss") as rec:
        rule = batch.rule
    _points_here(rec)
    assert rule is batch.output_loss is obj.output_loss


# ------------------------------------------------ sopt.optimize.STEP_RULES
def test_optimize_own_is_step_rules():
    with _warns(r"sopt\.optimize\.OWN.*STEP_RULES") as rec:
        own = sopt.optimize.OWN
    _points_here(rec)
    assert own is sopt.optimize.STEP_RULES
    assert set(own) == {"newton", "lm", "gd"}


# --------------------------------- sopt.hessian.curvature_matrix(kind=...)
@pytest.mark.parametrize("exact, kind", [(True, "exact"), (False, "gauss_newton")])
def test_curvature_matrix_exact_bool_is_kind(exact, kind):
    from sopt.hessian import curvature_matrix
    net, obj, w = _problem("binary_ce", "logistic")    # not at zero residual: H != G
    expected = curvature_matrix(net, obj.at(w).batches(), kind=kind)
    with _warns(rf"exact={exact}.*kind='{kind}'") as rec:
        positional = curvature_matrix(net, obj.at(w).batches(), exact)
    with _warns(rf"exact={exact}.*kind='{kind}'") as rec2:
        keyword = curvature_matrix(net, obj.at(w).batches(), exact=exact)
    _points_here(list(rec) + list(rec2))
    other = curvature_matrix(net, obj.at(w).batches(),
                             kind={"exact": "gauss_newton"}.get(kind, "exact"))
    assert np.abs(other - expected).max() > 1e-3 * np.abs(expected).max()
    np.testing.assert_array_equal(positional, expected)
    np.testing.assert_array_equal(keyword, expected)
    with pytest.raises(TypeError, match="not both"):
        curvature_matrix(net, obj.at(w).batches(), "gauss_newton", exact=exact)


# ------------------------------- hessian(w, kind=..., algorithm=...)
@pytest.mark.parametrize("method, kind, algorithm", [
    ("exact", "exact", "structured"), ("gauss_newton", "gauss_newton", "structured"),
    ("diagonal", "diagonal", "structured"), ("fd", "exact", "fd"),
    ("mixed", "exact", "mixed")])
def test_hessian_method_is_kind_and_algorithm(method, kind, algorithm):
    _, obj, w = _problem("binary_ce", "logistic")
    expected = obj.hessian(w, kind=kind, algorithm=algorithm)
    with _warns(rf"method='{method}'.*kind='{kind}'") as rec:
        H = obj.hessian(w, method=method)
    _points_here(rec)
    np.testing.assert_array_equal(H, expected)
    with pytest.raises(TypeError, match="not both"):
        obj.hessian(w, "gauss_newton", method=method)


def test_hessian_method_keeps_the_algorithm_given():
    _, obj, w = _problem("binary_ce", "logistic")
    with _warns("method='exact'") as rec:
        H = obj.hessian(w, method="exact", algorithm="rop")
    _points_here(rec)
    np.testing.assert_array_equal(H, obj.hessian(w, algorithm="rop"))


@pytest.mark.parametrize("method", ["fd", "mixed"])
def test_hessian_old_method_in_kinds_place(method):
    """hessian(w, "fd") was a method given by position."""
    _, obj, w = _problem()
    with _warns(rf"method='{method}'.*algorithm='{method}'") as rec:
        H = obj.hessian(w, method)
    _points_here(rec)
    np.testing.assert_array_equal(H, obj.hessian(w, algorithm=method))


def test_evaluation_curvature_method_is_kind():
    _, obj, w = _problem("binary_ce", "logistic")
    ev = obj.at(w)
    with _warns("method='gauss_newton'") as rec:
        G = ev.curvature(method="gauss_newton")
    _points_here(rec)
    np.testing.assert_array_equal(G, ev.curvature("gauss_newton"))
    assert np.abs(G - ev.curvature("exact")).max() > 1e-3 * np.abs(G).max()


def test_hessian_methods_constant():
    from sopt import objective
    with _warns("HESSIAN_METHODS.*HESSIAN_KINDS") as rec:
        methods = objective.HESSIAN_METHODS
    _points_here(rec)
    assert set(methods) == {"exact", "fd", "mixed", "gauss_newton", "diagonal"}


# ------------------------------------- losses.CLOSED_FORMS, cli.CHECKED_PAIRS
@pytest.mark.parametrize("old, new", [("PAIRINGS", "CLOSED_FORMS"),
                                      ("Pairing", "ClosedForm"),
                                      ("pairing_of", "closed_form_of")])
def test_losses_pairings_are_closed_forms(old, new):
    with _warns(rf"sopt\.losses\.{old}\b.*{new}") as rec:
        value = getattr(losses, old)
    _points_here(rec)
    assert value is getattr(losses, new)


def test_output_loss_pairing_is_closed_form():
    output_loss = losses.OutputLoss(losses.LOSSES["sse"],
                                    sopt.activations.ACTIVATIONS["identity"])
    with _warns(r"OutputLoss\.pairing.*closed_form") as rec:
        form = output_loss.pairing
    _points_here(rec)
    assert form is output_loss.closed_form is losses.CLOSED_FORMS["sse", "identity"]


def test_cli_pairings_are_checked_pairs():
    from sopt import cli
    with _warns(r"sopt\.cli\.PAIRINGS.*CHECKED_PAIRS") as rec:
        pairs = cli.PAIRINGS
    _points_here(rec)
    assert pairs is cli.CHECKED_PAIRS and ("identity", "sse") in pairs


# ------------------------------------------------------------- recycle=
def test_network_passes_reuse_is_recycle():
    net, obj, w = _problem()
    delta = np.ones((5, 2))
    old = net.propagate(w, obj.X)
    old_sweep = net.backward(old, delta)
    old_a1, old_delta1 = old.a[1], old_sweep.deltas[0]
    expected = net.backward(net.propagate(2 * w, obj.X), delta)
    with _warns(r"propagate\(\.\.\., reuse=\).*recycle=") as rec:
        fp = net.propagate(2 * w, obj.X, reuse=old)
    with _warns(r"backward\(\.\.\., reuse=\).*recycle=") as rec2:
        sweep = net.backward(fp, delta, reuse=old_sweep)
    _points_here(list(rec) + list(rec2))
    assert fp.a[1] is old_a1 and sweep.deltas[0] is old_delta1      # recycled
    for d, e in zip(sweep.deltas, expected.deltas):
        np.testing.assert_array_equal(d, e)


# ---------------------------------------------- pattern_errors: E_n per pattern
def test_batch_pass_errors_is_pattern_errors():
    _, obj, w = _problem()
    batch = next(obj.at(w).batches())
    with _warns(r"BatchPass\.errors\(\).*pattern_errors\(\)") as rec:
        E = batch.errors()
    _points_here(rec)
    np.testing.assert_array_equal(E, obj.pattern_errors(w))
    assert E.shape == (5,) and np.all(E > 0)


def test_output_loss_values_is_pattern_errors():
    _, obj, w = _problem("softmax_ce", "softmax")
    fp = obj.net.propagate(w, obj.X)
    with _warns(r"OutputLoss\.values\(\).*pattern_errors\(\)") as rec:
        E = obj.output_loss.values(fp.a[-1], fp.y, obj.T)
    _points_here(rec)
    np.testing.assert_array_equal(E, obj.pattern_errors(w))


# ----------------------------------------------- Network.used_weight_mask
def test_network_active_weights_is_used_weight_mask():
    net = sopt.Network(n_inputs=2)
    net.add_layer(2, "identity", inputs=[net.input], output=True,
                  masks={net.input: np.array([[1, 0], [1, 1]])})
    with _warns(r"Network\.active_weights\(\).*used_weight_mask\(\)") as rec:
        active = net.active_weights()
    _points_here(rec)
    np.testing.assert_array_equal(active, net.used_weight_mask())
    np.testing.assert_array_equal(active, [1, 0, 1, 1, 1, 1])


# --------------------------------------------------------- sopt.tanh_table
def test_fastmath_module_is_tanh_table(monkeypatch):
    import sys
    import sopt.tanh_table
    monkeypatch.delitem(sys.modules, "sopt.fastmath", raising=False)
    monkeypatch.delattr(sopt, "fastmath", raising=False)
    with _warns(r"sopt\.fastmath.*sopt\.tanh_table") as rec:
        import sopt.fastmath as fastmath
    _points_here(rec)
    assert fastmath is sopt.tanh_table         # one module: one choice of method
    x = np.linspace(-3, 3, 7)
    np.testing.assert_array_equal(fastmath.tanh(x), sopt.tanh_table.tanh(x))


# ------------------------------------ the estimators' fitted precisions
@pytest.fixture(scope="module")
def fitted_regressor():
    import warnings
    from sopt.bayes import BayesianMLPRegressor
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (20, 1))
    y = np.sin(3 * X[:, 0]) + 0.1 * rng.standard_normal(20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sopt.optimize.ConvergenceWarning)
        return BayesianMLPRegressor(hidden=(2,), max_cycles=3).fit(X, y)


@pytest.mark.parametrize("old, new", [("alpha_", "prior_precision_"),
                                      ("beta_", "noise_precision_"),
                                      ("n_iter_", "n_cycles_")])
def test_estimator_attributes_renamed(fitted_regressor, old, new):
    reg = fitted_regressor
    with _warns(rf"BayesianMLPRegressor\.{old}.*{new}") as rec:
        value = getattr(reg, old)
    _points_here(rec)
    assert value == getattr(reg, new)
    assert old not in vars(reg)
    with pytest.raises(AttributeError):         # read-only
        setattr(reg, old, 1.0)


def test_unfitted_estimator_has_no_old_attribute_and_does_not_warn():
    import warnings
    from sopt.bayes import BayesianMLPClassifier
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not hasattr(BayesianMLPClassifier(), "alpha_")
        assert not hasattr(BayesianMLPClassifier(), "beta_")     # regressor only


def test_a_pickle_with_the_old_attribute_names_unpickles_with_the_new(fitted_regressor):
    import pickle
    reg = fitted_regressor
    state = dict(reg.__getstate__())           # a copy: not the estimator's own dict
    for old, new in (("alpha_", "prior_precision_"), ("beta_", "noise_precision_"),
                     ("n_iter_", "n_cycles_")):
        state[old] = state.pop(new)             # as written before the renames
    old_pickle = pickle.dumps(state)
    copy = type(reg).__new__(type(reg))
    copy.__setstate__(pickle.loads(old_pickle))
    assert copy.prior_precision_ == reg.prior_precision_
    assert copy.noise_precision_ == reg.noise_precision_
    assert copy.n_cycles_ == reg.n_cycles_
    assert not {"alpha_", "beta_", "n_iter_"} & set(vars(copy))
