"""Blender-side script: import a BVH with Blender's own importer, dump world joint positions.

    blender -b --factory-startup --python blender_bvh_positions.py -- IN.bvh OUT.json [IN2.bvh OUT2.json ...] SCALE

Writes JSON (Blender's Python has no numpy): ``positions`` (T, J, 3) — each pose bone's head in Blender world coordinates (Z up,
``SCALE`` x file units, e.g. 0.01 for a centimetre file -> metres), evaluated frame by frame —
and ``names`` (J,). Blender's axis conversion (forward -Z, up Y) maps BVH (x, y, z) to
(x, -z, y), i.e. back to the project's Z-up world.
"""

import builtins
import sys

import bpy
import json

# Blender 3.4's BVH importer opens files with mode 'rU', which Python 3.11 rejects.
_open = builtins.open


def _open_without_u(file, mode="r", *args, **kwargs):
    return _open(file, mode.replace("U", "") if isinstance(mode, str) else mode, *args, **kwargs)


builtins.open = _open_without_u


def main(bvh_path, out_path, scale):
    bpy.ops.wm.read_factory_settings(use_empty=True)  # one file's armature at a time
    bpy.ops.import_anim.bvh(filepath=bvh_path, global_scale=scale, rotate_mode="NATIVE", axis_forward="-Z",
                            axis_up="Y", update_scene_fps=True, update_scene_duration=True, use_fps_scale=False)
    arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    scene = bpy.context.scene
    bones = list(arm.pose.bones)
    first, last = arm.animation_data.action.frame_range  # the scene range only ever grows on import
    frames = range(int(round(first)), int(round(last)) + 1)
    out = []
    for f in frames:
        scene.frame_set(f)
        world = arm.matrix_world
        out.append([list(world @ pb.head) for pb in bones])
    with open(out_path, "w") as fh:
        json.dump({"positions": out, "names": [b.name for b in bones], "fps": scene.render.fps / scene.render.fps_base}, fh)


if __name__ == "__main__":
    args = sys.argv[sys.argv.index("--") + 1:]
    for bvh_file, json_file in zip(args[0:-1:2], args[1:-1:2]):  # several files: one Blender start
        main(bvh_file, json_file, float(args[-1]))
