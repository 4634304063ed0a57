"""Bundle adjustment of a camera rig over board views (scipy ``least_squares``, sparse Jacobian).

Unknowns: every camera's pose cam_from_ref (one camera held fixed: it defines the reference
frame; the board's known square size fixes the scale), every frame's board pose ref_from_board,
and optionally each camera's intrinsics (fx, fy, cx, cy, k1, k2, p1, p2, k3). Residuals are the
pixel reprojection errors of all corner observations at once (no per-observation Python loop);
a robust loss down-weights the rest, and observations still far off after a solve are pruned and
the problem solved again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse
from scipy.optimize import least_squares

from mocap._checks import check_choice, check_shape
from mocap.geometry.camera import skew
from mocap.geometry.lens import distort_coefficient_jacobian, distort_jacobian, distort_normalized

log = logging.getLogger(__name__)

LOSSES = ("linear", "huber", "soft_l1", "cauchy")
N_INTR = 9  # fx fy cx cy k1 k2 p1 p2 k3
DENSE_LIMIT = 4_000_000  # Jacobian entries (rows x unknowns) up to which the dense exact solver is used


def rotvec_to_rotmat_fast(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues' formula for ``(..., 3)`` rotation vectors -> ``(..., 3, 3)`` (series near 0)."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    th2 = np.sum(rotvec * rotvec, axis=-1)[..., None, None]
    th = np.sqrt(th2)
    small = th2 < 1e-12
    safe = np.where(small, 1.0, th)
    a = np.where(small, 1.0 - th2 / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - th2 / 24.0, (1.0 - np.cos(safe)) / np.where(small, 1.0, th2))
    x, y, z = rotvec[..., 0], rotvec[..., 1], rotvec[..., 2]
    o = np.zeros_like(x)
    Kx = np.stack([np.stack([o, -z, y], -1), np.stack([z, o, -x], -1), np.stack([-y, x, o], -1)], -2)
    return np.eye(3) + a * Kx + b * (Kx @ Kx)


@dataclass(frozen=True, eq=False)
class Observations:
    """Corner observations, one row each (M rows).

    Attributes:
        cam: ``(M,)`` camera index.
        frame: ``(M,)`` board-pose (frame) index.
        point: ``(M,)`` board corner index.
        xy: ``(M, 2)`` observed pixel coordinates.
    """

    cam: np.ndarray
    frame: np.ndarray
    point: np.ndarray
    xy: np.ndarray

    def __post_init__(self):
        xy = check_shape(np.asarray(self.xy, np.float64), "M 2", "observations xy")
        for name in ("cam", "frame", "point"):
            a = np.asarray(getattr(self, name), np.int64)
            if a.shape != (len(xy),):
                raise ValueError(f"observations {name}: expected shape ({len(xy)},), got {a.shape}")
            object.__setattr__(self, name, a)
        object.__setattr__(self, "xy", xy)

    def __len__(self) -> int:
        return len(self.cam)

    def subset(self, keep: np.ndarray) -> "Observations":
        return Observations(self.cam[keep], self.frame[keep], self.point[keep], self.xy[keep])


@dataclass(frozen=True, eq=False)
class BundleResult:
    """Optimised rig and board poses.

    Attributes:
        K: ``(C, 3, 3)``; dist: ``(C, 5)``.
        cam_rvec, cam_tvec: ``(C, 3)`` cam_from_ref (Rodrigues, metres).
        board_rvec, board_tvec: ``(F, 3)`` ref_from_board.
        residual_px: ``(M, 2)`` final reprojection residuals of all observations.
        inlier: ``(M,)`` observations kept after pruning.
        rms_px: RMS reprojection error (per coordinate pair, i.e. sqrt(mean(|r|²))) over inliers.
        success: solver converged; message: solver message.
    """

    K: np.ndarray
    dist: np.ndarray
    cam_rvec: np.ndarray
    cam_tvec: np.ndarray
    board_rvec: np.ndarray
    board_tvec: np.ndarray
    residual_px: np.ndarray
    inlier: np.ndarray
    rms_px: float
    success: bool
    message: str
    n_evaluations: int

    @property
    def error_px(self) -> np.ndarray:
        """Per-observation reprojection distance ``(M,)`` pixels."""
        return np.linalg.norm(self.residual_px, axis=-1)

    def camera_rms(self, obs: Observations, n_cameras: int) -> np.ndarray:
        """RMS reprojection error per camera ``(C,)`` over inliers (NaN for unobserved cameras)."""
        e2 = np.where(self.inlier, np.sum(self.residual_px ** 2, -1), 0.0)
        n = np.bincount(obs.cam, weights=self.inlier.astype(float), minlength=n_cameras)
        s = np.bincount(obs.cam, weights=e2, minlength=n_cameras)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(s / n)


class _Layout:
    """Where each unknown lives in the parameter vector."""

    def __init__(self, C: int, F: int, fixed_camera: int, intrinsics: bool, cameras: bool = True):
        self.C, self.F, self.fixed, self.intr = C, F, fixed_camera, intrinsics
        self.free_cams = np.array([c for c in range(C) if c != fixed_camera and cameras], np.int64)
        self.cam_col = np.full(C, -1, np.int64)  # first column of camera c's pose block
        self.cam_col[self.free_cams] = np.arange(len(self.free_cams)) * 6
        self.board0 = len(self.free_cams) * 6
        self.intr0 = self.board0 + F * 6
        self.n = self.intr0 + (C * N_INTR if intrinsics else 0)

    def pack(self, cam_pose, board_pose, intr) -> np.ndarray:
        parts = [cam_pose[self.free_cams].ravel(), board_pose.ravel()]
        if self.intr:
            parts.append(intr.ravel())
        return np.concatenate(parts)

    def unpack(self, x, cam_pose0, intr0):
        cam_pose = cam_pose0.copy()
        cam_pose[self.free_cams] = x[: self.board0].reshape(-1, 6)
        board_pose = x[self.board0 : self.intr0].reshape(self.F, 6)
        intr = x[self.intr0 :].reshape(self.C, N_INTR) if self.intr else intr0
        return cam_pose, board_pose, intr

    def jacobian(self, obs: Observations, blocks) -> scipy.sparse.csr_matrix:
        """Assemble the sparse Jacobian ``(2M, n)`` from per-observation blocks."""
        J_cam, J_board, J_intr = blocks
        M = len(obs)
        r2 = np.arange(2 * M).reshape(M, 2)
        rows, cols, vals = [], [], []

        def add(J, first_col, mask=None):
            w = J.shape[2]
            if mask is not None:
                J, first_col, rr = J[mask], first_col[mask], r2[mask]
            else:
                rr = r2
            rows.append(np.broadcast_to(rr[:, :, None], J.shape).ravel())
            cols.append(np.broadcast_to((first_col[:, None] + np.arange(w))[:, None, :], J.shape).ravel())
            vals.append(J.ravel())

        add(J_cam, self.cam_col[obs.cam], self.cam_col[obs.cam] >= 0)
        add(J_board, self.board0 + obs.frame * 6)
        if self.intr:
            add(J_intr, self.intr0 + obs.cam * N_INTR)
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
        return scipy.sparse.csr_matrix((v, (r, c)), shape=(2 * M, self.n))

    def sparsity(self, obs: Observations) -> scipy.sparse.csr_matrix:
        """Jacobian pattern ``(2M, n)``: each residual pair touches its camera, board and lens."""
        M = len(obs)
        rows, cols = [], []
        base_rows = np.repeat(np.arange(M) * 2, 2) + np.tile([0, 1], M)  # (2M,)

        def add(first_col: np.ndarray, width: int, mask: np.ndarray | None = None):
            fc = np.repeat(first_col, 2)
            r = base_rows
            if mask is not None:
                m2 = np.repeat(mask, 2)
                fc, r = fc[m2], r[m2]
            rows.append(np.repeat(r, width))
            cols.append((fc[:, None] + np.arange(width)).ravel())

        add(self.cam_col[obs.cam], 6, self.cam_col[obs.cam] >= 0)
        add(self.board0 + obs.frame * 6, 6)
        if self.intr:
            add(self.intr0 + obs.cam * N_INTR, N_INTR)
        r, c = np.concatenate(rows), np.concatenate(cols)
        return scipy.sparse.csr_matrix((np.ones(len(r), np.int8), (r, c)), shape=(2 * M, self.n))


def project_observations(obs: Observations, object_points: np.ndarray, cam_pose: np.ndarray,
                         board_pose: np.ndarray, intr: np.ndarray) -> np.ndarray:
    """Predicted pixels ``(M, 2)`` for all observations.

    Args:
        obs: observations (M rows).
        object_points: ``(N, 3)`` board corners, board frame, metres.
        cam_pose: ``(C, 6)`` cam_from_ref as (rotvec, t).
        board_pose: ``(F, 6)`` ref_from_board as (rotvec, t).
        intr: ``(C, 9)`` fx, fy, cx, cy, k1, k2, p1, p2, k3.
    """
    Rc = rotvec_to_rotmat_fast(cam_pose[:, :3])
    Rb = rotvec_to_rotmat_fast(board_pose[:, :3])
    X = object_points[obs.point]
    Xr = np.einsum("mij,mj->mi", Rb[obs.frame], X) + board_pose[obs.frame, 3:]
    Xc = np.einsum("mij,mj->mi", Rc[obs.cam], Xr) + cam_pose[obs.cam, 3:]
    z = Xc[:, 2:3]
    xn = Xc[:, :2] / np.where(np.abs(z) < 1e-9, 1e-9, z)
    p = intr[obs.cam]
    xd = distort_normalized(xn, p[:, 4:9])
    return np.stack([p[:, 0] * xd[:, 0] + p[:, 2], p[:, 1] * xd[:, 1] + p[:, 3]], axis=-1)


def _right_jacobian(rotvec: np.ndarray) -> np.ndarray:
    """SO(3) right Jacobian ``(..., 3, 3)``: R(v + d) ≈ R(v) exp(J_r(v) d) (Barfoot, State Estimation 7.1)."""
    th2 = np.sum(rotvec * rotvec, -1)[..., None, None]
    th = np.sqrt(th2)
    small = th2 < 1e-10
    safe = np.where(small, 1.0, th)
    a = np.where(small, 0.5 - th2 / 24.0, (1 - np.cos(safe)) / safe ** 2)
    b = np.where(small, 1.0 / 6.0 - th2 / 120.0, (safe - np.sin(safe)) / safe ** 3)
    S = skew(rotvec)
    return np.eye(3) - a * S + b * (S @ S)


def projection_jacobians(obs: Observations, object_points: np.ndarray, cam_pose: np.ndarray,
                         board_pose: np.ndarray, intr: np.ndarray):
    """Analytic derivatives of :func:`project_observations` per observation.

    Returns ``(J_cam (M, 2, 6), J_board (M, 2, 6), J_intr (M, 2, 9))`` with respect to
    (rotvec, t) of cam_from_ref, (rotvec, t) of ref_from_board and (fx fy cx cy k1 k2 p1 p2 k3).
    """
    Rc_all = rotvec_to_rotmat_fast(cam_pose[:, :3])
    Rb_all = rotvec_to_rotmat_fast(board_pose[:, :3])
    Rc, Rb = Rc_all[obs.cam], Rb_all[obs.frame]
    X = object_points[obs.point]
    Xr = np.einsum("mij,mj->mi", Rb, X) + board_pose[obs.frame, 3:]
    Xc = np.einsum("mij,mj->mi", Rc, Xr) + cam_pose[obs.cam, 3:]
    p = intr[obs.cam]
    z = Xc[:, 2]
    xn = Xc[:, :2] / z[:, None]
    # d pixel / d Xc = diag(fx, fy) · d distort / d xn · d xn / d Xc
    dxn = np.zeros((len(z), 2, 3))
    dxn[:, 0, 0] = dxn[:, 1, 1] = 1 / z
    dxn[:, :, 2] = -xn / z[:, None]
    Jd = distort_jacobian(xn, p[:, 4:9])
    dpix = p[:, :2, None] * (Jd @ dxn)  # (M, 2, 3)
    # d(R(v) q)/dv = -R [q]x J_r(v)
    dRc = -Rc @ skew(Xr) @ _right_jacobian(cam_pose[:, :3])[obs.cam]
    dRb = -Rb @ skew(X) @ _right_jacobian(board_pose[:, :3])[obs.frame]
    dpix_r = dpix @ Rc
    J_cam = np.concatenate([dpix @ dRc, dpix], axis=2)
    J_board = np.concatenate([dpix_r @ dRb, dpix_r], axis=2)
    xd = distort_normalized(xn, p[:, 4:9])
    J_intr = np.zeros((len(z), 2, N_INTR))
    J_intr[:, 0, 0], J_intr[:, 1, 1] = xd[:, 0], xd[:, 1]
    J_intr[:, 0, 2] = J_intr[:, 1, 3] = 1.0
    J_intr[:, :, 4:] = p[:, :2, None] * distort_coefficient_jacobian(xn)  # (M, 2, 5)
    return J_cam, J_board, J_intr


def intrinsics_to_vector(K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """``(C, 3, 3)``, ``(C, 5)`` -> ``(C, 9)`` fx fy cx cy k1 k2 p1 p2 k3."""
    return np.concatenate([K[:, 0, 0:1], K[:, 1, 1:2], K[:, 0, 2:3], K[:, 1, 2:3], dist], axis=1)


def vector_to_intrinsics(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    K = np.zeros((len(v), 3, 3))
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = v[:, 0], v[:, 1], v[:, 2], v[:, 3], 1.0
    return K, v[:, 4:9].copy()


def _single_threaded_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it BLAS keeps its default threads
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, "blas")


def _solve(lay: "_Layout", sub: Observations, obj, cam_pose, board_pose, intr, loss, f_scale_px, max_nfev, analytic):
    """One robust least-squares solve over the unknowns ``lay`` frees; returns the updated arrays."""
    x0 = lay.pack(cam_pose, board_pose, intr)

    def fun(x):
        cp, bp, it = lay.unpack(x, cam_pose, intr)
        return (project_observations(sub, obj, cp, bp, it) - sub.xy).ravel()

    # Small problems: dense Jacobian and the exact trust-region solver (SVD), which needs a
    # few tens of steps where LSMR's inexact steps crawl along the focal-length/distance valley
    # for hundreds. Large problems: sparse Jacobian and LSMR with tight tolerances.
    dense = analytic and 2 * len(sub) * lay.n <= DENSE_LIMIT

    def jac(x):
        cp, bp, it = lay.unpack(x, cam_pose, intr)
        J = lay.jacobian(sub, projection_jacobians(sub, obj, cp, bp, it))
        return J.toarray() if dense else J

    if dense:
        options = dict(jac=jac, tr_solver="exact")
    elif analytic:
        options = dict(jac=jac, tr_solver="lsmr", tr_options={"atol": 1e-12, "btol": 1e-12})
    else:
        options = dict(jac="2-point", jac_sparsity=lay.sparsity(sub), tr_solver="lsmr",
                       tr_options={"atol": 1e-12, "btol": 1e-12})
    # single-threaded BLAS: LSMR's many small vector products are 100x slower when OpenBLAS
    # spreads each over busy cores
    with _single_threaded_blas():
        sol = least_squares(fun, x0, method="trf", loss=loss, f_scale=f_scale_px, x_scale="jac", max_nfev=max_nfev,
                            ftol=1e-8, xtol=1e-8, gtol=1e-8, **options)
    cp, bp, it = lay.unpack(sol.x, cam_pose, intr)
    return cp, bp, it, sol


def bundle_adjust(obs: Observations, object_points: np.ndarray, K: np.ndarray, dist: np.ndarray,
                  cam_rvec: np.ndarray, cam_tvec: np.ndarray, board_rvec: np.ndarray, board_tvec: np.ndarray,
                  fixed_camera: int = 0, optimize_intrinsics: bool = True, loss: str = "soft_l1",
                  f_scale_px: float = 1.0, prune_rounds: int = 2, prune_sigma: float = 5.0,
                  prune_min_px: float = 1.5, max_nfev: int = 200, analytic_jacobian: bool = True,
                  optimize_cameras: bool = True) -> BundleResult:
    """Jointly refine camera poses, board poses and (optionally) intrinsics.

    Args:
        obs: M corner observations.
        object_points: ``(N, 3)`` board corners (board frame, metres).
        K: ``(C, 3, 3)``; dist: ``(C, 5)`` initial intrinsics.
        cam_rvec, cam_tvec: ``(C, 3)`` initial cam_from_ref; camera ``fixed_camera`` stays put.
        board_rvec, board_tvec: ``(F, 3)`` initial ref_from_board per frame.
        optimize_intrinsics: refine fx, fy, cx, cy and the 5 distortion terms too.
        loss: robust loss of ``least_squares`` (one of ``LOSSES``); ``f_scale_px`` its inlier scale.
        prune_rounds: after each solve, observations with error above
            ``max(prune_sigma * 1.4826 * median error, prune_min_px)`` are dropped and the problem
            solved again, at most this many times.
        optimize_cameras: False keeps every camera fixed (evaluate a given rig: only the board
            poses, and the intrinsics if asked, are fitted).
        analytic_jacobian: use :func:`projection_jacobians` (else finite differences over the
            sparsity pattern; same result, slower).

    Returns:
        :class:`BundleResult`.
    """
    check_choice(loss, LOSSES, "loss")
    C, F = len(K), len(board_rvec)
    check_shape(K, "C 3 3", "K"), check_shape(dist, "C 5", "dist")
    check_shape(cam_rvec, "C 3", "cam_rvec"), check_shape(board_rvec, "F 3", "board_rvec")
    cam_pose = np.concatenate([cam_rvec, cam_tvec], 1).astype(np.float64)
    board_pose = np.concatenate([board_rvec, board_tvec], 1).astype(np.float64)
    obj = np.asarray(object_points, np.float64)
    intr = intrinsics_to_vector(np.asarray(K, np.float64), np.asarray(dist, np.float64))
    lay = _Layout(C, F, fixed_camera, optimize_intrinsics, optimize_cameras)
    inlier = np.ones(len(obs), bool)
    nfev = 0
    if optimize_intrinsics:
        # poses first, lenses fixed: a well-conditioned problem that brings the start close enough
        # for the full problem to converge in few steps instead of crawling along the
        # focal-length/distance valley
        pose_lay = _Layout(C, F, fixed_camera, False, optimize_cameras)
        cam_pose, board_pose, intr, sol = _solve(pose_lay, obs, obj, cam_pose, board_pose, intr, loss, f_scale_px,
                                                 max_nfev, analytic_jacobian)
        nfev += sol.nfev
    for round_ in range(prune_rounds + 1):
        sub = obs.subset(inlier)
        cam_pose, board_pose, intr, sol = _solve(lay, sub, obj, cam_pose, board_pose, intr, loss, f_scale_px,
                                                 max_nfev, analytic_jacobian)
        nfev += sol.nfev
        success, message = bool(sol.success), str(sol.message)
        err = np.linalg.norm(project_observations(obs, obj, cam_pose, board_pose, intr) - obs.xy, axis=-1)
        sigma = 1.4826 * np.median(err[inlier])
        limit = max(prune_sigma * sigma, prune_min_px)
        new_inlier = err <= limit
        log.info("bundle round %d: %d observations, RMS %.3f px, %d beyond %.2f px", round_, int(inlier.sum()),
                 float(np.sqrt(np.mean(err[inlier] ** 2))), int((~new_inlier).sum()), limit)
        if round_ == prune_rounds or np.array_equal(new_inlier, inlier):
            break
        inlier = new_inlier
    resid = project_observations(obs, obj, cam_pose, board_pose, intr) - obs.xy
    Kf, df = vector_to_intrinsics(intr)
    rms = float(np.sqrt(np.mean(np.sum(resid[inlier] ** 2, -1))))
    return BundleResult(Kf, df, cam_pose[:, :3], cam_pose[:, 3:], board_pose[:, :3], board_pose[:, 3:],
                        resid, inlier, rms, success, message, nfev)
