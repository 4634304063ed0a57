"""World joint positions of an FBX file as assimp imports it (``assimp export … -f assjson``).

``assimp_positions(assimp, path, tmp_dir)`` runs the assimp command-line tool, which imports the
file with assimp's own FBX reader and dumps its scene as JSON: the node tree (row-major 4x4
``transformation`` per node) and the first animation's channels (position, rotation ``w x y z``
and scaling keys per node, times in the file's frames). Each node's local transform is its keys
at a frame where it has a channel, its static transformation otherwise; world = the product
down the tree. Returns ``(names (N,), positions (T, N, 3))`` of every node below the scene root,
in the file's own axes and units (assimp converts neither).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np


def _quat_wxyz_to_rotmat(q: np.ndarray) -> np.ndarray:
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def _local_matrices(channel: dict, num_frames: int) -> np.ndarray:
    """``(T, 4, 4)`` local transforms from a channel keyed at every frame 0..T-1."""
    out = np.broadcast_to(np.eye(4), (num_frames, 4, 4)).copy()
    pos = np.array([v for _, v in channel["positionkeys"]], dtype=float)
    rot = np.array([v for _, v in channel["rotationkeys"]], dtype=float)
    scale = np.array([v for _, v in channel["scalingkeys"]], dtype=float) if channel.get("scalingkeys") else None
    pos = np.broadcast_to(pos, (num_frames, 3)) if len(pos) == 1 else pos
    rot = np.broadcast_to(rot, (num_frames, 4)) if len(rot) == 1 else rot
    out[:, :3, :3] = _quat_wxyz_to_rotmat(rot)
    if scale is not None:
        out[:, :3, :3] *= (np.broadcast_to(scale, (num_frames, 3)) if len(scale) == 1 else scale)[:, None, :]
    out[:, :3, 3] = pos
    return out


def assimp_positions(assimp: str, path: Path, tmp_dir: Path) -> tuple[list[str], np.ndarray]:
    out = Path(tmp_dir) / f"{Path(path).stem}_assimp.json"
    subprocess.run([assimp, "export", str(path), str(out), "-f", "assjson"], check=True, capture_output=True, timeout=120)
    scene = json.loads(out.read_text())
    channels = {c["name"]: c for c in scene["animations"][0]["channels"]}
    num_frames = max(len(c["rotationkeys"]) for c in channels.values())
    names, positions = [], []

    def walk(node, parent_world):
        if node["name"] in channels:
            local = _local_matrices(channels[node["name"]], num_frames)
        else:
            local = np.array(node["transformation"], dtype=float).reshape(4, 4)[None]
        world = parent_world @ local
        names.append(node["name"])
        positions.append(np.broadcast_to(world[:, :3, 3], (num_frames, 3)))
        for child in node.get("children", []):
            walk(child, world)

    root = scene["rootnode"]
    root_world = np.array(root["transformation"], dtype=float).reshape(4, 4)[None]
    for child in root.get("children", []):
        walk(child, root_world)
    return names, np.stack(positions, axis=1)
