"""Euler angle sequences without jumps, for animation curves (BVH channels, FBX curves).

A rotation has two Tait–Bryan decompositions, ``(a, b, c)`` and ``(a + pi, pi - b, c + pi)``,
each defined up to 2*pi per angle. :func:`rotmat_to_euler_continuous` picks, frame by frame,
the decomposition and 2*pi shifts closest to the previous frame, so curves stay continuous
through +-180 degrees and through the branch switch near gimbal lock (middle angle +-90 degrees).
Which order a joint's curves use is a choice too: :func:`least_singular_orders` keeps the middle
angle farthest from +-90 degrees (the FBX writer), :func:`calmest_orders` keeps the curves' steps
smallest where the joint turns slowly (the BVH writer's ``auto``).
"""

from __future__ import annotations

import numpy as np

from mocap._checks import check_shape
from mocap.geometry.rotations import rotmat_to_euler

_TWO_PI = 2.0 * np.pi


def _nearest(angles: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``angles`` shifted by multiples of 2*pi to lie within pi of ``ref``."""
    return angles + _TWO_PI * np.round((ref - angles) / _TWO_PI)


def rotmat_to_euler_continuous(rotmat: np.ndarray, order: str) -> np.ndarray:
    """Rotation sequences ``(T, ..., 3, 3)`` to continuous Euler angles ``(T, ..., 3)`` radians.

    ``order`` is a Tait–Bryan order as in :func:`mocap.geometry.rotations.rotmat_to_euler`
    (upper case = intrinsic, BVH channel order). Frames are axis 0; each frame takes the
    decomposition nearer (summed wrapped angle differences) to the one taken for the previous frame
    (a scan over a per-frame boolean, vectorised over the other axes), then each angle is unwrapped.
    The angles reproduce ``rotmat`` exactly (``euler_to_rotmat(result, order) == rotmat``).
    """
    rotmat = check_shape(np.asarray(rotmat, dtype=np.float64), "... 3 3", "rotmat")
    if rotmat.ndim < 3 or rotmat.shape[0] == 0:
        raise ValueError(f"rotmat: expected shape (T, ..., 3, 3) with T >= 1, got {rotmat.shape}")
    if len(set(order.upper())) != 3:
        raise ValueError(f"order: expected a Tait-Bryan order with three different axes, got {order!r}")
    first = rotmat_to_euler(rotmat, order)
    second = first + np.array([np.pi, 0.0, np.pi])
    second[..., 1] = np.pi - first[..., 1]
    both = np.stack([first, second])  # (2, T, ..., 3)
    # dist[i, k, t]: summed wrapped difference from decomposition i at frame t to k at frame t + 1.
    diff = both[None, :, 1:] - both[:, None, :-1]
    dist = np.abs(_nearest(diff, np.zeros(1))).sum(axis=-1)
    after_first, after_second = dist[0, 1] < dist[0, 0], dist[1, 1] < dist[1, 0]
    pick = np.zeros(first.shape[:-1], bool)
    for t in range(1, first.shape[0]):
        pick[t] = np.where(pick[t - 1], after_second[t - 1], after_first[t - 1])
    return np.unwrap(np.where(pick[..., None], second, first), axis=0)


def least_singular_orders(rotmat: np.ndarray, orders) -> list[str]:
    """Per joint, the Euler order whose singularity the motion stays farthest from.

    ``rotmat (T, J, 3, 3)``; ``orders`` the candidates (:func:`mocap.geometry.rotations.rotmat_to_euler`
    names). Any Tait–Bryan order is singular where its middle angle is ±90°; near it the first and
    third curves swing fast for a small turn. For each joint the order with the largest
    ``min_t |cos(middle angle)|`` is taken (ties: the earlier in ``orders``).
    """
    rotmat = check_shape(np.asarray(rotmat, dtype=np.float64), "T J 3 3", "rotmat")
    orders = list(orders)
    score = np.stack([np.abs(np.cos(rotmat_to_euler(rotmat, o)[..., 1])).min(axis=0) for o in orders])  # (O, J)
    return [orders[i] for i in np.argmax(score > score.max(axis=0) - 1e-9, axis=0)]


def calmest_orders(rotmat: np.ndarray, orders, calm_deg: float = 10.0) -> list[str]:
    """Per joint, the Euler order whose continuous curves step least between frames where the
    joint turns less than ``calm_deg`` degrees (ties: the earlier in ``orders``).

    ``rotmat (T, J, 3, 3)``. Near an order's singularity its first and third curves swing fast for
    a small turn; a joint whose motion spans many directions (an elbow of an A-pose rig, a
    cartwheel's shoulder) comes near every order's singularity somewhere, and what matters is
    whether it does so while turning slowly. A curve may legitimately step more than the joint
    turns, so this is the measure :func:`least_singular_orders` only approximates.
    """
    rotmat = check_shape(np.asarray(rotmat, dtype=np.float64), "T J 3 3", "rotmat")
    orders = list(orders)
    step = np.swapaxes(rotmat[:-1], -1, -2) @ rotmat[1:]
    turn = np.degrees(np.arccos(np.clip((np.trace(step, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)))  # (T-1, J)
    calm = turn < calm_deg
    score = np.empty((len(orders), rotmat.shape[1]))
    for k, order in enumerate(orders):
        jumps = np.degrees(np.abs(np.diff(rotmat_to_euler_continuous(rotmat, order), axis=0))).max(axis=-1)
        score[k] = np.where(calm, jumps, 0.0).max(axis=0) if len(jumps) else 0.0
    return [orders[i] for i in np.argmax(score < score.min(axis=0) + 1e-6, axis=0)]
