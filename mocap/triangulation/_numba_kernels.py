"""Compiled per-point kernels of the DLT and of ``robust.py`` steps 1-2 (numba backend, internal).

Same math and decision rules as the numpy path (the constants of :mod:`.rules`, passed in as
``rules``), written as loops over points (one pass over each point's ``C`` views, no
``(H, C, n)`` temporaries):

- :func:`step1_kernel`: the DLT normal matrices, the inverse-iteration steps of
  ``dlt.solve_normal(max_iterations=STEP1_MAX_ITERATIONS, exact=False, tol=STEP1_TOLERANCE)``,
  the views within threshold and which points go to RANSAC (``_robust_numpy.step1`` and the
  start of ``select_views``);
- :func:`ransac_kernel`: ``_robust_numpy.ransac_pairs`` (midpoint hypotheses, MSAC score,
  adaptive early exit), including its batch schedule, which depends on how many points are
  still live, so that every point tries exactly the pairs it tries in numpy;
- :func:`dlt_kernel`: ``dlt.dlt_world``, :func:`inliers_kernel`: views within threshold,
  :func:`refit_kernel`: ``_robust_numpy.dlt_inliers``.

The pixel kernels (undistortion, reprojection errors) are in ``_numba_pixels``, the left/right
check in ``_numba_swap``; ``_numba_steps`` drives them all.

Arrays are ``(C, n)`` as in the numpy path; the kernels of a step read the points ``idx`` of a
chunk's observations in place (no gathers between steps). Each kernel is a serial, GIL-free
loop over a range of points, compiled on first use only (no ``parallel=True``: numba's parfor
lowering doubled the first-run compile time); :func:`run_blocks` splits the points over
``numba.get_num_threads()`` Python threads. Each point is computed as in one thread, so the
results do not depend on the thread count. The rare points needing ``eigh`` (flagged) stay in numpy.
"""

from __future__ import annotations


import numpy as np
from numba import njit

from mocap.threads import run_blocks  # noqa: F401 - the kernels here and in _numba_swap/_pixels

JIT = dict(cache=True, fastmath=False, error_model="numpy", nogil=True)
#: Points per block at least (a block's scratch is allocated once; a block costs ~20 us of Python).
BLOCK = 128




@njit(**JIT)
def sqerr(KRt, c, X0, X1, X2, pu, pv):
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


@njit(**JIT)
def _nanmax3(a, b, c):
    """``max`` propagating NaN, as ``ndarray.max``."""
    if np.isnan(a) or np.isnan(b) or np.isnan(c):
        return np.nan
    return max(a, max(b, c))


@njit(**JIT)
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


@njit(**JIT)
def _solve_normal(m, max_steps, tol, rules):
    """``dlt.solve_normal`` for one point: closed-form 3×3 solve then inverse-iteration steps
    (checked for movement from step ``rules.dlt_iterations`` on, stopping below ``tol``, at most
    ``max_steps``). Returns ``X0, X1, X2`` (normalised world) and ``fail``: the point needs the
    ``eigh`` path (3×3 block ill-conditioned, non-finite, or still moving at the end)."""
    m00, m01, m02, m03, m11, m12, m13, m22, m23, m33 = m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9]
    a0, a1, a2 = m11 * m22 - m12 * m12, m02 * m12 - m01 * m22, m01 * m12 - m02 * m11
    a3, a4, a5 = m00 * m22 - m02 * m02, m01 * m02 - m00 * m12, m00 * m11 - m01 * m01
    det = m00 * a0 + m01 * a1 + m02 * a2
    tr = m00 + m11 + m22
    good = abs(det) > rules.condition_det_ratio * (tr / 3) ** 3
    if good:
        a0, a1, a2, a3, a4, a5 = a0 / det, a1 / det, a2 / det, a3 / det, a4 / det, a5 / det
    z0 = a0 * m03 + a1 * m13 + a2 * m23
    z1 = a1 * m03 + a3 * m13 + a4 * m23
    z2 = a2 * m03 + a4 * m13 + a5 * m23
    gamma = m33 - (m03 * z0 + m13 * z1 + m23 * z2)
    X0, X1, X2 = -z0, -z1, -z2
    moving = True
    for it in range(max_steps):
        u0 = a0 * X0 + a1 * X1 + a2 * X2
        u1 = a1 * X0 + a3 * X1 + a4 * X2
        u2 = a2 * X0 + a4 * X1 + a5 * X2
        f = gamma / (1.0 - (m03 * u0 + m13 * u1 + m23 * u2))
        P0, P1, P2 = X0, X1, X2
        X0, X1, X2 = f * u0 - z0, f * u1 - z1, f * u2 - z2
        if it + 1 >= rules.dlt_iterations:  # dlt._still_moving
            d = _nanmax3(abs(X0 - P0), abs(X1 - P1), abs(X2 - P2))
            moving = not (d <= tol * (1.0 + _nanmax3(abs(X0), abs(X1), abs(X2))))
            if not moving:
                break
    fail = moving or not (good and np.isfinite(X0) and np.isfinite(X1) and np.isfinite(X2))
    return X0, X1, X2, fail


@njit(**JIT)
def _dlt_point(G, norms, center, scale, x, y, i, w, F, mat, rules):
    """``dlt.dlt_world`` for point ``i`` with view weights ``w (C,)`` -> ``X0, X1, X2`` world metres
    (NaN with fewer than ``rules.min_views`` weighted views) and whether it needs the ``eigh`` path."""
    if _normal_matrix(G, norms, x, y, i, w, F, mat) < rules.min_views:
        return np.nan, np.nan, np.nan, False
    X0, X1, X2, fail = _solve_normal(mat, rules.dlt_max_iterations, rules.dlt_tolerance, rules)
    return center[0] + X0 / scale, center[1] + X1 / scale, center[2] + X2 / scale, fail


def step1_kernel(G, norms, KRt, center, scale, idx, x, y, weight, valid, pu, pv, tau2, rules):
    """Step 1 (``_robust_numpy.select_views`` up to RANSAC) for the points ``idx (m,)`` (columns
    of the ``(C, n)`` observations): ``X (3, m)`` world metres, ``used (C, m)`` and
    ``status (m,)``: 0 done, 1 to RANSAC (some view disagrees), 2 to finish with ``eigh`` (all
    views agree but the closed-form steps did not converge; ``X`` is the last iterate).

    ``rules.step1_max_iterations`` inverse-iteration steps; points still moving whose views all
    agree are finished as ``dlt.solve_normal`` does and their views read again; points with
    fewer than ``rules.min_views`` weighted views are NaN and report their valid views."""
    m, C = idx.shape[0], x.shape[0]
    X = np.empty((3, m))
    used = np.zeros((C, m), np.bool_)
    status = np.zeros(m, np.int8)
    run_blocks(_step1_range, m, G, norms, KRt, center, scale, idx, x, y, weight, valid, pu, pv, tau2, rules,
               X, used, status)
    return X, used, status


@njit(**JIT)
def _step1_range(lo, hi, G, norms, KRt, center, scale, idx, x, y, weight, valid, pu, pv, tau2, rules, X, used, status):
    C = x.shape[0]
    F = np.empty(5 * C)
    mat = np.empty(10)
    w = np.empty(C)
    for k in range(lo, hi):
        i = idx[k]
        for c in range(C):
            w[c] = weight[c, i]
        if _normal_matrix(G, norms, x, y, i, w, F, mat) < rules.min_views:
            X[0, k] = X[1, k] = X[2, k] = np.nan  # no point: report the views it had
            for c in range(C):
                used[c, k] = valid[c, i]
            continue
        X0, X1, X2, slow = _solve_normal(mat, rules.step1_max_iterations, rules.step1_tolerance, rules)
        agree = _read_views(KRt, center, scale, X0, X1, X2, i, k, valid, pu, pv, tau2, used)
        if slow and agree:  # finished exactly only if its views all agree (else RANSAC replaces it)
            X0, X1, X2, fail = _solve_normal(mat, rules.dlt_max_iterations, rules.dlt_tolerance, rules)
            if fail:
                status[k] = 2
            else:
                agree = _read_views(KRt, center, scale, X0, X1, X2, i, k, valid, pu, pv, tau2, used)
        if status[k] != 2 and not agree:
            status[k] = 1
        X[0, k], X[1, k], X[2, k] = center[0] + X0 / scale, center[1] + X1 / scale, center[2] + X2 / scale


@njit(**JIT)
def _read_views(KRt, center, scale, X0, X1, X2, i, k, valid, pu, pv, tau2, used):
    """``used[:, k]``: the views of point ``i`` within threshold of the normalised-world point
    ``X``; returns whether they are all its valid views."""
    X0, X1, X2 = center[0] + X0 / scale, center[1] + X1 / scale, center[2] + X2 / scale
    agree = True
    for c in range(valid.shape[0]):
        used[c, k] = valid[c, i] and sqerr(KRt, c, X0, X1, X2, pu[c, i], pv[c, i]) < tau2[c, i]
        agree = agree and used[c, k] == valid[c, i]
    return agree


def ransac_kernel(R, centers, KRt, pairs, idx, x, y, weight, valid, pu, pv, tau2, batch, tail, one_minus_conf, rules):
    """``_robust_numpy.ransac_pairs`` for the points ``idx (n,)`` (columns of the ``(C, N)``
    observations) -> best inlier views ``(C, n)``.

    The batch schedule depends on how many points are still live, so the rounds are serial; the
    live points of a round are split over the threads."""
    C, n, H = x.shape[0], idx.shape[0], pairs.shape[0]
    # Point-major copies: each hypothesis reads one point's C views from a few cache lines.
    d = np.empty((n, C, 3))
    valid_t = np.empty((n, C), np.bool_)
    weight_t, pu_t, pv_t, tau2_t = (np.empty((n, C)) for _ in range(4))
    n_valid = np.zeros(n)
    run_blocks(_ransac_gather, n, R, idx, x, y, weight, valid, pu, pv, tau2, d, valid_t, weight_t, pu_t, pv_t, tau2_t,
               n_valid)
    best_cost = np.full(n, np.inf)
    best_inl = np.zeros((C, n), np.bool_)
    tried = np.zeros(n)
    live = np.arange(n)
    keep = np.empty(n, np.bool_)
    s = 0
    while s < H and live.size:
        s1 = min(s + (batch if live.size * (H - s) > tail else H - s), H)
        run_blocks(_ransac_range, live.size, s, s1, live, keep, centers, KRt, pairs, d, weight_t, valid_t, pu_t, pv_t,
                   tau2_t, n_valid, best_cost, best_inl, tried, one_minus_conf, rules)
        live = live[keep[: live.size]]
        s = s1
    return best_inl


@njit(**JIT)
def _ransac_gather(lo, hi, R, idx, x, y, weight, valid, pu, pv, tau2, d, valid_t, weight_t, pu_t, pv_t, tau2_t,
                   n_valid):
    """Rays ``d (n, C, 3)`` and point-major copies of points ``idx[lo:hi]``'s observations."""
    C = x.shape[0]
    for i in range(lo, hi):
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


@njit(**JIT)
def _ransac_range(lo, hi, s, s1, live, keep_out, centers, KRt, pairs, d, weight, valid, pu, pv, tau2, n_valid,
                  best_cost, best_inl, tried, one_minus_conf, rules):
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
            ok = den > rules.parallel_rays * a * cc
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
                r = sqerr(KRt, c, X0, X1, X2, pu[i, c], pv[i, c]) / tau2[i, c]
                cost += weight[i, c] * min(r, 1.0)
                cur[c] = r < 1.0
                if cur[c]:
                    k += 1
            ok = ok and k >= rules.min_views
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
        p_good = k * (k - 1) / max(nv * (nv - 1), 1.0) if nv >= 2 else 0.0  # both views of a pair inliers
        miss = 0.0 if p_good >= 1 else (1 - min(p_good, 1.0)) ** tried[i]
        final = 2 * k > nv and k >= rules.majority_min_inliers
        keep_out[li] = (miss >= one_minus_conf and not final) or not np.isfinite(best_cost[i])


def dlt_kernel(G, norms, center, scale, x, y, weight, rules):
    """``dlt.dlt_world`` for every point -> ``X (3, n)`` world metres and ``bad (n,)``: the points
    that need ``dlt.solve_normal_eigh`` (left as their last iterate; the caller replaces them)."""
    n = x.shape[1]
    X = np.empty((3, n))
    bad = np.zeros(n, np.bool_)
    run_blocks(_dlt_range, n, G, norms, center, scale, x, y, weight, rules, X, bad)
    return X, bad


@njit(**JIT)
def _dlt_range(lo, hi, G, norms, center, scale, x, y, weight, rules, X, bad):
    C = x.shape[0]
    F = np.empty(5 * C)
    m = np.empty(10)
    w = np.empty(C)
    for i in range(lo, hi):
        for c in range(C):
            w[c] = weight[c, i]
        X[0, i], X[1, i], X[2, i], bad[i] = _dlt_point(G, norms, center, scale, x, y, i, w, F, m, rules)


def inliers_kernel(KRt, X, idx, pu, pv, valid, tau2):
    """``valid & (squared_error_px(X) < tau2)`` -> ``(C, m)`` for points ``X (3, m)`` observed in
    columns ``idx (m,)`` of the ``(C, n)`` observations."""
    used = np.zeros((pu.shape[0], idx.shape[0]), np.bool_)
    run_blocks(_inliers_range, idx.shape[0], KRt, X, idx, pu, pv, valid, tau2, used)
    return used


@njit(**JIT)
def _inliers_range(lo, hi, KRt, X, idx, pu, pv, valid, tau2, used):
    for k in range(lo, hi):
        i = idx[k]
        for c in range(pu.shape[0]):
            used[c, k] = valid[c, i] and sqerr(KRt, c, X[0, k], X[1, k], X[2, k], pu[c, i], pv[c, i]) < tau2[c, i]


def refit_kernel(G, norms, center, scale, KRt, src, inl, x, y, weight, valid, pu, pv, tau2, rules, X, used, dst):
    """``_robust_numpy.dlt_inliers`` for the points ``src (m,)`` (columns of the ``(C, n)``
    observations) with inlier views ``inl (C, m)``: the weighted DLT on the inliers, the views
    within threshold read again, the DLT refitted where they changed. Writes ``X[:, dst[k]]``
    and ``used[:, dst[k]]``; returns ``bad (m,)``, the points left for the ``eigh`` path."""
    bad = np.zeros(src.shape[0], np.bool_)
    run_blocks(_refit_range, src.shape[0], G, norms, center, scale, KRt, src, inl, x, y, weight, valid, pu, pv, tau2,
               rules, X, used, dst, bad)
    return bad


@njit(**JIT)
def _refit_range(lo, hi, G, norms, center, scale, KRt, src, inl, x, y, weight, valid, pu, pv, tau2, rules, X, used,
                 dst, bad):
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
        X0, X1, X2, fail = _dlt_point(G, norms, center, scale, x, y, i, w, F, mat, rules)
        if fail:
            bad[k] = True
            continue
        n_new = 0
        for c in range(C):
            new[c] = valid[c, i] and sqerr(KRt, c, X0, X1, X2, pu[c, i], pv[c, i]) < tau2[c, i]
            n_new += new[c]
        # Without a supported hypothesis the refit is meaningless.
        keep = n_new >= rules.min_views and n_inl >= rules.min_views
        changed = False
        for c in range(C):
            u = new[c] if keep else inl[c, k]
            changed = changed or u != inl[c, k]
            used[c, o] = u
            w[c] = weight[c, i] if u else 0.0
        if changed:  # the estimate must come from exactly the views reported as used
            X0, X1, X2, fail = _dlt_point(G, norms, center, scale, x, y, i, w, F, mat, rules)
            if fail:
                bad[k] = True
                continue
        X[0, o], X[1, o], X[2, o] = X0, X1, X2
