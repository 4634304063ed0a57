"""End to end: real 4-camera video -> tracks.npz -> BVH + FBX (`mocap process`)."""

import numpy as np
import pytest
import yaml

from conftest import POSE2SIM
from mocap.calibration.io import load_calibration
from mocap.cli import main
from mocap.evaluate import reprojection_vs_keypoints
from mocap.io.bvh import read_bvh
from mocap.io.openpose import load_openpose
from mocap.io.tracks import load_tracks

TRIAL = POSE2SIM / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial"
CALIB = POSE2SIM / "S00_Calibration" / "Calib.qca.txt"


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    out = tmp_path_factory.mktemp("process")
    rc = main(["-q", "process", str(TRIAL), "--calibration", str(CALIB), "--out", str(out), "--workers", "2"])
    assert rc == 0
    return out


def test_process_writes_tracks_and_animation(processed):
    tracks = load_tracks(processed / "tracks.npz")
    assert tracks.positions.shape[:2] == (100, 1)
    assert (processed / "export" / "tracks.fbx").stat().st_size > 10_000
    bvh = read_bvh(processed / "export" / "person_0.bvh")
    assert bvh.num_frames == 100
    assert yaml.safe_load((processed / "config.yaml").read_text())["stage"] == "process"


def test_process_writes_a_run_report(processed):
    report = yaml.safe_load((processed / "report.yaml").read_text())
    assert report["summary"]["people"] == 1 and report["summary"]["frames"] == 100
    assert report["checks"] == [], report["checks"]
    for name, cam in report["cameras"].items():  # our 3D against our own detections, per camera
        assert cam["frames_with_people"] >= 0.98 and cam["reprojection_px"] < 25, (name, cam)
    person = report["people"]["person_0"]
    assert person["frames"] == 100 and person["bone_length_cv"] < 0.1 and person["skeleton_residual_median_mm"] < 30
    assert "| person_0 | 100 |" in (processed / "report.md").read_text()


def test_process_is_accurate_against_openpose(processed):
    """Our 3D projected into each camera lands within a median 25 px of the shipped OpenPose keypoints."""
    tracks = load_tracks(processed / "tracks.npz")
    medians = reprojection_vs_keypoints(tracks, load_calibration(CALIB), load_openpose(TRIAL / "pose", keypoint_format="body_25b"))
    print("median px per camera:", medians)
    assert len(medians) == 4
    assert all(np.isfinite(m) and m <= 25.0 for m in medians.values()), medians


def test_process_is_plausible_human(processed):
    tracks = load_tracks(processed / "tracks.npz")
    names = tracks.joint_names
    pos = tracks.positions[:, 0]
    assert np.isfinite(pos[:, [names.index("left_hip"), names.index("right_knee")]]).mean() > 0.98
    shin = np.linalg.norm(pos[:, names.index("left_knee")] - pos[:, names.index("left_ankle")], axis=-1)
    assert 0.3 < np.nanmedian(shin) < 0.55
    assert np.nanstd(shin) / np.nanmedian(shin) < 0.1  # bone lengths stable over frames


def test_process_bad_calibration_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "calib.yaml"
    bad.write_text("world: {up: z, units: m}\ncameras:\n  cam01: {size: [10, 10], K: [[1,0,0],[0,1,0],[0,0,1]]}\n")
    rc = main(["process", str(TRIAL), "--calibration", str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "calib.yaml" in err[0]


def test_reconstruct_stage_reads_our_detections(processed, tmp_path):
    """Stage by stage: `mocap reconstruct` on the `<cam>.npz` files `mocap detect` wrote."""
    out = tmp_path / "again.npz"
    assert main(["reconstruct", "--keypoints", str(processed / "keypoints2d"), "--calibration", str(CALIB),
                 "--out", str(out)]) == 0
    again, first = load_tracks(out), load_tracks(processed / "tracks.npz")
    assert again.fps == 60.0 and again.positions.shape == first.positions.shape
    np.testing.assert_allclose(again.positions, first.positions, atol=1e-6)


def test_view_draws_the_result_on_every_video(processed):
    """`mocap view DIR`: one overlay MP4 per camera, every frame, the performer's stick figure
    in their colour where their 3D projects (checked on a joint's pixel, MP4 compression allowed)."""
    import cv2

    from mocap.geometry import project
    from mocap.view import person_colour

    assert main(["-q", "view", str(processed)]) == 0
    rig, tracks = load_calibration(CALIB), load_tracks(processed / "tracks.npz")
    for cam in ("cam01", "cam03"):
        cap = cv2.VideoCapture(str(processed / "overlay" / f"{cam}.mp4"))
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        assert len(frames) == 100
        camera = rig[rig.index(cam)]
        knee = project(camera, tracks.positions[50, 0, tracks.joint_names.index("left_knee")])
        x, y = np.round(knee).astype(int)
        patch = frames[50][y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).astype(int)
        assert np.abs(patch - np.array(person_colour(tracks.track_ids[0]))).max(axis=1).min() < 60, patch


def test_process_several_takes_of_one_name_is_one_line_error(tmp_path, capsys):
    """`mocap process A/take B/take --out DIR` would write both into DIR/take: refused before any work."""
    for parent in ("a", "b"):
        (tmp_path / parent / "take").mkdir(parents=True)
    rc = main(["process", str(tmp_path / "a" / "take"), str(tmp_path / "b" / "take"), "--calibration", str(CALIB),
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "two takes are named 'take'" in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_take_longer_than_a_chunk_is_read_from_disk_with_the_same_outputs(processed, tmp_path, capsys):
    """`--chunk-frames 40` on the 100-frame take: the take is read from disk a chunk at a time
    (detections unpacked, reconstruction written to tracks.npz in blocks, export and report read
    it back in chunks); the outputs are the in-memory run's (tracks within 1e-6 m, same IDs, the
    same report numbers and BVH), and the work folder is gone afterwards."""
    import shutil

    from mocap.io.bvh import read_bvh

    out = tmp_path / "streamed"
    shutil.copytree(processed / "keypoints2d", out / "keypoints2d")  # the detection stage is reused
    (out / "stages").mkdir()
    shutil.copy(processed / "stages" / "detect.yaml", out / "stages" / "detect.yaml")
    rc = main(["process", str(TRIAL), "--calibration", str(CALIB), "--out", str(out), "--chunk-frames", "40"])
    log = capsys.readouterr().err
    assert rc == 0
    assert "the take is read from disk a chunk of frames at a time" in log and "stage detect: reused" in log
    assert not (out / ".work").exists()
    one, streamed = load_tracks(processed / "tracks.npz"), load_tracks(out / "tracks.npz")
    assert list(one.track_ids) == list(streamed.track_ids)
    assert (np.isfinite(one.positions) == np.isfinite(streamed.positions)).all()
    assert np.nanmax(np.abs(one.positions - streamed.positions)) < 1e-6
    a, b = (yaml.safe_load((d / "report.yaml").read_text()) for d in (processed, out))
    assert a["cameras"] == b["cameras"] and a["people"] == b["people"] and a["summary"] == b["summary"]
    bvh_a, bvh_b = read_bvh(processed / "export" / "person_0.bvh"), read_bvh(out / "export" / "person_0.bvh")
    assert np.allclose(bvh_a.motion, bvh_b.motion, atol=1e-4)
