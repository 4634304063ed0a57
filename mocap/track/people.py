"""Every performer's detections per view over the take: match -> triangulate -> link.

Per frame the detections are matched across views (:mod:`mocap.match`), each group is
triangulated (:func:`mocap.triangulation.people.triangulate_people`), groups the matching split in
two are merged, and the groups are linked over time into persistent people by their body centres
(:mod:`mocap.track.linking`), people outside the rig's capture volume dropped as bystanders,
with clothing colours bridging long absences. The result is each
person's detection in each view, ready to be triangulated over the whole take.
"""

from __future__ import annotations

import numpy as np

from mocap.geometry import Rig
from mocap.io.keypoints import Keypoints2D
from mocap.match.epipolar import AssociationConfig, associate, gather_groups
from mocap.track.linking import (LinkConfig, body_centres, group_appearance, link_people, relink_by_appearance,
                                 without_bystanders)
from mocap.triangulation.people import TriangulateConfig, triangulate_people

#: Two groups of one frame whose body centres are closer than this are one person whose views the
#: matching split in two (two people's torsos cannot be closer), metres.
SAME_PERSON_M = 0.25


def people_views(keypoints: Keypoints2D, rig: Rig, fps: float, match: AssociationConfig | None = None,
                 triangulate: TriangulateConfig | None = None, link: LinkConfig | None = None) -> np.ndarray:
    """Every person's detections per view, matched across views and linked over time.

    Args:
        keypoints: ``data (T, C, P, J, 3)``, cameras in ``rig`` order.
        rig: the calibration.
        fps: frame rate.
        match: cross-view matching settings; defaults if None.
        triangulate: how the per-frame groups whose body centres are linked are triangulated.
        link: linking settings (:class:`~mocap.track.linking.LinkConfig`); defaults if None.

    Returns:
        ``(T, P, C, J, 3)`` person ``p``'s detection in view ``c`` at frame ``t`` (NaN where not
        seen), people ordered by how much of them was triangulated over the take (the main
        performer first; ties by first appearance); ``link.max_people`` keeps the first ones.
    """
    match = match or AssociationConfig()
    link = link or LinkConfig()
    groups = associate(rig, keypoints.data, match, keypoints.joint_names)  # (T, C, K)
    g = gather_groups(keypoints.data, groups)  # (T, K, C, J, 3)
    tri = triangulate_people(rig, g, keypoints.joint_names, triangulate or TriangulateConfig(), temporal=False)
    centres = body_centres(tri.points, keypoints.joint_names)  # (T, K, 3)
    merge_split_groups(g, centres, tri.points)
    track = link_people(centres, fps, link, poses=tri.points)  # (T, K)
    track = without_bystanders(track, centres, rig, link)
    track = _relink(track, groups, keypoints, link)
    T, K, C, J, _ = g.shape
    P = int(track.max()) + 1 if track.size else 0
    person = np.full((T, P, C, J, 3), np.nan)
    t, k = np.nonzero(track >= 0)
    person[t, track[t, k]] = g[t, k]
    # the most seen first: the performer, not a bystander who walked through the back of frame 0
    joints = np.zeros(P)
    np.add.at(joints, track[t, k], np.isfinite(tri.points[t, k]).all(-1).sum(-1))
    order = np.argsort(-joints, kind="stable")  # ties: first appearance
    return person[:, order[: link.max_people or P]]


def _relink(track: np.ndarray, groups: np.ndarray, keypoints: Keypoints2D, link: LinkConfig) -> np.ndarray:
    """Re-identify people who came back after an absence by the mean appearance descriptor of
    each group's views (unchanged when the keypoints carry no descriptors)."""
    appearance = group_appearance(keypoints, groups, track.shape[1])
    return track if appearance is None else relink_by_appearance(track, appearance, link)


def merge_split_groups(g: np.ndarray, centres: np.ndarray, points: np.ndarray) -> None:
    """In place: groups of one frame closer than :data:`SAME_PERSON_M` that share no view are
    merged into the one seen by more views (its centre and points kept); the other is emptied.

    Args:
        g: ``(T, K, C, J, 3)`` groups' detections per view.
        centres: ``(T, K, 3)`` body centres, metres.
        points: ``(T, K, J, 3)`` triangulated joints, metres.
    """
    K = centres.shape[1]
    with np.errstate(invalid="ignore"):
        close = np.linalg.norm(centres[:, :, None] - centres[:, None], axis=-1) < SAME_PERSON_M  # (T, K, K)
    close &= ~np.eye(K, dtype=bool)
    for t in np.flatnonzero(close.any(axis=(1, 2))):  # rare: a loop over those frames only
        views = np.isfinite(g[t, ..., 0]).any(-1)  # (K, C)
        for a, b in zip(*np.nonzero(np.triu(close[t]))):
            if not (views[a].any() and views[b].any()) or (views[a] & views[b]).any():
                continue
            keep, drop = (a, b) if views[a].sum() >= views[b].sum() else (b, a)
            g[t, keep, views[drop]] = g[t, drop, views[drop]]
            g[t, drop] = np.nan
            centres[t, drop] = np.nan
            points[t, drop] = np.nan
            views[keep] |= views[drop]
            views[drop] = False
