"""First-order 3D covariance of triangulated points from 2D noise.

With the reprojection Jacobian ``J_c (2, 3)`` of view ``c`` (pixels per metre, lens distortion
included) and independent isotropic 2D noise ``sigma_c`` px, the Gauss–Newton information of the
least-squares estimate is ``H = sum_c J_c^T J_c / sigma_c^2`` and its covariance ``H^-1``
(Hartley & Zisserman 5.2.3, "forward propagation of covariance" through the implicit estimator).
It is exact to first order at the maximum-likelihood point, and a good approximation at any
estimate close to it; tracking uses it as the measurement noise.
"""

from __future__ import annotations

import numpy as np

from mocap._checks import check_shape
from mocap.geometry.lens import distort_with_jacobian
from mocap.triangulation._cameras import CameraArrays, camera_arrays, world_to_cam


def projection_jacobian(cams: CameraArrays, points_world: np.ndarray, distort: bool = True) -> np.ndarray:
    """Jacobian ``(N, C, 2, 3)`` of pixel projections with respect to world points ``(N, 3)``."""
    pc = world_to_cam(cams, points_world)  # (N, C, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_z = 1.0 / pc[..., 2]
    xn = pc[..., :2] * inv_z[..., None]
    d_cam = np.zeros(pc.shape[:-1] + (2, 3))
    d_cam[..., 0, 0] = inv_z
    d_cam[..., 1, 1] = inv_z
    d_cam[..., :, 2] = -xn * inv_z[..., None]
    J = d_cam @ cams.R  # (N, C, 2, 3): d xn / d X
    A = cams.K[:, :2, :2]
    if distort and cams.dist is not None:
        _, _, jxx, jxy, jyy = distort_with_jacobian(xn[..., 0], xn[..., 1], tuple(cams.dist[:, i] for i in range(5)))
        D = np.stack([np.stack([jxx, jxy], -1), np.stack([jxy, jyy], -1)], -2)
        A = A @ D
    return A @ J


def covariance_from_cams(cams: CameraArrays, points_world: np.ndarray, sigma_px: np.ndarray,
                         views: np.ndarray, distort: bool = True) -> np.ndarray:
    """Covariance ``(N, 3, 3)`` m^2 for points ``(N, 3)``, noise ``sigma_px (N, C)``, used ``views (N, C)``.

    NaN where the point is NaN, fewer than two views are used, or the geometry is degenerate.
    """
    J = projection_jacobian(cams, np.nan_to_num(points_world), distort)
    with np.errstate(divide="ignore", invalid="ignore"):
        info_w = np.where(views, 1.0 / np.square(sigma_px), 0.0)
    J = np.where(views[..., None, None], J, 0.0)
    H = np.einsum("ncki,nc,nckj->nij", J, info_w, J)
    bad = (views.sum(-1) < 2) | ~np.isfinite(points_world).all(-1) | ~np.isfinite(H).all(axis=(-1, -2))
    H[bad] = np.eye(3)
    # A near-singular H (views almost collinear with the point) gives a huge but finite covariance;
    # exactly singular ones are flagged NaN.
    tr = np.trace(H, axis1=-2, axis2=-1)
    cond_bad = np.linalg.det(H) <= 1e-14 * (tr / 3.0) ** 3
    H[cond_bad] = np.eye(3)
    cov = np.linalg.inv(H)
    cov[bad | cond_bad] = np.nan
    return cov


def triangulation_covariance(cameras, points_world, sigma_px, views=None, *, distort: bool = True) -> np.ndarray:
    """First-order covariance of triangulated points.

    Args:
        cameras: a Rig, list of cameras, or bare ``P (C, 3, 4)``.
        points_world: ``(..., 3)`` metres.
        sigma_px: 2D noise standard deviation in pixels, a scalar or ``(..., C)`` per observation.
        views: ``(..., C)`` bool, the views that observed (and were used for) each point; all if None.
        distort: include the lens distortion in the Jacobian (observations are distorted pixels).

    Returns:
        ``(..., 3, 3)`` covariance in m^2; NaN where fewer than two views or degenerate.
    """
    cams = camera_arrays(cameras)
    pts = check_shape(np.asarray(points_world, dtype=np.float64), "... 3", "points_world")
    lead, C = pts.shape[:-1], cams.num_cameras
    views = np.ones(lead + (C,), bool) if views is None else np.asarray(views, dtype=bool)
    if views.shape != lead + (C,):
        raise ValueError(f"views: expected shape {lead + (C,)}, got {views.shape}")
    sigma = np.broadcast_to(np.asarray(sigma_px, dtype=np.float64), lead + (C,))
    if np.any(sigma <= 0):
        raise ValueError("sigma_px: the 2D noise level must be > 0 pixels")
    cov = covariance_from_cams(cams, pts.reshape(-1, 3), sigma.reshape(-1, C), views.reshape(-1, C), distort)
    return cov.reshape(lead + (3, 3))
