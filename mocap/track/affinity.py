"""Identities from temporal affinity in the images: each frame, every view's 2D people are first
matched to the existing tracks' predicted projections, and only the rest go through the
cross-view epipolar matching that starts new tracks (as MVPose and 4D Association combine time
and geometry).

Per frame: each track's joints are predicted (constant velocity from its last two
triangulations) and projected into every camera (full camera model). In each view the cost of
track ``k`` against detection ``p`` is the median over their common joints of the pixel distance
over the detection's size, the smaller of the labelled and the left/right-mirrored detection
(a detector flips people seen from behind), and one optimal assignment per view
(:func:`scipy.optimize.linear_sum_assignment`) within ``gate`` gives the track its views. The
detections left over are grouped across views by the epipolar matching
(:func:`mocap.match.epipolar.group_frame`); a group of two views or more is triangulated and
continues a track that lost its views lately when its body centre is within that track's gate
(``LinkConfig.gate_m + max_speed * dt``), else it starts a new track. A track unseen for
``LinkConfig.max_gap_s`` ends; tracks seen in fewer frames than ``min_track_s`` are dropped, and
returning performers get their old index back by their clothing colours as with the
body-centre linker (:func:`mocap.track.linking.relink_by_appearance`).

Crossing performers keep their identities because, where two people's body centres come
within a few centimetres' worth of each other's uncertainty in 3D, their joints stay tens of
pixels apart in the views that see them apart, and each view is decided on its own.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from mocap.geometry import Rig
from mocap.io.keypoints import Keypoints2D
from mocap.match.epipolar import AssociationConfig, epipolar_costs, group_frame, person_sizes
from mocap.skeleton.joints import left_right_permutation
from mocap.track.linking import (LinkConfig, body_centres, group_appearance, relink_by_appearance, without_bystanders,
                                 without_short_tracks)
from mocap.triangulation.people import TriangulateConfig, triangulate_people

#: A detection joins a track in a view when the median joint distance to the track's predicted
#: projection is at most this fraction of the detection's size (two people side by side differ
#: by about a third of a body height; detector noise is 1-2 % of it).
GATE = 0.12

#: Joints both the detection and the prediction must have for a cost (fewer: no match).
MIN_COMMON = 4


@dataclass(eq=False)
class _Tracks:
    """Live tracks while :func:`temporal_people_views` walks the frames (``K`` rows)."""

    pose: np.ndarray
    """``(K, J, 3)`` last triangulated joints (NaN where never seen), metres."""
    vel: np.ndarray
    """``(K, J, 3)`` joint velocities, m/s (0 until seen twice)."""
    last: np.ndarray
    """``(K,)`` last frame a track was triangulated."""
    ids: np.ndarray
    """``(K,)`` track index."""

    def keep(self, mask: np.ndarray) -> _Tracks:
        return _Tracks(self.pose[mask], self.vel[mask], self.last[mask], self.ids[mask])

    def added(self, pose: np.ndarray, t: int, ids: np.ndarray) -> _Tracks:
        n = len(ids)
        return _Tracks(np.concatenate([self.pose, pose]), np.concatenate([self.vel, np.zeros_like(pose)]),
                       np.concatenate([self.last, np.full(n, t)]), np.concatenate([self.ids, ids]))


def view_costs(predicted_px: np.ndarray, detections: np.ndarray, mirror: np.ndarray,
               min_confidence: float) -> np.ndarray:
    """Cost of every track against every detection of one view.

    Args:
        predicted_px: ``(K, J, 2)`` tracks' predicted projections (NaN: none).
        detections: ``(P, J, 3)`` x px, y px, confidence.
        mirror: ``(J,)`` left/right permutation.
        min_confidence: weaker keypoints do not count.

    Returns:
        ``(K, P)`` median joint distance over the detection's size (the smaller of labelled and
        mirrored); inf with fewer than :data:`MIN_COMMON` common joints.
    """
    ok = np.nan_to_num(detections[..., 2]) >= min_confidence
    xy = np.where(ok[..., None], detections[..., :2], np.nan)  # (P, J, 2)
    size = person_sizes(detections, min_confidence)  # (P,)
    out = np.full((len(predicted_px), len(detections)), np.inf)
    for labels in (xy, xy[:, mirror]):
        d = np.linalg.norm(predicted_px[:, None] - labels[None], axis=-1)  # (K, P, J)
        enough = np.isfinite(d).sum(-1) >= MIN_COMMON
        with np.errstate(divide="ignore", invalid="ignore"):  # a detection of size 0
            med = nan_median(d) / size[None]
        out = np.minimum(out, np.where(enough & np.isfinite(med), med, np.inf))
    return out


def nan_median(a: np.ndarray) -> np.ndarray:
    """``np.nanmedian(a, axis=-1)`` (NaN where a row has no finite value), by one sort: numpy's
    own takes a masked-array path on small arrays that costs milliseconds per call, too slow for
    a live frame."""
    s = np.sort(a, axis=-1)  # NaN last
    n = np.isfinite(a).sum(-1)
    lo = np.take_along_axis(s, np.maximum((n - 1) // 2, 0)[..., None], -1)[..., 0]
    hi = np.take_along_axis(s, np.maximum(n // 2, 0)[..., None], -1)[..., 0]
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, (lo + hi) / 2, np.nan)


def assign_views(predicted_px: np.ndarray, frame: np.ndarray, mirror: np.ndarray, min_confidence: float,
                 gate: float = GATE) -> np.ndarray:
    """Detections of one frame given to tracks by their predicted projections.

    Args:
        predicted_px: ``(K, C, J, 2)`` tracks' predicted projections.
        frame: ``(C, P, J, 3)`` the frame's detections.
        mirror: ``(J,)`` left/right permutation.
        min_confidence: weaker keypoints do not count.
        gate: largest cost accepted (:data:`GATE`).

    Returns:
        ``(C, P)`` int: the track row each detection joins, -1 for none.
    """
    C, P = frame.shape[:2]
    out = -np.ones((C, P), dtype=np.int64)
    if not len(predicted_px):
        return out
    for c in range(C):  # one small assignment per view
        present = np.isfinite(frame[c, :, :, 0]).any(-1)
        if not present.any():
            continue
        cost = view_costs(predicted_px[:, c], frame[c], mirror, min_confidence)
        cost[:, ~present] = np.inf
        rows, cols = linear_sum_assignment(np.where(cost <= gate, cost, 1e6))
        ok = cost[rows, cols] <= gate
        out[c, cols[ok]] = rows[ok]
    return out


def temporal_people_views(keypoints: Keypoints2D, rig: Rig, fps: float, match: AssociationConfig | None = None,
                          triangulate: TriangulateConfig | None = None, link: LinkConfig | None = None) -> np.ndarray:
    """Every person's detections per view, identities carried by temporal affinity in the images.

    Args:
        keypoints: ``data (T, C, P, J, 3)``, cameras in ``rig`` order.
        rig: the calibration.
        fps: frame rate.
        match: cross-view matching of the detections no track takes; defaults if None.
        triangulate: how each frame's tracks and new groups are triangulated.
        link: gates, gaps, short tracks, appearance (:class:`~mocap.track.linking.LinkConfig`).

    Returns:
        ``(T, P, C, J, 3)`` like :func:`mocap.track.people.people_views`: person ``p``'s detection
        in view ``c`` at frame ``t`` (NaN where not seen), the most seen person first.
    """
    match, link = match or AssociationConfig(), link or LinkConfig()
    triangulate = triangulate or TriangulateConfig()
    data, names = keypoints.data, keypoints.joint_names
    owner = _walk_frames(data, names, rig, fps, match, triangulate, link)  # (T, C, P)
    confirmed = max(1, min(int(np.ceil(link.min_track_s * fps)), len(data) // 2))
    n = int(owner.max()) + 1 if owner.size else 0
    per = owner.reshape(len(data), -1)
    owner = without_short_tracks(per, n, confirmed).reshape(owner.shape)
    owner = _relinked(owner, keypoints, link)
    T, C, Pd, J, _ = data.shape
    P = int(owner.max()) + 1 if owner.size and owner.max() >= 0 else 0
    person = np.full((T, P, C, J, 3), np.nan)
    t, c, p = np.nonzero(owner >= 0)
    person[t, owner[t, c, p], c] = data[t, c, p]
    person = people_inside_volume(person, rig, names, triangulate, link)
    P = person.shape[1]
    seen = np.isfinite(person[..., 0]).any(-1).sum(-1)  # (T, P) views per person
    order = np.argsort(-(seen >= 2).sum(0), kind="stable")  # the most seen first; ties: first appearance
    return person[:, order[: link.max_people or P]]


def people_inside_volume(person: np.ndarray, rig: Rig, names, triangulate: TriangulateConfig,
                         link: LinkConfig) -> np.ndarray:
    """``person (T, P, C, J, 3)`` without the bystanders outside the rig's capture volume
    (:func:`mocap.track.linking.without_bystanders` on the people's triangulated body centres);
    a person never triangulated is kept."""
    if not link.volume_cameras or person.shape[1] == 0:
        return person
    tri = triangulate_people(rig, person, names, triangulate, temporal=False)
    centres = body_centres(tri.points, names)  # (T, P, 3)
    P = centres.shape[1]
    track = np.where(np.isfinite(centres).all(-1), np.arange(P)[None], -1)  # (T, P)
    kept = without_bystanders(track, centres, rig, link)
    keep = ((kept >= 0) | (track < 0).all(0)).any(0)  # (P,)
    return person[:, keep]


def _relinked(owner: np.ndarray, keypoints: Keypoints2D, link: LinkConfig) -> np.ndarray:
    """Tracks re-identified by the mean appearance descriptor of their views (unchanged
    without descriptors)."""
    if owner.max() < 0:
        return owner
    T, K = owner.shape[0], int(owner.max()) + 1
    appearance = group_appearance(keypoints, owner, K)  # (T, K, D)
    if appearance is None:
        return owner
    track = np.where(np.isfinite(appearance).any(-1), np.arange(K)[None], -1)  # (T, K): seen with a descriptor
    new = relink_by_appearance(track, appearance, link)  # (T, K)
    remap = np.full((T, K + 1), -1)
    remap[:, :K] = new
    return np.where(owner >= 0, np.take_along_axis(remap, np.where(owner >= 0, owner, K).reshape(T, -1), 1)
                    .reshape(owner.shape), -1)


def _walk_frames(data: np.ndarray, names, rig: Rig, fps: float, match: AssociationConfig,
                 triangulate: TriangulateConfig, link: LinkConfig) -> np.ndarray:
    """``(T, C, P)`` track index of every detection (-1: none), before short tracks are dropped."""
    T, C, Pd, J, _ = data.shape
    cost = epipolar_costs(rig, data, match, names)  # (T, C, C, P, P)
    matcher = FrameMatcher(rig, names, fps, match, triangulate, link)
    owner = -np.ones((T, C, Pd), dtype=np.int64)
    for t in range(T):
        owner[t] = matcher.step(t, data[t], cost[t]).owner
    return owner


@dataclass(frozen=True, eq=False)
class FrameMatch:
    """What :meth:`FrameMatcher.step` decided for one frame."""

    owner: np.ndarray
    """``(C, P)`` track index of every detection, -1 for none."""
    ids: np.ndarray
    """``(R,)`` track index of each row of ``tri`` (-1: a group that started nothing)."""
    tri: object
    """:class:`~mocap.triangulation.Triangulation` over ``(1, R, J)``: each track's assigned views,
    then each new group's, triangulated on their own (no temporal check)."""
    person: np.ndarray
    """``(R, C, J, 3)`` the views of each row."""


class FrameMatcher:
    """The frame-by-frame half of :func:`temporal_people_views`, causal (each frame decided from
    the past alone): tracks' predicted projections take their views, the rest are grouped across
    views and start or continue tracks. Used over a whole take, and by the live tracker
    (:class:`mocap.track.online.OnlineTracker`) one frame at a time."""

    def __init__(self, rig: Rig, names, fps: float, match: AssociationConfig | None = None,
                 triangulate: TriangulateConfig | None = None, link: LinkConfig | None = None):
        self.rig, self.names, self.fps = rig, tuple(names), float(fps)
        self.match, self.link = match or AssociationConfig(), link or LinkConfig()
        self.triangulate = triangulate or TriangulateConfig()
        self.mirror = left_right_permutation(self.names)
        J = len(self.names)
        self.tracks = _Tracks(np.zeros((0, J, 3)), np.zeros((0, J, 3)), np.zeros(0, np.int64), np.zeros(0, np.int64))
        self.n_tracks = 0

    def live_ids(self) -> np.ndarray:
        """Track indices not ended (seen within ``link.max_gap_s``)."""
        return self.tracks.ids.copy()

    def _free_costs(self, frame: np.ndarray, free: np.ndarray) -> np.ndarray:
        """``(C, C, P, P)`` epipolar costs between the detections no track took (inf elsewhere):
        only the views that have some, nothing when fewer than two do."""
        C, P = free.shape
        cost = np.full((C, C, P, P), np.inf)
        views = np.flatnonzero(free.any(-1))
        if len(views) >= 2:
            sub = self.rig.subset([self.rig.names[c] for c in views])
            cost[np.ix_(views, views)] = epipolar_costs(sub, frame[views][None], self.match, self.names)[0]
        return cost

    def step(self, t: int, frame: np.ndarray, cost: np.ndarray | None = None) -> FrameMatch:
        """Frame ``t``'s detections ``(C, P, J, 3)`` given to tracks; ``cost``: its
        ``(C, C, P, P)`` epipolar costs (computed here when None)."""
        tracks, match, link = self.tracks, self.match, self.link
        present = np.isfinite(frame[..., 0]).any(-1) & (np.nan_to_num(frame[..., 2]) >= match.min_confidence).any(-1)
        tracks = tracks.keep(t - tracks.last <= link.max_gap_s * self.fps)
        dt = (t - tracks.last) / self.fps
        pred = tracks.pose + tracks.vel * dt[:, None, None]
        pred_px = np.stack([project_all(cam, pred) for cam in self.rig.cameras], axis=1)  # (K, C, J, 2)
        rows = assign_views(pred_px, frame, self.mirror, self.triangulate.min_confidence)
        free = present & (rows < 0)
        if cost is None:
            cost = self._free_costs(frame, free)
        frame_cost = np.where(free[:, None, :, None] & free[None, :, None, :], cost, np.inf)
        groups = np.where(free, group_frame(frame_cost, free, match.max_cost), -1)
        K = len(tracks.ids)
        cands = _candidates(frame, rows, groups, K)  # (K + M, C, J, 3)
        ahead = np.concatenate([pred, np.full((len(cands) - K,) + pred.shape[1:], np.nan)])[None]  # (1, K + M, J, 3)
        tri = triangulate_people(self.rig, cands[None], self.names, self.triangulate, temporal=False, reference=ahead)
        owner = -np.ones(frame.shape[:2], dtype=np.int64)
        ids = np.concatenate([tracks.ids, -np.ones(len(cands) - K, np.int64)])
        self.tracks, self.n_tracks = _update(tracks, tri.points[0], rows, groups, t, self.fps, link, self.n_tracks,
                                             owner)
        c, p = np.nonzero(groups >= 0)
        ids[K + groups[c, p]] = owner[c, p]
        return FrameMatch(owner, ids, tri, cands)


def project_all(camera, points_world: np.ndarray) -> np.ndarray:
    """``project`` that leaves NaN points NaN (no warnings)."""
    from mocap.geometry import project

    with np.errstate(invalid="ignore"):
        return project(camera, points_world)


def _candidates(frame: np.ndarray, rows: np.ndarray, groups: np.ndarray, K: int) -> np.ndarray:
    """Each track's assigned views, then each new group's: ``(K + M, C, J, 3)``."""
    C, Pd, J, _ = frame.shape
    views = np.bincount(groups[groups >= 0], minlength=0) if (groups >= 0).any() else np.zeros(0, np.int64)
    M = len(views)
    out = np.full((K + M, C, J, 3), np.nan)
    c, p = np.nonzero(rows >= 0)
    out[rows[c, p], c] = frame[c, p]
    c, p = np.nonzero(groups >= 0)
    out[K + groups[c, p], c] = frame[c, p]
    return out


def _update(tracks: _Tracks, points: np.ndarray, rows: np.ndarray, groups: np.ndarray, t: int, fps: float,
            link: LinkConfig, n_tracks: int, owner: np.ndarray) -> tuple[_Tracks, int]:
    """Tracks updated with frame ``t``'s triangulation ``points (K + M, J, 3)``; new groups
    continue a track that lost its views lately when near it, else start one. Writes the track
    index of every detection into ``owner (C, P)``; returns the tracks and the next index."""
    K = len(tracks.ids)
    centres = body_centres_any(points)  # (K + M, 3)
    seen = np.isfinite(centres[:K]).all(-1)
    _move(tracks, np.flatnonzero(seen), points[:K][seen], t, fps, link)
    c, p = np.nonzero(rows >= 0)
    owner[c, p] = tracks.ids[rows[c, p]]
    M = len(points) - K
    if not M:
        return tracks, n_tracks
    lost = np.flatnonzero(~seen & (tracks.last < t))
    new_rows = np.full(M, -1)
    views = np.zeros((M, groups.shape[0]), bool)
    c, p = np.nonzero(groups >= 0)
    views[groups[c, p], c] = True
    ok = np.isfinite(centres[K:]).all(-1) & (views.sum(-1) >= 2)  # one view starts nothing
    if len(lost) and ok.any():
        dt = (t - tracks.last[lost]) / fps
        pred = np.nanmean(tracks.pose[lost] + tracks.vel[lost] * dt[:, None, None], axis=1)
        d = np.linalg.norm(pred[:, None] - centres[K:][None], axis=-1)  # (L, M)
        gate = (link.gate_m + link.max_speed * dt)[:, None]
        d = np.where((d <= gate) & ok[None], d, 1e6)
        r, m = linear_sum_assignment(d)
        good = d[r, m] < 1e6
        new_rows[m[good]] = lost[r[good]]
        _move(tracks, lost[r[good]], points[K:][m[good]], t, fps, link)
    fresh = np.flatnonzero(ok & (new_rows < 0))
    ids = np.arange(n_tracks, n_tracks + len(fresh))
    for m in range(M):
        gc, gp = np.nonzero(groups == m)
        if new_rows[m] >= 0:
            owner[gc, gp] = tracks.ids[new_rows[m]]
    for m, i in zip(fresh, ids):
        gc, gp = np.nonzero(groups == m)
        owner[gc, gp] = i
    return tracks.added(points[K:][fresh], t, ids), n_tracks + len(fresh)


def body_centres_any(points: np.ndarray) -> np.ndarray:
    """``(N, J, 3)`` -> ``(N, 3)`` mean of the finite joints (NaN where none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(points, axis=1)


def _move(tracks: _Tracks, idx: np.ndarray, points: np.ndarray, t: int, fps: float, link: LinkConfig) -> None:
    """In place: tracks ``idx`` seen at frame ``t`` at ``points (n, J, 3)``."""
    if not len(idx):
        return
    dt = np.maximum(t - tracks.last[idx], 1)[:, None, None] / fps
    v = (points - tracks.pose[idx]) / dt
    speed = np.linalg.norm(v, axis=-1, keepdims=True)
    v = np.where(np.isfinite(v), v * np.minimum(1.0, 2 * link.max_speed / np.maximum(speed, 1e-9)), 0.0)
    tracks.vel[idx] = 0.5 * (tracks.vel[idx] + v)
    tracks.pose[idx] = np.where(np.isfinite(points), points, tracks.pose[idx] + tracks.vel[idx] * dt)
    tracks.last[idx] = t
