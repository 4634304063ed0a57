"""Pose2Sim / Anipose / FreeMoCap calibration TOML, and caliscope's ``camera_array.toml``.

Pose2Sim, Anipose and FreeMoCap write one table per camera (the table name is free, e.g.
``[cam_01]`` or ``[cam_0]``)::

    [cam_01]
    name = "cam_01"
    size = [1088.0, 1920.0]                 # width, height px
    matrix = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    distortions = [k1, k2, p1, p2]          # 4 or 5 values (k3 last)
    rotation = [rx, ry, rz]                 # Rodrigues vector, cam_from_world
    translation = [tx, ty, tz]              # metres, cam_from_world
    fisheye = false                         # optional; true is rejected (OpenCV fisheye model)

    [metadata]                              # skipped
    adjusted = false
    error = 0.0

caliscope nests its cameras under ``[cameras.<id>]`` with ``cam_id``, the same ``size``,
``matrix``, ``distortions`` and ``translation``, a ``rotation`` written as a 3x3 matrix (older
versions: a Rodrigues vector; both are read), the per-camera RMS in ``error``, ``ignore`` to drop a
camera, and ``rotation_count`` (quarter turns applied to the image in its GUI; non-zero is
rejected). Its cameras are named ``cam_<id>``.

Tables without any of ``matrix``, ``rotation``, ``translation`` (e.g. ``[metadata]``) are skipped.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from pathlib import Path

import numpy as np

from mocap.calibration.formats_common import fmt_float, fmt_list, fmt_matrix, make_camera, make_rig
from mocap.errors import CalibrationError
from mocap.geometry import Rig, rotmat_to_rotvec, rotvec_to_rotmat

log = logging.getLogger(__name__)

_CAMERA_KEYS = ("matrix", "rotation", "translation")


def read_toml(path: Path, text: str) -> Rig:
    """Parse a Pose2Sim/Anipose/FreeMoCap or caliscope TOML calibration (see the module doc)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CalibrationError(f"{path}: not valid TOML: {exc}") from None
    caliscope = isinstance(doc.get("cameras"), dict) and all(isinstance(v, dict) for v in doc["cameras"].values())
    if caliscope:
        entries = [(f"cam_{v.get('cam_id', k)}", f"cameras.{k}", v) for k, v in doc["cameras"].items()]
    else:
        entries = [(str(v.get("name", k)), k, v) for k, v in doc.items()
                   if isinstance(v, dict) and any(key in v for key in _CAMERA_KEYS)]
    cameras = []
    for name, table, entry in entries:
        if entry.get("ignore", False):
            log.info("%s: camera %s is marked ignore = true; skipped", path, name)
            continue
        cameras.append(_camera_from_table(path, name, table, entry))
    if not cameras:
        raise CalibrationError(f"{path}: no camera tables found; expected tables with 'matrix', 'distortions', "
                               "'rotation', 'translation', 'size' (Pose2Sim/Anipose TOML)")
    return make_rig(path, cameras, "caliscope" if caliscope else "toml")


def _camera_from_table(path: Path, name: str, table: str, entry: dict):
    label = name if name == table else f"{name} (table [{table}])"
    for key in ("size", "matrix", "distortions", "rotation", "translation"):
        if key not in entry:
            raise CalibrationError(f"{path}: camera {label}: missing field {key!r}")
    if entry.get("fisheye", False):
        raise CalibrationError(f"{path}: camera {label}: field 'fisheye' is true; the OpenCV fisheye model is not "
                               "supported, recalibrate with the standard (radial-tangential) model")
    if entry.get("rotation_count", 0):
        raise CalibrationError(f"{path}: camera {label}: field 'rotation_count' = {entry['rotation_count']}: images "
                               "rotated in caliscope are not supported; recalibrate with rotation_count = 0")
    rotation = entry["rotation"]
    try:
        rot = np.asarray(rotation, dtype=np.float64)
    except (TypeError, ValueError):
        raise CalibrationError(f"{path}: camera {label}: field 'rotation': expected 3 numbers (Rodrigues vector) "
                               f"or a 3x3 matrix, got {rotation!r}") from None
    if rot.shape == (3,):
        R = rotvec_to_rotmat(rot) if np.isfinite(rot).all() else rot
    elif rot.shape == (3, 3):
        R = rot
    else:
        raise CalibrationError(f"{path}: camera {label}: field 'rotation': expected 3 values (Rodrigues vector) "
                               f"or a 3x3 matrix, got shape {rot.shape}")
    rms = entry.get("error")
    return make_camera(path, name, size=entry["size"], K=entry["matrix"], dist=entry["distortions"],
                       R=R, t=entry["translation"], rms_px=rms if isinstance(rms, (int, float)) and rms > 0 else None)


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def rig_to_toml(rig: Rig) -> str:
    """The Pose2Sim/Anipose TOML text for ``rig`` (Rodrigues rotations, 5 distortions, full precision).

    ``error`` holds the camera's RMS in pixels when known (caliscope's key; Pose2Sim and
    Anipose ignore keys they do not use).
    """
    lines = []
    for cam in rig:
        lines += [
            f"[{_toml_key(cam.name)}]",
            f"name = {json.dumps(cam.name)}",
            f"size = [{cam.size[0]}, {cam.size[1]}]",
            f"matrix = {fmt_matrix(cam.K)}",
            f"distortions = {fmt_list(cam.dist)}",
            f"rotation = {fmt_list(rotmat_to_rotvec(cam.R))}",
            f"translation = {fmt_list(cam.t)}",
            "fisheye = false",
        ]
        if cam.rms_px is not None:
            lines.append(f"error = {fmt_float(cam.rms_px)}")
        lines.append("")
    rms = [c.rms_px for c in rig if c.rms_px is not None]
    lines += ["[metadata]", "adjusted = false", f"error = {fmt_float(float(np.mean(rms)) if rms else 0.0)}", ""]
    return "\n".join(lines)
