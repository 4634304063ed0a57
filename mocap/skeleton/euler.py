"""Euler angle sequences without jumps, for animation curves (BVH channels, FBX curves).

A rotation has two Tait–Bryan decompositions, ``(a, b, c)`` and ``(a + pi, pi - b, c + pi)``,
each defined up to 2*pi per angle. :func:`rotmat_to_euler_continuous` picks, frame by frame,
the decomposition and 2*pi shifts closest to the previous frame, so curves stay continuous
through +-180 degrees and through the branch switch near gimbal lock (middle angle +-90 degrees).
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
    (upper case = intrinsic, BVH channel order). Frames are axis 0; each frame is matched to the
    previous one (a sequential scan, vectorised over the other axes). The angles reproduce
    ``rotmat`` exactly (``euler_to_rotmat(result, order) == rotmat``).
    """
    rotmat = check_shape(np.asarray(rotmat, dtype=np.float64), "... 3 3", "rotmat")
    if rotmat.ndim < 3 or rotmat.shape[0] == 0:
        raise ValueError(f"rotmat: expected shape (T, ..., 3, 3) with T >= 1, got {rotmat.shape}")
    if len(set(order.upper())) != 3:
        raise ValueError(f"order: expected a Tait-Bryan order with three different axes, got {order!r}")
    first = rotmat_to_euler(rotmat, order)
    second = first + np.array([np.pi, 0.0, np.pi])
    second[..., 1] = np.pi - first[..., 1]
    out = np.empty_like(first)
    out[0] = first[0]
    for t in range(1, first.shape[0]):
        a = _nearest(first[t], out[t - 1])
        b = _nearest(second[t], out[t - 1])
        pick_b = np.abs(b - out[t - 1]).sum(axis=-1) < np.abs(a - out[t - 1]).sum(axis=-1)
        out[t] = np.where(pick_b[..., None], b, a)
    return out
