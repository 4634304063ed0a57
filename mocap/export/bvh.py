"""BVH writer: one :class:`SkeletonAnimation` -> one ``.bvh`` file.

Conventions of the written file:

- **Y up**, converted from the world (Z up) by :mod:`mocap.export.axes` only; the character
  faces +Z with its left at +X. Units ``cm`` by default (``m`` or ``mm`` on request).
- The hierarchy's ``OFFSET``\\ s are the **T-pose** rest skeleton; rotations are relative to it,
  so retargeting tools (Mixamo, Unity Humanoid, Unreal) see a T-pose at zero rotation.
- The root's ``OFFSET`` is ``0 0 0`` and its position channels hold the absolute root position:
  readers that add the offset and readers that replace it (Blender) agree.
- One rotation order for every joint (``ZXY``: channels ``Zrotation Xrotation Yrotation``,
  intrinsic as BVH defines), or with ``auto`` each joint its own: the order whose curves step
  least between frames where the joint turns less than 10° (ties: ``ZXY`` first). Near an order's
  singularity (middle angle ±90°) the first and third curves swing fast for a small turn: in ZXY
  a cartwheel's shoulder steps 78° in a frame where it turns 9°. Degrees, continuous over frames
  (:func:`mocap.skeleton.euler.rotmat_to_euler_continuous`).
- A joint whose offset from its parent is animated (a stretching bone of the skeleton solve,
  :attr:`SkeletonAnimation.translations`) has ``CHANNELS 6`` with ``Xposition Yposition
  Zposition`` first: the offset on that frame in the parent's frame (it replaces ``OFFSET``, as
  Blender and :mod:`mocap.io.bvh` read it); every other joint has its three rotations only.
- Leaves carry an ``End Site`` along their bone. One token group per line, tab-indented braces
  on their own lines: the layout Blender's line-based parser requires.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from mocap._checks import check_choice
from mocap.export.axes import UNIT_SCALE, points_world_to_yup, rotmat_world_to_yup
from mocap.skeleton.animation import SkeletonAnimation
from mocap.skeleton.euler import CalmestOrders, ContinuousEuler, calmest_orders, rotmat_to_euler_continuous
from mocap.io.files import atomic_write

EULER_ORDERS = ("ZXY", "ZYX", "XYZ", "XZY", "YXZ", "YZX")
#: ``rotation_order`` values: one order for every joint, or ``auto`` (each joint its own).
ROTATION_ORDERS = EULER_ORDERS + ("auto",)

_END_SITE_FRACTION = 0.3  # End Site length relative to the leaf's own bone
_END_SITE_MIN_M = 0.03


def _end_site_offsets(anim: SkeletonAnimation) -> np.ndarray:
    """World-axes rest offsets ``(J, 3)`` metres of an End Site below each joint (used for leaves)."""
    length = np.linalg.norm(anim.offsets, axis=-1, keepdims=True)
    direction = np.where(length > 1e-9, anim.offsets / np.maximum(length, 1e-12), [0.0, 0.0, 1.0])
    return direction * np.maximum(_END_SITE_FRACTION * length, _END_SITE_MIN_M)


def joint_orders(anim: SkeletonAnimation, rotation_order: str = "ZXY") -> list[str]:
    """Each joint's BVH rotation order ``(J,)``: ``rotation_order`` for all, or with ``auto`` the
    one whose curves step least where the joint turns slowly
    (:func:`mocap.skeleton.euler.calmest_orders`; ties: ``ZXY`` first)."""
    check_choice(rotation_order, ROTATION_ORDERS, "rotation_order")
    if rotation_order != "auto":
        return [rotation_order] * len(anim.joint_names)
    return calmest_orders(rotmat_world_to_yup(anim.rotations), EULER_ORDERS)


def bvh_channels(anim: SkeletonAnimation, units: str = "cm", rotation_order: str = "ZXY",
                 orders: list[str] | None = None) -> np.ndarray:
    """The MOTION block as numbers ``(T, 3 + 3 J)``: root position then Euler degrees per joint,
    each in its order (``orders``, by default :func:`joint_orders`).

    Joint order is the animation's (parents first), which is the order joints appear in the
    written hierarchy.
    """
    orders = joint_orders(anim, rotation_order) if orders is None else orders
    root = points_world_to_yup(anim.root_positions, units)  # (T, 3)
    local_yup = rotmat_world_to_yup(anim.rotations)  # (T, J, 3, 3)
    euler = np.empty(local_yup.shape[:-1])
    for order in set(orders):
        js = [j for j, o in enumerate(orders) if o == order]
        euler[:, js] = np.degrees(rotmat_to_euler_continuous(local_yup[:, js], order))  # (T, J', 3)
    return np.concatenate([root, euler.reshape(anim.num_frames, -1)], axis=1)


def format_bvh(anim: SkeletonAnimation, units: str = "cm", rotation_order: str = "ZXY") -> str:
    """The text of a BVH file for ``anim`` (see the module doc for the conventions); joints keep
    the animation's names (a target rig's: :func:`mocap.export.rigs.retarget`)."""
    check_choice(units, UNIT_SCALE, "units")
    check_choice(rotation_order, ROTATION_ORDERS, "rotation_order")
    orders, moving = joint_orders(anim, rotation_order), anim.stretching()
    lines, cols = bvh_header(anim, units, orders, moving)
    buf = io.StringIO()
    np.savetxt(buf, motion_rows(anim, units, orders, moving, cols), fmt="%.6f", delimiter=" ")
    return lines + buf.getvalue()


def bvh_header(anim: SkeletonAnimation, units: str, orders: list[str], moving: np.ndarray,
               num_frames: int | None = None) -> tuple[str, list[int]]:
    """The text of a BVH file up to the first frame's numbers (HIERARCHY, ``MOTION``, ``Frames``,
    ``Frame Time``) and the columns of :func:`motion_rows`' data in the file's channel order.
    ``orders``: each joint's rotation order; ``moving``: the joints with animated offsets (both
    over the whole take); ``num_frames``: the take's (None: ``anim``'s)."""
    check_choice(units, UNIT_SCALE, "units")
    names = anim.joint_names
    bad = [n for n in names if not n or any(c.isspace() for c in n)]
    if bad:
        raise ValueError(f"joint names must be non-empty without spaces for BVH: {bad}")
    offsets = points_world_to_yup(anim.offsets, units)
    offsets[0] = 0.0
    ends = points_world_to_yup(_end_site_offsets(anim), units)
    offsets, ends = np.round(offsets, 6) + 0.0, np.round(ends, 6) + 0.0  # no "-0.000000"
    rot_channels = [" ".join(f"{axis}rotation" for axis in order) for order in orders]
    children = [[] for _ in names]
    for j, p in enumerate(anim.parents):
        if p >= 0:
            children[p].append(j)

    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "\t" * depth
        lines.append(f"{pad}{'ROOT' if depth == 0 else 'JOINT'} {names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}\tOFFSET {offsets[j, 0]:.6f} {offsets[j, 1]:.6f} {offsets[j, 2]:.6f}")
        if depth == 0 or moving[j]:
            lines.append(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition {rot_channels[j]}")
        else:
            lines.append(f"{pad}\tCHANNELS 3 {rot_channels[j]}")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            e = ends[j]
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {e[0]:.6f} {e[1]:.6f} {e[2]:.6f}", f"{pad}\t}}"])
        lines.append(f"{pad}}}")

    emit(0, 0)
    order = []  # the order joints appear in the file, which the channels must follow

    def visit(j):
        order.append(j)
        for c in children[j]:
            visit(c)

    visit(0)
    slot = np.cumsum(moving) - 1  # where each moving joint's offsets sit among them
    base = 3 + 3 * len(names)
    cols = [0, 1, 2]
    for j in order:
        if moving[j]:
            cols += [base + 3 * slot[j] + k for k in range(3)]
        cols += [3 + 3 * j + k for k in range(3)]
    lines += ["MOTION", f"Frames: {anim.num_frames if num_frames is None else num_frames}", f"Frame Time: {1.0 / anim.fps:.10f}"]
    return "\n".join(lines) + "\n", cols


def motion_rows(anim: SkeletonAnimation, units: str, orders: list[str], moving: np.ndarray, cols: list[int],
                streams: dict | None = None) -> np.ndarray:
    """The MOTION block's numbers ``(T, C)`` as written (rounded to 6 decimals, no -0), in the
    file's channel order ``cols`` (:func:`bvh_header`). ``streams``: for a chunk of a take, one
    :class:`mocap.skeleton.euler.ContinuousEuler` per rotation order, carried from chunk to chunk
    (filled in on the first chunk); None: ``anim`` is the whole take."""
    if streams is None:
        data = bvh_channels(anim, units, orders=orders)
    else:
        local_yup = rotmat_world_to_yup(anim.rotations)
        euler = np.empty(local_yup.shape[:-1])
        for order in set(orders):
            js = [j for j, o in enumerate(orders) if o == order]
            stream = streams.setdefault(order, ContinuousEuler(order))
            euler[:, js] = np.degrees(stream(local_yup[:, js]))
        data = np.concatenate([points_world_to_yup(anim.root_positions, units), euler.reshape(anim.num_frames, -1)], axis=1)
    if moving.any():  # animated offsets go after the rotations, picked per joint by ``cols``
        trans = points_world_to_yup(anim.local_translations()[:, moving], units)
        data = np.concatenate([data, trans.reshape(anim.num_frames, -1)], axis=1)
    if not np.isfinite(data).all():
        raise ValueError(f"{anim.name}: animation has non-finite values; cannot write BVH")
    return np.round(data[:, cols], 6) + 0.0


def write_bvh(anim: SkeletonAnimation, path: str | os.PathLike, units: str = "cm", rotation_order: str = "ZXY") -> Path:
    """Write ``anim`` as a BVH file (atomically: a temporary name, then rename). Returns the path."""
    text = format_bvh(anim, units, rotation_order)

    def write(tmp):
        with open(tmp, "w", encoding="ascii", newline="\n") as f:
            f.write(text)

    return atomic_write(path, write)


def stream_orders(chunks, rotation_order: str = "ZXY") -> list[str] | None:
    """:func:`joint_orders` over a take given as consecutive chunks (:class:`SkeletonAnimation`
    each); reads them only for ``auto``. None when there are no chunks."""
    check_choice(rotation_order, ROTATION_ORDERS, "rotation_order")
    calm = CalmestOrders(EULER_ORDERS) if rotation_order == "auto" else None
    names = None
    for anim in chunks:
        names = anim.joint_names
        if calm is None:
            break
        calm.update(rotmat_world_to_yup(anim.rotations))
    if names is None:
        return None
    return [rotation_order] * len(names) if calm is None else calm.result()


def write_bvh_stream(chunks, path: str | os.PathLike, units: str, orders: list[str], moving: np.ndarray) -> Path:
    """Write a take given as consecutive chunks (:class:`SkeletonAnimation` each, whole-take rest
    offsets and ``num_frames`` in the first's ``offsets`` and as ``chunks.num_frames``) as a BVH file,
    a chunk at a time; the same bytes as :func:`write_bvh` of the whole take when ``orders``
    (:func:`stream_orders`) and ``moving`` (the joints with animated offsets) are the whole take's."""
    check_choice(units, UNIT_SCALE, "units")

    def write(tmp):
        streams: dict = {}
        with open(tmp, "w", encoding="ascii", newline="\n") as f:
            cols = None
            for anim in chunks:
                if cols is None:
                    header, cols = bvh_header(anim, units, orders, moving, chunks.num_frames)
                    f.write(header)
                np.savetxt(f, motion_rows(anim, units, orders, moving, cols, streams), fmt="%.6f", delimiter=" ")

    return atomic_write(path, write)
