"""Bone orientations for FBX: each joint's rest frame puts its child along the frame's +Y axis.

A skeleton animation (:class:`mocap.skeleton.animation.SkeletonAnimation`) has world-aligned
rest frames: at rest every joint's frame is the world's axes, which is what BVH and retargeting
tools expect of a T pose. DCC tools draw a bone along one axis of its joint's frame instead:
Blender's FBX importer (default settings) points each bone along the joint's local **+Y** with the
mean distance to its children as its length; Mixamo rigs have +Y along the bone too. So the FBX
writer gives joint ``j`` a constant **rest bone frame** ``G_j`` (the rotation from bone axes to
the file's axes at rest) and compensates the curves:

    local_j(t) = G_parent^T  L_j(t)  G_j,        offset_j = G_parent^T  o_j

where ``L_j`` is the world-aligned local rotation and ``o_j`` the rest offset. The product of the
locals along a chain is ``W_j(t) G_j`` (``W_j`` the world-aligned global rotation), so every
joint's world position is unchanged; only the frames the tools see are rotated.

``G_j``: +Y aims at the joint's **aim point** — its child; with several children on one side of
it, their mean (a chest between its neck and shoulders); otherwise the child heading the largest
subtree (the pelvis aims up the spine, the ankle at the toe; ties go to the first child),
descending through children that sit on the joint itself (``spine`` at the pelvis).
A joint with nothing to aim at (a leaf) keeps its parent's frame, so it continues its parent's
bone. A joint with a child whose offset is animated (a stretching bone) aims
:data:`LOOSE_TILT_DEG` beside its aim point: Blender connects a child whose head sits on its
parent's tail, and a connected bone ignores its animated location. The roll: +Z is the character's front (+Z of the Y-up file) made perpendicular to +Y, or the
up axis for a bone that itself points front or back (feet).
"""

from __future__ import annotations

import numpy as np

from mocap._checks import check_shape

_MIN_BONE = 1e-6  # an offset shorter than this (file units) sits on its parent
#: Tilt (degrees, towards the bone's +Z) of a bone whose child stretches, so that Blender's importer
#: does not connect the child (0.1 mm beside a 10 cm bone's child; Blender compares 1e-6 relative).
LOOSE_TILT_DEG = 0.06
_FRONT = np.array([0.0, 0.0, 1.0])  # Y-up file: the character faces +Z
_UP = np.array([0.0, 1.0, 0.0])
_FRONT_PARALLEL_COS = 0.95
# Several children whose mean offset is at least this fraction of their mean length lie on one side
# of the joint (a chest's neck and shoulders) and the bone aims at their mean; spread children (a
# pelvis's hips, an ankle's toe and heel) fall back to the largest subtree.
_MEAN_AIM = 0.8  # beyond this |cos| to the front a bone takes the up axis for its roll


def _children(parents: np.ndarray) -> list[list[int]]:
    children: list[list[int]] = [[] for _ in parents]
    for j, p in enumerate(parents):
        if p >= 0:
            children[p].append(j)
    return children


def _subtree_sizes(children: list[list[int]]) -> np.ndarray:
    size = np.ones(len(children), dtype=np.int64)
    for j in range(len(children) - 1, -1, -1):  # parents come before children
        size[j] += sum(size[c] for c in children[j])
    return size


def aim_offsets(parents: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Rest vector ``(J, 3)`` from each joint to its aim point (zeros where there is none).

    Args:
        parents: ``(J,)`` parent indices, -1 for the root, parents first.
        offsets: ``(J, 3)`` rest offsets from the parent (world-aligned rest frames).
    """
    parents = np.asarray(parents, dtype=np.int64)
    offsets = check_shape(np.asarray(offsets, dtype=np.float64), "J 3", "offsets")
    children = _children(parents)
    size = _subtree_sizes(children)
    aim = np.zeros_like(offsets)
    for j in range(len(parents)):
        kids = [c for c in children[j] if np.linalg.norm(offsets[c]) > _MIN_BONE]
        mean = offsets[kids].mean(axis=0) if kids else np.zeros(3)
        if len(kids) > 1 and np.linalg.norm(mean) >= _MEAN_AIM * np.linalg.norm(offsets[kids], axis=-1).mean():
            aim[j] = mean  # children on one side (a spine's neck and shoulders): aim between them
            continue
        vec, node = np.zeros(3), j
        while children[node]:
            # The largest subtree first; ties keep the hierarchy's order (max returns the first).
            node = max(children[node], key=lambda c: size[c])
            vec = vec + offsets[node]
            if np.linalg.norm(vec) > _MIN_BONE:
                break
        aim[j] = vec if np.linalg.norm(vec) > _MIN_BONE else 0.0
    return aim


def rest_bone_frames(parents: np.ndarray, offsets: np.ndarray, loose: np.ndarray | None = None) -> np.ndarray:
    """Rest bone frames ``G (J, 3, 3)``: columns are the bone's X, Y, Z axes in file axes.

    ``offsets (J, 3)`` are rest offsets in the Y-up file's axes (any unit); ``loose (J,)`` marks
    the joints whose offset is animated (their parent tilts by :data:`LOOSE_TILT_DEG`). See the
    module doc for how +Y and the roll are chosen. Every ``G_j`` is a proper rotation.
    """
    parents = np.asarray(parents, dtype=np.int64)
    aim = aim_offsets(parents, offsets)
    tilted = np.zeros(len(parents), bool)
    if loose is not None:
        tilted[parents[np.asarray(loose, bool) & (parents >= 0)]] = True
    c, s = np.cos(np.radians(LOOSE_TILT_DEG)), np.sin(np.radians(LOOSE_TILT_DEG))
    frames = np.empty((len(parents), 3, 3))
    for j, p in enumerate(parents):
        length = np.linalg.norm(aim[j])
        if length <= _MIN_BONE:
            frames[j] = np.eye(3) if p < 0 else frames[p]
            continue
        y = aim[j] / length
        ref = _UP if abs(y @ _FRONT) > _FRONT_PARALLEL_COS else _FRONT
        z = ref - (ref @ y) * y
        z /= np.linalg.norm(z)
        if tilted[j]:
            y, z = c * y + s * z, c * z - s * y
        frames[j] = np.stack([np.cross(y, z), y, z], axis=-1)
    return frames


def bone_lengths(parents: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Drawn length ``(J,)`` of each bone: the mean distance to its children (Blender's rule), the
    parent's for a leaf; in the offsets' unit."""
    parents = np.asarray(parents, dtype=np.int64)
    children = _children(parents)
    dist = np.linalg.norm(np.asarray(offsets, dtype=np.float64), axis=-1)
    out = np.empty(len(parents))
    for j, p in enumerate(parents):
        out[j] = np.mean(dist[children[j]]) if children[j] else (out[p] if p >= 0 else 1.0)
    return out


def bone_local_rotations(parents: np.ndarray, frames: np.ndarray, local_rotmat: np.ndarray) -> np.ndarray:
    """``G_parent^T L G_j``: world-aligned local rotations ``(..., J, 3, 3)`` -> bone-frame locals.

    The root's parent frame is the identity (the armature).
    """
    parents = np.asarray(parents, dtype=np.int64)
    parent_frames = np.where((parents < 0)[:, None, None], np.eye(3), frames[np.maximum(parents, 0)])
    return np.swapaxes(parent_frames, -1, -2) @ local_rotmat @ frames


def bone_offsets(parents: np.ndarray, frames: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``G_parent^T o_j``: offsets ``(..., J, 3)`` (rest, or per frame) expressed in the parent's
    bone frame."""
    parents = np.asarray(parents, dtype=np.int64)
    parent_frames = np.where((parents < 0)[:, None, None], np.eye(3), frames[np.maximum(parents, 0)])
    return np.einsum("jik,...ji->...jk", parent_frames, offsets)
