"""The CLI fails fast: every bad option or input is a one-line error before any detection runs.

Each test prints the time from the command to its error (`pytest -s` shows them); the bound
asserted is loose (the CI machine is slow), what matters is that no frame is ever detected:
a detection of 4 cameras takes tens of seconds here.
"""

import shutil
import time

import cv2
import numpy as np
import pytest

from conftest import POSE2SIM
from mocap.cli import main

TRIAL = POSE2SIM / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial"
CALIB = POSE2SIM / "S00_Calibration" / "Calib.qca.txt"


def _fails_fast(capsys, argv, *expected) -> str:
    t0 = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err.strip().splitlines()
    print(f"{' '.join(argv[:2])}: error after {elapsed:.2f} s: {err}")
    assert code == 2, err
    assert len(err) == 1, err
    for text in expected:
        assert text in err[0], err
    assert elapsed < 10.0, f"{elapsed:.1f} s to the error: something ran before the checks"
    return err[0]


def _write_video(path, size, frames=3):
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for _ in range(frames):
        writer.write(np.zeros((size[1], size[0], 3), np.uint8))
    writer.release()


def _process(session, out, *extra):
    return ["process", str(session), "--calibration", str(CALIB), "--out", str(out), *extra]


def test_unknown_export_format(shared, capsys, tmp_path):
    _fails_fast(capsys, _process(TRIAL, tmp_path / "o", "--format", "bvh,obj"), "formats", "'obj'", "'bvh'")
    _fails_fast(capsys, ["export", "t.npz", "--out", str(tmp_path), "--format", "gltf"], "'gltf'")


def test_unknown_preset(shared, capsys, tmp_path):
    _fails_fast(capsys, _process(TRIAL, tmp_path / "o", "--preset", "daz"), "--preset", "'daz'", "mixamo")
    _fails_fast(capsys, _process(TRIAL, tmp_path / "o", "--rig", "daz"), "--rig", "'daz'", "ue5")
    _fails_fast(capsys, _process(TRIAL, tmp_path / "o", "--set", "export.rig=daz"), "rig", "'daz'")


def test_unknown_setting(shared, capsys, tmp_path):
    _fails_fast(capsys, _process(TRIAL, tmp_path / "o", "--set", "triangulate.treshold_px=3"),
                "'triangulate.treshold_px'", "threshold_px")


def test_camera_not_in_the_calibration(shared, capsys, tmp_path):
    session = tmp_path / "take"
    _write_video(session / "videos" / "cam01.mp4", (1088, 1920))
    _write_video(session / "videos" / "side_cam.mp4", (1088, 1920))
    _fails_fast(capsys, _process(session, tmp_path / "o"), "side_cam.mp4", "'side_cam'", "cam_01")


def test_video_size_differs_from_the_calibrated_size(shared, capsys, tmp_path):
    session = tmp_path / "take"
    _write_video(session / "videos" / "cam01.mp4", (540, 960))
    _fails_fast(capsys, _process(session, tmp_path / "o"), "cam01.mp4", "540x960", "1088x1920")
    _fails_fast(capsys, ["detect", str(session), "--out", str(tmp_path / "kp"), "--calibration", str(CALIB)],
                "540x960")


def test_output_is_a_file(shared, capsys, tmp_path):
    (tmp_path / "out").write_text("not a folder")
    _fails_fast(capsys, _process(TRIAL, tmp_path / "out"), "is a file")
    _fails_fast(capsys, _process(TRIAL, tmp_path / "out" / "take"), "is a file")
    _fails_fast(capsys, ["reconstruct", "--keypoints", str(TRIAL / "pose"), "--calibration", str(CALIB),
                         "--out", str(tmp_path)], "is a folder")


def test_output_not_writable(shared, capsys, tmp_path):
    # /proc refuses new files even to root (permission bits do not stop root, a real write does)
    _fails_fast(capsys, _process(TRIAL, "/proc/mocap-test/out"), "cannot write", "/proc")


def test_truncated_video_is_an_error_unless_allow_short(shared, capsys, tmp_path):
    """An AVI cut short keeps its header (frame count) but loses frames: one line naming the
    frame; --allow-short carries on with the frames that exist."""
    from mocap.detect.session import detect_session
    from mocap.detect import DetectConfig
    from mocap.errors import VideoError

    session = tmp_path / "take"
    video = session / "videos" / "cam01.avi"
    video.parent.mkdir(parents=True)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(20):
        writer.write(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    writer.release()
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"cam01\.avi: decoding stopped at frame \d+ of 20.*--allow-short"):
        detect_session(session)
    kp = detect_session(session, config=DetectConfig(allow_short=True))
    assert 0 < kp.data.shape[0] < 20


def test_a_second_take_into_the_same_out_is_detected_again(shared, tmp_path):
    """Same camera name, other video: the cached detections are not reused."""
    from mocap.detect.pipeline import load_camera_detections
    from mocap.detect.session import detect_session
    from mocap.detect.video import read_frames

    out = tmp_path / "kp"
    takes = []
    for name, start in (("take1", 0), ("take2", 50)):
        session = tmp_path / name
        frames = [f for _, f in read_frames(TRIAL / "videos" / "cam01.mp4", start=start, stop=start + 3)]
        session.joinpath("videos").mkdir(parents=True)
        writer = cv2.VideoWriter(str(session / "videos" / "cam01.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0,
                                 frames[0].shape[1::-1])
        for f in frames:
            writer.write(f)
        writer.release()
        detect_session(session, out)
        takes.append(load_camera_detections(out / "cam01.npz"))
    assert takes[0].video_fingerprint != takes[1].video_fingerprint
    assert not np.allclose(takes[0].keypoints, takes[1].keypoints, equal_nan=True)
    again = detect_session(tmp_path / "take2", out)  # the same take again: reused as it is
    np.testing.assert_array_equal(again.data[:, 0], takes[1].keypoints)
