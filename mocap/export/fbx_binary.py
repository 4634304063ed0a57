"""Low-level encoder for binary FBX 7.4 (node records, typed properties, footer).

Layout (FBX 7.4, little-endian):

- header: ``b"Kaydara FBX Binary  \\x00"``, ``b"\\x1a\\x00"``, ``uint32`` version (7400);
- node record: ``uint32`` end offset (absolute), ``uint32`` property count, ``uint32`` property
  bytes, ``uint8`` name length, name, properties, then the nested records followed by a 13-byte
  null record when the node has children *or* no properties (what the FBX SDK and Blender write);
  version 7500 widens the three header fields to 64 bits — we write 7400 only;
- property: one type byte then ``Y`` int16, ``C`` bool byte, ``I`` int32, ``F`` float32, ``D``
  float64, ``L`` int64, ``S``/``R`` uint32 length + bytes, or an array ``f d l i b``: uint32
  length, uint32 encoding (0 raw, 1 zlib), uint32 byte length, data;
- the top-level list ends with a null record, then the footer: a 16-byte footer id, zero padding
  to a 16-byte boundary, the version again, 120 zero bytes and a 16-byte magic.

Object names in binary files are ``name + b"\\x00\\x01" + class`` (ASCII files write ``Class::name``).
"""

from __future__ import annotations

import functools
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FBX_VERSION = 7400
HEADER_MAGIC = b"Kaydara FBX Binary  \x00\x1a\x00"
FOOTER_MAGIC = bytes.fromhex("f85a8c6adef5d97eece90ce3758f290b")
# FileId, CreationTime and footer id are scrambled from one another by the FBX SDK; this is the
# consistent triple for a fixed creation time that exporters writing reproducible files use
# (read back from Blender-written reference files). Importers do not check it.
FILE_ID = bytes.fromhex("28b32aebb624ccc2bfc8b02aa92bfcf1")
CREATION_TIME = "1970-01-01 10:00:00:000"
FOOTER_ID = bytes.fromhex("fabcab09d0c8d466b176fb831cf7267e")
NAME_SEP = b"\x00\x01"

_NULL_RECORD = b"\x00" * 13
# Arrays at least this many bytes are zlib-compressed (smaller ones grow when deflated).
_COMPRESS_MIN_BYTES = 128
_SCALAR_FORMATS = {"Y": "<h", "C": "<B", "I": "<i", "F": "<f", "D": "<d", "L": "<q"}
_ARRAY_DTYPES = {"f": "<f4", "d": "<f8", "l": "<i8", "i": "<i4", "b": "u1"}


@dataclass(frozen=True)
class Prop:
    """One typed property value: ``code`` is the FBX type letter (see the module doc)."""

    code: str
    value: Any


def i16(v: int) -> Prop:
    return Prop("Y", int(v))


def i32(v: int) -> Prop:
    return Prop("I", int(v))


def i64(v: int) -> Prop:
    return Prop("L", int(v))


def f32(v: float) -> Prop:
    return Prop("F", float(v))


def raw(v: bytes) -> Prop:
    return Prop("R", bytes(v))


def object_name(name: str, cls: str) -> bytes:
    """Binary FBX object name: ``name\\x00\\x01cls``."""
    return name.encode("utf-8") + NAME_SEP + cls.encode("ascii")


def as_prop(value: Any) -> Prop:
    """Infer a property's type: bool C, int I (int32), float D, str/bytes S, numpy arrays by dtype.

    Use :func:`i64`, :func:`i16`, :func:`f32`, :func:`raw` where another type is needed
    (object ids are ``L``).
    """
    if isinstance(value, Prop):
        return value
    if isinstance(value, (bool, np.bool_)):
        return Prop("C", bool(value))
    if isinstance(value, (int, np.integer)):
        if not -(2**31) <= int(value) < 2**31:
            raise ValueError(f"int property {value} does not fit int32; wrap it in i64()")
        return Prop("I", int(value))
    if isinstance(value, (float, np.floating)):
        return Prop("D", float(value))
    if isinstance(value, str):
        return Prop("S", value.encode("utf-8"))
    if isinstance(value, bytes):
        return Prop("S", value)
    if isinstance(value, np.ndarray):
        code = {"f4": "f", "f8": "d", "i8": "l", "i4": "i", "b1": "b"}.get(value.dtype.str[1:])
        if code is None or value.ndim != 1:
            raise ValueError("array property: expected 1-D float32/float64/int32/int64/bool, "
                             f"got {value.dtype} {value.shape}")
        return Prop(code, value)
    raise ValueError(f"cannot encode a property of type {type(value).__name__}")


@dataclass
class FBXNode:
    """A node record: a name, typed properties and child nodes."""

    name: str
    props: list[Prop] = field(default_factory=list)
    children: list[FBXNode] = field(default_factory=list)
    #: Write the nested-list null record even without children (an empty ``{}`` block, as the FBX
    #: SDK writes for objects such as an AnimationLayer).
    block: bool = False

    def add(self, name: str, *values: Any) -> FBXNode:
        """Append and return a child ``name`` with properties ``values`` (see :func:`as_prop`)."""
        child = FBXNode(name, [as_prop(v) for v in values])
        self.children.append(child)
        return child


def node(name: str, *values: Any, children: list[FBXNode] | None = None, block: bool = False) -> FBXNode:
    return FBXNode(name, [as_prop(v) for v in values], list(children or []), block)


@functools.lru_cache(maxsize=16)
def _deflate(data: bytes) -> bytes:
    # Cached: every animation curve of a clip repeats the same KeyTime array. Level 1: on float
    # key data it is ~3x faster than the default and only a few percent larger.
    return zlib.compress(data, 1)


def _encode_prop(prop: Prop) -> bytes:
    code = prop.code
    if code in _SCALAR_FORMATS:
        return code.encode() + struct.pack(_SCALAR_FORMATS[code], prop.value)
    if code in "SR":
        data = prop.value
        return code.encode() + struct.pack("<I", len(data)) + data
    if code in _ARRAY_DTYPES:
        value = prop.value() if callable(prop.value) else prop.value  # a loader: write_fbx_file
        arr = np.ascontiguousarray(value, dtype=_ARRAY_DTYPES[code])
        data = arr.tobytes()
        encoding = 0
        if len(data) >= _COMPRESS_MIN_BYTES:
            data, encoding = _deflate(data), 1
        return code.encode() + struct.pack("<III", arr.size, encoding, len(data)) + data
    raise ValueError(f"unknown FBX property type {code!r}")


def _encode_node(out: bytearray, fbx_node: FBXNode) -> None:
    name = fbx_node.name.encode("ascii")
    if len(name) > 255:
        raise ValueError(f"FBX node name longer than 255 bytes: {fbx_node.name[:40]!r}…")
    props = b"".join(_encode_prop(p) for p in fbx_node.props)
    start = len(out)
    out += struct.pack("<IIIB", 0, len(fbx_node.props), len(props), len(name))
    out += name
    out += props
    if fbx_node.children or fbx_node.block or not fbx_node.props:
        for child in fbx_node.children:
            _encode_node(out, child)
        out += _NULL_RECORD
    if len(out) >= 2**32:
        raise ValueError("FBX 7.4 file larger than 4 GiB; split the export")
    struct.pack_into("<I", out, start, len(out))


def encode_fbx(nodes: list[FBXNode], version: int = FBX_VERSION) -> bytes:
    """Encode top-level ``nodes`` as a complete binary FBX file (header, records, footer)."""
    if version >= 7500:
        raise ValueError(f"version {version}: only FBX 7.4 and older (32-bit offsets) are written")
    out = bytearray(HEADER_MAGIC + struct.pack("<I", version))
    for n in nodes:
        _encode_node(out, n)
    out += _NULL_RECORD
    out += FOOTER_ID
    pad = (-len(out)) % 16
    out += b"\x00" * (pad if pad else 16)
    out += struct.pack("<I", version) + b"\x00" * 120 + FOOTER_MAGIC
    return bytes(out)


def _write_node(f, fbx_node: FBXNode) -> None:
    """:func:`_encode_node` into the binary file ``f`` (its end offset patched in place)."""
    name = fbx_node.name.encode("ascii")
    if len(name) > 255:
        raise ValueError(f"FBX node name longer than 255 bytes: {fbx_node.name[:40]!r}…")
    props = b"".join(_encode_prop(p) for p in fbx_node.props)
    start = f.tell()
    f.write(struct.pack("<IIIB", 0, len(fbx_node.props), len(props), len(name)) + name + props)
    del props
    if fbx_node.children or fbx_node.block or not fbx_node.props:
        for child in fbx_node.children:
            _write_node(f, child)
        f.write(_NULL_RECORD)
    end = f.tell()
    if end >= 2**32:
        raise ValueError("FBX 7.4 file larger than 4 GiB; split the export")
    f.seek(start)
    f.write(struct.pack("<I", end))
    f.seek(end)


def write_fbx_file(f, nodes: list[FBXNode], version: int = FBX_VERSION) -> None:
    """:func:`encode_fbx` straight into the binary file ``f`` (seekable), node by node: the same
    bytes, without the whole file in memory. An array property may hold a loader (a callable
    returning the array) instead of the array: it is called when the property is written, so
    long animation curves can wait on disk until then."""
    if version >= 7500:
        raise ValueError(f"version {version}: only FBX 7.4 and older (32-bit offsets) are written")
    f.write(HEADER_MAGIC + struct.pack("<I", version))
    for n in nodes:
        _write_node(f, n)
    f.write(_NULL_RECORD + FOOTER_ID)
    pad = (-f.tell()) % 16
    f.write(b"\x00" * (pad if pad else 16))
    f.write(struct.pack("<I", version) + b"\x00" * 120 + FOOTER_MAGIC)
