"""Joint naming presets for exported skeletons.

``canonical`` keeps the solve's names (:mod:`mocap.skeleton.hierarchy`). ``mixamo`` uses
Mixamo's bone names (without the ``mixamorig:`` namespace, which importers add or strip),
``unreal`` the UE4/UE5 mannequin's, ``unity`` Unity's ``HumanBodyBones`` names, which the
Humanoid avatar auto-mapping recognises. Joints a target rig has no bone for (heels, the hand
tip) keep a descriptive name in the preset's style; retargeting ignores them.
"""

from __future__ import annotations

from mocap._checks import check_choice

_SIDES = {"left": ("Left", "_l", "Left"), "right": ("Right", "_r", "Right")}


def _build(side_names: dict[str, tuple[str, str, str]], centre: dict[str, tuple[str, str, str]]):
    presets: dict[str, dict[str, str]] = {"mixamo": {}, "unreal": {}, "unity": {}}
    for ours, names in centre.items():
        for preset, n in zip(presets, names):
            presets[preset][ours] = n
    for side, (mixamo_prefix, unreal_suffix, unity_prefix) in _SIDES.items():
        for ours, (m, u, y) in side_names.items():
            presets["mixamo"][f"{side}_{ours}"] = mixamo_prefix + m
            presets["unreal"][f"{side}_{ours}"] = u + unreal_suffix
            presets["unity"][f"{side}_{ours}"] = unity_prefix + y
    return presets


#: ``{preset: {our joint name: preset name}}``.
PRESETS: dict[str, dict[str, str]] = {"canonical": {}} | _build(
    side_names={
        # ours: (Mixamo, Unreal stem, Unity)
        "hip": ("UpLeg", "thigh", "UpperLeg"),
        "knee": ("Leg", "calf", "LowerLeg"),
        "ankle": ("Foot", "foot", "Foot"),
        "toe": ("ToeBase", "ball", "Toes"),
        "heel": ("Heel", "heel", "Heel"),
        "clavicle": ("Shoulder", "clavicle", "Shoulder"),
        "shoulder": ("Arm", "upperarm", "UpperArm"),
        "elbow": ("ForeArm", "lowerarm", "LowerArm"),
        "wrist": ("Hand", "hand", "Hand"),
        "hand": ("HandMiddle1", "middle_01", "MiddleProximal"),
    },
    centre={
        "pelvis": ("Hips", "pelvis", "Hips"),
        "spine": ("Spine", "spine_01", "Spine"),
        "neck": ("Neck", "neck_01", "Neck"),
        "head": ("Head", "head", "Head"),
    },
)


def preset_joint_names(joint_names, preset: str = "canonical") -> tuple[str, ...]:
    """Names ``(J,)`` for ``joint_names`` under ``preset``; unknown joints keep their own name."""
    table = PRESETS[check_choice(preset, PRESETS, "preset")]
    out = tuple(table.get(n, n) for n in joint_names)
    if len(set(out)) != len(out):
        raise ValueError(f"preset {preset!r} maps two joints to one name: {out}")
    return out
