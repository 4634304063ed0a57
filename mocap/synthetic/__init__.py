"""Synthetic studio: real CMU motion seen by a virtual camera rig through a realistic detector.

``make_scene(SyntheticConfig(...))`` is the one entry point; the ground truth it returns is what
every later stage is tested and benchmarked against.
"""

from mocap.synthetic.cmu import CMU_UNIT_M, cmu_dialect, cmu_to_canonical
from mocap.synthetic.config import SyntheticConfig
from mocap.synthetic.detector import DetectionErrors, joint_noise_factors, mirror_index, simulate_detections
from mocap.synthetic.motion import Placement, load_cmu_clip, place_people, resample_clip
from mocap.synthetic.occlusion import BODY_CAPSULES, occluded_by_others
from mocap.synthetic.rig import look_at, ring_rig
from mocap.synthetic.scene import SyntheticScene, make_scene

__all__ = [
    "CMU_UNIT_M", "cmu_dialect", "cmu_to_canonical", "SyntheticConfig", "DetectionErrors",
    "joint_noise_factors", "mirror_index", "simulate_detections", "Placement", "load_cmu_clip",
    "place_people", "resample_clip", "BODY_CAPSULES", "occluded_by_others", "look_at", "ring_rig",
    "SyntheticScene", "make_scene",
]
