"""Left/right check of ``robust.py`` (steps 4-5 and 7): limb groups, per-view swap scoring, the
temporal reference from neighbouring frames and the limb views that still miss. Arrays are
``(C, n)`` as in ``robust.py``."""

from __future__ import annotations

import logging

import numpy as np

from mocap.triangulation.rules import (LIMB_FITTING_VIEWS, LIMB_MISFIT, LIMB_MISFIT_TAU, SWAP_FAILS, SWAP_GAIN,
                                      TEMPORAL_OFFSETS)

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


def limb_pairs(limbs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``limbs`` (see :func:`left_right_limbs`) -> the pairs' left joints ``L (P,)``, right joints
    ``R (P,)`` and limb index ``limb (P,)``, the pairs of a limb adjacent."""
    L, R = np.array([pair for pairs in limbs for pair in pairs], dtype=np.int64).reshape(-1, 2).T
    limb = np.repeat(np.arange(len(limbs)), [len(pairs) for pairs in limbs])
    return np.ascontiguousarray(L), np.ascontiguousarray(R), limb


def swap_views(cams, J, limbs, X, *groups) -> np.ndarray:
    """Left/right check on one chunk of ``n = M * J`` points.

    Decides per limb and view whether the labelled left and right joints fit the current 3D limb
    ``X (3, n)`` much better exchanged (and the labelled ones fit badly), and exchanges them in
    every ``(C, n)`` array of ``groups`` (named tuples of arrays, modified in place): the
    detections ``u, v, tau`` and the views ``x, y, pu, pv, weight, valid, tau2``. Returns the flat
    indices of points to solve again. (The numba backend's twin is
    ``_numba_swap.swap_views_kernel``.)
    """
    C = cams.num_cameras
    named = {name: a.reshape(C, -1, J) for g in groups for name, a in zip(g._fields, g)}
    L, R, limb = limb_pairs(limbs)
    flip = swap_flags(cams, J, L, R, limb, X, named["pu"], named["pv"], named["valid"], named["tau"])
    redo = np.zeros(named["pu"].shape[1:], bool)
    if flip.any():
        c, m, p = np.nonzero(flip[:, :, limb])  # every pair of a flipped limb view
        jl, jr = L[p], R[p]
        for a in named.values():
            a_l = a[c, m, jl]
            a[c, m, jl] = a[c, m, jr]
            a[c, m, jr] = a_l
        redo[m, jl] = True
        redo[m, jr] = True
        log.debug("left/right check: %d limb views relabelled", np.count_nonzero(flip))
    return np.flatnonzero(redo.ravel())


def swap_flags(cams, J, L, R, limb, X, pu, pv, valid, tau):
    """Per view and limb ``(C, M, limbs)`` whether the limb's joints are to be exchanged (numpy path
    of :func:`swap_views`; ``pu, pv, valid, tau`` are ``(C, M, J)``)."""
    keep_l, keep_r, swap_l, swap_r, tau2, _, starts = pair_costs(cams, J, L, R, limb, X, pu, pv, valid, tau)
    swap = np.add.reduceat(swap_l + swap_r, starts, axis=-1)  # (C, M, limbs)
    keep = np.add.reduceat(keep_l + keep_r, starts, axis=-1)
    # Only views that fail as labelled are candidates: a swap must explain an outlier.
    fails = np.logical_or.reduceat(np.maximum(keep_l, keep_r) >= SWAP_FAILS * tau2, starts, axis=-1)
    return (swap < SWAP_GAIN * keep) & fails


def pair_costs(cams, J, L, R, limb, X, pu, pv, valid, tau):
    """Every limb's pairs side by side (``P`` of them): the truncated squared px distances of the
    projected left and right joints of ``X (3, n)`` to the observed ones as labelled, ``keep_l,
    keep_r (C, M, P)``, and exchanged, ``swap_l, swap_r`` (the left joint's projection to the
    right one's detection, and the other way); each pair's squared threshold ``tau2``; ``both``,
    where both its joints are seen and project (the costs are 0 elsewhere); ``starts``, the first
    pair of each limb. Arrays as in :func:`swap_flags`."""
    C = cams.num_cameras
    Xh = np.concatenate([X, np.ones((1, X.shape[1]))])
    pc = (cams.KRt @ Xh).reshape(C, 3, -1)  # every joint projected once, undistorted pixels
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_z = np.where(pc[:, 2] > 0, 1.0 / pc[:, 2], np.nan)  # NaN at or behind a camera
    qu, qv = (pc[:, 0] * inv_z).reshape(C, -1, J), (pc[:, 1] * inv_z).reshape(C, -1, J)
    starts = limb_starts(limb)
    both = valid[:, :, L] & valid[:, :, R] & np.isfinite(qu[:, :, L] + qu[:, :, R])
    tau2 = (0.5 * (tau[:, :, L] + tau[:, :, R])) ** 2  # (C, M, P)

    def cost(a, j):
        """Truncated squared px distance of projected joints ``a`` to observed joints ``j``."""
        du, dv = qu[:, :, a] - pu[:, :, j], qv[:, :, a] - pv[:, :, j]
        return np.where(both, np.fmin(du * du + dv * dv, tau2), 0.0)  # fmin: NaN -> tau2

    return cost(L, L), cost(R, R), cost(L, R), cost(R, L), tau2, both, starts


def misfit_flags(cams, J, L, R, limb, X, pu, pv, valid, tau):
    """Per view and limb ``(C, M, limbs)`` whether the view's limb, after the left/right checks,
    still misses the 3D limb ``X``: at least :data:`~.rules.LIMB_MISFIT` of its joints (of the
    pairs seen on both sides) over :data:`~.rules.LIMB_MISFIT_TAU` thresholds from their
    projections, while at least :data:`~.rules.LIMB_FITTING_VIEWS` other views fit it: a limb the
    detector made up in that view (one leg hidden behind the other, both labels near one of them),
    which neither reading explains. Arrays as in :func:`swap_flags`."""
    keep_l, keep_r, _, _, tau2, both, starts = pair_costs(cams, J, L, R, limb, X, pu, pv, valid,
                                                          LIMB_MISFIT_TAU * tau)
    far = (both & (keep_l >= 0.999 * tau2)).astype(int) + (both & (keep_r >= 0.999 * tau2))  # truncated there
    seen = np.add.reduceat(2 * both, starts, axis=-1)
    misfit = (seen > 0) & (np.add.reduceat(far, starts, axis=-1) >= LIMB_MISFIT * seen)
    fitting = np.count_nonzero((seen > 0) & ~misfit, axis=0)  # (M, limbs)
    return misfit & (fitting >= LIMB_FITTING_VIEWS)


def drop_misfits(cams, J, limbs, X, views, tau) -> np.ndarray:
    """Step 7 of the robust triangulation on one chunk: every view's limb that misses the final
    points ``X (3, n)`` (:func:`misfit_flags`; thresholds ``tau (C, n)``) is taken out of
    ``views`` (``weight`` 0, ``valid`` False, in place). Returns ``(C, n)`` the observations taken
    out. (The numba backend's twin is ``_numba_swap.drop_misfits_kernel``.)"""
    C = cams.num_cameras
    L, R, limb = limb_pairs(limbs)
    shaped = lambda a: a.reshape(C, -1, J)  # noqa: E731
    drop = misfit_flags(cams, J, L, R, limb, X, shaped(views.pu), shaped(views.pv), shaped(views.valid), shaped(tau))
    removed = np.zeros(shaped(views.pu).shape, bool)
    if drop.any():
        c, m, p = np.nonzero(drop[:, :, limb])  # every pair of a dropped limb view
        for j in (L[p], R[p]):
            removed[c, m, j] = True
        shaped(views.weight)[removed] = 0.0
        shaped(views.valid)[removed] = False
        log.debug("left/right check: %d limb views still miss and are left out", np.count_nonzero(drop))
    return removed.reshape(C, -1)


def limb_starts(limb: np.ndarray) -> np.ndarray:
    """The index of each limb's first pair in :func:`limb_pairs`' ``limb`` (for ``np.add.reduceat``)."""
    return np.flatnonzero(np.r_[True, limb[1:] != limb[:-1]])


def _median4(v: np.ndarray) -> np.ndarray:
    """Median over axis 0 of ``v (4, M)`` ignoring NaN (NaN where all four are): a sorting
    network of ``minimum``/``maximum`` (``np.nanmedian`` is ~10x slower here)."""
    k = np.isfinite(v).sum(0)
    a, b, c, d = np.where(np.isnan(v), np.inf, v)
    a, b = np.minimum(a, b), np.maximum(a, b)
    c, d = np.minimum(c, d), np.maximum(c, d)
    a, c = np.minimum(a, c), np.maximum(a, c)
    b, d = np.minimum(b, d), np.maximum(b, d)
    b, c = np.minimum(b, c), np.maximum(b, c)
    s = np.stack([a, b, c, d])
    lo = np.take_along_axis(s, np.maximum(k - 1, 0)[None] // 2, 0)[0]
    hi = np.take_along_axis(s, np.minimum(k // 2, 3)[None], 0)[0]
    out = 0.5 * (lo + hi)
    out[k == 0] = np.nan
    return out


def temporal_reference(points: np.ndarray) -> np.ndarray:
    """Points predicted for each frame from its neighbours: per coordinate, the median of frames
    ``t-2, t-1, t+1, t+2`` (``rules.TEMPORAL_OFFSETS``; robust to one wrong neighbour, e.g. a
    frame with a swap).

    Args:
        points: ``(T, ...)`` world metres, NaN where missing.

    Returns:
        ``(T, ...)``; NaN where no neighbour has the point.
    """
    T = points.shape[0]
    shifted = np.full((4,) + points.shape, np.nan)  # _median4: four neighbours
    for k, d in enumerate(TEMPORAL_OFFSETS):
        if abs(d) < T:
            if d > 0:
                shifted[k, : T - d] = points[d:]
            else:
                shifted[k, -d:] = points[: T + d]
    return _median4(shifted.reshape(4, -1)).reshape(points.shape)
