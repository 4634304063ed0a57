"""Qualisys QTM calibration (``.qca.txt``, XML), read only.

What the file holds, per ``<camera serial=... viewrotation=...>``, and how it maps to OpenCV:

- ``<transform x y z r11 .. r33>``: the camera centre in world **millimetres** and a rotation
  whose rows are the camera's axes in world coordinates, in the camera convention x right,
  **y up, z backwards** (away from the scene). OpenCV's camera has y down and z forwards, so
  ``R_cam_from_world = diag(1, -1, -1) @ [r_ij]`` and ``t = -R @ centre / 1000``.
  (Checked on the Pose2Sim demo: this gives the same R, t as Pose2Sim's own conversion,
  ``Calib_qualisys.toml``, to 1e-15, and Pose2Sim's 3D joints project onto the OpenPose
  keypoints with per-camera medians of 8-18 px, the scale of Pose2Sim's own 15 px triangulation
  threshold, where a transposed R misses by hundreds; see ``tests/test_real_conventions.py``.)
- ``<intrinsic focalLengthU/V centerPointU/V skew sensorMinU/V sensorMaxU/V>``: in sensor
  sub-pixel units. The number of sub-pixels per pixel is ``(sensorMaxU - sensorMinU) /
  (fov_marker_max.right - fov_marker_max.left)`` (64 for QTM); it is taken from the file and the
  same ratio is required on V. Pixel coordinates of the video are then measured from the
  ``fov_video`` corner: ``cx = (centerPointU - sensorMinU) / s - fov_video.left``; the image size
  is the ``fov_video`` rectangle (inclusive bounds, so ``right - left + 1``).
- ``radialDistortion1..3``, ``tangentalDistortion1..2`` are already coefficients of normalised
  image coordinates (OpenCV's k1 k2 k3 p1 p2) and are **not** rescaled. Pose2Sim's converter
  divides them by 64 too (its TOML has k1 = -0.00072 where the file says -0.046); Pose2Sim's own
  checkerboard calibration of the same cameras finds k1 ≈ -0.05, k2 ≈ 0.15, which agrees with the
  unscaled values, so we keep them as written.
- ``avg-residual`` is a 3D residual in mm, not a pixel RMS: it goes to ``rig.metadata``
  (``qualisys_avg_residual_mm``), and ``rms_px`` stays unknown.
- Cameras with ``active="0"`` are skipped (with a log line); ``viewrotation`` other than 0
  (images turned in QTM) is rejected with an error, since the file then describes the unturned
  sensor.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from mocap.calibration.formats_common import check_rotation, make_camera, make_rig
from mocap.errors import CalibrationError
from mocap.geometry import Rig

log = logging.getLogger(__name__)

#: OpenCV camera (y down, z forwards) from the Qualisys camera (y up, z backwards).
CV_FROM_QUALISYS_CAM = np.diag([1.0, -1.0, -1.0])


def read_qca(path: Path, text: str) -> Rig:
    """Parse a Qualisys ``.qca.txt`` (see the module doc for the conventions)."""
    try:
        root = ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as exc:
        raise CalibrationError(f"{path}: not valid Qualisys XML: {exc}") from None
    elements = root.findall("cameras/camera") if root.tag == "calibration" else []
    if not elements:
        raise CalibrationError(f"{path}: no <calibration><cameras><camera> elements; expected a Qualisys "
                               "QTM calibration (.qca.txt)")
    cameras, residuals = [], {}
    for i, elem in enumerate(elements):
        name = elem.get("serial") or f"cam_{i + 1:02d}"
        if elem.get("active", "1") == "0":
            log.info("%s: camera %s is inactive; skipped", path, name)
            continue
        cameras.append(_camera(path, name, elem))
        if elem.get("avg-residual") is not None:
            residuals[name] = _number(path, name, "avg-residual", elem.get("avg-residual"))
    return make_rig(path, cameras, "qca", qualisys_avg_residual_mm=residuals)


def _number(path, camera: str, field: str, value) -> float:
    if value is None:
        raise CalibrationError(f"{path}: camera {camera}: missing field {field!r}")
    try:
        return float(value)
    except ValueError:
        raise CalibrationError(f"{path}: camera {camera}: field {field!r}: expected a number, got {value!r}") from None


def _attrs(path, camera: str, elem, tag: str, keys) -> dict[str, float]:
    child = elem.find(tag)
    if child is None:
        raise CalibrationError(f"{path}: camera {camera}: missing field <{tag}>")
    return {k: _number(path, camera, f"{tag}.{k}", child.get(k)) for k in keys}


def _camera(path: Path, name: str, elem):
    rotation = elem.get("viewrotation", "0")
    if _number(path, name, "viewrotation", rotation) != 0:
        raise CalibrationError(f"{path}: camera {name}: field 'viewrotation' = {rotation}: rotated camera views are "
                               "not supported; export the calibration from QTM with viewrotation 0")
    keys = ("x", "y", "z") + tuple(f"r{i}{j}" for i in (1, 2, 3) for j in (1, 2, 3))
    tr = _attrs(path, name, elem, "transform", keys)
    rows = np.array([[tr[f"r{i}{j}"] for j in (1, 2, 3)] for i in (1, 2, 3)])
    check_rotation(path, name, "transform.r11..r33", rows)
    R = CV_FROM_QUALISYS_CAM @ rows
    center_m = np.array([tr["x"], tr["y"], tr["z"]]) / 1000.0
    t = -R @ center_m

    it = _attrs(path, name, elem, "intrinsic",
                ("focalLengthU", "focalLengthV", "centerPointU", "centerPointV", "sensorMinU", "sensorMaxU",
                 "sensorMinV", "sensorMaxV", "radialDistortion1", "radialDistortion2", "tangentalDistortion1",
                 "tangentalDistortion2"))
    optional = elem.find("intrinsic")
    k3 = _number(path, name, "intrinsic.radialDistortion3", optional.get("radialDistortion3", "0"))
    skew = _number(path, name, "intrinsic.skew", optional.get("skew", "0"))
    fov_video = _attrs(path, name, elem, "fov_video", ("left", "top", "right", "bottom"))
    sub_u, sub_v = _subpixels(path, name, elem, it)
    fx, fy = it["focalLengthU"] / sub_u, it["focalLengthV"] / sub_v
    cx = (it["centerPointU"] - it["sensorMinU"]) / sub_u - fov_video["left"]
    cy = (it["centerPointV"] - it["sensorMinV"]) / sub_v - fov_video["top"]
    K = np.array([[fx, skew / sub_u, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    size = (fov_video["right"] - fov_video["left"] + 1, fov_video["bottom"] - fov_video["top"] + 1)
    dist = [it["radialDistortion1"], it["radialDistortion2"], it["tangentalDistortion1"],
            it["tangentalDistortion2"], k3]
    return make_camera(path, name, size=size, K=K, dist=dist, R=R, t=t)


def _subpixels(path, name: str, elem, it: dict) -> tuple[float, float]:
    """Sensor sub-pixels per pixel on U and V, from the sensor range and the marker field of view."""
    fov = elem.find("fov_marker_max")
    if fov is None:
        log.debug("%s: camera %s: no <fov_marker_max>; assuming QTM's 64 sub-pixels per pixel", path, name)
        return 64.0, 64.0
    f = {k: _number(path, name, f"fov_marker_max.{k}", fov.get(k)) for k in ("left", "top", "right", "bottom")}
    span_u, span_v = f["right"] - f["left"], f["bottom"] - f["top"]
    if span_u <= 0 or span_v <= 0:
        raise CalibrationError(f"{path}: camera {name}: field 'fov_marker_max': empty field of view {f}")
    sub_u = (it["sensorMaxU"] - it["sensorMinU"]) / span_u
    sub_v = (it["sensorMaxV"] - it["sensorMinV"]) / span_v
    if not (sub_u > 0 and abs(sub_u - sub_v) <= 1e-6 * sub_u):
        raise CalibrationError(f"{path}: camera {name}: fields 'intrinsic.sensorMax*' and 'fov_marker_max' give "
                               f"{sub_u:g} sub-pixels per pixel on U but {sub_v:g} on V; expected the same ratio "
                               "(64 in QTM)")
    return sub_u, sub_v
