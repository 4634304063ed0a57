"""Virtual camera rigs for the synthetic studio (world Z up, metres)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mocap.geometry.camera import Camera, Rig
from mocap.geometry.rotations import rotvec_to_rotmat


def look_at(center_world: np.ndarray, target_world: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """Rotation cam_from_world ``(3, 3)`` of a camera at ``center_world (3,)`` looking at
    ``target_world (3,)`` with the world's +Z up in the image (OpenCV axes: x right, y down,
    z forward), then rolled by ``roll`` radians about its optical axis."""
    z = np.asarray(target_world, dtype=np.float64) - np.asarray(center_world, dtype=np.float64)
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    if np.linalg.norm(x) < 1e-9:  # looking straight up or down: any horizontal x will do
        x = np.array([1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return rotvec_to_rotmat(np.array([0.0, 0.0, roll])) @ R


def valid_normalized_radius(dist: np.ndarray, r_max: float = 3.0) -> float:
    """Largest undistorted normalised radius up to which the radial model is monotonic.

    Beyond it ``r_d = r (1 + k1 r² + k2 r⁴ + k3 r⁶)`` folds back, and points far outside the
    field of view would project *into* the image; callers treat them as out of frame.
    """
    k1, k2, _, _, k3 = np.asarray(dist, dtype=np.float64)
    r = np.linspace(0.0, r_max, 3001)
    r2 = r * r
    deriv = 1 + 3 * k1 * r2 + 5 * k2 * r2 * r2 + 7 * k3 * r2 ** 3
    bad = np.nonzero(deriv <= 0.05)[0]
    return float(r[bad[0] - 1]) if bad.size else r_max


def ring_rig(num_cameras: int = 8, radius: float = 4.5, height: float = 2.2,
             target=(0.0, 0.0, 1.0), focal_range=(900.0, 1800.0), image_size=(1920, 1080),
             distortion: bool = True, seed: int = 0) -> Rig:
    """A ring of cameras around the capture volume, all looking at ``target``.

    Cameras stand evenly around a circle of ``radius`` metres (±5° azimuth jitter) at
    ``height`` metres (±0.3 m), aimed at ``target`` (±0.2 m) with up to ±3° roll. Intrinsics:
    ``fx`` uniform in ``focal_range`` px, ``fy = fx·(1 ± 0.2 %)``, principal point within 1 % of
    the image centre. Distortion (when enabled): ``k1`` in [-0.3, 0.1], ``k2`` in [-0.05, 0.12],
    ``k3 = 0``, tangential ``p1, p2`` ~ N(0, 5e-4), resampled until the radial model is monotonic
    out to 1.3× the image corner's radius (real lenses are).

    Args:
        num_cameras: number of cameras ``C`` (>= 2).
        radius, height: ring radius and mean camera height, metres.
        target: ``(3,)`` world point the cameras aim at (the volume centre).
        focal_range: ``(min, max)`` focal length in pixels.
        image_size: ``(width, height)`` pixels.
        distortion: draw lens distortion (else zero).
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        A :class:`Rig` with cameras ``cam01 … camCC``.
    """
    if num_cameras < 2:
        raise ValueError(f"num_cameras: expected >= 2, got {num_cameras}")
    if radius <= 0 or focal_range[0] <= 0 or focal_range[1] < focal_range[0]:
        raise ValueError(f"radius/focal_range: expected radius > 0 and 0 < min <= max, got {radius}, {focal_range}")
    rng = np.random.default_rng(seed)
    W, H = int(image_size[0]), int(image_size[1])
    target = np.asarray(target, dtype=np.float64)
    cams = []
    for i in range(num_cameras):
        az = 2 * np.pi * i / num_cameras + np.deg2rad(rng.uniform(-5, 5))
        center = np.array([radius * np.cos(az), radius * np.sin(az), height + rng.uniform(-0.3, 0.3)])
        aim = target + rng.uniform(-0.2, 0.2, 3)
        R = look_at(center, aim, np.deg2rad(rng.uniform(-3, 3)))
        fx = rng.uniform(*focal_range)
        K = np.array([[fx, 0.0, (W - 1) / 2 + rng.uniform(-0.01, 0.01) * W],
                      [0.0, fx * (1 + rng.uniform(-0.002, 0.002)), (H - 1) / 2 + rng.uniform(-0.01, 0.01) * H],
                      [0.0, 0.0, 1.0]])
        dist = np.zeros(5)
        if distortion:
            corner = np.hypot(W / 2, H / 2) / fx
            while True:
                dist = np.array([rng.uniform(-0.3, 0.1), rng.uniform(-0.05, 0.12),
                                 rng.normal(0, 5e-4), rng.normal(0, 5e-4), 0.0])
                r = valid_normalized_radius(dist)
                if r * (1 + dist[0] * r**2 + dist[1] * r**4) > 1.3 * corner:
                    break
        cams.append(Camera(f"cam{i + 1:02d}", (W, H), K, dist, R, -R @ center))
    return Rig(tuple(cams), {"kind": "ring", "radius": radius, "height": height, "seed": seed})


def turned_camera(rig: Rig, index: int, degrees: float, axis=(0.0, 1.0, 0.0)) -> Rig:
    """``rig`` with camera ``index`` turned by ``degrees`` about ``axis`` of its own frame, about its
    own centre (the centre stays): a studio calibration that is off for one camera, while the
    detections come from the true rig (1° moves that camera's image by ``f · tan 1°``, 30 px at
    ``f`` = 1700)."""
    turn = rotvec_to_rotmat(np.radians(degrees) * np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis))
    cams = list(rig.cameras)
    cams[index] = replace(cams[index], R=turn @ cams[index].R, t=turn @ cams[index].t)
    return replace(rig, cameras=tuple(cams))
