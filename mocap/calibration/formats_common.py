"""Shared pieces of the calibration readers and writers: field checks and float formatting."""

from __future__ import annotations

import numpy as np

from mocap.errors import CalibrationError
from mocap.geometry import Camera, Rig

#: Tolerance on ``|R^T R - I|`` and ``|det R - 1|``: files store rotations with ~7+ digits.
ROTATION_ATOL = 1e-5


def _field(path, camera: str, field: str, value, shape: tuple[int, ...], expected: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CalibrationError(f"{path}: camera {camera}: field {field!r}: expected {expected}, "
                               f"got {value!r}") from None
    if arr.shape != shape:
        raise CalibrationError(f"{path}: camera {camera}: field {field!r}: expected {expected}, "
                               f"got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise CalibrationError(f"{path}: camera {camera}: field {field!r}: non-finite value in {arr.tolist()}")
    return arr


def check_rotation(path, camera: str, field: str, R: np.ndarray) -> np.ndarray:
    """Raise a :class:`CalibrationError` unless ``R (3, 3)`` is a proper rotation."""
    err = np.abs(R.T @ R - np.eye(3)).max()
    det = np.linalg.det(R)
    if err > ROTATION_ATOL or abs(det - 1.0) > ROTATION_ATOL:
        raise CalibrationError(f"{path}: camera {camera}: field {field!r}: not a rotation matrix "
                               f"(max |R^T R - I| = {err:.2e}, det = {det:.4f}); expected an orthonormal "
                               "3x3 matrix with determinant +1")
    return R


def make_camera(path, name: str, *, size, K, dist, R, t, rms_px=None, dist_lengths=(4, 5)) -> Camera:
    """Build a :class:`Camera`, checking every field and naming file, camera and field on error.

    ``size`` ``(2,)`` width, height px; ``K (3, 3)``; ``dist`` of a length in ``dist_lengths``
    (zero-padded to 5); ``R (3, 3)`` cam_from_world; ``t (3,)`` metres.
    """
    size = _field(path, name, "size", size, (2,), "[width, height] in pixels")
    if np.any(size <= 0) or np.any(size != np.round(size)):
        raise CalibrationError(f"{path}: camera {name}: field 'size': expected positive integer [width, height], "
                               f"got {size.tolist()}")
    K = _field(path, name, "K", K, (3, 3), "a 3x3 matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]")
    if not np.allclose(K[2], [0.0, 0.0, 1.0]) or K[0, 0] <= 0 or K[1, 1] <= 0 or K[1, 0] != 0:
        raise CalibrationError(f"{path}: camera {name}: field 'K': expected [[fx, s, cx], [0, fy, cy], [0, 0, 1]] "
                               f"with fx, fy > 0, got {K.tolist()}")
    dist_arr = np.ravel(np.asarray(dist, dtype=object))
    if dist_arr.size not in dist_lengths:
        allowed = " or ".join(map(str, dist_lengths))
        raise CalibrationError(f"{path}: camera {name}: field 'dist': expected {allowed} values (k1 k2 p1 p2 k3), "
                               f"got {dist_arr.size}")
    dist = _field(path, name, "dist", dist_arr.tolist(), (dist_arr.size,), "numbers k1 k2 p1 p2 [k3]")
    R = check_rotation(path, name, "R", _field(path, name, "R", R, (3, 3), "a 3x3 rotation matrix"))
    t = _field(path, name, "t", t, (3,), "3 values [tx, ty, tz] in metres")
    if rms_px is not None:
        try:
            rms_px = float(rms_px)
        except (TypeError, ValueError):
            raise CalibrationError(f"{path}: camera {name}: field 'rms_px': expected a number, "
                                   f"got {rms_px!r}") from None
    return Camera(name=name, size=(int(size[0]), int(size[1])), K=K, dist=dist, R=R, t=t, rms_px=rms_px)


def make_rig(path, cameras: list[Camera], fmt: str, **metadata) -> Rig:
    """A :class:`Rig` of ``cameras`` read from ``path`` in format ``fmt`` (``"yaml"``, ``"toml"``, …).

    ``metadata`` joins ``{"format": fmt, "source": str(path)}`` in ``Rig.metadata``. A rig the
    cameras cannot make (duplicate names, none at all) raises a :class:`CalibrationError` naming
    the file.
    """
    try:
        return Rig(tuple(cameras), {"format": fmt, "source": str(path), **metadata})
    except ValueError as exc:
        raise CalibrationError(f"{path}: {exc}") from None


def fmt_float(x: float, yaml: bool = False) -> str:
    """Shortest text that reads back as exactly ``x``.

    YAML 1.1 (PyYAML) only reads ``1.0e-05`` as a float when the mantissa has a dot, so the
    YAML form adds one (``1e-05`` would come back as a string).
    """
    text = repr(float(x))
    if yaml and "e" in text and "." not in text.split("e")[0]:
        mantissa, exp = text.split("e")
        text = f"{mantissa}.0e{exp}"
    return text


def fmt_list(values, yaml: bool = False) -> str:
    return "[" + ", ".join(fmt_float(v, yaml) for v in np.ravel(values)) + "]"


def fmt_matrix(M, yaml: bool = False) -> str:
    return "[" + ", ".join(fmt_list(row, yaml) for row in np.asarray(M)) + "]"
