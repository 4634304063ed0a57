"""Compiled per-point kernels of ``robust.py`` (optional: needs numba).

Same math and decision rules as the numpy path, written as loops over points (one pass over
each point's ``C`` views, no ``(H, C, n)`` temporaries):

- :func:`step1_kernel`: the DLT normal matrices, the three inverse-iteration steps of
  ``dlt.solve_normal(max_iterations=3, exact=False, tol=1e-10)``, the views within threshold and
  which points go to RANSAC (``robust._select_views`` before RANSAC);
- :func:`ransac_kernel`: ``robust._ransac_pairs`` (midpoint hypotheses, MSAC score, adaptive
  early exit), including its batch schedule, which depends on how many points are still live,
  so that every point tries exactly the pairs it tries in numpy;
- :func:`dlt_kernel`: ``dlt.dlt_world`` (the inlier refit), :func:`inliers_kernel`: views within
  threshold, :func:`refit_kernel`: ``robust._dlt_inliers``.

The lens-model kernels are in ``_numba_lens``, the left/right check in ``_numba_swap``.

Arrays are ``(C, n)`` as in ``robust.py``; the kernels of a step read the points ``idx`` of a
chunk's observations in place (no gathers between steps). The kernels over points run in
parallel (``prange`` over blocks of points, NUMBA_NUM_THREADS threads): each point is computed
as in one thread, so the results do not depend on the thread count. The rare points needing
``eigh`` (flagged) stay in numpy. Importing this module raises ImportError without numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_JIT = dict(cache=True, fastmath=False, error_model="numpy", nogil=True)
#: The kernels over points: ``prange`` over blocks of points (numba's thread pool, NUMBA_NUM_THREADS
#: threads); every point is computed exactly as in one thread, so results do not depend on it.
_PAR = dict(_JIT, parallel=True)
#: Points per block of a parallel kernel at least (a block's scratch is allocated once).
_BLOCK = 128


@njit(**_JIT)
def _num_blocks(n, size=_BLOCK):
    """Blocks of at least ``size`` items, at most 64 (enough to balance two to a few threads)."""
    return max(1, min(64, n // size))


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
def _normal_matrix(G, norms, x, y, i, weight, F, m):
    """Fill ``m (10,)`` with point ``i``'s weighted DLT normal matrix (upper triangle of the
    4×4 ``AᵀWA``, via the basis ``G``) with its ``C`` view weights ``weight (C,)``, using scratch
    ``F (5 C,)``; returns its weighted view count."""
    C = x.shape[0]
    n33, n31, n11, n32, n22 = norms[0], norms[1], norms[2], norms[3], norms[4]
    nw = 0
    for c in range(C):
        xc, yc, w = x[c, i], y[c, i], weight[c]
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
    # m = G @ F, summed in the order of k for every entry; the ten sums interleaved (independent
    # chains: a sum after another waits on each addition's latency).
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = 0.0
    for k in range(5 * C):
        f = F[k]
        a0 += G[0, k] * f
        a1 += G[1, k] * f
        a2 += G[2, k] * f
        a3 += G[3, k] * f
        a4 += G[4, k] * f
        a5 += G[5, k] * f
        a6 += G[6, k] * f
        a7 += G[7, k] * f
        a8 += G[8, k] * f
        a9 += G[9, k] * f
    m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9] = a0, a1, a2, a3, a4, a5, a6, a7, a8, a9
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


@njit(**_PAR)
def step1_kernel(G, norms, KRt, center, scale, idx, x, y, weight, valid, pu, pv, tau2):
    """Step 1 (``robust._select_views`` up to RANSAC) for the points ``idx (m,)`` (columns of the
    ``(C, n)`` observations): ``X (3, m)`` world metres, ``used (C, m)`` and ``status (m,)``:
    0 done, 1 to RANSAC (some view disagrees), 2 to finish with ``eigh`` (all views agree but
    the closed-form steps did not converge; ``X`` is the last iterate).

    Three inverse-iteration steps; points still moving whose views all agree are finished as
    ``dlt.solve_normal`` does (up to twelve steps to 1e-13) and their views read again; points
    with fewer than two weighted views are NaN and report their valid views."""
    m = idx.shape[0]
    C = x.shape[0]
    X = np.empty((3, m))
    used = np.zeros((C, m), np.bool_)
    status = np.zeros(m, np.int8)
    nb = _num_blocks(m)
    for b in prange(nb):
        _step1_range(b * m // nb, (b + 1) * m // nb, G, norms, KRt, center, scale, idx, x, y, weight, valid, pu, pv,
                     tau2, X, used, status)
    return X, used, status


@njit(**_JIT)
def _step1_range(lo, hi, G, norms, KRt, center, scale, idx, x, y, weight, valid, pu, pv, tau2, X, used, status):
    C = x.shape[0]
    F = np.empty(5 * C)
    mat = np.empty(10)
    for k in range(lo, hi):
        i = idx[k]
        nw = _normal_matrix(G, norms, x, y, i, weight[:, i], F, mat)
        if nw < 2:  # no point: report the (fewer than two) views it had
            X[0, k] = X[1, k] = X[2, k] = np.nan
            for c in range(C):
                used[c, k] = valid[c, i]
            continue
        X0, X1, X2, good, moving = _solve_normal(mat, 3, 1e-10)
        slow = moving or not (good and np.isfinite(X0) and np.isfinite(X1) and np.isfinite(X2))
        agree = _read_views(KRt, center, scale, X0, X1, X2, i, k, valid, pu, pv, tau2, used)
        if slow and agree:  # finished exactly only if its views all agree (else RANSAC replaces it)
            X0, X1, X2, good, moving = _solve_normal(mat, 12, 1e-13)
            if moving or not (good and np.isfinite(X0) and np.isfinite(X1) and np.isfinite(X2)):
                status[k] = 2
            else:
                agree = _read_views(KRt, center, scale, X0, X1, X2, i, k, valid, pu, pv, tau2, used)
        if status[k] != 2 and not agree:
            status[k] = 1
        X[0, k], X[1, k], X[2, k] = center[0] + X0 / scale, center[1] + X1 / scale, center[2] + X2 / scale


@njit(**_JIT)
def _read_views(KRt, center, scale, X0, X1, X2, i, k, valid, pu, pv, tau2, used):
    """``used[:, k]``: the views of point ``i`` within threshold of the normalised-world point
    ``X``; returns whether they are all its valid views."""
    X0, X1, X2 = center[0] + X0 / scale, center[1] + X1 / scale, center[2] + X2 / scale
    agree = True
    for c in range(valid.shape[0]):
        used[c, k] = valid[c, i] and _sqerr(KRt, c, X0, X1, X2, pu[c, i], pv[c, i]) < tau2[c, i]
        agree = agree and used[c, k] == valid[c, i]
    return agree


@njit(**_PAR)
def ransac_kernel(R, centers, KRt, pairs, idx, x, y, weight, valid, pu, pv, tau2, batch, tail, one_minus_conf):
    """``robust._ransac_pairs`` for the points ``idx (n,)`` (columns of the ``(C, N)``
    observations) -> best inlier views ``(C, n)``.

    The batch schedule depends on how many points are still live, so the rounds are serial; the
    live points of a round are split over the threads."""
    C, n = x.shape[0], idx.shape[0]
    H = pairs.shape[0]
    # Point-major copies: each hypothesis reads one point's C views from a few cache lines.
    d = np.empty((n, C, 3))
    valid_t = np.empty((n, C), np.bool_)
    weight_t = np.empty((n, C))
    pu_t = np.empty((n, C))
    pv_t = np.empty((n, C))
    tau2_t = np.empty((n, C))
    n_valid = np.zeros(n)
    nb = _num_blocks(n)
    for b in prange(nb):
        for i in range(b * n // nb, (b + 1) * n // nb):
            j = idx[i]
            for c in range(C):
                for k in range(3):
                    d[i, c, k] = R[c, 0, k] * x[c, j] + R[c, 1, k] * y[c, j] + R[c, 2, k]
                valid_t[i, c] = valid[c, j]
                weight_t[i, c] = weight[c, j]
                pu_t[i, c] = pu[c, j]
                pv_t[i, c] = pv[c, j]
                tau2_t[i, c] = tau2[c, j]
                if valid[c, j]:
                    n_valid[i] += 1
    best_cost = np.full(n, np.inf)
    best_inl = np.zeros((C, n), np.bool_)
    tried = np.zeros(n)
    live = np.arange(n)
    keep = np.empty(n, np.bool_)
    n_live = n
    s = 0
    while s < H:
        size = batch if n_live * (H - s) > tail else H - s
        s1 = min(s + size, H)
        nb = _num_blocks(n_live)
        for b in prange(nb):
            _ransac_range(b * n_live // nb, (b + 1) * n_live // nb, s, s1, live, keep, centers, KRt, pairs, d,
                          weight_t, valid_t, pu_t, pv_t, tau2_t, n_valid, best_cost, best_inl, tried, one_minus_conf)
        n_keep = 0
        for li in range(n_live):
            if keep[li]:
                live[n_keep] = live[li]
                n_keep += 1
        n_live = n_keep
        s = s1
        if n_live == 0:
            break
    return best_inl


@njit(**_JIT)
def _ransac_range(lo, hi, s, s1, live, keep_out, centers, KRt, pairs, d, weight, valid, pu, pv, tau2, n_valid,
                  best_cost, best_inl, tried, one_minus_conf):
    """One round of :func:`ransac_kernel` (pairs ``s..s1``) for live points ``live[lo:hi]``;
    ``keep_out[li]``: the point stays live. Per-point arrays are point-major ``(n, C)``."""
    C = valid.shape[1]
    inl = np.empty(C, np.bool_)
    cur = np.empty(C, np.bool_)
    for li in range(lo, hi):
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
        keep_out[li] = (miss >= one_minus_conf and (2 * k <= nv or k < 4)) or not np.isfinite(best_cost[i])


@njit(**_PAR)
def dlt_kernel(G, norms, center, scale, x, y, weight):
    """``dlt.dlt_world`` for every point -> ``X (3, n)`` world metres and ``bad (n,)``: the points
    that need ``dlt._solve_normal_eigh`` (left as their last iterate; the caller replaces them).
    ``solve_normal`` defaults: two steps, then up to ten more while a step moves by > 1e-13."""
    C, n = x.shape
    X = np.empty((3, n))
    bad = np.zeros(n, np.bool_)
    nb = _num_blocks(n)
    for b in prange(nb):
        _dlt_range(b * n // nb, (b + 1) * n // nb, G, norms, center, scale, x, y, weight, X, bad)
    return X, bad


@njit(**_JIT)
def _dlt_range(lo, hi, G, norms, center, scale, x, y, weight, X, bad):
    C = x.shape[0]
    F = np.empty(5 * C)
    m = np.empty(10)
    for i in range(lo, hi):
        nw = _normal_matrix(G, norms, x, y, i, weight[:, i], F, m)
        if nw < 2:  # skipped: NaN, never the eigh path
            X[0, i] = X[1, i] = X[2, i] = np.nan
            continue
        X0, X1, X2, good, moving = _solve_normal(m, 12, 1e-13)
        bad[i] = moving or not (good and np.isfinite(X0) and np.isfinite(X1) and np.isfinite(X2))
        X[0, i], X[1, i], X[2, i] = center[0] + X0 / scale, center[1] + X1 / scale, center[2] + X2 / scale


@njit(**_PAR)
def inliers_kernel(KRt, X, idx, pu, pv, valid, tau2):
    """``valid & (squared_error_px(X) < tau2)`` -> ``(C, m)`` for points ``X (3, m)`` observed in
    columns ``idx (m,)`` of the ``(C, n)`` observations."""
    C, m = pu.shape[0], idx.shape[0]
    used = np.zeros((C, m), np.bool_)
    for k in prange(m):
        i = idx[k]
        for c in range(C):
            used[c, k] = valid[c, i] and _sqerr(KRt, c, X[0, k], X[1, k], X[2, k], pu[c, i], pv[c, i]) < tau2[c, i]
    return used


@njit(**_PAR)
def refit_kernel(G, norms, center, scale, KRt, src, inl, x, y, weight, valid, pu, pv, tau2, X, used, dst):
    """``robust._dlt_inliers`` for the points ``src (m,)`` (columns of the ``(C, n)``
    observations) with inlier views ``inl (C, m)``: the weighted DLT on the inliers, the views
    within threshold read again, the DLT refitted where they changed. Writes ``X[:, dst[k]]``
    and ``used[:, dst[k]]``; returns ``bad (m,)``, the points left for the ``eigh`` path."""
    m = src.shape[0]
    bad = np.zeros(m, np.bool_)
    nb = _num_blocks(m)
    for b in prange(nb):
        _refit_range(b * m // nb, (b + 1) * m // nb, G, norms, center, scale, KRt, src, inl, x, y, weight, valid,
                     pu, pv, tau2, X, used, dst, bad)
    return bad


@njit(**_JIT)
def _refit_range(lo, hi, G, norms, center, scale, KRt, src, inl, x, y, weight, valid, pu, pv, tau2, X, used, dst, bad):
    C = x.shape[0]
    F = np.empty(5 * C)
    mat = np.empty(10)
    w = np.empty(C)
    new = np.empty(C, np.bool_)
    for k in range(lo, hi):
        i, o = src[k], dst[k]
        n_inl = 0
        for c in range(C):
            w[c] = weight[c, i] if inl[c, k] else 0.0
            n_inl += inl[c, k]
        X0, X1, X2, fail = _dlt_point(G, norms, center, scale, x, y, i, w, F, mat)
        if fail:
            bad[k] = True
            continue
        n_new = 0
        for c in range(C):
            new[c] = valid[c, i] and _sqerr(KRt, c, X0, X1, X2, pu[c, i], pv[c, i]) < tau2[c, i]
            n_new += new[c]
        keep = n_new >= 2 and n_inl >= 2  # without a supported hypothesis the refit is meaningless
        changed = False
        for c in range(C):
            u = new[c] if keep else inl[c, k]
            changed = changed or u != inl[c, k]
            used[c, o] = u
            w[c] = weight[c, i] if u else 0.0
        if changed:  # the estimate must come from exactly the views reported as used
            X0, X1, X2, fail = _dlt_point(G, norms, center, scale, x, y, i, w, F, mat)
            if fail:
                bad[k] = True
                continue
        X[0, o], X[1, o], X[2, o] = X0, X1, X2


@njit(**_JIT)
def _dlt_point(G, norms, center, scale, x, y, i, w, F, mat):
    """``dlt.dlt_world`` for point ``i`` with view weights ``w (C,)`` -> ``X0, X1, X2`` world metres
    (NaN with fewer than two weighted views) and whether it needs the ``eigh`` path."""
    if _normal_matrix(G, norms, x, y, i, w, F, mat) < 2:
        return np.nan, np.nan, np.nan, False
    X0, X1, X2, good, moving = _solve_normal(mat, 12, 1e-13)
    fail = moving or not (good and np.isfinite(X0) and np.isfinite(X1) and np.isfinite(X2))
    return center[0] + X0 / scale, center[1] + X1 / scale, center[2] + X2 / scale, fail
