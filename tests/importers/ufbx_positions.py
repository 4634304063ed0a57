"""Evaluate an FBX file with ufbx and save world joint positions per frame (run in a subprocess).

Usage: ``python ufbx_positions.py FILE.fbx OUT.npz``. ufbx converts the scene to Z up, metres
(our world frame), evaluates the first animation stack at every frame of the file's frame rate and
the script writes ``names (N,)``, ``parents (N,)`` (the parent's name, "" for a scene root child),
``positions (T, N, 3)`` of every skeleton node (LimbNode), ``fps`` and ``num_stacks``.
ufbx can crash the interpreter on misuse, so every object it returns is kept referenced while in use.
"""

from __future__ import annotations

import sys

import numpy as np
import ufbx


def main(fbx_path: str, out_path: str) -> int:
    scene = ufbx.load_file(fbx_path, target_axes=ufbx.axes_right_handed_z_up, target_unit_meters=1.0,
                           space_conversion=ufbx.SpaceConversion.MODIFY_GEOMETRY)
    settings = scene.settings
    fps = float(settings.frames_per_second)
    stacks = scene.anim_stacks
    stack = stacks[0]
    anim = stack.anim
    node_list = scene.nodes
    nodes = [node_list[i] for i in range(len(node_list))]  # hold every node while in use
    bones = [node.bone for node in nodes]
    bone_idx = [i for i, bone in enumerate(bones) if bone is not None]
    names = [nodes[i].name for i in bone_idx]
    parents = []
    for i in bone_idx:
        parent = nodes[i].parent
        parents.append("" if parent is None or parent.is_root else parent.name)
    num_frames = int(round((stack.time_end - stack.time_begin) * fps)) + 1
    positions = np.empty((num_frames, len(bone_idx), 3))
    for t in range(num_frames):
        evaluated = ufbx.evaluate_scene(scene, anim, stack.time_begin + t / fps)
        ev_list = evaluated.nodes
        ev_nodes = [ev_list[i] for i in bone_idx]
        matrices = [node.node_to_world for node in ev_nodes]
        columns = [m.c3 for m in matrices]
        positions[t] = [(c.x, c.y, c.z) for c in columns]
        del columns, matrices, ev_nodes, ev_list, evaluated
    np.savez(out_path, names=np.array(names, dtype=str), parents=np.array(parents, dtype=str),
             positions=positions, fps=fps, num_stacks=len(stacks))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
