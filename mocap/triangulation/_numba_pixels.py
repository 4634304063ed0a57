"""Compiled pixel kernels of the numba backend (internal): the undistortion of
``dlt.Observations.normalized`` and the reprojection errors of ``dlt.finish_chunk``. The lens
model is :mod:`mocap.geometry.lens_compiled` (the twin of :mod:`mocap.geometry.lens`: same
formulas and stopping rule). Arrays are ``(C, n)``; blocks of points on threads (``run_blocks``)."""

from __future__ import annotations

import numpy as np
from numba import njit

from mocap.geometry.lens_compiled import distort_point, undistort_point
from mocap.triangulation._numba_kernels import JIT, run_blocks


def normalize_kernel(K, dist, undistort, u, v, weight, rules):
    """``dlt.Observations.normalized`` plus ``_cameras.undistorted_pixels`` for one chunk: distorted
    pixels ``u, v (C, n)`` -> ``x, y, w, valid, pu, pv`` (each ``(C, n)``), ``dist (C, 5)``.
    Invalid observations (NaN pixel, weight 0 or NaN, no inverse of the lens model) have
    ``x = y = w = 0``."""
    C, n = u.shape
    x, y, w, pu, pv = (np.empty((C, n)) for _ in range(5))
    valid = np.empty((C, n), np.bool_)
    run_blocks(_normalize_range, n, K, dist, undistort, u, v, weight, rules, x, y, w, valid, pu, pv)
    return x, y, w, valid, pu, pv


@njit(**JIT)
def _normalize_range(lo, hi, K, dist, undistort, u, v, weight, rules, x, y, w, valid, pu, pv):
    C = u.shape[0]
    for c in range(C):
        fx, s, cx, fy, cy = K[c, 0, 0], K[c, 0, 1], K[c, 0, 2], K[c, 1, 1], K[c, 1, 2]
        k1, k2, p1, p2, k3 = dist[c, 0], dist[c, 1], dist[c, 2], dist[c, 3], dist[c, 4]
        for i in range(lo, hi):
            yn = (v[c, i] - cy) / fy
            xn = (u[c, i] - cx - s * yn) / fx
            if undistort:
                xn, yn = undistort_point(xn, yn, k1, k2, p1, p2, k3, rules.undistort_max_iterations,
                                         rules.undistort_tolerance)
            wc = weight[c, i]
            good = wc > 0 and np.isfinite(xn) and np.isfinite(yn)
            if not good:
                xn = yn = wc = 0.0
            x[c, i], y[c, i], w[c, i], valid[c, i] = xn, yn, wc, good
            pu[c, i] = fx * xn + s * yn + cx
            pv[c, i] = fy * yn + cy


def reproj_error_kernel(K, dist, distort, R, t, X, u, v, valid, rules):
    """``dlt.finish_chunk``'s reprojection error: pixel distance ``(C, n)`` of world points
    ``X (3, n)`` (NaN: none) projected with the lens model to observed ``u, v``; NaN where not
    ``valid`` or at most ``rules.min_depth`` in front of a camera."""
    err = np.empty(u.shape)
    run_blocks(_reproj_range, u.shape[1], K, dist, distort, R, t, X, u, v, valid, rules, err)
    return err


@njit(**JIT)
def _reproj_range(lo, hi, K, dist, distort, R, t, X, u, v, valid, rules, err):
    C = u.shape[0]
    for c in range(C):
        fx, s, cx, fy, cy = K[c, 0, 0], K[c, 0, 1], K[c, 0, 2], K[c, 1, 1], K[c, 1, 2]
        k1, k2, p1, p2, k3 = dist[c, 0], dist[c, 1], dist[c, 2], dist[c, 3], dist[c, 4]
        for i in range(lo, hi):
            if not valid[c, i]:
                err[c, i] = np.nan
                continue
            X0, X1, X2 = X[0, i], X[1, i], X[2, i]
            z = R[c, 2, 0] * X0 + R[c, 2, 1] * X1 + R[c, 2, 2] * X2 + t[c, 2]
            if not z > rules.min_depth:
                err[c, i] = np.nan
                continue
            inv_z = 1.0 / z
            x = (R[c, 0, 0] * X0 + R[c, 0, 1] * X1 + R[c, 0, 2] * X2 + t[c, 0]) * inv_z
            y = (R[c, 1, 0] * X0 + R[c, 1, 1] * X1 + R[c, 1, 2] * X2 + t[c, 1]) * inv_z
            if distort:
                x, y = distort_point(x, y, k1, k2, p1, p2, k3)
            du = fx * x + s * y + cx - u[c, i]
            dv = fy * y + cy - v[c, i]
            err[c, i] = np.sqrt(du * du + dv * dv)
