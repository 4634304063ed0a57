"""The viewpoint-dependent detector bias of the training error model (mocap.synthetic.detector_bias):
joint groups shifted together per view, slowly varying, larger seen from the side, confidences kept."""

from __future__ import annotations

import numpy as np
import pytest

from mocap.geometry.camera import Camera, Rig, project_rig
from mocap.synthetic.detector_bias import (JOINT_GROUPS, DetectorBias, add_detector_bias, detector_bias_offsets,
                                           group_mask, viewing_obliqueness)
from mocap.synthetic.rig import look_at
from mocap.train.data import Scenario, scenario_person, training_detections

NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
         "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
         "right_ankle", "neck", "head_top")


def standing_person(T: int = 90) -> np.ndarray:
    """``(T, J, 3)``: a person at the origin facing +y (hips along x), standing still."""
    x = {"left": 0.15, "right": -0.15}
    z = {"nose": 1.6, "eye": 1.65, "ear": 1.62, "shoulder": 1.45, "elbow": 1.15, "wrist": 0.9, "hip": 0.95,
         "knee": 0.5, "ankle": 0.08, "neck": 1.5, "head_top": 1.8}
    pts = []
    for n in NAMES:
        side = next((s for s in x if n.startswith(s)), None)
        part = n.split("_", 1)[1] if side else n
        pts.append([1.6 * x[side] if side and part in ("shoulder", "elbow", "wrist") else (x[side] if side else 0.0),
                    0.0, z[part]])
    return np.broadcast_to(np.array(pts), (T, len(NAMES), 3)).copy()


def rig_front_and_side() -> Rig:
    """Camera 0 in front of the person (on +y), camera 1 at its side (on +x), same distance and lens."""
    K = np.array([[1200.0, 0, 960], [0, 1200.0, 540], [0, 0, 1]])
    cams = []
    for name, centre in (("front", [0.0, 4.0, 1.2]), ("side", [4.0, 0.0, 1.2])):
        R = look_at(np.array(centre), np.array([0.0, 0.0, 1.0]))
        cams.append(Camera(name, (1920, 1080), K, R=R, t=-R @ np.array(centre)))
    return Rig(tuple(cams))


def test_obliqueness_is_zero_seen_from_the_front_and_one_from_the_side():
    ob = viewing_obliqueness(rig_front_and_side(), standing_person(5), NAMES)
    np.testing.assert_allclose(ob[:, 0], 0.0, atol=1e-9)
    np.testing.assert_allclose(ob[:, 1], 1.0, atol=1e-9)


def test_a_group_moves_together_slowly_and_more_seen_from_the_side():
    rig, gt = rig_front_and_side(), standing_person()
    bias = DetectorBias(share=(0.03, 0.03), groups=(1, 1), untouched=0.0, frontal_factor=0.3)
    for seed in range(6):
        off = detector_bias_offsets(rig, gt, NAMES, np.random.default_rng(seed), bias)  # (T, C, J, 2)
        flat = detector_bias_offsets(rig, gt, NAMES, np.random.default_rng(seed),
                                     DetectorBias(share=(0.03, 0.03), groups=(1, 1), untouched=0.0, frontal_factor=1.0))
        for c in range(2):
            moved = np.linalg.norm(off[:, c], axis=-1).min(axis=0) > 0  # (J,)
            assert any(np.array_equal(moved, group_mask(NAMES, g)) for g in JOINT_GROUPS), moved
            np.testing.assert_allclose(off[:, c, moved], np.broadcast_to(off[:, c, moved][:, :1], off[:, c, moved].shape))
            np.testing.assert_array_equal(off[:, c, ~moved], 0.0)
            mag = np.linalg.norm(off[:, c, moved][:, 0], axis=-1)
            assert np.ptp(mag) > 0 and np.abs(np.diff(off[:, c, moved][:, 0], axis=0)).max() < 0.05 * mag.max()
        # the same draws: seen from the front the offset is frontal_factor of the side view's
        ratio = np.linalg.norm(off, axis=-1).max(axis=(0, 2)) / np.linalg.norm(flat, axis=-1).max(axis=(0, 2))
        np.testing.assert_allclose(ratio, [0.3, 1.0], rtol=1e-9)


def test_offsets_are_the_drawn_share_of_the_person_size():
    rig, gt = rig_front_and_side(), standing_person()
    proj = np.moveaxis(project_rig(rig, gt), 2, 1)
    size = np.ptp(proj, axis=2).max(-1)  # (T, C)
    bias = DetectorBias(share=(0.02, 0.04), groups=(1, 1), untouched=0.0, frontal_factor=1.0)
    for seed in range(5):
        off = detector_bias_offsets(rig, gt, NAMES, np.random.default_rng(seed), bias)
        share = np.linalg.norm(off, axis=-1).max(axis=-1) / size  # (T, C)
        assert np.all((share >= 0.02 * 0.7 - 1e-9) & (share <= 0.04 * 1.3 + 1e-9)), share


@pytest.fixture(scope="module")
def capture():
    sc = Scenario(cameras=5, noise_px=3.0, outlier_rate=0.1, swap_rate=0.0, frames=30, seed=10_005, clip="01_01")
    return sc, scenario_person(sc)


def test_training_detections_keep_confidences_and_missing_joints(capture):
    sc, (scene, person, gt) = capture
    out = training_detections(scene, person, gt, sc.seed, 0.2, detector_bias_rate=1.0)
    np.testing.assert_array_equal(out[..., 2], person[..., 2])
    np.testing.assert_array_equal(np.isnan(out), np.isnan(person))
    moved = np.nan_to_num(np.linalg.norm(out[..., :2] - person[..., :2], axis=-1))
    assert moved.max() > 3.0  # pixels: a real shift
    np.testing.assert_array_equal(out, training_detections(scene, person, gt, sc.seed, 0.2, detector_bias_rate=1.0))
    np.testing.assert_array_equal(training_detections(scene, person, gt, sc.seed, 0.2), person)


def test_rate_zero_draws_nothing_and_bad_input_says_what(capture):
    _, (scene, person, gt) = capture
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(add_detector_bias(person, scene.rig, gt, scene.joint_names, rng, 0.0), person)
    assert rng.uniform() == np.random.default_rng(3).uniform()
    with pytest.raises(ValueError, match="rate"):
        add_detector_bias(person, scene.rig, gt, scene.joint_names, rng, 1.5)
    with pytest.raises(ValueError, match="do not match"):
        add_detector_bias(person, scene.rig, gt[:-1], scene.joint_names, np.random.default_rng(0), 1.0)
    with pytest.raises(ValueError, match="joint group 'torso'"):
        group_mask(NAMES, "torso")
    with pytest.raises(ValueError, match="share"):
        DetectorBias(share=(0.05, 0.01))
