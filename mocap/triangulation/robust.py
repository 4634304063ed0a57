"""Robust triangulation: outlier views rejected in bounded time, batched over all points.

Per point (all points at once, no per-point Python loop):

1. Confidence-weighted DLT over every observed view. If every view reprojects within
   ``threshold_px`` the point is accepted as is (early exit: most points of a clean frame stop here).
2. The other points run RANSAC over *pairs* of views (the two-ray midpoint, closed form): pairs
   in a fixed shuffled order, a few at a time, with the adaptive early exit of Fischler & Bolles,
   never more than ``max_hypotheses`` pairs, so the work is at most
   ``O(points x hypotheses x cameras)`` whatever the outlier rate. Each hypothesis is scored by
   the confidence-weighted truncated squared reprojection error over all views, in units of
   each view's threshold (MSAC, Torr & Zisserman 2000); the best one's views within ``threshold_px`` are the inliers.
   The weighted DLT is refitted on them and the inliers re-read once (a local-optimisation step).
3. Optional Gauss–Newton refinement of the confidence-weighted reprojection error (Huber loss,
   a fixed number of iterations) on the inlier views.
4. Optional left/right check per limb: a view whose left and right joints of a limb fit the 3D
   limb much better exchanged than as labelled is relabelled, and those points are solved again.
"""

from __future__ import annotations

import logging
from itertools import combinations

import numpy as np

from mocap.triangulation._cameras import CameraArrays, normalized_error_px, project_normalized, world_to_cam
from mocap.triangulation.dlt import (
    Triangulation, _Parts, assemble, check_common, dlt_normalized, finish_chunk, homogeneous_to_world, prepare,
)

log = logging.getLogger(__name__)

#: Limb groups for the left/right check: joints of one group swap together in a view.
LIMB_GROUPS: dict[str, tuple[str, ...]] = {
    "arm": ("shoulder", "elbow", "wrist", "pinky", "index", "thumb"),
    "leg": ("hip", "knee", "ankle", "heel", "big_toe", "small_toe", "foot_index"),
    "face": ("eye", "ear", "eye_inner", "eye_outer"),
}

def left_right_limbs(joint_names) -> list[list[tuple[int, int]]]:
    """Index pairs ``(left, right)`` of the joints named in ``joint_names``, one list per limb."""
    names = list(joint_names)
    limbs = []
    for parts in LIMB_GROUPS.values():
        pairs = [(names.index(f"left_{p}"), names.index(f"right_{p}")) for p in parts
                 if f"left_{p}" in names and f"right_{p}" in names]
        if pairs:
            limbs.append(pairs)
    return limbs


def view_pairs(num_cameras: int, max_hypotheses: int, seed: int = 0) -> np.ndarray:
    """``(H, 2)`` camera pairs in a fixed shuffled order, at most ``max_hypotheses`` of them."""
    pairs = np.array(list(combinations(range(num_cameras), 2)), dtype=np.int64).reshape(-1, 2)
    order = np.random.default_rng(seed).permutation(len(pairs))
    return pairs[order[:max_hypotheses]]


def _midpoints(cams: CameraArrays, xyn: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-ray midpoints ``(N, H, 3)`` and a validity mask ``(N, H)`` (rays not parallel, in front)."""
    d_cam = np.concatenate([xyn, np.ones(xyn.shape[:-1] + (1,))], axis=-1)
    d = np.einsum("cji,ncj->nci", cams.R, d_cam)  # world directions R^T d
    c = cams.centers
    d1, d2 = d[:, pairs[:, 0]], d[:, pairs[:, 1]]
    b = c[pairs[:, 1]] - c[pairs[:, 0]]
    a, bb, cc = (d1 * d1).sum(-1), (d1 * d2).sum(-1), (d2 * d2).sum(-1)
    p, q = (d1 * b).sum(-1), (d2 * b).sum(-1)
    den = a * cc - bb * bb
    ok = den > 1e-10 * a * cc  # rays within ~1e-5 rad of parallel give no depth
    den = np.where(ok, den, 1.0)
    s = (p * cc - bb * q) / den
    u = (bb * p - a * q) / den
    ok &= (s > 0) & (u > 0)
    X = 0.5 * (c[pairs[:, 0]] + s[..., None] * d1 + c[pairs[:, 1]] + u[..., None] * d2)
    return X, ok


def _score_pairs(cams, xyn, weight, valid, pairs, tau):
    """Score pair hypotheses ``(N, H)`` (MSAC cost, inf if unusable) and their inliers ``(N, H, C)``;
    ``tau (N, C)`` is the outlier threshold of each observation in pixels."""
    X, ok = _midpoints(cams, xyn, pairs)
    ok &= valid[:, pairs[:, 0]] & valid[:, pairs[:, 1]]
    xp, z = project_normalized(cams, X)  # (N, H, C, 2)
    err = normalized_error_px(cams, xp, xyn[:, None])
    err = np.where((z > 0) & np.isfinite(err), err, np.inf)
    tau = tau[:, None]
    # Truncated squared error in units of each view's threshold, so that an outlier costs its
    # confidence whatever that view's threshold is.
    cost = np.where(valid[:, None], weight[:, None] * np.minimum(np.square(err / tau), 1.0), 0.0).sum(-1)
    inl = valid[:, None] & (err < tau)
    # A pair whose rays miss each other by more than the threshold supports nothing, not even
    # itself: with two views of which one is wrong the point is left out rather than guessed.
    ok &= inl.sum(-1) >= 2
    return np.where(ok, cost, np.inf), inl & ok[..., None]


def _ransac_pairs(cams, xyn, weight, valid, pairs, tau, batch=4, confidence=0.99):
    """Adaptive RANSAC over view pairs with early exit -> inlier views ``(N, C)``.

    Pairs are tried ``batch`` at a time; a point stops as soon as the chance that none of the
    pairs it tried was outlier-free, given the inlier ratio of its best hypothesis, is below
    ``1 - confidence`` (Fischler & Bolles; Hartley & Zisserman 4.7.1). A point whose best
    hypothesis explains every view stops after its first usable pair.
    """
    N = len(xyn)
    best_cost = np.full(N, np.inf)
    best_inl = np.zeros(valid.shape, bool)
    tried = np.zeros(N)
    n_valid = valid.sum(-1).astype(float)
    live = np.arange(N)
    for s in range(0, len(pairs), batch):
        pb = pairs[s : s + batch]
        cost, inl = _score_pairs(cams, xyn[live], weight[live], valid[live], pb, tau[live])
        h = np.argmin(cost, axis=1)
        c = cost[np.arange(len(live)), h]
        better = c < best_cost[live]
        best_cost[live[better]] = c[better]
        best_inl[live[better]] = inl[np.arange(len(live)), h][better]
        tried[live] += (valid[live][:, pb[:, 0]] & valid[live][:, pb[:, 1]]).sum(-1)
        k = best_inl[live].sum(-1)
        n = n_valid[live]
        p_good = np.where(n >= 2, k * (k - 1) / np.maximum(n * (n - 1), 1), 0.0)
        with np.errstate(divide="ignore"):
            miss = np.where(p_good >= 1, 0.0, (1 - np.minimum(p_good, 1)) ** tried[live])
        live = live[(miss >= 1 - confidence) | ~np.isfinite(best_cost[live])]
        if not live.size:
            break
    return best_inl


def _dlt_inliers(cams, xyn, weight, inl, tau, valid):
    """Refit the weighted DLT on ``inl`` and re-read the inliers; returns ``(points, inliers)``."""
    X = homogeneous_to_world(cams, dlt_normalized(cams.Pn, xyn, np.where(inl, weight, 0.0)))
    xp, z = project_normalized(cams, X)
    err = normalized_error_px(cams, xp, xyn)
    new = valid & (z > 0) & (err < tau)
    # Without a supported hypothesis (fewer than two inliers) the refit is meaningless.
    keep = (new.sum(-1) >= 2) & (inl.sum(-1) >= 2)
    used = np.where(keep[:, None], new, inl)
    changed = np.flatnonzero((used != inl).any(-1))
    if changed.size:  # the estimate must come from exactly the views reported as used
        w = np.where(used[changed], weight[changed], 0.0)
        X[changed] = homogeneous_to_world(cams, dlt_normalized(cams.Pn, xyn[changed], w))
    return X, used


def _gauss_newton(cams, X, xyn, weight, used, huber_px, iterations):
    """Minimise sum_c w_c^2 huber(|r_c|) of undistorted pixel residuals; ``X (N, 3)`` updated."""
    A = cams.K[:, :2, :2]
    X = X.copy()
    for _ in range(iterations):
        pc = world_to_cam(cams, X)
        z = pc[..., 2]
        front = z > 1e-9
        inv_z = 1.0 / np.where(front, z, 1.0)
        xn = pc[..., :2] * inv_z[..., None]
        r = np.einsum("cij,ncj->nci", A, xn - xyn)  # (N, C, 2) pixels
        e = np.sqrt((r * r).sum(-1))
        h = np.where(e <= huber_px, 1.0, huber_px / np.maximum(e, 1e-300))  # IRLS weight of Huber
        W = np.where(used & front, weight * weight * h, 0.0)
        d_cam = np.zeros(pc.shape[:-1] + (2, 3))
        d_cam[..., 0, 0] = inv_z
        d_cam[..., 1, 1] = inv_z
        d_cam[..., :, 2] = -xn * inv_z[..., None]
        J = A @ (d_cam @ cams.R)  # (N, C, 2, 3)
        JW = J * W[..., None, None]
        H = np.einsum("ncki,nckj->nij", JW, J)
        g = np.einsum("ncki,nck->ni", JW, r)
        ok = (used & front).sum(-1) >= 2
        ok &= np.isfinite(H).all(axis=(1, 2)) & np.isfinite(g).all(-1) & np.isfinite(X).all(-1)
        H[~ok] = np.eye(3)
        g[~ok] = 0.0
        # Levenberg-style damping relative to the diagonal keeps near-degenerate points stable.
        H = H + 1e-9 * np.trace(H, axis1=1, axis2=2)[:, None, None] * np.eye(3)
        X -= np.linalg.solve(H, g[..., None])[..., 0]
    return X


def _robust_core(cams, xyn, weight, valid, tau, *, pairs, refine, refine_iterations):
    """Steps 1-3 on flat arrays ``(N, C, ...)``; returns ``(points (N, 3), used (N, C))``."""
    X = homogeneous_to_world(cams, dlt_normalized(cams.Pn, xyn, weight))
    xp, z = project_normalized(cams, X)
    err = normalized_error_px(cams, xp, xyn)
    used = valid & (z > 0) & (err < tau)
    todo = np.flatnonzero((used != valid).any(-1) & (valid.sum(-1) >= 2))
    if todo.size:
        inl = _ransac_pairs(cams, xyn[todo], weight[todo], valid[todo], pairs, tau[todo])
        X[todo], used[todo] = _dlt_inliers(cams, xyn[todo], weight[todo], inl, tau[todo], valid[todo])
    if refine:
        X = _gauss_newton(cams, X, xyn, weight, used, 0.5 * tau, refine_iterations)
    return X, used


def _swap_views(cams, J, limbs, X, arrays):
    """Left/right check on one chunk of ``M * J`` points.

    Decides per limb and view whether the labelled left and right joints fit the current 3D limb
    much better exchanged (and the labelled ones fit badly), and exchanges them in ``arrays``
    ``[xy_px, xyn, weight, valid, tau]`` (each ``(M * J, C, ...)``, modified in place). Returns the
    flat indices of points to solve again.
    """
    C = cams.num_cameras
    xyn, valid = arrays[1].reshape(-1, J, C, 2), arrays[3].reshape(-1, J, C)
    Xj = X.reshape(-1, J, 3)
    tau = arrays[4].reshape(-1, J, C)
    views = [a.reshape((-1, J) + a.shape[1:]) for a in arrays]
    redo = np.zeros(Xj.shape[:2], bool)
    for pairs in limbs:
        L, R = np.array(pairs).T
        xp_l, _ = project_normalized(cams, Xj[:, L])  # (M, G, C, 2)
        xp_r, _ = project_normalized(cams, Xj[:, R])
        both = valid[:, L] & valid[:, R] & np.isfinite(xp_l).all(-1) & np.isfinite(xp_r).all(-1)
        tau2 = (0.5 * (tau[:, L] + tau[:, R])) ** 2  # (M, G, C)

        def cost(a, b):
            e = normalized_error_px(cams, a, b)
            return np.where(both, np.minimum(np.where(np.isfinite(e), e * e, tau2), tau2), 0.0)

        keep_l, keep_r = cost(xp_l, xyn[:, L]), cost(xp_r, xyn[:, R])
        swap = (cost(xp_l, xyn[:, R]) + cost(xp_r, xyn[:, L])).sum(1)  # (M, C)
        keep = (keep_l + keep_r).sum(1)
        # Only views that fail as labelled are candidates: a swap must explain an outlier.
        flip = (swap < 0.5 * keep) & (np.maximum(keep_l, keep_r) >= 0.999 * tau2).any(1)
        if not flip.any():
            continue
        m, c = np.nonzero(flip)
        mi, ci = m[:, None], c[:, None]
        for a in views:
            a_l = a[mi, L[None], ci].copy()
            a[mi, L[None], ci] = a[mi, R[None], ci]
            a[mi, R[None], ci] = a_l
        redo[mi, L[None]] = True
        redo[mi, R[None]] = True
        log.debug("left/right check: %d limb views relabelled", len(m))
    return np.flatnonzero(redo.ravel())


def triangulate_robust(cameras, xy_px, weight=None, *, threshold_px=15.0, max_hypotheses: int = 64,
                       refine: bool = False, refine_iterations: int = 2, limbs=None, undistort: bool = True,
                       min_views: int = 2, sigma_px: float | None = None, seed: int = 0) -> Triangulation:
    """Triangulation with outlier views rejected, in time bounded by ``max_hypotheses``.

    Args:
        cameras: a :class:`~mocap.geometry.Rig` (or list of cameras), or bare ``P (C, 3, 4)``.
        xy_px: ``(..., C, 2)`` pixels (distorted, as detected), NaN where a view is missing. With
            ``limbs`` the last leading axis must be the joints: ``(..., J, C, 2)``.
        weight: ``(..., C)`` confidences (inverse noise; 0 or NaN = missing). None: all 1.
        threshold_px: a view reprojecting farther than this (undistorted pixels) is an outlier;
            a scalar or ``(..., C)`` per observation (e.g. scaled with the person's size in view).
        max_hypotheses: at most this many view pairs are tried per point (bounds the time).
        refine: run ``refine_iterations`` Gauss–Newton steps on the reprojection error (Huber).
        limbs: ``[[(left_j, right_j), ...], ...]`` joint index pairs per limb (see
            :func:`left_right_limbs`) to check for left/right swaps per view; None: no check.
        undistort: undistort first (off only for already undistorted pixels).
        min_views: points with fewer inlier views are NaN.
        sigma_px: 2D noise (px) of a weight-1 observation; when given, ``covariance`` is computed.
        seed: the order in which view pairs are tried.

    Returns:
        :class:`Triangulation`; ``inliers`` are the views kept, ``reproj_error_px`` covers all
        views and is measured against the relabelled observations where the left/right check
        exchanged them.
    """
    check_common(min_views, sigma_px)
    if max_hypotheses < 1:
        raise ValueError(f"max_hypotheses: must be >= 1, got {max_hypotheses}")
    obs = prepare(cameras, xy_px, weight, undistort)
    J = 1
    if limbs:
        if len(obs.lead_shape) < 1:
            raise ValueError("limbs: the left/right check needs xy_px shaped (..., J, C, 2)")
        J = obs.lead_shape[-1]
        idx = [j for pairs in limbs for pair in pairs for j in pair]
        if min(idx) < 0 or max(idx) >= J:
            raise ValueError(f"limbs: joint indices must be in [0, {J}) (axis -3 of xy_px), got {sorted(set(idx))}")
    C = obs.cams.num_cameras
    try:
        tau = np.broadcast_to(np.asarray(threshold_px, dtype=np.float64), obs.lead_shape + (C,)).reshape(-1, C)
    except ValueError:
        raise ValueError(f"threshold_px: expected a scalar or shape {obs.lead_shape + (C,)}, "
                         f"got {np.shape(threshold_px)}") from None
    if not (np.isfinite(tau).all() and (tau > 0).all()):
        raise ValueError("threshold_px: must be finite and > 0 pixels")
    pairs = view_pairs(C, max_hypotheses, seed)
    opts = dict(pairs=pairs, refine=refine, refine_iterations=refine_iterations)
    parts = _Parts()
    for sl in obs.chunks(multiple=J):
        xyn, w, valid = obs.normalized(sl)
        t = tau[sl]
        X, used = _robust_core(obs.cams, xyn, w, valid, t, **opts)
        xy = obs.xy_px[sl]
        if limbs:
            xy, t = xy.copy(), t.copy()
            redo = _swap_views(obs.cams, J, limbs, X, [xy, xyn, w, valid, t])
            if redo.size:
                X[redo], used[redo] = _robust_core(obs.cams, xyn[redo], w[redo], valid[redo], t[redo], **opts)
        finish_chunk(parts, obs, xy, w, valid, X, used, min_views, sigma_px)
    return assemble(obs, parts, sigma_px is not None)
