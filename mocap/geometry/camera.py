"""Cameras and rigs: frozen value types, projection, undistortion, rays, epipolar geometry.

Camera model (OpenCV): ``x_cam = R @ X_world + t`` (``R``, ``t`` are cam_from_world); x right,
y down, z forward; pixel (0, 0) is the centre of the top-left pixel; distortion
``(k1, k2, p1, p2, k3)`` applied to normalised coordinates by the one lens model,
:mod:`mocap.geometry.lens` (``distort_normalized`` and ``undistort_normalized`` are re-exported
from there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from mocap._checks import check_rotation_matrix, check_shape
from mocap.geometry.lens import distort_normalized, undistort_normalized

__all__ = [
    "Camera", "Rig", "distort_normalized", "epipolar_distance", "fundamental_matrix", "normalize_camera_name",
    "pixel_to_normalized", "pixel_to_ray", "project", "project_rig", "skew", "undistort_normalized",
    "undistort_points", "undistort_points_rig", "world_to_cam",
]


@dataclass(frozen=True, eq=False)
class Camera:
    """One calibrated camera.

    Attributes:
        name: camera name as used in files (``cam01``).
        size: image ``(width, height)`` in pixels.
        K: intrinsic matrix ``(3, 3)``.
        dist: distortion ``(5,)`` ``k1, k2, p1, p2, k3`` (shorter inputs are zero-padded).
        R: rotation cam_from_world ``(3, 3)``.
        t: translation cam_from_world ``(3,)`` metres.
        rms_px: calibration reprojection RMS in pixels, if known.
    """

    name: str
    size: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rms_px: float | None = None

    def __post_init__(self):
        K = check_shape(np.asarray(self.K, dtype=np.float64), "3 3", f"camera {self.name}: K")
        dist = np.asarray(self.dist, dtype=np.float64).ravel()
        if dist.size > 5 and np.any(dist[5:] != 0):
            raise ValueError(f"camera {self.name}: dist: only 5 coefficients (k1 k2 p1 p2 k3) are supported, got {dist.size}")
        dist = np.concatenate([dist[:5], np.zeros(max(0, 5 - dist.size))])
        R = check_rotation_matrix(self.R, f"camera {self.name}: R")
        t = check_shape(np.asarray(self.t, dtype=np.float64).ravel(), "3", f"camera {self.name}: t")
        if len(self.size) != 2:
            raise ValueError(f"camera {self.name}: size: expected (width, height), got {self.size!r}")
        for arr in (K, dist, R, t):
            if not np.isfinite(arr).all():
                raise ValueError(f"camera {self.name}: non-finite value in calibration")
            arr.setflags(write=False)
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "dist", dist)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates ``(3,)``: ``-R^T t``."""
        return -self.R.T @ self.t

    @property
    def cam_from_world(self) -> np.ndarray:
        """Homogeneous transform ``(4, 4)``."""
        T = np.eye(4)
        T[:3, :3] = self.R
        T[:3, 3] = self.t
        return T

    @property
    def P(self) -> np.ndarray:
        """Projection matrix ``(3, 4)`` = ``K [R | t]`` (for undistorted pixels)."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    @property
    def has_distortion(self) -> bool:
        return bool(np.any(self.dist != 0))

    def replace(self, **changes) -> "Camera":
        """A copy with some fields changed."""
        from dataclasses import replace

        return replace(self, **changes)


def normalize_camera_name(name: str) -> str:
    """Key used to match camera names across files: case, ``_``/``-`` and leading zeros ignored.

    ``cam01`` ↔ ``cam_01`` ↔ ``CAM-1`` ↔ ``cam1``. A trailing ``_json`` (OpenPose folders) is dropped.
    """
    key = name.strip().lower()
    key = re.sub(r"[_-]?json$", "", key)
    key = key.replace("_", "").replace("-", "")
    return re.sub(r"0+(\d)", r"\1", key)


@dataclass(frozen=True, eq=False)
class Rig:
    """A set of cameras sharing one world frame (Z up, metres)."""

    cameras: tuple[Camera, ...]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        cams = tuple(self.cameras)
        if not cams:
            raise ValueError("rig: no cameras")
        keys = [normalize_camera_name(c.name) for c in cams]
        if len(set(keys)) != len(keys):
            raise ValueError(f"rig: camera names collide after normalisation: {[c.name for c in cams]}")
        object.__setattr__(self, "cameras", cams)

    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self):
        return iter(self.cameras)

    def __getitem__(self, key: int | str) -> Camera:
        if isinstance(key, str):
            return self.cameras[self.index(key)]
        return self.cameras[key]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def index(self, name: str) -> int:
        """Index of a camera by name using :func:`normalize_camera_name`; ValueError if unknown."""
        key = normalize_camera_name(name)
        for i, c in enumerate(self.cameras):
            if normalize_camera_name(c.name) == key:
                return i
        raise ValueError(f"unknown camera {name!r}; the calibration has {', '.join(self.names)}")

    @property
    def P(self) -> np.ndarray:
        """Projection matrices ``(C, 3, 4)``."""
        return np.stack([c.P for c in self.cameras])

    @property
    def K(self) -> np.ndarray:
        return np.stack([c.K for c in self.cameras])

    @property
    def dist(self) -> np.ndarray:
        return np.stack([c.dist for c in self.cameras])

    @property
    def R(self) -> np.ndarray:
        return np.stack([c.R for c in self.cameras])

    @property
    def t(self) -> np.ndarray:
        return np.stack([c.t for c in self.cameras])

    @property
    def centers(self) -> np.ndarray:
        """Camera centres ``(C, 3)`` in world metres."""
        return np.stack([c.center for c in self.cameras])

    @property
    def sizes(self) -> np.ndarray:
        """Image sizes ``(C, 2)`` as (width, height)."""
        return np.array([c.size for c in self.cameras], dtype=np.int64)

    def subset(self, names: list[str]) -> "Rig":
        return Rig(tuple(self[n] for n in names), dict(self.metadata))


# --------------------------------------------------------------------------------------------
# Projection and back-projection
# --------------------------------------------------------------------------------------------

def world_to_cam(camera: Camera, points_world: np.ndarray) -> np.ndarray:
    """Points ``(..., 3)`` world -> camera frame ``(..., 3)``."""
    points_world = check_shape(np.asarray(points_world, dtype=np.float64), "... 3", "points_world")
    return points_world @ camera.R.T + camera.t


def project(camera: Camera, points_world: np.ndarray, distort: bool = True) -> np.ndarray:
    """Project world points ``(..., 3)`` metres to pixels ``(..., 2)`` (with lens distortion).

    Points at or behind the camera plane (z <= 0) give NaN.
    """
    pc = world_to_cam(camera, points_world)
    z = pc[..., 2:3]
    xy = np.where(z > 1e-9, pc[..., :2] / np.where(z > 1e-9, z, 1.0), np.nan)
    if distort and camera.has_distortion:
        xy = distort_normalized(xy, camera.dist)
    K = camera.K
    u = K[0, 0] * xy[..., 0] + K[0, 1] * xy[..., 1] + K[0, 2]
    v = K[1, 1] * xy[..., 1] + K[1, 2]
    return np.stack([u, v], axis=-1)


def project_rig(rig: Rig, points_world: np.ndarray, distort: bool = True) -> np.ndarray:
    """Project points ``(..., 3)`` into every camera: ``(..., C, 2)`` pixels."""
    return np.stack([project(c, points_world, distort) for c in rig.cameras], axis=-2)


def pixel_to_normalized(camera: Camera, xy_px: np.ndarray) -> np.ndarray:
    """Distorted pixels ``(..., 2)`` -> undistorted normalised image coords ``(..., 2)``."""
    xy_px = check_shape(np.asarray(xy_px, dtype=np.float64), "... 2", "xy_px")
    K = camera.K
    y = (xy_px[..., 1] - K[1, 2]) / K[1, 1]
    x = (xy_px[..., 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
    xy = np.stack([x, y], axis=-1)
    if camera.has_distortion:
        xy = undistort_normalized(xy, camera.dist)
    return xy


def undistort_points(camera: Camera, xy_px: np.ndarray) -> np.ndarray:
    """Distorted pixels ``(..., 2)`` -> undistorted pixels ``(..., 2)`` (same K)."""
    xy = pixel_to_normalized(camera, xy_px)
    K = camera.K
    u = K[0, 0] * xy[..., 0] + K[0, 1] * xy[..., 1] + K[0, 2]
    v = K[1, 1] * xy[..., 1] + K[1, 2]
    return np.stack([u, v], axis=-1)


def undistort_points_rig(rig: Rig, xy_px: np.ndarray) -> np.ndarray:
    """Undistort pixels ``(..., C, 2)`` camera by camera."""
    xy_px = check_shape(np.asarray(xy_px, dtype=np.float64), "... C 2", "xy_px")
    if xy_px.shape[-2] != len(rig):
        raise ValueError(f"xy_px: expected {len(rig)} cameras on axis -2, got {xy_px.shape[-2]}")
    return np.stack([undistort_points(c, xy_px[..., i, :]) for i, c in enumerate(rig.cameras)], axis=-2)


def pixel_to_ray(camera: Camera, xy_px: np.ndarray) -> np.ndarray:
    """Unit ray directions in world coordinates ``(..., 3)`` through pixels ``(..., 2)``.

    The ray starts at ``camera.center``.
    """
    xy = pixel_to_normalized(camera, xy_px)
    d_cam = np.concatenate([xy, np.ones(xy.shape[:-1] + (1,))], axis=-1)
    d_world = d_cam @ camera.R  # R^T d, row-vector form
    return d_world / np.linalg.norm(d_world, axis=-1, keepdims=True)


def skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices ``(..., 3, 3)`` of vectors ``(..., 3)``."""
    v = np.asarray(v, dtype=np.float64)
    z = np.zeros(v.shape[:-1])
    return np.stack([
        np.stack([z, -v[..., 2], v[..., 1]], -1),
        np.stack([v[..., 2], z, -v[..., 0]], -1),
        np.stack([-v[..., 1], v[..., 0], z], -1),
    ], -2)


def fundamental_matrix(cam_a: Camera, cam_b: Camera) -> np.ndarray:
    """Fundamental matrix ``(3, 3)`` with ``x_b^T F x_a = 0`` for *undistorted* pixels.

    Built from the relative pose b_from_a: ``F = K_b^{-T} [t]_x R K_a^{-1}`` (Hartley & Zisserman 9.2.2).
    """
    R = cam_b.R @ cam_a.R.T
    t = cam_b.t - R @ cam_a.t
    E = skew(t) @ R
    F = np.linalg.inv(cam_b.K).T @ E @ np.linalg.inv(cam_a.K)
    n = np.linalg.norm(F)
    return F / n if n > 0 else F


def epipolar_distance(F: np.ndarray, xy_a: np.ndarray, xy_b: np.ndarray) -> np.ndarray:
    """Symmetric point-to-epipolar-line distance in pixels for undistorted ``(..., 2)`` pairs."""
    ha = np.concatenate([xy_a, np.ones(xy_a.shape[:-1] + (1,))], -1)
    hb = np.concatenate([xy_b, np.ones(xy_b.shape[:-1] + (1,))], -1)
    lb = ha @ F.T  # lines in b
    la = hb @ F  # lines in a
    num = np.abs(np.sum(hb * lb, -1))
    da = num / np.linalg.norm(la[..., :2], axis=-1)
    db = num / np.linalg.norm(lb[..., :2], axis=-1)
    return 0.5 * (da + db)
