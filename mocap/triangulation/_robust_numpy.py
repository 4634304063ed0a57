"""The numpy path of ``robust.py`` steps 1-3 (internal): all-view DLT with early exit, RANSAC
over view pairs, the inlier refit, the resume of relabelled points and Gauss–Newton refinement,
batched over the ``(C, n)`` arrays of a chunk (see the method in ``robust.py``). The numba
backend's twin of steps 1-2 is ``_numba_steps``; the rules of both are in :mod:`.rules`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mocap.triangulation._cameras import CameraArrays, cam_from_world, squared_error_px
from mocap.triangulation.dlt import dlt_world, normal_matrices, solve_normal
from mocap.triangulation.rules import (
    MAJORITY_MIN_INLIERS, MIN_DEPTH, MIN_VIEWS, PARALLEL_RAYS, RANSAC_BATCH, RANSAC_CONFIDENCE, STEP1_MAX_ITERATIONS,
    STEP1_TOLERANCE, TAIL_HYPOTHESES,
)


class Views(NamedTuple):
    """Observations of ``n`` points as ``(C, n)`` arrays: normalised ``x, y`` and undistorted
    pixels ``pu, pv`` (0 where invalid), ``weight`` (0 where invalid), ``valid`` and the squared
    outlier threshold ``tau2`` px^2."""

    x: np.ndarray
    y: np.ndarray
    pu: np.ndarray
    pv: np.ndarray
    weight: np.ndarray
    valid: np.ndarray
    tau2: np.ndarray

    def take(self, idx: np.ndarray) -> "Views":
        return Views(*(a[:, idx] for a in self))


class Detections(NamedTuple):
    """A chunk's observations as detected, ``(C, n)`` each: distorted pixels ``u, v`` and outlier
    thresholds ``tau`` px (copies that the left/right check relabels together with the views)."""

    u: np.ndarray
    v: np.ndarray
    tau: np.ndarray


def majority_final(k: np.ndarray, n_valid: np.ndarray) -> np.ndarray:
    """Whether ``k`` inlier views of ``n_valid`` are a final consensus: a strict majority and at
    least :data:`~.rules.MAJORITY_MIN_INLIERS` (no other consensus set can outvote it)."""
    return (2 * k > n_valid) & (k >= MAJORITY_MIN_INLIERS)


def rays(cams: CameraArrays, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """World directions ``(C, 3, n)`` of the rays through normalised points ``x, y (C, n)``."""
    Rt = cams.R.transpose(0, 2, 1)  # world direction of (x, y, 1) is R^T (x, y, 1)
    return Rt[:, :, 0, None] * x[:, None] + Rt[:, :, 1, None] * y[:, None] + Rt[:, :, 2, None]


def midpoints(cams: CameraArrays, d: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-ray midpoints ``(H, 3, n)`` and a validity mask ``(H, n)`` (rays not parallel, in
    front) for ray directions ``d (C, 3, n)`` (see :func:`rays`) and camera ``pairs (H, 2)``."""
    c = cams.centers[:, :, None]
    i, j = pairs[:, 0], pairs[:, 1]
    d1, d2 = d[i], d[j]
    b = c[j] - c[i]
    a, bb, cc = (d1 * d1).sum(1), (d1 * d2).sum(1), (d2 * d2).sum(1)
    p, q = (d1 * b).sum(1), (d2 * b).sum(1)
    den = a * cc - bb * bb
    ok = den > PARALLEL_RAYS * a * cc
    den = np.where(ok, den, 1.0)
    s = (p * cc - bb * q) / den
    u = (bb * p - a * q) / den
    ok &= (s > 0) & (u > 0)
    X = 0.5 * (c[i] + s[:, None] * d1 + c[j] + u[:, None] * d2)
    return X, ok


def score_pairs(cams, obs: Views, d, pairs):
    """Score pair hypotheses ``(H, n)`` (MSAC cost, inf if unusable) and their inliers ``(H, C, n)``;
    ``d (C, 3, n)`` are the rays of ``obs``."""
    X, ok = midpoints(cams, d, pairs)
    ok &= obs.valid[pairs[:, 0]] & obs.valid[pairs[:, 1]]
    # Truncated squared error in units of each view's threshold, so that an outlier costs its
    # confidence whatever that view's threshold is (weight is 0 for invalid views).
    r = squared_error_px(cams, X, obs.pu, obs.pv)  # (H, C, n)
    r /= obs.tau2
    cost = (obs.weight * np.minimum(r, 1.0)).sum(1)
    inl = (r < 1.0) & obs.valid
    # A pair whose rays miss each other by more than the threshold supports nothing, not even
    # itself: with two views of which one is wrong the point is left out rather than guessed.
    ok &= inl.sum(1) >= MIN_VIEWS
    inl &= ok[:, None]
    return np.where(ok, cost, np.inf), inl


def ransac_pairs(cams, obs: Views, pairs, batch=RANSAC_BATCH, confidence=RANSAC_CONFIDENCE):
    """Adaptive RANSAC over view pairs with early exit -> inlier views ``(C, n)``.

    Pairs are tried ``batch`` at a time (all that are left once at most :data:`~.rules.TAIL_HYPOTHESES`
    (point, pair) hypotheses remain); a point stops as soon as the chance that
    none of the pairs it tried was outlier-free, given the inlier ratio of its best hypothesis,
    is below ``1 - confidence`` (Fischler & Bolles; Hartley & Zisserman 4.7.1), or as soon as
    its best hypothesis is final (:func:`majority_final`).
    """
    valid = obs.valid
    n = valid.shape[1]
    best_cost = np.full(n, np.inf)
    best_inl = np.zeros(valid.shape, bool)
    tried = np.zeros(n)
    n_valid = valid.sum(0).astype(float)
    live = np.arange(n)
    sub, d = obs, rays(cams, obs.x, obs.y)  # rays once: each batch only gathers them
    s = 0
    while s < len(pairs):
        size = batch if len(live) * (len(pairs) - s) > TAIL_HYPOTHESES else len(pairs) - s
        pb, s = pairs[s : s + size], s + size
        cost, inl = score_pairs(cams, sub, d, pb)
        h = np.argmin(cost, axis=0)
        cols = np.arange(len(live))
        c = cost[h, cols]
        better = c < best_cost[live]
        best_cost[live[better]] = c[better]
        best_inl[:, live[better]] = inl[h, :, cols][better].T  # (m, C) -> (C, m)
        tried[live] += (sub.valid[pb[:, 0]] & sub.valid[pb[:, 1]]).sum(0)
        k = best_inl[:, live].sum(0)
        nv = n_valid[live]
        p_good = np.where(nv >= 2, k * (k - 1) / np.maximum(nv * (nv - 1), 1), 0.0)  # both views of a pair inliers
        with np.errstate(divide="ignore"):
            miss = np.where(p_good >= 1, 0.0, (1 - np.minimum(p_good, 1)) ** tried[live])
        # A final hypothesis ends the search: the refit in ``dlt_inliers`` recovers inliers it
        # missed. (With three inliers of four the remaining pairs are cheap and, scored by MSAC,
        # pick the better-fitting triple.)
        keep = ((miss >= 1 - confidence) & ~majority_final(k, nv)) | ~np.isfinite(best_cost[live])
        live = live[keep]
        if not live.size:
            break
        idx = np.flatnonzero(keep)
        sub, d = sub.take(idx), d[:, :, idx]
    return best_inl


def within(cams, X, obs: Views) -> np.ndarray:
    """Views of ``obs`` within their threshold of points ``X (3, n)`` -> ``(C, n)``."""
    return obs.valid & (squared_error_px(cams, X, obs.pu, obs.pv) < obs.tau2)


def dlt_inliers(cams, obs: Views, inl) -> tuple[np.ndarray, np.ndarray]:
    """Refit the weighted DLT on ``inl (C, n)`` and re-read the inliers; returns ``(X (3, n), inliers)``."""
    X = dlt_world(cams, obs.x, obs.y, np.where(inl, obs.weight, 0.0))
    new = within(cams, X, obs)
    # Without a supported hypothesis the refit is meaningless.
    keep = (new.sum(0) >= MIN_VIEWS) & (inl.sum(0) >= MIN_VIEWS)
    used = np.where(keep, new, inl)
    changed = np.flatnonzero((used != inl).any(0))
    if changed.size:  # the estimate must come from exactly the views reported as used
        w = np.where(used[:, changed], obs.weight[:, changed], 0.0)
        X[:, changed] = dlt_world(cams, obs.x[:, changed], obs.y[:, changed], w)
    return X, used


def gauss_newton(cams, X, x, y, weight, used, huber_px, iterations):
    """Minimise sum_c w_c^2 huber(|r_c|) of undistorted pixel residuals; ``X (3, n)`` updated.
    ``x, y, weight, used, huber_px`` are ``(C, n)``."""
    fx, s, fy = (cams.K[:, 0, 0, None], cams.K[:, 0, 1, None], cams.K[:, 1, 1, None])
    R = cams.R
    X = X.copy()
    for _ in range(iterations):
        pc = cam_from_world(R, cams.t[:, :, None], X)  # (C, 3, n)
        z = pc[:, 2]
        front = z > MIN_DEPTH
        inv_z = 1.0 / np.where(front, z, 1.0)
        xn, yn = pc[:, 0] * inv_z, pc[:, 1] * inv_z
        dx, dy = xn - x, yn - y
        ru, rv = fx * dx + s * dy, fy * dy  # (C, n) pixels
        e = np.sqrt(ru * ru + rv * rv)
        h = np.where(e <= huber_px, 1.0, huber_px / np.maximum(e, 1e-300))  # IRLS weight of Huber
        W = np.where(used & front, weight * weight * h, 0.0)
        # d(xn, yn)/dX = (R_row0 - xn R_row2, R_row1 - yn R_row2) / z: (C, 3, n) each
        Jx = (R[:, 0, :, None] - xn[:, None] * R[:, 2, :, None]) * inv_z[:, None]
        Jy = (R[:, 1, :, None] - yn[:, None] * R[:, 2, :, None]) * inv_z[:, None]
        Ju, Jv = fx[:, None] * Jx + s[:, None] * Jy, fy[:, None] * Jy
        H = np.einsum("cin,cjn->ijn", Ju * W[:, None], Ju) + np.einsum("cin,cjn->ijn", Jv * W[:, None], Jv)
        g = (Ju * (W * ru)[:, None] + Jv * (W * rv)[:, None]).sum(0)  # (3, n)
        ok = (used & front).sum(0) >= MIN_VIEWS
        ok &= np.isfinite(H).all(axis=(0, 1)) & np.isfinite(g).all(0) & np.isfinite(X).all(0)
        H[:, :, ~ok] = np.eye(3)[:, :, None]
        g[:, ~ok] = 0.0
        # Levenberg-style damping relative to the diagonal keeps near-degenerate points stable.
        H = H + 1e-9 * np.trace(H)[None, None] * np.eye(3)[:, :, None]
        X -= np.linalg.solve(H.transpose(2, 0, 1), g.T[..., None])[..., 0].T
    return X


def step1(cams, obs: Views):
    """All-view DLT with :data:`~.rules.STEP1_MAX_ITERATIONS` inverse-iteration steps and the views
    within threshold: ``(M (10, n), X (3, n), slow (n,), few (n,), used (C, n))`` (see
    :func:`select_views`)."""
    M = normal_matrices(cams, obs.x, obs.y, obs.weight)
    few = np.count_nonzero(obs.weight, axis=0) < MIN_VIEWS
    Xn, slow = solve_normal(M, max_iterations=STEP1_MAX_ITERATIONS, exact=False, tol=STEP1_TOLERANCE, skip=few)
    X = cams.center[:, None] + Xn / cams.scale
    return M, X, slow, few, within(cams, X, obs)


def select_views(cams, obs: Views, pairs):
    """Steps 1-2 on ``(C, n)`` arrays; returns ``(X (3, n), used (C, n))``."""
    # Step 1: the first inverse-iteration steps converge where every view agrees; points still
    # moving then are finished exactly only if their views all agree (else RANSAC replaces them).
    M, X, slow, few, used = step1(cams, obs)
    fix = np.flatnonzero(slow & (used == obs.valid).all(0))
    if fix.size:
        X[:, fix] = cams.center[:, None] + solve_normal(M[:, fix], skip=few[fix])[0] / cams.scale
        used[:, fix] = within(cams, X[:, fix], obs.take(fix))
    used[:, few] = obs.valid[:, few]  # no point: report the (fewer than two) views it had
    todo = np.flatnonzero((used != obs.valid).any(0) & ~few)
    if todo.size:
        sub = obs.take(todo)
        X[:, todo], used[:, todo] = dlt_inliers(cams, sub, ransac_pairs(cams, sub, pairs))
    return X, used


def resume(cams, obs: Views, pairs, start):
    """Steps 1-2 for points whose observations changed (relabelled by the left/right check),
    from their estimate ``start (3, n)`` before the change; returns ``(X (3, n), used (C, n))``.

    ``start`` is tried as the first hypothesis: where it is final (:func:`majority_final`) with
    the relabelled views, the weighted DLT is refitted on those views as after RANSAC. The other
    points are solved from scratch (:func:`select_views`).
    """
    used = within(cams, start, obs)
    final = majority_final(used.sum(0), obs.valid.sum(0))
    X = np.empty_like(start)
    agreed, again = np.flatnonzero(final), np.flatnonzero(~final)
    if agreed.size:
        X[:, agreed], used[:, agreed] = dlt_inliers(cams, obs.take(agreed), used[:, agreed])
    if again.size:
        X[:, again], used[:, again] = select_views(cams, obs.take(again), pairs)
    return X, used
