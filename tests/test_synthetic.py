"""The synthetic studio: rig, CMU people, detector error model, ground-truth bookkeeping."""

import time

import numpy as np
import pytest
from scipy.stats import spearmanr

from mocap.errors import MocapError
from mocap.geometry import project
from mocap.skeleton.joints import CANONICAL_JOINTS, format_joint_names
from mocap.synthetic import (
    Placement,
    SyntheticConfig,
    load_cmu_clip,
    make_scene,
    mirror_index,
    occluded_by_others,
    resample_clip,
    ring_rig,
)
from mocap.synthetic.rig import look_at, valid_normalized_radius

BASE = SyntheticConfig(num_frames=300, num_cameras=4, num_people=2, seed=3)
# Two walkers whose paths cross near the volume centre, at right angles, 0.3 m apart.
CROSSING = (Placement("131_01", 0.0, 0.0, 0.0, 1.0), Placement("131_01", 0.3, 0.0, np.pi / 2, 1.0))


def _binomial_ok(k, n, rate, z=4.0):
    """Observed count k of n within z standard deviations of a Binomial(n, rate)."""
    return abs(k - n * rate) <= z * np.sqrt(n * rate * (1 - rate)) + 1


def _gt_order(scene, values):
    """Per-detection values ``(T, C, P', ...)`` put back in ground-truth order ``(T, C, P, ...)``
    (NaN / False where the person has no detection)."""
    T, C, _ = scene.gt_person_index.shape
    P = scene.gt_positions.shape[1]
    fill = False if values.dtype == bool else np.nan
    out = np.full((T, C, P) + values.shape[3:], fill, dtype=values.dtype)
    t, c, k = np.nonzero(scene.gt_person_index >= 0)
    out[t, c, scene.gt_person_index[t, c, k]] = values[t, c, k]
    return out


# ------------------------------------------------------------------ rig


def test_ring_rig_looks_at_centre():
    rig = ring_rig(8, radius=5.0, height=2.5, target=(0, 0, 1), seed=1)
    assert len(rig) == 8 and rig.names[0] == "cam01"
    np.testing.assert_allclose(np.linalg.norm(rig.centers[:, :2], axis=1), 5.0, atol=1e-9)
    for cam in rig:
        u, v = project(cam, np.array([0.0, 0.0, 1.0]))
        W, H = cam.size
        assert abs(u - W / 2) < 0.15 * W and abs(v - H / 2) < 0.15 * H
        assert 900 <= cam.K[0, 0] <= 1800 and -0.3 <= cam.dist[0] <= 0.1
        # world up (+Z) points up in the image (-y)
        up = project(cam, np.array([0.0, 0.0, 1.5]))[1]
        assert up < v
        # the lens model is monotonic beyond the image corner
        corner = np.hypot(W / 2, H / 2) / cam.K[0, 0]
        assert valid_normalized_radius(cam.dist) > corner


def test_ring_rig_deterministic():
    a, b, c = ring_rig(5, seed=7), ring_rig(5, seed=7), ring_rig(5, seed=8)
    assert all(np.array_equal(x.K, y.K) and np.array_equal(x.R, y.R) for x, y in zip(a, b))
    assert not np.array_equal(a[0].K, c[0].K)


def test_look_at_is_opencv():
    R = look_at(np.array([0.0, -4.0, 1.0]), np.array([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(R, [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)


# ------------------------------------------------------------------ people


def test_resample_copies_source_frames_exactly():
    pos, fps = load_cmu_clip("131_01")
    assert fps == 120.0
    out = resample_clip(pos, fps, 30.0, 50, start=0.5)
    np.testing.assert_array_equal(out, pos[60:260:4])


def test_a_clip_named_with_its_folder_loads_from_that_folder():
    """``cmu_more/05_06`` is ``motion/cmu_more/05_06.bvh`` (MotionBuilder joint names): a dancer of
    human proportions; a name without a folder that is not in ``motion/cmu`` is a clear error."""
    pos, fps = load_cmu_clip("cmu_more/05_06")
    assert fps == 120.0 and pos.shape[1] == len(CANONICAL_JOINTS)
    names = list(CANONICAL_JOINTS)
    thigh = np.linalg.norm(pos[:, names.index("left_hip")] - pos[:, names.index("left_knee")], axis=-1)
    assert 0.3 < np.median(thigh) < 0.55
    with pytest.raises(MocapError, match="CMU clip '05_06' not found"):
        load_cmu_clip("05_06")


def test_resample_ping_pong_is_continuous():
    pos, fps = load_cmu_clip("131_03")
    n = pos.shape[0]
    out = resample_clip(pos, fps, 120.0, 3 * n, start=0.0)
    np.testing.assert_array_equal(out[n - 1], pos[-1])
    np.testing.assert_array_equal(out[n], pos[-2])
    step = np.linalg.norm(np.diff(out, axis=0), axis=-1).max()
    assert step < 0.2  # metres per 1/120 s: no jumps


def test_gt_people_rigid_and_placed():
    scene = make_scene(BASE.replace(keypoint_format="canonical", placements=CROSSING).without_errors())
    gt, names = scene.gt_positions, scene.joint_names
    assert gt.shape == (300, 2, len(CANONICAL_JOINTS), 3)
    thigh = np.linalg.norm(gt[:, :, names.index("left_hip")] - gt[:, :, names.index("left_knee")], axis=-1)
    assert thigh.std(axis=0).max() < 1e-9
    pelvis = gt[:, :, names.index("pelvis"), :2].mean(axis=0)
    np.testing.assert_allclose(pelvis, [[0.0, 0.0], [0.3, 0.0]], atol=1e-9)
    assert 0.0 < np.median(gt[..., 2].min(axis=-1)) < 0.06  # feet on the floor


# ------------------------------------------------------------------ exact projections


def test_no_errors_gives_exact_projections():
    scene = make_scene(BASE.without_errors().replace(shuffle=True))
    kp = scene.keypoints
    T, C, Pd, J, _ = kp.shape
    assert (T, C, J) == (300, 4, 25) and Pd == 2
    assert kp.joint_names == format_joint_names("body_25b") and kp.camera_names == tuple(scene.rig.names)
    idx = scene.gt_person_index
    assert np.all(np.sort(idx, axis=2) == np.arange(2))  # every person once per view
    for c, cam in enumerate(scene.rig):
        expected = project(cam, scene.gt_positions)                   # (T, P, J, 2)
        got = np.take_along_axis(expected, idx[:, c, :, None, None], axis=1)
        np.testing.assert_allclose(kp.xy[:, c], got, atol=1e-9, rtol=0)
    np.testing.assert_allclose(kp.confidence, BASE.confidence_max)


def test_shuffle_changes_order():
    idx = make_scene(BASE.without_errors().replace(shuffle=True)).gt_person_index
    assert 0.3 < np.mean(idx[..., 0] == 1) < 0.7


def test_custom_rig_is_used():
    rig = ring_rig(3, radius=6.0, focal_range=(1000, 1000), image_size=(1280, 720), distortion=False, seed=5)
    scene = make_scene(BASE.replace(num_frames=20).without_errors(), rig=rig)
    assert scene.rig is rig and scene.keypoints.shape[:2] == (20, 3)


# ------------------------------------------------------------------ error sources


@pytest.fixture(scope="module")
def noisy_scene():
    cfg = BASE.replace(occlusion=False, outlier_rate=0.05, swap_rate=0.05, miss_rate=0.1, spurious_rate=0.1,
                       seed=11)
    return make_scene(cfg)


def test_missed_rate(noisy_scene):
    e = noisy_scene.errors
    assert _binomial_ok(e.missed.sum(), e.person_visible.sum(), 0.1)
    assert e.missed.sum() > 0 and not np.any(e.missed & ~e.person_visible)
    real = noisy_scene.gt_person_index >= 0
    assert real.sum() == (e.person_visible & ~e.missed).sum()


def test_swap_rate(noisy_scene):
    e, real = noisy_scene.errors, noisy_scene.gt_person_index >= 0
    assert _binomial_ok(e.swapped[real].sum(), real.sum(), 0.05)
    assert not np.any(e.swapped & ~real)


def test_spurious_rate(noisy_scene):
    T, C = noisy_scene.keypoints.shape[:2]
    spurious = noisy_scene.gt_person_index == -1
    assert np.array_equal(spurious, noisy_scene.errors.spurious)
    assert spurious.sum(axis=2).max() == 1
    assert _binomial_ok(spurious.sum(), T * C, 0.1)
    assert noisy_scene.keypoints.shape[2] == 3  # two people + room for one fake


def test_outlier_rate(noisy_scene):
    real = noisy_scene.gt_person_index >= 0
    reported = np.isfinite(noisy_scene.keypoints.data[..., 0]) & real[..., None]
    assert _binomial_ok(noisy_scene.errors.outlier[reported].sum(), reported.sum(), 0.05)


def test_swaps_and_outliers_are_what_the_masks_say():
    cfg = BASE.without_errors().replace(swap_rate=0.2, outlier_rate=0.05, shuffle=True, seed=4)
    scene = make_scene(cfg)
    xy = _gt_order(scene, scene.keypoints.xy)                          # (T, C, P, J, 2)
    swapped = _gt_order(scene, scene.errors.swapped)
    outlier = _gt_order(scene, scene.errors.outlier)
    mirror = mirror_index(scene.joint_names)
    expected = np.where(swapped[..., None, None], scene.gt_xy[..., mirror, :], scene.gt_xy)
    clean = ~outlier
    np.testing.assert_allclose(xy[clean], expected[clean], atol=1e-9)
    far = np.linalg.norm(xy[outlier] - expected[outlier], axis=-1)
    assert np.median(far) > 20  # pixels: outliers are gross errors


def test_out_of_frame_is_nan_exactly_outside_image():
    rig = ring_rig(4, radius=2.6, focal_range=(1700, 1800), image_size=(1280, 720), seed=2)
    scene = make_scene(BASE.without_errors().replace(out_of_frame=True, num_frames=120), rig=rig)
    oof = _gt_order(scene, scene.errors.out_of_frame)
    detected = _gt_order(scene, np.ones(scene.gt_person_index.shape, bool))
    assert 0.05 < oof[detected].mean() < 0.95
    xy = _gt_order(scene, scene.keypoints.xy)
    assert np.isnan(xy[oof]).all() and np.isfinite(xy[~oof & detected[..., None]]).all()
    size = rig.sizes[None, :, None, None, :]
    outside = np.any((scene.gt_xy < -0.5) | (scene.gt_xy > size - 0.5) | np.isnan(scene.gt_xy), axis=-1)
    assert np.array_equal(oof[detected], outside[detected])


def test_noise_sigma_and_size_scaling():
    cfg = BASE.without_errors().replace(noise_px=3.0, per_joint_noise=False, seed=5)
    scene = make_scene(cfg)
    err = _gt_order(scene, scene.keypoints.xy) - scene.gt_xy                     # (T, C, P, J, 2)
    sigma = _gt_order(scene, scene.errors.noise_sigma_px)
    z = (err / sigma[..., None]).ravel()
    assert abs(z.std() - 1.0) < 0.02 and abs(z.mean()) < 0.02
    # sigma follows apparent size: big and small halves of the detections by box height.
    v = scene.gt_xy[..., 1]
    height = v.max(axis=-1) - v.min(axis=-1)                                      # (T, C, P)
    rms = np.sqrt(np.mean(err ** 2, axis=(-1, -2)))
    big = height > np.median(height)
    ratio = rms[big].mean() / rms[~big].mean()
    assert ratio == pytest.approx(height[big].mean() / height[~big].mean(), rel=0.1)
    assert 3.0 * 0.8 < np.sqrt(np.mean(err ** 2)) * 500 / height.mean() < 3.0 * 1.25


def test_per_joint_noise_face_more_precise():
    scene = make_scene(BASE.without_errors().replace(noise_px=3.0, seed=6))
    err = np.linalg.norm(_gt_order(scene, scene.keypoints.xy) - scene.gt_xy, axis=-1)
    names = scene.joint_names
    assert err[..., names.index("left_eye")].mean() < 0.5 * err[..., names.index("left_hip")].mean()


def test_confidence_drops_with_error():
    cfg = BASE.replace(outlier_rate=0.0, swap_rate=0.0, miss_rate=0.0, spurious_rate=0.0, seed=8)
    scene = make_scene(cfg)
    err = np.linalg.norm(_gt_order(scene, scene.keypoints.xy) - scene.gt_xy, axis=-1)
    conf = _gt_order(scene, scene.keypoints.confidence)
    ok = np.isfinite(err) & np.isfinite(conf)
    rho = spearmanr(err[ok], conf[ok])[0]
    assert rho < -0.3
    assert np.all((conf[ok] > 0) & (conf[ok] <= 1))


def test_noise_temporal_correlation():
    scene = make_scene(BASE.without_errors().replace(noise_px=3.0, noise_correlation=0.8, seed=9))
    err = (_gt_order(scene, scene.keypoints.xy) - scene.gt_xy) / _gt_order(scene, scene.errors.noise_sigma_px)[..., None]
    lag1 = np.mean(err[1:] * err[:-1]) / np.mean(err ** 2)
    assert lag1 == pytest.approx(0.8, abs=0.05)
    assert np.std(err) == pytest.approx(1.0, abs=0.05)


def test_deterministic_with_seed():
    a, b = make_scene(BASE.replace(num_frames=60)), make_scene(BASE.replace(num_frames=60))
    c = make_scene(BASE.replace(num_frames=60, seed=4))
    assert np.array_equal(a.keypoints.data, b.keypoints.data, equal_nan=True)
    assert np.array_equal(a.gt_person_index, b.gt_person_index)
    assert np.array_equal(a.gt_positions, b.gt_positions)
    assert not np.array_equal(a.gt_positions, c.gt_positions)


# ------------------------------------------------------------------ occlusion


def test_occlusion_geometry_is_depth_ordered():
    pos, _ = load_cmu_clip("131_01")
    body = pos[100] - pos[100, CANONICAL_JOINTS.index("pelvis")] * [1, 1, 0]
    near = body + [0.0, 3.0, 0.0]
    far = body + [0.0, 5.0, 0.0]
    camera = np.array([[0.0, 0.0, 1.0]])
    occ = occluded_by_others(np.stack([near, far])[None], np.stack([near, far])[None], camera)
    names = CANONICAL_JOINTS
    assert not occ[0, 0, 0].any()                       # the nearer person is never hidden
    assert occ[0, 0, 1, names.index("pelvis")] and occ[0, 0, 1, names.index("neck")]
    side = occluded_by_others(np.stack([near, far + [3.0, 0, 0]])[None], np.stack([near, far + [3.0, 0, 0]])[None], camera)
    assert not side.any()                               # side by side: nobody hidden


def test_occlusion_happens_when_people_cross():
    cfg = BASE.without_errors().replace(placements=CROSSING, occlusion=True, occlusion_drop_rate=0.0,
                                        keypoint_format="canonical")
    scene = make_scene(cfg)
    occ = _gt_order(scene, scene.errors.occluded)                     # (T, C, P, J)
    assert 0.005 < occ.mean() < 0.3
    # Whenever one person is wholly nearer a camera than the other, only the farther one is hidden.
    d = np.linalg.norm(scene.gt_positions[:, None] - scene.rig.centers[None, :, None, None], axis=-1)
    a_front = d[:, :, 0].max(axis=-1) < d[:, :, 1].min(axis=-1)       # (T, C)
    b_front = d[:, :, 1].max(axis=-1) < d[:, :, 0].min(axis=-1)
    assert not occ[:, :, 0][a_front].any() and not occ[:, :, 1][b_front].any()
    assert occ[:, :, 1][a_front].any() or occ[:, :, 0][b_front].any()
    # Degraded (not dropped) occluded joints keep a value but with lower confidence.
    conf = _gt_order(scene, scene.keypoints.confidence)
    assert np.nanmean(conf[occ]) < 0.5 * np.nanmean(conf[~occ])


def test_occlusion_drop_rate():
    cfg = BASE.without_errors().replace(placements=CROSSING, occlusion=True, occlusion_drop_rate=0.5)
    e = make_scene(cfg).errors
    assert _binomial_ok(e.occlusion_dropped.sum(), e.occluded.sum(), 0.5)


# ------------------------------------------------------------------ config and speed


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown keys.*'noise'"):
        SyntheticConfig.from_dict({"noise": 1.0})
    with pytest.raises(ValueError, match="outlier_rate: expected a probability"):
        SyntheticConfig(outlier_rate=1.5)
    with pytest.raises(ValueError, match="keypoint_format: unknown value"):
        SyntheticConfig(keypoint_format="body_99")
    cfg = SyntheticConfig.from_dict(BASE.replace(placements=CROSSING).to_dict())
    assert cfg == BASE.replace(placements=CROSSING)


def test_scene_generation_is_fast():
    make_scene(BASE.replace(num_frames=10))  # warm the clip cache
    t0 = time.perf_counter()
    make_scene(BASE)
    assert time.perf_counter() - t0 < 3.0  # 4 cameras, 2 people, 300 frames (≈ 0.2 s idle machine)


def test_a_clip_turning_at_its_start_shows_no_reference_pose():
    """CMU clips open on a T-pose: a scene whose clip turns at its start (ping-pong) showed it for
    one frame, a 0.5-1.3 m jump of the limbs (09_01: 0.87 m between the file's first two frames,
    0.51 m between two frames of this scene before); with it replaced by the first frame of
    motion no joint moves over 0.3 m between frames."""
    from mocap.io.bvh import read_bvh
    from mocap.paths import shared_data_dir
    from mocap.synthetic.cmu import cmu_to_canonical
    from mocap.synthetic.motion import first_motion_frame, load_cmu_clip

    positions, _ = load_cmu_clip("cmu_more/09_01")  # 1.2 s: turns at its start several times in 10 s
    raw, _ = cmu_to_canonical(read_bvh(shared_data_dir() / "motion" / "cmu_more" / "09_01.bvh"))
    assert first_motion_frame(raw) == 1 and np.linalg.norm(raw[1] - raw[0], axis=-1).max() > 0.5
    np.testing.assert_array_equal(positions[1:], raw[1:])  # clip times unchanged
    scene = make_scene(SyntheticConfig(num_frames=300, num_people=1, num_cameras=4, seed=1, clips=("cmu_more/09_01",)))
    steps = np.linalg.norm(np.diff(scene.gt_positions[:, 0], axis=0), axis=-1).max()
    assert steps < 0.3, steps


@pytest.mark.parametrize("fps, start", [(30.0, 0.37), (60.0, 0.0), (25.0, 1.05)])
def test_near_turns_marks_where_the_ping_pong_playback_reverses(fps, start):
    """``near_turns`` marks the frames within 0.1 s of each reversal of :func:`resample_clip`'s
    ping-pong (the fast-motion bench counts errors there apart), and only those: played on a
    ramp (each source frame's own index), the output reverses direction exactly at the marked
    turns."""
    from mocap.synthetic.motion import near_turns

    clip = "cmu_more/09_01"  # 1.2 s: several turns in 300 frames
    positions, src_fps = load_cmu_clip(clip)
    ramp = np.arange(len(positions), dtype=float)[:, None, None]
    shown = resample_clip(ramp, src_fps, fps, 300, start)[:, 0, 0]
    step = np.sign(np.diff(shown))
    turns = np.flatnonzero((step[1:] != step[:-1]) & (step[1:] != 0) & (step[:-1] != 0)) + 1  # frame at a reversal
    assert len(turns) >= 4
    near = near_turns(Placement(clip, 0.0, 0.0, 0.0, start), 300, fps)
    margin = int(np.ceil(0.1 * fps - 1e-9))
    expected = np.zeros(300, bool)
    for k in turns:
        expected[max(0, k - margin):k + margin + 1] = True
    assert near[turns].all()
    assert not (near & ~expected).any()
    assert near.sum() >= 2 * margin * len(turns) - 2 * margin
