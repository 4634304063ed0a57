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


def _about(axis: int, angle: np.ndarray) -> np.ndarray:
    rotvec = np.zeros(np.shape(angle) + (3,))
    rotvec[..., axis] = angle
    return rotvec_to_rotmat(rotvec)


def gimbal_sweep_animation(num_frames: int = 120, fps: float = 30.0,
                           name: str = "person_1") -> tuple[SkeletonAnimation, dict[str, np.ndarray]]:
    """The humanoid turning through both writers' Euler singularities, and the angles it is made of.

    - ``pelvis``: yaw about world Z sweeping 0 -> 300° with a ±0.3 rad sway about world X. In the
      Y-up export axes that is ``R_y(yaw) R_x(sway)``: FBX Euler XYZ ``(x, y, z) = (sway, yaw, 0)``,
      whose middle angle passes 90° and 270°, where a per-frame decomposition switches branch
      (first and third angle +180°).
    - ``left_hip``: pitch about world X sweeping -20 -> 160° with a ±0.25 rad roll about world Z:
      ``R_x(pitch) R_y(roll)`` in Y-up axes, BVH ZXY ``(Z, X, Y) = (0, pitch, roll)``, middle angle
      through 90°.

    Every other joint stays at rest. Returns the animation and the generating angles in degrees,
    ``{"fbx_pelvis": (T, 3) X Y Z curves, "bvh_left_hip": (T, 3) Z X Y channels}``.
    """
    names = [j[0] for j in HUMANOID]
    parents = np.array([-1 if p is None else names.index(p) for _, p, _ in HUMANOID])
    offsets = np.array([o for _, _, o in HUMANOID], dtype=np.float64)
    t = np.arange(num_frames) / fps
    u = t / t[-1]
    yaw, sway = np.radians(300.0) * u, 0.3 * np.sin(2 * np.pi * 0.7 * t)
    pitch, roll = np.radians(-20.0 + 180.0 * u), 0.25 * np.sin(2 * np.pi * 0.5 * t)
    rotations = np.broadcast_to(np.eye(3), (num_frames, len(names), 3, 3)).copy()
    rotations[:, names.index("pelvis")] = _about(2, yaw) @ _about(0, sway)  # world axes, Z up
    rotations[:, names.index("left_hip")] = _about(0, pitch) @ _about(2, roll)
    root = np.stack([0.5 * t, np.zeros_like(t), np.full_like(t, 0.95)], axis=-1)
    angles = {"fbx_pelvis": np.degrees(np.stack([sway, yaw, np.zeros_like(t)], axis=-1)),
              "bvh_left_hip": np.degrees(np.stack([np.zeros_like(t), pitch, roll], axis=-1))}
    return SkeletonAnimation(names, parents, offsets, rotations, root, fps, name), angles


def turn_per_frame_deg(rotations: np.ndarray) -> np.ndarray:
    """How far each joint turns from one frame to the next: the angle of ``R_t^T R_{t+1}``,
    degrees ``(T - 1, J)`` for ``rotations (T, J, 3, 3)``."""
    step = np.swapaxes(rotations[:-1], -1, -2) @ rotations[1:]
    cos = np.clip((np.trace(step, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
    return np.degrees(np.arccos(cos))


def between_keys_error_deg(curves_deg: np.ndarray, rotations: np.ndarray, order: str) -> np.ndarray:
    """How far what an importer shows halfway between two linear Euler keys is from the motion.

    ``curves_deg (T, J, 3)`` are Euler angles in ``order`` (:mod:`mocap.geometry.rotations`) of
    the Y-up ``rotations (T, J, 3, 3)``. Returns ``(T - 1, J)`` degrees between the rotation of
    the averaged keys and the halfway rotation (the geodesic midpoint): continuous curves stay
    within a fraction of a degree even where they swing fast near the singularity; a curve that
    steps 180° there shows a joint half a turn away for that frame."""
    from mocap.geometry.rotations import euler_to_rotmat, rotmat_to_rotvec

    shown = euler_to_rotmat(np.radians(0.5 * (curves_deg[:-1] + curves_deg[1:])), order)
    step = rotmat_to_rotvec(np.swapaxes(rotations[:-1], -1, -2) @ rotations[1:])
    halfway = rotations[:-1] @ rotvec_to_rotmat(0.5 * step)
    return np.degrees(np.linalg.norm(rotmat_to_rotvec(np.swapaxes(shown, -1, -2) @ halfway), axis=-1))
