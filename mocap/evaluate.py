"""Comparisons of a result with a reference: reprojection against 2D keypoints of another detector."""

from __future__ import annotations

import warnings

import numpy as np

from mocap.geometry import Rig, project_rig
from mocap.io.keypoints import Keypoints2D
from mocap.io.tracks import Tracks

#: The 12 limb joints used for accuracy figures (shoulders, elbows, wrists, hips, knees, ankles).
LIMB_JOINTS = tuple(f"{s}_{j}" for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle") for s in ("left", "right"))


#: Bones whose length should not change over a take (limbs, hip and shoulder widths).
BONES = (
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("left_hip", "right_hip"),
    ("left_shoulder", "right_shoulder"),
)


def bone_length_cv(points: np.ndarray, joint_names) -> dict[str, float]:
    """Coefficient of variation (std / mean over frames) of each bone in :data:`BONES` present
    in ``joint_names``; ``points (T, J, 3)``. NaN for a bone never seen."""
    names = list(joint_names)
    out = {}
    for a, b in BONES:
        if a in names and b in names:
            length = np.linalg.norm(points[:, names.index(a)] - points[:, names.index(b)], axis=-1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a bone never seen
                out[f"{a}-{b}"] = float(np.nanstd(length) / np.nanmean(length))
    return out


def closest_detection_distances(projected: np.ndarray, detected: np.ndarray, min_confidence: float = 0.3) -> np.ndarray:
    """``(T, P, J)`` px from each projected person ``projected (T, P, J, 2)`` to the detected person
    of ``detected (T, P', J, 3)`` (one camera) closest in median distance in that frame; detected
    keypoints below ``min_confidence`` are ignored; NaN where nothing could be compared."""
    ref_xy = np.where(detected[..., 2:] >= min_confidence, detected[..., :2], np.nan)
    d = np.linalg.norm(projected[:, :, None] - ref_xy[:, None], axis=-1)  # (T, P, P', J)
    if d.shape[2] == 0:
        return np.full(d.shape[:2] + d.shape[3:], np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices are expected
        per_person = np.nanmedian(d, axis=-1)  # (T, P, P')
        best = np.nanargmin(np.where(np.isnan(per_person), np.inf, per_person), axis=-1)  # (T, P)
    return np.take_along_axis(d, best[..., None, None], axis=2)[:, :, 0]


def reprojection_vs_keypoints(tracks: Tracks, rig: Rig, reference: Keypoints2D, joints=LIMB_JOINTS,
                              min_confidence: float = 0.3) -> dict[str, float]:
    """Median pixel distance per camera between ``tracks`` projected into ``rig`` and ``reference``.

    Args:
        tracks: positions ``(T, P, J, 3)``; every person is compared.
        rig: calibration; ``reference.camera_names`` are matched to it by name.
        reference: 2D keypoints ``(T', C', P', J', 3)`` of the same frames (row t of both is the
            same instant; the shorter one sets T). For each tracked person and view the reference
            person closest in median distance is used (association by proximity, per frame).
        joints: canonical joint names compared (those present in both).
        min_confidence: reference keypoints below this confidence are ignored.

    Returns:
        ``{camera name: median px}`` (NaN where nothing could be compared).
    """
    names = [n for n in joints if n in tracks.joint_names and n in reference.joint_names]
    if not names:
        raise ValueError(f"no joint in common between the tracks ({', '.join(tracks.joint_names)}) and the reference")
    ti = [tracks.joint_names.index(n) for n in names]
    ri = [reference.joint_names.index(n) for n in names]
    T = min(tracks.num_frames, reference.data.shape[0])
    proj = project_rig(rig, tracks.positions[:T][:, :, ti])  # (T, P, J, C, 2)
    out = {}
    for c_ref, cam in enumerate(reference.camera_names):
        c = rig.index(cam)
        chosen = closest_detection_distances(proj[..., c, :], reference.data[:T, c_ref][:, :, ri], min_confidence)
        out[rig[c].name] = float(np.nanmedian(chosen)) if np.isfinite(chosen).any() else float("nan")
    return out
