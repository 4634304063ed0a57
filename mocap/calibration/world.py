"""The world frame of a calibrated rig: Z up, metres, origin on the floor.

The bundle adjustment solves the rig in the frame of a reference camera (``ref``). Two ways to
turn that into the world the rest of the pipeline uses:

* :func:`ref_from_world_floor_board`: a board lying on the floor in a named frame; origin at its
  first corner, X along its rows, Z up. The board's own normal points into the board (away from
  the cameras that see its face), so Z up is minus that normal; the sign is checked against the
  cameras, which must lie above the floor.
* :func:`ref_from_world_cameras_up`: without a floor board, "up" is the mean of the cameras'
  up directions (minus their image y axis — studio cameras are mounted upright), the origin a
  given point (e.g. the board in the frame most cameras saw).

Either returns ``ref_from_world (4, 4)``; :func:`apply_world` re-expresses cameras and boards.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def _frame(origin: np.ndarray, x_axis: np.ndarray, z_axis: np.ndarray) -> np.ndarray:
    """ref_from_world ``(4, 4)`` from an origin and two (not necessarily orthogonal) axes in ref."""
    z = z_axis / np.linalg.norm(z_axis)
    x = x_axis - z * (x_axis @ z)
    n = np.linalg.norm(x)
    if n < 1e-6:  # x parallel to up: take any horizontal direction
        x = np.cross(z, [1.0, 0, 0]) if abs(z[0]) < 0.9 else np.cross(z, [0, 1.0, 0])
        n = np.linalg.norm(x)
    x = x / n
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = origin
    return T


def ref_from_world_floor_board(ref_from_board: np.ndarray, camera_centers_ref: np.ndarray) -> np.ndarray:
    """World on a floor board: origin at its first corner, X along its rows, Z up.

    Args:
        ref_from_board: ``(4, 4)`` pose of the board lying on the floor.
        camera_centers_ref: ``(C, 3)`` camera centres in ref; most must be above the floor.

    Returns:
        ``(4, 4)`` ref_from_world.
    """
    R, t = ref_from_board[:3, :3], ref_from_board[:3, 3]
    normal = R[:, 2]  # board z, into the board
    height = (camera_centers_ref - t) @ normal
    up = -normal if np.sum(height < 0) >= np.sum(height > 0) else normal
    return _frame(t, R[:, 0], up)


def ref_from_world_cameras_up(cam_from_ref: np.ndarray, origin_ref: np.ndarray, x_hint_ref: np.ndarray | None = None) -> np.ndarray:
    """World with Z along the cameras' mean up direction.

    Args:
        cam_from_ref: ``(C, 4, 4)`` camera poses (NaN rows ignored).
        origin_ref: ``(3,)`` the world origin in ref.
        x_hint_ref: ``(3,)`` direction for X (projected onto the floor plane); default the first
            camera's x axis.
    """
    ok = np.isfinite(cam_from_ref[:, 0, 0])
    R = cam_from_ref[ok, :3, :3]
    up = -R[:, 1, :].sum(0)  # each camera's -y axis expressed in ref (rows of R are camera axes)
    x_hint = R[0, 0, :] if x_hint_ref is None else np.asarray(x_hint_ref, float)
    return _frame(np.asarray(origin_ref, float), x_hint, up)


def apply_world(cam_from_ref: np.ndarray, ref_from_board: np.ndarray, ref_from_world: np.ndarray):
    """Re-express ``(C, 4, 4)`` cam_from_ref and ``(F, 4, 4)`` ref_from_board in the world.

    Returns ``cam_from_world (C, 4, 4)`` and ``world_from_board (F, 4, 4)``.
    """
    world_from_ref = np.linalg.inv(ref_from_world)
    return cam_from_ref @ ref_from_world, world_from_ref @ ref_from_board
