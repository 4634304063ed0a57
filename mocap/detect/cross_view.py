"""Finding people a camera missed, from where the other cameras place them in 3D.

A person partly hidden behind another is often not found by the person detector in that view,
and a landmark crop started from the person in front slides onto them or onto a mixture of both.
The other cameras still see the hidden person: their detections are matched across views
(:mod:`mocap.match.epipolar`), triangulated, and projected into the camera that missed them. The
projection gives the crop the landmark model needs (centre at the hips, turned along the
hips→shoulders direction, sized to the body like BlazePose's own ROIs), and the landmark model
runs there, once as the crop is and once with the camera's other people greyed out (their
segmentation, as the tracker masks), and once with their whole masks greyed out; the result
closest to the projection is taken.

A result is kept only when the model finds a person (``min_presence``), that person lies where
the other views put them (median body-joint distance to the projection below
``max_disagreement`` of the crop size) and it is not a duplicate of a person the camera already
has. A camera's own detection that lies farther than ``recheck_disagreement`` from where the
*other* views put that person is looked at the same way and replaced when the new result agrees
better with them *and* continues that person's track in this camera (the slot's detections one
frame before and after) at least as well as the detection it replaces: the other views can be
wrong too (a failed match or triangulation), and a good detection close to its own neighbours
is then kept. The landmarks kept are always the model's, never the projection: a camera never
gets a pose it did not see.

Measured on the Pose2Sim two-person trial (``tests/test_detect_real.py``,
``tools/two_person_recall.py``): in cam03, where the man stands in front of the woman, frames
with both people found rise from 94 % to 99 % (97 % with the recheck at 0.12 of the crop size
and no track check; at 0.08-0.10 without the track check cam01 loses frame 66 to a wrong
projection); a person deleted from 10 frames of a camera is found again within 5 % of their
height.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace

import numpy as np

from mocap.match.epipolar import AssociationConfig, associate, gather_groups, person_sizes
from mocap.detect.appearance import appearance_descriptors
from mocap.detect.blazepose import LANDMARK_INPUT, FramePyramid
from mocap.detect.roi_tracking import BODY_JOINTS, HIPS, keypoint_distance, masks_into_crops
from mocap.detect.video import read_frames
from mocap.geometry import Rig, project, project_rig, world_to_cam
from mocap.skeleton.joints import BLAZEPOSE_33
from mocap.triangulation import triangulate_robust

log = logging.getLogger(__name__)

SHOULDERS = np.array([11, 12])
#: Joints whose extent sizes the crop: nose and the 12 body joints (hands, feet and face details
#: are left out: one badly triangulated finger must not blow the crop up).
EXTENT_JOINTS = np.concatenate([[0], BODY_JOINTS])
#: BlazePose's landmark ROI is about this many times the largest distance of ``EXTENT_JOINTS``
#: from the hip centre (measured on its own tracking-mode ROIs on the Pose2Sim videos: 3.0-3.2
#: median per camera, 2.7-3.3 from the 10th to the 90th percentile).
ROI_FROM_EXTENT = 3.0


#: Frames planned at a time (:func:`plan_recovery` looks at each frame on its own).
PLAN_FRAMES = 1800


@dataclass(frozen=True)
class CrossViewConfig:
    """Settings of :func:`recover_missed_people` (how detections are matched across views is
    its separate ``match`` argument)."""

    min_views: int = 2
    """A person must be matched in at least this many other views to be looked for."""
    min_joints: int = 8
    """... and at least this many of the 12 body joints triangulated."""
    threshold_px: float = 15.0
    """Triangulation outlier threshold (px), or ``threshold_fraction`` of the person's size."""
    threshold_fraction: float = 0.05
    """... whichever is larger (detector noise grows with the person's size in the view)."""
    min_presence: float = 0.5
    """Pose-presence probability the landmark model must give the recovered person."""
    max_disagreement: float = 0.1
    """Median body-joint distance between the model's result and the projection, over the crop
    size (a standing adult's crop is about 2.5 m across, so 0.1 ≈ 25 cm)."""
    recheck_disagreement: float = 0.10
    """A camera's detection farther than this (median body-joint distance over the crop size)
    from where the *other* views put the person is looked at again, and replaced when the new
    result agrees better with them and continues the camera's own track of that person at least
    as well (:func:`continues_track`)."""
    duplicate_distance: float = 0.1
    """A result this close to a person the camera already has (keypoint distance over size, as
    the tracker measures duplicates) is that person again and is dropped."""
    margin: float = 0.1
    """The projected hip centre may lie outside the image by at most this fraction of the crop
    size (a person half out of the picture can still be found)."""

    def __post_init__(self):
        if self.min_views < 2:
            raise ValueError(f"min_views: a 3D position needs at least 2 views, got {self.min_views}")
        for name in ("min_presence", "max_disagreement", "recheck_disagreement", "duplicate_distance"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise ValueError(f"{name}: expected a value in (0, 1), got {v}")


def rois_from_landmarks(xy: np.ndarray) -> np.ndarray:
    """BlazePose-style ROIs ``(N, 4)`` (cx, cy, size, theta) from 33 landmarks ``(N, 33, 2)`` px:
    centred on the hips, rotated so hips→shoulders points up in the crop, ``ROI_FROM_EXTENT``
    times the largest distance of the nose and body joints from the hip centre (NaN ignored)."""
    hip = xy[:, HIPS].mean(axis=1)
    up = xy[:, SHOULDERS].mean(axis=1) - hip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nothing triangulated: NaN, rejected by the caller
        extent = np.nanmax(np.linalg.norm(xy[:, EXTENT_JOINTS] - hip[:, None], axis=-1), axis=-1)
    theta = np.pi / 2 - np.arctan2(-up[:, 1], up[:, 0])
    theta = (theta + np.pi) % (2 * np.pi) - np.pi
    return np.column_stack([hip, ROI_FROM_EXTENT * extent, theta])


#: Limb chains (BlazePose indices, parent before child) and the longest a bone can be: a joint
#: farther than this from its triangulated parent is a triangulation error (two views agreeing
#: on the wrong leg), not anatomy; it would blow the crop up.
LIMB_BONES = np.array([[11, 13], [13, 15], [12, 14], [14, 16], [23, 25], [25, 27], [24, 26], [26, 28]])
MAX_BONE_M = 0.7


def _triangulate_groups(rig: Rig, keypoints: np.ndarray, groups: np.ndarray, config: CrossViewConfig,
                        min_conf: float, num_groups: int | None = None) -> np.ndarray:
    """``(T, K, J, 3)`` 3D joints of every group seen by ``min_views`` views (NaN elsewhere);
    joints below ``min_conf`` confidence are left out. ``K`` is ``num_groups`` when given (the
    groups of a subset of the cameras are numbered as in the full set, but the highest may be
    missing from the subset), else the most groups in a frame."""
    g = gather_groups(keypoints, groups)  # (T, K', C, J, 3)
    if num_groups is not None:  # one group axis for every camera subset (never fewer, never more)
        pad = np.full((g.shape[0], num_groups) + g.shape[2:], np.nan)
        pad[:, :min(num_groups, g.shape[1])] = g[:, :num_groups]
        g = pad
    xy = np.moveaxis(g[..., :2], 2, 3)  # (T, K, J, C, 2)
    conf = np.moveaxis(np.nan_to_num(g[..., 2]), 2, 3)
    weight = np.where(conf >= min_conf, conf, 0.0)
    size = np.nan_to_num(person_sizes(g, min_conf))  # (T, K, C)
    tau = np.maximum(config.threshold_px, config.threshold_fraction * size)[:, :, None]  # (T, K, 1, C)
    tau = np.broadcast_to(tau, weight.shape)
    pts = triangulate_robust(rig, xy, weight, threshold_px=tau, min_views=config.min_views).points
    for parent, child in LIMB_BONES:  # in chain order: a dropped elbow leaves its wrist unchecked
        with np.errstate(invalid="ignore"):
            too_long = np.linalg.norm(pts[..., child, :] - pts[..., parent, :], axis=-1) > MAX_BONE_M
        pts[..., child, :][too_long] = np.nan
    n_views = np.isfinite(g[..., 0]).any(-1).sum(-1)  # (T, K)
    ok = (n_views >= config.min_views) & (np.isfinite(pts[:, :, BODY_JOINTS]).all(-1).sum(-1) >= config.min_joints)
    return np.where(ok[..., None, None], pts, np.nan)


@dataclass(frozen=True, eq=False)
class Look:
    """One place to look again: person ``group`` of frame ``t``, projected into camera ``c``."""

    t: int
    c: int
    projected: np.ndarray
    """``(J, 2)`` px, NaN where a joint was not triangulated."""
    roi: np.ndarray
    """``(4,)`` (cx, cy, size, theta) crop."""
    loose: np.ndarray
    """Slots of camera ``c`` at ``t`` holding a detection matched to nobody in other views."""
    replace: int = -1
    """The slot of camera ``c`` whose detection of this person disagrees with the other views
    (looked at again to correct it), or -1 (the camera has no detection of them)."""


def plan_recovery(rig: Rig, keypoints: np.ndarray, config: CrossViewConfig | None = None, *,
                  match: AssociationConfig | None = None) -> list[Look]:
    """Where to look again.

    For every frame, people matched in ``min_views`` views and triangulated, projected into each
    camera that has no detection of them, or whose detection of them lies farther than
    ``recheck_disagreement`` from where the other views put them (triangulated without that
    camera; a crop that slid onto a mixture of two people):
    kept when the projected hips are in front of the camera and the hip centre is inside the
    image (within ``margin``).

    Args:
        rig: the calibration (cameras in the order of axis ``C``).
        keypoints: ``(T, C, P, J, 3)`` BlazePose-33 detections.
        config: thresholds (defaults if None).
        match: how detections are matched across views (defaults if None).
    """
    config = config or CrossViewConfig()
    match = match or AssociationConfig()
    groups = associate(rig, keypoints, match, BLAZEPOSE_33)  # (T, C, P)
    pts = _triangulate_groups(rig, keypoints, groups, config, match.min_confidence)  # (T, K, J, 3)
    T, K = pts.shape[:2]
    if K == 0:
        return []
    seen = np.zeros((T, K, len(rig)), dtype=bool)
    t_, c_, p_ = np.nonzero(groups >= 0)
    seen[t_, groups[t_, c_, p_], c_] = True
    multi = seen.sum(-1) >= 2  # (T, K) groups seen by several views
    proj = project_rig(rig, pts)  # (T, K, J, C, 2)
    for c in range(len(rig)):  # a camera's own detections are checked against the other views only
        if (groups[:, c] >= 0).any():
            others = groups.copy()
            others[:, c] = -1
            pts_c = _triangulate_groups(rig, keypoints, others, config, match.min_confidence, num_groups=K)
            proj[..., c, :] = np.where(seen[..., c, None, None], project(rig.cameras[c], pts_c), proj[..., c, :])
    C = len(rig)
    xy = np.moveaxis(proj, -2, 2)  # (T, K, C, J, 2)
    rois = rois_from_landmarks(xy.reshape(-1, xy.shape[-2], 2)).reshape(T, K, C, 4)
    hips_cam = np.einsum("cij,tkhj->tkhci", rig.R, pts[:, :, HIPS]) + rig.t[None, None, None]  # (T, K, 2, C, 3)
    in_front = (hips_cam[..., 2] > 0).all(axis=2)  # (T, K, C)
    W, H = rig.sizes[:, 0].astype(float), rig.sizes[:, 1].astype(float)
    m = -config.margin * rois[..., 2]
    with np.errstate(invalid="ignore"):
        inside = (np.isfinite(rois).all(-1) & (rois[..., 2] > 0) & (rois[..., 0] >= m) & (rois[..., 0] <= W - 1 - m)
                  & (rois[..., 1] >= m) & (rois[..., 1] <= H - 1 - m))
    orientable = np.isfinite(pts[..., np.concatenate([HIPS, SHOULDERS]), :]).all(axis=(-1, -2))  # (T, K)
    # each group's own detection per camera (slot or -1) and how far it lies from the projection
    mine = groups[:, None] == np.arange(K)[None, :, None, None]  # (T, K, C, P)
    own = np.where(mine.any(-1), mine.argmax(-1), -1)  # (T, K, C)
    det = np.take_along_axis(keypoints[:, None], np.maximum(own, 0)[..., None, None, None], axis=3)[:, :, :, 0]
    dist = np.linalg.norm(det[..., BODY_JOINTS, :2] - xy[..., BODY_JOINTS, :], axis=-1)  # (T, K, C, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no joint in common
        off = np.where(np.isfinite(dist).sum(-1) >= config.min_joints, np.nanmedian(dist, axis=-1), np.inf)
    agrees = (own >= 0) & ~(off > config.recheck_disagreement * rois[..., 2])
    wanted = orientable[..., None] & multi[..., None] & in_front & inside & ~agrees  # (T, K, C)
    looks = []
    for t, k, c in zip(*np.nonzero(wanted)):  # the looks only (a few per camera and second)
        g = groups[t, c]
        loose = np.flatnonzero((g >= 0) & ~multi[t, np.maximum(g, 0)])
        looks.append(Look(int(t), int(c), xy[t, k, c], rois[t, k, c], loose, int(own[t, k, c])))
    return looks


def _median_distance(a: np.ndarray, b: np.ndarray, min_joints: int) -> float:
    """Median body-joint distance (px) between two people ``(J, >=2)``; inf with too few joints."""
    d = np.linalg.norm(a[BODY_JOINTS, :2] - b[BODY_JOINTS, :2], axis=-1)
    d = d[np.isfinite(d)]
    return float(np.median(d)) if len(d) >= min_joints else np.inf


@dataclass(frozen=True, eq=False)
class Recovered:
    """One person the landmark model found again in a camera, and the slot it goes to."""

    t: int
    """Row of the camera's arrays (frame)."""
    keypoints: np.ndarray
    """``(J, 3)`` x, y px and visibility, the model's result."""
    presence: float
    """The model's pose-presence probability."""
    roi: np.ndarray
    """``(4,)`` (cx, cy, size, theta) crop the model ran on."""
    appearance: np.ndarray
    """Appearance descriptor of the person (:func:`~mocap.detect.appearance.appearance_descriptors`)."""
    heatmaps: np.ndarray
    """The model's heatmaps, float16."""
    image_from_heatmap: np.ndarray
    """``(2, 3)`` heatmap pixel -> image pixel."""
    replaces: int | None
    """The slot whose detection this result replaces, or None (it goes to a free or new slot)."""


def recover_missed_people(detections: list, videos: dict, rig: Rig, detector,
                          config: CrossViewConfig | None = None, progress: bool = False, *,
                          match: AssociationConfig | None = None) -> tuple[list, dict]:
    """Look for people a camera missed where the other cameras place them (module docstring).

    A result that duplicates a detection the camera already has is dropped, unless that
    detection is matched to nobody in the other views and lies farther from the projection than
    the new result: then the new result replaces it (a crop that slid onto a mixture of two
    people is corrected by the views that see the person clearly).

    Args:
        detections: :class:`~mocap.detect.pipeline.CameraDetections` per camera, in ``rig`` order.
        videos: ``{camera name: video path}`` for those cameras.
        rig: the calibration.
        detector: a :class:`~mocap.detect.blazepose.BlazePose` (the landmark model is run).
        config: thresholds (defaults if None).
        progress: a progress bar per camera (frames looked at again).
        match: how detections are matched across views (defaults if None).

    Returns:
        ``(detections, stats)``: new ``CameraDetections`` (people added in free or new slots, or
        replacing loose duplicates; ``recovered`` marks them) and ``{camera: (looked, found)}``.
    """
    from mocap.detect.pipeline import to_keypoints2d

    config = config or CrossViewConfig()
    T = max((int(d.frame_indices.max()) + 1 if len(d.frame_indices) else 0) for d in detections)
    by_cam: dict[int, dict[int, list[Look]]] = {}  # camera -> video frame index -> looks
    for lo in range(0, T, PLAN_FRAMES):  # planning is per frame: a part at a time keeps memory flat
        kp = to_keypoints2d(detections, (lo, min(T, lo + PLAN_FRAMES)))
        for look in plan_recovery(rig, kp.data, config, match=match):
            by_cam.setdefault(look.c, {}).setdefault(int(kp.frame_indices[look.t]), []).append(look)
    out, stats = [], {}
    for c, det in enumerate(detections):
        jobs = by_cam.get(c, {})
        found = _recover_in_camera(det, videos[det.camera], jobs, detector, config, progress) if jobs else []
        n_looked = sum(len(v) for v in jobs.values())
        stats[det.camera] = (n_looked, len(found))
        if n_looked:
            log.info("camera %s: looked for %d people the other cameras saw, found %d", det.camera, n_looked,
                     len(found))
        out.append(_add_people(det, found) if found else det)
    return out, stats


def _recover_in_camera(det, video, jobs: dict[int, list[Look]], detector, config: CrossViewConfig,
                       progress: bool) -> list[Recovered]:
    """Read the frames of ``video`` that ``jobs`` (video frame index -> looks) name and look there."""
    row_of = {int(f): i for i, f in enumerate(det.frame_indices)}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=f"{det.camera} (cross-view)", unit="frame", leave=False)
    found = []
    for index, frame in read_frames(video, start=min(jobs), stop=max(jobs) + 1):
        t = row_of.get(index)
        if t is None or index not in jobs:
            continue
        if bar is not None:
            bar.update(1)
        found += _recover_in_frame(det, t, frame, jobs[index], detector, config)
    if bar is not None:
        bar.close()
    return found


def _recover_in_frame(det, t: int, frame: np.ndarray, looks: list[Look], detector,
                      config: CrossViewConfig) -> list[Recovered]:
    """Run the landmark model at ``looks`` in one frame (row ``t`` of ``det``) and keep the results
    that pass :class:`CrossViewConfig`'s checks, each with the slot it goes to."""
    slots = list(np.flatnonzero(np.isfinite(det.scores[t])))  # None: a person recovered just now
    have = [det.keypoints[t, s] for s in slots]
    res = _look(detector, FramePyramid(frame), looks, det.rois[t], slots)
    found = []
    for i, look in enumerate(looks):
        cand, off = res["keypoints"][i], res["off"][i]
        if res["presence"][i] < config.min_presence or not off <= config.max_disagreement * look.roi[2]:
            continue
        keep, target = _placement(det.keypoints[t], look, cand, off, slots, have, config)
        if not keep or (target is not None and not continues_track(det.keypoints, t, target, cand, config.min_joints)):
            continue
        app = appearance_descriptors(frame, cand[None], detector.joint_names)[0]
        found.append(Recovered(t, cand, float(res["presence"][i]), look.roi, app, res["heatmaps"][i].astype(np.float16),
                               res["image_from_heatmap"][i], target))
        if target is None:
            slots.append(None)  # a recovered person is no one's to replace
            have.append(cand)
        else:
            k = slots.index(target)
            slots[k], have[k] = None, cand
    return found


def continues_track(keypoints: np.ndarray, t: int, slot: int, cand: np.ndarray, min_joints: int) -> bool:
    """Whether ``cand`` ``(J, 3)`` continues the track of the slot it would replace (``slot`` of
    ``keypoints`` ``(T, P, J, 3)``, row ``t``) at least as well as the detection there: its median
    body-joint distance to the nearer of the slot's detections in the frames just before and after
    is no larger (True when the slot has neither). A skeleton that slid onto a mixture of two
    people jumps away from the person's track on at least one side; a good detection that the other
    views place wrongly (their matching or triangulation failed) lies close to both neighbours and
    keeps its slot."""
    rows = [r for r in (t - 1, t + 1) if 0 <= r < len(keypoints) and np.isfinite(keypoints[r, slot, :, 0]).any()]
    near = [(_median_distance(cand, keypoints[r, slot], min_joints),
             _median_distance(keypoints[t, slot], keypoints[r, slot], min_joints)) for r in rows]
    near = [(a, b) for a, b in near if np.isfinite(a) and np.isfinite(b)]
    return not near or min(a for a, _ in near) <= min(b for _, b in near)


def _placement(keypoints_t: np.ndarray, look: Look, cand: np.ndarray, off: float, slots: list, have: list,
               config: CrossViewConfig) -> tuple[bool, int | None]:
    """Whether to keep result ``cand`` ``(J, 3)`` (``off`` px from the projection) and which slot it
    replaces (None: a free or new one).

    With ``look.replace``, the result must lie closer to the projection than the detection it
    replaces and duplicate no other person. Otherwise a duplicate is dropped unless every person
    it duplicates is loose (matched to nobody in other views) and farther from the projection.
    ``slots`` and ``have`` are the camera's people at this frame so far (slot or None, keypoints).
    """
    target = None
    if look.replace >= 0:
        if not off < _median_distance(keypoints_t[look.replace], look.projected, config.min_joints):
            return False, None
        target = look.replace
    others = [d for d, s in enumerate(slots) if s is None or s != look.replace]
    if not others:
        return True, target
    both = np.concatenate([cand[None], np.stack([have[d] for d in others])])
    size = look.roi[2]
    dup = np.flatnonzero(keypoint_distance(both, np.full(len(both), size))[0, 1:] < config.duplicate_distance)
    dup = [others[d] for d in dup]
    if not dup:
        return True, target
    if target is not None:
        return False, None
    worse = [slots[d] for d in dup if slots[d] is not None and slots[d] in look.loose
             and _median_distance(have[d], look.projected, config.min_joints) > off]
    if len(worse) != len(dup):
        return False, None
    return True, worse[0]


def _look(detector, pyramid, looks: list[Look], rois: np.ndarray, slots: list, min_joints: int = 8) -> dict:
    """Run the landmark model on each look's crop three times: as it is, with the camera's other
    people greyed out where their segmentation claims a pixel more than the result's own (as the
    tracker masks), and with all of their masks greyed out (a person bent over beside another
    gives a mask that spills onto them, which the first rule then leaves visible); keep per look
    the result closest to the projection. The third crop, on the Pose2Sim two-person take: cam03
    96 -> 97 % of frames with both people found, the other cameras unchanged."""
    crops = np.stack([lk.roi for lk in looks])
    best = detector.landmarks(pyramid, crops)
    best["off"] = np.array([_median_distance(best["keypoints"][i], lk.projected, min_joints) for i, lk in enumerate(looks)])
    others = np.array([s for s in slots if np.isfinite(rois[s]).all()], dtype=int)
    if not len(others):
        return best
    people = detector.landmarks(pyramid, rois[others])
    theirs = np.zeros((len(looks), LANDMARK_INPUT, LANDMARK_INPUT), np.float32)
    for i, lk in enumerate(looks):
        keep = others != lk.replace
        if keep.any():
            theirs[i] = masks_into_crops(people["segmentation"][keep], people["image_from_crop"][keep],
                                         best["image_from_crop"][i:i + 1])[0]
    stronger = np.where(theirs > best["segmentation"], theirs, 0.0)
    for masks in (stronger, (theirs > 0.5).astype(np.float32)):
        res = detector.landmarks(pyramid, crops, masked=masks)
        res["off"] = np.array([_median_distance(res["keypoints"][i], lk.projected, min_joints) for i, lk in enumerate(looks)])
        better = res["off"] < best["off"]
        best = {k: np.where(better.reshape((-1,) + (1,) * (v.ndim - 1)), res[k], v) for k, v in best.items()}
    return best


def _free_slot(det, t: int, roi: np.ndarray, taken: set, look_back: int = 30) -> int:
    """The slot a recovered person continues: an empty slot at ``t`` whose latest detection in the
    ``look_back`` frames before lies within one crop size of ``roi``; else -1."""
    best, best_d = -1, 1.0
    lo = max(0, t - look_back)
    for s in range(det.scores.shape[1]):
        if s in taken or np.isfinite(det.scores[t, s]):
            continue
        rows = np.flatnonzero(np.isfinite(det.scores[lo:t, s]))
        if len(rows):
            prev = det.rois[lo + rows[-1], s]
            d = np.linalg.norm(prev[:2] - roi[:2]) / max(roi[2], 1e-9)
            if d < best_d:
                best, best_d = s, d
    return best


def _add_people(det, found: list[Recovered]):
    """Copy of ``det`` with the recovered people written into slots (grown when needed)."""
    T, P = det.scores.shape
    assigned = []
    taken_at: dict[int, set] = {}
    for r in found:
        t = r.t
        taken = taken_at.setdefault(t, set())
        if r.replaces is not None:
            taken.add(int(r.replaces))
            assigned.append(int(r.replaces))
            continue
        s = _free_slot(det, t, r.roi, taken)
        if s < 0:
            free = [q for q in range(P) if q not in taken and not np.isfinite(det.scores[t, q])]
            s = free[0] if free else next(q for q in range(P, P + len(found) + 1) if q not in taken)
        taken.add(s)
        assigned.append(s)
    n = max(P, max(assigned) + 1)

    def grow(a, fill=np.nan):
        if a is None:
            return None
        g = np.full((T, n) + a.shape[2:], fill, dtype=a.dtype)
        g[:, :P] = a
        return g

    kp, sc, ro, ap = grow(det.keypoints), grow(det.scores), grow(det.rois), grow(det.appearance)
    rec = grow(det.recovered if det.recovered is not None else np.zeros((T, P), bool), False)
    hm, tf = grow(det.heatmaps, 0), grow(det.image_from_heatmap)
    for r, s in zip(found, assigned):
        kp[r.t, s], sc[r.t, s], ro[r.t, s], ap[r.t, s], rec[r.t, s] = r.keypoints, r.presence, r.roi, r.appearance, True
        if hm is not None:
            hm[r.t, s], tf[r.t, s] = r.heatmaps, r.image_from_heatmap
    return replace(det, keypoints=kp, scores=sc, rois=ro, appearance=ap, recovered=rec, heatmaps=hm,
                   image_from_heatmap=tf)
