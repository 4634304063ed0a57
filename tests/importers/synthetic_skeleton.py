"""A plausible T-pose humanoid (20 canonical joints) with smooth random motion, for exporter tests."""

from __future__ import annotations

import numpy as np

from mocap.geometry.rotations import rotvec_to_rotmat
from mocap.skeleton.animation import SkeletonAnimation

# (joint, parent, rest offset from parent in metres, world axes Z up; the person faces -Y so
# their left is +X).
HUMANOID = (
    ("pelvis", None, (0.0, 0.0, 0.95)),
    ("left_hip", "pelvis", (0.09, 0.0, -0.05)),
    ("left_knee", "left_hip", (0.0, 0.0, -0.42)),
    ("left_ankle", "left_knee", (0.0, 0.0, -0.40)),
    ("left_heel", "left_ankle", (0.0, 0.04, -0.06)),
    ("left_big_toe", "left_ankle", (0.0, -0.15, -0.07)),
    ("right_hip", "pelvis", (-0.09, 0.0, -0.05)),
    ("right_knee", "right_hip", (0.0, 0.0, -0.42)),
    ("right_ankle", "right_knee", (0.0, 0.0, -0.40)),
    ("right_heel", "right_ankle", (0.0, 0.04, -0.06)),
    ("right_big_toe", "right_ankle", (0.0, -0.15, -0.07)),
    ("neck", "pelvis", (0.0, 0.0, 0.52)),
    ("nose", "neck", (0.0, -0.09, 0.12)),
    ("head_top", "neck", (0.0, 0.0, 0.24)),
    ("left_shoulder", "neck", (0.18, 0.0, -0.03)),
    ("left_elbow", "left_shoulder", (0.28, 0.0, 0.0)),
    ("left_wrist", "left_elbow", (0.25, 0.0, 0.0)),
    ("right_shoulder", "neck", (-0.18, 0.0, -0.03)),
    ("right_elbow", "right_shoulder", (-0.28, 0.0, 0.0)),
    ("right_wrist", "right_elbow", (-0.25, 0.0, 0.0)),
)


def synthetic_animation(rng: np.random.Generator, num_frames: int = 60, fps: float = 30.0, name: str = "person_1",
                        amplitude: float = 0.6, start_xy: tuple[float, float] = (0.0, 0.0)) -> SkeletonAnimation:
    """Smooth random local rotations (each rotvec component a sinusoid of up to ``amplitude`` rad),
    a full turn of root yaw over the clip and a walk along a curve."""
    names = [j[0] for j in HUMANOID]
    parents = np.array([-1 if p is None else names.index(p) for _, p, _ in HUMANOID])
    offsets = np.array([o for _, _, o in HUMANOID], dtype=np.float64)
    J = len(names)
    t = np.arange(num_frames) / fps
    freq = rng.uniform(0.3, 1.5, size=(J, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(J, 3))
    amp = rng.uniform(0.2, 1.0, size=(J, 3)) * amplitude
    rotvec = amp * np.sin(2 * np.pi * freq * t[:, None, None] + phase)  # (T, J, 3)
    rotvec[:, 0, 2] += 2 * np.pi * t / t[-1] if num_frames > 1 else 0.0  # root yaw: one full turn
    rotations = rotvec_to_rotmat(rotvec)
    root = np.stack([start_xy[0] + 1.5 * np.sin(t), start_xy[1] + 0.8 * t, 0.95 + 0.05 * np.sin(4 * t)], axis=-1)
    return SkeletonAnimation(names, parents, offsets, rotations, root, fps, name)
