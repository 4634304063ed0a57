"""The ``ukf`` and ``online`` trackers over chunks of frames (:class:`mocap.runtime.smooth_chunks.ChunkedFilter`)
equal one pass: the forward UKF carries its states across chunk borders, the backward pass
(RTS, or the fixed lag reaching into the next chunk) runs over the chunks in reverse."""

import numpy as np
import pytest

from conftest import POSE2SIM
from mocap.bench.track import crossing_scene
from mocap.config import ProcessConfig, override
from mocap.pipeline import reconstruct
from mocap.runtime.chunked import chunkable, reconstruct_chunked


@pytest.fixture(scope="module")
def crossing():
    """Three performers crossing in front of 4 cameras, every detector error on, 90 frames, with
    left/right swaps in 20 % of detections (the filter's swapped-labels hypothesis at work: a
    chunked pass that skipped it measured 0.59 m off one pass here)."""
    return crossing_scene(3, 4, 90, seed=101, swap_rate=0.2)


def assert_same(one, chunked):
    assert chunked.positions.shape == one.positions.shape
    np.testing.assert_array_equal(chunked.track_ids, one.track_ids)
    np.testing.assert_array_equal(np.isnan(chunked.positions), np.isnan(one.positions))
    assert np.isfinite(one.positions).mean() > 0.5
    np.testing.assert_allclose(chunked.positions, one.positions, atol=1e-6, rtol=0, equal_nan=True)
    np.testing.assert_allclose(chunked.confidence, one.confidence, atol=1e-9)


@pytest.mark.parametrize("mode,chunk", [("ukf", 25), ("ukf", 2), ("online", 25), ("online", 3)])
def test_chunked_tracker_equals_one_pass(crossing, mode, chunk):
    """Chunks of 25 frames (borders inside the crossings), of 1 frame (every frame a border),
    and ``online`` chunks shorter than its 5-frame lag (the lag reaches over several chunks)."""
    config = override(ProcessConfig(), {"track.mode": mode})
    assert chunkable(config) is None
    one = reconstruct(crossing.keypoints, crossing.rig, config)
    assert_same(one, reconstruct_chunked(crossing.keypoints, crossing.rig, config, chunk_frames=chunk))


def test_the_crossing_has_one_view_gaps_the_chunks_must_fit_alike(crossing):
    """The equality above covers the one-view gap fit (:mod:`mocap.track.one_view`): on this scene
    it moves some joints (13 joint-frames, up to 6 mm, measured)."""
    on = reconstruct(crossing.keypoints, crossing.rig, override(ProcessConfig(), {"track.mode": "ukf"}))
    off = reconstruct(crossing.keypoints, crossing.rig,
                      override(ProcessConfig(), {"track.mode": "ukf", "track.one_view_fit": False}))
    moved = np.linalg.norm(on.positions - off.positions, axis=-1) > 1e-6
    assert moved.sum() >= 5, moved.sum()


def test_long_take_runs_chunked_with_ukf(crossing, caplog):
    """``reconstruct`` on a take longer than the chunk runs chunked with the UKF (no
    "one pass" fallback) and gives one pass's result."""
    import logging

    config = override(ProcessConfig(), {"track.mode": "ukf"})
    one = reconstruct(crossing.keypoints, crossing.rig, config)
    with caplog.at_level(logging.INFO):
        chunked = reconstruct(crossing.keypoints, crossing.rig, config, chunk_frames=40)
    assert "in 3 chunks" in caplog.text and "reconstructing in one pass" not in caplog.text
    assert_same(one, chunked)


def test_real_take_chunked_ukf_two_ids(shared):
    """The raw OpenPose JSON of the real two-person take, in chunks of 30 frames: the bystander
    is dropped in the chunked linking too, and the UKF gives one pass's two performers."""
    from mocap.calibration.io import load_calibration
    from mocap.io.openpose import align_to_rig, load_openpose

    rig = load_calibration(POSE2SIM / "S00_Calibration" / "Calib_qualisys.toml")
    kp = align_to_rig(load_openpose(POSE2SIM / "S00_P01_MultiParticipants" / "S00_P01_T02_Participants1-2",
                                    "body_25b"), rig)
    config = override(ProcessConfig(), {"track.mode": "ukf"})
    one = reconstruct(kp, rig, config, fps=60)
    chunked = reconstruct_chunked(kp, rig, config, fps=60, chunk_frames=30)
    assert one.positions.shape[:2] == (100, 2)
    assert_same(one, chunked)
