"""Import an FBX file into Blender and save world joint (bone head) positions per frame.

Run: ``blender -b --factory-startup --python blender_fbx_positions.py -- FILE.fbx OUT.json``.
Blender's importer converts the file to its own frame (Z up, metres); automatic bone orientation
is off so every bone's head sits exactly on its FBX node. For each imported armature and every
frame of its action the script evaluates ``armature.matrix_world @ pose_bone.head`` and writes
``armatures (A,)``, ``names (N,)`` ("<armature>/<bone>"), ``positions (T, N, 3)`` in metres,
``frames (T,)`` (Blender frame numbers) and ``fps`` as JSON (Debian's Blender has no numpy), and
the rest armature as Blender draws it: ``rest_heads``, ``rest_tails`` ``(N, 3)`` world metres and
``rest_parents`` ``(N,)`` ("<armature>/<bone>", "" for a root bone). Several files may be given
(``-- A.fbx A.json B.fbx B.json ...``): one Blender start for all of them.
"""

import json
import sys

import bpy


def main(fbx_path, out_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=fbx_path, automatic_bone_orientation=False, ignore_leaf_bones=False, use_anim=True)
    scene = bpy.context.scene
    armatures = sorted((o for o in scene.objects if o.type == "ARMATURE"), key=lambda o: o.name)
    starts, ends = [], []
    for arm in armatures:
        action = arm.animation_data.action if arm.animation_data else None
        if action is None:
            raise SystemExit(f"armature {arm.name} has no action")
        starts.append(action.frame_range[0])
        ends.append(action.frame_range[1])
    first, last = int(round(min(starts))), int(round(max(ends)))
    frames = list(range(first, last + 1))
    bones = [(arm, pb) for arm in armatures for pb in arm.pose.bones]
    positions = []
    for frame in frames:
        scene.frame_set(frame)
        positions.append([list(arm.matrix_world @ pb.head) for arm, pb in bones])
    rest = [(arm.matrix_world @ arm.data.bones[pb.name].head_local, arm.matrix_world @ arm.data.bones[pb.name].tail_local,
             f"{arm.name}/{pb.parent.name}" if pb.parent else "") for arm, pb in bones]
    result = {
        "rest_heads": [list(h) for h, _, _ in rest], "rest_tails": [list(t) for _, t, _ in rest],
        "rest_parents": [p for _, _, p in rest],
        "armatures": [a.name for a in armatures],
        "names": [f"{arm.name}/{pb.name}" for arm, pb in bones],
        "positions": positions, "frames": frames, "fps": scene.render.fps / scene.render.fps_base,
    }
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:]
    for fbx_file, json_file in zip(argv[0::2], argv[1::2]):
        main(fbx_file, json_file)
