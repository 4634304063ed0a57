"""CMU motion-capture skeletons (BVH) -> canonical joints in our world frame.

Units: CMU BVH files are in the ASF's length unit, 1 unit = (1 / 0.45) inch = 0.0254 / 0.45 m
≈ 5.64 cm (the ASF header's ``length 0.45``).

Axes: the files are Y up with the actor facing +Z in the rest pose (left = +X). Our world is Z up,
right-handed; the one converter :func:`mocap.export.axes.points_yup_to_world` maps file
``(x, y, z)`` to world ``(x, -z, y)``: up stays up, the rest-pose actor faces world -Y, left stays
+X, and the handedness is kept (a proper rotation, determinant +1).

Two naming dialects occur in the CMU BVH conversions: subject 131 style (``LeftHip``,
``LeftKnee``, ``LeftAnkle``, ``LeftToe``, ``LeftShoulder`` = upper arm, ``LeftElbow``,
``LeftWrist``) and MotionBuilder style (``LeftUpLeg``, ``LeftLeg``, ``LeftFoot``, ``LeftToeBase``,
``LeftArm`` = upper arm, ``LeftForeArm``, ``LeftHand``; here ``LeftShoulder`` is the clavicle).

Points that are not CMU joints are placed with anthropometric offsets (metres) in a local frame:

- Head frame: origin at the ``Head`` end site ``E``, ``up`` towards ``E`` from the ``Head``
  joint, ``fwd`` the head's rest-pose +Z made orthogonal to ``up``, ``left = up × fwd``.
  CMU's head end site sits near ear height: it is 0.19–0.23 m above the shoulder joints in
  131/01, where the tragion is ≈ 0.11·H ≈ 0.18 m above the shoulder joint centre (Winter,
  *Biomechanics and Motor Control of Human Movement*, segment table: shoulder 0.818·H,
  vertex 1.0·H, chin 0.870·H). Hence ``head_top = E + 0.10 up`` and the face below, with
  interpupillary distance 6.4 cm and bitragion breadth 15 cm (adult means):
  eyes ``-0.015 up, +0.085 fwd, ±0.032 left``; ears ``-0.025 up, -0.01 fwd, ±0.075 left``;
  nose tip ``-0.06 up, +0.105 fwd``; mouth corners ``-0.095 up, +0.09 fwd, ±0.025 left``;
  inner/outer eye corners ``±0.017`` / ``±0.047`` left (outer 1 cm further back).
- Foot frame: ``fwd`` from the ankle to the toe end site, ``up`` the ankle's rest +Y made
  orthogonal, ``left = up × fwd``. Standing, the ankle centre is ≈ 8 cm above the floor and
  the ankle-to-toe-tip line slopes ≈ 20°; the heel keypoint (back-bottom of the calcaneus,
  ≈ 5.5 cm behind and ≈ 6.5 cm below the ankle centre) is ``ankle - 0.028 fwd - 0.080 up``.
  ``foot_index`` is the toe end site; ``big_toe`` 2 cm medial of it; ``small_toe`` 3.5 cm
  lateral and 3.5 cm back.
- Hand frame: ``along`` wrist -> fingers end site, ``thumb_side`` towards the thumb end site
  (orthogonalised). BlazePose's hand points are knuckles: index MCP ``0.08 along + 0.02
  thumb``, pinky MCP ``0.07 along - 0.03 thumb``, thumb ``0.045 along + 0.05 thumb``.
- ``pelvis`` = mid-hips and ``neck`` = mid-shoulders, as :func:`add_derived_joints` defines them.
"""

from __future__ import annotations

import numpy as np

from mocap.errors import MocapError
from mocap.export.axes import points_yup_to_world
from mocap.io.bvh import BvhMotion, bvh_end_site_positions, bvh_forward_kinematics
from mocap.skeleton.joints import CANONICAL_JOINTS

#: Metres per CMU BVH unit (ASF ``length 0.45``: lengths are in 1/0.45 inch).
CMU_UNIT_M = 0.0254 / 0.45

# Key -> (subject-131 name, MotionBuilder name); "L"/"R" prefixed keys expand per side.
_DIALECTS = {
    "131": {"hip": "{S}Hip", "knee": "{S}Knee", "ankle": "{S}Ankle", "toe": "{S}Toe",
            "shoulder": "{S}Shoulder", "elbow": "{S}Elbow", "wrist": "{S}Wrist",
            "fingers": "{s}Fingers", "thumb": "{s}Thumb", "head": "Head"},
    "mb": {"hip": "{S}UpLeg", "knee": "{S}Leg", "ankle": "{S}Foot", "toe": "{S}ToeBase",
           "shoulder": "{S}Arm", "elbow": "{S}ForeArm", "wrist": "{S}Hand",
           "fingers": "{s}Fingers", "thumb": "{s}Thumb", "head": "Head"},
    # cgspeed's 2010 MotionBuilder-friendly release (motion/cmu_more): MotionBuilder names, the
    # fingers' end site under LeftHandIndex1 (LeftFingerBase between it and the hand).
    "cgspeed": {"hip": "{S}UpLeg", "knee": "{S}Leg", "ankle": "{S}Foot", "toe": "{S}ToeBase",
                "shoulder": "{S}Arm", "elbow": "{S}ForeArm", "wrist": "{S}Hand",
                "fingers": "{S}HandIndex1", "thumb": "{s}Thumb", "head": "Head"},
}

# Face offsets (up, fwd, left) from the head end site, metres (see module doc).
_FACE = {
    "head_top": (0.10, 0.0, 0.0),
    "nose": (-0.06, 0.105, 0.0),
    "left_eye": (-0.015, 0.085, 0.032), "right_eye": (-0.015, 0.085, -0.032),
    "left_eye_inner": (-0.015, 0.085, 0.017), "right_eye_inner": (-0.015, 0.085, -0.017),
    "left_eye_outer": (-0.015, 0.075, 0.047), "right_eye_outer": (-0.015, 0.075, -0.047),
    "left_ear": (-0.025, -0.01, 0.075), "right_ear": (-0.025, -0.01, -0.075),
    "mouth_left": (-0.095, 0.09, 0.025), "mouth_right": (-0.095, 0.09, -0.025),
}
# Foot offsets (fwd, up, lateral) from the ankle (heel) or toe tip (toes); lateral > 0 = outwards.
_HEEL = (-0.028, -0.080, 0.0)
_TOES = {"foot_index": (0.0, 0.0, 0.0), "big_toe": (-0.005, 0.0, -0.02), "small_toe": (-0.035, 0.0, 0.035)}
# Hand offsets (along, thumb-side) from the wrist.
_HAND = {"index": (0.08, 0.02), "pinky": (0.07, -0.03), "thumb": (0.045, 0.05)}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _orthogonal(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Unit part of ``v (..., 3)`` orthogonal to the unit ``axis (..., 3)``."""
    return _unit(v - np.sum(v * axis, axis=-1, keepdims=True) * axis)


def cmu_dialect(motion: BvhMotion) -> str:
    """``"131"``, ``"mb"`` or ``"cgspeed"``: which CMU naming the file uses; MocapError if none fits."""
    names = set(motion.joint_names)
    for dialect, table in _DIALECTS.items():
        needed = {v.format(S=S, s=S[0]) for v in table.values() for S in ("Left", "Right")}
        if needed <= names:
            return dialect
    raise MocapError(f"{motion.path or 'BVH'}: not a CMU skeleton (expected joints such as LeftHip/LeftUpLeg, "
                     f"LeftAnkle/LeftFoot, Head); found {', '.join(motion.joint_names[:12])}…")


def cmu_to_canonical(motion: BvhMotion, joint_names=CANONICAL_JOINTS,
                     unit_m: float = CMU_UNIT_M) -> tuple[np.ndarray, tuple[str, ...]]:
    """World positions of canonical joints from a CMU BVH motion.

    Args:
        motion: a CMU BVH (:func:`mocap.io.bvh.read_bvh`), either naming dialect.
        joint_names: canonical names wanted (default: all of :data:`CANONICAL_JOINTS`).
        unit_m: metres per file unit.

    Returns:
        ``(positions_world (T, J, 3) metres, Z up; joint_names (J,))``.
    """
    unknown = [n for n in joint_names if n not in CANONICAL_JOINTS]
    if unknown:
        raise ValueError(f"joint_names: not canonical joints: {unknown}")
    table = _DIALECTS[cmu_dialect(motion)]
    pos, rot = bvh_forward_kinematics(motion)
    ends = bvh_end_site_positions(motion, pos, rot) * unit_m
    pos = pos * unit_m
    end_of = {motion.joint_names[p]: e for e, p in enumerate(motion.end_site_parents)}

    def joint(key: str, side: str = "Left") -> int:
        return motion.joint(table[key].format(S=side, s=side[0]))

    def end(key: str, side: str = "Left") -> np.ndarray:
        name = table[key].format(S=side, s=side[0])
        if name not in end_of:
            raise MocapError(f"{motion.path or 'BVH'}: joint {name!r} has no End Site; cannot place canonical points")
        return ends[:, end_of[name]]

    out: dict[str, np.ndarray] = {}
    for side, lr, sign in (("Left", "left", 1.0), ("Right", "right", -1.0)):
        for key in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist"):
            out[f"{lr}_{key}"] = pos[:, joint(key, side)]
        # Foot frame; "outwards" is +left for the left foot and -left for the right foot.
        ankle_j = joint("ankle", side)
        tip = end("toe", side)
        fwd = _unit(tip - pos[:, ankle_j])
        up = _orthogonal(rot[:, ankle_j, :, 1], fwd)
        out_dir = sign * np.cross(up, fwd)
        out[f"{lr}_heel"] = pos[:, ankle_j] + _HEEL[0] * fwd + _HEEL[1] * up + _HEEL[2] * out_dir
        for name, (f, u, o) in _TOES.items():
            out[f"{lr}_{name}"] = tip + f * fwd + u * up + o * out_dir
        # Hand frame.
        wrist = pos[:, joint("wrist", side)]
        along = _unit(end("fingers", side) - wrist)
        thumb = _orthogonal(end("thumb", side) - wrist, along)
        for name, (a, b) in _HAND.items():
            out[f"{lr}_{name}"] = wrist + a * along + b * thumb
    out["pelvis"] = 0.5 * (out["left_hip"] + out["right_hip"])
    out["neck"] = 0.5 * (out["left_shoulder"] + out["right_shoulder"])
    head_j = motion.joint(table["head"])
    top = end("head")
    up = _unit(top - pos[:, head_j])
    fwd = _orthogonal(rot[:, head_j, :, 2], up)
    left = np.cross(up, fwd)
    for name, (u, f, lft) in _FACE.items():
        out[name] = top + u * up + f * fwd + lft * left
    stacked = np.stack([out[n] for n in joint_names], axis=1)
    return points_yup_to_world(stacked), tuple(joint_names)
