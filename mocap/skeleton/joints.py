"""Canonical joint names and one mapping table per keypoint format.

Canonical names are snake_case COCO names extended with what detectors give beyond COCO
(feet, hands, face) and derived joints (``pelvis`` = mid-hips, ``neck`` = mid-shoulders unless a
detector gives its own). Every detector and importer maps its own keypoints to these names
through one table here.
"""

from __future__ import annotations

import numpy as np

from mocap._checks import check_choice

#: Every canonical joint name, in a fixed order (COCO-17 first).
CANONICAL_JOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    # feet
    "left_heel", "right_heel", "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe",
    "left_foot_index", "right_foot_index",
    # hands (BlazePose)
    "left_pinky", "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb",
    # face (BlazePose)
    "left_eye_inner", "left_eye_outer", "right_eye_inner", "right_eye_outer", "mouth_left", "mouth_right",
    # head and derived
    "head_top", "neck", "pelvis",
)

COCO_17: tuple[str, ...] = CANONICAL_JOINTS[:17]

#: OpenPose BODY_25 (index -> canonical name; ``pelvis`` is OpenPose's MidHip).
BODY_25: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe",
    "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)

#: OpenPose BODY_25B (experimental model used by Pose2Sim): COCO-17 order, then neck, head top, feet.
BODY_25B: tuple[str, ...] = COCO_17 + (
    "neck", "head_top", "left_big_toe", "left_small_toe", "left_heel", "right_big_toe",
    "right_small_toe", "right_heel",
)

#: MediaPipe BlazePose 33 landmarks.
BLAZEPOSE_33: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)

KEYPOINT_FORMATS: dict[str, tuple[str, ...]] = {
    "body_25": BODY_25,
    "body_25b": BODY_25B,
    "coco_17": COCO_17,
    "blazepose_33": BLAZEPOSE_33,
}

for _fmt, _names in KEYPOINT_FORMATS.items():
    assert len(set(_names)) == len(_names) and set(_names) <= set(CANONICAL_JOINTS), _fmt


def format_joint_names(keypoint_format: str) -> tuple[str, ...]:
    """Canonical names, in the format's own keypoint order, for ``body_25`` etc."""
    return KEYPOINT_FORMATS[check_choice(keypoint_format, KEYPOINT_FORMATS, "keypoint_format")]


def left_right_permutation(joint_names) -> np.ndarray:
    """Index array ``(J,)`` that swaps every ``left_*`` joint with its ``right_*`` twin."""
    names = list(joint_names)
    mirror = [n.replace("left_", "\0").replace("right_", "left_").replace("\0", "right_") for n in names]
    return np.array([names.index(m) if m in names else i for i, m in enumerate(mirror)])


def add_derived_joints(points: np.ndarray, joint_names) -> tuple[np.ndarray, tuple[str, ...]]:
    """Append ``pelvis`` (mid-hips) and ``neck`` (mid-shoulders) where the format lacks them.

    Args:
        points: ``(..., J, D)`` with NaN for missing; the last coordinate may be a confidence
            (it is averaged like the rest, i.e. the midpoint's confidence is the mean).
        joint_names: ``(J,)`` names.

    Returns:
        ``(points (..., J', D), names (J',))``.
    """
    names = tuple(joint_names)
    extra, new_names = [], []
    for derived, (a, b) in (("pelvis", ("left_hip", "right_hip")), ("neck", ("left_shoulder", "right_shoulder"))):
        if derived in names or a not in names or b not in names:
            continue
        extra.append(0.5 * (points[..., names.index(a), :] + points[..., names.index(b), :]))
        new_names.append(derived)
    if not extra:
        return points, names
    return np.concatenate([points, np.stack(extra, axis=-2)], axis=-2), names + tuple(new_names)
