"""Compiled lens-model kernels of ``robust.py`` (optional: needs numba): the undistortion of
``dlt.Observations.normalized`` and the reprojection errors of ``dlt.finish_chunk``, same
formulas and stopping rules. Arrays are ``(C, n)``; parallel over blocks of points."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from mocap.triangulation._numba_kernels import _JIT, _PAR, _num_blocks


@njit(**_PAR)
def normalize_kernel(K, dist, undistort, u, v, weight, max_iterations):
    """``dlt.Observations.normalized`` plus ``_cameras.undistorted_pixels`` for one chunk: distorted
    pixels ``u, v (C, n)`` -> ``x, y, w, valid, pu, pv`` (each ``(C, n)``), ``dist (C, 5)``.

    The lens model is inverted per point by the Newton steps of ``_cameras.undistort_xy`` (same
    start, same formulas); a point stops after the step taken from a residual at most 1e-8 and is
    NaN (invalid) where the model folds over or it has not converged after ``max_iterations``."""
    C, n = u.shape
    x = np.empty((C, n))
    y = np.empty((C, n))
    w = np.empty((C, n))
    valid = np.empty((C, n), np.bool_)
    pu = np.empty((C, n))
    pv = np.empty((C, n))
    nb = _num_blocks(n)
    for b in prange(nb):
        _normalize_range(b * n // nb, (b + 1) * n // nb, K, dist, undistort, u, v, weight, max_iterations,
                         x, y, w, valid, pu, pv)
    return x, y, w, valid, pu, pv


@njit(**_JIT)
def _normalize_range(lo, hi, K, dist, undistort, u, v, weight, max_iterations, x, y, w, valid, pu, pv):
    C = u.shape[0]
    for c in range(C):
        fx, s, cx, fy, cy = K[c, 0, 0], K[c, 0, 1], K[c, 0, 2], K[c, 1, 1], K[c, 1, 2]
        k1, k2, p1, p2, k3 = dist[c, 0], dist[c, 1], dist[c, 2], dist[c, 3], dist[c, 4]
        for i in range(lo, hi):
            yn = (v[c, i] - cy) / fy
            xn = (u[c, i] - cx - s * yn) / fx
            if undistort:
                xd, yd = xn, yn
                r2 = xd * xd + yd * yd
                radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
                xn, yn = xd / radial, yd / radial
                ok = False
                for _ in range(max_iterations):
                    x2, y2, xy = xn * xn, yn * yn, xn * yn
                    r2 = x2 + y2
                    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
                    fxd = xn * radial + 2 * p1 * xy + p2 * (r2 + 2 * x2) - xd
                    fyd = yn * radial + p1 * (r2 + 2 * y2) + 2 * p2 * xy - yd
                    dr = 2 * (k1 + r2 * (2 * k2 + 3 * k3 * r2))
                    jxx = radial + x2 * dr + 2 * p1 * yn + 6 * p2 * xn
                    jyy = radial + y2 * dr + 6 * p1 * yn + 2 * p2 * xn
                    jxy = xy * dr + 2 * p1 * xn + 2 * p2 * yn
                    res = max(abs(fxd), abs(fyd)) if not (np.isnan(fxd) or np.isnan(fyd)) else np.nan
                    det = jxx * jyy - jxy * jxy
                    if abs(det) < 1e-12:
                        det = np.nan  # the model folds over here
                    xn, yn = xn - (jyy * fxd - jxy * fyd) / det, yn - (jxx * fyd - jxy * fxd) / det
                    if not res > 1e-8:
                        ok = res <= 1e-8
                        break
                if not ok:
                    xn = yn = np.nan
            wc = weight[c, i]
            good = wc > 0 and np.isfinite(xn) and np.isfinite(yn)
            if not good:
                xn = yn = wc = 0.0
            x[c, i], y[c, i], w[c, i], valid[c, i] = xn, yn, wc, good
            pu[c, i] = fx * xn + s * yn + cx
            pv[c, i] = fy * yn + cy


@njit(**_PAR)
def reproj_error_kernel(K, dist, distort, R, t, X, u, v, valid):
    """``dlt.finish_chunk``'s reprojection error: pixel distance ``(C, n)`` of world points
    ``X (3, n)`` (NaN: none) projected with the lens model to observed ``u, v``; NaN where not
    ``valid`` or at or behind a camera."""
    C, n = u.shape
    err = np.empty((C, n))
    nb = _num_blocks(n)
    for b in prange(nb):
        _reproj_range(b * n // nb, (b + 1) * n // nb, K, dist, distort, R, t, X, u, v, valid, err)
    return err


@njit(**_JIT)
def _reproj_range(lo, hi, K, dist, distort, R, t, X, u, v, valid, err):
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
            if not z > 1e-9:
                err[c, i] = np.nan
                continue
            inv_z = 1.0 / z
            x = (R[c, 0, 0] * X0 + R[c, 0, 1] * X1 + R[c, 0, 2] * X2 + t[c, 0]) * inv_z
            y = (R[c, 1, 0] * X0 + R[c, 1, 1] * X1 + R[c, 1, 2] * X2 + t[c, 1]) * inv_z
            if distort:
                x2, y2, xy = x * x, y * y, x * y
                r2 = x2 + y2
                radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
                x, y = x * radial + 2 * p1 * xy + p2 * (r2 + 2 * x2), y * radial + p1 * (r2 + 2 * y2) + 2 * p2 * xy
            du = fx * x + s * y + cx - u[c, i]
            dv = fy * y + cy - v[c, i]
            err[c, i] = np.sqrt(du * du + dv * dv)
