"""Keypoint import (OpenPose JSON, MMPose/COCO JSON), camera alignment with a rig, TRC reading."""

import json
import logging

import numpy as np
import pytest

from conftest import POSE2SIM
from mocap.errors import CalibrationError, KeypointFormatError
from mocap.geometry import Camera, Rig
from mocap.io.mmpose import load_mmpose
from mocap.io.openpose import align_to_rig, load_openpose
from mocap.io.trc import WORLD_FROM_POSE2SIM_TRC, read_trc, trc_to_world
from mocap.io.keypoints import Keypoints2D
from mocap.skeleton.joints import BODY_25, BODY_25B, COCO_17

TRIAL = POSE2SIM / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial"
MULTI = POSE2SIM / "S00_P01_MultiParticipants" / "S00_P01_T02_Participants1-2"


def write_openpose(folder, frames, name="f_{}.json"):
    """``frames``: list over frames of arrays ``(P, J, 3)``; written unpadded (f_2 before f_10)."""
    folder.mkdir(parents=True)
    for t, people in enumerate(frames):
        doc = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": p.ravel().tolist()} for p in people]}
        (folder / name.format(t)).write_text(json.dumps(doc))


def random_people(rng, P, J=25):
    people = np.concatenate([rng.uniform(0, 1000, (P, J, 2)), rng.uniform(0.1, 1, (P, J, 1))], axis=-1)
    return people


# ---------------------------------------------------------------------------------------------
# OpenPose
# ---------------------------------------------------------------------------------------------

def test_openpose_values_people_padding_and_order(rng, tmp_path):
    T = 12  # > 10 so that f_10 must come after f_9 (natural order)
    a = [random_people(rng, 1 + t % 2) for t in range(T)]  # 1 or 2 people
    b = [random_people(rng, 3 if t == 5 else 1) for t in range(T)]
    a[3][0, 7, :] = 0.0  # OpenPose's undetected joint
    write_openpose(tmp_path / "cam01_json", a)
    write_openpose(tmp_path / "cam02_json", b)
    kp = load_openpose(tmp_path, "body_25")
    assert kp.shape == (T, 2, 3, 25, 3)
    assert kp.camera_names == ("cam01", "cam02") and kp.joint_names == BODY_25
    np.testing.assert_array_equal(kp.frame_indices, np.arange(T))
    np.testing.assert_allclose(kp.data[11, 0, :2], a[11])  # 2 people
    np.testing.assert_allclose(kp.data[5, 1], b[5])
    assert np.isnan(kp.data[3, 0, 0, 7]).all()  # confidence 0 -> NaN
    assert np.isnan(kp.data[0, 0, 1:]).all() and np.isnan(kp.data[0, 1, 1:]).all()  # padding


def test_unequal_frame_counts_are_padded_with_a_warning(rng, tmp_path, caplog):
    write_openpose(tmp_path / "camA", [random_people(rng, 1) for _ in range(5)])
    write_openpose(tmp_path / "camB", [random_people(rng, 1) for _ in range(3)])
    with caplog.at_level(logging.WARNING):
        kp = load_openpose(tmp_path, "body_25")
    assert kp.shape[:2] == (5, 2)
    assert np.isnan(kp.data[3:, 1]).all() and np.isfinite(kp.data[:3, 1]).all()
    assert "camera camB has 3 frames" in caplog.text


def test_cameras_argument_selects_and_orders(rng, tmp_path):
    for name in ("cam01_json", "cam02_json", "cam03_json"):
        write_openpose(tmp_path / name, [random_people(rng, 1) for _ in range(2)])
    kp = load_openpose(tmp_path, "body_25", cameras=["cam_3", "CAM1"])
    assert kp.camera_names == ("cam03", "cam01")
    with pytest.raises(KeypointFormatError, match=r"no keypoint folder for camera 'cam9'; found cam01, cam02, cam03"):
        load_openpose(tmp_path, "body_25", cameras=["cam9"])


def test_wrong_keypoint_count_names_file_person_and_counts(rng, tmp_path):
    frames = [random_people(rng, 2, J=25), random_people(rng, 2, J=25)]
    write_openpose(tmp_path / "cam1", frames)
    with pytest.raises(KeypointFormatError,
                       match=r"f_0\.json: person 0: 75 values in pose_keypoints_2d, expected 51 .*'coco_17'.*"
                             r"--keypoint-format.*body_25 or body_25b"):
        load_openpose(tmp_path, "coco_17")


def test_no_camera_folders_is_an_error(tmp_path):
    with pytest.raises(KeypointFormatError, match=r"no camera folders with \.json files"):
        load_openpose(tmp_path, "body_25")


def test_pose2sim_session_folder_with_two_people():
    kp = load_openpose(MULTI, "body_25b")  # SESSION/pose/camNN_json
    assert kp.camera_names == ("cam01", "cam02", "cam03", "cam04")
    assert kp.shape[0] == 100 and kp.shape[2] >= 2 and kp.shape[3:] == (25, 3)
    assert kp.joint_names == BODY_25B
    # two people present in most frames of every camera
    people_seen = np.isfinite(kp.data[..., 0]).any(axis=-1).sum(axis=-1)  # (T, C)
    assert np.median(people_seen) >= 2
    conf = kp.confidence[np.isfinite(kp.confidence)]
    assert conf.min() > 0 and conf.max() <= 1


# ---------------------------------------------------------------------------------------------
# align_to_rig
# ---------------------------------------------------------------------------------------------

def make_rig(names):
    K = np.array([[1000.0, 0, 500], [0, 1000.0, 500], [0, 0, 1]])
    return Rig(tuple(Camera(n, (1000, 1000), K, t=[0, 0, 3]) for n in names))


def test_align_to_rig_reorders_and_fills_missing(rng, caplog):
    data = rng.uniform(0, 1, (4, 2, 1, 17, 3))
    appearance = rng.normal(size=(4, 2, 1, 8))
    kp = Keypoints2D(data, COCO_17, ("cam03_json", "cam1"), extras={"appearance": appearance})
    rig = make_rig(["cam_01", "cam_02", "cam_03"])
    with caplog.at_level(logging.WARNING):
        out = align_to_rig(kp, rig)
    assert out.camera_names == ("cam_01", "cam_02", "cam_03")
    np.testing.assert_array_equal(out.data[:, 0], data[:, 1])
    np.testing.assert_array_equal(out.data[:, 2], data[:, 0])
    assert np.isnan(out.data[:, 1]).all()
    np.testing.assert_array_equal(out.extras["appearance"][:, 2], appearance[:, 0])
    assert "no keypoints for calibration camera(s) cam_02" in caplog.text


def test_align_to_rig_unknown_camera_lists_the_rig(rng):
    kp = Keypoints2D(rng.uniform(0, 1, (2, 1, 1, 17, 3)), COCO_17, ("side_cam",))
    with pytest.raises(CalibrationError, match=r"keypoint camera 'side_cam' matches no calibration camera; "
                                               r"the calibration has cam_01, cam_02"):
        align_to_rig(kp, make_rig(["cam_01", "cam_02"]))


# ---------------------------------------------------------------------------------------------
# MMPose / COCO
# ---------------------------------------------------------------------------------------------

def test_mmpose_video_predictions(rng, tmp_path):
    truth = np.full((3, 2, 17, 3), np.nan)
    frames = []
    for t in range(3):
        instances = []
        for p in range(1 if t == 1 else 2):
            xy, s = rng.uniform(0, 640, (17, 2)), rng.uniform(0.2, 1, 17)
            truth[t, p] = np.column_stack([xy, s])
            instances.append({"keypoints": xy.tolist(), "keypoint_scores": s.tolist(), "bbox": [[0, 0, 1, 1]]})
        frames.append({"frame_id": t, "instances": instances})
    (tmp_path / "cam1.json").write_text(json.dumps(frames))
    (tmp_path / "cam2.json").write_text(json.dumps({"meta_info": {}, "instance_info": frames[:2]}))
    kp = load_mmpose(tmp_path)
    assert kp.camera_names == ("cam1", "cam2") and kp.shape == (3, 2, 2, 17, 3)
    np.testing.assert_allclose(kp.data[:, 0], truth)
    np.testing.assert_allclose(kp.data[:2, 1], truth[:2])
    assert np.isnan(kp.data[2, 1]).all()


def test_coco_results_grouped_by_image_id(rng, tmp_path):
    flat = rng.uniform(1, 500, (3, 51))
    results = [{"image_id": 20, "category_id": 1, "keypoints": flat[0].tolist(), "score": 0.9},
               {"image_id": 10, "category_id": 1, "keypoints": flat[1].tolist(), "score": 0.8},
               {"image_id": 20, "category_id": 1, "keypoints": flat[2].tolist(), "score": 0.7}]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    kp = load_mmpose(path)
    np.testing.assert_array_equal(kp.frame_indices, [10, 20])
    assert kp.shape == (2, 1, 2, 17, 3)
    np.testing.assert_allclose(kp.data[0, 0, 0], flat[1].reshape(17, 3))
    np.testing.assert_allclose(kp.data[1, 0, 1], flat[2].reshape(17, 3))


def test_mmpose_per_frame_files_and_wrong_count(rng, tmp_path):
    for cam in ("c1", "c2"):
        (tmp_path / cam).mkdir()
        for t in range(2):
            inst = [{"keypoints": rng.uniform(0, 9, (17, 2)).tolist(), "keypoint_scores": [0.5] * 17}]
            (tmp_path / cam / f"img_{t}.json").write_text(json.dumps(inst))
    kp = load_mmpose(tmp_path, cameras=["c2"])
    assert kp.camera_names == ("c2",) and kp.shape == (2, 1, 1, 17, 3)
    with pytest.raises(KeypointFormatError, match=r"img_0\.json: frame 0: person 0: .*expected 33 joints.*"
                                                  r"'blazepose_33'.*--keypoint-format"):
        load_mmpose(tmp_path, "blazepose_33")


# ---------------------------------------------------------------------------------------------
# TRC
# ---------------------------------------------------------------------------------------------

def test_read_pose2sim_trc():
    trc = read_trc(TRIAL / "pose-3d" / "S00_P00_T01_BalancingTrial_0-100.trc")
    positions, names, fps, frames, units = trc
    assert positions.shape == (100, 21, 3) and len(names) == 21
    assert names[:2] == ("RHip", "RKnee") and fps == 60.0 and units == "m"
    np.testing.assert_array_equal(frames, np.arange(1, 101))
    assert positions[0, 0] == pytest.approx([-0.06497214796810755, 0.9015045550714222, -1.4005886926185436])


def test_trc_with_blank_line_and_64_markers():
    trc = read_trc(TRIAL / "pose-3d" / "S00_P00_T01_BalancingTrial_0-100_filt_butterworth_LSTM.trc")
    assert trc.positions.shape == (100, 64, 3) and np.isfinite(trc.positions).all()


def test_trc_to_world_puts_the_head_above_the_feet():
    trc = read_trc(TRIAL / "pose-3d" / "S00_P00_T01_BalancingTrial_0-100.trc")
    world = trc_to_world(trc.positions, trc.units)
    z = world[..., 2]
    head = z[:, trc.marker_names.index("Head")]
    lower_heel = np.minimum(z[:, trc.marker_names.index("RHeel")], z[:, trc.marker_names.index("LHeel")])
    assert np.all(head - lower_heel > 1.3)  # Z up, metres: an adult balancing on one foot
    np.testing.assert_allclose(world[0, 0], [-1.4005886926185436, -0.06497214796810755, 0.9015045550714222])
    assert np.linalg.det(WORLD_FROM_POSE2SIM_TRC) == pytest.approx(1.0)  # a rotation, not a reflection


def test_trc_missing_cells_are_nan(tmp_path):
    path = tmp_path / "m.trc"
    path.write_text("PathFileType\t4\t(X/Y/Z)\tm.trc\n"
                    "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\n30\t30\t2\t2\tmm\n"
                    "Frame#\tTime\tA\t\t\tB\t\t\n\t\tX1\tY1\tZ1\tX2\tY2\tZ2\n"
                    "1\t0.0\t1\t2\t3\t4\t5\t6\n2\t0.033\t\t\t\t7\t8\t9\n")
    trc = read_trc(path)
    assert trc.units == "mm" and trc.fps == 30.0
    assert np.isnan(trc.positions[1, 0]).all() and trc.positions[1, 1].tolist() == [7, 8, 9]
    np.testing.assert_allclose(trc_to_world(trc.positions, "mm", np.eye(3))[0, 1], [0.004, 0.005, 0.006])
