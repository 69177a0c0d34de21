"""Pickling and sopt.save / sopt.load: round trips give bit-identical outputs,
user code is refused by name, damaged files raise ValueError, and the file
committed by format version 1 still loads."""
import json
import pathlib
import pickle
import warnings

import joblib
import numpy as np
import pytest

import sopt
from sopt.bayes import BayesianMLPClassifier, BayesianMLPRegressor, evidence_fit

DATA = pathlib.Path(__file__).parent / "data"


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
