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
7. With the left/right check, a view whose limb still misses the final 3D limb after steps 4-5
   (three quarters of its joints over twice the threshold; :data:`~.rules.LIMB_MISFIT`) while at
   least two other views fit it is left out of that limb's joints, and those that used it are
   solved again: a limb the detector made up (a rear view with one leg hidden, both labels near
   the other), whose hip can otherwise agree by chance with another view's wrong hip and outvote
   the two right ones.

All arrays are ``(C, n)`` inside (cameras first, see ``dlt.Observations``); step 1 stops early
for points whose views all agree, and RANSAC stops a point once a hypothesis has a strict
majority (and at least four) of its views as inliers. The thresholds and decision rules are
named once in :mod:`.rules`. Two backends (:mod:`.backend`) run steps 1-2 and 4-5: numpy
(``_robust_numpy``, ``_left_right``) and compiled kernels (``_numba_steps``), parallel over
points and reading each chunk's arrays in place; same decisions, points to rounding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from itertools import combinations
from types import ModuleType

import numpy as np

from mocap.triangulation import _robust_numpy as rn
from mocap.triangulation._cameras import CameraArrays, single_thread_blas, undistorted_pixels
from mocap.triangulation._left_right import (LIMB_GROUPS, drop_misfits, left_right_limbs, limb_pairs, limb_starts,
                                              swap_views, temporal_reference)
from mocap.triangulation._robust_numpy import Detections, Views
from mocap.triangulation.backend import BACKENDS, resolve_backend
from mocap.triangulation.dlt import (
    ChunkParts, Observations, Triangulation, assemble, check_common, finish_chunk, prepare,
)

__all__ = ["BACKENDS", "LIMB_GROUPS", "left_right_limbs", "limb_pairs", "limb_starts", "temporal_reference",
           "triangulate_robust", "view_pairs"]

log = logging.getLogger(__name__)


def view_pairs(num_cameras: int, max_hypotheses: int, seed: int = 0) -> np.ndarray:
    """``(H, 2)`` camera pairs in a fixed shuffled order, at most ``max_hypotheses`` of them."""
    pairs = np.array(list(combinations(range(num_cameras), 2)), dtype=np.int64).reshape(-1, 2)
    order = np.random.default_rng(seed).permutation(len(pairs))
    return pairs[order[:max_hypotheses]]


@dataclass(frozen=True, eq=False)
class RobustSolver:
    """What solving a chunk needs (internal): the cameras, the view ``pairs (H, 2)`` RANSAC tries,
    the refinement settings, the left/right ``limbs`` (None: no check) of ``J`` joints per
    person or frame, and ``steps``: the numba backend's ``_numba_steps`` module, or None for numpy."""

    cams: CameraArrays
    pairs: np.ndarray
    refine: bool
    refine_iterations: int
    limbs: list | None = None
    J: int = 1
    steps: ModuleType | None = None


@dataclass(frozen=True, eq=False)
class ChunkState:
    """One chunk between the passes (internal): its slice of the points, its ``views`` and
    ``detections`` (both relabelled in place by the left/right check), the estimate ``X (3, n)``,
    the views ``used (C, n)`` and ``redo (n,)``, the points to solve again; arrays updated in place."""

    sl: slice
    views: Views
    detections: Detections
    X: np.ndarray
    used: np.ndarray
    redo: np.ndarray


def solve_chunk(solver: RobustSolver, obs: Views, start=None, idx=None) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-3 on the points ``idx (m,)`` of ``obs`` (``(C, n)`` arrays; None: all), from
    scratch or (relabelled points) from their previous estimate ``start (3, m)``; returns
    ``(X (3, m), used (C, m))``. The numba backend reads ``obs`` in place."""
    cams, pairs, steps = solver.cams, solver.pairs, solver.steps
    if steps is not None:
        sel = np.arange(obs.x.shape[1]) if idx is None else idx
        if start is None:
            X, used = steps.select_views(cams, obs, pairs, sel)
        else:
            X, used = steps.resume(cams, obs, pairs, sel, start)
    if idx is not None and (steps is None or solver.refine):
        obs = obs.take(idx)
    if steps is None:
        X, used = rn.select_views(cams, obs, pairs) if start is None else rn.resume(cams, obs, pairs, start)
    if solver.refine:
        X = rn.gauss_newton(cams, X, obs.x, obs.y, obs.weight, used, 0.5 * np.sqrt(obs.tau2), solver.refine_iterations)
    return X, used


def chunk_views(obs: Observations, sl: slice, tau: np.ndarray, steps: ModuleType | None) -> Views:
    """The :class:`Views` of chunk ``sl`` of ``obs`` with thresholds ``tau (C, n)`` px."""
    if steps is not None:
        x, y, w, valid, pu, pv = steps.normalize(obs, sl)
        return Views(x, y, pu, pv, w, valid, tau * tau)
    x, y, w, valid = obs.normalized(sl)
    return Views(x, y, *undistorted_pixels(obs.cams, x, y), w, valid, tau * tau)


def relabel(solver: RobustSolver, X: np.ndarray, chunk: ChunkState) -> np.ndarray:
    """Left/right check (steps 4-5) of one chunk against points ``X (3, n)``: its detections and
    views relabelled in place -> mask ``(n,)`` of the points to solve again."""
    if solver.steps is not None:
        return solver.steps.swap_views(solver.cams, solver.J, solver.limbs, X, chunk.detections, chunk.views)
    redo = np.zeros(X.shape[1], bool)
    redo[swap_views(solver.cams, solver.J, solver.limbs, X, chunk.detections, chunk.views)] = True
    return redo


def leave_out_misfits(solver: RobustSolver, chunk: ChunkState) -> np.ndarray:
    """Step 7 of one chunk: the limb views that miss its points left out of ``chunk.views`` (in
    place) -> the flat indices of the points to solve again: those that used a view left out
    (the others' estimates did not rest on it)."""
    args = (solver.cams, solver.J, solver.limbs, chunk.X, chunk.views, chunk.detections.tau)
    removed = solver.steps.drop_misfits(*args) if solver.steps is not None else drop_misfits(*args)
    return np.flatnonzero((removed & chunk.used).any(0))


def first_pass(solver: RobustSolver, obs: Observations, tau: np.ndarray) -> list[ChunkState]:
    """Steps 1-4 on every chunk (a whole number of persons or frames of ``J`` joints each)."""
    chunks = []
    for sl in obs.chunks(multiple=solver.J):
        views = chunk_views(obs, sl, tau[:, sl], solver.steps)
        X, used = solve_chunk(solver, views)
        detections = Detections(obs.u[:, sl], obs.v[:, sl], tau[:, sl])
        if solver.limbs:  # copies: relabelled in place
            detections = Detections(*(a.copy() for a in detections))
        chunk = ChunkState(sl, views, detections, X, used, np.zeros(X.shape[1], bool))
        if solver.limbs:
            chunk.redo[:] = relabel(solver, X, chunk)
        chunks.append(chunk)
    return chunks


def temporal_pass(solver: RobustSolver, chunks: list[ChunkState], T: int, ref: np.ndarray | None = None) -> None:
    """Step 5: each chunk's left/right check again, against the points predicted from the
    neighbouring frames (``T`` frames on axis 0), or against ``ref (3, n)`` points given (a
    tracker's prediction: :func:`triangulate_robust`'s ``reference``); marks the relabelled joints
    in ``redo``."""
    # The neighbours' prediction is taken before the joints relabelled in step 4 are solved again
    # (their estimate left out the swapped view wherever it was a minority, and the median of
    # four neighbours absorbs one wrong one), so that every relabelled joint is solved once.
    if ref is None:
        X_all = np.concatenate([chunk.X for chunk in chunks], axis=1)
        ref = (solver.steps.temporal_reference(X_all, T) if solver.steps is not None
               else temporal_reference(X_all.T.reshape(T, -1, 3)).reshape(-1, 3).T)
    for chunk in chunks:
        again = relabel(solver, np.ascontiguousarray(ref[:, chunk.sl]), chunk)
        log.debug("temporal left/right check: %d joints to solve again", np.count_nonzero(again))
        chunk.redo[:] |= again


def check_limbs(limbs, lead_shape: tuple[int, ...], temporal: bool) -> int:
    """Check ``limbs`` against ``xy_px``'s leading dims -> ``J``, the joints per person (1 without)."""
    if temporal and not limbs:
        raise ValueError("temporal: the temporal left/right check needs limbs")
    if not limbs:
        return 1
    if len(lead_shape) < 1:
        raise ValueError("limbs: the left/right check needs xy_px shaped (..., J, C, 2)")
    J = lead_shape[-1]
    idx = [j for pairs in limbs for pair in pairs for j in pair]
    if min(idx) < 0 or max(idx) >= J:
        raise ValueError(f"limbs: joint indices must be in [0, {J}) (axis -3 of xy_px), got {sorted(set(idx))}")
    if len(set(idx)) < len(idx):
        raise ValueError(f"limbs: a joint may be in one left/right pair only, got {limbs}")
    return J


def check_thresholds(threshold_px, obs: Observations) -> np.ndarray:
    """``threshold_px`` (scalar or ``(..., C)``) -> ``(C, N)`` px, checked finite and positive."""
    C = obs.cams.num_cameras
    try:
        tau = np.broadcast_to(np.asarray(threshold_px, dtype=np.float64), obs.lead_shape + (C,))
    except ValueError:
        raise ValueError(f"threshold_px: expected a scalar or shape {obs.lead_shape + (C,)}, "
                         f"got {np.shape(threshold_px)}") from None
    if not (np.isfinite(tau).all() and (tau > 0).all()):
        raise ValueError("threshold_px: must be finite and > 0 pixels")
    return np.moveaxis(tau, -1, 0).reshape(C, obs.u.shape[1])  # (C, N), one copy


@single_thread_blas()
def triangulate_robust(cameras, xy_px, weight=None, *, threshold_px=15.0, max_hypotheses: int = 64,
                       refine: bool = False, refine_iterations: int = 2, limbs=None, temporal: bool = False,
                       undistort: bool = True, min_views: int = 2, sigma_px: float | None = None,
                       seed: int = 0, backend: str = "auto", reference: np.ndarray | None = None) -> Triangulation:
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
        reference: with ``limbs`` and without ``temporal``, ``(..., J, 3)`` points, world
            metres, in the leading shape of ``xy_px``, NaN where none: the same second check
            against them instead of the neighbouring frames (a live tracker's prediction: it has
            no frames after).
        undistort: undistort first (off only for already undistorted pixels).
        min_views: points with fewer inlier views are NaN.
        sigma_px: 2D noise (px) of a weight-1 observation; when given, ``covariance`` is computed.
        seed: the order in which view pairs are tried.
        backend: ``"numpy"``, ``"numba"`` (compiled kernels for undistortion, the DLTs, RANSAC
            and the left/right check, parallel over points on ``numba.get_num_threads()``
            threads; same decisions and points to rounding) or ``"auto"``
            (:func:`~mocap.triangulation.backend.resolve_backend`: ``MOCAP_BACKEND``, else numba).

    Returns:
        :class:`Triangulation`; ``inliers`` are the views kept, ``reproj_error_px`` covers all
        views and is measured against the relabelled observations where the left/right check
        exchanged them.
    """
    check_common(min_views, sigma_px)
    if max_hypotheses < 1:
        raise ValueError(f"max_hypotheses: must be >= 1, got {max_hypotheses}")
    obs = prepare(cameras, xy_px, weight, undistort)
    J = check_limbs(limbs, obs.lead_shape, temporal)
    tau = check_thresholds(threshold_px, obs)
    steps = None
    if resolve_backend(backend) == "numba":
        from mocap.triangulation import _numba_steps as steps
    solver = RobustSolver(obs.cams, view_pairs(obs.cams.num_cameras, max_hypotheses, seed), refine, refine_iterations,
                          limbs or None, J, steps)
    chunks = first_pass(solver, obs, tau)
    if temporal and obs.lead_shape[0] >= 2:
        temporal_pass(solver, chunks, obs.lead_shape[0])
    elif reference is not None and solver.limbs:
        if np.shape(reference) != tuple(obs.lead_shape) + (3,):
            raise ValueError(f"reference: expected shape {tuple(obs.lead_shape) + (3,)} (the points of xy_px), "
                             f"got {np.shape(reference)}")
        temporal_pass(solver, chunks, obs.lead_shape[0], np.ascontiguousarray(np.reshape(reference, (-1, 3)).T, float))
    parts = ChunkParts()
    reproj = None if steps is None else partial(steps.reproj_error, obs)
    for chunk in chunks:
        redo = np.flatnonzero(chunk.redo)
        if redo.size:  # step 6
            chunk.X[:, redo], chunk.used[:, redo] = solve_chunk(solver, chunk.views, start=chunk.X[:, redo], idx=redo)
        if solver.limbs:  # step 7
            drop = leave_out_misfits(solver, chunk)
            if drop.size:
                chunk.X[:, drop], chunk.used[:, drop] = solve_chunk(solver, chunk.views, start=chunk.X[:, drop],
                                                                    idx=drop)
        finish_chunk(parts, obs, chunk.detections.u, chunk.detections.v, chunk.views.weight, chunk.views.valid,
                     chunk.X, chunk.used, min_views, sigma_px, reproj)
    return assemble(obs, parts, sigma_px is not None)
