"""The archive of a sopt file, read without trusting it.

A sopt file is a zip of ``.npy`` members (what ``np.savez`` writes):
``header.npy`` (the JSON header as bytes) and ``a0.npy``, ``a1.npy``, ...
Nothing is decompressed or allocated before its size is known to fit in
the file: members must be stored uncompressed (as ``np.savez`` stores
them), so what a member holds is never larger than the file, and each
array's declared shape and dtype must account for exactly the bytes of its
member. Arrays are read in chunks into their final buffer while the
digest is updated, so reading costs one copy of the arrays and no more.
"""
from __future__ import annotations

import hashlib
import math
import re
import zipfile

import numpy as np

HEADER = "header"
ARRAY_KINDS = "biufU"           # bool, integers, floats, unicode strings
_CHUNK = 1 << 18
_MEMBER = re.compile(r"(header|a[0-9]{1,9})\.npy")


class BadFile(ValueError):
    """A file refused by one of the checks here; the message says why."""


def storable_dtype(dtype: np.dtype) -> bool:
    """Plain numbers or strings: no objects, no records (structured or
    void), no sub-arrays, no complex or dates, no zero-size items."""
    return (dtype.kind in ARRAY_KINDS and dtype.fields is None
            and dtype.subdtype is None and dtype.itemsize > 0)


def members(zf: zipfile.ZipFile, file_size: int) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by key (``header``, ``a0``, ...), each checked
    from the zip directory alone: a known name met once, not encrypted,
    stored uncompressed, and all of them within the file's ``file_size``
    bytes."""
    found: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in zf.infolist():
        match = _MEMBER.fullmatch(info.filename)
        if match is None or match.group(1) in found:
            raise BadFile(f"unexpected or repeated archive member {info.filename[:60]!r}")
        if info.flag_bits & 0x1:
            raise BadFile(f"archive member {info.filename!r} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise BadFile(f"archive member {info.filename!r} is compressed (method "
                          f"{info.compress_type}); sopt files store their arrays "
                          "uncompressed")
        total += info.file_size
        if total > file_size or info.header_offset + info.file_size > file_size:
            raise BadFile("the archive declares more data than the file holds")
        found[match.group(1)] = info
    return found


def digest_start(content_json: bytes):
    """The running SHA-256 of a file: its JSON content first, then each
    array (in sorted key order) through :func:`digest_array_header` and its
    bytes."""
    return hashlib.sha256(content_json)


def digest_array_header(h, key: str, dtype: np.dtype, shape: tuple) -> None:
    h.update(f"{key}|{dtype.str}|{shape}|".encode())


def digest_array(h, key: str, a: np.ndarray) -> None:
    """Hash a C-contiguous array in place, chunk by chunk (no copy)."""
    digest_array_header(h, key, a.dtype, a.shape)
    raw = a.reshape(-1).view(np.uint8)
    for start in range(0, raw.size, _CHUNK):
        h.update(raw[start:start + _CHUNK])


def _npy_header(fp, info: zipfile.ZipInfo) -> tuple[tuple, np.dtype]:
    """Shape and dtype from a member's .npy header (numpy's own parser,
    whose header is capped at 10,000 bytes), checked against the bytes the
    member holds after it."""
    version = np.lib.format.read_magic(fp)
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise BadFile(f"{info.filename}: .npy version {version} is not supported")
    shape, fortran_order, dtype = readers[version](fp)
    if fortran_order or not storable_dtype(dtype) or min(shape, default=0) < 0:
        raise BadFile(f"{info.filename}: an array of dtype {dtype} (fortran order "
                      f"{fortran_order}) cannot be in a sopt file")
    if math.prod(shape) * dtype.itemsize != info.file_size - fp.tell():
        raise BadFile(f"{info.filename}: the shape {shape} and dtype {dtype} do not "
                      "match the member's size")
    return shape, dtype


def read_array(zf: zipfile.ZipFile, key: str, info: zipfile.ZipInfo, h=None) -> np.ndarray:
    """The array of one member, read in chunks into its own buffer, each
    chunk fed to the running digest ``h`` (if given). Memory: the array."""
    with zf.open(info) as fp:
        shape, dtype = _npy_header(fp, info)
        if h is not None:
            digest_array_header(h, key, dtype, shape)
        a = np.empty(shape, dtype)
        raw = a.reshape(-1).view(np.uint8)
        pos = 0
        while pos < raw.size:
            chunk = fp.read(min(_CHUNK, raw.size - pos))
            if not chunk:
                raise BadFile(f"{info.filename}: truncated")
            raw[pos:pos + len(chunk)] = np.frombuffer(chunk, np.uint8)
            if h is not None:
                h.update(chunk)
            pos += len(chunk)
        fp.read()               # at the end: lets zipfile check the CRC
    return a
