"""Saving and loading without pickle: ``sopt.save(path, obj)``, ``sopt.load(path)``.

One portable file: a NumPy ``.npz`` archive holding every array, plus a JSON
header (entry ``header``) with the format version, the sopt version, what the
file holds and a SHA-256 digest of the arrays. Loading reads it without
pickle and rebuilds objects only from a fixed table of classes, so a file
can never run code. A truncated, corrupted, altered or crafted file raises
``ValueError``, and loading it costs no more memory than the file's size
(plus the objects it rebuilds): sizes are checked before anything is read.

What can be stored: a :class:`~sopt.Network` (topology, masks, built-in
activations by name), a ``(net, w)`` tuple, and any object whose class is
registered with :func:`register` (the Laplace posterior, the evidence
result and the fitted estimators of :mod:`sopt.bayes` register themselves),
with numbers, strings, None, lists, tuples, dicts (keys: strings, numbers,
booleans, None or tuples of these) and arrays of numbers or strings (0-d
included) inside. An object met twice is stored once and comes back as one
object. A user-defined activation or loss, or a subclass of a registered
class, is refused at save time, naming it: its code cannot be stored
without pickle. Python and NumPy scalars both come back as Python numbers.

Files written by format version N are read by every later sopt; format 2
added dicts with keys other than strings and 0-d arrays.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import secrets
import stat
import zipfile
from typing import Callable, NamedTuple

import numpy as np

from . import _archive
from ._archive import HEADER, storable_dtype
from .activations import ACTIVATIONS, Activation
from .losses import LOSSES, Loss
from .network import Network

FORMAT = "sopt"
FORMAT_VERSION = 2
#: Containers and objects nested deeper than this are refused by save (and
#: a file nested deeper by load): decoding recurses once per level.
MAX_NESTING = 100
_JSON_DEPTH = 3 * MAX_NESTING + 4     # a level is at most 3 JSON levels (items)


class _Codec(NamedTuple):
    cls: type
    encode: Callable
    decode: Callable
    subclasses: bool        # instances of subclasses too (their encoder vets them)


_CODECS: dict[str, _Codec] = {}
# tag -> module whose import registers it: classes whose module is heavy
# (the estimators import scikit-learn) are registered when first used
_REGISTERED_ON_IMPORT: dict[str, str] = {}


def register_on_import(tag: str, module: str) -> None:
    """``tag`` is registered by importing ``module`` (an absolute name), which
    :func:`load` does on meeting the tag; saving needs no more, since an
    instance exists only once its module has been imported."""
    _REGISTERED_ON_IMPORT[tag] = module


def register(tag: str, cls: type, encode: Callable | None = None,
             decode: Callable | None = None,
             check: Callable[[dict], dict] | None = None,
             subclasses: bool = False, renamed: dict | None = None) -> None:
    """Make instances of ``cls`` storable under the name ``tag``; those of
    its subclasses too only if ``subclasses`` (a subclass's own code could
    not be stored: ``encode`` must refuse it).

    By default the object's ``__dict__`` is stored and, on loading, set on an
    instance made with ``cls.__new__`` (``__init__`` is not called), which
    is what pickle does, after ``check(state)`` (if given) has vetted the
    attributes (ValueError) and returned them, upgraded if the file is old.
    An attribute may not shadow a method or property of the class; one
    renamed since a file was written is read under its new name first
    (``renamed``: old -> new; the old name may then be a deprecated
    property). ``encode(obj, enc)`` / ``decode(node, dec)`` replace either
    step.
    """
    _CODECS[tag] = _Codec(cls, encode or _encode_vars,
                          decode or _decoder_of_vars(cls, check, renamed or {}),
                          subclasses)


def _encode_vars(obj, enc) -> dict:
    return enc.value(vars(obj), type(obj).__name__)


def _plain_attribute(cls: type, name) -> bool:
    """A name an instance attribute may have: not private to Python, and
    not shadowing a method or a property of ``cls``."""
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("__"):
        return False
    attr = inspect.getattr_static(cls, name, None)
    return not (callable(attr) or hasattr(attr, "__get__"))


def _decoder_of_vars(cls, check, renamed: dict):
    def decode(node, dec):
        state = dec.value(node)
        if not isinstance(state, dict):
            raise ValueError(f"{cls.__name__}: expected a dict of attributes")
        for old, new in renamed.items():
            if old in state:                # a value under the new name wins
                state.setdefault(new, state.pop(old))
        bad = [name for name in state if not _plain_attribute(cls, name)]
        if bad:
            raise ValueError(f"{cls.__name__}: attribute {bad[0]!r} cannot be set "
                             "from a file")
        if check is not None:
            state = check(state)
        obj = cls.__new__(cls)
        obj.__dict__.update(state)
        return obj
    return decode


def _tag_of(obj) -> str | None:
    for tag, codec in _CODECS.items():
        if type(obj) is codec.cls or (codec.subclasses and isinstance(obj, codec.cls)):
            return tag
    return None


_KEY_TYPES = (type(None), bool, str, int, float, np.bool_, np.integer, np.floating)


def _is_key(k) -> bool:
    """What a dict key may be in a file: hashable values the format holds."""
    if isinstance(k, tuple):
        return all(_is_key(x) for x in k)
    return isinstance(k, _KEY_TYPES)


class _Encoder:
    """Turns a value into JSON-able nodes, collecting its arrays. An object
    met twice (the network of an estimator and of its posterior) is stored
    once and referred to by number; a value that contains itself is
    refused (it could not be rebuilt)."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.seen: dict[int, int] = {}
        self.objects: list = []        # keeps the ids in `seen` alive
        self.open: set[int] = set()    # ids of the containers being encoded

    def value(self, v, where: str):
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, np.bool_):
            return bool(v)
        if isinstance(v, (int, np.integer)):
            return int(v)
        if isinstance(v, (float, np.floating)):
            return {"float": repr(float(v))}       # exact, and NaN/inf too
        if isinstance(v, np.ndarray):
            return self.array(v, where)
        if id(v) in self.open:
            raise ValueError(f"sopt.save: {where} contains itself (a cycle of "
                             "references), which cannot be stored: break the cycle")
        if len(self.open) >= MAX_NESTING:
            raise ValueError(f"sopt.save: {where}: values nested more than "
                             f"{MAX_NESTING} deep cannot be stored")
        self.open.add(id(v))
        try:
            return self.container(v, where)
        finally:
            self.open.discard(id(v))

    def container(self, v, where: str):
        if isinstance(v, (list, tuple)):
            kind = "list" if isinstance(v, list) else "tuple"
            return {kind: [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]}
        if isinstance(v, dict):
            return self.mapping(v, where)
        tag = _tag_of(v)
        if tag is None:
            raise TypeError(f"sopt.save: {where}: cannot store a "
                            f"{type(v).__name__} without pickle")
        if id(v) in self.seen:
            return {"ref": self.seen[id(v)]}
        self.seen[id(v)] = number = len(self.objects)
        self.objects.append(v)
        return {"object": tag, "id": number, "state": _CODECS[tag].encode(v, self)}

    def mapping(self, d: dict, where: str) -> dict:
        """String keys as a JSON object; any other keys as [key, value] pairs."""
        if all(isinstance(k, str) for k in d):
            return {"dict": {k: self.value(x, f"{where}.{k}") for k, x in d.items()}}
        for k in d:
            if not _is_key(k):
                raise TypeError(f"sopt.save: {where}: a dict key of type "
                                f"{type(k).__name__} cannot be stored (keys may be "
                                "strings, numbers, booleans, None or tuples of these)")
        return {"items": [[self.value(k, f"{where} key"), self.value(x, f"{where}[{k!r}]")]
                          for k, x in d.items()]}

    def array(self, a: np.ndarray, where: str) -> dict:
        node = {}
        if a.dtype.kind == "O" and all(isinstance(x, str) for x in a.flat):
            a, node = a.astype(str), {"as": "object"}
        if not storable_dtype(a.dtype):
            raise TypeError(f"sopt.save: {where}: arrays of dtype {a.dtype} cannot "
                            "be stored without pickle (numbers and strings can)")
        key = f"a{len(self.arrays)}"
        # C order (a copy only if needed), keeping a 0-d array 0-d
        self.arrays[key] = a if a.flags.c_contiguous else np.array(a, order="C")
        return {"array": key, **node}


_NODE_KINDS = {frozenset(keys): keys[0] for keys in (
    ("float",), ("array",), ("array", "as"), ("list",), ("tuple",), ("dict",),
    ("items",), ("ref",), ("object", "id", "state"))}


def _malformed(node) -> ValueError:
    return ValueError(f"malformed node {str(node)[:60]!r}")


class _Decoder:
    """Rebuilds values from nodes; every malformed node is a ValueError.
    Each array is used once (as it is, no copy) and every array must be."""

    def __init__(self, arrays: dict):
        self.arrays = arrays
        self.unused = set(arrays)
        self.objects: dict[int, object] = {}

    def value(self, node):
        if node is None or isinstance(node, (bool, str, int)):
            return node
        kind = _NODE_KINDS.get(frozenset(node)) if isinstance(node, dict) else None
        if kind is None:
            raise _malformed(node)
        return getattr(self, "_" + kind)(node)

    def _float(self, node) -> float:
        if not isinstance(node["float"], str):
            raise _malformed(node)
        return float(node["float"])

    def _array(self, node) -> np.ndarray:
        key = node["array"]
        if not isinstance(key, str) or key not in self.unused:
            raise ValueError(f"array {str(key)[:20]!r} missing or used twice")
        self.unused.discard(key)
        a = self.arrays[key]
        if "as" in node:
            if node["as"] != "object" or a.dtype.kind != "U":
                raise _malformed(node)
            return a.astype(object)
        return a

    def _sequence(self, node, kind: str) -> list:
        if not isinstance(node[kind], list):
            raise _malformed(node)
        return [self.value(x) for x in node[kind]]

    def _list(self, node) -> list:
        return self._sequence(node, "list")

    def _tuple(self, node) -> tuple:
        return tuple(self._sequence(node, "tuple"))

    def _dict(self, node) -> dict:
        if not isinstance(node["dict"], dict):
            raise _malformed(node)
        return {k: self.value(x) for k, x in node["dict"].items()}

    def _items(self, node) -> dict:
        pairs, out = node["items"], {}
        for pair in pairs if isinstance(pairs, list) else [None]:
            if not isinstance(pair, list) or len(pair) != 2:
                raise _malformed(node)
            key = self.value(pair[0])
            if not _is_key(key) or key in out:
                raise _malformed(node)
            out[key] = self.value(pair[1])
        return out

    def _ref(self, node):
        number = node["ref"]
        if isinstance(number, bool) or number not in self.objects:
            raise _malformed(node)
        return self.objects[number]

    def _object(self, node):
        tag, number = node["object"], node["id"]
        if isinstance(tag, str) and tag not in _CODECS and tag in _REGISTERED_ON_IMPORT:
            importlib.import_module(_REGISTERED_ON_IMPORT[tag])
        if tag not in _CODECS or not isinstance(number, int) or isinstance(number, bool) \
                or number in self.objects:
            raise ValueError(f"unknown object type or repeated id in {str(node)[:60]!r}")
        obj = _CODECS[tag].decode(node["state"], self)
        self.objects[number] = obj
        return obj


# ------------------------------------------------------------------ saving
def save(path, obj) -> None:
    """Write ``obj`` (a Network, a ``(net, w)`` tuple, a Laplace posterior, a
    fitted estimator, ...) to ``path`` (str, bytes or os.PathLike) as one
    ``.npz`` file with a JSON header.

    The file is replaced atomically: written beside it under a short
    temporary name, then renamed over it, so no half-written file is ever
    left. An existing file keeps its permissions (and owner, where allowed);
    a symbolic link is followed and its target replaced. Raises TypeError
    or ValueError, before writing anything, for what cannot be stored
    without pickle (a user-defined activation or loss, an object array, a
    value that contains itself) and for a path that is not a regular file
    (a directory, FIFO or device). Memory: the JSON header beside the
    arrays, which are hashed and written in place.
    """
    name, target, existing = _save_target(path)
    enc = _Encoder()
    content = enc.value(obj, "obj")
    from . import __version__
    h = _archive.digest_start(_canonical(content))
    for key in sorted(enc.arrays):
        _archive.digest_array(h, key, enc.arrays[key])
    header = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "sopt_version": __version__, "holds": _describe(obj),
              "digest": h.hexdigest(), "content": content}
    raw = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    _write_atomically(target, name, existing,
                      lambda f: np.savez(f, **{HEADER: raw}, **enc.arrays))


def _canonical(content) -> bytes:
    """The JSON of the content as the digest sees it."""
    return json.dumps(content, sort_keys=True).encode()


def _path_name(path) -> str:
    """A path argument as a str (bytes decoded as the file system does)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path: expected a file name (str, bytes or os.PathLike), "
                        f"got {type(path).__name__}")
    name = os.fsdecode(os.fspath(path))
    if not name:
        raise ValueError("path: the file name is empty; give the file to use, "
                         "e.g. 'model.sopt'")
    return name


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"))
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def _not_regular(name: str, mode: int) -> ValueError:
    return ValueError(f"path: {name!r} is {_file_kind(mode)}, not a regular file; "
                      "sopt files are regular files: give another file name")


def _save_target(path):
    """(the name given, the file to replace through any symbolic links, its
    os.stat_result or None if it does not exist yet)."""
    name = _path_name(path)
    target = os.path.realpath(name)
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        return name, target, None
    if not stat.S_ISREG(existing.st_mode):
        raise _not_regular(name, existing.st_mode)
    return name, target, existing


def _write_atomically(target: str, name: str, existing, write) -> None:
    """``write(f)`` into a new file beside ``target``, made like ``existing``
    (mode, owner) if it exists, else with the umask's permissions; synced,
    then renamed over ``target``. On any failure the new file is removed."""
    tmp = os.path.join(os.path.dirname(target), f".sopt-{secrets.token_hex(6)}.tmp")
    try:
        f = open(tmp, "xb")
    except OSError as err:          # name the user's path, not the temporary one
        raise type(err)(err.errno, f"cannot write {name!r}: {err.strerror}") from None
    try:
        with f:
            if existing is not None:
                _copy_mode(f.fileno(), existing)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _copy_mode(fd: int, existing) -> None:
    """Owner (where this process may set it) and then permissions."""
    if (existing.st_uid, existing.st_gid) != os.fstat(fd)[4:6]:
        with contextlib.suppress(PermissionError):
            os.fchown(fd, existing.st_uid, existing.st_gid)
    os.fchmod(fd, stat.S_IMODE(existing.st_mode))


def _describe(obj) -> str:
    if isinstance(obj, tuple):
        return "tuple of " + ", ".join(type(x).__name__ for x in obj)
    return type(obj).__name__


# ----------------------------------------------------------------- loading
class _Refused(ValueError):
    """A sopt file refused by a check of its header (message complete)."""


def load(path):
    """Read a file written by :func:`save` and return the object it holds.

    Never executes code from the file (no pickle; classes from a fixed
    table). A file that is not a sopt file, truncated, corrupted, altered
    or crafted raises ValueError, as does a path that is not a regular file;
    a missing file, FileNotFoundError. Nothing is allocated before the
    sizes the file declares are checked against its length: memory is about
    the file's size plus the objects rebuilt; the digest is computed while
    the arrays are read (one copy of them)."""
    name = _path_name(path)
    f, size = _open_regular(name)
    with f:
        try:
            header, arrays, digest = _read(f, size, name)
        except _Refused:
            raise
        except Exception as err:
            # zipfile, zlib and numpy's .npy parser raise a dozen types on a
            # damaged or crafted file: every one means the same to the caller
            kind = "" if isinstance(err, _archive.BadFile) else f"{type(err).__name__}: "
            raise ValueError(f"{name}: not a readable sopt file (truncated, corrupted "
                             f"or another format): {kind}{err}") from None
    if digest != header["digest"]:
        raise ValueError(f"{name}: the contents do not match the file's digest: "
                         "the file was altered or corrupted")
    return _decode(header["content"], arrays, name)


def _open_regular(name: str):
    """The file opened for reading, and its size; a FIFO or device is
    refused without blocking on it."""
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(name, info.st_mode)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def _read(f, size: int, name: str):
    """The JSON header, the arrays and their digest, every size checked
    before it is read."""
    with zipfile.ZipFile(f) as zf:
        members = _archive.members(zf, size)
        if HEADER not in members:
            raise _Refused(f"{name}: not a sopt file (no sopt header)")
        raw = _archive.read_array(zf, HEADER, members.pop(HEADER))
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise _archive.BadFile("the header is not an array of bytes")
        header = json.loads(raw.tobytes().decode("utf-8"))
        _check_header(header, name)
        h = _archive.digest_start(_canonical(header["content"]))
        arrays = {key: _archive.read_array(zf, key, members[key], h)
                  for key in sorted(members)}
    return header, arrays, h.hexdigest()


def _check_header(header, name: str) -> None:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _Refused(f"{name}: not a sopt file (no sopt header)")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _Refused(f"{name}: malformed sopt file (format_version {version!r})")
    if version > FORMAT_VERSION:
        raise _Refused(f"{name}: written in format version {version} by sopt "
                       f"{header.get('sopt_version')}; this sopt reads versions "
                       f"up to {FORMAT_VERSION}: upgrade sopt")
    if not isinstance(header.get("digest"), str) or "content" not in header:
        raise _Refused(f"{name}: malformed sopt file (no digest or content)")
    if _json_depth(header["content"]) > _JSON_DEPTH:
        raise _Refused(f"{name}: malformed sopt file (nested more than "
                       f"{MAX_NESTING} deep)")


def _json_depth(value) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)
    return deepest


def _decode(content, arrays: dict, name: str):
    decoder = _Decoder(arrays)
    try:
        obj = decoder.value(content)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError,
            OverflowError, RecursionError) as err:
        raise ValueError(f"{name}: malformed sopt file: {err}") from None
    if decoder.unused:
        raise ValueError(f"{name}: malformed sopt file: arrays "
                         f"{sorted(decoder.unused)[:5]} are not used")
    return obj


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


_LAYER_KEYS = {"size", "activation", "inputs", "masks", "output"}


def _decode_network(node: dict, dec: _Decoder) -> Network:
    """The network rebuilt by add_layer, which checks sizes, names and
    masks (shape, 0/1 entries) as it does for a caller's arguments."""
    if not isinstance(node, dict) or set(node) != {"n_inputs", "layers"} \
            or not isinstance(node["layers"], list):
        raise ValueError("Network: malformed topology")
    net = Network(n_inputs=node["n_inputs"])
    for layer in node["layers"]:
        if not isinstance(layer, dict) or set(layer) != _LAYER_KEYS \
                or not isinstance(layer["activation"], str) \
                or not isinstance(layer["output"], bool) \
                or len(layer["inputs"]) != len(layer["masks"]):
            raise ValueError(f"Network: malformed layer {str(layer)[:60]!r}")
        masks = {}
        for src, m in zip(layer["inputs"], layer["masks"]):
            mask = dec.value(m)
            if mask is not None and not isinstance(mask, np.ndarray):
                raise ValueError("Network: a mask is not an array")
            if mask is not None:
                masks[src] = mask
        net.add_layer(layer["size"], layer["activation"], inputs=list(layer["inputs"]),
                      masks=masks, output=layer["output"])
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
# any Activation or Loss: the encoders store the built-ins alone
register("Activation", Activation, _encode_activation, _decode_activation,
         subclasses=True)
register("Loss", Loss, _encode_loss, _decode_loss, subclasses=True)
