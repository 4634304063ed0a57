"""Rotation conversions: ``<src>_to_<dst>`` over any leading dims.

Vocabulary: ``rotmat (..., 3, 3)``, ``rotvec (..., 3)`` (axis × angle, radians), ``quat (..., 4)``
in **xyzw** order (scipy's), ``euler (..., 3)`` radians with an explicit ``order``.

Euler order: ``order="ZXY"`` (upper case) means *intrinsic* rotations, i.e.
``R = R_Z(e[..., 0]) @ R_X(e[..., 1]) @ R_Y(e[..., 2])``. This is BVH's convention: a joint whose
channels read ``Zrotation Xrotation Yrotation`` has exactly this matrix. Lower case
(``"zxy"``) means extrinsic rotations about fixed axes, ``R = R_Y(e2) @ R_X(e1) @ R_Z(e0)``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from mocap._checks import check_shape

_VALID_AXES = set("XYZxyz")


def _check_order(order: str) -> str:
    if len(order) != 3 or not set(order) <= _VALID_AXES or not (order.isupper() or order.islower()):
        raise ValueError(f"order: expected three axis letters all upper (intrinsic) or all lower (extrinsic), got {order!r}")
    if order[0].lower() == order[1].lower() or order[1].lower() == order[2].lower():
        raise ValueError(f"order: consecutive axes must differ, got {order!r}")
    return order


def _batched(fn, x: np.ndarray, n_in: int) -> np.ndarray:
    """Apply scipy's flat-batch conversion over arbitrary leading dims."""
    lead = x.shape[: x.ndim - n_in]
    flat = x.reshape((-1,) + x.shape[x.ndim - n_in:])
    out = fn(flat)
    return out.reshape(lead + out.shape[1:])


def rotvec_to_rotmat(rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle ``(..., 3)`` to rotation matrices ``(..., 3, 3)``."""
    rotvec = check_shape(np.asarray(rotvec, dtype=np.float64), "... 3", "rotvec")
    return _batched(lambda v: Rotation.from_rotvec(v).as_matrix(), rotvec, 1)


def rotmat_to_rotvec(rotmat: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` to axis-angle ``(..., 3)``, angle in [0, pi]."""
    rotmat = check_shape(np.asarray(rotmat, dtype=np.float64), "... 3 3", "rotmat")
    return _batched(lambda m: Rotation.from_matrix(m).as_rotvec(), rotmat, 2)


def quat_to_rotmat(quat: np.ndarray) -> np.ndarray:
    """Quaternions ``(..., 4)`` xyzw (normalised on the way in) to ``(..., 3, 3)``."""
    quat = check_shape(np.asarray(quat, dtype=np.float64), "... 4", "quat")
    return _batched(lambda q: Rotation.from_quat(q).as_matrix(), quat, 1)


def rotmat_to_quat(rotmat: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` to unit quaternions ``(..., 4)`` xyzw with w >= 0."""
    rotmat = check_shape(np.asarray(rotmat, dtype=np.float64), "... 3 3", "rotmat")
    return _batched(lambda m: Rotation.from_matrix(m).as_quat(canonical=True), rotmat, 2)


def euler_to_rotmat(euler: np.ndarray, order: str) -> np.ndarray:
    """Euler angles ``(..., 3)`` radians to ``(..., 3, 3)``; see the module doc for ``order``."""
    order = _check_order(order)
    euler = check_shape(np.asarray(euler, dtype=np.float64), "... 3", "euler")
    return _batched(lambda e: Rotation.from_euler(order, e).as_matrix(), euler, 1)


def rotmat_to_euler(rotmat: np.ndarray, order: str) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` to Euler angles ``(..., 3)`` radians.

    Tait–Bryan orders (three different axes) are decomposed in closed form so that the angles
    reproduce ``rotmat`` to machine precision even at gimbal lock (middle angle ±90°), where the
    split between the first and third angle is not unique: the third angle is read first and the
    first angle is then fitted to what remains, which is always well conditioned.
    Proper Euler orders (``ZXZ``…) use scipy.
    """
    order = _check_order(order)
    rotmat = check_shape(np.asarray(rotmat, dtype=np.float64), "... 3 3", "rotmat")
    if order.islower():
        # Extrinsic "xyz" with angles (a, b, c) equals intrinsic "ZYX" with angles (c, b, a).
        return rotmat_to_euler(rotmat, order[::-1].upper())[..., ::-1]
    if order[0] == order[2]:
        return _batched(lambda m: Rotation.from_matrix(m).as_euler(order), rotmat, 2)
    i, j, k = ("XYZ".index(a) for a in order)
    s = 1.0 if (j - i) % 3 == 1 else -1.0  # +1 for cyclic orders (XYZ, YZX, ZXY)
    R = rotmat
    b = np.arctan2(s * R[..., i, k], np.hypot(R[..., i, i], R[..., i, j]))
    c = np.arctan2(-s * R[..., i, j], R[..., i, i])
    # M = R R_k(c)^T R_j(b)^T is a pure rotation about axis i.
    M = R @ np.swapaxes(_axis_rotmat(k, c), -1, -2) @ np.swapaxes(_axis_rotmat(j, b), -1, -2)
    a = np.arctan2(s * M[..., k, j], M[..., j, j])
    return np.stack([a, b, c], axis=-1)


def _axis_rotmat(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotation by ``angle (...)`` about coordinate axis 0, 1 or 2: ``(..., 3, 3)``."""
    ca, sa = np.cos(angle), np.sin(angle)
    R = np.zeros(np.shape(angle) + (3, 3))
    R[..., axis, axis] = 1.0
    u, v = (axis + 1) % 3, (axis + 2) % 3
    R[..., u, u] = ca
    R[..., v, v] = ca
    R[..., u, v] = -sa
    R[..., v, u] = sa
    return R


def quat_to_rotvec(quat: np.ndarray) -> np.ndarray:
    """Quaternions ``(..., 4)`` xyzw to axis-angle ``(..., 3)``."""
    quat = check_shape(np.asarray(quat, dtype=np.float64), "... 4", "quat")
    return _batched(lambda q: Rotation.from_quat(q).as_rotvec(), quat, 1)


def rotvec_to_quat(rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle ``(..., 3)`` to unit quaternions ``(..., 4)`` xyzw with w >= 0."""
    rotvec = check_shape(np.asarray(rotvec, dtype=np.float64), "... 3", "rotvec")
    return _batched(lambda v: Rotation.from_rotvec(v).as_quat(canonical=True), rotvec, 1)


def unwrap_euler(euler: np.ndarray, axis: int = 0) -> np.ndarray:
    """Remove 2*pi jumps from Euler angle sequences ``(T, ..., 3)`` along ``axis`` (frames)."""
    return np.unwrap(np.asarray(euler, dtype=np.float64), axis=axis)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shortest rotation ``(..., 3, 3)`` taking direction ``a (..., 3)`` onto ``b (..., 3)``.

    For opposite vectors the axis is any unit vector perpendicular to ``a`` (deterministic).
    """
    a = check_shape(np.asarray(a, dtype=np.float64), "... 3", "a")
    b = check_shape(np.asarray(b, dtype=np.float64), "... 3", "b")
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=-1, keepdims=True)
    c = np.sum(a * b, axis=-1, keepdims=True)
    angle = np.arctan2(s, c)
    # Antiparallel: sin ~ 0 and cos < 0 -> choose a perpendicular axis to a.
    helper = np.where(np.abs(a[..., :1]) < 0.9, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
    perp = np.cross(a, helper)
    perp /= np.linalg.norm(perp, axis=-1, keepdims=True)
    small = s < 1e-12
    unit_axis = np.where(small, np.where(c < 0, perp, 0.0), axis / np.where(small, 1.0, s))
    return rotvec_to_rotmat(unit_axis * angle)
