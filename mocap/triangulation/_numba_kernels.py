"""Compiled per-point kernels of ``robust.py`` (optional: needs numba).

Same math and decision rules as the numpy path, written as loops over points (one pass over
each point's ``C`` views, no ``(H, C, n)`` temporaries):

- :func:`normalize_kernel`: pixels -> undistorted normalised coordinates (``_cameras.undistort_xy``,
  Newton per point with the same stopping rule) and the validity mask of ``Observations.normalized``;
- :func:`step1_kernel`: the DLT normal matrices, the three inverse-iteration steps of
  ``dlt.solve_normal(max_iterations=3, exact=False, tol=1e-10)`` and the views within threshold;
- :func:`ransac_kernel`: ``robust._ransac_pairs`` (midpoint hypotheses, MSAC score, adaptive
  early exit), including its batch schedule, which depends on how many points are still live,
  so that every point tries exactly the pairs it tries in numpy;
- :func:`dlt_kernel`: ``dlt.dlt_world`` (the inlier refit), :func:`inliers_kernel`: views within
  threshold, :func:`swap_flags_kernel`: the left/right scoring of ``_left_right._swap_flags``,
  :func:`reproj_error_kernel`: the reprojection errors of ``dlt.finish_chunk``.

Arrays are ``(C, n)`` as in ``robust.py``. The rare points needing ``eigh`` (flagged) stay in
numpy. Importing this module raises ImportError without numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_JIT = dict(cache=True, fastmath=False, error_model="numpy", nogil=True)


@njit(**_JIT)
def _sqerr(KRt, c, X0, X1, X2, pu, pv):
    """Squared undistorted-pixel error of world point ``X`` in camera ``c`` (inf at or behind it)."""
    r = 3 * c
    a = KRt[r, 0] * X0 + KRt[r, 1] * X1 + KRt[r, 2] * X2 + KRt[r, 3]
    b = KRt[r + 1, 0] * X0 + KRt[r + 1, 1] * X1 + KRt[r + 1, 2] * X2 + KRt[r + 1, 3]
    z = KRt[r + 2, 0] * X0 + KRt[r + 2, 1] * X1 + KRt[r + 2, 2] * X2 + KRt[r + 2, 3]
    if not z > 0:
        return np.inf
    inv_z = 1.0 / z
    du = a * inv_z - pu
    dv = b * inv_z - pv
    return du * du + dv * dv


@njit(**_JIT)
def _nanmax3(a, b, c):
    """``max`` propagating NaN, as ``ndarray.max``."""
    if np.isnan(a) or np.isnan(b) or np.isnan(c):
        return np.nan
    return max(a, max(b, c))


@njit(**_JIT)
def _moving(a0, a1, a2, b0, b1, b2, tol):
    """``dlt._still_moving`` for one point."""
    d = _nanmax3(abs(a0 - b0), abs(a1 - b1), abs(a2 - b2))
    m = _nanmax3(abs(a0), abs(a1), abs(a2))
    return not (d <= tol * (1.0 + m))


@njit(**_JIT)
def _normal_matrix(G, norms, x, y, weight, i, F, m):
    """Fill ``m (10,)`` with point ``i``'s weighted DLT normal matrix (upper triangle of the
    4×4 ``AᵀWA``, via the basis ``G``) using scratch ``F (5 C,)``; returns its weighted view count."""
    C = x.shape[0]
    n33, n31, n11, n32, n22 = norms[0], norms[1], norms[2], norms[3], norms[4]
    nw = 0
    for c in range(C):
        xc, yc, w = x[c, i], y[c, i], weight[c, i]
        if w != 0:
            nw += 1
        w2 = w * w
        c1 = w2 / ((xc * n33[c] - 2 * n31[c]) * xc + n11[c])
        c2 = w2 / ((yc * n33[c] - 2 * n32[c]) * yc + n22[c])
        c1x, c2y = c1 * xc, c2 * yc
        F[c] = c1x * xc + c2y * yc
        F[C + c] = c1x
        F[2 * C + c] = c2y
        F[3 * C + c] = c1
        F[4 * C + c] = c2
    for r in range(10):
        acc = 0.0
        for k in range(5 * C):
            acc += G[r, k] * F[k]
        m[r] = acc
    return nw


@njit(**_JIT)
def _solve_normal(m, max_steps, tol):
    """``dlt.solve_normal`` for one point: closed-form 3×3 solve then inverse-iteration steps
    (checked for movement from the second on, stopping below ``tol``). Returns
    ``X0, X1, X2, good`` (3×3 block well conditioned) and ``moving`` (still moving at the end)."""
    m00, m01, m02, m03, m11, m12, m13, m22, m23, m33 = m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9]
    a0, a1, a2 = m11 * m22 - m12 * m12, m02 * m12 - m01 * m22, m01 * m12 - m02 * m11
    a3, a4, a5 = m00 * m22 - m02 * m02, m01 * m02 - m00 * m12, m00 * m11 - m01 * m01
    det = m00 * a0 + m01 * a1 + m02 * a2
    tr = m00 + m11 + m22
    good = abs(det) > 1e-10 * (tr / 3) ** 3
    if good:
        a0, a1, a2, a3, a4, a5 = a0 / det, a1 / det, a2 / det, a3 / det, a4 / det, a5 / det
    z0 = a0 * m03 + a1 * m13 + a2 * m23
    z1 = a1 * m03 + a3 * m13 + a4 * m23
    z2 = a2 * m03 + a4 * m13 + a5 * m23
    gamma = m33 - (m03 * z0 + m13 * z1 + m23 * z2)
    X0, X1, X2 = -z0, -z1, -z2
    P0, P1, P2 = X0, X1, X2
    moving = True
    for it in range(max_steps):
        u0 = a0 * X0 + a1 * X1 + a2 * X2
        u1 = a1 * X0 + a3 * X1 + a4 * X2
        u2 = a2 * X0 + a4 * X1 + a5 * X2
        f = gamma / (1.0 - (m03 * u0 + m13 * u1 + m23 * u2))
        P0, P1, P2 = X0, X1, X2
        X0, X1, X2 = f * u0 - z0, f * u1 - z1, f * u2 - z2
        if it >= 1:
            moving = _moving(X0, X1, X2, P0, P1, P2, tol)
            if not moving:
                break
    return X0, X1, X2, good, moving


@njit(**_JIT)
def step1_kernel(G, norms, KRt, center, scale, x, y, weight, valid, pu, pv, tau2):
    """Step 1 for every point: ``M (10, n)``, ``X (3, n)`` world metres (last iterate), ``slow (n,)``
    (would need ``eigh``), ``few (n,)`` (fewer than two weighted views) and ``used (C, n)``."""
    C, n = x.shape
    M = np.zeros((10, n))
    X = np.empty((3, n))
    slow = np.zeros(n, np.bool_)
    few = np.zeros(n, np.bool_)
    used = np.zeros((C, n), np.bool_)
    F = np.empty(5 * C)
    m = np.empty(10)
    for i in range(n):
        nw = _normal_matrix(G, norms, x, y, weight, i, F, m)
        M[:, i] = m
        few[i] = nw < 2
        X0, X1, X2, good, moving = _solve_normal(m, 3, 1e-10)
        bad = moving or not (good and np.isfinite(X0) and np.isfinite(X1) and np.isfinite(X2))
        if few[i]:
            slow[i] = False
            X0 = X1 = X2 = np.nan
        else:
            slow[i] = bad
        X0, X1, X2 = center[0] + X0 / scale, center[1] + X1 / scale, center[2] + X2 / scale
        X[0, i], X[1, i], X[2, i] = X0, X1, X2
        for c in range(C):
            used[c, i] = valid[c, i] and _sqerr(KRt, c, X0, X1, X2, pu[c, i], pv[c, i]) < tau2[c, i]
    return M, X, slow, few, used


@njit(**_JIT)
def ransac_kernel(R, centers, KRt, pairs, x, y, weight, valid, pu, pv, tau2, batch, tail, one_minus_conf):
    """``robust._ransac_pairs`` for every point -> best inlier views ``(C, n)``."""
    C, n = x.shape
    H = pairs.shape[0]
    # Point-major copies: each hypothesis reads one point's C views from a few cache lines.
    d = np.empty((n, C, 3))
    for c in range(C):
        for k in range(3):
            for i in range(n):
                d[i, c, k] = R[c, 0, k] * x[c, i] + R[c, 1, k] * y[c, i] + R[c, 2, k]
    valid = np.ascontiguousarray(valid.T)
    weight = np.ascontiguousarray(weight.T)
    pu = np.ascontiguousarray(pu.T)
    pv = np.ascontiguousarray(pv.T)
    tau2 = np.ascontiguousarray(tau2.T)
    best_cost = np.full(n, np.inf)
    best_inl = np.zeros((C, n), np.bool_)
    tried = np.zeros(n)
    n_valid = np.zeros(n)
    for i in range(n):
        for c in range(C):
            if valid[i, c]:
                n_valid[i] += 1
    live = np.arange(n)
    n_live = n
    inl = np.empty(C, np.bool_)
    cur = np.empty(C, np.bool_)
    s = 0
    while s < H:
        size = batch if n_live * (H - s) > tail else H - s
        s1 = min(s + size, H)
        n_keep = 0
        for li in range(n_live):
            i = live[li]
            c_best = np.inf
            for h in range(s, s1):
                ci, cj = pairs[h, 0], pairs[h, 1]
                cost = np.inf  # unusable hypothesis: no inliers (numpy: cost inf, inliers masked)
                if not (valid[i, ci] and valid[i, cj]):
                    if h == s:
                        c_best = cost
                        inl[:] = False
                    continue
                tried[i] += 1
                d10, d11, d12 = d[i, ci, 0], d[i, ci, 1], d[i, ci, 2]
                d20, d21, d22 = d[i, cj, 0], d[i, cj, 1], d[i, cj, 2]
                b0 = centers[cj, 0] - centers[ci, 0]
                b1 = centers[cj, 1] - centers[ci, 1]
                b2 = centers[cj, 2] - centers[ci, 2]
                a = d10 * d10 + d11 * d11 + d12 * d12
                bb = d10 * d20 + d11 * d21 + d12 * d22
                cc = d20 * d20 + d21 * d21 + d22 * d22
                p = d10 * b0 + d11 * b1 + d12 * b2
                q = d20 * b0 + d21 * b1 + d22 * b2
                den = a * cc - bb * bb
                ok = den > 1e-10 * a * cc
                if not ok:
                    den = 1.0
                sv = (p * cc - bb * q) / den
                uv = (bb * p - a * q) / den
                ok = ok and sv > 0 and uv > 0
                if not ok:
                    if h == s:
                        c_best = cost
                        inl[:] = False
                    continue
                X0 = 0.5 * (centers[ci, 0] + sv * d10 + centers[cj, 0] + uv * d20)
                X1 = 0.5 * (centers[ci, 1] + sv * d11 + centers[cj, 1] + uv * d21)
                X2 = 0.5 * (centers[ci, 2] + sv * d12 + centers[cj, 2] + uv * d22)
                cost = 0.0
                k = 0
                for c in range(C):
                    cur[c] = False
                    if not valid[i, c]:  # weight 0: adds exactly 0 to the cost, never an inlier
                        continue
                    r = _sqerr(KRt, c, X0, X1, X2, pu[i, c], pv[i, c]) / tau2[i, c]
                    cost += weight[i, c] * min(r, 1.0)
                    cur[c] = r < 1.0
                    if cur[c]:
                        k += 1
                ok = ok and k >= 2
                if not ok:
                    cost = np.inf
                if cost < c_best or h == s:  # np.argmin: the first minimum of the batch
                    c_best = cost
                    for c in range(C):
                        inl[c] = cur[c] and ok
            if c_best < best_cost[i]:
                best_cost[i] = c_best
                for c in range(C):
                    best_inl[c, i] = inl[c]
            k = 0
            for c in range(C):
                if best_inl[c, i]:
                    k += 1
            nv = n_valid[i]
            if nv >= 2:
                p_good = k * (k - 1) / max(nv * (nv - 1), 1.0)
            else:
                p_good = 0.0
            miss = 0.0 if p_good >= 1 else (1 - min(p_good, 1.0)) ** tried[i]
            keep = (miss >= one_minus_conf and (2 * k <= nv or k < 4)) or not np.isfinite(best_cost[i])
            if keep:
                live[n_keep] = i
                n_keep += 1
        n_live = n_keep
        s = s1
        if n_live == 0:
            break
    return best_inl


@njit(**_JIT)
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
    for c in range(C):
        fx, s, cx, fy, cy = K[c, 0, 0], K[c, 0, 1], K[c, 0, 2], K[c, 1, 1], K[c, 1, 2]
        k1, k2, p1, p2, k3 = dist[c, 0], dist[c, 1], dist[c, 2], dist[c, 3], dist[c, 4]
        for i in range(n):
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
    return x, y, w, valid, pu, pv


@njit(**_JIT)
def swap_flags_kernel(KRt, X, pu, pv, valid, tau, J, L, R, limb, n_limbs):
    """The left/right decision of ``_left_right._swap_flags`` -> ``flip (C, M, n_limbs)`` for ``n = M J``
    points ``X (3, n)`` and observations ``(C, n)``; pair ``p`` is joints ``L[p], R[p]`` of limb
    ``limb[p]`` (pairs of a limb adjacent)."""
    C = pu.shape[0]
    M = X.shape[1] // J
    P = L.shape[0]
    flip = np.zeros((C, M, n_limbs), np.bool_)
    for m in range(M):
        for c in range(C):
            r = 3 * c
            swap = 0.0
            keep = 0.0
            fails = False
            for p in range(P):
                jl, jr = m * J + L[p], m * J + R[p]
                qlu, qlv = _project(KRt, r, X[0, jl], X[1, jl], X[2, jl])
                qru, qrv = _project(KRt, r, X[0, jr], X[1, jr], X[2, jr])
                if valid[c, jl] and valid[c, jr] and np.isfinite(qlu + qru):
                    t2 = (0.5 * (tau[c, jl] + tau[c, jr])) ** 2
                    kl = _trunc(qlu - pu[c, jl], qlv - pv[c, jl], t2)
                    kr = _trunc(qru - pu[c, jr], qrv - pv[c, jr], t2)
                    swap += _trunc(qlu - pu[c, jr], qlv - pv[c, jr], t2) + _trunc(qru - pu[c, jl], qrv - pv[c, jl], t2)
                    keep += kl + kr
                    fails = fails or max(kl, kr) >= 0.999 * t2
                if p == P - 1 or limb[p + 1] != limb[p]:  # last pair of its limb
                    flip[c, m, limb[p]] = swap < 0.5 * keep and fails
                    swap = 0.0
                    keep = 0.0
                    fails = False
    return flip


@njit(**_JIT)
def _project(KRt, r, X0, X1, X2):
    """Undistorted pixel of world point ``X`` in the camera of rows ``r..r+2`` of ``KRt``; NaN at or behind it."""
    a = KRt[r, 0] * X0 + KRt[r, 1] * X1 + KRt[r, 2] * X2 + KRt[r, 3]
    b = KRt[r + 1, 0] * X0 + KRt[r + 1, 1] * X1 + KRt[r + 1, 2] * X2 + KRt[r + 1, 3]
    z = KRt[r + 2, 0] * X0 + KRt[r + 2, 1] * X1 + KRt[r + 2, 2] * X2 + KRt[r + 2, 3]
    if not z > 0:
        return np.nan, np.nan
    inv_z = 1.0 / z
    return a * inv_z, b * inv_z


@njit(**_JIT)
def _trunc(du, dv, t2):
    """``np.fmin(du^2 + dv^2, t2)`` (NaN -> ``t2``)."""
    e = du * du + dv * dv
    return e if e < t2 else t2


@njit(**_JIT)
def dlt_kernel(G, norms, center, scale, x, y, weight):
    """``dlt.dlt_world`` for every point -> ``X (3, n)`` world metres and ``bad (n,)``: the points
    that need ``dlt._solve_normal_eigh`` (left as their last iterate; the caller replaces them).
    ``solve_normal`` defaults: two steps, then up to ten more while a step moves by > 1e-13."""
    C, n = x.shape
    X = np.empty((3, n))
    bad = np.zeros(n, np.bool_)
    F = np.empty(5 * C)
    m = np.empty(10)
    for i in range(n):
        nw = _normal_matrix(G, norms, x, y, weight, i, F, m)
        if nw < 2:  # skipped: NaN, never the eigh path
            X[0, i] = X[1, i] = X[2, i] = np.nan
            continue
        X0, X1, X2, good, moving = _solve_normal(m, 12, 1e-13)
        bad[i] = moving or not (good and np.isfinite(X0) and np.isfinite(X1) and np.isfinite(X2))
        X[0, i], X[1, i], X[2, i] = center[0] + X0 / scale, center[1] + X1 / scale, center[2] + X2 / scale
    return X, bad


@njit(**_JIT)
def inliers_kernel(KRt, X, pu, pv, valid, tau2):
    """``valid & (squared_error_px(X) < tau2)`` -> ``(C, n)`` for points ``X (3, n)``."""
    C, n = pu.shape
    used = np.zeros((C, n), np.bool_)
    for c in range(C):
        for i in range(n):
            used[c, i] = valid[c, i] and _sqerr(KRt, c, X[0, i], X[1, i], X[2, i], pu[c, i], pv[c, i]) < tau2[c, i]
    return used


@njit(**_JIT)
def reproj_error_kernel(K, dist, distort, R, t, X, u, v, valid):
    """``dlt.finish_chunk``'s reprojection error: pixel distance ``(C, n)`` of world points
    ``X (3, n)`` (NaN: none) projected with the lens model to observed ``u, v``; NaN where not
    ``valid`` or at or behind a camera."""
    C, n = u.shape
    err = np.empty((C, n))
    for c in range(C):
        fx, s, cx, fy, cy = K[c, 0, 0], K[c, 0, 1], K[c, 0, 2], K[c, 1, 1], K[c, 1, 2]
        k1, k2, p1, p2, k3 = dist[c, 0], dist[c, 1], dist[c, 2], dist[c, 3], dist[c, 4]
        for i in range(n):
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
    return err
