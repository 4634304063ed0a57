"""Target rigs: our solved skeleton retargeted onto Mixamo's, UE5 Mannequin's and Unity Humanoid's
own hierarchies and bone names.

A rig is a table of target bones. Each bone is **driven by one of our joints** (``source``): it sits
on that joint, or a ``fraction`` of the way along the joint's bone towards ``toward`` (our spine
carries the trunk from the pelvis to the neck, and the target's 3 to 5 spine bones sit along it),
and turns with it. Where several target bones share one of our joints (a spine or neck chain) the
joint's twist about its bone is spread over them (bone ``k`` of ``n`` takes ``k / n`` of it) and the
chain stays on our bone's line, so the last bone of the chain has our joint's exact rotation and
every joint below it (neck, head, shoulders, arms) lands exactly where ours does. With fixed bone
lengths a bend cannot be spread without moving the neck off our trunk line (the chord of a bent
chain is shorter), so the bend stays in the first bone of the chain. Where our joint's bone
stretches (:attr:`SkeletonAnimation.translations`: the trunk, the neck, the feet) the bones along it
keep their fractions of its length on every frame, so they get animated offsets too.

The rest pose is the target's: the T pose for Mixamo and Unity Humanoid (their avatars expect
it), the A pose for UE5 (Manny's reference pose: upper arms :data:`UE5_ARM_DOWN_DEG` below the
horizontal). An A pose turns the arm below each upper arm at rest (:data:`REST_TURNS`); the
animation is compensated (``V_j Q^T`` for a bone turned by ``Q`` at rest), so world positions do not
change. Joints a target has no bone for (our heels)
are left out; a target bone whose source joint the tracks did not provide is left out with its
children.

Published bone lists: Mixamo's auto-rigger (``mixamorig:`` namespace), Unreal Engine 5's
Mannequin (SK_Mannequin: ``root`` on the floor, ``pelvis``, ``spine_01`` … ``spine_05``, ``neck_01``,
``neck_02``, ``head``, ``clavicle_l`` …; the root follows the pelvis over the floor without turning,
the root motion UE extracts), Unity's ``HumanBodyBones`` (the names the Humanoid avatar's auto-mapping finds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap._checks import check_choice
from mocap.geometry.rotations import rotmat_to_quat, rotvec_to_rotmat
from mocap.skeleton.animation import SkeletonAnimation, forward_kinematics


@dataclass(frozen=True)
class TargetBone:
    """One bone of a target rig, driven by our joint ``source``.

    ``fraction``: where it sits along ``source``'s bone towards our joint ``toward`` (0 = on
    ``source``). ``twist``: the share of ``source``'s twist about that bone it carries (1 = our
    joint's full rotation). ``ground``: the bone sits on the floor (world z = 0) below ``source``
    and does not turn (UE5's ``root``, which carries the root motion); it stands on no joint of ours.
    """

    name: str
    parent: str | None
    source: str
    fraction: float = 0.0
    twist: float = 1.0
    toward: str | None = None
    ground: bool = False


def _chain(names, parent, source, toward, end):
    """Bones spread along our ``source`` bone, evenly from its start to ``end`` of its length, bone
    ``k`` of ``n`` carrying ``(k + 1) / n`` of its twist."""
    n = len(names)
    out = []
    for k, name in enumerate(names):
        out.append(TargetBone(name, parent, source, end * k / max(n - 1, 1), (k + 1) / n, toward))
        parent = name
    return out


def _limbs(style):
    """Per side: (our joint, target name) for the legs and arms, in parent order."""
    ours = ("hip", "knee", "ankle", "toe", "clavicle", "shoulder", "elbow", "wrist", "hand")
    out = []
    for side in ("left", "right"):
        names = style(side)
        out.append([(f"{side}_{j}", n) for j, n in zip(ours, names)])
    return out


def _build(hips, spine, neck_and_head, head_end, side_names, prefix="", ground=None):
    """A rig table from its centre names and a ``side -> 9 limb names`` function. The spine chain
    spans our trunk (pelvis to neck); the neck chain and head bone span the lower half of our neck
    bone (neck to head point), the head bone at its middle (the skull base). ``ground``: the name of
    a root bone on the floor below the hips (UE5's ``root``)."""
    spine, neck_and_head = [prefix + s for s in spine], [prefix + n for n in neck_and_head]
    bones = [TargetBone(prefix + hips, None, "pelvis")]
    if ground is not None:
        bones = [TargetBone(prefix + ground, None, "pelvis", ground=True), TargetBone(prefix + hips, prefix + ground, "pelvis")]
    bones += _chain(spine, prefix + hips, "spine", "neck", (len(spine) - 1) / len(spine))
    bones += _chain(neck_and_head, spine[-1], "neck", "head", 0.5)
    if head_end:
        bones.append(TargetBone(prefix + head_end, neck_and_head[-1], "head"))
    for limb in _limbs(side_names):
        parents = {"hip": prefix + hips, "clavicle": spine[-1]}
        for (ours, name), prev in zip(limb, [None] + limb[:-1]):
            joint = ours.split("_", 1)[1]
            parent = parents.get(joint, None if prev is None else prefix + prev[1])
            bones.append(TargetBone(prefix + name, parent, ours))
    return tuple(bones)


def _mixamo_side(side):
    s = side.capitalize()
    return [f"{s}UpLeg", f"{s}Leg", f"{s}Foot", f"{s}ToeBase", f"{s}Shoulder", f"{s}Arm", f"{s}ForeArm", f"{s}Hand",
            f"{s}HandMiddle1"]


def _ue5_side(side):
    s = side[0]
    return [f"thigh_{s}", f"calf_{s}", f"foot_{s}", f"ball_{s}", f"clavicle_{s}", f"upperarm_{s}", f"lowerarm_{s}",
            f"hand_{s}", f"middle_metacarpal_{s}"]


def _unity_side(side):
    s = side.capitalize()
    return [f"{s}UpperLeg", f"{s}LowerLeg", f"{s}Foot", f"{s}Toes", f"{s}Shoulder", f"{s}UpperArm", f"{s}LowerArm",
            f"{s}Hand", f"{s}MiddleProximal"]


_RIGID_M = 1e-8  # a target bone whose offset varies less than this (metres) keeps its rest offset

#: UE5 Manny's reference pose: upper arms this far below the horizontal (an A pose).
UE5_ARM_DOWN_DEG = 45.0


def _arm_down(side: int) -> np.ndarray:
    """Rotation ``(3, 3)`` turning an arm along ``side`` * +X (world, Z up) down by UE5_ARM_DOWN_DEG:
    about +Y for the left arm (+X -> down), -Y for the right."""
    return rotvec_to_rotmat(np.array([0.0, side * np.radians(UE5_ARM_DOWN_DEG), 0.0]))


#: ``{rig: {bone: rotation (3, 3), world axes, that turns the bone and everything below it at rest}}``.
REST_TURNS: dict[str, dict[str, np.ndarray]] = {"ue5": {"upperarm_l": _arm_down(1), "upperarm_r": _arm_down(-1)}}

#: ``{rig: target bones, parents first}``; ``canonical`` is our own skeleton as solved.
RIGS: dict[str, tuple[TargetBone, ...]] = {
    "canonical": (),
    # Mixamo: Hips, Spine, Spine1, Spine2, Neck, Head, HeadTop_End; one neck bone, Head halfway
    # up our neck bone (the skull base), HeadTop_End on our head point.
    "mixamo": _build("Hips", ("Spine", "Spine1", "Spine2"), ("Neck", "Head"), "HeadTop_End", _mixamo_side,
                     prefix="mixamorig:"),
    # UE5: Manny's ``root`` on the floor below the pelvis (root motion: it follows the pelvis over
    # the floor and does not turn), then pelvis, spine_01 … spine_05, neck_01, neck_02, head.
    "ue5": _build("pelvis", ("spine_01", "spine_02", "spine_03", "spine_04", "spine_05"),
                  ("neck_01", "neck_02", "head"), None, _ue5_side, ground="root"),
    "unity": _build("Hips", ("Spine", "Chest", "UpperChest"), ("Neck", "Head"), None, _unity_side),
}


def _swing_twist_power(local: np.ndarray, axis: np.ndarray, share: float) -> np.ndarray:
    """``S @ Tw**share`` for ``local = S @ Tw`` (``Tw`` a twist about ``axis``), ``(T, 3, 3)``."""
    quat = rotmat_to_quat(local)  # xyzw
    along = quat[:, :3] @ axis
    angle = 2.0 * np.arctan2(along, quat[:, 3])
    twist = rotvec_to_rotmat(angle[:, None] * axis)
    swing = local @ np.swapaxes(twist, -1, -2)
    return swing @ rotvec_to_rotmat(share * angle[:, None] * axis)


def _bone_globals(anim, bones, pos, glob):
    """World positions and rotations ``(T, B, 3)``, ``(T, B, 3, 3)`` of the target bones."""
    index = {n: j for j, n in enumerate(anim.joint_names)}
    trans = anim.local_translations()
    out_pos, out_rot = [], []
    for bone in bones:
        s = index[bone.source]
        rot, p = glob[:, s], pos[:, s]
        if bone.ground:  # on the floor below the source, not turning
            rot, p = np.broadcast_to(np.eye(3), rot.shape), p * [1.0, 1.0, 0.0]
        elif bone.toward is not None and bone.toward in index:
            offset = anim.offsets[index[bone.toward]]
            axis = offset / max(np.linalg.norm(offset), 1e-12)
            if bone.twist != 1.0:
                parent = anim.parents[s]
                rot = glob[:, parent] @ _swing_twist_power(anim.rotations[:, s], axis, bone.twist)
            p = p + bone.fraction * np.einsum("tab,tb->ta", glob[:, s], trans[:, index[bone.toward]])
        out_pos.append(p)
        out_rot.append(rot)
    return np.stack(out_pos, axis=1), np.stack(out_rot, axis=1)


def _rest_turns(turns: dict[str, np.ndarray], names: list[str], parents: np.ndarray) -> np.ndarray:
    """Rest rotation ``(B, 3, 3)`` of every bone: its own entry in ``turns``, else its parent's."""
    out = np.empty((len(names), 3, 3))
    for j, name in enumerate(names):
        out[j] = turns.get(name, out[parents[j]] if parents[j] >= 0 else np.eye(3))
    return out


def _turned_rest(rest_pos: np.ndarray, turn: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Rest positions ``(B, 3)`` with each bone's offset from its parent turned by the parent's
    rest rotation (the bone a turn starts at stays where it is; its subtree swings about it)."""
    out = rest_pos.copy()
    for j, p in enumerate(parents):
        if p >= 0:
            out[j] = out[p] + turn[p] @ (rest_pos[j] - rest_pos[p])
    return out


def rig_bones(rig: str, joint_names) -> tuple[TargetBone, ...]:
    """The bones of ``rig`` that ``joint_names`` (our solved joints) can drive, parents first."""
    table = RIGS[check_choice(rig, RIGS, "rig")]
    have = set(joint_names)
    kept: list[TargetBone] = []
    names: set[str] = set()
    for bone in table:
        if bone.source in have and (bone.parent is None or bone.parent in names):
            if bone.toward is not None and bone.toward not in have and bone.fraction > 0:
                continue
            kept.append(bone)
            names.add(bone.name)
    return tuple(kept)


def retarget(anim: SkeletonAnimation, rig: str, t_pose: bool = False, rigid: np.ndarray | None = None) -> SkeletonAnimation:
    """``anim`` (our solved skeleton) as an animation of ``rig``'s own bones (see the module doc).

    Returns a :class:`SkeletonAnimation` with the rig's names and hierarchy, its rest offsets
    ``(B, 3)`` (the target's rest pose, or the T pose with ``t_pose``; world-aligned rest frames,
    metres) and local rotations ``(T, B, 3, 3)``; ``canonical`` returns ``anim`` itself. FK of the
    result puts every bone that sits on one of our joints exactly on it. BVH takes ``t_pose``: it
    has no rest orientations, so an A pose's elbow would bend about an axis tilted off every
    channel axis, and its Euler curves swing up to 60° in a frame where it turns 5° (94_01).
    ``rigid (B,)``: which target bones keep their rest offset; None: those whose offset varies
    less than ``_RIGID_M`` over ``anim`` (a part of a take passes the whole take's,
    :func:`retarget_deviation`).
    """
    if check_choice(rig, RIGS, "rig") == "canonical":
        return anim
    names, parents, offsets, local, root, translations = _retargeted(anim, rig, t_pose)
    if rigid is None:
        rigid = np.abs(translations - offsets).max(axis=(0, 2)) < _RIGID_M
        rigid[0] = True
    translations[:, rigid] = offsets[rigid]
    return SkeletonAnimation(tuple(names), parents, offsets, local, root, anim.fps, anim.name,
                             None if rigid.all() else translations)


def retarget_deviation(anim: SkeletonAnimation, rig: str, t_pose: bool = False) -> np.ndarray:
    """``(B,)`` the most each target bone's offset departs from its rest offset over ``anim``,
    metres (the largest over the chunks of a take, ``< _RIGID_M``, is :func:`retarget`'s ``rigid``)."""
    _, _, offsets, _, _, translations = _retargeted(anim, rig, t_pose)
    return np.abs(translations - offsets).max(axis=(0, 2))


def rigid_bones(deviation: np.ndarray) -> np.ndarray:
    """``rigid`` for :func:`retarget` from the whole take's :func:`retarget_deviation`."""
    rigid = np.asarray(deviation) < _RIGID_M
    rigid[0] = True
    return rigid


def _retargeted(anim: SkeletonAnimation, rig: str, t_pose: bool):
    """Names, parents, rest offsets, local rotations, root positions and per-frame offsets of the
    retargeted animation (:func:`retarget`, before the rigid bones are set to their rest offset)."""
    bones = rig_bones(rig, anim.joint_names)
    names = [b.name for b in bones]
    parents = np.array([-1 if b.parent is None else names.index(b.parent) for b in bones])
    at_rest = np.eye(3)[None, None].repeat(len(anim.parents), 1)
    rest = SkeletonAnimation(anim.joint_names, anim.parents, anim.offsets, at_rest, anim.offsets[:1], anim.fps)
    rest_pos, _ = _bone_globals(rest, bones, *forward_kinematics(rest))
    turn = _rest_turns({} if t_pose else REST_TURNS.get(rig, {}), names, parents)
    rest_pos = _turned_rest(rest_pos[0], turn, parents)
    offsets = rest_pos - np.where(parents[:, None] < 0, 0.0, rest_pos[np.maximum(parents, 0)])
    pos, rot = _bone_globals(anim, bones, *forward_kinematics(anim))
    rot = rot @ np.swapaxes(turn, -1, -2)  # a bone turned by Q at rest: V Q^T keeps its world bone
    parent_rot = np.where((parents < 0)[None, :, None, None], np.eye(3), rot[:, np.maximum(parents, 0)])
    local = np.swapaxes(parent_rot, -1, -2) @ rot
    # Bones along a stretching joint of ours stretch with it; the hips move over a ground root.
    translations = np.einsum("tbji,tbj->tbi", parent_rot, pos - pos[:, np.maximum(parents, 0)])
    return names, parents, offsets, local, pos[:, 0], translations


def retarget_sources(rig: str, joint_names) -> dict[str, str]:
    """``{target bone: our joint}`` for the bones that sit exactly on one of our joints."""
    return {b.name: b.source for b in rig_bones(rig, joint_names) if b.fraction == 0.0 and not b.ground}
