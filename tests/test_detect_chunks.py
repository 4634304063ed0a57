"""Detection in chunks of frames, ``exact`` mode (the default): one tracker carried across the
chunk borders gives one pass's detections bit for bit, also after a run that lost a chunk or
the tracker state saved at a border."""

import logging

import numpy as np
import pytest

from conftest import POSE2SIM

VIDEO = POSE2SIM / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial" / "videos" / "cam01.mp4"
FRAMES, CHUNK = 40, 15


@pytest.fixture(scope="module")
def take(tmp_path_factory):
    """The demo's cam01, first 40 frames, as a one-camera session (frames copied, not re-encoded)."""
    av = pytest.importorskip("av")
    session = tmp_path_factory.mktemp("take") / "take01"
    (session / "videos").mkdir(parents=True)
    with av.open(str(VIDEO)) as src, av.open(str(session / "videos" / "cam01.mp4"), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        packets = sorted((p for p in src.demux(src.streams.video[0]) if p.dts is not None), key=lambda p: p.dts)
        for p in packets[:FRAMES]:
            p.stream = stream
            dst.mux(p)
    return session


@pytest.fixture(scope="module")
def one_pass(take):
    from mocap.detect.pipeline import detect_video, make_detector

    return detect_video(take / "videos" / "cam01.mp4", make_detector(), camera="cam01")


def assert_same_detections(a, b):
    assert a.keypoints.shape == b.keypoints.shape  # same frames, same slots
    for name in ("keypoints", "scores", "rois", "appearance", "frame_indices"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.fps, a.image_size, a.detector, a.model_sha256) == (b.fps, b.image_size, b.detector, b.model_sha256)


def detect_chunked(take, out):
    from mocap.detect import detect_session
    from mocap.detect.pipeline import DetectConfig

    return detect_session(take, out, DetectConfig(workers=1), chunk_frames=CHUNK).extras["detections"][0]


def test_exact_chunks_equal_one_pass_and_resume_after_a_lost_chunk(take, one_pass, tmp_path, monkeypatch):
    """40 frames in chunks of 15: the merged detections equal one pass exactly; a run killed after
    its second chunk (the third missing, as is the middle one deleted) resumes from the tracker
    state saved at the border and still equals one pass, detecting only the missing chunks."""
    import mocap.runtime.detect_chunks as dc
    from mocap.detect.pipeline import DetectConfig, load_camera_detections

    assert one_pass.frame_indices.size == FRAMES and one_pass.keypoints.shape[1] >= 1
    chunked = detect_chunked(take, tmp_path / "a")
    assert_same_detections(chunked, one_pass)
    assert_same_detections(load_camera_detections(tmp_path / "a" / "cam01.npz"), one_pass)
    assert not (tmp_path / "a" / "cam01.chunks").exists()  # merged, chunk files and states removed

    out = tmp_path / "b"
    config, settings = DetectConfig(workers=1), "s"
    dc.detect_camera_exact(VIDEO_OF(take), "cam01", config, settings, out, CHUNK)
    files = sorted(p.name for p in (out / "cam01.chunks").iterdir())
    assert files == ["00000000-00000015.npz", "00000015-00000030.npz", "00000015.state.pkl",
                     "00000030-00000040.npz", "00000030.state.pkl"]
    (out / "cam01.chunks" / "00000015-00000030.npz").unlink()  # the middle chunk lost
    (out / "cam01.chunks" / "00000030-00000040.npz").unlink()  # and the last (killed there)
    starts = []
    real = dc.read_frames
    monkeypatch.setattr(dc, "read_frames", lambda video, start, *a, **k: starts.append(start) or real(video, start, *a, **k))
    paths = dc.detect_camera_exact(VIDEO_OF(take), "cam01", config, settings, out, CHUNK)
    assert starts == [15]  # resumed at the first missing chunk, the first one reused
    merged = dc.merge_chunks([load_camera_detections(p) for p in paths], [0, 15, 30], *_flip_args(config))
    assert_same_detections(merged, one_pass)


def test_a_missing_tracker_state_falls_back_to_a_warm_up_and_says_so(take, one_pass, tmp_path, caplog):
    """Without the state saved at frame 15 the chunk from 15 starts 15 frames earlier with a fresh
    tracker (logged, naming the file), its slots are stitched to the previous chunk's, and the
    chunks after it are detected again (they must continue the new tracker)."""
    import mocap.runtime.detect_chunks as dc
    from mocap.detect.pipeline import DetectConfig, load_camera_detections

    config = DetectConfig(workers=1)
    dc.detect_camera_exact(VIDEO_OF(take), "cam01", config, "s", tmp_path, CHUNK)
    (tmp_path / "cam01.chunks" / "00000015-00000030.npz").unlink()
    (tmp_path / "cam01.chunks" / "00000015.state.pkl").unlink()
    with caplog.at_level(logging.WARNING, logger="mocap.runtime.detect_chunks"):
        paths = dc.detect_camera_exact(VIDEO_OF(take), "cam01", config, "s", tmp_path, CHUNK, warmup=CHUNK)
    assert "no tracker state saved at frame 15" in caplog.text and "00000015.state.pkl" in caplog.text
    assert "00000015" in caplog.text and len(paths) == 3
    for p in paths[1:]:  # the chunks after it continue the new tracker: detected again
        assert p.stat().st_mtime_ns > (tmp_path / "cam01.chunks" / "00000000-00000015.npz").stat().st_mtime_ns
    middle = load_camera_detections(paths[1])
    np.testing.assert_array_equal(middle.frame_indices, np.arange(0, 30))  # warm-up frames kept for stitching
    merged = dc.merge_chunks([load_camera_detections(p) for p in paths], [0, 15, 30], *_flip_args(config))
    np.testing.assert_array_equal(merged.frame_indices, one_pass.frame_indices)
    np.testing.assert_array_equal(np.isfinite(merged.scores), np.isfinite(one_pass.scores))  # same person, same slot
    d = np.linalg.norm(merged.keypoints[..., :2] - one_pass.keypoints[..., :2], axis=-1)
    assert np.nanmedian(d) < 1.0, np.nanmedian(d)


def test_tracker_state_round_trip_and_bad_state(take):
    """A tracker restored from another's state continues identically; a foreign state is refused."""
    from mocap.detect.pipeline import make_detector
    from mocap.detect.video import read_frames

    detector = make_detector()
    frames = [f for _, f in read_frames(take / "videos" / "cam01.mp4", 0, 6)]
    a = detector.new_tracker(fps=60.0)
    for f in frames[:3]:
        a.step(f)
    b = detector.new_tracker(fps=60.0)
    b.restore(a.state())
    for f in frames[3:]:
        ra, rb = a.step(f), b.step(f)
        np.testing.assert_array_equal(ra.keypoints, rb.keypoints)
    with pytest.raises(ValueError, match="tracker state: expected fields"):
        b.restore({"_rois": np.zeros((0, 4))})


def test_executor_runs_one_exact_task_per_camera(take, one_pass, tmp_path):
    """On an executor the default mode is one task per camera walking its chunks: the file it
    writes is one pass's, and `detect_session` then reuses it (same settings as one pass)."""
    from mocap.detect import detect_session
    from mocap.detect.pipeline import DetectConfig, load_camera_detections
    from mocap.runtime.executor import LocalExecutor
    from mocap.runtime.tasks import detect_cameras

    detect_cameras(LocalExecutor(), take, tmp_path, DetectConfig(workers=1), ["cam01"], chunk_frames=CHUNK)
    assert_same_detections(load_camera_detections(tmp_path / "cam01.npz"), one_pass)
    stamp = (tmp_path / "cam01.npz").stat().st_mtime_ns
    again = detect_session(take, tmp_path, DetectConfig(workers=1), chunk_frames=0).extras["detections"][0]
    assert (tmp_path / "cam01.npz").stat().st_mtime_ns == stamp  # reused by a one-pass run: the same result
    assert_same_detections(again, one_pass)


def test_bad_chunk_mode_is_a_one_line_error(take, tmp_path):
    from mocap.detect import detect_session

    with pytest.raises(ValueError, match="detect chunk mode: expected one of exact, warmup"):
        detect_session(take, tmp_path, chunk_frames=CHUNK, chunk_mode="fast")


def VIDEO_OF(take):  # noqa: N802
    return take / "videos" / "cam01.mp4"


def _flip_args(config):
    from mocap.skeleton.joints import BLAZEPOSE_33, left_right_permutation

    return left_right_permutation(BLAZEPOSE_33), bool(config.blazepose.fix_left_right_flips)
