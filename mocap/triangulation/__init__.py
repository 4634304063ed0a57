"""Triangulation: 2D joints of one person in C views -> 3D joints with views used and uncertainty.

Each mode is its own function and returns the same :class:`Triangulation`:
:func:`triangulate_dlt` (confidence-weighted linear) and :func:`triangulate_robust` (outlier
views rejected in bounded time, Gauss–Newton refinement, left/right check).
"""

from mocap.triangulation.dlt import Triangulation, triangulate_dlt
from mocap.triangulation.robust import LIMB_GROUPS, left_right_limbs, temporal_reference, triangulate_robust
from mocap.triangulation.uncertainty import triangulation_covariance

__all__ = [
    "LIMB_GROUPS", "Triangulation", "left_right_limbs", "temporal_reference", "triangulate_dlt",
    "triangulate_robust",
    "triangulation_covariance",
]
