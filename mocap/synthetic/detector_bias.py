"""A 2D detector's systematic, viewpoint-dependent bias (an option of the training error model, off by default).

The detector model of :mod:`mocap.synthetic.detector` draws its errors independently per view
and frame (plus AR(1) noise), and its confidences fall as the error grows. Real detectors also
place whole body parts consistently off in one view: OpenPose on the Pose2Sim two-person take
shifts the second performer's upper body in one camera by 10-30 px for the whole take, with
confidence 1.0 at every joint. This module adds that error to a capture's detections of one
person: per camera, one or two joint groups (:data:`JOINT_GROUPS`: the upper body, an arm, a
leg, the head) move together by an offset of a few per cent of the person's size in that view
(5-25 px for a 500 px tall person), larger where the camera sees the person from the side
(:func:`viewing_obliqueness`), varying slowly over the frames (a fraction of a cycle per
second in size and direction); the confidences are left as they are. Deterministic in the
generator given; vectorised over frames, cameras and joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap.geometry.camera import Rig, project_rig

#: Joint groups that a detector shifts together (by name part; canonical joint names).
JOINT_GROUPS = {
    "upper_body": ("nose", "eye", "ear", "neck", "head_top", "shoulder", "elbow", "wrist"),
    "left_arm": ("left_shoulder", "left_elbow", "left_wrist"),
    "right_arm": ("right_shoulder", "right_elbow", "right_wrist"),
    "left_leg": ("left_knee", "left_ankle", "left_heel", "left_big_toe", "left_small_toe"),
    "right_leg": ("right_knee", "right_ankle", "right_heel", "right_big_toe", "right_small_toe"),
    "head": ("nose", "eye", "ear", "head_top"),
}


@dataclass(frozen=True)
class DetectorBias:
    """Settings of :func:`detector_bias_offsets` (the defaults are the training's)."""

    share: tuple[float, float] = (0.01, 0.05)
    """Offset of a shifted group, drawn per camera and group: this range of the person's size in the view."""
    frontal_factor: float = 0.3
    """Multiplier of the offset where the camera sees the person from the front or back (1 seen from the side)."""
    groups: tuple[int, int] = (1, 2)
    """Groups shifted per camera, drawn in this range (inclusive)."""
    untouched: float = 0.25
    """Chance that a camera has no bias at all."""
    period_s: tuple[float, float] = (3.0, 12.0)
    """Period of the slow variation of each offset's size and direction, drawn in this range."""
    fps: float = 30.0
    """Frame rate of the capture (sets how slow the variation is in frames)."""

    def __post_init__(self):
        lo, hi = self.share
        if not 0 <= lo <= hi:
            raise ValueError(f"share: expected 0 <= low <= high, got {self.share}")
        if not (1 <= self.groups[0] <= self.groups[1] <= len(JOINT_GROUPS)):
            raise ValueError(f"groups: expected 1 <= low <= high <= {len(JOINT_GROUPS)}, got {self.groups}")
        if not (0 <= self.untouched <= 1 and 0 <= self.frontal_factor <= 1):
            raise ValueError("untouched and frontal_factor: expected values in [0, 1]")
        if not (0 < self.period_s[0] <= self.period_s[1] and self.fps > 0):
            raise ValueError(f"period_s and fps: expected positive values, got {self.period_s}, {self.fps}")


def group_mask(joint_names, group: str) -> np.ndarray:
    """``(J,)`` bool: the joints of ``joint_names`` in :data:`JOINT_GROUPS` ``group``."""
    if group not in JOINT_GROUPS:
        raise ValueError(f"joint group {group!r}: expected one of {', '.join(JOINT_GROUPS)}")
    return np.array([any(part in name for part in JOINT_GROUPS[group]) for name in joint_names])


def viewing_obliqueness(rig: Rig, gt: np.ndarray, joint_names) -> np.ndarray:
    """``(T, C)`` in [0, 1]: 0 where camera ``c`` sees the person of ``gt (T, J, 3)`` (world metres, Z
    up) square from the front or back, 1 from the side; from the hips' left-right axis and the
    horizontal direction from the pelvis to the camera (0.5 where the hips are missing)."""
    names = list(joint_names)
    left, right = gt[:, names.index("left_hip")], gt[:, names.index("right_hip")]
    across = (right - left)[:, :2]  # (T, 2) horizontal
    to_cam = rig.centers[None, :, :2] - (0.5 * (left + right))[:, None, :2]  # (T, C, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        across = across / np.linalg.norm(across, axis=-1, keepdims=True)
        to_cam = to_cam / np.linalg.norm(to_cam, axis=-1, keepdims=True)
        side = np.abs(np.einsum("tk,tck->tc", across, to_cam))  # 1: the hips' axis points at the camera
    return np.where(np.isfinite(side), np.clip(side, 0.0, 1.0), 0.5)


def detector_bias_offsets(rig: Rig, gt: np.ndarray, joint_names, rng: np.random.Generator,
                          bias: DetectorBias = DetectorBias()) -> np.ndarray:
    """``(T, C, J, 2)`` pixel offsets of a detector's systematic error on the person of ``gt (T, J, 3)``:
    per camera (unless untouched) ``bias.groups`` joint groups each shifted together by
    ``share`` × the person's size in the view (its true projection's box) × a factor from
    ``frontal_factor`` (seen from the front) to 1 (from the side), in a direction and size that
    drift slowly (±30 % in size, ±0.5 rad in direction over ``period_s``)."""
    T, J = gt.shape[:2]
    C = len(rig)
    proj = np.moveaxis(project_rig(rig, gt), 2, 1)  # (T, C, J, 2)
    with np.errstate(invalid="ignore"):
        size = np.nan_to_num(np.nanmax(np.ptp(proj, axis=2), axis=-1))  # (T, C)
    view = bias.frontal_factor + (1.0 - bias.frontal_factor) * viewing_obliqueness(rig, gt, joint_names)
    t = np.arange(T) / bias.fps
    out = np.zeros((T, C, J, 2))
    names = list(JOINT_GROUPS)
    for c in range(C):
        if rng.uniform() < bias.untouched:
            continue
        n = int(rng.integers(bias.groups[0], bias.groups[1] + 1))
        for group in rng.choice(names, size=n, replace=False):
            share = rng.uniform(*bias.share)
            angle0, period = rng.uniform(0, 2 * np.pi), rng.uniform(*bias.period_s)
            phase = rng.uniform(0, 2 * np.pi, size=2)
            wave = 2 * np.pi * t / period
            scale = share * size[:, c] * view[:, c] * (1.0 + 0.3 * np.sin(wave + phase[0]))  # (T,)
            angle = angle0 + 0.5 * np.sin(wave + phase[1])
            step = scale[:, None] * np.stack([np.cos(angle), np.sin(angle)], -1)  # (T, 2)
            out[:, c, group_mask(joint_names, group)] += step[:, None, :]
    return out


def add_detector_bias(person: np.ndarray, rig: Rig, gt: np.ndarray, joint_names, rng: np.random.Generator,
                      rate: float, bias: DetectorBias = DetectorBias()) -> np.ndarray:
    """``person (T, C, J, 3)`` (one person's detections per view, NaN where missed) with, with
    probability ``rate``, :func:`detector_bias_offsets` added to its pixels; confidences and
    missing joints unchanged. ``rate`` 0 returns an unchanged copy without drawing anything."""
    if not 0 <= rate <= 1:
        raise ValueError(f"detector bias rate: expected a value in [0, 1], got {rate}")
    out = person.copy()
    if rate == 0 or rng.uniform() >= rate:
        return out
    if gt.shape[:2] != (person.shape[0], person.shape[2]) or person.shape[1] != len(rig):
        raise ValueError(f"detector bias: detections {person.shape} do not match truth {gt.shape} "
                         f"and {len(rig)} cameras")
    out[..., :2] += detector_bias_offsets(rig, gt, joint_names, rng, bias)
    return out
