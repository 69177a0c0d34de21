"""Pickling and sopt.save / sopt.load: round trips give bit-identical outputs,
user code is refused by name, damaged files raise ValueError, and the file
committed by format version 1 still loads."""
import json
import pickle
import warnings

import joblib
import numpy as np
import pytest

import sopt
from helpers import DATA
from sopt.bayes import BayesianMLPClassifier, BayesianMLPRegressor, evidence_fit


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (25, 2))
    t = np.sin(np.pi * X[:, 0]) + 0.1 * rng.standard_normal(25)
    return X, t, rng.uniform(-1, 1, (7, 2))


@pytest.fixture(scope="module")
def dag():
    net = sopt.Network(n_inputs=2)
    h1 = net.add_layer(4, "tanh", inputs=[net.input])
    h2 = net.add_layer(3, "softplus", inputs=[h1, net.input],
                       masks={h1: np.tril(np.ones((3, 4)))})
    net.add_layer(1, "identity", inputs=[h2, net.input], output=True)
    return net


@pytest.fixture(scope="module")
def fitted(data):
    X, t, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = BayesianMLPRegressor(hidden=(3,), max_cycles=4).fit(X, t)
        clf = BayesianMLPClassifier(hidden=(2,), max_cycles=4).fit(
            X, np.where(X[:, 1] > 0, "up", "down"))
    return reg, clf


def _outputs(obj, X):
    """Everything an object predicts on X, as a list of arrays."""
    if isinstance(obj, BayesianMLPRegressor):
        return list(obj.predict(X, return_std=True))
    if isinstance(obj, BayesianMLPClassifier):
        return [obj.predict_proba(X), obj.predict(X)]
    if isinstance(obj, sopt.bayes.LaplacePosterior):
        return list(obj.predict(X)) + [np.array(obj.log_evidence)]
    raise AssertionError(type(obj))


ROUND_TRIPS = {
    "pickle": lambda obj, path: pickle.loads(pickle.dumps(obj)),
    "joblib": lambda obj, path: (joblib.dump(obj, path), joblib.load(path))[1],
    "sopt": lambda obj, path: (sopt.save(path, obj), sopt.load(path))[1],
}


@pytest.mark.parametrize("how", ROUND_TRIPS)
def test_network_and_weights_round_trip_bit_identical(how, dag, data, tmp_path):
    X = data[0]
    w = dag.init_weights(seed=5)
    net2, w2 = ROUND_TRIPS[how]((dag, w), tmp_path / "f")
    assert net2.n_weights == dag.n_weights
    np.testing.assert_array_equal(w2, w)
    np.testing.assert_array_equal(net2.forward(w2, X), dag.forward(w, X))
    # the built-in activations come back as the table's own objects
    assert [l.activation for l in net2.layers] == [l.activation for l in dag.layers]
    assert net2.layers[0].activation is sopt.activations.TANH
    np.testing.assert_array_equal(net2.layers[1].masks[0], dag.layers[1].masks[0])


@pytest.mark.parametrize("how", ROUND_TRIPS)
@pytest.mark.parametrize("which", ["regressor", "classifier", "posterior"])
def test_bayesian_objects_round_trip_bit_identical(how, which, fitted, data, tmp_path):
    reg, clf = fitted
    obj = {"regressor": reg, "classifier": clf, "posterior": reg.posterior_}[which]
    copy = ROUND_TRIPS[how](obj, tmp_path / "f")
    X_new = data[2]
    for a, b in zip(_outputs(obj, X_new), _outputs(copy, X_new)):
        np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def sampled(data):
    """Estimators fitted with inference="sampling" (few draws; a hyperprior
    for the classifier, so that per-draw alphas are stored too)."""
    X, t, _ = data
    settings = dict(hidden=(), max_cycles=4, inference="sampling", n_draws=8, n_warmup=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = BayesianMLPRegressor(**settings).fit(X, t)
        clf = BayesianMLPClassifier(hyperprior="gamma", **settings).fit(
            X, np.where(X[:, 1] > 0, "up", "down"))
    return reg, clf


@pytest.mark.parametrize("how", ROUND_TRIPS)
@pytest.mark.parametrize("which", [0, 1])
def test_sampled_estimators_round_trip_bit_identical(how, which, sampled, data, tmp_path):
    est = sampled[which]
    copy = ROUND_TRIPS[how](est, tmp_path / "f")
    for a, b in zip(_outputs(est, data[2]), _outputs(copy, data[2])):
        np.testing.assert_array_equal(a, b)
    sp, sp2 = est.sampled_posterior_, copy.sampled_posterior_
    np.testing.assert_array_equal(sp2.draws, sp.draws)
    assert sp2.net is copy.network_
    assert (copy.rhat_, copy.ess_, copy.n_divergent_) == (est.rhat_, est.ess_, est.n_divergent_)
    assert sp2.summary() == sp.summary()


def test_objective_and_evidence_result_pickle(data, dag):
    X, t, _ = data
    obj = sopt.Objective(dag, X, t, alpha=0.1)
    w = dag.init_weights(seed=1)
    twin = pickle.loads(pickle.dumps(obj))
    np.testing.assert_array_equal(twin.gradient(w), obj.gradient(w))
    np.testing.assert_array_equal(twin.hessian(w), obj.hessian(w))
    res = evidence_fit(sopt.mlp([2, 2, 1]), X, t, max_cycles=2)
    res2 = pickle.loads(pickle.dumps(res))
    assert res2.log_evidence == res.log_evidence
    np.testing.assert_array_equal(res2.w, res.w)


def test_sopt_file_is_npz_with_json_header(dag, tmp_path):
    sopt.save(tmp_path / "net.sopt", dag)
    with np.load(tmp_path / "net.sopt", allow_pickle=False) as z:
        header = json.loads(bytes(z["header"]).decode())
    assert header["format"] == "sopt" and header["format_version"] == sopt.saving.FORMAT_VERSION == 2
    assert header["sopt_version"] == sopt.__version__
    assert header["holds"] == "Network"


def test_user_defined_activation_is_refused_by_name(tmp_path):
    def cube(a):
        return a ** 3
    net = sopt.Network(n_inputs=1)
    net.add_layer(2, sopt.Activation(cube, cube, cube, name="cube"), inputs=[net.input])
    net.add_layer(1, "identity", inputs=[1], output=True)
    with pytest.raises(ValueError, match="layer 1 uses the user-defined activation 'cube'"):
        sopt.save(tmp_path / "net.sopt", net)
    assert not list(tmp_path.iterdir())          # nothing written, no temporary left


def test_unstorable_values_are_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match=r"obj\.f: cannot store a builtin_function"):
        sopt.save(tmp_path / "x.sopt", {"f": print})
    with pytest.raises(TypeError, match="dtype object"):
        sopt.save(tmp_path / "x.sopt", np.array([1, "a", None], dtype=object))
    assert not list(tmp_path.iterdir())


@pytest.fixture
def saved(fitted, tmp_path):
    path = tmp_path / "reg.sopt"
    sopt.save(path, fitted[0])
    return path


def test_truncated_file_is_a_value_error(saved):
    raw = saved.read_bytes()
    for cut in (10, len(raw) // 2, len(raw) - 30):
        saved.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="not a readable sopt file"):
            sopt.load(saved)


def _rewrite(path, edit_header=None, edit_array=None):
    """Rewrite the archive with its JSON header and/or its arrays edited."""
    with np.load(path, allow_pickle=False) as z:
        members = {n: z[n] for n in z.files}
    header = json.loads(bytes(members.pop("header")).decode())
    if edit_header:
        header = edit_header(header)
    if edit_array:
        members = {n: edit_array(a) for n, a in members.items()}
    raw = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, header=raw, **members)


def test_flipped_byte_is_a_value_error(saved):
    raw = bytearray(saved.read_bytes())
    raw[len(raw) // 2] ^= 1
    saved.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="sopt file|altered or corrupted"):
        sopt.load(saved)


def test_altered_array_is_a_value_error(saved):
    def nudge(a):
        return a * 1.0000001 if a.dtype.kind == "f" else a
    _rewrite(saved, edit_array=nudge)
    with pytest.raises(ValueError, match="altered or corrupted"):
        sopt.load(saved)


def test_altered_header_is_a_value_error(saved):
    def change_a_number(header):
        header["content"] = json.loads(json.dumps(header["content"]).replace(
            '"n_inputs": 2', '"n_inputs": 3'))
        return header
    _rewrite(saved, edit_header=change_a_number)
    with pytest.raises(ValueError, match="altered or corrupted"):
        sopt.load(saved)


def test_other_files_and_newer_versions_are_value_errors(tmp_path, saved):
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(ValueError, match="not a sopt file|not a readable"):
        sopt.load(tmp_path / "plain.npy")
    (tmp_path / "text.sopt").write_text("hello")
    with pytest.raises(ValueError, match="not a readable sopt file"):
        sopt.load(tmp_path / "text.sopt")
    with pytest.raises(FileNotFoundError):
        sopt.load(tmp_path / "missing.sopt")
    _rewrite(saved, edit_header=lambda header: {**header, "format_version": 99})
    with pytest.raises(ValueError, match="format version 99.*upgrade sopt"):
        sopt.load(saved)


def test_file_written_by_format_version_1_still_loads():
    content = sopt.load(DATA / "format1.sopt")
    X_new = content["X_new"]
    mean, std = content["regressor"].predict(X_new, return_std=True)
    # another machine's BLAS may round matrix products differently: 1e-12
    # is far below any change in the model and far above such round-off
    np.testing.assert_allclose(mean, content["mean"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(std, content["std"], rtol=1e-12)
    np.testing.assert_allclose(content["classifier"].predict_proba(X_new),
                               content["proba"], rtol=1e-12, atol=1e-14)
    assert set(content["classifier"].classes_) == {"yes", "no"}


# ------------------------------------------------- what save refuses, clearly
def test_a_value_that_contains_itself_is_refused_naming_it(tmp_path):
    loop = [1.0]
    loop.append(loop)
    with pytest.raises(ValueError, match=r"obj\[1\] contains itself"):
        sopt.save(tmp_path / "x.sopt", loop)
    est = BayesianMLPRegressor()
    est.me_ = est               # an object that refers to itself could not be rebuilt
    with pytest.raises(ValueError, match=r"BayesianMLPRegressor\.me_ contains itself"):
        sopt.save(tmp_path / "x.sopt", est)
    nested = []
    for _ in range(sopt.saving.MAX_NESTING + 1):
        nested = [nested]
    with pytest.raises(ValueError, match="nested more than"):
        sopt.save(tmp_path / "x.sopt", nested)
    assert not list(tmp_path.iterdir())


def _tanh_lookalike():
    """An activation of the user's own, named like the built-in tanh."""
    return sopt.Activation(np.sin, np.cos, lambda a: -np.sin(a), name="tanh")


def test_user_code_named_like_a_builtin_is_refused(data, tmp_path):
    net = sopt.Network(n_inputs=1)
    net.add_layer(2, _tanh_lookalike(), inputs=[net.input])
    net.add_layer(1, "identity", inputs=[1], output=True)
    with pytest.raises(ValueError, match="user-defined activation 'tanh'"):
        sopt.save(tmp_path / "x.sopt", net)
    sse = sopt.losses.LOSSES["sse"]
    with pytest.raises(ValueError, match="user-defined loss 'sse'"):
        sopt.save(tmp_path / "x.sopt", sopt.Loss(sse.value, sse.grad, name="sse"))
    X, t, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = BayesianMLPRegressor(hidden=(2,), activation=_tanh_lookalike(),
                                   max_cycles=1).fit(X, t)
    with pytest.raises(ValueError, match="user-defined activation 'tanh'"):
        sopt.save(tmp_path / "x.sopt", est)
    assert not list(tmp_path.iterdir())
    sopt.save(tmp_path / "x.sopt", [sse, sopt.activations.TANH])     # the built-ins
    assert sopt.load(tmp_path / "x.sopt") == [sse, sopt.activations.TANH]
    assert sopt.load(tmp_path / "x.sopt")[0] is sse


def test_a_subclass_of_a_registered_class_is_refused(tmp_path):
    class MyRegressor(BayesianMLPRegressor):
        def predict(self, X, return_std=False):
            return 0.0
    with pytest.raises(TypeError, match="cannot store a MyRegressor"):
        sopt.save(tmp_path / "x.sopt", MyRegressor())


# ----------------------------------------- everything comes back as it was
def test_dict_keys_of_every_storable_kind_round_trip(tmp_path):
    value = {0: "int", -3: np.arange(2), 2.5: "float", (1, (2, "a")): "tuple",
             None: "none", "s": {True: 1.5, (): 0}, float("inf"): [], 10**30: "big"}
    sopt.save(tmp_path / "d.sopt", value)
    back = sopt.load(tmp_path / "d.sopt")
    assert list(back) == list(value)
    assert [type(k) for k in back] == [type(k) for k in value]
    assert [type(k) for k in back["s"]] == [bool, tuple]
    np.testing.assert_array_equal(back[-3], value[-3])
    names = np.array(["x", "y"], dtype=object)        # scikit-learn's feature_names_in_
    sopt.save(tmp_path / "d.sopt", names)
    _assert_same(names, sopt.load(tmp_path / "d.sopt"))
    with pytest.raises(TypeError, match="a dict key of type frozenset"):
        sopt.save(tmp_path / "d.sopt", {frozenset(): 1})


def _assert_same(a, b, where="obj"):
    """a and b hold the same values: arrays of one dtype and shape with equal
    entries (NaN where NaN), dicts with the same keys of the same types in
    the same order, networks of the same topology; numbers equal bit for
    bit (a NumPy scalar comes back as the Python number)."""
    if isinstance(a, (float, np.floating)):
        assert isinstance(b, float) and (a == b or (np.isnan(a) and np.isnan(b))), where
        return
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert [(k, type(k)) for k in a] == [(k, type(k)) for k in b], where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, sopt.Network):
        assert repr(a) == repr(b), where
        _assert_same([l.masks for l in a.layers], [l.masks for l in b.layers], where)
    elif hasattr(a, "__dict__") and not isinstance(a, (sopt.Activation, sopt.Loss)):
        _assert_same(vars(a), vars(b), where)
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def fitted_by_default():
    """Every estimator with its defaults (hidden="auto": a dict of log
    evidences by hidden size), on data small enough to fit in a second."""
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (12, 2))
    three = np.digitize(X[:, 0] + 0.3 * rng.standard_normal(12), [-0.3, 0.3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return X, {"regressor": BayesianMLPRegressor().fit(X, np.sin(3 * X[:, 0])),
                   "two classes": BayesianMLPClassifier().fit(X, np.where(X[:, 1] > 0, "a", "b")),
                   "three classes": BayesianMLPClassifier().fit(X, three)}


# slow: fits three estimators with hidden="auto" (several candidates each);
# test_bayesian_objects_round_trip_bit_identical checks the round trip of
# fitted estimators fast
@pytest.mark.slow
@pytest.mark.parametrize("which", ["regressor", "two classes", "three classes"])
def test_estimators_fitted_by_default_round_trip_exactly(which, fitted_by_default, tmp_path):
    X, estimators = fitted_by_default
    est = estimators[which]
    assert est.evidence_by_hidden_ and 0 in est.evidence_by_hidden_
    sopt.save(tmp_path / "e.sopt", est)
    copy = sopt.load(tmp_path / "e.sopt")
    _assert_same(est, copy)
    for a, b in zip(_outputs(est, X), _outputs(copy, X)):
        np.testing.assert_array_equal(a, b)


def test_a_shared_network_is_stored_once_and_comes_back_shared(fitted, tmp_path):
    reg = fitted[0]
    sopt.save(tmp_path / "r.sopt", reg)
    with np.load(tmp_path / "r.sopt", allow_pickle=False) as z:
        header = bytes(z["header"]).decode()
    assert header.count('"object": "Network"') == 1
    assert header.count('"object": "LaplacePosterior"') == 1
    copy = sopt.load(tmp_path / "r.sopt")
    assert copy.posterior_.net is copy.network_
    assert copy.evidence_result_.posterior is copy.posterior_


# ----------------------------------------------------------- old files
def test_format_1_objects_have_every_attribute_of_a_fresh_fit(fitted):
    """What format 1 did not store is recovered (the hidden sizes, the skip
    weights, the empty candidate table) or, needing the training data, is
    the documented None (the posterior's gradient at w_MAP)."""
    content = sopt.load(DATA / "format1.sopt")
    for old, fresh in ((content["regressor"], fitted[0]), (content["classifier"], fitted[1])):
        for a, b in ((old, fresh), (old.posterior_, fresh.posterior_),
                     (old.evidence_result_, fresh.evidence_result_)):
            assert set(vars(b)) <= set(vars(a)), set(vars(b)) - set(vars(a))
        assert old.hidden_ == tuple(l.size for l in old.network_.layers[:-1])
        assert old.skip_coef_ is None and old.evidence_by_hidden_ == {}
        # parameters added since take their defaults: the older fit's inference
        assert old.get_params()["inference"] == "laplace"
        assert old.hyperprior == type(old)().hyperprior
        post = old.posterior_
        assert post.gradient is None and post.data_gradient is None
        assert post.newton_decrement is None
    assert content["regressor"].hidden_ == (3,) and content["classifier"].hidden_ == (2,)


@pytest.mark.parametrize("version", [1, 2])
def test_old_files_give_the_estimators_attributes_their_new_names(version):
    """Files written before alpha_, beta_ and n_iter_ were renamed load with
    prior_precision_, noise_precision_ and n_cycles_ in their place, with
    the values the fits had (read back from the posterior and history)."""
    content = sopt.load(DATA / f"format{version}.sopt")
    for name in ("regressor", "classifier"):
        est = content[name]
        stored = vars(est)
        assert not {"alpha_", "beta_", "n_iter_"} & set(stored)
        post = est.posterior_
        assert stored["prior_precision_"] == post.alpha[post.used][0] > 0
        assert stored["n_cycles_"] == len(est.history_["log_evidence"]) >= 1
    reg = content["regressor"]
    y_scale = getattr(reg, "y_scale_", np.ones(1))
    assert vars(reg)["noise_precision_"] == pytest.approx(
        np.atleast_1d(reg.posterior_.beta)[0] / y_scale[0] ** 2, rel=1e-15)
    assert "noise_precision_" not in vars(content["classifier"])


def test_file_written_by_format_version_2_still_loads():
    content = sopt.load(DATA / "format2.sopt")
    X_new = content["X_new"]
    # BLAS round-off between machines, as for format 1
    np.testing.assert_allclose(content["auto"].predict(X_new), content["auto_mean"],
                               rtol=1e-12, atol=1e-12)
    auto = content["auto"]
    assert {type(k) for k in auto.evidence_by_hidden_} == {int}
    assert auto.hidden_ == (2,) and auto.skip_coef_.shape == (2, 1)    # a skip layer
    assert content["zero_d"].shape == () and content["zero_d"] == 2.5
    assert content["by_key"] == {0: "int", (1, 2): "tuple", 2.5: "float"}
    np.testing.assert_allclose(content["regressor"].predict(X_new), content["mean"],
                               rtol=1e-12, atol=1e-12)
