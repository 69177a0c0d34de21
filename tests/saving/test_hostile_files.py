"""sopt.load on hostile and damaged files: every failure is a ValueError,
nothing is allocated beyond what the file's length allows, and what a
crafted file declares is checked before the objects are used; sopt.save
on awkward paths (links, FIFOs, permissions, bytes, long names)."""
import hashlib
import json
import os
import pathlib
import stat
import struct
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import sopt
from sopt.bayes import laplace

MB = 2**20


# ------------------------------------------------------------ file helpers
def _npy(shape, descr="<f8", data=b"", header=None) -> bytes:
    """A .npy member: version 1.0 header declaring ``shape`` and ``descr``
    (or the raw ``header`` text), then ``data``."""
    text = header or f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
    text = text.ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1") + data


def _zip(members, method=0, flags=0, declared=None) -> bytes:
    """A zip archive written by hand, so that what its directory declares
    (method, flags, uncompressed ``declared`` size) can be anything.
    ``members``: [(name, bytes as stored)] or [(name, bytes, method)]."""
    out, directory = b"", b""
    for name, data, *own in members:
        size = len(data) if declared is None else declared
        method = own[0] if own else method
        fields = struct.pack("<HHHHHIIIHH", 20, flags, method, 0, 0x21,
                             zlib.crc32(data), len(data), size, len(name), 0)
        directory += (b"PK\x01\x02" + struct.pack("<H", 20) + fields
                      + struct.pack("<HHHII", 0, 0, 0, 0, len(out)) + name.encode())
        out += b"PK\x03\x04" + fields + name.encode() + data
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members),
                      len(directory), len(out), 0)
    return out + directory + end


def _header_npy(content, arrays) -> bytes:
    """The header member of a file holding ``content`` and ``arrays`` (with a
    correct digest: a forger can compute it as well as sopt)."""
    h = hashlib.sha256(json.dumps(content, sort_keys=True).encode())
    for key in sorted(arrays):
        a = arrays[key]
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode() + a.tobytes())
    raw = json.dumps({"format": "sopt", "format_version": 1, "sopt_version": "0",
                      "holds": "x", "digest": h.hexdigest(), "content": content}).encode()
    return _npy((len(raw),), "|u1", raw)


def _load_peak(path):
    """(what load raised or returned, peak traced memory in bytes)."""
    tracemalloc.start()
    try:
        result = sopt.load(path)
    except Exception as err:         # noqa: BLE001 -- the type is the test's subject
        result = err
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, peak


# --------------------------------------------------------------- zip bombs
def test_declared_gigabytes_are_refused_before_allocating(tmp_path):
    """2 GiB declared by the zip directory and by the .npy header, 200 bytes
    present: refused from the declarations, without allocating them."""
    path = tmp_path / "bomb.sopt"
    member = _npy((2**28,), data=bytes(64))
    path.write_bytes(_zip([("header.npy", _header_npy({"array": "a0"}, {})),
                           ("a0.npy", member)], declared=2**31))
    assert path.stat().st_size < 10_000
    result, peak = _load_peak(path)
    assert isinstance(result, ValueError), repr(result)
    assert peak < 100 * MB


def test_npy_header_declaring_a_huge_array_is_a_value_error(tmp_path):
    path = tmp_path / "huge.sopt"
    path.write_bytes(_zip([("header.npy", _header_npy({"array": "a0"}, {})),
                           ("a0.npy", _npy((10**10,), data=bytes(80)))]))
    result, peak = _load_peak(path)
    assert isinstance(result, ValueError) and "do not match" in str(result), repr(result)
    assert peak < 100 * MB


def test_compressed_members_are_refused_without_decompressing(tmp_path):
    """A deflate bomb (8 MiB of zeros in about 8 KB) is never inflated."""
    path = tmp_path / "deflate.sopt"
    data = _npy((MB,), data=bytes(8 * MB))
    packed = zlib.compressobj(9, zlib.DEFLATED, -15)       # raw deflate, as zip has it
    path.write_bytes(_zip([
        ("header.npy", _header_npy({"array": "a0"}, {"a0": np.zeros(MB)})),
        ("a0.npy", packed.compress(data) + packed.flush(), zipfile.ZIP_DEFLATED)],
        declared=len(data)))
    assert path.stat().st_size < 10_000
    result, peak = _load_peak(path)
    assert isinstance(result, ValueError) and "compressed" in str(result), repr(result)
    assert peak < 4 * MB


def test_loading_costs_one_copy_of_the_arrays(tmp_path):
    """The digest is computed while reading: peak memory is the arrays
    themselves (8 MiB here) and a few read buffers of 256 KiB, well under
    the two copies (or three) a separate digest pass would take."""
    a = np.arange(MB, dtype=float)
    sopt.save(tmp_path / "big.sopt", {"a": a})
    result, peak = _load_peak(tmp_path / "big.sopt")
    np.testing.assert_array_equal(result["a"], a)
    assert peak < 1.5 * a.nbytes


# ----------------------------------------------- damaged and crafted files
@pytest.fixture(scope="module")
def files():
    """Bytes of valid files: a Network, a (net, w) tuple and a posterior."""
    return {name: _valid_bytes(name) for name in ("net", "net_w", "posterior")}


def _valid_objects():
    net = sopt.Network(n_inputs=2)
    h = net.add_layer(3, "tanh", inputs=[net.input],
                      masks={net.input: np.array([[1, 0], [1, 1], [0, 1]])})
    net.add_layer(1, "identity", inputs=[h, net.input], output=True)
    w = net.init_weights(seed=1)
    X = np.linspace(-1, 1, 12).reshape(6, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = laplace(net, X, X[:, :1] ** 2, w, alpha=1.0, beta=10.0,
                       hessian="gauss_newton")
    return {"net": net, "net_w": (net, w), "posterior": post}


_CACHE = {}


def _valid_bytes(name) -> bytes:
    if not _CACHE:
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            for key, obj in _valid_objects().items():
                sopt.save(os.path.join(d, key), obj)
                _CACHE[key] = pathlib.Path(d, key).read_bytes()
    return _CACHE[name]


def _directory_start(raw: bytes) -> int:
    return struct.unpack("<I", raw[-6:-2])[0]


def test_every_flipped_byte_of_the_zip_directory_is_a_value_error(files, tmp_path):
    raw = files["net"]
    path = tmp_path / "f.sopt"
    for i in range(_directory_start(raw), len(raw)):
        damaged = bytearray(raw)
        damaged[i] ^= 0xFF
        path.write_bytes(bytes(damaged))
        try:
            sopt.load(path)
        except ValueError:
            pass


@pytest.mark.parametrize("method, flags", [(99, 0), (0, 1), (12, 0)],
                         ids=["unknown method", "encrypted", "bzip2"])
def test_members_the_zip_marks_oddly_are_value_errors(method, flags, tmp_path):
    path = tmp_path / "odd.sopt"
    path.write_bytes(_zip([("header.npy", _header_npy(None, {}))], method, flags))
    with pytest.raises(ValueError, match="not a readable sopt file"):
        sopt.load(path)


def test_unparsable_npy_header_is_a_value_error(tmp_path):
    path = tmp_path / "tok.sopt"
    broken = _npy(None, header="{'descr': '<f8', 'shape': (3,), 'fortran_order': \"")
    path.write_bytes(_zip([("header.npy", _header_npy({"array": "a0"}, {})),
                           ("a0.npy", broken)]))
    with pytest.raises(ValueError, match="not a readable sopt file"):
        sopt.load(path)


def test_deeply_nested_header_is_a_value_error(tmp_path):
    content = None
    for _ in range(300):                 # 600 JSON levels
        content = {"list": [content]}
    path = tmp_path / "deep.sopt"
    path.write_bytes(_zip([("header.npy", _header_npy(content, {}))]))
    with pytest.raises(ValueError, match="nested more than"):
        sopt.load(path)


def _forge(raw: bytes, edit_content=None, edit_arrays=None) -> bytes:
    """A file's bytes rewritten with its content and/or arrays edited and a
    digest that matches them."""
    import io
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        arrays = {n: z[n] for n in z.files if n != "header"}
        content = json.loads(bytes(z["header"]).decode())["content"]
    if edit_content:
        content = edit_content(content)
    if edit_arrays:
        arrays = edit_arrays(arrays)
    members = [("header.npy", _header_npy(content, arrays))]
    for key, a in arrays.items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asanyarray(a), allow_pickle=False)
        members.append((f"{key}.npy", buf.getvalue()))
    return _zip(members)


REFUSED_DTYPES = [np.complex128, "datetime64[s]", "timedelta64[s]", "V8", [("x", "<f8")]]


@pytest.mark.parametrize("dtype", REFUSED_DTYPES, ids=str)
def test_arrays_save_refuses_are_refused_by_load(dtype, files, tmp_path):
    def retype(arrays):         # the weights w, not the mask
        return {k: np.zeros(a.shape, dtype) if a.ndim == 1 else a
                for k, a in arrays.items()}
    path = tmp_path / "forged.sopt"
    path.write_bytes(_forge(files["net_w"], edit_arrays=retype))
    with pytest.raises(ValueError):
        sopt.load(path)


def test_zero_dimensional_arrays_round_trip(tmp_path):
    value = {"x": np.array(2.5), "i": np.array(7, dtype=np.int32), "s": np.array("ab")}
    sopt.save(tmp_path / "z.sopt", value)
    back = sopt.load(tmp_path / "z.sopt")
    for key, a in value.items():
        assert back[key].shape == () and back[key].dtype == a.dtype
        assert back[key] == a


def _posterior_key(raw: bytes, name: str) -> str:
    """The array key of the stored attribute or state entry ``name`` (a dotted
    name reaches into a nested dict: "curvature.H")."""
    import io
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        content = json.loads(bytes(z["header"]).decode())["content"]
    node = content["state"]
    for part in name.split("."):
        node = node["dict"][part]
    return node["array"]


@pytest.mark.parametrize("name", ["w_map", "alpha", "data_gradient", "curvature.covered",
                                  "curvature.H"])
def test_posterior_arrays_of_the_wrong_shape_are_refused(name, files, tmp_path):
    raw = files["posterior"]
    key = _posterior_key(raw, name)

    def shrink(arrays):
        return {**arrays, key: arrays[key][:-1]}
    path = tmp_path / "forged.sopt"
    path.write_bytes(_forge(raw, edit_arrays=shrink))
    with pytest.raises(ValueError, match=f"LaplacePosterior.{name}"):
        sopt.load(path)


@pytest.fixture(scope="module")
def sampled_file(tmp_path_factory):
    """Bytes of a saved SampledPosterior of a masked network, hyperprior on."""
    net, w = _valid_objects()["net_w"]
    X = np.linspace(-1, 1, 12).reshape(6, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sp = sopt.bayes.sample_posterior(net, X, X[:, :1] ** 2, w, alpha=1.0, beta=10.0,
                                         n_draws=4, n_warmup=2, hyperprior="gamma")
    path = tmp_path_factory.mktemp("sampled") / "sp.sopt"
    sopt.save(path, sp)
    return path.read_bytes()


@pytest.mark.parametrize("name", ["draws", "used", "prior_alpha", "log_density",
                                  "divergent", "beta", "alpha", "rhat", "step_size"])
def test_sampled_posterior_arrays_of_the_wrong_shape_are_refused(name, sampled_file,
                                                                 tmp_path):
    key = _posterior_key(sampled_file, name)

    def shrink(arrays):            # the last axis: draws sets M and S for the rest
        return {**arrays, key: arrays[key][..., :-1]}
    path = tmp_path / "forged.sopt"
    path.write_bytes(_forge(sampled_file, edit_arrays=shrink))
    with pytest.raises(ValueError, match=f"SampledPosterior.{name}"):
        sopt.load(path)


def test_network_mask_of_the_wrong_shape_is_refused(files, tmp_path):
    def widen(arrays):
        return {k: np.ones((3, 3)) if a.shape == (3, 2) else a for k, a in arrays.items()}
    path = tmp_path / "forged.sopt"
    path.write_bytes(_forge(files["net"], edit_arrays=widen))
    with pytest.raises(ValueError, match="masks: mask"):
        sopt.load(path)


# -------------------------------------------------------------- the fuzzer
def _paths(node, at=()):
    """Every place in a parsed JSON value: tuples of keys and indices."""
    yield at
    items = node.items() if isinstance(node, dict) else (
        enumerate(node) if isinstance(node, list) else ())
    for k, v in items:
        yield from _paths(v, at + (k,))


def _replace(node, at, new):
    if not at:
        return new
    node[at[0]] = _replace(node[at[0]], at[1:], new)
    return node


JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-3, 40),
                        st.sampled_from(["tanh", "softmax", "sse", "binary_ce", "a0",
                                         "a1", "Network", "LaplacePosterior", ""]),
                        st.builds(lambda f: {"float": repr(f)}, st.floats()))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["list", "tuple", "dict", "ref", "array", "as",
                                     "object", "id", "state", "items"]), inner,
                    max_size=3)), max_leaves=6)
FORGED_ARRAYS = st.sampled_from([
    np.zeros(0), np.zeros(()), np.ones((2, 2)), np.ones(39), np.ones(17, np.int64),
    np.array(["x", "y"]), np.ones(3, bool), np.full(18, np.nan), np.ones((13, 13))])


@st.composite
def damaged_files(draw):
    raw = _valid_bytes(draw(st.sampled_from(["net", "net_w", "posterior"])))
    how = draw(st.sampled_from(["flip", "truncate", "forge content", "forge array"]))
    if how == "flip":
        damaged = bytearray(raw)
        for i in draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=4)):
            damaged[i] ^= draw(st.integers(1, 255))
        return bytes(damaged)
    if how == "truncate":
        return raw[:draw(st.integers(0, len(raw) - 1))]
    if how == "forge content":
        def edit(content):
            at = draw(st.sampled_from(list(_paths(content))))
            return _replace(content, at, draw(JSON_VALUES))
        return _forge(raw, edit_content=edit)

    def edit_arrays(arrays):
        key = draw(st.sampled_from(sorted(arrays)))
        return {**arrays, key: draw(FORGED_ARRAYS)}
    return _forge(raw, edit_arrays=edit_arrays)


def _use(obj):
    """Call what a user would call on a loaded object (tiny inputs)."""
    X = np.zeros((2, 2))
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], sopt.Network) \
            and isinstance(obj[1], np.ndarray) and obj[1].dtype.kind == "f":
        obj[0].forward(obj[1], X)
    elif isinstance(obj, sopt.Network) and obj.n_weights < 10_000:
        obj.forward(np.zeros(obj.n_weights), X)
    elif isinstance(obj, sopt.bayes.LaplacePosterior):
        obj.predict(X)
        obj.sample(2, seed=0)


def _damaged_file_fails_only_with_a_value_error(damaged, tmp_path):
    path = tmp_path / "fuzz.sopt"
    path.write_bytes(damaged)
    result, peak = _load_peak(path)
    assert peak < 100 * MB
    if isinstance(result, Exception):
        assert isinstance(result, ValueError), repr(result)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # NaN weights forged in
        try:
            _use(result)
        except ValueError:
            pass        # an unusable but well-formed object refuses with ValueError


def _fuzz_settings(n):
    return settings(max_examples=n, deadline=2000, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


# slow: 150 files (1.4 s); the test below draws 40 by the same strategy, fast
@pytest.mark.slow
@_fuzz_settings(150)
@given(damaged=damaged_files())
def test_damaged_and_forged_files_fail_only_with_value_errors(damaged, tmp_path):
    _damaged_file_fails_only_with_a_value_error(damaged, tmp_path)


@_fuzz_settings(40)
@given(damaged=damaged_files())
def test_forty_damaged_and_forged_files_fail_only_with_value_errors(damaged, tmp_path):
    _damaged_file_fails_only_with_a_value_error(damaged, tmp_path)


# ------------------------------------------------------------------- paths
@pytest.fixture
def net():
    return sopt.mlp([1, 2, 1])


def test_save_keeps_the_permissions_of_an_existing_file(net, tmp_path):
    path = tmp_path / "m.sopt"
    sopt.save(path, net)
    os.chmod(path, 0o600)
    sopt.save(path, net)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_writes_through_a_symlink(net, tmp_path):
    target, link = tmp_path / "real.sopt", tmp_path / "link.sopt"
    sopt.save(target, sopt.mlp([1, 1]))
    link.symlink_to(target)
    sopt.save(link, net)
    assert link.is_symlink()
    assert sopt.load(target).n_weights == net.n_weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.sopt", "real.sopt"]


def test_save_and_load_refuse_a_fifo_and_a_directory(net, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a FIFO"), (tmp_path, "a directory")):
        with pytest.raises(ValueError, match=f"path: .*{path.name}.* is {kind}"):
            sopt.save(path, net)
        with pytest.raises(ValueError, match=f"is {kind}"):
            sopt.load(path)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_save_accepts_bytes_pathlike_and_long_names(net, tmp_path):
    long_name = tmp_path / ("n" * 245 + ".sopt")           # 250 characters
    sopt.save(long_name, net)
    as_bytes = os.fsencode(tmp_path / "b.sopt")
    sopt.save(as_bytes, net)
    assert sopt.load(as_bytes).n_weights == sopt.load(long_name).n_weights == net.n_weights


def test_bad_paths_name_the_argument(net, tmp_path):
    with pytest.raises(ValueError, match="path: the file name is empty"):
        sopt.save("", net)
    with pytest.raises(TypeError, match="path: expected a file name"):
        sopt.save(3, net)
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        sopt.save(tmp_path / "no-such-dir" / "m.sopt", net)
    assert not [p for p in tmp_path.iterdir()]



def test_an_attribute_shadowing_a_method_is_refused_a_renamed_one_renamed(tmp_path):
    """A file cannot set what the class defines (here a method); an old
    attribute name the class has renamed (now a deprecated property) is read
    under its new name instead."""
    from sopt.bayes import BayesianMLPRegressor
    est = BayesianMLPRegressor()
    est.__dict__["fit"] = 1.0
    sopt.save(tmp_path / "method.sopt", est)
    with pytest.raises(ValueError, match="'fit' cannot be set from a file"):
        sopt.load(tmp_path / "method.sopt")
    est = BayesianMLPRegressor()
    est.__dict__["beta_"] = 2.0
    sopt.save(tmp_path / "renamed.sopt", est)
    assert vars(sopt.load(tmp_path / "renamed.sopt"))["noise_precision_"] == 2.0
