"""The ``backend="numba"`` steps of ``dlt.py`` and ``robust.py`` (internal, needs numba).

The same steps and decisions as ``_robust_numpy.select_views``, ``_robust_numpy.resume``,
``_left_right.swap_views``, ``_left_right.drop_misfits``, ``dlt.dlt_world`` and
``dlt.Observations.normalized``, on a chunk's ``Views`` read in place by the compiled kernels
(``_numba_kernels``, ``_numba_pixels``, ``_numba_swap``) through index arrays (``idx``: the chunk's
points to solve) instead of gathered copies; the few points needing ``eigh`` go through the numpy
functions. Every kernel receives the rules of :mod:`.rules` as ``KERNEL_RULES``. Importing this
module imports numba (~0.3 s); each kernel compiles on its first call (cached on disk after).
"""

from __future__ import annotations

import logging

import numpy as np

from mocap.triangulation import _numba_kernels as nk, _numba_pixels as npx, _numba_swap as ns
from mocap.triangulation._left_right import limb_pairs
from mocap.triangulation._robust_numpy import Views, dlt_inliers, majority_final
from mocap.triangulation.dlt import normal_matrices, solve_normal, solve_normal_eigh
from mocap.triangulation.rules import KERNEL_RULES, RANSAC_BATCH, RANSAC_CONFIDENCE, TAIL_HYPOTHESES, TEMPORAL_OFFSETS

log = logging.getLogger(__name__)


def _dist(cams) -> np.ndarray:
    return cams.dist if cams.dist is not None else np.zeros((cams.num_cameras, 5))


def normalize(obs, sl: slice) -> tuple[np.ndarray, ...]:
    """``dlt.Observations.normalized`` of chunk ``sl`` of ``obs`` plus the undistorted pixels:
    ``x, y, weight, valid, pu, pv``, each ``(C, n)``."""
    cams = obs.cams
    undistort = obs.undistort and cams.dist is not None
    return npx.normalize_kernel(cams.K, _dist(cams), undistort, obs.u[:, sl], obs.v[:, sl], obs.weight[:, sl],
                                KERNEL_RULES)


def reproj_error(obs, X, u, v, valid) -> np.ndarray:
    """``dlt.finish_chunk``'s reprojection errors ``(C, n)`` px of points ``X (3, n)``."""
    cams = obs.cams
    distort = obs.undistort and cams.dist is not None
    return npx.reproj_error_kernel(cams.K, _dist(cams), distort, cams.R, cams.t, X, u, v, valid, KERNEL_RULES)


def dlt_world(cams, x, y, weight) -> np.ndarray:
    """``dlt.dlt_world`` (the few ill-conditioned points still via ``eigh``)."""
    G, norms = cams.dlt_basis
    X, bad = nk.dlt_kernel(G, norms, cams.center, cams.scale, x, y, weight, KERNEL_RULES)
    if bad.any():
        M = normal_matrices(cams, x[:, bad], y[:, bad], weight[:, bad])
        X[:, bad] = cams.center[:, None] + solve_normal_eigh(M).T / cams.scale
    return X


def _step1(cams, obs: Views, idx):
    """Step 1 of points ``idx`` -> ``X (3, m)``, ``used (C, m)``, ``todo``: local indices for RANSAC."""
    G, norms = cams.dlt_basis
    X, used, status = nk.step1_kernel(G, norms, cams.KRt, cams.center, cams.scale, idx, obs.x, obs.y, obs.weight,
                                      obs.valid, obs.pu, obs.pv, obs.tau2, KERNEL_RULES)
    exact = np.flatnonzero(status == 2)
    if exact.size:  # all views agree but the closed form did not converge: finish with eigh
        j = idx[exact]
        M = normal_matrices(cams, obs.x[:, j], obs.y[:, j], obs.weight[:, j])
        X[:, exact] = cams.center[:, None] + solve_normal(M)[0] / cams.scale
        used[:, exact] = nk.inliers_kernel(cams.KRt, np.ascontiguousarray(X[:, exact]), j, obs.pu, obs.pv,
                                           obs.valid, obs.tau2)
        status[exact] = (used[:, exact] != obs.valid[:, j]).any(0)
    return X, used, np.flatnonzero(status == 1)


def _refit(cams, obs: Views, src, inl, X, used, dst):
    """``_robust_numpy.dlt_inliers`` of points ``src`` with inliers ``inl (C, m)``, written to
    columns ``dst`` of ``X (3, n)`` and ``used (C, n)``."""
    G, norms = cams.dlt_basis
    bad = nk.refit_kernel(G, norms, cams.center, cams.scale, cams.KRt, src, inl, obs.x, obs.y, obs.weight, obs.valid,
                          obs.pu, obs.pv, obs.tau2, KERNEL_RULES, X, used, dst)
    if bad.any():  # ill-conditioned refits: the numpy function with its eigh path
        X[:, dst[bad]], used[:, dst[bad]] = dlt_inliers(cams, obs.take(src[bad]), inl[:, bad])


def select_views(cams, obs: Views, pairs, idx):
    """``_robust_numpy.select_views`` for the points ``idx (m,)`` of ``obs`` -> ``X (3, m)``, ``used (C, m)``."""
    X, used, todo = _step1(cams, obs, idx)
    if todo.size:
        src = idx[todo]
        inl = nk.ransac_kernel(cams.R, np.ascontiguousarray(cams.centers), cams.KRt, pairs, src, obs.x, obs.y,
                               obs.weight, obs.valid, obs.pu, obs.pv, obs.tau2, RANSAC_BATCH, TAIL_HYPOTHESES,
                               1 - RANSAC_CONFIDENCE, KERNEL_RULES)
        _refit(cams, obs, src, inl, X, used, todo)
    return X, used


def resume(cams, obs: Views, pairs, idx, start):
    """``_robust_numpy.resume`` for the points ``idx (m,)`` of ``obs`` from ``start (3, m)``."""
    start = np.ascontiguousarray(start)  # one compiled signature (C-contiguous) per kernel
    used = nk.inliers_kernel(cams.KRt, start, idx, obs.pu, obs.pv, obs.valid, obs.tau2)
    final = majority_final(used.sum(0), obs.valid[:, idx].sum(0))
    X = np.empty_like(start)
    agreed, again = np.flatnonzero(final), np.flatnonzero(~final)
    if agreed.size:
        _refit(cams, obs, idx[agreed], used[:, agreed], X, used, agreed)
    if again.size:
        X[:, again], used[:, again] = select_views(cams, obs, pairs, idx[again])
    return X, used


def swap_views(cams, J, limbs, X, detections, obs: Views) -> np.ndarray:
    """``_left_right.swap_views`` on one chunk: ``detections`` (``u, v, tau``) and the arrays of
    ``obs`` relabelled in place; returns the mask ``(n,)`` of points to solve again."""
    L, R, limb = limb_pairs(limbs)
    redo, flips = ns.swap_views_kernel(cams.KRt, X, J, L, R, limb, len(limbs), detections.u, detections.v, obs.x,
                                       obs.y, obs.pu, obs.pv, obs.weight, obs.valid, detections.tau, obs.tau2,
                                       KERNEL_RULES)
    if flips:
        log.debug("left/right check: %d limb views relabelled", flips)
    return redo


def drop_misfits(cams, J, limbs, X, views: Views, tau) -> np.ndarray:
    """``_left_right.drop_misfits`` on one chunk (``views``' ``weight`` and ``valid`` changed in
    place); returns ``(C, n)`` the observations taken out."""
    L, R, limb = limb_pairs(limbs)
    removed, drops = ns.drop_misfits_kernel(cams.KRt, X, J, L, R, limb, len(limbs), views.pu, views.pv, views.weight,
                                            views.valid, tau, KERNEL_RULES)
    if drops:
        log.debug("left/right check: %d limb views still miss and are left out", drops)
    return removed


def temporal_reference(X, T) -> np.ndarray:
    """``_left_right.temporal_reference`` of points ``X (3, T R)`` (frames first) -> ``(3, T R)``."""
    return ns.temporal_reference_kernel(np.ascontiguousarray(X), T, np.array(TEMPORAL_OFFSETS, dtype=np.int64))
