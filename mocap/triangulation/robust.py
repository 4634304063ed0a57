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
   limb much better exchanged than as labelled is relabelled.
5. Optional temporal left/right check (frames on axis 0): the same check against the joints
   predicted from the neighbouring frames (median of t-2, t-1, t+1, t+2), which breaks ties one
   frame cannot (a swap in two of four views).
6. The joints relabelled by 4 and 5 are solved again, once, starting from their estimate before
   the relabel: where a strict majority (at least four) of their views agree with it, that is
   final as in RANSAC and only the DLT is refitted; the rest go through steps 1-3 again.

All arrays are ``(C, n)`` inside (cameras first, see ``dlt.Observations``); step 1 stops early
for points whose views all agree, and RANSAC stops a point once a hypothesis has a strict
majority (and at least four) of its views as inliers. The undistortion, steps 1-2, the inlier
refit, the left/right check and the reprojection errors also exist as compiled kernels
(``_numba_kernels``, ``_numba_lens``, ``_numba_swap``, driven by ``_robust_numba``; optional
numba), parallel over points on NUMBA_NUM_THREADS threads and reading each chunk's arrays in
place: ``backend`` picks them; same decisions, points to rounding.
The left/right check (steps 4-5) lives in ``_left_right``.
"""

from __future__ import annotations

import logging
from itertools import combinations
from typing import NamedTuple

import numpy as np

from mocap._checks import check_choice
from mocap.triangulation._cameras import (
    UNDISTORT_ITERATIONS, CameraArrays, cam_from_world, single_thread_blas, squared_error_px, undistorted_pixels,
)
from mocap.triangulation._left_right import LIMB_GROUPS, _swap_views, left_right_limbs, temporal_reference  # noqa: F401
from mocap.triangulation.dlt import (
    Triangulation, _Parts, _solve_normal_eigh, assemble, check_common, dlt_world, finish_chunk, normal_matrices,
    prepare, solve_normal,
)

log = logging.getLogger(__name__)

BACKENDS = ("auto", "numpy", "numba")
_numba_kernels = None  # the optional compiled kernels, imported on first use (numba: ~0.3 s)
_robust_numba = _numba_lens = None  # the steps driving them and the lens kernels, imported with them


def _resolve_backend(backend: str) -> str:
    """``"auto"`` -> ``"numba"`` where numba imports, else ``"numpy"``; ``"numba"`` must import."""
    global _numba_kernels, _robust_numba, _numba_lens
    check_choice(backend, BACKENDS, "backend")
    if backend != "numpy" and _numba_kernels is None:
        try:
            from mocap.triangulation import _numba_kernels, _numba_lens, _robust_numba
        except ImportError:  # numba not installed
            _numba_kernels = False
    if backend == "auto":
        return "numba" if _numba_kernels else "numpy"
    if backend == "numba" and not _numba_kernels:
        raise ValueError("backend: 'numba' needs the numba package (pip install numba) or use backend='numpy'")
    return backend


def view_pairs(num_cameras: int, max_hypotheses: int, seed: int = 0) -> np.ndarray:
    """``(H, 2)`` camera pairs in a fixed shuffled order, at most ``max_hypotheses`` of them."""
    pairs = np.array(list(combinations(range(num_cameras), 2)), dtype=np.int64).reshape(-1, 2)
    order = np.random.default_rng(seed).permutation(len(pairs))
    return pairs[order[:max_hypotheses]]


def _rays(cams: CameraArrays, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """World directions ``(C, 3, n)`` of the rays through normalised points ``x, y (C, n)``."""
    Rt = cams.R.transpose(0, 2, 1)  # world direction of (x, y, 1) is R^T (x, y, 1)
    return Rt[:, :, 0, None] * x[:, None] + Rt[:, :, 1, None] * y[:, None] + Rt[:, :, 2, None]


def _midpoints(cams: CameraArrays, d: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-ray midpoints ``(H, 3, n)`` and a validity mask ``(H, n)`` (rays not parallel, in
    front) for ray directions ``d (C, 3, n)`` (see :func:`_rays`) and camera ``pairs (H, 2)``."""
    c = cams.centers[:, :, None]
    i, j = pairs[:, 0], pairs[:, 1]
    d1, d2 = d[i], d[j]
    b = c[j] - c[i]
    a, bb, cc = (d1 * d1).sum(1), (d1 * d2).sum(1), (d2 * d2).sum(1)
    p, q = (d1 * b).sum(1), (d2 * b).sum(1)
    den = a * cc - bb * bb
    ok = den > 1e-10 * a * cc  # rays within ~1e-5 rad of parallel give no depth
    den = np.where(ok, den, 1.0)
    s = (p * cc - bb * q) / den
    u = (bb * p - a * q) / den
    ok &= (s > 0) & (u > 0)
    X = 0.5 * (c[i] + s[:, None] * d1 + c[j] + u[:, None] * d2)
    return X, ok


class _Views(NamedTuple):
    """Observations of ``n`` points as ``(C, n)`` arrays (internal): normalised ``x, y`` and
    undistorted pixels ``pu, pv`` (0 where invalid), ``weight`` (0 where invalid), ``valid`` and
    the squared outlier threshold ``tau2`` px^2."""

    x: np.ndarray
    y: np.ndarray
    pu: np.ndarray
    pv: np.ndarray
    weight: np.ndarray
    valid: np.ndarray
    tau2: np.ndarray

    def take(self, idx: np.ndarray) -> "_Views":
        return _Views(*(a[:, idx] for a in self))


def _score_pairs(cams, obs: _Views, d, pairs):
    """Score pair hypotheses ``(H, n)`` (MSAC cost, inf if unusable) and their inliers ``(H, C, n)``;
    ``d (C, 3, n)`` are the rays of ``obs``."""
    X, ok = _midpoints(cams, d, pairs)
    ok &= obs.valid[pairs[:, 0]] & obs.valid[pairs[:, 1]]
    # Truncated squared error in units of each view's threshold, so that an outlier costs its
    # confidence whatever that view's threshold is (weight is 0 for invalid views).
    r = squared_error_px(cams, X, obs.pu, obs.pv)  # (H, C, n)
    r /= obs.tau2
    cost = (obs.weight * np.minimum(r, 1.0)).sum(1)
    inl = (r < 1.0) & obs.valid
    # A pair whose rays miss each other by more than the threshold supports nothing, not even
    # itself: with two views of which one is wrong the point is left out rather than guessed.
    ok &= inl.sum(1) >= 2
    inl &= ok[:, None]
    return np.where(ok, cost, np.inf), inl


#: When at most this many (point, pair) hypotheses are left, :func:`_ransac_pairs` scores them all in
#: one batch: for a few hard points the fixed cost of each batch (some 40 numpy calls) dominates.
TAIL_HYPOTHESES = 16384


def _ransac_pairs(cams, obs: _Views, pairs, batch=4, confidence=0.99):
    """Adaptive RANSAC over view pairs with early exit -> inlier views ``(C, n)``.

    Pairs are tried ``batch`` at a time (all that are left once at most :data:`TAIL_HYPOTHESES`
    (point, pair) hypotheses remain); a point stops as soon as the chance that
    none of the pairs it tried was outlier-free, given the inlier ratio of its best hypothesis,
    is below ``1 - confidence`` (Fischler & Bolles; Hartley & Zisserman 4.7.1), or as soon as
    its best hypothesis has a strict majority of the views, and at least four, as inliers.
    """
    valid = obs.valid
    n = valid.shape[1]
    best_cost = np.full(n, np.inf)
    best_inl = np.zeros(valid.shape, bool)
    tried = np.zeros(n)
    n_valid = valid.sum(0).astype(float)
    live = np.arange(n)
    sub, d = obs, _rays(cams, obs.x, obs.y)  # rays once: each batch only gathers them
    s = 0
    while s < len(pairs):
        size = batch if len(live) * (len(pairs) - s) > TAIL_HYPOTHESES else len(pairs) - s
        pb, s = pairs[s : s + size], s + size
        cost, inl = _score_pairs(cams, sub, d, pb)
        h = np.argmin(cost, axis=0)
        cols = np.arange(len(live))
        c = cost[h, cols]
        better = c < best_cost[live]
        best_cost[live[better]] = c[better]
        best_inl[:, live[better]] = inl[h, :, cols][better].T  # (m, C) -> (C, m)
        tried[live] += (sub.valid[pb[:, 0]] & sub.valid[pb[:, 1]]).sum(0)
        k = best_inl[:, live].sum(0)
        nv = n_valid[live]
        p_good = np.where(nv >= 2, k * (k - 1) / np.maximum(nv * (nv - 1), 1), 0.0)
        with np.errstate(divide="ignore"):
            miss = np.where(p_good >= 1, 0.0, (1 - np.minimum(p_good, 1)) ** tried[live])
        # A hypothesis backed by a strict majority of at least four views is final: no other
        # consensus set can outvote it, and the refit in ``_dlt_inliers`` recovers inliers it
        # missed. (With three inliers of four the remaining pairs are cheap and, scored by MSAC,
        # pick the better-fitting triple.)
        keep = ((miss >= 1 - confidence) & ((2 * k <= nv) | (k < 4))) | ~np.isfinite(best_cost[live])
        live = live[keep]
        if not live.size:
            break
        idx = np.flatnonzero(keep)
        sub, d = sub.take(idx), d[:, :, idx]
    return best_inl


def _dlt_world(cams, x, y, weight, backend):
    """``dlt.dlt_world``, or its compiled twin (the few ill-conditioned points still via ``eigh``)."""
    if backend != "numba":
        return dlt_world(cams, x, y, weight)
    G, norms = cams.dlt_basis
    X, bad = _numba_kernels.dlt_kernel(G, norms, cams.center, cams.scale, x, y, weight)
    if bad.any():
        M = normal_matrices(cams, x[:, bad], y[:, bad], weight[:, bad])
        X[:, bad] = cams.center[:, None] + _solve_normal_eigh(M).T / cams.scale
    return X


def _within(cams, X, obs: _Views, backend="numpy"):
    """Views of ``obs`` within their threshold of points ``X (3, n)`` -> ``(C, n)``."""
    if backend == "numba":
        return _numba_kernels.inliers_kernel(cams.KRt, X, np.arange(X.shape[1]), obs.pu, obs.pv, obs.valid, obs.tau2)
    return obs.valid & (squared_error_px(cams, X, obs.pu, obs.pv) < obs.tau2)


def _dlt_inliers(cams, obs: _Views, inl, backend="numpy"):
    """Refit the weighted DLT on ``inl (C, n)`` and re-read the inliers; returns ``(X (3, n), inliers)``."""
    X = _dlt_world(cams, obs.x, obs.y, np.where(inl, obs.weight, 0.0), backend)
    new = _within(cams, X, obs, backend)
    # Without a supported hypothesis (fewer than two inliers) the refit is meaningless.
    keep = (new.sum(0) >= 2) & (inl.sum(0) >= 2)
    used = np.where(keep, new, inl)
    changed = np.flatnonzero((used != inl).any(0))
    if changed.size:  # the estimate must come from exactly the views reported as used
        w = np.where(used[:, changed], obs.weight[:, changed], 0.0)
        X[:, changed] = _dlt_world(cams, obs.x[:, changed], obs.y[:, changed], w, backend)
    return X, used


def _gauss_newton(cams, X, x, y, weight, used, huber_px, iterations):
    """Minimise sum_c w_c^2 huber(|r_c|) of undistorted pixel residuals; ``X (3, n)`` updated.
    ``x, y, weight, used, huber_px`` are ``(C, n)``."""
    fx, s, fy = (cams.K[:, 0, 0, None], cams.K[:, 0, 1, None], cams.K[:, 1, 1, None])
    R = cams.R
    X = X.copy()
    for _ in range(iterations):
        pc = cam_from_world(R, cams.t[:, :, None], X)  # (C, 3, n)
        z = pc[:, 2]
        front = z > 1e-9
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
        ok = (used & front).sum(0) >= 2
        ok &= np.isfinite(H).all(axis=(0, 1)) & np.isfinite(g).all(0) & np.isfinite(X).all(0)
        H[:, :, ~ok] = np.eye(3)[:, :, None]
        g[:, ~ok] = 0.0
        # Levenberg-style damping relative to the diagonal keeps near-degenerate points stable.
        H = H + 1e-9 * np.trace(H)[None, None] * np.eye(3)[:, :, None]
        X -= np.linalg.solve(H.transpose(2, 0, 1), g.T[..., None])[..., 0].T
    return X


def _step1(cams, obs: _Views):
    """All-view DLT with three inverse-iteration steps and the views within threshold:
    ``(M (10, n), X (3, n), slow (n,), few (n,), used (C, n))`` (see :func:`_select_views`)."""
    M = normal_matrices(cams, obs.x, obs.y, obs.weight)
    few = np.count_nonzero(obs.weight, axis=0) < 2
    Xn, slow = solve_normal(M, max_iterations=3, exact=False, tol=1e-10, skip=few)
    X = cams.center[:, None] + Xn / cams.scale
    return M, X, slow, few, obs.valid & (squared_error_px(cams, X, obs.pu, obs.pv) < obs.tau2)


def _select_views(cams, obs: _Views, pairs):
    """Steps 1-2 on ``(C, n)`` arrays; returns ``(X (3, n), used (C, n))`` (numpy; the numba
    backend's twin is ``_robust_numba.select_views``)."""
    # Step 1: three inverse-iteration steps converge where every view agrees; points still
    # moving then are finished exactly only if their views all agree (else RANSAC replaces them).
    M, X, slow, few, used = _step1(cams, obs)
    fix = np.flatnonzero(slow & (used == obs.valid).all(0))
    if fix.size:
        X[:, fix] = cams.center[:, None] + solve_normal(M[:, fix], skip=few[fix])[0] / cams.scale
        used[:, fix] = obs.valid[:, fix] & (squared_error_px(cams, X[:, fix], obs.pu[:, fix], obs.pv[:, fix])
                                            < obs.tau2[:, fix])
    used[:, few] = obs.valid[:, few]  # no point: report the (fewer than two) views it had
    todo = np.flatnonzero((used != obs.valid).any(0) & ~few)
    if todo.size:
        sub = obs.take(todo)
        inl = _ransac_pairs(cams, sub, pairs)
        X[:, todo], used[:, todo] = _dlt_inliers(cams, sub, inl)
    return X, used


def _resume(cams, obs: _Views, pairs, start):
    """Steps 1-2 for points whose observations changed (relabelled by the left/right check),
    from their estimate ``start (3, n)`` before the change; returns ``(X (3, n), used (C, n))``.

    ``start`` is tried as the first hypothesis: where a strict majority of the (relabelled)
    views, and at least four, agree with it, it is final by the same rule that ends RANSAC, and
    the weighted DLT is refitted on those views as after RANSAC. The other points are solved
    from scratch (:func:`_select_views`).
    """
    used = _within(cams, start, obs)
    k, nv = used.sum(0), obs.valid.sum(0)
    final = (2 * k > nv) & (k >= 4)
    X = np.empty_like(start)
    agreed, again = np.flatnonzero(final), np.flatnonzero(~final)
    if agreed.size:
        X[:, agreed], used[:, agreed] = _dlt_inliers(cams, obs.take(agreed), used[:, agreed])
    if again.size:
        X[:, again], used[:, again] = _select_views(cams, obs.take(again), pairs)
    return X, used


def _robust_core(cams, obs: _Views, *, pairs, refine, refine_iterations, start=None, backend="numpy", idx=None):
    """Steps 1-3 on the points ``idx (m,)`` of ``obs`` (``(C, n)`` arrays; None: all), from
    scratch or (relabelled points) from their previous estimate ``start (3, m)``; returns
    ``(X (3, m), used (C, m))``. The numba backend reads ``obs`` in place (``_robust_numba``)."""
    if backend == "numba":
        sel = np.arange(obs.x.shape[1]) if idx is None else idx
        X, used = (_robust_numba.select_views(cams, obs, pairs, sel) if start is None
                   else _robust_numba.resume(cams, obs, pairs, sel, start))
    if idx is not None and (backend != "numba" or refine):
        obs = obs.take(idx)
    if backend != "numba":
        X, used = _select_views(cams, obs, pairs) if start is None else _resume(cams, obs, pairs, start)
    if refine:
        X = _gauss_newton(cams, X, obs.x, obs.y, obs.weight, used, 0.5 * np.sqrt(obs.tau2), refine_iterations)
    return X, used


def _chunk_views(obs, sl: slice, t: np.ndarray, backend: str) -> _Views:
    """The :class:`_Views` of chunk ``sl`` of ``obs`` with thresholds ``t (C, n)`` px."""
    if backend == "numba":
        cams = obs.cams
        undistort = obs.undistort and cams.dist is not None
        dist = cams.dist if cams.dist is not None else np.zeros((cams.num_cameras, 5))
        x, y, w, valid, pu, pv = _numba_lens.normalize_kernel(cams.K, dist, undistort, obs.u[:, sl], obs.v[:, sl],
                                                                 obs.weight[:, sl], UNDISTORT_ITERATIONS)
        return _Views(x, y, pu, pv, w, valid, t * t)
    x, y, w, valid = obs.normalized(sl)
    return _Views(x, y, *undistorted_pixels(obs.cams, x, y), w, valid, t * t)


@single_thread_blas()
def triangulate_robust(cameras, xy_px, weight=None, *, threshold_px=15.0, max_hypotheses: int = 64,
                       refine: bool = False, refine_iterations: int = 2, limbs=None, temporal: bool = False,
                       undistort: bool = True, min_views: int = 2, sigma_px: float | None = None,
                       seed: int = 0, backend: str = "auto") -> Triangulation:
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
        temporal: with ``limbs``, axis 0 of ``xy_px`` is time (frames): after every frame is
            solved, each view's left/right labels are checked again against the joints predicted
            from the neighbouring frames (:func:`temporal_reference`) and the relabelled joints
            solved again. Resolves what one frame cannot, e.g. a swap in two of four views.
        undistort: undistort first (off only for already undistorted pixels).
        min_views: points with fewer inlier views are NaN.
        sigma_px: 2D noise (px) of a weight-1 observation; when given, ``covariance`` is computed.
        seed: the order in which view pairs are tried.
        backend: ``"numpy"``, ``"numba"`` (compiled kernels for undistortion, the DLTs, RANSAC
            and the left/right check, parallel over points on NUMBA_NUM_THREADS threads; same
            decisions and points to rounding; needs numba) or ``"auto"`` (numba if installed).

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
        if len(set(idx)) < len(idx):
            raise ValueError(f"limbs: a joint may be in one left/right pair only, got {limbs}")
    C = obs.cams.num_cameras
    try:
        tau = np.broadcast_to(np.asarray(threshold_px, dtype=np.float64), obs.lead_shape + (C,))
    except ValueError:
        raise ValueError(f"threshold_px: expected a scalar or shape {obs.lead_shape + (C,)}, "
                         f"got {np.shape(threshold_px)}") from None
    if not (np.isfinite(tau).all() and (tau > 0).all()):
        raise ValueError("threshold_px: must be finite and > 0 pixels")
    tau = np.moveaxis(tau, -1, 0).reshape(C, obs.u.shape[1])  # (C, N), one copy
    pairs = view_pairs(C, max_hypotheses, seed)
    opts = dict(pairs=pairs, refine=refine, refine_iterations=refine_iterations, backend=_resolve_backend(backend))
    if temporal and not limbs:
        raise ValueError("temporal: the temporal left/right check needs limbs")
    numba = opts["backend"] == "numba"
    if limbs:
        L, R = np.array([pair for pairs in limbs for pair in pairs]).T
        limb = np.repeat(np.arange(len(limbs)), [len(pairs) for pairs in limbs])

    def relabel(X, u, v, t, views):
        """Left/right check (steps 4-5) on one chunk, in place -> mask of the points to solve again."""
        if numba:
            return _robust_numba.swap_views(obs.cams, J, L, R, limb, len(limbs), X, u, v, t, views)
        redo = np.zeros(X.shape[1], bool)
        redo[_swap_views(obs.cams, J, limbs, X, [u, v, *views[:4], views.weight, views.valid, t, views.tau2])] = True
        return redo

    state = []
    for sl in obs.chunks(multiple=J):
        t = tau[:, sl]
        views = _chunk_views(obs, sl, t, opts["backend"])
        X, used = _robust_core(obs.cams, views, **opts)
        u, v = obs.u[:, sl], obs.v[:, sl]
        redo = np.zeros(X.shape[1], bool)
        if limbs:
            u, v, t = u.copy(), v.copy(), t.copy()
            redo = relabel(X, u, v, t, views)
        state.append((sl, views, u, v, t, X, used, redo))
    if temporal and obs.lead_shape[0] >= 2:
        # The neighbours' prediction is taken before the joints relabelled above are solved again
        # (their estimate left out the swapped view wherever it was a minority, and the median of
        # four neighbours absorbs one wrong one), so that every relabelled joint is solved once.
        X_all = np.concatenate([st[5] for st in state], axis=1)
        if numba:
            ref = _robust_numba.ns.temporal_reference_kernel(X_all, obs.lead_shape[0])
        else:
            ref = temporal_reference(X_all.T.reshape(obs.lead_shape + (3,))).reshape(-1, 3).T
        for sl, views, u, v, t, X, used, redo in state:
            again = relabel(np.ascontiguousarray(ref[:, sl]), u, v, t, views)
            log.debug("temporal left/right check: %d joints to solve again", np.count_nonzero(again))
            redo |= again
    for sl, views, u, v, t, X, used, redo in state:
        redo = np.flatnonzero(redo)
        if redo.size:
            X[:, redo], used[:, redo] = _robust_core(obs.cams, views, start=X[:, redo], idx=redo, **opts)
    parts = _Parts()
    reproj = None
    if opts["backend"] == "numba":
        cams = obs.cams
        dist = cams.dist if cams.dist is not None else np.zeros((C, 5))
        distort = obs.undistort and cams.dist is not None
        reproj = lambda X, u, v, valid: _numba_lens.reproj_error_kernel(  # noqa: E731
            cams.K, dist, distort, cams.R, cams.t, X, u, v, valid)
    for sl, views, u, v, t, X, used, _ in state:
        finish_chunk(parts, obs, u, v, views.weight, views.valid, X, used, min_views, sigma_px, reproj)
    return assemble(obs, parts, sigma_px is not None)
