"""Match: which 2D person in which view is the same human.

:func:`associate` groups each frame's detections across views by their epipolar distance
(:mod:`.epipolar`); :func:`gather_groups` turns the groups into per-person views.
"""

from mocap.match.epipolar import AssociationConfig, associate, gather_groups, person_sizes

__all__ = ["AssociationConfig", "associate", "gather_groups", "person_sizes"]
