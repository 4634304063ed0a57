"""Long takes: reconstruction over chunks of frames gives the one-pass result (joints within
1e-6 m, same identities), and the chunked Kalman/RTS smoother is the one-pass smoother.
Memory (peak RSS flat from 1 to 10 minutes) is measured by `mocap bench long_take`, not here."""

import numpy as np
import pytest

from conftest import assert_same_tracks
from mocap.config import ProcessConfig, override
from mocap.pipeline import reconstruct
from mocap.runtime.chunked import chunk_ranges, reconstruct_chunked
from mocap.runtime.smooth_chunks import ChunkedSmoother
from mocap.synthetic import SyntheticConfig, make_scene
from mocap.track.smoothing import SmoothConfig, smooth_trajectories


@pytest.fixture(scope="module")
def scene():
    # two performers, every detector error on (misses, swaps, outliers, spurious people)
    return make_scene(SyntheticConfig(seed=7, num_frames=130, num_people=2, num_cameras=4))


@pytest.mark.parametrize("chunk", [37])
def test_chunked_equals_one_pass_two_people(scene, chunk):
    """Chunk borders at frames no multiple of anything in the take; identities cross them."""
    one = reconstruct(scene.keypoints, scene.rig)
    chunked = reconstruct_chunked(scene.keypoints, scene.rig, chunk_frames=chunk)
    assert one.positions.shape[1] == 2
    assert_same_tracks(one, chunked)


@pytest.mark.parametrize("sets", [{"match.multi_person": False}, {"track.mode": "off"}, {"smooth.enabled": False}])
def test_chunked_equals_one_pass_other_settings(scene, sets):
    config = override(ProcessConfig(), sets)
    one = reconstruct(scene.keypoints, scene.rig, config)
    assert_same_tracks(one, reconstruct_chunked(scene.keypoints, scene.rig, config, chunk_frames=50))


def test_reconstruct_chunks_long_takes_by_itself(scene):
    """`reconstruct(chunk_frames=N)` runs in chunks when the take is longer than N."""
    one = reconstruct(scene.keypoints, scene.rig, chunk_frames=10_000)
    assert_same_tracks(one, reconstruct(scene.keypoints, scene.rig, chunk_frames=45))


def test_chunked_smoother_equals_one_pass(rng):
    """Gaps longer and shorter than max_gap_s, an outlier the gate rejects, chunks of 1..n frames,
    with the two-sided gate and the forward one alone."""
    T, N = 130, 5
    z = np.cumsum(rng.normal(0, 0.01, (T, N, 3)), axis=0)
    z[20:23, 0] = np.nan          # short gap: filled
    z[40:90, 1] = np.nan          # long gap: stays NaN
    z[:15, 2] = np.nan            # starts late
    z[60, 3] += 2.0               # outlier: gated out
    cov = np.broadcast_to(np.eye(3) * 1e-4, (T, N, 3, 3)).copy()
    cov[::7] = np.nan             # no covariance on some frames
    for config in (SmoothConfig(), SmoothConfig(gate_both_ways=False)):
        want, _ = smooth_trajectories(z, cov, 30.0, config)
        for chunk in (1, 7, 64, T):
            sm = ChunkedSmoother(N, 30.0, config)
            for lo, hi in chunk_ranges(T, chunk):
                sm.forward(lo, z[lo:hi], cov[lo:hi])
            got = np.full_like(z, np.nan)
            for lo, hi, pos in sm.backward():
                got[lo:hi] = pos
            sm.close()
            assert sm.rejected >= 1
            np.testing.assert_allclose(got, want, atol=1e-12, equal_nan=True)


def test_settings_without_chunked_form_are_refused(scene):
    with pytest.raises(ValueError, match="track.identities 'images' has no chunked form"):
        reconstruct_chunked(scene.keypoints, scene.rig, override(ProcessConfig(), {"track.identities": "images"}),
                            chunk_frames=50)
    with pytest.raises(ValueError, match="chunk_frames: expected >= 1"):
        reconstruct_chunked(scene.keypoints, scene.rig, chunk_frames=0)


# ---- detection in chunks of frames (mocap.runtime.detect_chunks) ----

def _people_at(xy: np.ndarray, T: int, warm: int, lo: int):
    """CameraDetections of people at fixed image positions ``xy (P, 2)`` over frames [lo - warm, lo + T)."""
    from mocap.detect.pipeline import CameraDetections

    P = len(xy)
    body = np.random.default_rng(0).normal(0, 40, (33, 2))
    kp = np.zeros((T + warm, P, 33, 3), np.float32)
    kp[..., :2] = xy[None, :, None] + body
    kp[..., 2] = 0.9
    rois = np.zeros((T + warm, P, 4), np.float32)
    rois[..., :2], rois[..., 2] = xy[None], 200.0
    return CameraDetections("cam", kp, np.ones((T + warm, P), np.float32), np.zeros((T + warm, P, 8), np.float32), rois,
                            np.arange(lo - warm, lo + T), tuple(f"j{i}" for i in range(33)), 30.0, (1920, 1080), "blazepose")


def test_chunk_slots_follow_their_people_across_a_border():
    """The next chunk's tracker numbered the same three people in another order, and a fourth one
    appears: each keeps their slot, the newcomer takes a free one."""
    from mocap.runtime.detect_chunks import merge_chunks

    xy = np.array([[300.0, 500], [900, 500], [1500, 500]])
    first = _people_at(xy, 20, 0, 0)
    second = _people_at(np.array([xy[2], xy[0], [600.0, 900], xy[1]]), 20, 6, 20)
    merged = merge_chunks([first, second], [0, 20])
    np.testing.assert_array_equal(merged.frame_indices, np.arange(40))
    assert merged.keypoints.shape[:2] == (40, 4)
    np.testing.assert_allclose(merged.keypoints[:20, :3], merged.keypoints[20:, :3])   # same person, same slot
    assert np.isnan(merged.keypoints[:20, 3]).all() and np.isfinite(merged.keypoints[20:, 3]).all()


def test_detection_in_chunks_matches_one_pass_and_resumes_per_chunk(shared, tmp_path, monkeypatch):
    """``warmup`` mode: a real video (100 frames) in chunks of 50 with a 30-frame warm-up, one
    (camera x chunk) task each: the same frames and people
    as one pass, joints within a few pixels (the fresh tracker's ROI differs at the border:
    the difference is measured, see `mocap bench long_take --video`); a chunk already on disk
    is not detected again."""
    import mocap.runtime.detect_chunks as dc
    from mocap.detect import detect_session
    from mocap.detect.pipeline import DetectConfig, detect_video, make_detector
    from mocap.runtime.executor import LocalExecutor
    from mocap.runtime.tasks import detect_cameras

    take = shared / "sessions/pose2sim_demo/S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial"
    config = DetectConfig(workers=1)
    # the (camera x chunk) tasks of an executor, stopped after the second chunk (as a killed run)
    real_task = dc.detect_chunk_task
    monkeypatch.setattr(dc, "detect_chunk_task", lambda *a: real_task(*a) if a[4] == 50 else "")
    detect_cameras(LocalExecutor(), take, tmp_path, config, ["cam01"], chunk_frames=50, chunk_mode="warmup")
    monkeypatch.setattr(dc, "detect_chunk_task", real_task)
    assert (tmp_path / "cam01.chunks" / "00000050-00000100.npz").is_file()
    calls = []
    real = dc.detect_range
    monkeypatch.setattr(dc, "detect_range", lambda *a, **k: calls.append(a[3:5]) or real(*a, **k))
    chunked = detect_session(take, tmp_path, config, cameras=["cam01"], chunk_frames=50,
                             chunk_mode="warmup").extras["detections"][0]
    assert calls == [(0, 50)]                      # the second chunk, from the executor's task, was reused
    assert not (tmp_path / "cam01.chunks").exists()  # merged into cam01.npz, chunk files removed
    one = detect_video(take / "videos/cam01.mp4", make_detector(), camera="cam01")
    np.testing.assert_array_equal(chunked.frame_indices, one.frame_indices)
    assert chunked.keypoints.shape == one.keypoints.shape
    np.testing.assert_array_equal(np.isfinite(chunked.scores), np.isfinite(one.scores))
    np.testing.assert_array_equal(chunked.keypoints[:50], one.keypoints[:50])   # the first chunk is one pass
    d = np.linalg.norm(chunked.keypoints[..., :2] - one.keypoints[..., :2], axis=-1)
    assert np.nanmedian(d) < 0.5 and np.nanpercentile(d, 90) < 5.0, (np.nanmedian(d), np.nanpercentile(d, 90))
