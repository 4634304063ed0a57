"""One entry point: a synthetic capture (rig, people, 2D detections) from a config."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from mocap.geometry.camera import Rig
from mocap.io.keypoints import Keypoints2D
from mocap.skeleton.joints import CANONICAL_JOINTS, format_joint_names
from mocap.synthetic.config import SyntheticConfig
from mocap.synthetic.detector import DetectionErrors, simulate_detections
from mocap.synthetic.motion import Placement, place_people, random_placements
from mocap.synthetic.rig import ring_rig

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SyntheticScene:
    """A synthetic capture with its ground truth.

    Attributes:
        rig: the cameras (``C``).
        gt_positions: ``(T, P, J, 3)`` true joint positions, world metres, Z up.
        joint_names: ``(J,)`` canonical names of the detector's joints.
        keypoints: the detector output, :class:`Keypoints2D` ``(T, C, P', J, 3)``; ``P'`` may
            exceed ``P`` (spurious people); detection order is shuffled per view and frame.
        gt_person_index: ``(T, C, P')`` ground-truth person of each detection; -1 for a
            spurious detection, -2 for an empty slot.
        errors: which error was applied where (:class:`DetectionErrors`).
        gt_xy: ``(T, C, P, J, 2)`` exact projections of ``gt_positions`` (distorted pixels),
            in ground-truth person order.
        placements: ``(P,)`` where and when each person's CMU clip plays.
        fps: frames per second.
        config: the config that made the scene.
    """

    rig: Rig
    gt_positions: np.ndarray
    joint_names: tuple[str, ...]
    keypoints: Keypoints2D
    gt_person_index: np.ndarray
    errors: DetectionErrors
    gt_xy: np.ndarray
    placements: tuple[Placement, ...]
    fps: float
    config: SyntheticConfig


def make_scene(config: SyntheticConfig | None = None, rig: Rig | None = None) -> SyntheticScene:
    """Generate a synthetic scene: CMU people placed in the volume, seen by ``rig`` (default:
    :func:`ring_rig` from the config) through the simulated detector. Deterministic in
    ``config.seed``."""
    cfg = config or SyntheticConfig()
    rng = np.random.default_rng(cfg.seed)
    rig_seed, place_rng, det_rng = rng.spawn(3)
    if rig is None:
        rig = ring_rig(cfg.num_cameras, cfg.rig_radius, cfg.camera_height, focal_range=cfg.focal_range,
                       image_size=cfg.image_size, distortion=cfg.distortion,
                       seed=int(rig_seed.integers(2**31)))
    placements = cfg.placements or random_placements(cfg.num_people, cfg.clips, cfg.placement_radius, place_rng)
    joint_names = CANONICAL_JOINTS if cfg.keypoint_format == "canonical" else format_joint_names(cfg.keypoint_format)
    body = place_people(placements, cfg.num_frames, cfg.fps, CANONICAL_JOINTS)
    gt = body[:, :, [CANONICAL_JOINTS.index(n) for n in joint_names]]
    data, gt_index, errors, gt_xy = simulate_detections(rig, body, CANONICAL_JOINTS, joint_names, cfg, det_rng)
    keypoints = Keypoints2D(data, joint_names, tuple(rig.names), fps=cfg.fps)
    log.debug("synthetic scene: T=%d C=%d P=%d P'=%d", cfg.num_frames, len(rig), len(placements), data.shape[2])
    return SyntheticScene(rig, gt, tuple(joint_names), keypoints, gt_index, errors, gt_xy,
                          tuple(placements), cfg.fps, cfg)
