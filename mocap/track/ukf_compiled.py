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
:func:`mocap.track.ukf.rts_smooth`. Around the update, as the numpy pass does: the left/right
swap hypothesis of each view (:func:`swap_views`) before it, the bones (:func:`hold_bones`:
the parent's and the triangulated children's, on the likelier side of the parent's sphere)
after it.

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
    sigma_fill(x, P, lam, sig, L, A)
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


#: Prior probability that a view's left/right labels are all exchanged (a detector's error);
#: :func:`swap_views` exchanges them back where the likelihood ratio beats the prior odds.
SWAP_PRIOR = 0.02

#: ``-2 log`` of the prior odds against a swap: what the swapped labelling's cost must beat.
SWAP_PENALTY = 2 * math.log((1 - SWAP_PRIOR) / SWAP_PRIOR)


@njit(**JIT)
def view_moments(sig, wm, wc, cam, dz, out):
    """``out (5,)``: the unscented mean ``(u, v)`` and covariance ``(uu, uv, vv)`` of the
    projection of sigma points ``sig (13, 6)`` in camera row ``cam`` (no measurement noise);
    False where a sigma point does not project. ``dz (13, >= 2)``: scratch."""
    us, vs = dz[:, 0], dz[:, 1]
    mu, mv = 0.0, 0.0
    for s in range(13):
        us[s], vs[s] = project_point(sig[s, 0], sig[s, 1], sig[s, 2], cam)
        if not (np.isfinite(us[s]) and np.isfinite(vs[s])):
            return False
        mu += wm[s] * us[s]
        mv += wm[s] * vs[s]
    out[:] = 0.0
    out[0], out[1] = mu, mv
    for s in range(13):
        out[2] += wc[s] * (us[s] - mu) ** 2
        out[3] += wc[s] * (us[s] - mu) * (vs[s] - mv)
        out[4] += wc[s] * (vs[s] - mv) ** 2
    return True


@njit(**JIT)
def sigma_fill(x, P, lam, sig, L, A):
    """The ``13`` sigma points of ``x, P`` into ``sig`` (:func:`mocap.track.ukf.sigma_points`)."""
    sqrt_factor(P, 6 + lam, L, A)
    for i in range(6):
        sig[0, i] = x[i]
        for k in range(6):
            sig[1 + k, i] = x[i] + L[i, k]
            sig[7 + k, i] = x[i] - L[i, k]


@njit(**JIT)
def label_cost(z0, z1, var, m, gate):
    """-2 log-likelihood (up to a constant) of keypoint ``(z0, z1)`` of variance ``var`` px² per
    axis given a joint's predicted projection ``m`` (:func:`view_moments`), its Mahalanobis
    distance² capped at ``gate²`` (an outlier costs the same under either label)."""
    a, b, d = m[2] + var, m[3], m[4] + var
    det = a * d - b * b
    v0, v1 = z0 - m[0], z1 - m[1]
    return min((d * v0 * v0 - 2 * b * v0 * v1 + a * v1 * v1) / det, gate * gate) + math.log(det)


@njit(**JIT)
def swap_views(t, base, x, P, alive, mirror, ev, cams, weights, gate, work, pred, pok):
    """:func:`mocap.track.filter_people.swap_views` for the person at points ``base : base + J``
    at frame ``t`` (predicted states ``x, P``): each view whose left/right labels, all exchanged,
    fit the predicted joints better by :data:`SWAP_PENALTY` (:func:`label_cost` summed over the
    keypoints whose joint and twin are alive) has them exchanged in ``ev``'s keypoints, variances
    and masks, in place.
    ``pred (J, C, 5)``, ``pok (J, C)``: scratch."""
    z, var, observed = ev[0], ev[1], ev[2]
    wm, wc, lam = weights
    J, C = mirror.shape[0], z.shape[2]
    sig, dz = work[0], work[4]
    for j in range(J):
        m = mirror[j]
        pok[j] = False
        if m == j or not alive[j] or not alive[m]:
            continue
        if not (observed[t, base + j].any() or observed[t, base + m].any()):
            continue
        sigma_fill(x[j], P[j], lam, sig, work[9], work[10])
        for c in range(C):
            pok[j, c] = ((observed[t, base + j, c] or observed[t, base + m, c])
                         and view_moments(sig, wm, wc, cams[c], dz, pred[j, c]))
    for c in range(C):
        same, cross, count = 0.0, 0.0, 0
        for j in range(J):
            n, m = base + j, mirror[j]
            if observed[t, n, c] and np.isfinite(z[t, n, c, 0]) and pok[j, c] and pok[m, c]:
                same += label_cost(z[t, n, c, 0], z[t, n, c, 1], var[t, n, c], pred[j, c], gate)
                cross += label_cost(z[t, n, c, 0], z[t, n, c, 1], var[t, n, c], pred[m, c], gate)
                count += 1
        if count == 0 or not cross + SWAP_PENALTY < same:
            continue
        for j in range(J):
            n, k = base + j, base + mirror[j]
            if j < mirror[j]:
                for a in range(2):
                    z[t, n, c, a], z[t, k, c, a] = z[t, k, c, a], z[t, n, c, a]
                var[t, n, c], var[t, k, c] = var[t, k, c], var[t, n, c]
                observed[t, n, c], observed[t, k, c] = observed[t, k, c], observed[t, n, c]


#: Most children of one joint that :func:`children` lists (the nose has four: eyes and ears).
MAX_CHILDREN = 6


@njit(**JIT)
def children(parent, base, J):
    """``(J, MAX_CHILDREN)`` the local indices of each joint's children among points
    ``base : base + J`` (-1: none)."""
    kids = np.full((J, MAX_CHILDREN), -1, np.int64)
    for k in range(J):
        p = parent[base + k] - base
        if parent[base + k] >= 0:
            for i in range(MAX_CHILDREN):
                if kids[p, i] < 0:
                    kids[p, i] = k
                    break
    return kids


@njit(**JIT)
def first_used(used):
    """The first camera ``used`` marks (-1: none)."""
    for c in range(used.shape[0]):
        if used[c]:
            return c
    return -1


@njit(**JIT)
def branch_work():
    """Scratch of :func:`choose_branch`."""
    return np.empty((3, 3)), np.empty((3, 1)), np.empty(3), np.empty((6, 6)), np.empty((6, 6))


@njit(**JIT)
def branch_cost(h, j, base, t, held, ev, bone_sigma, L3, b3):
    """:func:`mocap.track.filter_people.branch_cost` of one joint ``j`` placed at ``h (3,)``;
    ``held``: ``(xp, Pp, xq, Pq, kids, cam1, alive)`` (camera-updated and predicted positions and
    covariances, the children table, the cameras, alive before the bones), ``L3``, ``b3``: scratch."""
    xp, Pp, xq, Pq, kids, alive = held[0], held[1], held[2], held[3], held[4], held[6]
    start, bone = ev[3], ev[5]
    cost = 0.0
    if cholesky(Pq[j], L3, 3):
        for i in range(3):
            b3[i, 0] = h[i] - xq[j, i]
        cholesky_solve(L3, b3, 3, 1)
        for i in range(3):
            cost += (h[i] - xq[j, i]) * b3[i, 0]
    for i in range(MAX_CHILDREN):
        k = kids[j, i]
        if k < 0 or not alive[k] or not np.isfinite(start[t, base + k]).all() or not np.isfinite(bone[t, base + k]):
            continue
        d = math.sqrt((h[0] - xp[k, 0]) ** 2 + (h[1] - xp[k, 1]) ** 2 + (h[2] - xp[k, 2]) ** 2)
        cost += (d - bone[t, base + k]) ** 2 / (bone_sigma ** 2 + (Pp[k, 0, 0] + Pp[k, 1, 1] + Pp[k, 2, 2]) / 3)
    return cost


@njit(**JIT)
def choose_branch(t, base, j, x, P, held, ev, cams, bone_sigma, scratch):
    """:func:`mocap.track.filter_people.choose_branch` of joint ``j`` (one camera, ``held[5][j]``,
    updated it): where the mirror image of its position across the foot of the perpendicular
    from its parent to that camera's ray scores lower (:func:`branch_cost`), the state and its
    covariance are reflected there. Returns whether they were."""
    L3, b3, r, M, MP = scratch
    xp, cam = held[0], cams[held[5][j]]
    p = ev[4][base + j] - base
    norm = 0.0
    for i in range(3):  # the ray's direction: camera centre -Rᵀt to the joint
        r[i] = x[j, i] + (cam[i] * cam[9] + cam[3 + i] * cam[10] + cam[6 + i] * cam[11])
        norm += r[i] * r[i]
    norm = math.sqrt(norm)
    if not norm > 0:
        return False
    s = 0.0
    for i in range(3):
        r[i] /= norm
        s += (x[j, i] - xp[p, i]) * r[i]
    mirror = np.empty(3)
    for i in range(3):
        mirror[i] = x[j, i] - 2 * s * r[i]
    if not branch_cost(mirror, j, base, t, held, ev, bone_sigma, L3, b3) < branch_cost(
            x[j, :3], j, base, t, held, ev, bone_sigma, L3, b3):
        return False
    M[:, :] = 0.0
    for a in range(3):
        for b in range(3):
            M[a, b] = (1.0 if a == b else 0.0) - 2 * r[a] * r[b]
            M[3 + a, 3 + b] = M[a, b]
    vr = x[j, 3] * r[0] + x[j, 4] * r[1] + x[j, 5] * r[2]
    for i in range(3):
        x[j, i] = mirror[i]
        x[j, 3 + i] -= 2 * vr * r[i]
    for a in range(6):  # P <- M P M (M symmetric)
        for b in range(6):
            acc = 0.0
            for c in range(6):
                acc += M[a, c] * P[j, c, b]
            MP[a, b] = acc
    for a in range(6):
        for b in range(6):
            acc = 0.0
            for c in range(6):
                acc += MP[a, c] * M[c, b]
            P[j, a, b] = acc
    return True


@njit(**JIT)
def hold_bones(t, base, x, P, held, ev, views, cams, bone_sigma, scratch, flipped):
    """The bones of frame ``t`` of the person at points ``base : base + J``: each joint alive
    without a triangulation is held at its bone's length from its parent (the parent as the
    camera update left it), on the likelier side (:func:`choose_branch`) where one camera
    updated it. ``held``: ``(xp, Pp, xq, Pq, kids, cam1, alive)``; ``flipped (J,)``: set where the
    state was reflected to the other side (the smoother must not link across it)."""
    start, parent, bone = ev[3], ev[4], ev[5]
    xp, Pp, alive_pre = held[0], held[1], held[6]
    flipped[:] = False
    for j in range(xp.shape[0]):
        n, p = base + j, parent[base + j]
        if (alive_pre[j] and not np.isfinite(start[t, n]).all() and np.isfinite(bone[t, n]) and p >= 0
                and alive_pre[p - base]):
            if views[t, n] == 1:
                flipped[j] = choose_branch(t, base, j, x, P, held, ev, cams, bone_sigma, scratch)
            bone_update_point(x[j], P[j], xp[p - base], Pp[p - base], bone[t, n], bone_sigma)
            for i in range(MAX_CHILDREN):  # and at its children's bones' lengths from those triangulated
                k = held[4][j, i]
                if k >= 0 and alive_pre[k] and np.isfinite(start[t, base + k]).all() and np.isfinite(bone[t, base + k]):
                    bone_update_point(x[j], P[j], xp[k], Pp[k], bone[t, base + k], bone_sigma)


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
def forward_kernel(lo, hi, J, ev, cams, F, Q, weights, settings, out, mirror):
    """The forward pass of people ``lo:hi`` over the whole take: :func:`filter_frames` from
    empty filters (:func:`mocap.track.filter_people.forward_filter` point by point)."""
    N = ev[0].shape[1]
    state = (np.zeros((N, 6)), np.zeros((N, 6, 6)), np.zeros(N, np.bool_), np.zeros(N, np.int64),
             np.zeros(N, np.int64))
    filter_frames(lo, hi, J, ev, cams, F, Q, weights, settings, out, mirror, state)
    return None


@njit(**JIT)
def filter_frames(lo, hi, J, ev, cams, F, Q, weights, settings, out, mirror, state):
    """The UKF's frame loop for people ``lo:hi`` (points ``J lo : J hi``, parents within a
    person) over the frames of ``ev``, each point's filter carried in ``state = (x (N, 6),
    P (N, 6, 6), alive (N,), last (N,), strikes (N,))`` (in place; ``last`` in frames from
    ``ev``'s first, the caller shifts it between calls). One pass over the take
    (:func:`forward_kernel`), a chunk of a long take
    (:class:`mocap.runtime.smooth_chunks.ChunkedFilter`) and one live frame
    (:class:`mocap.track.online.OnlineTracker`) all run this loop. ``ev``: ``(z, var, observed,
    start, parent, bone)``; ``Q (N, 6, 6)`` per point; ``weights``: ``(wm, wc, lam)``;
    ``settings``: ``(gate, max_gap frames, restart_m, restart_frames, bone_sigma_m,
    start_velocity_sigma, odd bone fraction)``; ``out``: ``(xs, Ps, linked, views)`` written in
    place; ``mirror (J,)``: each joint's left/right twin (itself: none), whose views are
    relabelled where the exchanged labels are likelier (:func:`swap_views`; ``ev``'s keypoints
    in place)."""
    z, var, observed, start, parent, bone = ev
    xs, Ps, linked, views = out
    x_all, P_all, alive_all, last_all, strikes_all = state
    wm, wc, lam = weights
    gate, max_gap, restart_m, restart_frames, bone_sigma, v0, odd_bone = settings
    T, C = z.shape[0], z.shape[2]
    work = update_work(C)
    xp, Pp = np.zeros((J, 3)), np.zeros((J, 3, 3))
    alive_pre = np.zeros(J, np.bool_)
    y6, FP6 = np.empty(6), np.empty((6, 6))
    xq, Pq, cam1, scratch = np.zeros((J, 3)), np.zeros((J, 3, 3)), np.zeros(J, np.int64), branch_work()
    pred, pok, flipped = np.zeros((J, C, 5)), np.zeros((J, C), np.bool_), np.zeros(J, np.bool_)
    for g in range(lo, hi):
        base = g * J
        kids = children(parent, base, J)
        x, P = x_all[base:base + J], P_all[base:base + J]
        alive, last, strikes = alive_all[base:base + J], last_all[base:base + J], strikes_all[base:base + J]
        for t in range(T):
            for j in range(J):
                alive[j] = alive[j] and t - last[j] <= max_gap + 1
                if alive[j]:
                    predict_point(x[j], P[j], F, Q[base + j], y6, FP6)
            swap_views(t, base, x, P, alive, mirror, ev, cams, weights, gate, work, pred, pok)
            for j in range(J):
                n = base + j
                if alive[j]:
                    xq[j], Pq[j] = x[j, :3], P[j, :3, :3]
                    if observed[t, n].any():
                        views[t, n] = ukf_update_point(x[j], P[j], z[t, n], var[t, n], observed[t, n], cams, wm,
                                                       wc, lam, gate, work)
                        cam1[j] = first_used(work[2])
                xp[j], Pp[j] = x[j, :3], P[j, :3, :3]
            alive_pre[:] = alive
            hold_bones(t, base, x, P, (xp, Pp, xq, Pq, kids, cam1, alive_pre), ev, views, cams, bone_sigma, scratch,
                       flipped)
            for j in range(J):
                restart_point(t, base + j, j, x, P, alive, last, strikes, ev, settings, out, v0, xp, alive_pre, base)
                # a reflected state is no Gaussian step from the previous frame: no RTS across it
                linked[t, base + j] = linked[t, base + j] and not flipped[j]
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
def backward_chunk_kernel(lo, hi, xs, Ps, F, Q, linked, carry, positions, sd):
    """The RTS pass over one chunk's frames for points ``lo:hi``: as
    :func:`smooth_window` over the take, the chunk's last frame smoothed
    with ``carry = (x (N, 6), P (N, 6, 6), linked (N,))``, the smoothed state of the frame after
    the chunk and whether that frame continues the run (False: none, the take's end);
    ``positions (n, N, 3)``, ``sd (n, N)`` written and ``carry`` set to this chunk's first frame."""
    n = xs.shape[0]
    x_next, P_next, linked_next = carry
    sm, Psm = np.empty((n, 6)), np.empty((n, 6, 6))
    work = (np.empty((6, 6)), np.empty((6, 6)), np.empty((6, 6)), np.empty((6, 6)), np.empty(6))
    for p in range(lo, hi):
        for t in range(n - 1, -1, -1):
            follows = linked[t + 1, p] if t + 1 < n else linked_next[p]
            if follows and np.isfinite(xs[t, p]).all():
                if t + 1 < n:
                    smooth_step(xs[t, p], Ps[t, p], sm[t + 1], Psm[t + 1], F, Q[p], sm[t], Psm[t], work)
                else:
                    smooth_step(xs[t, p], Ps[t, p], x_next[p], P_next[p], F, Q[p], sm[t], Psm[t], work)
            else:
                sm[t], Psm[t] = xs[t, p], Ps[t, p]
        for t in range(n):
            positions[t, p], sd[t, p] = sm[t, :3], largest_sd(Psm[t])
        if n:
            x_next[p], P_next[p], linked_next[p] = sm[0], Psm[0], linked[0, p]
    return None
