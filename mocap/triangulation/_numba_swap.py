"""Compiled left/right check of ``_left_right`` (numba backend, internal): the per-view limb
scoring of ``_left_right.swap_flags``, the relabelling of ``_left_right.swap_views``, the limbs
left out by ``_left_right.drop_misfits`` and the temporal reference of
``_left_right.temporal_reference``, same rules (:mod:`.rules`), decisions and values. Arrays are
``(C, n)`` with ``n = M J`` points (``M`` frames or people of ``J`` joints); pair ``p`` is joints
``L[p], R[p]`` of limb ``limb[p]`` (pairs of a limb adjacent, every joint in at most one pair).
Blocks of frames on threads (``run_blocks``)."""

from __future__ import annotations

import numpy as np
from numba import njit

from mocap.triangulation._numba_kernels import JIT, run_blocks

#: Frames per block at least.
FRAME_BLOCK = 4


@njit(**JIT)
def _project(KRt, r, X0, X1, X2):
    """Undistorted pixel of world point ``X`` in the camera of rows ``r..r+2`` of ``KRt``; NaN at or behind it."""
    a = KRt[r, 0] * X0 + KRt[r, 1] * X1 + KRt[r, 2] * X2 + KRt[r, 3]
    b = KRt[r + 1, 0] * X0 + KRt[r + 1, 1] * X1 + KRt[r + 1, 2] * X2 + KRt[r + 1, 3]
    z = KRt[r + 2, 0] * X0 + KRt[r + 2, 1] * X1 + KRt[r + 2, 2] * X2 + KRt[r + 2, 3]
    if not z > 0:
        return np.nan, np.nan
    inv_z = 1.0 / z
    return a * inv_z, b * inv_z


@njit(**JIT)
def _trunc(du, dv, t2):
    """``np.fmin(du^2 + dv^2, t2)`` (NaN -> ``t2``)."""
    e = du * du + dv * dv
    return e if e < t2 else t2


@njit(**JIT)
def _limb_flags(KRt, X, pu, pv, valid, tau, J, L, R, limb, m, rules, flip):
    """``flip (C, limbs)``: the left/right decision for every view and limb of frame ``m``."""
    C = pu.shape[0]
    P = L.shape[0]
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
                fails = fails or max(kl, kr) >= rules.swap_fails * t2
            if p == P - 1 or limb[p + 1] != limb[p]:  # last pair of its limb
                flip[c, limb[p]] = swap < rules.swap_gain * keep and fails
                swap = 0.0
                keep = 0.0
                fails = False


def swap_flags_kernel(KRt, X, pu, pv, valid, tau, J, L, R, limb, n_limbs, rules):
    """The left/right decision of ``_left_right.swap_flags`` -> ``flip (C, M, n_limbs)`` for
    points ``X (3, n)`` and observations ``(C, n)``."""
    M = X.shape[1] // J
    flip = np.zeros((M, pu.shape[0], n_limbs), np.bool_)
    run_blocks(_flags_range, M, KRt, X, pu, pv, valid, tau, J, L, R, limb, rules, flip, min_block=FRAME_BLOCK)
    return flip.transpose(1, 0, 2)


@njit(**JIT)
def _flags_range(lo, hi, KRt, X, pu, pv, valid, tau, J, L, R, limb, rules, flip):
    for m in range(lo, hi):
        _limb_flags(KRt, X, pu, pv, valid, tau, J, L, R, limb, m, rules, flip[m])


@njit(**JIT)
def _swap(a, c, j1, j2):
    t = a[c, j1]
    a[c, j1] = a[c, j2]
    a[c, j2] = t


def swap_views_kernel(KRt, X, J, L, R, limb, n_limbs, u, v, x, y, pu, pv, w, valid, tau, tau2, rules):
    """``_left_right.swap_views``: decide every view and limb (:func:`swap_flags_kernel`) and
    exchange the left and right joints of the flipped ones in ``u, v, x, y, pu, pv, w, valid,
    tau, tau2`` (each ``(C, n)``, in place). Returns ``redo (n,)``, the points to solve again,
    and the number of limb views relabelled."""
    M = X.shape[1] // J
    redo = np.zeros(X.shape[1], np.bool_)
    flips = np.zeros(M, np.int64)
    run_blocks(_swap_range, M, KRt, X, J, L, R, limb, n_limbs, u, v, x, y, pu, pv, w, valid, tau, tau2, rules,
               redo, flips, min_block=FRAME_BLOCK)
    return redo, int(flips.sum())


@njit(**JIT)
def _swap_range(lo, hi, KRt, X, J, L, R, limb, n_limbs, u, v, x, y, pu, pv, w, valid, tau, tau2, rules, redo, flips):
    C = pu.shape[0]
    P = L.shape[0]
    flip = np.zeros((C, n_limbs), np.bool_)
    for m in range(lo, hi):
        _limb_flags(KRt, X, pu, pv, valid, tau, J, L, R, limb, m, rules, flip)
        for c in range(C):
            for q in range(n_limbs):
                flips[m] += flip[c, q]
            for p in range(P):
                if flip[c, limb[p]]:
                    jl, jr = m * J + L[p], m * J + R[p]
                    _swap(u, c, jl, jr)
                    _swap(v, c, jl, jr)
                    _swap(x, c, jl, jr)
                    _swap(y, c, jl, jr)
                    _swap(pu, c, jl, jr)
                    _swap(pv, c, jl, jr)
                    _swap(w, c, jl, jr)
                    _swap(valid, c, jl, jr)
                    _swap(tau, c, jl, jr)
                    _swap(tau2, c, jl, jr)
                    redo[jl] = redo[jr] = True


def drop_misfits_kernel(KRt, X, J, L, R, limb, n_limbs, pu, pv, w, valid, tau, rules):
    """``_left_right.drop_misfits``: every view's limb that misses the final points ``X (3, n)``
    (``_left_right.misfit_flags``, same rule and decisions) is taken out of ``w`` and ``valid``
    (``(C, n)``, in place). Returns ``removed (C, n)``, the observations taken out, and the number
    of limb views left out."""
    M = X.shape[1] // J
    removed = np.zeros(pu.shape, np.bool_)
    drops = np.zeros(M, np.int64)
    run_blocks(_misfit_range, M, KRt, X, J, L, R, limb, n_limbs, pu, pv, w, valid, tau, rules, removed, drops,
               min_block=FRAME_BLOCK)
    return removed, int(drops.sum())


@njit(**JIT)
def _misfit_range(lo, hi, KRt, X, J, L, R, limb, n_limbs, pu, pv, w, valid, tau, rules, removed, drops):
    C = pu.shape[0]
    P = L.shape[0]
    far = np.zeros((C, n_limbs), np.int64)
    seen = np.zeros((C, n_limbs), np.int64)
    k2 = rules.limb_misfit_tau * rules.limb_misfit_tau
    for m in range(lo, hi):
        far[:] = 0
        seen[:] = 0
        for c in range(C):
            r = 3 * c
            for p in range(P):
                jl, jr = m * J + L[p], m * J + R[p]
                qlu, qlv = _project(KRt, r, X[0, jl], X[1, jl], X[2, jl])
                qru, qrv = _project(KRt, r, X[0, jr], X[1, jr], X[2, jr])
                if valid[c, jl] and valid[c, jr] and np.isfinite(qlu + qru):
                    t2 = 0.999 * k2 * (0.5 * (tau[c, jl] + tau[c, jr])) ** 2
                    dl = (qlu - pu[c, jl]) ** 2 + (qlv - pv[c, jl]) ** 2
                    dr = (qru - pu[c, jr]) ** 2 + (qrv - pv[c, jr]) ** 2
                    seen[c, limb[p]] += 2
                    far[c, limb[p]] += (not dl < t2) + (not dr < t2)  # NaN: far
        for q in range(n_limbs):
            fitting = 0
            for c in range(C):
                if seen[c, q] > 0 and not far[c, q] >= rules.limb_misfit * seen[c, q]:
                    fitting += 1
            if fitting < rules.limb_fitting_views:
                continue
            for c in range(C):
                if seen[c, q] > 0 and far[c, q] >= rules.limb_misfit * seen[c, q]:
                    drops[m] += 1
                    for p in range(P):
                        if limb[p] == q:
                            jl, jr = m * J + L[p], m * J + R[p]
                            w[c, jl] = w[c, jr] = 0.0
                            valid[c, jl] = valid[c, jr] = False
                            removed[c, jl] = removed[c, jr] = True


def temporal_reference_kernel(X, T, offsets):
    """``_left_right.temporal_reference`` of points ``X (3, N)`` with ``N = T R`` (frames first):
    per coordinate the median of frames ``t + offsets`` (at most four) over the finite ones;
    NaN where there is none."""
    out = np.empty((3, X.shape[1]))
    run_blocks(_median_range, T, X, T, offsets, out, min_block=FRAME_BLOCK)
    return out


@njit(**JIT)
def _median_range(lo, hi, X, T, offsets, out):
    Rn = X.shape[1] // T
    vals = np.empty(offsets.shape[0])
    for t in range(lo, hi):
        for r in range(Rn):
            for a in range(3):
                k = 0
                for d in offsets:
                    s = t + d
                    if s < 0 or s >= T:
                        continue
                    val = X[a, s * Rn + r]
                    if not np.isfinite(val):
                        continue
                    j = k  # insertion into the sorted vals[:k]
                    while j > 0 and vals[j - 1] > val:
                        vals[j] = vals[j - 1]
                        j -= 1
                    vals[j] = val
                    k += 1
                out[a, t * Rn + r] = np.nan if k == 0 else 0.5 * (vals[(k - 1) // 2] + vals[k // 2])
