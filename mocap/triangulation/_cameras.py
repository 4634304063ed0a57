"""Stacked camera arrays shared by the triangulation modes (internal).

Every mode works in *normalised* coordinates for conditioning (Hartley & Zisserman 4.4.4 and
12.2): image points are mapped through ``K^-1`` (and undistorted), and the world is translated to
the centroid of the camera centres and scaled so that the mean centre distance is sqrt(3). The
projection matrices then read ``Pn = [R | t] @ world_from_normworld``. The lens model is
:mod:`mocap.geometry.lens`.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from mocap._checks import check_shape
from mocap.geometry import Camera, Rig
from mocap.geometry import lens
from mocap.triangulation.rules import MIN_DEPTH


@cache
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it BLAS keeps its default threads
        return None
    return ThreadpoolController()


@contextmanager
def single_thread_blas():
    """Run BLAS single-threaded inside (also usable as a decorator). Our BLAS calls are small
    products (``(10, 5C) @ (5C, N)``, ``(3C, 3) @ (3, N)``) that threads do not speed up, while on
    a loaded machine OpenBLAS's waiting threads make each call several times slower."""
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


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

    @cached_property
    def Pn(self) -> np.ndarray:
        """``(C, 3, 4)`` projections from the normalised world to normalised image coordinates."""
        # x_cam = R X + t with X = center + Xn / scale.
        A = self.R / self.scale
        b = self.t + self.R @ self.center
        return np.concatenate([A, b[:, :, None]], axis=-1)

    @cached_property
    def KRt(self) -> np.ndarray:
        """``K [R | t]`` stacked ``(3 C, 4)``: homogeneous world metres -> homogeneous undistorted pixels."""
        return np.concatenate([self.K @ self.R, self.K @ self.t[:, :, None]], axis=-1).reshape(-1, 4)

    @cached_property
    def dlt_basis(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-camera constants of the DLT normal equations (see ``dlt.normal_matrices``):
        ``G (10, 5 C)``, columns ``k C + c`` the upper triangle of camera c's ``Q33, -(Q31 + Q13),
        -(Q32 + Q23), Q11, Q22`` (k = 0..4) with ``Qij = Pi Pj^T`` (``Pi`` row i of ``Pn``), and the
        row products ``(5, C)``: ``P3.P3, P3.P1, P1.P1, P3.P2, P2.P2``."""
        P1, P2, P3 = self.Pn[:, 0], self.Pn[:, 1], self.Pn[:, 2]
        outer = lambda a, b: a[:, :, None] * b[:, None, :]  # noqa: E731
        basis = np.stack([outer(P3, P3), -outer(P3, P1) - outer(P1, P3), -outer(P3, P2) - outer(P2, P3),
                          outer(P1, P1), outer(P2, P2)])  # (5, C, 4, 4)
        i, j = np.triu_indices(4)
        G = np.ascontiguousarray(basis[:, :, i, j].reshape(-1, 10).T)
        dots = lambda a, b: (a * b).sum(-1)  # noqa: E731
        norms = np.stack([dots(P3, P3), dots(P3, P1), dots(P1, P1), dots(P3, P2), dots(P2, P2)])
        return G, norms


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


def pixels_to_normalized(cams: CameraArrays, u: np.ndarray, v: np.ndarray, undistort: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Distorted pixels ``u, v (C, N)`` (cameras first: per-camera constants broadcast over long
    contiguous rows) -> undistorted normalised image coordinates ``x, y (C, N)``."""
    K = cams.K
    y = (v - K[:, 1, 2, None]) / K[:, 1, 1, None]
    x = (u - K[:, 0, 2, None] - K[:, 0, 1, None] * y) / K[:, 0, 0, None]
    if undistort and cams.dist is not None:
        x, y = lens.undistort(x, y, tuple(cams.dist[:, i, None] for i in range(5)))
    return x, y


def world_to_cam(cams: CameraArrays, points_world: np.ndarray) -> np.ndarray:
    """Points ``(..., 3)`` -> camera frames ``(..., C, 3)``."""
    return np.einsum("cij,...j->...ci", cams.R, points_world) + cams.t


def _per_camera(a: np.ndarray, ndim: int) -> np.ndarray:
    """``(C, ...)`` constants shaped to broadcast against ``(C, <ndim - 1 axes>)`` arrays."""
    return a.reshape(a.shape[:1] + (1,) * (ndim - 1) + a.shape[1:])


def cam_from_world(M: np.ndarray, b: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``M (C, 3, 3) @ X + b (C, 3, 1)`` for world points ``X (3, N)`` -> ``(C, 3, N)``, as one
    ``(3C, 3) @ (3, N)`` product (a broadcast ``matmul`` of ``C`` small matrices is ~20x slower)."""
    C = M.shape[0]
    return (M.reshape(3 * C, 3) @ X).reshape(C, 3, X.shape[-1]) + b


def project_normalized(cams: CameraArrays, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pinhole projection of world points ``X (3, N)`` into every camera -> undistorted
    normalised ``x, y`` and depth ``z``, each ``(C, N)``."""
    pc = cam_from_world(cams.R, cams.t[:, :, None], X)
    z = pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_z = 1.0 / z
    return pc[:, 0] * inv_z, pc[:, 1] * inv_z, z


def normalized_to_pixels(cams: CameraArrays, x: np.ndarray, y: np.ndarray, distort: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Normalised image coordinates ``x, y (C, ..., N)`` -> pixels ``u, v`` (same shape)."""
    nd = x.ndim
    if distort and cams.dist is not None:
        x, y = lens.distort(x, y, tuple(_per_camera(cams.dist[:, i], nd) for i in range(5)))
    K = cams.K
    u = _per_camera(K[:, 0, 0], nd) * x + _per_camera(K[:, 0, 1], nd) * y + _per_camera(K[:, 0, 2], nd)
    v = _per_camera(K[:, 1, 1], nd) * y + _per_camera(K[:, 1, 2], nd)
    return u, v


def project_px(cams: CameraArrays, X: np.ndarray, distort: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """World points ``X (3, N)`` -> pixels ``u, v (C, N)``; NaN at or behind a camera."""
    x, y, z = project_normalized(cams, X)
    behind = ~(z > MIN_DEPTH)
    x[behind] = np.nan
    return normalized_to_pixels(cams, x, y, distort)


def undistorted_pixels(cams: CameraArrays, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised ``x, y (C, N)`` -> undistorted pixels ``(C, N)`` (no lens model)."""
    K = cams.K
    return K[:, 0, 0, None] * x + K[:, 0, 1, None] * y + K[:, 0, 2, None], K[:, 1, 1, None] * y + K[:, 1, 2, None]


def squared_error_px(cams: CameraArrays, X: np.ndarray, pu: np.ndarray, pv: np.ndarray) -> np.ndarray:
    """Squared distance ``(..., C, N)`` in undistorted pixels between world points ``X (..., 3, N)``
    (or homogeneous ``(..., 4, N)`` with last row 1)
    projected into every camera and the undistorted pixel observations ``pu, pv (C, N)``; inf at
    or behind a camera (or for a NaN point)."""
    KRt = cams.KRt
    C = KRt.shape[0] // 3
    if X.shape[-2] == 3:
        X = np.concatenate([X, np.ones(X.shape[:-2] + (1, X.shape[-1]))], axis=-2)
    pc = np.matmul(KRt, X).reshape(X.shape[:-2] + (C, 3, X.shape[-1]))  # (..., C, 3, N), one GEMM
    z = pc[..., 2, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_z = 1.0 / z
        du = pc[..., 0, :] * inv_z - pu
        dv = pc[..., 1, :] * inv_z - pv
        e2 = du * du + dv * dv
        e2[~(z > 0)] = np.inf
    return e2
