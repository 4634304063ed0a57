"""Calibration files: read any supported format into a :class:`~mocap.geometry.Rig`, write ours or TOML.

Formats (chosen by extension, then by content when the extension says nothing):

- ``.yaml`` / ``.yml``: the project's ``calibration.yaml`` (see DESIGN.md)::

      world: {up: z, units: m}
      cameras:
        cam01:
          size: [1088, 1920]          # width, height in pixels
          K: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
          dist: [k1, k2, p1, p2, k3]  # OpenCV radial-tangential
          R: [[...], [...], [...]]    # cam_from_world rotation
          t: [tx, ty, tz]             # cam_from_world translation, metres
          rms_px: 0.31                # optional

- ``.toml``: Pose2Sim / Anipose / FreeMoCap (one table per camera) and caliscope's
  ``camera_array.toml`` (``[cameras.N]``); see :mod:`mocap.calibration.formats_toml`.
- ``.qca.txt`` / ``.qca`` (XML): Qualisys QTM calibration, read only; see
  :mod:`mocap.calibration.formats_qca`.

Every problem with a file raises one :class:`~mocap.errors.CalibrationError` naming the file,
the camera and the field, and saying what was expected.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import yaml

from mocap.calibration.formats_common import fmt_float, fmt_list, fmt_matrix, make_camera, make_rig
from mocap.errors import CalibrationError
from mocap.geometry import Rig
from mocap.io.files import atomic_write

log = logging.getLogger(__name__)

#: Formats :func:`load_calibration` reads, and the suffixes that select them.
READ_FORMATS = {"yaml": (".yaml", ".yml"), "toml": (".toml",), "qca": (".qca.txt", ".qca", ".xml")}
#: Formats :func:`save_calibration` writes.
WRITE_FORMATS = {"yaml": (".yaml", ".yml"), "toml": (".toml",)}

_UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
INTRINSICS_KIND = "intrinsics"  # ``kind:`` of an intrinsics file (see :func:`save_intrinsics`)


def load_calibration(path: str | os.PathLike) -> Rig:
    """Read a calibration file of any supported format.

    Args:
        path: ``calibration.yaml``, a Pose2Sim/Anipose/FreeMoCap/caliscope ``.toml`` or a
            Qualisys ``.qca.txt``.

    Returns:
        A :class:`Rig` (world Z up, metres; ``R``, ``t`` cam_from_world) whose ``metadata``
        holds ``format`` and ``source``.

    Raises:
        FileNotFoundError: the file does not exist.
        CalibrationError: the file is empty, of an unknown format, or has a bad field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file not found: {path}")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise CalibrationError(f"{path}: empty file; expected a calibration (.yaml, .toml or Qualisys .qca.txt)")
    fmt = _detect_format(path, text)
    if fmt == "yaml":
        rig = _read_yaml(path, text)
    elif fmt == "toml":
        from mocap.calibration.formats_toml import read_toml

        rig = read_toml(path, text)
    else:
        from mocap.calibration.formats_qca import read_qca

        rig = read_qca(path, text)
    log.debug("read %d cameras from %s (%s)", len(rig), path, fmt)
    return rig


def save_calibration(rig: Rig, path: str | os.PathLike) -> Path:
    """Write ``rig`` atomically; the format follows the extension (``.yaml``/``.yml`` or ``.toml``).

    Returns the path written. Floats are written with full precision (``repr``), so reading the
    file back gives the same numbers bit for bit.
    """
    path = Path(path)
    fmt = _format_from_suffix(path, WRITE_FORMATS)
    if fmt is None:
        allowed = ", ".join(s for v in WRITE_FORMATS.values() for s in v)
        raise CalibrationError(f"{path}: cannot write this format; use one of the extensions {allowed}")
    if fmt == "yaml":
        text = rig_to_yaml(rig)
    else:
        from mocap.calibration.formats_toml import rig_to_toml

        text = rig_to_toml(rig)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def convert_calibration(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Read ``src`` in any supported format and write it to ``dst`` (format from its extension)."""
    return save_calibration(load_calibration(src), dst)


# --------------------------------------------------------------------------------------------
# Format detection
# --------------------------------------------------------------------------------------------

def _format_from_suffix(path: Path, table: dict) -> str | None:
    name = path.name.lower()
    for fmt, suffixes in table.items():
        if any(name.endswith(s) for s in suffixes):
            return fmt
    return None


def _detect_format(path: Path, text: str) -> str:
    fmt = _format_from_suffix(path, READ_FORMATS)
    if fmt is not None:
        return fmt
    head = text.lstrip()
    if head.startswith("<"):
        return "qca"
    if re.search(r"^\s*\[[^\]]+\]\s*$", text, flags=re.M):
        return "toml"
    if re.search(r"^cameras\s*:", text, flags=re.M):
        return "yaml"
    raise CalibrationError(
        f"{path}: unknown calibration format; expected calibration.yaml (with 'cameras:'), "
        "a Pose2Sim/Anipose .toml, or a Qualisys .qca.txt")


# --------------------------------------------------------------------------------------------
# calibration.yaml
# --------------------------------------------------------------------------------------------

def _read_yaml(path: Path, text: str) -> Rig:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CalibrationError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict) or "cameras" not in doc:
        raise CalibrationError(f"{path}: missing field 'cameras'; expected a mapping camera name -> "
                               "{size, K, dist, R, t}")
    if doc.get("kind") == INTRINSICS_KIND:
        raise CalibrationError(f"{path}: an intrinsics file (lenses only, no camera poses); pass it to "
                               "`mocap calibrate extrinsics --intrinsics` to get a calibration")
    world = doc.get("world") or {}
    if not isinstance(world, dict):
        raise CalibrationError(f"{path}: field 'world': expected a mapping like {{up: z, units: m}}")
    up = str(world.get("up", "z")).lower()
    if up != "z":
        raise CalibrationError(f"{path}: field 'world.up': {up!r} is not supported; the world must be Z up")
    units = str(world.get("units", "m")).lower()
    if units not in _UNITS:
        raise CalibrationError(f"{path}: field 'world.units': unknown unit {units!r}; expected one of m, cm, mm")
    cams = doc["cameras"]
    if not isinstance(cams, dict) or not cams:
        raise CalibrationError(f"{path}: field 'cameras': expected a non-empty mapping camera name -> parameters")
    cameras = []
    for name, entry in cams.items():
        name = str(name)
        if not isinstance(entry, dict):
            raise CalibrationError(f"{path}: camera {name}: expected a mapping with size, K, dist, R, t")
        for key in ("size", "K", "R", "t"):
            if key not in entry:
                raise CalibrationError(f"{path}: camera {name}: missing field {key!r}")
        unknown = set(entry) - {"size", "K", "dist", "R", "t", "rms_px"}
        if unknown:
            raise CalibrationError(f"{path}: camera {name}: unknown field(s) {sorted(unknown)}; "
                                   "expected size, K, dist, R, t, rms_px")
        t = _as_float_array(path, name, "t", entry["t"]) * _UNITS[units]
        cameras.append(make_camera(path, name, size=entry["size"], K=entry["K"], dist=entry.get("dist", [0.0] * 5),
                                   R=entry["R"], t=t, rms_px=entry.get("rms_px"), dist_lengths=(4, 5)))
    return make_rig(path, cameras, "yaml")


def _as_float_array(path, camera, field, value) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CalibrationError(f"{path}: camera {camera}: field {field!r}: expected numbers, got {value!r}") from None


def _yaml_key(name: str) -> str:
    reserved = ("true", "false", "null", "yes", "no", "on", "off", "y", "n", "~")
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name) and name.lower() not in reserved:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rig_to_yaml(rig: Rig) -> str:
    """The text of ``calibration.yaml`` for ``rig``: one block per camera, full float precision."""
    lines = [
        "# mocap calibration: OpenCV camera model, x_cam = R @ X_world + t (cam_from_world),",
        "# world Z up in metres, dist = k1 k2 p1 p2 k3, size = width height in pixels.",
        "world: {up: z, units: m}",
        "cameras:",
    ]
    for cam in rig:
        lines += [
            f"  {_yaml_key(cam.name)}:",
            f"    size: [{cam.size[0]}, {cam.size[1]}]",
            f"    K: {fmt_matrix(cam.K, yaml=True)}",
            f"    dist: {fmt_list(cam.dist, yaml=True)}",
            f"    R: {fmt_matrix(cam.R, yaml=True)}",
            f"    t: {fmt_list(cam.t, yaml=True)}",
        ]
        if cam.rms_px is not None:
            lines.append(f"    rms_px: {fmt_float(cam.rms_px, yaml=True)}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# intrinsics.yaml: lenses only, each camera calibrated on its own
# --------------------------------------------------------------------------------------------

def intrinsics_to_yaml(cameras, notes: dict[str, str] | None = None) -> str:
    """The text of ``intrinsics.yaml``: ``kind: intrinsics`` and per camera ``size, K, dist, rms_px``."""
    lines = ["# mocap intrinsics: OpenCV camera model per camera, no poses; dist = k1 k2 p1 p2 k3,",
             "# size = width height in pixels. Use: mocap calibrate extrinsics --intrinsics THIS_FILE ...",
             f"kind: {INTRINSICS_KIND}", "cameras:"]
    for cam in cameras:
        lines += [f"  {_yaml_key(cam.name)}:", f"    size: [{cam.size[0]}, {cam.size[1]}]",
                  f"    K: {fmt_matrix(cam.K, yaml=True)}", f"    dist: {fmt_list(cam.dist, yaml=True)}"]
        if cam.rms_px is not None:
            lines.append(f"    rms_px: {fmt_float(cam.rms_px, yaml=True)}")
        if notes and cam.name in notes:
            lines.append(f"    # {notes[cam.name]}")
    return "\n".join(lines) + "\n"


def save_intrinsics(cameras, path: str | os.PathLike, notes: dict[str, str] | None = None) -> Path:
    """Write ``intrinsics.yaml`` for ``cameras`` (an iterable of :class:`~mocap.geometry.Camera`, poses ignored)."""
    text = intrinsics_to_yaml(list(cameras), notes)
    return atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def load_intrinsics(path: str | os.PathLike) -> dict:
    """Lenses per camera from ``intrinsics.yaml`` or any calibration file: ``{name: Camera}``.

    Cameras read from an intrinsics file have ``R = I`` and ``t = 0`` (no pose).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"intrinsics file not found: {path}")
    text = path.read_text(encoding="utf-8", errors="replace")
    doc = None
    if _format_from_suffix(path, {"yaml": (".yaml", ".yml")}):
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            doc = None
    if not (isinstance(doc, dict) and doc.get("kind") == INTRINSICS_KIND):
        return {c.name: c for c in load_calibration(path)}
    cams = doc.get("cameras")
    if not isinstance(cams, dict) or not cams:
        raise CalibrationError(f"{path}: field 'cameras': expected a non-empty mapping camera name -> size, K, dist")
    out = {}
    for name, entry in cams.items():
        name = str(name)
        if not isinstance(entry, dict) or not {"size", "K"} <= set(entry):
            raise CalibrationError(f"{path}: camera {name}: expected a mapping with size, K, dist")
        out[name] = make_camera(path, name, size=entry["size"], K=entry["K"], dist=entry.get("dist", [0.0] * 5),
                                R=np.eye(3), t=np.zeros(3), rms_px=entry.get("rms_px"))
    return out
