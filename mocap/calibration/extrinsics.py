"""Initial camera poses from simultaneous board views.

1. Each camera's board pose per frame (planar PnP with its intrinsics).
2. For every camera pair, the relative pose b_from_a = b_from_board · board_from_a per shared
   frame; a consensus (most frames agreeing within a few degrees and centimetres) rejects bad
   views, and the agreeing frames are averaged (chordal mean of rotations).
3. A maximum spanning tree over the pair graph (weights: agreeing frames) chains the pairs
   into one pose per camera relative to a root camera; cameras outside the root's connected
   group are reported, not guessed.
4. For a 180°-symmetric board, views whose corner order is turned relative to the others in
   the same frame are found and flipped (the bundle adjustment then sees consistent corners).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree

from mocap.calibration.boards import Board
from mocap.calibration.bundle import rotvec_to_rotmat_fast

log = logging.getLogger(__name__)

ANGLE_TOL_DEG = 5.0
TRANS_TOL = 0.1  # relative to the baseline, plus 2 cm


def _rotmat_to_rotvec(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R).as_rotvec()


def board_poses(xy: np.ndarray, K: np.ndarray, dist: np.ndarray, board: Board,
                outlier_px: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cam_from_board for each frame of one camera, with gross corner outliers removed.

    Args:
        xy: ``(F, N, 2)`` pixel corners, NaN-missing.
        K: ``(3, 3)``; dist: ``(5,)``.
        outlier_px: a corner whose residual after the planar PnP fit exceeds
            ``max(outlier_px, 5 × the view's median residual)`` is dropped and the pose refitted
            (a mis-detected corner would otherwise slow and bias the bundle adjustment).

    Returns:
        ``T (F, 4, 4)`` cam_from_board (NaN where the board is not usable), per-view RMS
        ``(F,)`` pixels, and ``kept (F, N)`` bool, the corners that fit.
    """
    import cv2

    from mocap.calibration.detect_corners import MIN_CORNERS

    F = len(xy)
    T = np.full((F, 4, 4), np.nan)
    rms = np.full(F, np.nan)
    obj = board.object_points
    seen = np.isfinite(xy[..., 0])
    kept = seen.copy()
    for f in np.flatnonzero(seen.sum(-1) >= MIN_CORNERS):
        for _ in range(2):
            use = kept[f]
            o, p = obj[use], xy[f, use]
            ok, rv, tv = cv2.solvePnP(o, p, K, dist, flags=cv2.SOLVEPNP_IPPE)
            if not ok:
                break
            rv, tv = cv2.solvePnPRefineLM(o, p, K, dist, rv, tv)
            proj, _ = cv2.projectPoints(obj[seen[f]], rv, tv, K, dist)
            e = np.full(len(obj), np.inf)
            e[seen[f]] = np.linalg.norm(proj.reshape(-1, 2) - xy[f, seen[f]], axis=-1)
            good = e <= max(outlier_px, 5 * np.median(e[use]))
            if np.array_equal(good, use) or good.sum() < MIN_CORNERS:
                break
            kept[f] = good
        if not ok:
            kept[f] = False
            continue
        rms[f] = np.sqrt(np.mean(e[kept[f]] ** 2))
        T[f] = np.eye(4)
        T[f, :3, :3] = cv2.Rodrigues(rv)[0]
        T[f, :3, 3] = tv.ravel()
    return T, rms, kept


def board_flip_transform(board: Board) -> np.ndarray:
    """``(4, 4)`` board_from_flipped-board: a 180° turn about the board normal through its centre.

    Corner ``i`` of a view read in reverse order is physical corner ``N-1-i``, at
    ``F @ X_i``; F is its own inverse.
    """
    F = np.diag([-1.0, -1.0, 1.0, 1.0])
    F[:2, 3] = board.object_points[0, :2] + board.object_points[-1, :2]  # X_{N-1-i} = X_0 + X_{N-1} - X_i
    return F


def invert_rigid(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms ``(..., 4, 4)``: ``b_from_a`` -> ``a_from_b``.

    Uses ``R^T`` and ``-R^T t`` instead of a general matrix inverse, so the result is rigid to
    machine precision.
    """
    out = np.zeros_like(T)
    Rt = np.swapaxes(T[..., :3, :3], -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, T[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def _angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """Pairwise rotation angles ``(A, B)`` degrees between ``(A,3,3)`` and ``(B,3,3)``."""
    tr = np.einsum("aij,bij->ab", Ra, Rb)
    return np.degrees(np.arccos(np.clip((tr - 1) / 2, -1, 1)))


def _chordal_mean(R: np.ndarray) -> np.ndarray:
    U, _, Vt = np.linalg.svd(R.sum(0))
    D = np.diag([1, 1, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


@dataclass(frozen=True, eq=False)
class PairPose:
    """Consensus relative pose of one camera pair: b_from_a ``(4, 4)`` from ``n_agree`` of ``n_shared`` frames."""

    a: int
    b: int
    b_from_a: np.ndarray
    n_shared: int
    n_agree: int


def pair_pose(Ta: np.ndarray, Tb: np.ndarray, flip: np.ndarray | None) -> PairPose | None:
    """Consensus b_from_a from per-frame cam_from_board ``(S, 4, 4)`` of both cameras.

    With ``flip`` (symmetric board), each frame offers two candidates (b's view read either way).
    """
    cands = [Tb @ invert_rigid(Ta)]
    if flip is not None:
        cands.append(Tb @ flip @ invert_rigid(Ta))
    M = np.concatenate(cands)  # (k*S, 4, 4)
    S = len(Ta)
    ang = _angle_deg(M[:, :3, :3], M[:, :3, :3])
    dt = np.linalg.norm(M[:, None, :3, 3] - M[None, :, :3, 3], axis=-1)
    scale = np.linalg.norm(M[:, :3, 3], axis=-1)[:, None]
    close = (ang < ANGLE_TOL_DEG) & (dt < TRANS_TOL * scale + 0.02)
    per_frame = close.reshape(len(M), len(cands), S).any(1)  # frame agrees through either candidate
    score = per_frame.sum(1) - 1e-6 * np.where(close, ang, 0).sum(1)
    best = int(np.argmax(score))
    agree = per_frame[best]
    if agree.sum() == 0:
        return None
    # for each agreeing frame keep the candidate nearest the best one
    k = np.argmin(np.stack([_angle_deg(M[best:best + 1, :3, :3], c[:, :3, :3])[0] for c in cands]), axis=0)
    chosen = np.stack([cands[k[s]][s] for s in range(S)])[agree]
    out = np.eye(4)
    out[:3, :3] = _chordal_mean(chosen[:, :3, :3])
    out[:3, 3] = np.median(chosen[:, :3, 3], axis=0)
    return PairPose(-1, -1, out, S, int(agree.sum()))


@dataclass(frozen=True, eq=False)
class ExtrinsicInit:
    """Initial rig: poses of the connected cameras and per-frame board poses.

    Attributes:
        cam_from_ref: ``(C, 4, 4)``, NaN for cameras not connected to the root.
        ref_from_board: ``(F, 4, 4)``, NaN for frames seen by no connected camera.
        root: index of the reference camera.
        connected: ``(C,)`` bool.
        shared: ``(C, C)`` int, frames with the board seen by both cameras.
        agree: ``(C, C)`` int, of those, frames agreeing with the pair's consensus pose.
        flipped: ``(C, F)`` bool, views whose corner order was reversed (symmetric boards).
        messages: human-readable findings.
    """

    cam_from_ref: np.ndarray
    ref_from_board: np.ndarray
    root: int
    connected: np.ndarray
    shared: np.ndarray
    agree: np.ndarray
    flipped: np.ndarray
    messages: list = field(default_factory=list)


def initialize_extrinsics(cam_from_board: np.ndarray, board: Board, names: list[str], n_corners: np.ndarray) -> ExtrinsicInit:
    """Chain pairwise relative poses into one pose per camera (maximum spanning tree).

    Args:
        cam_from_board: ``(C, F, 4, 4)`` per-view board poses, NaN where not seen.
        board: the board (its symmetry decides whether views may be flipped).
        names: ``C`` camera names, for messages.
        n_corners: ``(C, F)`` corners seen per view (the best view of a frame anchors its board pose).
    """
    C, F = cam_from_board.shape[:2]
    seen = np.isfinite(cam_from_board[:, :, 0, 0])
    flip = board_flip_transform(board) if board.symmetric else None
    shared = (seen[:, None, :] & seen[None, :, :]).sum(-1)
    agree = np.zeros((C, C), np.int64)
    rel: dict[tuple[int, int], np.ndarray] = {}
    for a in range(C):
        for b in range(a + 1, C):
            common = seen[a] & seen[b]
            if not common.any():
                continue
            pp = pair_pose(cam_from_board[a, common], cam_from_board[b, common], flip)
            if pp is None:
                continue
            agree[a, b] = agree[b, a] = pp.n_agree
            rel[(a, b)] = pp.b_from_a
            rel[(b, a)] = invert_rigid(pp.b_from_a)
    messages = []
    n_comp, labels = connected_components(agree > 0, directed=False)
    sizes = np.bincount(labels, weights=seen.any(1).astype(float))
    main = int(np.argmax(sizes))
    connected = labels == main
    degree = np.where(connected, agree.sum(1), -1)
    root = int(np.argmax(degree))
    for c in np.flatnonzero(~connected):
        if not seen[c].any():
            messages.append(f"camera {names[c]}: never sees the board; it cannot be calibrated")
        else:
            others = [names[o] for o in np.flatnonzero(connected)]
            messages.append(f"camera {names[c]}: shares no simultaneous board view with {', '.join(others)}; "
                            "record frames where it and one of them see the board together")
    # maximum spanning tree: minimise (max + 1 - weight) over edges that exist
    W = np.where(agree > 0, agree.max() + 1 - agree, 0).astype(float)
    W[~connected] = 0
    W[:, ~connected] = 0
    tree = minimum_spanning_tree(W)
    tree = tree + tree.T
    order, pred = breadth_first_order(tree, root, directed=False)
    cam_from_ref = np.full((C, 4, 4), np.nan)
    cam_from_ref[root] = np.eye(4)
    for c in order[1:]:
        p = pred[c]
        cam_from_ref[c] = rel[(p, c)] @ cam_from_ref[p]
    flipped = np.zeros((C, F), bool)
    ref_from_board = np.full((F, 4, 4), np.nan)
    usable = seen & connected[:, None]
    for f in np.flatnonzero(usable.any(0)):
        views = np.flatnonzero(usable[:, f])
        anchor = views[np.argmax(n_corners[views, f])]
        ref_from_board[f] = invert_rigid(cam_from_ref[anchor]) @ cam_from_board[anchor, f]
        if flip is None:
            continue
        for c in views:
            if c == anchor:
                continue
            cand = invert_rigid(cam_from_ref[c]) @ cam_from_board[c, f]
            d0 = _angle_deg(cand[None, :3, :3], ref_from_board[f, None, :3, :3])[0, 0]
            d1 = _angle_deg((cand @ flip)[None, :3, :3], ref_from_board[f, None, :3, :3])[0, 0]
            flipped[c, f] = d1 < d0
    if flipped.any():
        for c in np.flatnonzero(flipped.any(1)):
            messages.append(f"camera {names[c]}: saw the symmetric board turned 180° relative to the other cameras in "
                            f"{int(flipped[c].sum())} frame(s) (indices {_short_list(np.flatnonzero(flipped[c]))}); "
                            "corner order reversed to match — an asymmetric board (cols + rows odd) avoids this")
    return ExtrinsicInit(cam_from_ref, ref_from_board, root, connected, shared, agree, flipped, messages)


def _short_list(idx: np.ndarray, n: int = 10) -> str:
    s = ", ".join(str(int(i)) for i in idx[:n])
    return s + (f", … ({len(idx)} in all)" if len(idx) > n else "")


def transforms_to_rvec_tvec(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(..., 4, 4)`` -> rotvec ``(..., 3)``, t ``(..., 3)``."""
    shape = T.shape[:-2]
    rv = _rotmat_to_rotvec(T[..., :3, :3].reshape(-1, 3, 3)).reshape(shape + (3,))
    return rv, T[..., :3, 3].copy()


def rvec_tvec_to_transforms(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    T = np.zeros(rvec.shape[:-1] + (4, 4))
    T[..., :3, :3] = rotvec_to_rotmat_fast(rvec)
    T[..., :3, 3] = tvec
    T[..., 3, 3] = 1.0
    return T
