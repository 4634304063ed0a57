"""Model fetching and verification, video errors, the per-camera files, the CLI, the demo fetch."""

import os
import zipfile

import cv2
import numpy as np
import pytest

from mocap.cli import main
from mocap.detect import detect_session, detect_video, load_camera_detections
from mocap.detect.models import MODELS, fetch_models, model_path, model_status, verify_model
from mocap.detect.video import read_frames, video_info
from mocap.errors import ModelError, VideoError

from conftest import POSE2SIM

SINGLE_VIDEOS = POSE2SIM / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial" / "videos"


@pytest.fixture(scope="module")
def real_models():
    from mocap.detect.models import ensure_models

    return ensure_models()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MOCAP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _wheel(tmp_path, members: dict) -> str:
    path = tmp_path / "mediapipe-0.10.21-test.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return str(path)


def test_missing_models_are_reported_with_what_to_do(home):
    assert {r["state"] for r in model_status()} == {"missing"}
    with pytest.raises(ModelError, match=r"mocap models fetch.*offline copy"):
        model_path("pose_detection")


def test_fetch_models_from_a_local_wheel(real_models, home, tmp_path):
    wheel = _wheel(tmp_path, {s.wheel_member: real_models[k].read_bytes() for k, s in MODELS.items()})
    paths = fetch_models(wheel=wheel)
    assert {r["state"] for r in model_status()} == {"ok"}
    assert paths["pose_detection"].parent == home / "models"


def test_corrupted_model_fails_its_checksum(real_models, home):
    target = home / "models" / MODELS["pose_landmark_full"].name
    target.parent.mkdir(parents=True)
    data = bytearray(real_models["pose_landmark_full"].read_bytes())
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"sha256 .* does not match"):
        verify_model(target, "pose_landmark_full")
    from mocap.detect.blazepose import BlazePose

    with pytest.raises(ModelError, match="pose_landmark_full"):
        BlazePose(detector_path=real_models["pose_detection"], landmark_path=target)


def test_wheel_without_models_or_not_a_zip(home, tmp_path):
    with pytest.raises(ModelError, match="newer mediapipe wheels ship no model files"):
        fetch_models(wheel=_wheel(tmp_path, {"mediapipe/__init__.py": b""}))
    bad = tmp_path / "bad.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a readable zip"):
        fetch_models(wheel=bad)


def test_unreadable_videos_raise_video_error(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        video_info(tmp_path / "nope.mp4")
    text = tmp_path / "text.mp4"
    text.write_text("hello")
    with pytest.raises(VideoError, match="cannot be opened"):
        list(read_frames(text))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((SINGLE_VIDEOS / "cam01.mp4").read_bytes()[:150_000])
    with pytest.raises(VideoError, match=r"truncated\.mp4.*truncated"):
        detect_video(truncated)


def _write_video(path, frames):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()


def test_black_and_empty_frames_give_empty_results(real_models, tmp_path, rng):
    session = tmp_path / "session"
    (session / "videos").mkdir(parents=True)
    _write_video(session / "videos" / "black.mp4", [np.zeros((240, 320, 3), np.uint8)] * 4)
    _write_video(session / "videos" / "noise.mp4", [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)] * 4)
    kp = detect_session(session, out_dir=tmp_path / "out")
    assert kp.data.shape == (4, 2, 0, 33, 3)
    assert kp.camera_names == ("black", "noise")
    det = load_camera_detections(tmp_path / "out" / "black.npz")
    assert det.keypoints.shape == (4, 0, 33, 3) and det.frame_indices.tolist() == [0, 1, 2, 3]
    assert det.model_sha256 == {k: s.sha256 for k, s in MODELS.items()}


def test_detect_session_writes_and_resumes_per_camera(real_models, tmp_path):
    session = tmp_path / "session"
    (session / "videos").mkdir(parents=True)
    frames = [f for _, f in read_frames(SINGLE_VIDEOS / "cam01.mp4", stop=6)]
    _write_video(session / "videos" / "cam01.mp4", frames)
    out = tmp_path / "out"
    first = detect_session(session, out_dir=out)
    assert first.data.shape[:3] == (6, 1, 1)
    det = load_camera_detections(out / "cam01.npz")
    np.testing.assert_allclose(det.keypoints, first.data[:, 0], rtol=1e-6)
    stamp = os.stat(out / "cam01.npz").st_mtime_ns
    again = detect_session(session, out_dir=out)
    assert os.stat(out / "cam01.npz").st_mtime_ns == stamp  # skipped, not recomputed
    np.testing.assert_allclose(again.data, first.data, rtol=1e-6)


def test_cli_detect_and_models(real_models, tmp_path, capsys):
    session = tmp_path / "session"
    (session / "videos").mkdir(parents=True)
    _write_video(session / "videos" / "cam_a.mp4", [np.zeros((120, 160, 3), np.uint8)] * 3)
    assert main(["detect", str(session), "--out", str(tmp_path / "kp")]) == 0
    assert (tmp_path / "kp" / "cam_a.npz").is_file() and (tmp_path / "kp" / "config.yaml").is_file()
    assert main(["detect", str(tmp_path / "nowhere"), "--out", str(tmp_path / "kp")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["models"]) == 0
    assert "ok" in capsys.readouterr().out


def test_demo_session_extracts_and_verifies(home, tmp_path, monkeypatch):
    """The shared data holds the wheel's four videos byte for byte (their pinned hashes must
    match); its calibration file is a different revision, so that one hash is swapped."""
    from mocap import demo_data
    from mocap.demo_data import DEMO_FILES, demo_session_ok, fetch_demo_session
    from mocap.detect.models import sha256_file

    calib = POSE2SIM / "S00_Calibration" / "Calib.qca.txt"
    files = dict(DEMO_FILES)
    files["calibration/Calib.qca.txt"] = (DEMO_FILES["calibration/Calib.qca.txt"][0], sha256_file(calib))
    monkeypatch.setattr(demo_data, "DEMO_FILES", files)
    single = POSE2SIM / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial"
    sources = {"videos/" + p.name: p for p in (single / "videos").glob("*.mp4")}
    sources["calibration/Calib.qca.txt"] = calib
    members = {DEMO_FILES[rel][0]: src.read_bytes() for rel, src in sources.items()}
    members["pose2sim-0.10.49.dist-info/licenses/LICENSE"] = b"BSD-3-Clause"
    root = fetch_demo_session(wheel=_wheel(tmp_path, members))
    assert demo_session_ok(root) and (root / "LICENSE").is_file()
    assert sorted(p.name for p in (root / "videos").iterdir()) == ["cam01.mp4", "cam02.mp4", "cam03.mp4", "cam04.mp4"]
    members[DEMO_FILES["videos/cam02.mp4"][0]] = b"corrupted"
    with pytest.raises(ModelError, match="cam02.mp4.*does not match"):
        fetch_demo_session(wheel=_wheel(tmp_path, members), force=True)


@pytest.fixture(scope="module")
def first_frames():
    return [f for _, f in read_frames(SINGLE_VIDEOS / "cam01.mp4", stop=12)]


def test_tracking_mode_runs_the_detector_periodically_and_agrees(real_models, first_frames):
    from mocap.detect.blazepose import BlazePose, BlazePoseConfig

    tracked = BlazePose(BlazePoseConfig(tracking=True, detect_every=10)).new_tracker()
    every = BlazePose(BlazePoseConfig(tracking=False)).new_tracker()
    ran, diffs = [], []
    for frame in first_frames:
        a, b = tracked.step(frame), every.step(frame)
        ran.append(a.detector_ran)
        assert len(a.scores) == len(b.scores) == 1
        diffs.append(np.median(np.linalg.norm(a.keypoints[0, :, :2] - b.keypoints[0, :, :2], axis=-1)))
    assert np.flatnonzero(ran).tolist() == [0, 10]
    assert np.median(diffs) < 10.0, diffs  # same person, same joints (px, 1920-px-high frames)


def test_heatmaps_map_back_onto_their_landmarks(real_models, first_frames):
    from mocap.detect.blazepose import BlazePose, BlazePoseConfig
    from mocap.skeleton.joints import BLAZEPOSE_33

    res = BlazePose(BlazePoseConfig(keep_heatmaps=True)).new_tracker().step(first_frames[0])
    assert res.heatmaps.shape == (1, 33, 64, 64) and res.heatmaps.dtype == np.float16
    M = res.image_from_heatmap[0]
    cell_px = np.sqrt(abs(np.linalg.det(M[:, :2])))
    for name in ("left_shoulder", "right_hip", "left_knee"):
        j = BLAZEPOSE_33.index(name)
        row, col = np.unravel_index(np.argmax(res.heatmaps[0, j]), (64, 64))
        peak = M[:, :2] @ [col, row] + M[:, 2]
        assert np.linalg.norm(peak - res.keypoints[0, j, :2]) < 1.5 * cell_px, name


@pytest.mark.parametrize("lost_track_frames", [10, 0])
def test_lost_track_is_found_again_when_the_detector_misses_it(real_models, first_frames, lost_track_frames):
    """A person lost for a frame (here: a blank frame) whom the detector then fails to find (as
    when they are partly hidden behind someone) is found again at their last ROI, in their slot."""
    from mocap.detect.blazepose import BlazePose, BlazePoseConfig

    model = BlazePose(BlazePoseConfig(lost_track_frames=lost_track_frames))
    tracker = model.new_tracker()
    first = tracker.step(first_frames[0])
    assert np.isfinite(first.scores).tolist() == [True]
    blank = tracker.step(np.full_like(first_frames[1], 128))
    assert not np.isfinite(blank.scores).any()  # nobody in a grey frame: the track is lost
    model.detect = lambda frame, rotation=None: (np.zeros((0, 4)), np.zeros(0))  # the detector misses the person
    again = [tracker.step(f) for f in first_frames[2:4]]
    if lost_track_frames:
        assert [np.isfinite(r.scores).tolist() for r in again] == [[True], [True]]
        d = np.linalg.norm(again[0].keypoints[0, :, :2] - first.keypoints[0, :, :2], axis=-1)
        assert np.median(d) < 10.0  # the same person (px, 1920-px-high frames; 2 frames at 60 fps)
    else:
        assert all(not np.isfinite(r.scores).any() for r in again)


@pytest.mark.parametrize("redetect_seconds", [0.05, 0.0])
def test_detector_keeps_running_for_redetect_seconds_after_a_track_ends(real_models, first_frames, redetect_seconds):
    """After a track ends (a blank frame), the detector runs on every frame for
    ``redetect_seconds`` of video (0.05 s = 3 frames at 60 fps), then only every ``detect_every``."""
    from mocap.detect.blazepose import BlazePose, BlazePoseConfig

    model = BlazePose(BlazePoseConfig(detect_every=100, redetect_seconds=redetect_seconds))
    tracker = model.new_tracker(fps=60.0)
    assert tracker.fps == 60.0
    tracker.step(first_frames[0])
    assert not np.isfinite(tracker.step(np.full_like(first_frames[1], 128)).scores).any()  # the track ends
    ran = [tracker.step(f).detector_ran for f in first_frames[2:7]]
    assert ran == ([True] * 3 + [False] * 2 if redetect_seconds else [True] + [False] * 4)


def test_demo_sessions_both_trials_from_one_wheel(home, tmp_path, monkeypatch):
    """Both demo takes come out of one wheel; the two-person videos are the shared data's
    ``S00_P01_T02`` byte for byte (pinned hashes)."""
    from mocap import demo_data
    from mocap.demo_data import DEMO_FILES, DEMO_MULTI_FILES, demo_session_ok, fetch_demo_sessions
    from mocap.detect.models import sha256_file

    calib = POSE2SIM / "S00_Calibration" / "Calib.qca.txt"
    members = {"pose2sim-0.10.49.dist-info/licenses/LICENSE": b"BSD-3-Clause"}
    for name, files, trial in [("DEMO_FILES", DEMO_FILES, "S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial"),
                               ("DEMO_MULTI_FILES", DEMO_MULTI_FILES, "S00_P01_MultiParticipants/S00_P01_T02_Participants1-2")]:
        patched = dict(files)
        patched["calibration/Calib.qca.txt"] = (files["calibration/Calib.qca.txt"][0], sha256_file(calib))
        monkeypatch.setattr(demo_data, name, patched)
        for rel, (member, _) in patched.items():
            src = calib if rel.startswith("calibration") else POSE2SIM / trial / rel
            members[member] = src.read_bytes()
    roots = fetch_demo_sessions(("single", "multi"), wheel=_wheel(tmp_path, members))
    assert demo_session_ok(roots["single"], trial="single") and demo_session_ok(roots["multi"], trial="multi")
    assert roots["single"] != roots["multi"]
    with pytest.raises(ValueError, match="trial"):
        fetch_demo_sessions(("triple",))
