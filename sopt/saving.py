"""Saving and loading without pickle: ``sopt.save(path, obj)``, ``sopt.load(path)``.

One portable file: a NumPy ``.npz`` archive holding every array, plus a JSON
header (entry ``header``) with the format version, the sopt version, what the
file holds and a SHA-256 digest of the arrays. Loading reads it with
``allow_pickle=False`` and rebuilds objects only from a fixed table of
classes, so a file can never run code. A truncated, corrupted or altered file
raises ``ValueError``.

What can be stored: a :class:`~sopt.Network` (topology, masks, built-in
activations by name), a ``(net, w)`` tuple, and any object whose class is
registered with :func:`register` (the Laplace posterior, the evidence
result and the fitted estimators of :mod:`sopt.bayes` register themselves),
with numbers, strings, None, lists, tuples, dicts and numeric or string
arrays inside. A user-defined activation or loss is refused at save time,
naming it: its code cannot be stored without pickle.

Files written by format version N are read by every later sopt.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
import zipfile
import zlib
from typing import Callable

import numpy as np

from .activations import ACTIVATIONS, Activation
from .losses import LOSSES, Loss
from .network import Network

FORMAT = "sopt"
FORMAT_VERSION = 1
_HEADER = "header"
_ARRAY_KINDS = "biufU"          # bool, integers, floats, unicode strings

# tag -> (class, encode(obj, enc) -> JSON-able, decode(node, dec) -> obj)
_CODECS: dict[str, tuple[type, Callable, Callable]] = {}


def register(tag: str, cls: type, encode: Callable | None = None,
             decode: Callable | None = None) -> None:
    """Make instances of ``cls`` storable under the name ``tag``.

    By default the object's ``__dict__`` is stored and, on loading, set on an
    instance made with ``cls.__new__`` (``__init__`` is not called), which
    is what pickle does; ``encode``/``decode`` replace either step.
    """
    _CODECS[tag] = (cls, encode or _encode_vars, decode or _decoder_of_vars(cls))


def _encode_vars(obj, enc) -> dict:
    return enc.value(vars(obj), type(obj).__name__)


def _decoder_of_vars(cls):
    def decode(node, dec):
        state = dec.value(node)
        if not isinstance(state, dict):
            raise ValueError(f"{cls.__name__}: expected a dict of attributes")
        obj = cls.__new__(cls)
        obj.__dict__.update(state)
        return obj
    return decode


def _tag_of(obj) -> str | None:
    for tag, (cls, _, _) in _CODECS.items():
        if isinstance(obj, cls):
            return tag
    return None


class _Encoder:
    """Turns a value into JSON-able nodes, collecting its arrays. An object
    met twice (the network of an estimator and of its posterior) is stored
    once and referred to by number."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.seen: dict[int, int] = {}
        self.objects: list = []        # keeps the ids in `seen` alive

    def value(self, v, where: str):
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, np.integer)) and not isinstance(v, np.bool_):
            return int(v)
        if isinstance(v, (float, np.floating)):
            return {"float": repr(float(v))}       # exact, and NaN/inf too
        if isinstance(v, np.bool_):
            return bool(v)
        if isinstance(v, np.ndarray):
            return self.array(v, where)
        if isinstance(v, (list, tuple)):
            kind = "list" if isinstance(v, list) else "tuple"
            return {kind: [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]}
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise TypeError(f"sopt.save: {where}: dict keys must be strings")
            return {"dict": {k: self.value(x, f"{where}.{k}") for k, x in v.items()}}
        tag = _tag_of(v)
        if tag is None:
            raise TypeError(f"sopt.save: {where}: cannot store a "
                            f"{type(v).__name__} without pickle")
        if id(v) in self.seen:
            return {"ref": self.seen[id(v)]}
        self.seen[id(v)] = number = len(self.objects)
        self.objects.append(v)
        return {"object": tag, "id": number, "state": _CODECS[tag][1](v, self)}

    def array(self, a: np.ndarray, where: str) -> dict:
        if a.dtype.kind == "O" and all(isinstance(x, str) for x in a.flat):
            a = a.astype(str)
        if a.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"sopt.save: {where}: arrays of dtype {a.dtype} cannot "
                            "be stored without pickle (numbers and strings can)")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = np.ascontiguousarray(a)
        return {"array": key}


class _Decoder:
    """Rebuilds values from nodes; every malformed node is a ValueError."""

    def __init__(self, arrays: dict):
        self.arrays = arrays
        self.objects: dict[int, object] = {}

    def value(self, node):
        if node is None or isinstance(node, (bool, str, int)):
            return node
        if not isinstance(node, dict) or not 1 <= len(node) <= 3:
            raise ValueError(f"malformed node {str(node)[:60]!r}")
        if "float" in node:
            return float(node["float"])
        if "array" in node:
            return self.arrays[node["array"]].copy()
        if "list" in node:
            return [self.value(x) for x in node["list"]]
        if "tuple" in node:
            return tuple(self.value(x) for x in node["tuple"])
        if "dict" in node:
            return {str(k): self.value(x) for k, x in node["dict"].items()}
        if "ref" in node:
            return self.objects[node["ref"]]
        if "object" in node:
            if node["object"] not in _CODECS:
                raise ValueError(f"unknown object type {node['object']!r}")
            obj = _CODECS[node["object"]][2](node["state"], self)
            self.objects[node["id"]] = obj
            return obj
        raise ValueError(f"malformed node {str(node)[:60]!r}")


def _digest(content, arrays: dict) -> str:
    """SHA-256 of the header's content and of every array."""
    h = hashlib.sha256(json.dumps(content, sort_keys=True).encode())
    for key in sorted(arrays):
        a = arrays[key]
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save(path, obj) -> None:
    """Write ``obj`` (a Network, a ``(net, w)`` tuple, a Laplace posterior, a
    fitted estimator, ...) to ``path`` as one ``.npz`` file with a JSON
    header; the file is replaced atomically. Raises TypeError or ValueError,
    before writing anything, for what cannot be stored without pickle (a
    user-defined activation or loss, an object array)."""
    enc = _Encoder()
    content = enc.value(obj, "obj")
    from . import __version__
    header = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "sopt_version": __version__, "holds": _describe(obj),
              "digest": _digest(content, enc.arrays), "content": content}
    raw = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    path = os.fspath(path)
    # a new file beside the target (the umask's permissions), renamed over it
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "xb") as f:
            np.savez(f, **{_HEADER: raw}, **enc.arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _describe(obj) -> str:
    if isinstance(obj, tuple):
        return "tuple of " + ", ".join(type(x).__name__ for x in obj)
    return type(obj).__name__


def load(path):
    """Read a file written by :func:`save` and return the object it holds.
    Never executes code from the file (``allow_pickle=False``, classes from a
    fixed table). A file that is not a sopt file, truncated, corrupted or
    altered raises ValueError; a missing file, FileNotFoundError."""
    path = os.fspath(path)
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an archive")
        with archive:
            if _HEADER not in archive.files:
                raise ValueError("no sopt header")
            header = json.loads(bytes(archive[_HEADER]).decode("utf-8"))
            arrays = {k: archive[k] for k in archive.files if k != _HEADER}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, KeyError, UnicodeDecodeError,
            zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{path}: not a readable sopt file "
                         f"(truncated, corrupted or another format): {err}") from None
    _check_header(header, arrays, path)
    try:
        return _Decoder(arrays).value(header["content"])
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as err:
        raise ValueError(f"{path}: malformed sopt file: {err}") from None


def _check_header(header, arrays: dict, path: str) -> None:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path}: not a sopt file (no sopt header)")
    version = header.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: malformed sopt file (format_version {version!r})")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: written in format version {version} by sopt "
                         f"{header.get('sopt_version')}; this sopt reads versions "
                         f"up to {FORMAT_VERSION}: upgrade sopt")
    if header.get("digest") != _digest(header.get("content"), arrays):
        raise ValueError(f"{path}: the contents do not match the file's digest: "
                         "the file was altered or corrupted")


# ----------------------------------------------------------------- network
def _builtin_name(f, table: dict, kind: str, where: str) -> str:
    if table.get(f.name) is not f:
        raise ValueError(
            f"sopt.save: {where} uses the user-defined {kind} {f.name!r}; only "
            f"built-in {kind}s ({', '.join(sorted(table))}) are stored, by name, "
            "since code cannot be saved without pickle. Pickle the object instead, "
            "or rebuild the network with your function after loading.")
    return f.name


def _encode_network(net: Network, enc: _Encoder) -> dict:
    layers = []
    for l, layer in enumerate(net.layers, start=1):
        act = _builtin_name(layer.activation, ACTIVATIONS, "activation", f"layer {l}")
        layers.append({
            "size": layer.size, "activation": act,
            "inputs": [src.index for src in layer.sources],
            "masks": [None if m is None else enc.array(m, f"layer {l} mask")
                      for m in layer.masks],
            "output": net._output is layer.node})
    return {"n_inputs": net.n_inputs, "layers": layers}


def _decode_network(node: dict, dec: _Decoder) -> Network:
    net = Network(n_inputs=node["n_inputs"])
    for layer in node["layers"]:
        inputs = list(layer["inputs"])
        masks = {src: dec.value(m) for src, m in zip(inputs, layer["masks"])
                 if m is not None}
        net.add_layer(layer["size"], layer["activation"], inputs=inputs,
                      masks=masks, output=bool(layer["output"]))
    return net


def _encode_activation(act: Activation, enc: _Encoder) -> str:
    return _builtin_name(act, ACTIVATIONS, "activation", "an estimator parameter")


def _encode_loss(loss: Loss, enc: _Encoder) -> str:
    return _builtin_name(loss, LOSSES, "loss", "an object")


def _decode_activation(name: str, dec: _Decoder) -> Activation:
    return ACTIVATIONS[name]


def _decode_loss(name: str, dec: _Decoder) -> Loss:
    return LOSSES[name]


register("Network", Network, _encode_network, _decode_network)
register("Activation", Activation, _encode_activation, _decode_activation)
register("Loss", Loss, _encode_loss, _decode_loss)
