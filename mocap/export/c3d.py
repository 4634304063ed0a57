"""C3D writer and reader (3D point data, IEEE float format, Intel byte order).

A C3D file is 512-byte blocks (C3D.org user guide): block 1 the header, then the parameter
section (groups and parameters, each record chained to the next by a byte offset), then the
data: per frame, per point, four float32 words ``x, y, z, residual``. A point that is missing is
written as ``0, 0, 0, -1`` (negative residual = invalid). ``POINT:SCALE`` is negative, which
marks float data. We write no analog channels.

Axes: the world frame as is (**Z up**, as C3D labs use); units ``mm`` by default (C3D
convention), in ``POINT:UNITS``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mocap._checks import check_choice, check_shape
from mocap.errors import MocapError
from mocap.export.axes import UNIT_SCALE
from mocap.io.files import atomic_write

_BLOCK = 512
_KEY = 0x50
_INTEL = 84  # processor type: 83 + 1
_HEADER = struct.Struct("<BBHHHHHfHHf274sHHH164s44s")
_TYPES = {-1: ("s", 1), 1: ("b", 1), 2: ("h", 2), 4: ("f", 4)}


def _record(name: str, group_id: int, payload: bytes, last: bool = False) -> bytes:
    """One group (``group_id < 0``) or parameter record; ``payload`` follows the offset word."""
    raw = name.upper().encode("ascii")
    return struct.pack("<bb", len(raw), group_id) + raw + struct.pack("<h", 0 if last else 2 + len(payload)) + payload


def _param(name: str, group: int, desc: str, kind: int, dims: tuple[int, ...], data: bytes, last: bool = False) -> bytes:
    d = desc.encode("ascii")
    payload = struct.pack("<bB", kind, len(dims)) + bytes(dims) + data + struct.pack("<B", len(d)) + d
    return _record(name, group, payload, last)


def _group(name: str, gid: int, desc: str) -> bytes:
    d = desc.encode("ascii")
    return _record(name, -gid, struct.pack("<B", len(d)) + d)


def _chars(values: list[str]) -> tuple[tuple[int, ...], bytes]:
    width = max([len(v) for v in values] + [1])
    return (width, len(values)), b"".join(v.ljust(width).encode("ascii") for v in values)


def encode_c3d(points: np.ndarray, labels, fps: float, units: str = "mm", first_frame: int = 1) -> bytes:
    """The bytes of a C3D file for ``points (T, N, 3)`` already in ``units`` (NaN = missing)."""
    T, N, _ = points.shape
    if N > 255 or any(len(s) > 255 for s in labels):
        raise ValueError(f"C3D: at most 255 points and 255-character labels per file (got {N})")
    if first_frame + T - 1 > 65535:
        raise ValueError(f"C3D: frame numbers beyond 65535 are not representable (got {T} frames)")
    labels = [str(s) for s in labels]
    if any(not s.isascii() for s in labels):
        raise ValueError(f"C3D: labels must be ASCII: {labels}")

    def params(data_start: int) -> bytes:
        dims_l, lab = _chars(labels)
        dims_d, des = _chars(labels)
        dims_u, uni = _chars([units])
        records = [
            _group("POINT", 1, "3D point data"),
            _param("USED", 1, "number of points", 2, (), struct.pack("<h", N)),
            _param("SCALE", 1, "negative: float data", 4, (), struct.pack("<f", -1.0)),
            _param("RATE", 1, "frames per second", 4, (), struct.pack("<f", fps)),
            _param("DATA_START", 1, "first data block", 2, (), struct.pack("<H", data_start)),
            _param("FRAMES", 1, "number of frames", 2, (), struct.pack("<H", T)),
            _param("LABELS", 1, "point labels", -1, dims_l, lab),
            _param("DESCRIPTIONS", 1, "point descriptions", -1, dims_d, des),
            _param("UNITS", 1, "length unit", -1, dims_u[:1], uni),
            _group("ANALOG", 2, "analog data"),
            _param("USED", 2, "number of analog channels", 2, (), struct.pack("<h", 0)),
            _param("RATE", 2, "analog sample rate", 4, (), struct.pack("<f", fps)),
            _param("GEN_SCALE", 2, "general scale", 4, (), struct.pack("<f", 1.0)),
            _group("TRIAL", 3, "trial"),
            _param("ACTUAL_START_FIELD", 3, "first frame", 2, (2,), struct.pack("<HH", first_frame, 0)),
            _param("ACTUAL_END_FIELD", 3, "last frame", 2, (2,), struct.pack("<HH", first_frame + T - 1, 0), last=True),
        ]
        return b"".join(records)

    body = params(0)
    n_blocks = -(-(4 + len(body) + 2) // _BLOCK)
    data_start = 2 + n_blocks
    section = struct.pack("<BBBB", 1, _KEY, n_blocks, _INTEL) + params(data_start)
    section = section.ljust(n_blocks * _BLOCK, b"\0")
    header = _HEADER.pack(2, _KEY, N, 0, first_frame, first_frame + T - 1, 0, -1.0, data_start, 1, fps,
                          b"\0" * 274, 0, 0, 0, b"\0" * 164, b"\0" * 44)
    words = np.zeros((T, N, 4), np.float32)
    ok = np.isfinite(points).all(axis=-1)
    words[..., :3] = np.where(ok[..., None], points, 0.0)
    words[..., 3] = np.where(ok, 0.0, -1.0)
    data = words.astype("<f4").tobytes()
    data = data.ljust(-(-len(data) // _BLOCK) * _BLOCK, b"\0")
    return header + section + data


def write_c3d(points_world: np.ndarray, labels, fps: float, path: str | os.PathLike, units: str = "mm",
              first_frame: int = 1) -> Path:
    """Write ``points_world (T, N, 3)`` (world metres, Z up, NaN = missing) as a C3D file.

    Written atomically (a temporary name, then rename). Returns the path.
    """
    pts = check_shape(np.asarray(points_world, dtype=np.float64), "T N 3", "points_world")
    scale = UNIT_SCALE[check_choice(units, UNIT_SCALE, "units")]
    if len(labels) != pts.shape[1]:
        raise ValueError(f"labels: expected {pts.shape[1]} labels, got {len(labels)}")
    data = encode_c3d(scale * pts, labels, fps, units, first_frame)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


@dataclass(frozen=True, eq=False)
class C3dPoints:
    """What :func:`read_c3d` returns: ``points (T, N, 3)`` in ``units`` (NaN = invalid),
    ``labels (N,)``, ``fps``, ``first_frame``, ``units`` and all ``parameters`` (``GROUP:NAME``)."""

    points: np.ndarray
    labels: tuple[str, ...]
    fps: float
    first_frame: int
    units: str
    parameters: dict


def _read_parameters(buf: bytes, path) -> dict:
    """``{"GROUP:NAME": value}`` from an Intel-order parameter section (after its 4-byte header)."""
    groups, raw, pos = {}, [], 0
    while pos + 2 <= len(buf):
        n, gid = struct.unpack_from("<bb", buf, pos)
        if n == 0 or gid == 0:
            break
        name = buf[pos + 2 : pos + 2 + abs(n)].decode("ascii").upper()
        start = pos + 2 + abs(n)
        (nxt,) = struct.unpack_from("<h", buf, start)
        if gid < 0:
            groups[-gid] = name
        else:
            kind, ndim = struct.unpack_from("<bB", buf, start + 2)
            dims = tuple(buf[start + 4 : start + 4 + ndim])
            if kind not in _TYPES:
                raise MocapError(f"{path}: parameter {name}: unknown data type {kind}")
            code, size = _TYPES[kind]
            count = int(np.prod(dims)) if dims else 1
            data = buf[start + 4 + ndim : start + 4 + ndim + count * size]
            if kind == -1:
                width = dims[0] if dims else 1
                value = [data[i : i + width].decode("ascii").rstrip() for i in range(0, len(data), width)]
                value = value[0] if len(dims) <= 1 else value
            else:
                arr = np.frombuffer(data, dtype="<" + {"b": "i1", "h": "i2", "f": "f4"}[code])
                value = arr.reshape(dims[::-1]) if len(dims) > 1 else (arr if dims else arr[0])
            raw.append((gid, name, value))
        if nxt == 0:
            break
        pos = start + nxt
    return {f"{groups.get(g, str(g))}:{n}": v for g, n, v in raw}


def read_c3d(path: str | os.PathLike) -> C3dPoints:
    """Read the 3D points of a little-endian (Intel) C3D file, float or integer format.

    Raises:
        FileNotFoundError, MocapError: missing file; not a C3D file or a processor type other
        than Intel.
    """
    path = Path(path)
    blob = path.read_bytes()
    if len(blob) < 2 * _BLOCK or blob[1] != _KEY:
        raise MocapError(f"{path}: not a C3D file (no 0x50 key in the header)")
    h = _HEADER.unpack_from(blob, 0)
    param_block, n_points, analog_words, first, last, scale, data_block = h[0], h[2], h[3], h[4], h[5], h[7], h[8]
    p0 = (param_block - 1) * _BLOCK
    n_blocks, processor = blob[p0 + 2], blob[p0 + 3]
    if processor != _INTEL:
        raise MocapError(f"{path}: processor type {processor} (only Intel, 84, is read)")
    params = _read_parameters(blob[p0 + 4 : p0 + n_blocks * _BLOCK], path)
    T = last - first + 1
    start = (data_block - 1) * _BLOCK
    if scale < 0:
        words = np.frombuffer(blob, "<f4", count=T * (4 * n_points + analog_words), offset=start)
        words = words.reshape(T, -1)[:, : 4 * n_points].reshape(T, n_points, 4).astype(np.float64)
        pts, invalid = words[..., :3], words[..., 3] < 0
    else:
        words = np.frombuffer(blob, "<i2", count=T * (4 * n_points + analog_words), offset=start)
        words = words.reshape(T, -1)[:, : 4 * n_points].reshape(T, n_points, 4).astype(np.float64)
        pts, invalid = words[..., :3] * scale, words[..., 3] < 0
    pts = np.where(invalid[..., None], np.nan, pts)
    labels = params.get("POINT:LABELS", [f"P{i + 1}" for i in range(n_points)])
    labels = [labels] if isinstance(labels, str) else labels
    return C3dPoints(pts, tuple(labels[:n_points]), float(params.get("POINT:RATE", h[10])), int(first),
                     str(params.get("POINT:UNITS", "")), params)
