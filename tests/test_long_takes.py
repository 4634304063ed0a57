"""Long takes: reconstruction over chunks of frames gives the one-pass result (joints within
1e-6 m, same identities), and the chunked Kalman/RTS smoother is the one-pass smoother.
Memory (peak RSS flat from 1 to 10 minutes) is measured by `mocap bench long_take`, not here."""

import numpy as np
import pytest

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


def assert_same_tracks(a, b):
    assert a.joint_names == b.joint_names and list(a.track_ids) == list(b.track_ids)
    assert a.positions.shape == b.positions.shape
    np.testing.assert_array_equal(np.isfinite(a.positions), np.isfinite(b.positions))
    np.testing.assert_allclose(a.positions, b.positions, atol=1e-6, rtol=0, equal_nan=True)
    # confidence: the mean detector confidence over the views used; a view below min_confidence
    # (weight 0, so the joint does not move) can fall either side of the inlier test by rounding
    same = np.isclose(a.confidence, b.confidence, atol=1e-9)
    assert same.mean() >= 0.999, np.argwhere(~same)[:5]
    np.testing.assert_array_equal(a.frame_indices, b.frame_indices)


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
    """Gaps longer and shorter than max_gap_s, an outlier the gate rejects, chunks of 1..n frames."""
    T, N = 130, 5
    z = np.cumsum(rng.normal(0, 0.01, (T, N, 3)), axis=0)
    z[20:23, 0] = np.nan          # short gap: filled
    z[40:90, 1] = np.nan          # long gap: stays NaN
    z[:15, 2] = np.nan            # starts late
    z[60, 3] += 2.0               # outlier: gated out
    cov = np.broadcast_to(np.eye(3) * 1e-4, (T, N, 3, 3)).copy()
    cov[::7] = np.nan             # no covariance on some frames
    config = SmoothConfig()
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
    with pytest.raises(ValueError, match="track.mode 'ukf' has no chunked form"):
        reconstruct_chunked(scene.keypoints, scene.rig, override(ProcessConfig(), {"track.mode": "ukf"}), chunk_frames=50)
    with pytest.raises(ValueError, match="chunk_frames: expected >= 1"):
        reconstruct_chunked(scene.keypoints, scene.rig, chunk_frames=0)
