"""The ``backend="numba"`` path of ``robust.py`` steps 1-3 and 4-6 (internal, needs numba).

The same steps and decisions as ``robust._select_views``, ``robust._resume`` and
``_left_right._swap_views``, on a chunk's ``_Views`` read in place by compiled kernels through
index arrays (``idx``: the chunk's points to solve) instead of gathered copies; the few points
needing ``eigh`` go through the numpy functions.
"""

from __future__ import annotations

import logging

import numpy as np

from mocap.triangulation import _numba_kernels as nk, _numba_swap as ns
from mocap.triangulation.dlt import solve_normal

log = logging.getLogger(__name__)


def _step1(cams, obs, idx):
    """Step 1 of points ``idx`` -> ``X (3, m)``, ``used (C, m)``, ``todo``: local indices for RANSAC."""
    G, norms = cams.dlt_basis
    X, used, status = nk.step1_kernel(G, norms, cams.KRt, cams.center, cams.scale, idx, obs.x, obs.y, obs.weight,
                                      obs.valid, obs.pu, obs.pv, obs.tau2)
    exact = np.flatnonzero(status == 2)
    if exact.size:  # all views agree but the closed form did not converge: finish with eigh
        from mocap.triangulation.dlt import normal_matrices

        j = idx[exact]
        M = normal_matrices(cams, obs.x[:, j], obs.y[:, j], obs.weight[:, j])
        X[:, exact] = cams.center[:, None] + solve_normal(M)[0] / cams.scale
        used[:, exact] = nk.inliers_kernel(cams.KRt, np.ascontiguousarray(X[:, exact]), j, obs.pu, obs.pv,
                                           obs.valid, obs.tau2)
        status[exact] = (used[:, exact] != obs.valid[:, j]).any(0)
    return X, used, np.flatnonzero(status == 1)


def _refit(cams, obs, src, inl, X, used, dst):
    """``robust._dlt_inliers`` of points ``src`` with inliers ``inl (C, m)``, written to columns
    ``dst`` of ``X (3, n)`` and ``used (C, n)``."""
    from mocap.triangulation.robust import _dlt_inliers

    G, norms = cams.dlt_basis
    bad = nk.refit_kernel(G, norms, cams.center, cams.scale, cams.KRt, src, inl, obs.x, obs.y, obs.weight, obs.valid,
                          obs.pu, obs.pv, obs.tau2, X, used, dst)
    if bad.any():  # ill-conditioned refits: the numpy function with its eigh path
        X[:, dst[bad]], used[:, dst[bad]] = _dlt_inliers(cams, obs.take(src[bad]), inl[:, bad], "numba")


def select_views(cams, obs, pairs, idx, batch=4, confidence=0.99):
    """``robust._select_views`` for the points ``idx (m,)`` of ``obs`` -> ``X (3, m)``, ``used (C, m)``."""
    from mocap.triangulation.robust import TAIL_HYPOTHESES

    X, used, todo = _step1(cams, obs, idx)
    if todo.size:
        src = idx[todo]
        inl = nk.ransac_kernel(cams.R, np.ascontiguousarray(cams.centers), cams.KRt, pairs, src, obs.x, obs.y,
                               obs.weight, obs.valid, obs.pu, obs.pv, obs.tau2, batch, TAIL_HYPOTHESES,
                               1 - confidence)
        _refit(cams, obs, src, inl, X, used, todo)
    return X, used


def resume(cams, obs, pairs, idx, start):
    """``robust._resume`` for the points ``idx (m,)`` of ``obs`` from ``start (3, m)``."""
    used = nk.inliers_kernel(cams.KRt, start, idx, obs.pu, obs.pv, obs.valid, obs.tau2)
    k, nv = used.sum(0), obs.valid[:, idx].sum(0)
    final = (2 * k > nv) & (k >= 4)
    X = np.empty_like(start)
    agreed, again = np.flatnonzero(final), np.flatnonzero(~final)
    if agreed.size:
        _refit(cams, obs, idx[agreed], used[:, agreed], X, used, agreed)
    if again.size:
        X[:, again], used[:, again] = select_views(cams, obs, pairs, idx[again])
    return X, used


def swap_views(cams, J, L, R, limb, n_limbs, X, u, v, t, obs):
    """``_left_right._swap_views`` on one chunk: ``u, v, t`` and the arrays of ``obs`` relabelled
    in place; returns the mask ``(n,)`` of points to solve again."""
    redo, flips = ns.swap_views_kernel(cams.KRt, X, J, L, R, limb, n_limbs, u, v, obs.x, obs.y, obs.pu, obs.pv,
                                       obs.weight, obs.valid, t, obs.tau2)
    if flips:
        log.debug("left/right check: %d limb views relabelled", flips)
    return redo
