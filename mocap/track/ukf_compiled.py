"""Compiled (numba) twin of :mod:`mocap.track.ukf` for the tracker's hot loop.

The same filter, point by point, for speed: the forward pass of :mod:`mocap.track.filter_people`
over every frame is one compiled loop per block of people (each person's joints in turn, their
bones inside the person), and the backward passes (RTS over the whole take, or a fixed lag) one
loop per point. Term for term the numpy update (:func:`mocap.track.ukf.ukf_update`, which the
tests hold to filterpy's within 1e-6): the scaled sigma points of the predicted state, each
projected through the full camera model (:func:`mocap.geometry.lens_compiled.distort_point`),
the cameras a point has packed into one innovation vector (the numpy batch's masked rows are the
same update), the 2x2 Mahalanobis gate per camera, then ``K = Pxz S⁻¹`` by Cholesky. The tests
check it against the numpy update to 1e-9 and the backward passes against
:func:`mocap.track.ukf.rts_smooth`.

Each kernel is a serial, GIL-free loop over a range of people or points; :func:`mocap.threads.run_blocks`
splits that range over ``numba.get_num_threads()`` Python threads (each point is computed the
same whatever the split). Compiled on first use and cached on disk: 28-35 CPU-seconds once on
a fresh checkout (measured on a loaded 2-core machine), then loaded from the cache in well under
a second.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mocap.geometry.lens_compiled import distort_point

JIT = dict(cache=True, fastmath=False, error_model="numpy", nogil=True)




@njit(**JIT)
def cholesky(A, L, n):
    """Lower Cholesky factor of the leading ``n x n`` of ``A`` into ``L``; False if not positive
    definite (a pivot at or below 0, or NaN)."""
    for i in range(n):
        for j in range(i + 1):
            s = A[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            if i == j:
                if not s > 0:
                    return False
                L[i, i] = math.sqrt(s)
            else:
                L[i, j] = s / L[j, j]
        for j in range(i + 1, n):
            L[i, j] = 0.0
    return True


@njit(**JIT)
def cholesky_solve(L, B, n, m):
    """In place: ``B[:n, :m] <- A⁻¹ B`` with ``A = L Lᵀ`` (``n x n``)."""
    for c in range(m):
        for i in range(n):
            s = B[i, c]
            for k in range(i):
                s -= L[i, k] * B[k, c]
            B[i, c] = s / L[i, i]
        for i in range(n - 1, -1, -1):
            s = B[i, c]
            for k in range(i + 1, n):
                s -= L[k, i] * B[k, c]
            B[i, c] = s / L[i, i]


@njit(**JIT)
def sqrt_factor(P, scale, L, A):
    """``L`` with ``L Lᵀ = scale P`` (6 x 6) by Cholesky; where rounding made ``P`` slightly
    indefinite, of ``P`` loaded on its diagonal by 1e-12, 1e-11, ... of its largest variance
    until it factors (the numpy path clips the eigenvalues instead: both are rare, and numba's
    ``eigh`` would double the first compile). ``A``: ``(6, 6)`` scratch."""
    for i in range(6):
        for j in range(6):
            A[i, j] = scale * 0.5 * (P[i, j] + P[j, i])
    if cholesky(A, L, 6):
        return
    top = 0.0
    for i in range(6):
        top = max(top, abs(A[i, i]))
    load = 1e-12 * max(top, 1e-300)
    for _ in range(16):
        for i in range(6):
            A[i, i] += load
        if cholesky(A, L, 6):
            return
        load *= 10


def camera_table(rig) -> np.ndarray:
    """``(C, 23)`` one row per camera of ``rig`` for :func:`project_point`: ``R`` (9, row-major),
    ``t`` (3), ``k1 k2 p1 p2 k3``, 1 if distorted else 0, ``fx skew cx fy cy`` (one array: a
    compiled call with five array arguments costs 4x the projection itself)."""
    K = np.asarray(rig.K, dtype=np.float64)
    distorted = np.array([c.has_distortion for c in rig.cameras], dtype=np.float64)
    return np.ascontiguousarray(np.concatenate([
        np.asarray(rig.R, dtype=np.float64).reshape(-1, 9), np.asarray(rig.t, dtype=np.float64),
        np.asarray(rig.dist, dtype=np.float64), distorted[:, None],
        np.stack([K[:, 0, 0], K[:, 0, 1], K[:, 0, 2], K[:, 1, 1], K[:, 1, 2]], -1)], axis=1))


@njit(**JIT)
def project_point(X0, X1, X2, cam):
    """Pixel ``(u, v)`` of world point ``X`` in the camera of row ``cam`` of
    :func:`camera_table`: :func:`mocap.geometry.project`'s model (NaN at or behind the camera)."""
    a = cam[0] * X0 + cam[1] * X1 + cam[2] * X2 + cam[9]
    b = cam[3] * X0 + cam[4] * X1 + cam[5] * X2 + cam[10]
    z = cam[6] * X0 + cam[7] * X1 + cam[8] * X2 + cam[11]
    if not z > 1e-9:
        return np.nan, np.nan
    x, y = a / z, b / z
    if cam[17] != 0:
        x, y = distort_point(x, y, cam[12], cam[13], cam[14], cam[15], cam[16])
    return cam[18] * x + cam[19] * y + cam[20], cam[21] * y + cam[22]


@njit(**JIT)
def sigma_project(x, P, lam, cams, observed, z, sig, zs, used, L, A):
    """The ``2n + 1`` sigma points of ``x, P`` into ``sig (13, 6)``, projected into every camera
    ``observed`` into ``zs (13, C, 2)``; ``used (C,)``: observed with a finite keypoint and every
    sigma point in front of the camera. ``L``, ``A``: ``(6, 6)`` scratch."""
    sqrt_factor(P, 6 + lam, L, A)
    for i in range(6):
        sig[0, i] = x[i]
        for k in range(6):
            sig[1 + k, i] = x[i] + L[i, k]
            sig[7 + k, i] = x[i] - L[i, k]
    for c in range(z.shape[0]):
        used[c] = observed[c] and np.isfinite(z[c, 0]) and np.isfinite(z[c, 1])
        if not used[c]:
            continue
        for s in range(13):
            u, v = project_point(sig[s, 0], sig[s, 1], sig[s, 2], cams[c])
            zs[s, c, 0], zs[s, c, 1] = u, v
            if not (np.isfinite(u) and np.isfinite(v)):
                used[c] = False


@njit(**JIT)
def innovation(sig, zs, x, z, var, used, wm, wc, idx, m, dz, v, S, Pxz):
    """Mean, innovation ``v (2m,)``, its covariance ``S (2m, 2m)`` (+ the measurement noise) and
    the cross-covariance ``Pxz (6, 2m)`` of the ``m`` cameras ``idx``."""
    for k in range(m):
        c = idx[k]
        for a in range(2):
            mean = 0.0
            for s in range(13):
                mean += wm[s] * zs[s, c, a]
            v[2 * k + a] = z[c, a] - mean
            for s in range(13):
                dz[s, 2 * k + a] = zs[s, c, a] - mean
    n = 2 * m
    for i in range(n):
        for j in range(i + 1):
            acc = 0.0
            for s in range(13):
                acc += wc[s] * dz[s, i] * dz[s, j]
            S[i, j] = acc
            S[j, i] = acc
        S[i, i] += var[idx[i // 2]]
        for r in range(6):
            acc = 0.0
            for s in range(13):
                acc += wc[s] * (sig[s, r] - x[r]) * dz[s, i]
            Pxz[r, i] = acc


@njit(**JIT)
def ukf_update_point(x, P, z, var, observed, cams, wm, wc, lam, gate, work):
    """One unscented update of one point in place (:func:`mocap.track.ukf.ukf_update` for
    ``N = 1``): ``x (6,)``, ``P (6, 6)``, ``z (C, 2)`` px, ``var (C,)`` px², ``observed (C,)``.
    ``work``: :func:`update_work` scratch. Returns the number of cameras used (0: no update)."""
    sig, zs, used, idx, dz, v, S, Pxz, L, L6, A6, Kt = work
    C = z.shape[0]
    sigma_project(x, P, lam, cams, observed, z, sig, zs, used, L6, A6)
    m = 0
    for c in range(C):
        if used[c]:
            idx[m] = c
            m += 1
    if m == 0:
        return 0
    innovation(sig, zs, x, z, var, used, wm, wc, idx, m, dz, v, S, Pxz)
    if np.isfinite(gate):  # each camera's 2x2 block alone (closed-form inverse)
        keep = 0
        for k in range(m):
            a, b, d = S[2 * k, 2 * k], S[2 * k, 2 * k + 1], S[2 * k + 1, 2 * k + 1]
            v0, v1 = v[2 * k], v[2 * k + 1]
            if (d * v0 * v0 - 2 * b * v0 * v1 + a * v1 * v1) / (a * d - b * b) <= gate * gate:
                idx[keep] = idx[k]
                keep += 1
            else:
                used[idx[k]] = False
        if keep < m:
            m = keep
            if m == 0:
                return 0
            innovation(sig, zs, x, z, var, used, wm, wc, idx, m, dz, v, S, Pxz)
    n = 2 * m
    if not cholesky(S, L, n):
        return 0
    for i in range(n):  # Kt (2m, 6) <- S⁻¹ Pxzᵀ = Kᵀ
        for r in range(6):
            Kt[i, r] = Pxz[r, i]
    cholesky_solve(L, Kt, n, 6)
    for r in range(6):
        acc = 0.0
        for i in range(n):
            acc += Kt[i, r] * v[i]
        x[r] += acc
    for r in range(6):  # P - K S Kᵀ = P - K Pxzᵀ
        for q in range(r + 1):
            acc = 0.0
            for i in range(n):
                acc += Kt[i, r] * Pxz[q, i]
            P[r, q] -= acc
            if q != r:
                P[q, r] -= acc
    for r in range(6):  # symmetric, as the numpy path leaves it
        for q in range(r):
            s = 0.5 * (P[r, q] + P[q, r])
            P[r, q] = s
            P[q, r] = s
    return m


@njit(**JIT)
def update_work(C):
    """Scratch of :func:`ukf_update_point` for ``C`` cameras."""
    return (np.empty((13, 6)), np.empty((13, C, 2)), np.empty(C, np.bool_), np.empty(C, np.int64),
            np.empty((13, 2 * C)), np.empty(2 * C), np.empty((2 * C, 2 * C)), np.empty((6, 2 * C)),
            np.empty((2 * C, 2 * C)), np.empty((6, 6)), np.empty((6, 6)), np.empty((2 * C, 6)))


@njit(**JIT)
def bone_update_point(x, P, parent, P_parent, length, sigma_m):
    """:func:`mocap.track.filter_people.bone_update` of one point, in place."""
    d0, d1, d2 = x[0] - parent[0], x[1] - parent[1], x[2] - parent[2]
    h = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
    g = max(h, 1e-9)
    u0, u1, u2 = d0 / g, d1 / g, d2 / g
    S = sigma_m * sigma_m
    for i in range(3):
        ui = u0 if i == 0 else (u1 if i == 1 else u2)
        S += ui * ((P[i, 0] + P_parent[i, 0]) * u0 + (P[i, 1] + P_parent[i, 1]) * u1
                   + (P[i, 2] + P_parent[i, 2]) * u2)
    K = (P[:, 0] * u0 + P[:, 1] * u1 + P[:, 2] * u2) / S
    for r in range(6):
        x[r] += K[r] * (length - h)
    for r in range(6):
        for q in range(6):
            P[r, q] -= S * K[r] * K[q]
    for r in range(6):
        for q in range(r):
            s = 0.5 * (P[r, q] + P[q, r])
            P[r, q] = s
            P[q, r] = s


@njit(**JIT)
def predict_point(x, P, F, Q, y, FP):
    """In place: ``x <- F x``, ``P <- F P Fᵀ + Q`` (6 x 6); ``y (6,)``, ``FP (6, 6)``: scratch."""
    n = F.shape[0]  # read at run time (see smooth_step)
    for r in range(n):
        acc = 0.0
        for k in range(n):
            acc += F[r, k] * x[k]
        y[r] = acc
        for c in range(n):
            acc = 0.0
            for k in range(n):
                acc += F[r, k] * P[k, c]
            FP[r, c] = acc
    x[:] = y
    for r in range(n):
        for c in range(n):
            acc = Q[r, c]
            for k in range(n):
                acc += FP[r, k] * F[c, k]
            P[r, c] = acc


@njit(**JIT)
def start_variance(var, observed):
    """:func:`mocap.track.filter_people.start_variance` of one point: ``var (C,)``, ``observed (C,)``."""
    total, count = 0.0, 0
    for c in range(var.shape[0]):
        if observed[c] and np.isfinite(var[c]):
            total += var[c]
            count += 1
    px2 = total / count if count else 100.0
    return max(px2 * 0.003 ** 2 * 4, 1e-4)


@njit(**JIT)
def forward_kernel(lo, hi, J, ev, cams, F, Q, weights, settings, out):
    """The forward pass of people ``lo:hi`` (points ``J lo : J hi``, parents within a person):
    :func:`mocap.track.filter_people.forward_filter` point by point. ``ev``: ``(z, var, observed,
    start, parent, bone)``; ``Q (N, 6, 6)`` per point; ``weights``: ``(wm, wc, lam)``;
    ``settings``: ``(gate, max_gap frames, restart_m, restart_frames, bone_sigma_m,
    start_velocity_sigma, odd bone fraction)``; ``out``: ``(xs, Ps, linked, views)`` written in place."""
    z, var, observed, start, parent, bone = ev
    xs, Ps, linked, views = out
    wm, wc, lam = weights
    gate, max_gap, restart_m, restart_frames, bone_sigma, v0, odd_bone = settings
    T, C = z.shape[0], z.shape[2]
    work = update_work(C)
    x, P = np.zeros((J, 6)), np.zeros((J, 6, 6))
    xp, Pp = np.zeros((J, 3)), np.zeros((J, 3, 3))
    alive, last, strikes = np.zeros(J, np.bool_), np.zeros(J, np.int64), np.zeros(J, np.int64)
    alive_pre = np.zeros(J, np.bool_)
    y6, FP6 = np.empty(6), np.empty((6, 6))
    for g in range(lo, hi):
        base = g * J
        alive[:], last[:], strikes[:] = False, 0, 0
        for t in range(T):
            for j in range(J):
                n = base + j
                alive[j] = alive[j] and t - last[j] <= max_gap + 1
                if alive[j]:
                    predict_point(x[j], P[j], F, Q[n], y6, FP6)
                    if observed[t, n].any():
                        views[t, n] = ukf_update_point(x[j], P[j], z[t, n], var[t, n], observed[t, n], cams, wm,
                                                       wc, lam, gate, work)
                xp[j], Pp[j] = x[j, :3], P[j, :3, :3]
            alive_pre[:] = alive
            for j in range(J):  # bones: each parent as the camera update left it
                n, p = base + j, parent[base + j]
                if (alive[j] and not np.isfinite(start[t, n]).all() and np.isfinite(bone[t, n]) and p >= 0
                        and alive_pre[p - base]):
                    bone_update_point(x[j], P[j], xp[p - base], Pp[p - base], bone[t, n], bone_sigma)
            for j in range(J):
                restart_point(t, base + j, j, x, P, alive, last, strikes, ev, settings, out, v0, xp, alive_pre, base)
    return None


@njit(**JIT)
def restart_point(t, n, j, x, P, alive, last, strikes, ev, settings, out, v0, xp, alive_pre, base):
    """A joint (re)started from the triangulation where it has none alive or the filter
    disagrees with it: at once where the triangulated joint lies within the odd-bone fraction of
    its bone's length from its parent (the parent's filtered position ``xp`` where it is alive,
    else its triangulation), else after ``restart_frames`` frames in a row
    (:data:`mocap.track.filter_people.ODD_BONE`); then frame ``t`` stored."""
    z, var, observed, start, parent, bone = ev
    xs, Ps, linked, views = out
    restart_m, restart_frames, odd_bone = settings[2], settings[3], settings[6]
    has_start = np.isfinite(start[t, n]).all()
    refused = False
    if alive[j] and has_start:
        d = math.sqrt((x[j, 0] - start[t, n, 0]) ** 2 + (x[j, 1] - start[t, n, 1]) ** 2
                      + (x[j, 2] - start[t, n, 2]) ** 2)
        refused = (views[t, n] == 0 and observed[t, n].any()) or d > restart_m
    strikes[j] = strikes[j] + 1 if refused else 0
    need, p = restart_frames, parent[n]
    if refused and p >= 0 and np.isfinite(bone[t, n]):
        ref = xp[p - base] if alive_pre[p - base] else start[t, p]
        tri_bone = math.sqrt((start[t, n, 0] - ref[0]) ** 2 + (start[t, n, 1] - ref[1]) ** 2
                             + (start[t, n, 2] - ref[2]) ** 2)
        if abs(tri_bone / bone[t, n] - 1) <= odd_bone:  # NaN (no parent position): not checked
            need = 1
    new = has_start and (not alive[j] or strikes[j] >= need)
    linked[t, n] = alive[j] and not new
    if new:
        x[j, :3], x[j, 3:] = start[t, n], 0.0
        P[j] = 0.0
        s0 = start_variance(var[t, n], observed[t, n])
        for i in range(3):
            P[j, i, i] = s0
            P[j, 3 + i, 3 + i] = v0 * v0
        views[t, n] = max(views[t, n], observed[t, n].sum())
        alive[j] = True
        strikes[j] = 0
    if views[t, n] > 0:
        last[j] = t
    if alive[j]:
        xs[t, n], Ps[t, n] = x[j], P[j]


@njit(**JIT)
def smooth_step(x, P, x_next, P_next, F, Q, x_out, P_out, work):
    """One Rauch–Tung–Striebel step: state ``x, P`` smoothed with the smoothed next state
    ``x_next, P_next`` into ``x_out, P_out``; ``work``: four ``(6, 6)`` and one ``(6,)`` scratch."""
    FP, Ct, D, L, dx = work
    n = F.shape[0]  # 6, read at run time: a constant bound has LLVM unroll the triple loops (slow compile)
    for r in range(n):  # FP = F P (= P_pred Cᵀ, P symmetric), dx = x_next - F x
        acc = 0.0
        for k in range(n):
            acc += F[r, k] * x[k]
        dx[r] = x_next[r] - acc
        for c in range(n):
            acc = 0.0
            for k in range(n):
                acc += F[r, k] * P[k, c]
            FP[r, c] = acc
            Ct[r, c] = acc
    for r in range(n):  # D = P_pred = F P Fᵀ + Q
        for c in range(n):
            acc = Q[r, c]
            for k in range(n):
                acc += FP[r, k] * F[c, k]
            D[r, c] = acc
    if not cholesky(D, L, n):  # P_pred = F P Fᵀ + Q is positive definite but for rounding: keep x, P
        x_out[:] = x
        P_out[:, :] = P
        return
    cholesky_solve(L, Ct, n, n)  # Cᵀ = P_pred⁻¹ F P
    for r in range(n):  # D <- P_next - P_pred
        for c in range(n):
            D[r, c] = P_next[r, c] - D[r, c]
    for r in range(n):
        acc = x[r]
        for k in range(n):
            acc += Ct[k, r] * dx[k]
        x_out[r] = acc
        for c in range(n):  # FP <- C D (row r)
            acc = 0.0
            for k in range(n):
                acc += Ct[k, r] * D[k, c]
            FP[r, c] = acc
    for r in range(n):
        for c in range(n):
            acc = P[r, c]
            for k in range(n):
                acc += FP[r, k] * Ct[k, c]
            P_out[r, c] = acc


@njit(**JIT)
def finite(a):
    """``a``, 0 where NaN or infinite."""
    return a if np.isfinite(a) else 0.0


@njit(**JIT)
def largest_sd(P):
    """Square root of the largest eigenvalue of the symmetric 3 x 3 ``P[:3, :3]`` (closed form,
    Smith 1961; NaN entries read as 0, as ``eigvalsh(nan_to_num(P))``)."""
    a00, a11, a22 = finite(P[0, 0]), finite(P[1, 1]), finite(P[2, 2])
    a01, a02, a12 = finite(P[0, 1]), finite(P[0, 2]), finite(P[1, 2])
    p1 = a01 ** 2 + a02 ** 2 + a12 ** 2
    q = (a00 + a11 + a22) / 3
    p2 = (a00 - q) ** 2 + (a11 - q) ** 2 + (a22 - q) ** 2 + 2 * p1
    if p2 <= 1e-300:
        return math.sqrt(max(q, 0.0))
    p = math.sqrt(p2 / 6)
    b00, b11, b22, b01, b02, b12 = (a00 - q) / p, (a11 - q) / p, (a22 - q) / p, a01 / p, a02 / p, a12 / p
    r = (b00 * (b11 * b22 - b12 * b12) - b01 * (b01 * b22 - b12 * b02) + b02 * (b01 * b12 - b11 * b02)) / 2
    phi = math.acos(min(1.0, max(-1.0, r))) / 3
    return math.sqrt(max(q + 2 * p * math.cos(phi), 0.0))


@njit(**JIT)
def smooth_window(xs, Ps, F, Q, linked, n, lo, hi, sm, Psm, work):
    """RTS over frames ``lo:hi`` of point ``n`` into ``sm (hi - lo, 6)``, ``Psm (hi - lo, 6, 6)``
    (:func:`mocap.track.ukf.rts_smooth`: no smoothing across an unlinked frame)."""
    k = hi - lo - 1
    sm[k], Psm[k] = xs[hi - 1, n], Ps[hi - 1, n]
    for t in range(hi - 2, lo - 1, -1):
        k = t - lo
        if linked[t + 1, n] and np.isfinite(xs[t, n]).all():
            smooth_step(xs[t, n], Ps[t, n], sm[k + 1], Psm[k + 1], F, Q[n], sm[k], Psm[k], work)
        else:
            sm[k], Psm[k] = xs[t, n], Ps[t, n]


@njit(**JIT)
def smooth_kernel(lo, hi, xs, Ps, F, Q, linked, lag, positions, sd):
    """Points ``lo:hi`` smoothed: over the whole take (``lag < 0``) or each frame with the
    ``lag`` frames after it (the last ``lag`` frames with what follows them); ``positions
    (T, N, 3)`` and ``sd (T, N)`` (:func:`largest_sd` of the smoothed covariance) in place."""
    T = xs.shape[0]
    span = T if lag < 0 else min(lag + 1, T)
    sm, Psm = np.empty((span, 6)), np.empty((span, 6, 6))
    work = (np.empty((6, 6)), np.empty((6, 6)), np.empty((6, 6)), np.empty((6, 6)), np.empty(6))
    for n in range(lo, hi):
        if lag < 0 or lag == 0:
            if lag == 0:
                for t in range(T):
                    positions[t, n], sd[t, n] = xs[t, n, :3], largest_sd(Ps[t, n])
                continue
            smooth_window(xs, Ps, F, Q, linked, n, 0, T, sm, Psm, work)
            for t in range(T):
                positions[t, n], sd[t, n] = sm[t, :3], largest_sd(Psm[t])
            continue
        for t in range(0, T - lag):
            smooth_window(xs, Ps, F, Q, linked, n, t, t + lag + 1, sm, Psm, work)
            positions[t, n], sd[t, n] = sm[0, :3], largest_sd(Psm[0])
        tail = max(0, T - lag)
        smooth_window(xs, Ps, F, Q, linked, n, tail, T, sm, Psm, work)
        for t in range(tail, T):
            positions[t, n], sd[t, n] = sm[t - tail, :3], largest_sd(Psm[t - tail])


@njit(**JIT)
def step_kernel(lo, hi, J, ev, cams, F, Q, weights, settings, state, out):
    """One frame of :func:`forward_kernel` for people ``lo:hi`` whose filters carry over between
    calls (the live tracker, :class:`mocap.track.online.OnlineTracker`): ``ev`` and ``out`` as
    there with one frame (``T = 1``); ``state``: ``(x (N, 6), P (N, 6, 6), alive (N,), last (N,),
    strikes (N,))`` updated in place, ``last`` counted in frames relative to this one (0: this
    frame; the caller subtracts 1 before each frame)."""
    z, var, observed, start, parent, bone = ev
    xs, Ps, linked, views = out
    x_all, P_all, alive_all, last_all, strikes_all = state
    wm, wc, lam = weights
    gate, max_gap, restart_m, restart_frames, bone_sigma, v0, odd_bone = settings
    C = z.shape[2]
    work = update_work(C)
    xp, Pp = np.zeros((J, 3)), np.zeros((J, 3, 3))
    alive_pre = np.zeros(J, np.bool_)
    y6, FP6 = np.empty(6), np.empty((6, 6))
    for g in range(lo, hi):
        base = g * J
        x, P = x_all[base:base + J], P_all[base:base + J]
        alive, last, strikes = alive_all[base:base + J], last_all[base:base + J], strikes_all[base:base + J]
        for j in range(J):
            n = base + j
            alive[j] = alive[j] and -last[j] <= max_gap + 1
            if alive[j]:
                predict_point(x[j], P[j], F, Q[n], y6, FP6)
                if observed[0, n].any():
                    views[0, n] = ukf_update_point(x[j], P[j], z[0, n], var[0, n], observed[0, n], cams, wm,
                                                   wc, lam, gate, work)
            xp[j], Pp[j] = x[j, :3], P[j, :3, :3]
        alive_pre[:] = alive
        for j in range(J):  # bones: each parent as the camera update left it
            n, p = base + j, parent[base + j]
            if (alive[j] and not np.isfinite(start[0, n]).all() and np.isfinite(bone[0, n]) and p >= 0
                    and alive_pre[p - base]):
                bone_update_point(x[j], P[j], xp[p - base], Pp[p - base], bone[0, n], bone_sigma)
        for j in range(J):
            restart_point(0, base + j, j, x, P, alive, last, strikes, ev, settings, out, v0, xp, alive_pre, base)
    return None
