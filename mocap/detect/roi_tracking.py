"""Following people through a video: stable track slots and left/right label consistency.

:class:`PoseTracker` implements BlazePose's tracking mode for several people (see
:mod:`mocap.detect.blazepose`); :func:`fix_left_right_flips` post-processes a whole video.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field, fields

import cv2
import numpy as np

from mocap.io.keypoints import DEFAULT_FPS
from mocap.detect.blazepose import (
    HEATMAP_SIZE,
    LANDMARK_INPUT,
    NUM_LANDMARKS,
    BlazePose,
    FrameResult,
    as_frame_pyramid,
    image_from_crop,
    roi_distance,
)


#: Body joints (BlazePose indices: shoulders, elbows, wrists, hips, knees, ankles) that tell two
#: people apart; the face is left out because two faces side by side confuse the landmark model.
BODY_JOINTS = np.array([11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])
HIPS = np.array([23, 24])

#: Fastest plausible change of a person's ROI, per second: the centre (the hips) moves at most
#: 3 ROI sizes (a 1.7 m person's ROI is about 2 m: 6 m/s, a sprint) and the size changes by at
#: most a factor e^1.5 = 4.5 (walking at 1.5 m/s towards a camera 1 m away, or crouching from
#: standing in half a second). A landmark result whose ROI changes faster is a crop sliding onto
#: a neighbour or mixing two people; the track's ROI follows it only at this rate.
MAX_CENTRE_SPEED = 3.0
MAX_SCALE_RATE = 1.5


def keypoint_distance(keypoints: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``(N, N)`` distance between people ``(N, 33, >=2)`` over their mean ROI size.

    The larger of the body joints' median distance and the hip centres' distance: a crop that
    straddles two people can return one person's face and arms with the other's hips, and such
    a mixture is a different person from both, not a duplicate.
    """
    body = keypoints[:, BODY_JOINTS, :2]
    d = np.median(np.linalg.norm(body[:, None] - body[None], axis=-1), axis=-1)
    hip = keypoints[:, HIPS, :2].mean(axis=1)
    d = np.maximum(d, np.linalg.norm(hip[:, None] - hip[None], axis=-1))
    return d / np.maximum(0.5 * (sizes[:, None] + sizes[None, :]), 1e-9)


def fix_left_right_flips(keypoints: np.ndarray, perm: np.ndarray, swap_cost: float = 0.02) -> np.ndarray:
    """Which detections to mirror so that left/right labels stay consistent along each track.

    At video rates a wrist cannot jump to the other side of the body in one frame, but the
    landmark model does flip its left/right decision (when the face is hidden or blurred, or the
    person is seen from behind). Each slot's labelling is a two-state chain (keep or mirror each
    frame) solved exactly by dynamic programming (Viterbi): the cost is the lateral joints'
    frame-to-frame motion (median, over the person's size) plus ``swap_cost`` per mirrored frame,
    so a flip sustained for fewer than about (flip jump / swap_cost) frames is undone, while the
    labelling the model gives in most frames is kept.

    Args:
        keypoints: ``(T, P, J, 3)`` one video's tracks (NaN where a slot is empty).
        perm: ``(J,)`` from :func:`~mocap.skeleton.joints.left_right_permutation`.

    Returns:
        ``(T, P)`` bool: True where ``keypoints[t, p, perm]`` is the consistent labelling.
    """
    T, P = keypoints.shape[:2]
    flip = np.zeros((T, P), dtype=bool)
    if T < 2 or P == 0:
        return flip
    lateral = perm != np.arange(len(perm))
    xy = keypoints[:, :, lateral, :2]
    mirrored = keypoints[:, :, perm][:, :, lateral, :2]
    with warnings.catch_warnings():  # all-NaN rows (empty slots) give NaN, as wanted
        warnings.simplefilter("ignore", RuntimeWarning)
        size = np.linalg.norm(np.nanmax(keypoints[..., :2], axis=2) - np.nanmin(keypoints[..., :2], axis=2), axis=-1)
        direct = np.nanmedian(np.linalg.norm(xy[1:] - xy[:-1], axis=-1), axis=-1) / size[1:]  # (T-1, P)
        swapped = np.nanmedian(np.linalg.norm(mirrored[1:] - xy[:-1], axis=-1), axis=-1) / size[1:]
    gap = ~(np.isfinite(direct) & np.isfinite(swapped))
    direct, swapped = np.where(gap, 0.0, direct), np.where(gap, 0.0, swapped)
    unary = np.array([0.0, swap_cost])
    cost = np.tile(unary, (P, 1))  # (P, 2): best total cost ending in state keep / mirror
    back = np.zeros((T, P, 2), dtype=np.int8)
    for t in range(1, T):  # Viterbi over frames, vectorised over people and states
        same, other = direct[t - 1], swapped[t - 1]
        stay = cost + same[:, None]  # from state s to s
        cross = cost[:, ::-1] + other[:, None]  # from state 1-s to s
        back[t] = np.where(cross < stay, 1, 0)
        cost = np.minimum(stay, cross) + unary
    state = np.argmin(cost, axis=1)
    for t in range(T - 1, -1, -1):
        flip[t] = state == 1
        state = np.where(back[t, np.arange(P), state] == 1, 1 - state, state)
    return flip


def limit_roi_motion(prev: np.ndarray, new: np.ndarray, dt: float) -> np.ndarray:
    """ROIs ``new (N, 4)`` moved no further from ``prev (N, 4)`` than a person can in ``dt``
    seconds: the centre by at most :data:`MAX_CENTRE_SPEED` ROI sizes per second (along the
    same direction), the size by at most a factor ``exp(MAX_SCALE_RATE dt)``; theta is kept."""
    out = np.array(new, dtype=float)
    step = MAX_SCALE_RATE * dt
    out[:, 2] = np.clip(new[:, 2], prev[:, 2] * np.exp(-step), prev[:, 2] * np.exp(step))
    d = new[:, :2] - prev[:, :2]
    norm = np.linalg.norm(d, axis=-1)
    reach = MAX_CENTRE_SPEED * dt * prev[:, 2]
    out[:, :2] = prev[:, :2] + d * np.minimum(1.0, reach / np.maximum(norm, 1e-9))[:, None]
    return out


def masks_into_crops(masks: np.ndarray, image_from_mask: np.ndarray, image_from_crop: np.ndarray,
                     size: int = LANDMARK_INPUT) -> np.ndarray:
    """The union (pixel-wise max) of masks ``(K, m, m)`` seen in each of ``N`` crops.

    Args:
        masks: ``(K, m, m)`` probabilities on crops whose pixel -> image maps are
            ``image_from_mask (K, 2, 3)`` (centre convention, as :func:`image_from_crop`).
        image_from_crop: ``(N, 2, 3)`` the crops to draw them into.

    Returns:
        ``(N, size, size)`` float32; 0 outside every mask. Masks whose crop cannot overlap a
        target crop (circumscribed circles apart) are skipped.
    """
    N, K = len(image_from_crop), len(masks)
    out = np.zeros((N, size, size), np.float32)
    if not N or not K:
        return out
    m = masks.shape[-1]
    centre = lambda M, n: M[:, :, :2] @ np.full(2, (n - 1) / 2.0) + M[:, :, 2]  # noqa: E731
    radius = lambda M, n: np.sqrt(np.abs(np.linalg.det(M[:, :, :2]))) * n / np.sqrt(2.0)  # noqa: E731
    gap = np.linalg.norm(centre(image_from_crop, size)[:, None] - centre(image_from_mask, m)[None], axis=-1)
    near = gap < radius(image_from_crop, size)[:, None] + radius(image_from_mask, m)[None]
    to3 = lambda M: np.concatenate([M, np.broadcast_to([[[0.0, 0.0, 1.0]]], (len(M), 1, 3))], axis=1)  # noqa: E731
    mask_from_image = np.linalg.inv(to3(image_from_mask))
    crop3 = to3(image_from_crop)
    for i, k in zip(*np.nonzero(near)):  # one warp per overlapping pair (a handful per frame)
        mask_from_crop = (mask_from_image[k] @ crop3[i])[:2]
        warped = cv2.warpAffine(masks[k], mask_from_crop, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        np.maximum(out[i], warped, out=out[i])
    return out


@dataclass
class PoseTracker:
    """Per-video state: people tracked from frame to frame in stable slots.

    ``step(frame)`` returns a :class:`FrameResult` whose slot ``s`` holds the same person while
    the track lasts (a new track takes the lowest free slot). Each frame's candidates are, in
    order of precedence: the live tracks, the recently lost tracks still looked for
    (``lost_track_frames``), the detector's new people. A track's ROI follows its landmarks
    at most as fast as a person moves (:func:`limit_roi_motion`; ``fps``, the video's frame
    rate, gives the time step, :data:`DEFAULT_FPS` when unknown). After a track ends the detector
    runs on every frame for ``redetect_seconds``.
    """

    model: BlazePose
    fps: float | None = None
    _rois: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    _slots: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    _frame: int = 0
    _redetect: int = 0
    _detector_runs: int = 0
    _masks: np.ndarray = field(default_factory=lambda: np.zeros((0, LANDMARK_INPUT, LANDMARK_INPUT), np.float32))
    _mask_maps: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 3)))
    _gone_rois: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    _gone_slots: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    _gone_age: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    def state(self) -> dict:
        """Everything carried from one frame to the next (ROIs, slots, masks, lost tracks, frame and
        detector-run counters), copied: :meth:`restore` on a fresh tracker of the same model and
        settings continues exactly where this one is (:mod:`mocap.runtime.detect_chunks`)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name not in ("model", "fps")}

    def restore(self, state: dict) -> None:
        """Continue from a :meth:`state` (one-line error for a state of another tracker)."""
        names = {f.name for f in fields(self)} - {"model", "fps"}
        if set(state) != names:
            raise ValueError(f"tracker state: expected fields {sorted(names)}, got {sorted(state)}; "
                             "it was saved by another version: delete it and detect again")
        for name, value in state.items():
            setattr(self, name, copy.deepcopy(value))

    def _dt(self) -> float:
        """Seconds per frame of this video."""
        return 1.0 / (self.fps if self.fps and np.isfinite(self.fps) and self.fps > 0 else DEFAULT_FPS)

    def step(self, frame_bgr: np.ndarray) -> FrameResult:
        cfg = self.model.config
        frame_bgr = as_frame_pyramid(frame_bgr)
        tracked = cfg.tracking and len(self._rois) > 0
        coasting = cfg.tracking and cfg.lost_track_frames > 0 and len(self._gone_rois) > 0
        run_detector = (not cfg.tracking or not tracked or self._redetect > 0 or self._frame % cfg.detect_every == 0)
        rois = self._rois if tracked else np.zeros((0, 4))
        slots = self._slots if tracked else np.zeros(0, dtype=int)
        n_tracked = len(rois)
        if coasting:
            rois = np.concatenate([rois, self._gone_rois])
            slots = np.concatenate([slots, self._gone_slots])
        n_known = len(rois)
        if run_detector:
            det_rois, _ = self.model.detect(frame_bgr, rotation=self._detector_runs)
            self._detector_runs += 1
            if len(det_rois):
                new = det_rois
                if len(rois):  # keep tracked people; add only detections that are someone else
                    # Only near-identical ROIs are dropped here: two people can stand close with
                    # their hips aligned in the image, so the landmarks decide (see _select).
                    new = det_rois[roi_distance(det_rois, rois).min(axis=1) >= cfg.same_person_distance / 4]
                new_slots = self._assign_slots(new, used=slots)
                rois = np.concatenate([rois, new])
                slots = np.concatenate([slots, new_slots])
        self._frame += 1
        out = self.model.landmarks(frame_bgr, rois, self._occluders(rois, slots))
        rank = np.where(np.arange(len(rois)) < n_tracked, 0, np.where(np.arange(len(rois)) < n_known, 1, 2))
        keep = self._select(out["keypoints"], out["presence"], rois, out["next_rois"], rank)
        if (~keep[:n_known]).any():  # a track ended: run the detector in the next frames
            self._redetect = max(1, int(np.ceil(cfg.redetect_seconds / self._dt())))
        else:
            self._redetect = max(0, self._redetect - 1)
        next_rois = out["next_rois"][keep]
        if cfg.tracking and cfg.limit_roi_motion:  # only a track's own ROI has a past to limit
            own = np.flatnonzero(keep[:n_tracked])
            next_rois[:len(own)] = limit_roi_motion(rois[own], next_rois[:len(own)], self._dt())
        self._rois, self._slots = next_rois, slots[keep]
        self._masks, self._mask_maps = out["segmentation"][keep], out["image_from_crop"][keep]
        self._update_lost(slots, rois, keep, n_tracked, n_known)
        return self._to_slots(out, keep, slots, rois, run_detector)

    def _occluders(self, rois: np.ndarray, slots: np.ndarray) -> np.ndarray | None:
        """``(N, 256, 256)`` per candidate crop: the previous frame's other people (their
        segmentation), or None when masking is off or no crop overlaps anyone else.

        Only pixels that another person's mask claims more than the track's own mask does are
        hidden: when one result mixes two people, its mask covers both, and hiding all of it
        would hide the other person from their own crop (who then is lost).

        A candidate continuing track ``s`` is masked with every other track; a lost track looked
        for, or a new detection, with every live track (a new detection of a tracked person is
        then mostly grey and dropped for low presence or as a duplicate, as it should be).
        """
        cfg = self.model.config
        if not (cfg.tracking and cfg.mask_other_people) or not len(self._masks) or not len(rois):
            return None
        crops = image_from_crop(rois)
        out = np.zeros((len(rois), LANDMARK_INPUT, LANDMARK_INPUT), np.float32)
        own = np.zeros_like(out)
        for k, s in enumerate(self._slots):  # a handful of people: each track into the others' crops
            others = np.flatnonzero(slots != s)
            if len(others):
                out[others] = np.maximum(out[others], masks_into_crops(self._masks[k:k + 1], self._mask_maps[k:k + 1],
                                                                       crops[others]))
            mine = np.flatnonzero(slots == s)
            if len(mine):
                own[mine] = np.maximum(own[mine], masks_into_crops(self._masks[k:k + 1], self._mask_maps[k:k + 1],
                                                                   crops[mine]))
        out[own >= out] = 0.0
        return out if out.any() else None

    def _update_lost(self, slots: np.ndarray, rois: np.ndarray, keep: np.ndarray, n_tracked: int, n_known: int) -> None:
        """Live tracks dropped this frame start being looked for at the ROI they were last run
        in; lost tracks still missing age by a frame and are forgotten after ``lost_track_frames``."""
        cfg = self.model.config
        if not cfg.tracking or cfg.lost_track_frames == 0:
            return
        dropped = np.flatnonzero(~keep[:n_tracked])
        missing = np.flatnonzero(~keep[n_tracked:n_known])  # index into the lost tracks looked for
        age = np.concatenate([np.ones(len(dropped), dtype=int), self._gone_age[missing] + 1])
        young = age <= cfg.lost_track_frames
        self._gone_rois = np.concatenate([rois[dropped], self._gone_rois[missing]])[young]
        self._gone_slots = np.concatenate([slots[dropped], self._gone_slots[missing]])[young]
        self._gone_age = age[young]

    def _assign_slots(self, new_rois: np.ndarray, used: np.ndarray) -> np.ndarray:
        """Slots for new people: the previous frame's slot of an overlapping ROI if free, else the lowest free."""
        taken = set(used.tolist())
        out = np.empty(len(new_rois), dtype=int)
        if len(self._rois) and len(new_rois):
            dist = roi_distance(new_rois, self._rois)
        for i in range(len(new_rois)):
            s = -1
            if len(self._rois):
                best = int(np.argmin(dist[i]))
                if dist[i, best] < self.model.config.same_person_distance and self._slots[best] not in taken:
                    s = int(self._slots[best])
            if s < 0:
                s = next(k for k in range(len(taken) + 1) if k not in taken)
            taken.add(s)
            out[i] = s
        return out

    def _select(self, keypoints: np.ndarray, presence: np.ndarray, rois: np.ndarray, next_rois: np.ndarray,
                rank: np.ndarray) -> np.ndarray:
        """Candidates kept: present, not a duplicate of a better one, within ``max_people``.

        ``rank`` (N,): 0 live track, 1 lost track looked for, 2 new detection. Of duplicates the
        lower rank wins (continuity); within ranks 0 and 1 the candidate whose body centre moved
        least from its ROI wins: when one track's crop slides onto a neighbour, that track jumps
        while the neighbour's own track stays put. Among new detections higher presence wins.
        """
        cfg = self.model.config
        keep = presence >= cfg.min_presence
        if keep.sum() > 1:
            near = keypoint_distance(keypoints, rois[:, 2]) < cfg.same_person_distance / 2
            jump = np.linalg.norm(next_rois[:, :2] - rois[:, :2], axis=-1) / np.maximum(rois[:, 2], 1e-9)
            for i in np.lexsort((np.where(rank < 2, jump, -presence), rank)):  # greedy, over people
                if keep[i]:
                    dup = near[i] & keep
                    dup[i] = False
                    keep &= ~dup
        if keep.sum() > cfg.max_people:
            keep &= presence >= np.sort(presence[keep])[-cfg.max_people]
        return keep

    def _to_slots(self, out: dict, keep: np.ndarray, slots: np.ndarray, rois: np.ndarray, ran: bool) -> FrameResult:
        cfg = self.model.config
        n_slots = int(slots[keep].max()) + 1 if keep.any() else 0
        kp = np.full((n_slots, NUM_LANDMARKS, 3), np.nan)
        sc = np.full(n_slots, np.nan)
        ro = np.full((n_slots, 4), np.nan)
        s = slots[keep]
        kp[s], sc[s], ro[s] = out["keypoints"][keep], out["presence"][keep], rois[keep]
        hm = tf = None
        if cfg.keep_heatmaps:
            hm = np.zeros((n_slots, NUM_LANDMARKS, HEATMAP_SIZE, HEATMAP_SIZE), np.float16)
            tf = np.full((n_slots, 2, 3), np.nan)
            hm[s], tf[s] = out["heatmaps"][keep].astype(np.float16), out["image_from_heatmap"][keep]
        return FrameResult(kp, sc, ro, hm, tf, detector_ran=ran)
