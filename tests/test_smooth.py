"""Kalman/RTS smoothing of 3D trajectories (mocap.track.smoothing) and its use in reconstruct."""

import numpy as np
import pytest

from mocap.config import ProcessConfig, override
from mocap.pipeline import reconstruct
from mocap.track.smoothing import SmoothConfig, smooth_trajectories
from mocap.synthetic import SyntheticConfig, make_scene

FPS = 30.0


def _walk(T=120, N=4):
    t = np.arange(T)[:, None] / FPS
    v = np.array([[1.2, -0.4, 0.1], [0.0, 0.8, 0.0], [-1.0, 0.0, 0.3], [0.5, 0.5, -0.2]])[:N]
    return np.array([0.1, 0.2, 1.0]) + t[..., None] * v[None]  # (T, N, 3) constant velocity


def test_noise_free_constant_velocity_is_kept():
    """Only the start moves, by the zero-mean velocity prior of a track's first frame."""
    truth = _walk()
    out, rejected = smooth_trajectories(truth, None, FPS)
    np.testing.assert_allclose(out, truth, atol=1e-3)
    np.testing.assert_allclose(out[10:], truth[10:], atol=1e-6)
    assert not rejected.any()


def test_noise_is_reduced(rng):
    truth = _walk()
    noisy = truth + rng.normal(0, 0.01, truth.shape)
    out, _ = smooth_trajectories(noisy, None, FPS, SmoothConfig(acceleration_sigma=5.0), sigma_m=0.01)
    raw = np.linalg.norm(noisy - truth, axis=-1).mean()
    smoothed = np.linalg.norm(out - truth, axis=-1).mean()
    assert smoothed < 0.5 * raw, (raw, smoothed)


def test_outlier_is_rejected_and_filled(rng):
    truth = _walk()
    noisy = truth + rng.normal(0, 0.005, truth.shape)
    noisy[60, 1] += [0.4, 0.0, 0.0]  # a left/right flip's worth
    out, rejected = smooth_trajectories(noisy, None, FPS, sigma_m=0.005)
    assert rejected[60, 1] and rejected.sum() == 1
    assert np.linalg.norm(out[60, 1] - truth[60, 1]) < 0.02


def test_a_sudden_fast_move_is_followed_and_a_lone_wrong_frame_still_refused(rng):
    """A joint at rest starts to move at 8 m/s (27 cm a frame at 30 fps, a kick): the forward
    prediction has not seen it coming. A forward gate alone (``gate_both_ways=False``, the
    smoother before 60d7cf8) refuses the move's first two frames and the smoother cuts across
    them (12 cm off). The frames after the move's start agree with them, so they are kept. A lone
    frame 40 cm off (a flip) disagrees with both sides and is refused."""
    T = 60
    t = np.arange(T) / FPS
    truth = np.zeros((T, 1, 3))
    truth[:, 0, 0] = np.where(t < 1.0, 0.0, 8.0 * (t - 1.0))
    noisy = truth + rng.normal(0, 0.005, truth.shape)
    noisy[15, 0] += [0.0, 0.4, 0.0]
    out, rejected = smooth_trajectories(noisy, None, FPS, sigma_m=0.005)
    assert rejected[15, 0] and rejected.sum() == 1
    err = np.linalg.norm(out - truth, axis=-1)
    assert err.max() < 0.04, err.max()  # the corner itself is rounded by 2 cm
    forward, refused = smooth_trajectories(noisy, None, FPS, SmoothConfig(gate_both_ways=False), sigma_m=0.005)
    assert refused.sum() > 1 and np.linalg.norm(forward - truth, axis=-1).max() > 0.08


def test_short_gaps_filled_long_gaps_and_edges_stay_nan():
    truth = _walk(T=100, N=1)
    pts = truth.copy()
    pts[:5] = np.nan  # before the first measurement
    pts[20:24] = np.nan  # 4 frames = 0.13 s: filled (max 0.2 s)
    pts[50:70] = np.nan  # 20 frames: stays a gap
    out, _ = smooth_trajectories(pts, None, FPS, SmoothConfig(max_gap_s=0.2))
    assert np.isnan(out[:5]).all() and np.isnan(out[50:70]).all()
    np.testing.assert_allclose(out[20:24], truth[20:24], atol=1e-6)


def test_covariance_weights_measurements(rng):
    """A point measured precisely in y and z but very uncertain in x: x is smoothed hard (the
    noise there is removed), y and z follow the measurements."""
    truth = _walk(N=1)
    noise = rng.normal(0, [0.05, 0.001, 0.001], truth.shape)
    cov = np.broadcast_to(np.diag([0.05 ** 2, 0.001 ** 2, 0.001 ** 2]), truth.shape + (3,)).copy()
    out, _ = smooth_trajectories(truth + noise, cov, FPS, SmoothConfig(acceleration_sigma=5.0))
    err = np.abs(out - truth).mean(axis=(0, 1))
    assert err[0] < 0.4 * np.abs(noise[..., 0]).mean()
    assert err[1] < 2 * np.abs(noise[..., 1]).mean()


def test_reconstruct_smoothing_lowers_error_on_the_synthetic_studio():
    """CMU motion, 4 cameras, detector noise: smoothing on (default) vs off, same detections
    (`mocap bench people` prints the same comparison on larger scenes)."""
    scene = make_scene(SyntheticConfig(num_frames=150, num_people=1, num_cameras=4, seed=3))
    J = len(scene.joint_names)
    err = {}
    for smooth in (False, True):
        tr = reconstruct(scene.keypoints, scene.rig, override(ProcessConfig(), {"smooth.enabled": smooth}))
        err[smooth] = np.nanmean(np.linalg.norm(tr.positions[:, 0, :J] - scene.gt_positions[:, 0], axis=-1))
    assert err[True] < 0.85 * err[False], err


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="fps"):
        smooth_trajectories(np.zeros((3, 1, 3)), None, 0.0)
    with pytest.raises(ValueError, match="covariance"):
        smooth_trajectories(np.zeros((3, 1, 3)), np.zeros((3, 3, 3)), FPS)
    with pytest.raises(ValueError, match="acceleration_sigma"):
        SmoothConfig(acceleration_sigma=0)


def test_chunked_filtering_equals_one_pass(rng, monkeypatch):
    """Long takes are filtered a few points at a time (memory); the result is the same."""
    from mocap.track import smoothing as smooth

    truth = _walk(N=4)
    noisy = truth + rng.normal(0, 0.01, truth.shape)
    noisy[30, 2] += 0.5
    whole = smooth_trajectories(noisy, None, FPS)
    monkeypatch.setattr(smooth, "MEMORY_BUDGET", 120 * 700 * 1.5)  # one point per chunk
    chunked = smooth_trajectories(noisy, None, FPS)
    np.testing.assert_allclose(chunked[0], whole[0], atol=1e-12)
    assert (chunked[1] == whole[1]).all() and whole[1][30, 2]
