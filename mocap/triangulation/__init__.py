"""Triangulation: 2D joints of one person in C views -> 3D joints with views used and uncertainty.

Each mode is its own function and returns the same :class:`Triangulation`:
:func:`triangulate_dlt` (confidence-weighted linear) and :func:`triangulate_robust` (outlier
views rejected in bounded time, Gauss–Newton refinement, left/right check). Both run on one of
two numerics backends (``backend="auto"|"numpy"|"numba"``, :func:`resolve_backend`, environment
variable ``MOCAP_BACKEND``) that share their rules (:mod:`.rules`) and give the same results.
"""

from mocap.triangulation.backend import BACKENDS, resolve_backend
from mocap.triangulation.dlt import Triangulation, triangulate_dlt
from mocap.triangulation.robust import (LIMB_GROUPS, left_right_limbs, limb_pairs, limb_starts, temporal_reference,
                                       triangulate_robust)
from mocap.triangulation.uncertainty import triangulation_covariance

__all__ = [
    "BACKENDS", "LIMB_GROUPS", "Triangulation", "left_right_limbs", "limb_pairs", "limb_starts", "resolve_backend",
    "temporal_reference", "triangulate_dlt", "triangulate_robust", "triangulation_covariance",
]
