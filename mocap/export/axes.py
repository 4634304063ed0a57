"""The one named converter between our world (Z up, metres) and Y-up export frames.

``yup_from_world`` maps world (x, y, z) to (x, z, -y): Z up becomes Y up, the world's -Y
(towards a viewer standing at -Y looking along +Y) becomes +Z (towards the viewer), right-handed.
This is the same change of axes Blender applies when it exports Y-up files.
"""

from __future__ import annotations

import numpy as np

#: Rotation ``(3, 3)`` taking world (Z-up) coordinates to Y-up coordinates.
YUP_FROM_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

#: Metres -> unit factors for export.
UNIT_SCALE = {"m": 1.0, "cm": 100.0, "mm": 1000.0}


def points_world_to_yup(points_world: np.ndarray, units: str = "m") -> np.ndarray:
    """Points ``(..., 3)`` world metres -> Y-up in ``units`` (``m``, ``cm``, ``mm``)."""
    if units not in UNIT_SCALE:
        raise ValueError(f"units: unknown value {units!r}; expected one of {', '.join(UNIT_SCALE)}")
    return UNIT_SCALE[units] * (np.asarray(points_world, dtype=np.float64) @ YUP_FROM_WORLD.T)


def points_yup_to_world(points_yup: np.ndarray, units: str = "m") -> np.ndarray:
    """Inverse of :func:`points_world_to_yup`."""
    if units not in UNIT_SCALE:
        raise ValueError(f"units: unknown value {units!r}; expected one of {', '.join(UNIT_SCALE)}")
    return (np.asarray(points_yup, dtype=np.float64) / UNIT_SCALE[units]) @ YUP_FROM_WORLD


def rotmat_world_to_yup(rotmat: np.ndarray) -> np.ndarray:
    """Rotations ``(..., 3, 3)`` expressed in world axes -> the same rotations in Y-up axes."""
    return YUP_FROM_WORLD @ np.asarray(rotmat, dtype=np.float64) @ YUP_FROM_WORLD.T
