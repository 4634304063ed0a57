"""Pictures of a result to check by eye: overlay videos (the 3D drawn back onto every camera,
:mod:`mocap.view.overlay`) and the take in 3D (:mod:`mocap.view.viewer3d`: open3d's window where
a display exists, an offscreen turntable MP4 and PNG strip where none does)."""

from mocap.view.overlay import COLOURS, EDGES, draw_people, person_colour, write_overlays

__all__ = ["COLOURS", "EDGES", "draw_people", "person_colour", "write_overlays"]
