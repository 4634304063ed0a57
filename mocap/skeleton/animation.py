"""Skeleton animation: what the skeleton solve produces and every animation exporter reads.

All in the world frame (Z up, metres). Exporters convert to their own axes and units through
:mod:`mocap.export.axes` (one named converter) — never inside the solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap._checks import check_shape


@dataclass(frozen=True, eq=False)
class SkeletonAnimation:
    """One person's animated skeleton.

    Attributes:
        joint_names: ``(J,)`` names; joint 0 is the root.
        parents: ``(J,)`` parent index, -1 for the root; parents come before children.
        offsets: ``(J, 3)`` rest-pose (T-pose) offset of each joint from its parent, metres, in
            the parent's frame (which at rest equals the world axes). The root's offset is its
            rest position.
        rotations: ``(T, J, 3, 3)`` local rotation of each joint relative to its parent
            (the root's is relative to the world).
        root_positions: ``(T, 3)`` world position of the root joint, metres.
        fps: frames per second.
        name: the armature name (e.g. ``person_1``).
        translations: optional ``(T, J, 3)`` per-frame offset of each joint from its parent,
            metres, in the parent's frame: a bone whose length is animated (the skeleton solve's
            trunk, neck and feet, each one bone for a chain of real joints, follow their observed
            length). None: every frame uses ``offsets``. The root's row is
            ignored (``root_positions`` place it).
    """

    joint_names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    rotations: np.ndarray
    root_positions: np.ndarray
    fps: float
    name: str = "person"
    translations: np.ndarray | None = None

    def __post_init__(self):
        parents = np.asarray(self.parents, dtype=np.int64)
        J = len(self.joint_names)
        if parents.shape != (J,) or parents[0] != -1 or np.any(parents[1:] >= np.arange(1, J)) or np.any(parents[1:] < 0):
            raise ValueError("parents: expected (J,) with parents[0] == -1 and each parent before its child")
        offsets = check_shape(np.asarray(self.offsets, dtype=np.float64), "J 3", "offsets")
        rotations = check_shape(np.asarray(self.rotations, dtype=np.float64), "T J 3 3", "rotations")
        root = check_shape(np.asarray(self.root_positions, dtype=np.float64), "T 3", "root_positions")
        if offsets.shape[0] != J or rotations.shape[1] != J or rotations.shape[0] != root.shape[0]:
            raise ValueError(f"inconsistent sizes: J={J}, offsets {offsets.shape}, rotations {rotations.shape}, root {root.shape}")
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "rotations", rotations)
        object.__setattr__(self, "root_positions", root)
        if self.translations is not None:
            trans = check_shape(np.asarray(self.translations, dtype=np.float64), "T J 3", "translations")
            if trans.shape[:2] != rotations.shape[:2]:
                raise ValueError(f"translations: expected {rotations.shape[:2] + (3,)}, got {trans.shape}")
            object.__setattr__(self, "translations", trans)

    @property
    def num_frames(self) -> int:
        return self.rotations.shape[0]

    def local_translations(self) -> np.ndarray:
        """``(T, J, 3)`` offset of each joint from its parent on every frame (parent frame, metres)."""
        if self.translations is not None:
            return self.translations
        return np.broadcast_to(self.offsets, (self.num_frames,) + self.offsets.shape)

    def stretching(self, tol: float = 1e-9) -> np.ndarray:
        """``(J,)`` True for the joints whose offset from their parent is animated (differs from the
        rest offset by more than ``tol`` metres on some frame); never the root."""
        if self.translations is None:
            return np.zeros(len(self.joint_names), bool)
        moving = np.abs(self.translations - self.offsets).max(axis=(0, 2)) > tol
        moving[0] = False
        return moving


def forward_kinematics(anim: SkeletonAnimation) -> tuple[np.ndarray, np.ndarray]:
    """World joint positions ``(T, J, 3)`` and global rotations ``(T, J, 3, 3)``.

    Vectorised over frames; one pass over joints in parent order.
    """
    T, J = anim.rotations.shape[:2]
    glob = np.empty((T, J, 3, 3))
    pos = np.empty((T, J, 3))
    for j in range(J):
        p = anim.parents[j]
        if p < 0:
            glob[:, j] = anim.rotations[:, j]
            pos[:, j] = anim.root_positions
        else:
            glob[:, j] = glob[:, p] @ anim.rotations[:, j]
            if anim.translations is None:
                pos[:, j] = pos[:, p] + glob[:, p] @ anim.offsets[j]
            else:
                pos[:, j] = pos[:, p] + np.einsum("tab,tb->ta", glob[:, p], anim.translations[:, j])
    return pos, glob
