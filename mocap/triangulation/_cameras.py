"""Stacked camera arrays shared by the triangulation modes (internal).

Every mode works in *normalised* coordinates for conditioning (Hartley & Zisserman 4.4.4 and
12.2): image points are mapped through ``K^-1`` (and undistorted), and the world is translated to
the centroid of the camera centres and scaled so that the mean centre distance is sqrt(3). The
projection matrices then read ``Pn = [R | t] @ world_from_normworld``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap._checks import check_shape
from mocap.geometry import Camera, Rig


@dataclass(frozen=True, eq=False)
class CameraArrays:
    """C cameras stacked: ``K (C,3,3)``, ``dist (C,5)`` or None, ``R (C,3,3)``, ``t (C,3)`` metres,
    and the world normalisation ``center (3,)``, ``scale`` (normalised = scale * (X - center))."""

    K: np.ndarray
    dist: np.ndarray | None
    R: np.ndarray
    t: np.ndarray
    center: np.ndarray
    scale: float

    @property
    def num_cameras(self) -> int:
        return self.K.shape[0]

    @property
    def centers(self) -> np.ndarray:
        """Camera centres ``(C, 3)`` world metres."""
        return -np.einsum("cji,cj->ci", self.R, self.t)

    @property
    def Pn(self) -> np.ndarray:
        """``(C, 3, 4)`` projections from the normalised world to normalised image coordinates."""
        # x_cam = R X + t with X = center + Xn / scale.
        A = self.R / self.scale
        b = self.t + self.R @ self.center
        return np.concatenate([A, b[:, :, None]], axis=-1)


def _rq(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RQ decomposition of ``(3, 3)`` ``M = K @ Q``, K upper triangular with positive diagonal."""
    flip = np.eye(3)[::-1]
    q, r = np.linalg.qr((flip @ M).T)
    K = flip @ r.T @ flip
    Q = flip @ q.T
    S = np.diag(np.sign(np.diag(K)))
    return K @ S, S @ Q


def camera_arrays(cameras) -> CameraArrays:
    """Stack a :class:`Rig`, a sequence of :class:`Camera`, or bare projections ``P (C, 3, 4)``.

    Bare ``P`` are taken as distortion-free; ``K`` and ``[R | t]`` are recovered by RQ
    decomposition (only to normalise coordinates; the geometry is unchanged).
    """
    if isinstance(cameras, Rig) or (isinstance(cameras, (list, tuple)) and cameras and isinstance(cameras[0], Camera)):
        cams = list(cameras)
        K = np.stack([c.K for c in cams])
        dist = np.stack([c.dist for c in cams])
        R = np.stack([c.R for c in cams])
        t = np.stack([c.t for c in cams])
        dist = dist if np.any(dist != 0) else None
    else:
        P = check_shape(np.asarray(cameras, dtype=np.float64), "C 3 4", "P")
        if not np.isfinite(P).all():
            raise ValueError("P: non-finite values in the projection matrices")
        Ks, Rs, ts = [], [], []
        for i, Pi in enumerate(P):
            M = Pi[:, :3]
            det = np.linalg.det(M)
            if abs(det) < 1e-12 * max(np.abs(M).max(), 1e-300) ** 3:
                raise ValueError(f"P[{i}]: left 3x3 block is singular; not a finite projective camera")
            Pi = Pi * np.sign(det)  # so that points in front of the camera have positive depth
            Kc, Rc = _rq(Pi[:, :3])
            Ks.append(Kc / Kc[2, 2])
            Rs.append(Rc)
            ts.append(np.linalg.solve(Kc, Pi[:, 3]))
        K, R, t, dist = np.stack(Ks), np.stack(Rs), np.stack(ts), None
    centers = -np.einsum("cji,cj->ci", R, t)
    center = centers.mean(axis=0)
    spread = np.linalg.norm(centers - center, axis=-1).mean()
    scale = float(np.sqrt(3.0) / spread) if spread > 1e-9 else 1.0
    return CameraArrays(K, dist, R, t, center, scale)


def _distort(x, y, k):
    """OpenCV radial-tangential distortion of normalised ``x, y`` (same shape); ``k`` is
    ``(k1, k2, p1, p2, k3)``, each broadcastable. Returns ``xd, yd``."""
    k1, k2, p1, p2, k3 = k
    x2, y2, xy = x * x, y * y, x * y
    r2 = x2 + y2
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * xy + p2 * (r2 + 2 * x2)
    yd = y * radial + p1 * (r2 + 2 * y2) + 2 * p2 * xy
    return xd, yd


def _distort_jacobian(x, y, k):
    """``_distort`` and its Jacobian entries: ``xd, yd, d xd/dx, d xd/dy (= d yd/dx), d yd/dy``."""
    k1, k2, p1, p2, k3 = k
    x2, y2, xy = x * x, y * y, x * y
    r2 = x2 + y2
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * xy + p2 * (r2 + 2 * x2)
    yd = y * radial + p1 * (r2 + 2 * y2) + 2 * p2 * xy
    dr = 2 * (k1 + r2 * (2 * k2 + 3 * k3 * r2))  # 2 d radial / d r2
    jxx = radial + x2 * dr + 2 * p1 * y + 6 * p2 * x
    jyy = radial + y2 * dr + 6 * p1 * y + 2 * p2 * x
    jxy = xy * dr + 2 * p1 * x + 2 * p2 * y
    return xd, yd, jxx, jxy, jyy


def undistort_xy(xd: np.ndarray, yd: np.ndarray, dist: np.ndarray, iterations: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Invert the lens model for normalised points ``(..., C)`` with ``dist (C, 5)`` by Newton's
    method (quadratic convergence), started at the first-order inverse ``x_d / radial(x_d)``:
    2-4 steps to 1e-14 for real lenses. Points where the model folds over (outside the lens'
    valid field) are NaN, not a wrong answer."""
    k = tuple(dist[:, i] for i in range(5))
    r2 = xd * xd + yd * yd
    radial = 1 + r2 * (k[0] + r2 * (k[1] + r2 * k[4]))
    x, y = xd / radial, yd / radial
    for _ in range(iterations):
        fx, fy, jxx, jxy, jyy = _distort_jacobian(x, y, k)
        fx -= xd
        fy -= yd
        det = jxx * jyy - jxy * jxy
        det[np.abs(det) < 1e-12] = np.nan
        x -= (jyy * fx - jxy * fy) / det
        y -= (jxx * fy - jxy * fx) / det
        with np.errstate(invalid="ignore"):
            if not (np.abs(fx) > 1e-14).any() and not (np.abs(fy) > 1e-14).any():
                break
    fx, fy = _distort(x, y, k)
    with np.errstate(invalid="ignore"):
        bad = (np.abs(fx - xd) > 1e-9) | (np.abs(fy - yd) > 1e-9)
    x[bad] = np.nan
    y[bad] = np.nan
    return x, y


def pixels_to_normalized(cams: CameraArrays, xy_px: np.ndarray, undistort: bool = True) -> np.ndarray:
    """Distorted pixels ``(..., C, 2)`` -> undistorted normalised image coordinates ``(..., C, 2)``."""
    K = cams.K
    y = (xy_px[..., 1] - K[:, 1, 2]) / K[:, 1, 1]
    x = (xy_px[..., 0] - K[:, 0, 2] - K[:, 0, 1] * y) / K[:, 0, 0]
    if undistort and cams.dist is not None:
        x, y = undistort_xy(x, y, cams.dist)
    return np.stack([x, y], axis=-1)


def world_to_cam(cams: CameraArrays, points_world: np.ndarray) -> np.ndarray:
    """Points ``(..., 3)`` -> camera frames ``(..., C, 3)``."""
    return np.einsum("cij,...j->...ci", cams.R, points_world) + cams.t


def project_normalized(cams: CameraArrays, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of ``(..., 3)`` to undistorted normalised ``(..., C, 2)`` and depth ``(..., C)``."""
    pc = world_to_cam(cams, points_world)
    z = pc[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = pc[..., :2] / z[..., None]
    return xy, z


def normalized_to_pixels(cams: CameraArrays, xy: np.ndarray, distort: bool = True) -> np.ndarray:
    """Normalised image coordinates ``(..., C, 2)`` -> pixels ``(..., C, 2)``."""
    x, y = xy[..., 0], xy[..., 1]
    if distort and cams.dist is not None:
        x, y = _distort(x, y, tuple(cams.dist[:, i] for i in range(5)))
    K = cams.K
    u = K[:, 0, 0] * x + K[:, 0, 1] * y + K[:, 0, 2]
    v = K[:, 1, 1] * y + K[:, 1, 2]
    return np.stack([u, v], axis=-1)


def project_px(cams: CameraArrays, points_world: np.ndarray, distort: bool = True) -> np.ndarray:
    """World points ``(..., 3)`` -> pixels ``(..., C, 2)``; NaN at or behind a camera."""
    xy, z = project_normalized(cams, points_world)
    xy = np.where((z > 1e-9)[..., None], xy, np.nan)
    return normalized_to_pixels(cams, xy, distort)


def normalized_error_px(cams: CameraArrays, xy_a: np.ndarray, xy_b: np.ndarray) -> np.ndarray:
    """Distance ``(..., C)`` between normalised points expressed in (undistorted) pixels."""
    d = xy_a - xy_b
    du = cams.K[:, 0, 0] * d[..., 0] + cams.K[:, 0, 1] * d[..., 1]
    dv = cams.K[:, 1, 1] * d[..., 1]
    return np.sqrt(du * du + dv * dv)
