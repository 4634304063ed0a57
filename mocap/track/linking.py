"""Persistent identities for people triangulated frame by frame (the DESIGN's "track" stage).

Each frame's people (cross-view groups, :mod:`mocap.match.epipolar`, triangulated) are linked to the
tracks of the frames before by their body centre: a constant-velocity prediction, a gate that
grows with the time since the track was last seen (``gate_m + max_speed * dt``), and one optimal
assignment per frame (Hungarian, :func:`scipy.optimize.linear_sum_assignment`). A person unseen
for longer than ``max_gap_s`` ends their track; tracks shorter than ``min_track_s`` are dropped
(matches of two different people's detections, or someone passing at the edge of the volume).
A track that starts where an older one ended joins it (:func:`_join_fragments`), and a person who
comes back after a longer absence gets their old index back when their clothing colours match
one ended track clearly (:func:`relink_by_appearance`).

This is the linking step a Kalman/UKF tracker will refine (filtered state and covariances from
:func:`mocap.triangulation.triangulation_covariance`); the interface, per-frame candidates in and
a track index per candidate out, stays.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from mocap._checks import check_shape
from mocap.geometry.camera import project_rig

log = logging.getLogger(__name__)

TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")

#: A point counts as inside a camera's field of view when it projects within the image grown by
#: this fraction of its size on every side (a body centre just outside the frame still has
#: most of the body in view).
VIEW_MARGIN = 0.1


@dataclass(frozen=True)
class LinkConfig:
    """Settings of :func:`link_people`."""

    max_speed: float = 5.0
    """Fastest a body centre moves, m/s (a sprint is 6-9 m/s, a studio take rarely over 3)."""
    gate_m: float = 0.3
    """Distance from the prediction accepted on top of ``max_speed * dt`` (triangulation noise,
    the centre shifting as the torso bends), metres."""
    max_gap_s: float = 1.0
    """A track not seen for longer than this ends; the person, seen again, starts a new one."""
    min_track_s: float = 0.25
    """Tracks seen in fewer frames than this many seconds' worth are dropped (in a take shorter
    than twice that: tracks seen in fewer than half of its frames)."""
    min_appearance: float = 0.8
    """Re-identification: a person who comes back after a track ended continues it when their
    clothing colours match at least this well (Bhattacharyya coefficient, 1 = identical; the same
    person across views and minutes measures 0.9-1.0, two different people 0.3-0.5 on the Pose2Sim
    take) ..."""
    appearance_margin: float = 0.1
    """... and better by this much than any other ended track (an ambiguous match keeps a new ID)."""
    max_people: int = 0
    """Keep at most this many people, those with the most triangulated joints over the take
    (0: everyone found)."""
    volume_cameras: int = 3
    """The capture volume is where at least this many cameras (all of them in a smaller rig) see
    a point: a person whose body centre lies inside fewer cameras' fields of view in most of
    their frames is a bystander outside it (someone behind two of the cameras, seen and
    triangulated by the other two), reported in the log and dropped; 0 keeps everyone."""

    def __post_init__(self):
        if self.volume_cameras < 0:
            raise ValueError(f"volume_cameras: expected >= 0 (0 = keep bystanders), got {self.volume_cameras}")
        if self.max_people < 0:
            raise ValueError(f"max_people: expected >= 0 (0 = everyone), got {self.max_people}")
        for name in ("max_speed", "gate_m", "max_gap_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        if self.min_track_s < 0:
            raise ValueError(f"min_track_s: must be >= 0, got {self.min_track_s}")
        if not 0 < self.min_appearance <= 1 or self.appearance_margin < 0:
            raise ValueError(f"min_appearance, appearance_margin: expected (0, 1] and >= 0, got "
                             f"{self.min_appearance}, {self.appearance_margin}")


def body_centres(points: np.ndarray, joint_names) -> np.ndarray:
    """Body centre per person: the mean of the shoulders and hips (the median of every finite
    joint where a torso joint is missing).

    Args:
        points: ``(..., J, 3)`` metres, NaN where missing.
        joint_names: ``(J,)`` canonical names (must include the shoulders and hips).

    Returns:
        ``(..., 3)``; NaN where no joint is finite.
    """
    names = list(joint_names)
    missing = [n for n in TORSO if n not in names]
    if missing:
        raise ValueError(f"joint_names: body centres need {', '.join(missing)}")
    torso = points[..., [names.index(n) for n in TORSO], :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN people
        fallback = np.nanmedian(points, axis=-2)
    full = np.isfinite(torso).all(axis=(-1, -2))
    return np.where(full[..., None], torso.mean(axis=-2), fallback)


def link_people(centres: np.ndarray, fps: float, config: LinkConfig | None = None,
                poses: np.ndarray | None = None) -> np.ndarray:
    """Track index of every candidate person of every frame.

    Args:
        centres: ``(T, K, 3)`` body centres of the ``K`` candidates of each frame (NaN: none).
        fps: frames per second (the gates are per second).
        config: thresholds (defaults if None).
        poses: optional ``(T, K, J, 3)`` the candidates' joints: candidates within a track's
            gate are then assigned by the median joint distance to the track's last pose moved
            by its predicted displacement (two people side by side differ in pose more than in
            centre), not by the centre distance alone.

    Returns:
        ``(T, K)`` int64: track index (0, 1, ... by first appearance, short tracks removed and
        the rest renumbered) or -1 for candidates in no kept track.
    """
    config = config or LinkConfig()
    centres, poses = _checked_link_inputs(centres, fps, poses)
    T, K, _ = centres.shape
    out = -np.ones((T, K), dtype=np.int64)
    tracks = _LiveTracks.none(poses.shape[2:] if poses is not None else (1, 3))
    n_tracks = 0
    max_gap = config.max_gap_s * fps
    # a track is kept (and confirmed) once seen this often; a take shorter than twice that keeps
    # tracks seen in half of it, so a one-second calibration pose or a static trial is not lost
    confirmed = max(1, min(int(np.ceil(config.min_track_s * fps)), T // 2))
    for t in range(T):
        tracks = tracks.select((t - tracks.last) <= max_gap)
        cand = np.flatnonzero(np.isfinite(centres[t]).all(-1))
        if not len(cand):
            continue
        matched = _continue_tracks(tracks, t, cand, centres, poses, fps, config, confirmed, out)
        fresh = cand[~matched]
        if len(fresh):
            new_ids = np.arange(n_tracks, n_tracks + len(fresh))
            tracks = tracks.started(t, centres[t, fresh], new_ids, poses[t, fresh] if poses is not None else None)
            out[t, fresh] = new_ids
            n_tracks += len(fresh)
    out = _join_fragments(out, centres, n_tracks, fps, config)
    return without_short_tracks(out, n_tracks, confirmed)


def _checked_link_inputs(centres, fps: float, poses) -> tuple[np.ndarray, np.ndarray | None]:
    """``centres (T, K, 3)`` and ``poses (T, K, J, 3)`` (or None) as float arrays, shapes and
    ``fps`` checked."""
    centres = check_shape(np.asarray(centres, dtype=np.float64), "T K 3", "centres")
    if poses is not None:
        poses = check_shape(np.asarray(poses, dtype=np.float64), "T K J 3", "poses")
        if poses.shape[:2] != centres.shape[:2]:
            raise ValueError(f"poses: expected {centres.shape[:2]} on the first two axes, got {poses.shape[:2]}")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps: expected a positive number, got {fps}")
    return centres, poses


@dataclass(eq=False)
class _LiveTracks:
    """The tracks still alive while :func:`link_people` walks the frames, one row each (``N``).

    The arrays are updated in place as tracks are matched; :meth:`select` and :meth:`started`
    give new rows."""

    pos: np.ndarray
    """``(N, 3)`` last centre, metres."""
    vel: np.ndarray
    """``(N, 3)`` velocity, m/s; NaN for a track seen once."""
    last: np.ndarray
    """``(N,)`` int64 last frame matched."""
    ids: np.ndarray
    """``(N,)`` int64 track index."""
    pose: np.ndarray
    """``(N, J, 3)`` last pose (zeros ``(N, 1, 3)`` when linking without poses)."""
    seen: np.ndarray
    """``(N,)`` int64 frames matched so far."""

    @classmethod
    def none(cls, pose_shape: tuple[int, ...]) -> _LiveTracks:
        return cls(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64),
                   np.zeros((0,) + tuple(pose_shape)), np.zeros(0, dtype=np.int64))

    def select(self, keep: np.ndarray) -> _LiveTracks:
        return _LiveTracks(self.pos[keep], self.vel[keep], self.last[keep], self.ids[keep], self.pose[keep],
                           self.seen[keep])

    def started(self, t: int, centres: np.ndarray, ids: np.ndarray, poses: np.ndarray | None) -> _LiveTracks:
        """These tracks and new ones at frame ``t``: ``centres (M, 3)``, ``ids (M,)``, ``poses (M, J, 3)``."""
        n = len(ids)
        poses = poses if poses is not None else np.zeros((n,) + self.pose.shape[1:])
        return _LiveTracks(np.concatenate([self.pos, centres]), np.concatenate([self.vel, np.full((n, 3), np.nan)]),
                           np.concatenate([self.last, np.full(n, t)]), np.concatenate([self.ids, ids]),
                           np.concatenate([self.pose, poses]), np.concatenate([self.seen, np.ones(n, dtype=np.int64)]))


def _continue_tracks(tracks: _LiveTracks, t: int, cand: np.ndarray, centres: np.ndarray, poses: np.ndarray | None,
                     fps: float, config: LinkConfig, confirmed: int, out: np.ndarray) -> np.ndarray:
    """Assign frame ``t``'s candidates ``cand (M,)`` to live tracks (one Hungarian assignment
    within the gates), update those tracks and ``out`` in place; returns ``(M,)`` bool matched."""
    matched = np.zeros(len(cand), dtype=bool)
    if not len(tracks.ids):
        return matched
    dt = (t - tracks.last) / fps  # (N,)
    pred = tracks.pos + np.nan_to_num(tracks.vel) * dt[:, None]  # a track seen once: no velocity yet
    cost = np.linalg.norm(pred[:, None] - centres[t, cand][None], axis=-1)  # (N, M)
    gate = config.gate_m + config.max_speed * dt
    inside = cost <= gate[:, None]
    rank = cost
    if poses is not None:
        moved = tracks.pose + (pred - tracks.pos)[:, None]  # (N, J, 3)
        d = np.linalg.norm(moved[:, None] - poses[t, cand][None], axis=-1)  # (N, M, J)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            rank = np.nanmedian(d, axis=-1)
        rank = np.where(np.isfinite(rank), rank, cost)
    # tentative tracks (seen in fewer frames than a kept track needs) rank behind confirmed
    # ones: a person split in two for a frame must not hand their track to the fragment
    rank = rank + np.where(tracks.seen < confirmed, config.gate_m, 0.0)[:, None]
    rows, cols = linear_sum_assignment(np.where(inside, rank, 1e6))
    for r, c in zip(rows, cols):
        if not inside[r, c]:
            continue
        new = centres[t, cand[c]]
        v = (new - tracks.pos[r]) / max(dt[r], 1e-9)
        v *= min(1.0, config.max_speed / max(np.linalg.norm(v), 1e-9))  # one bad frame must not fling it
        tracks.vel[r] = v if not np.isfinite(tracks.vel[r]).all() else 0.5 * (tracks.vel[r] + v)
        tracks.pos[r], tracks.last[r] = new, t
        tracks.seen[r] += 1
        if poses is not None:
            tracks.pose[r] = np.where(np.isfinite(poses[t, cand[c]]), poses[t, cand[c]],
                                      tracks.pose[r] + (new - pred[r]))
        out[t, cand[c]] = tracks.ids[r]
        matched[c] = True
    return matched


def without_short_tracks(track: np.ndarray, n_tracks: int, confirmed: int) -> np.ndarray:
    """``track (T, K)`` with tracks seen in fewer than ``confirmed`` frames set to -1 and the rest
    renumbered 0, 1, ... by first appearance."""
    T = len(track)
    counts = np.bincount(track[track >= 0], minlength=n_tracks)
    keep = counts >= confirmed
    first = np.full(n_tracks, T)
    tt, kk = np.nonzero(track >= 0)
    np.minimum.at(first, track[tt, kk], tt)
    order = [i for i in np.argsort(first, kind="stable") if keep[i]]
    remap = -np.ones(n_tracks + 1, dtype=np.int64)
    remap[order] = np.arange(len(order))
    return remap[track]


def _join_fragments(track: np.ndarray, centres: np.ndarray, n_tracks: int, fps: float, config: LinkConfig) -> np.ndarray:
    """Join a track that starts where an older one ends: a person split for a frame by the
    matching, or whose track a wrong candidate pulled away, continues as a second track that
    the online linking cannot give back. Track ``b`` joins ``a`` when ``b`` starts at most
    ``max_gap_s`` after ``a``'s last frame (overlapping it by at most 2 frames) and ``b``'s first
    centre lies within ``a``'s gate (at least one frame's motion) of ``a``'s last centre; frames
    where both have a candidate keep ``a``'s. One pass in order of first appearance, so chains
    of fragments join up."""
    track = track.copy()
    tt, kk = np.nonzero(track >= 0)
    if not len(tt):
        return track
    ids = track[tt, kk]
    first = np.full(n_tracks, np.iinfo(np.int64).max)
    final = np.full(n_tracks, -1)
    np.minimum.at(first, ids, tt)
    np.maximum.at(final, ids, tt)
    live = final >= 0
    end_k = np.zeros(n_tracks, dtype=np.int64)  # candidate index of each track's last frame
    start_k = np.zeros(n_tracks, dtype=np.int64)
    end_k[ids[tt == final[ids]]] = kk[tt == final[ids]]
    start_k[ids[tt == first[ids]]] = kk[tt == first[ids]]
    for b in np.argsort(first):
        if not live[b]:
            continue
        near = np.flatnonzero(live & (first < first[b]) & (final <= first[b] + 2)
                              & (first[b] - final <= config.max_gap_s * fps))
        near = near[near != b]
        if not len(near):
            continue
        dt = np.maximum(np.abs(first[b] - final[near]), 1) / fps
        d = np.linalg.norm(centres[first[b], start_k[b]] - centres[final[near], end_k[near]], axis=-1)
        ok = d <= config.gate_m + config.max_speed * dt
        if not ok.any():
            continue
        a = near[ok][np.argmin(d[ok])]
        is_b = track == b
        both = is_b.any(-1) & (track == a).any(-1)  # frames where both have a candidate: a's stays
        track[is_b & both[:, None]] = -1
        track[is_b & ~both[:, None]] = a
        if final[b] > final[a]:
            final[a], end_k[a] = final[b], end_k[b]
        live[b] = False
    return track


def group_appearance(keypoints, index: np.ndarray, K: int) -> np.ndarray | None:
    """Mean appearance descriptor of each group over the views it holds.

    Args:
        keypoints: :class:`~mocap.io.keypoints.Keypoints2D` with ``extras["appearance"] (T, C, P, D)``.
        index: ``(T, C, P)`` group of every detection (-1: none).
        K: number of groups.

    Returns:
        ``(T, K, D)`` (NaN where a group has no descriptor in a frame), or None when the
        keypoints carry no descriptors.
    """
    app = keypoints.extras.get("appearance") if keypoints.extras else None
    if app is None or np.shape(app)[:3] != keypoints.data.shape[:3]:
        return None
    T, C = index.shape[:2]
    per = np.full((T, K, C, app.shape[-1]), np.nan)
    t, c, p = np.nonzero(index >= 0)
    per[t, index[t, c, p], c] = app[t, c, p]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # groups without a descriptor in a frame
        return np.nanmean(per, axis=2)


def relink_by_appearance(track: np.ndarray, appearance: np.ndarray, config: LinkConfig | None = None) -> np.ndarray:
    """Give a person who comes back after their track ended their old track index.

    Tracks are compared by their mean appearance descriptor (:mod:`mocap.detect.appearance`);
    track ``b`` continues ``a`` when ``a`` ended before ``b`` started, their similarity is at
    least ``min_appearance`` and better by ``appearance_margin`` than that of every other track
    ended before ``b`` started and of every track alive when ``b`` started (an ambiguous match
    keeps its new index). In order of first appearance, so a person may leave and come back
    several times.

    Args:
        track: ``(T, K)`` from :func:`link_people` (-1: no track).
        appearance: ``(T, K, D)`` descriptor of each candidate (NaN where unknown).
        config: thresholds (defaults if None).

    Returns:
        ``(T, K)`` track indices, renumbered 0, 1, ... by first appearance.
    """
    from mocap.detect.appearance import appearance_similarity

    config = config or LinkConfig()
    track = np.array(track, dtype=np.int64)
    n = int(track.max()) + 1 if track.size else 0
    if n < 2:
        return track
    desc = np.full((n, appearance.shape[-1]), np.nan)
    tt, kk = np.nonzero(track >= 0)
    ids = track[tt, kk]
    for i in range(n):  # a handful of tracks
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no descriptor at all
            desc[i] = np.nanmean(appearance[tt[ids == i], kk[ids == i]], axis=0)
    first = np.full(n, track.shape[0])
    final = np.full(n, -1)
    np.minimum.at(first, ids, tt)
    np.maximum.at(final, ids, tt)
    sim = appearance_similarity(desc[:, None], desc[None])  # (n, n)
    owner = np.arange(n)
    for b in np.argsort(first):
        others = np.flatnonzero((np.arange(n) != b) & (owner == np.arange(n)) & (first < first[b]))
        ended = others[final[others] < first[b]]
        if not len(ended):
            continue
        s = np.nan_to_num(sim[b, others], nan=0.0)
        best = others[np.argmax(s)]
        rest = np.delete(s, np.argmax(s))
        if best in ended and s.max() >= config.min_appearance and (not len(rest) or s.max() - rest.max() >= config.appearance_margin):
            owner[owner == b] = best
            final[best] = max(final[best], final[b])
    track = np.where(track >= 0, owner[np.maximum(track, 0)], -1)
    present = np.unique(track[track >= 0])
    first_row = [np.flatnonzero((track == i).any(-1))[0] for i in present]
    remap = -np.ones(n + 1, dtype=np.int64)
    remap[present[np.argsort(first_row, kind="stable")]] = np.arange(len(present))
    return remap[track]


def cameras_seeing(rig, points: np.ndarray, margin: float = VIEW_MARGIN) -> np.ndarray:
    """Number of cameras whose field of view holds each point: in front of the camera and
    projecting (pinhole, no distortion: it folds far-off points back into the image) within the
    image grown by ``margin`` of its size on every side.

    Args:
        rig: the calibration.
        points: ``(..., 3)`` metres; NaN points count 0 cameras.

    Returns:
        ``(...)`` int64.
    """
    pix = project_rig(rig, np.asarray(points, dtype=np.float64), distort=False)  # (..., C, 2)
    size = rig.sizes.astype(np.float64)  # (C, 2) width, height
    with np.errstate(invalid="ignore"):
        inside = ((pix >= -margin * size) & (pix <= (1 + margin) * size)).all(-1)  # NaN: False
    return inside.sum(-1)


def without_bystanders(track: np.ndarray, centres: np.ndarray, rig, config: LinkConfig | None = None) -> np.ndarray:
    """``track (T, K)`` without the people outside the rig's capture volume: those whose body
    centres ``(T, K, 3)`` lie inside fewer than ``config.volume_cameras`` cameras' fields of view
    (all cameras when the rig has fewer) in more than half of their frames (the median count):
    someone seen and triangulated by two cameras from behind the others is a bystander, not a
    performer. Dropped people are logged; the rest are renumbered 0, 1, ... by first appearance."""
    config = config or LinkConfig()
    need = min(config.volume_cameras, len(rig))
    n = int(track.max()) + 1 if track.size else 0
    if need == 0 or n == 0:
        return track
    tt, kk = np.nonzero(track >= 0)
    ids = track[tt, kk]
    counts = cameras_seeing(rig, centres[tt, kk])  # (M,)
    drop = np.zeros(n, dtype=bool)
    for i in np.unique(ids):  # a handful of tracks
        drop[i] = np.median(counts[ids == i]) < need
    if not drop.any():
        return track
    for i in np.flatnonzero(drop):
        frames = tt[ids == i]
        where = np.nanmedian(centres[frames, kk[ids == i]], axis=0)
        log.info("bystander outside the capture volume dropped: frames %d-%d (%d frames), body centre near "
                 "(%.2f, %.2f, %.2f) m, inside %.0f camera(s)' fields of view (the volume needs %d; "
                 "link.volume_cameras: 0 keeps bystanders)", frames.min(), frames.max(), len(frames), *where,
                 np.median(counts[ids == i]), need)
    return without_short_tracks(np.where(drop[np.maximum(track, 0)], -1, track), n, 1)
