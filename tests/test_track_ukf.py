"""The UKF tracker on the synthetic studio (mocap.track.filter_people, mocap.track.affinity,
``reconstruct`` with ``track.mode``): accuracy against ground truth, one camera alone, bad input,
identities through crossings. `mocap bench track` prints the same figures on 1000-frame takes."""

import dataclasses

import numpy as np
import pytest

from mocap.bench.track import crossing_scene, identity_switches, owners, seed_list, seen_by_one
from mocap.config import ProcessConfig, override
from mocap.pipeline import reconstruct
from mocap.synthetic import SyntheticConfig, make_scene
from mocap.track.filter_people import TrackConfig, fixed_lag_smooth
from mocap.track.ukf import constant_velocity, rts_smooth


def _run(keypoints, rig, **settings):
    return reconstruct(keypoints, rig, override(ProcessConfig(), settings))


@pytest.fixture(scope="module")
def one_person():
    return make_scene(SyntheticConfig(num_frames=150, num_people=1, num_cameras=4, seed=1))


def _accuracy(tracks, scene):
    J = len(scene.joint_names)
    est, gt = tracks.positions[:, 0, :J], scene.gt_positions[:, 0]
    acc = lambda x: (x[2:] - 2 * x[1:-1] + x[:-2]) * scene.fps ** 2  # noqa: E731
    return np.linalg.norm(est - gt, axis=-1), np.linalg.norm(acc(est) - acc(gt), axis=-1)


def test_ukf_beats_per_frame_triangulation_on_the_synthetic_studio(one_person):
    """Every detector error on. Measured (seed 1): MPJPE 6.0 vs 8.8 mm (0.68x), jitter 5.5 vs
    19.9 m/s² (0.28x) on the joints the per-frame triangulation has; the issue asks <= 0.8x, 0.5x."""
    err_off, acc_off = _accuracy(_run(one_person.keypoints, one_person.rig, **{"track.mode": "off"}), one_person)
    err, acc = _accuracy(_run(one_person.keypoints, one_person.rig, **{"track.mode": "ukf"}), one_person)
    base = np.isfinite(err_off)
    both = base[2:] & base[1:-1] & base[:-2]
    assert np.isfinite(err[base]).all()
    assert err[base].mean() <= 0.8 * err_off[base].mean(), (err[base].mean(), err_off[base].mean())
    assert acc[both].mean() <= 0.5 * acc_off[both].mean(), (acc[both].mean(), acc_off[both].mean())


def _one_camera_error(scene, joint, camera, first=60, length=15, fit=True):
    """The worst error (m) of ``joint`` hidden from every camera but ``camera`` for ``length``
    frames, and how many of those frames are reported."""
    j = scene.joint_names.index(joint)
    tracks = _run(seen_by_one(scene.keypoints, joint, camera, first, length), scene.rig,
                  **{"track.mode": "ukf", "track.max_untriangulated_s": 0.5, "track.one_view_fit": fit})
    err = np.linalg.norm(tracks.positions[first:first + length, 0, j]
                         - scene.gt_positions[first:first + length, 0, j], axis=-1)
    return (np.nanmax(err) if np.isfinite(err).any() else np.inf), int(np.isfinite(err).sum())


@pytest.mark.parametrize("camera", [0, 1, 2, 3])
def test_a_joint_seen_by_one_camera_for_half_a_second_stays_within_5_cm(one_person, camera):
    """The right knee hidden from all cameras but one for 15 frames: the per-frame triangulation
    loses it, the UKF keeps it on that camera's ray at its bone's length from the hip and from
    the triangulated ankle. Camera 3's ray grazes the thigh's sphere about the hip: with the hip
    alone the filter took the sphere's far side (253 mm); the ankle's bone settles it (24 mm)."""
    worst, reported = _one_camera_error(one_person, "right_knee", camera)
    assert reported >= 10 and worst < 0.05, (worst, reported)


def test_one_camera_knee_within_5_cm_on_most_seeds():
    """The same over seeds 2-4 (12 runs, 100 frames): 7 within 5 cm with the hip's bone alone, 9
    with the side chosen and the ankle's bone (measured; the other 3 err 56-99 mm)."""
    within = 0
    for seed in (2, 3, 4):
        scene = make_scene(SyntheticConfig(num_frames=100, num_people=1, num_cameras=4, seed=seed))
        for camera in range(4):
            worst, reported = _one_camera_error(scene, "right_knee", camera)
            within += reported >= 10 and worst < 0.05
    assert within >= 9, within


def test_one_view_gap_fit_keeps_one_camera_wrists_within_5_cm():
    """The left wrist hidden from all cameras but one for 15 frames, seeds 1-4 x 4 cameras: with
    the gap fit (:mod:`mocap.track.one_view`, on by default) 15 of 16 runs stay within 5 cm
    (measured), the filter and smoother alone 12 (one at 175 mm)."""
    within = {True: 0, False: 0}
    for seed in (1, 2, 3, 4):
        scene = make_scene(SyntheticConfig(num_frames=100, num_people=1, num_cameras=4, seed=seed))
        for camera in range(4):
            for fit in (True, False):
                worst, reported = _one_camera_error(scene, "left_wrist", camera, fit=fit)
                within[fit] += reported >= 10 and worst < 0.05
    assert within[True] >= 14 and within[True] > within[False], within


@pytest.mark.parametrize("seed, joint, camera, before_mm", [(45, "right_knee", 1, 181), (31, "right_knee", 2, 136)])
def test_a_misleading_viterbi_start_does_not_undo_a_right_smoother(seed, joint, camera, before_mm):
    """One camera for 0.5 s where the smoother kept the knee within 3 cm but the rays missed the
    thigh's sphere, so the Viterbi start lay 20-40 cm off and Gauss-Newton stayed in a wrong
    minimum (``before_mm``, measured with that start alone); from the smoothed start it ends at a
    lower cost, within 5 cm."""
    scene = make_scene(SyntheticConfig(num_frames=150, num_people=1, num_cameras=4, seed=seed))
    worst, reported = _one_camera_error(scene, joint, camera)
    assert reported >= 10 and worst < 0.05, (worst, reported, before_mm)


def test_bench_one_camera_seeds_parse_ranges_and_name_bad_input():
    import argparse

    assert seed_list("9-16") == list(range(9, 17))
    assert seed_list("1-3,9, 11") == [1, 2, 3, 9, 11]
    for bad in ("x", "1-y", ","):
        with pytest.raises(argparse.ArgumentTypeError, match="seeds: expected"):
            seed_list(bad)


def test_the_smoother_does_not_link_across_a_reflected_one_camera_joint():
    """Where the filter moves a one-camera joint to the other place its ray meets the bone's
    sphere (a reflection, no Gaussian step from the frame before), the RTS pass leaves the frame
    before as the forward pass had it instead of pulling it toward the reflected state: linking
    across the reflection put the right knee 98 mm off on seed 16, camera 1 (150 frames), now 24; one
    camera for 0.5 s over 8 x 4 x 4 runs: 108 -> 109 within 5 cm, 113 -> 114 on seeds 9-16."""
    from mocap.track.filter_people import compiled_forward, people_evidence, smoothed, unswapped
    from mocap.track.people import people_views
    from mocap.triangulation.people import triangulate_people

    scene = make_scene(SyntheticConfig(num_frames=100, num_people=1, num_cameras=4, seed=16))
    config, j = ProcessConfig(), scene.joint_names.index("right_knee")
    data = scene.keypoints.data.copy()
    data[60:75, [0, 2, 3], :, j] = np.nan
    kp, rig = dataclasses.replace(scene.keypoints, data=data), scene.rig
    person = people_views(kp, rig, scene.fps, config.match, config.triangulate, config.link)
    tri = triangulate_people(rig, person, kp.joint_names, config.triangulate, temporal=True)
    person = unswapped(rig, person, tri.points, kp.joint_names)
    ev = people_evidence(person, tri.points, config.track, 0.2, tri.inliers, kp.joint_names)
    F, Q = constant_velocity(1 / scene.fps, config.track.acceleration_sigma)
    Qn = np.ascontiguousarray(np.broadcast_to(Q, (ev.start.shape[1], 6, 6)))
    fwd = compiled_forward(rig, ev, len(kp.joint_names), F, Qn, config.track)
    flips = np.flatnonzero((fwd.views[1:, j] == 1) & ~fwd.linked[1:, j] & np.isfinite(fwd.xs[:-1, j]).all(-1)) + 1
    assert len(flips) and (flips >= 60).all() and (flips < 75).all(), flips  # only in the one-camera frames
    positions, _ = smoothed(fwd, F, Qn, -1)
    np.testing.assert_allclose(positions[flips - 1, j], fwd.xs[flips - 1, j, :3], atol=1e-12)
    err = np.linalg.norm(positions[60:75, j] - scene.gt_positions[60:75, 0, j], axis=-1)
    assert err.max() < 0.05, err.max()


@pytest.fixture(scope="module")
def crossing():
    return crossing_scene(3, 4, 100, seed=100)


@pytest.mark.parametrize("mode, identities", [("ukf", "centres"), ("online", "centres"), ("ukf", "images")])
def test_three_performers_crossing_keep_their_identities(crossing, mode, identities):
    """Every pair of paths crosses, pelvises 0.53 m apart at the closest (shoulders brushing)."""
    tracks = _run(crossing.keypoints, crossing.rig, **{"track.mode": mode, "track.identities": identities})
    own = owners(tracks.positions, crossing)
    assert tracks.positions.shape[1] == 3
    assert identity_switches(own) == 0
    assert (own >= 0).mean() > 0.97


def _spoiled(scene, rng):
    """Every camera out at frame 40; performer 0 teleported 3 m in camera 0 at frames 50-52;
    10 % of confidences NaN; 30 spurious people in camera 1 at frame 60."""
    data = scene.keypoints.data.copy()
    data[40] = np.nan
    who = scene.gt_person_index
    shifted = scene.gt_positions[50:53, 0] + [3.0, 0.0, 0.0]
    from mocap.geometry import project

    for t in range(50, 53):
        slot = np.flatnonzero(who[t, 0] == 0)
        if len(slot):
            data[t, 0, slot[0], :, :2] = project(scene.rig.cameras[0], shifted[t - 50])
    data[..., 2][rng.random(data.shape[:-1]) < 0.1] = np.nan
    T, C, P, J, _ = data.shape
    extra = np.full((T, C, 30, J, 3), np.nan)
    base = np.nan_to_num(data[60, 1, np.isfinite(data[60, 1, :, :, 0]).any(-1)][0], nan=0.0)
    extra[60, 1] = base + np.concatenate([rng.uniform(-900, 900, (30, 1, 2)), np.zeros((30, 1, 1))], -1)
    return dataclasses.replace(scene.keypoints, data=np.concatenate([data, extra], axis=2))


def test_bad_input_makes_no_phantom_and_no_switch(crossing, rng):
    tracks = _run(_spoiled(crossing, rng), crossing.rig, **{"track.mode": "ukf"})
    own = owners(tracks.positions, crossing)
    assert tracks.positions.shape[1] == 3  # no phantom track
    assert identity_switches(own) == 0
    assert np.isfinite(tracks.positions[40, :, :5]).all()  # the lost frame is filled


def test_fixed_lag_smoother_runs_between_the_filter_and_the_full_smoother(rng):
    """Lag 0 is the filter itself; a lag as long as the take is the RTS smoother."""
    T, N = 30, 3
    F, Q = constant_velocity(1 / 30, 10.0)
    xs = rng.normal(size=(T, N, 6))
    A = rng.normal(0, 0.1, (T, N, 6, 6))
    Ps = A @ np.swapaxes(A, -1, -2) + np.eye(6) * 1e-3
    linked = np.ones((T, N), bool)
    linked[0] = False
    np.testing.assert_array_equal(fixed_lag_smooth(xs, Ps, F, Q, linked, 0)[0], xs)
    full = rts_smooth(xs, Ps, F, Q, linked)[0]
    np.testing.assert_allclose(fixed_lag_smooth(xs, Ps, F, Q, linked, T)[0], full, atol=1e-12)
    lagged = fixed_lag_smooth(xs, Ps, F, Q, linked, 5)[0]
    assert not np.allclose(lagged[:-5], full[:-5]) and not np.allclose(lagged, xs)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="mode"):
        TrackConfig(mode="fancy")
    with pytest.raises(ValueError, match="gate"):
        TrackConfig(gate=0)


def test_compiled_forward_pass_equals_the_numpy_one(crossing):
    """The forward pass the tracker runs (compiled, people on parallel threads) = the batched
    numpy reference (mocap.track.filter_people.forward_filter) on three crossing performers:
    the same joints alive, restarted and updated by the same cameras, states within 1e-9."""
    from mocap.track.filter_people import (compiled_forward, forward_filter, people_evidence, rig_centres, rig_measure,
                                           unswapped)
    from mocap.track.people import people_views
    from mocap.triangulation.people import triangulate_people

    config = ProcessConfig()
    kp, rig = crossing.keypoints, crossing.rig
    person = people_views(kp, rig, crossing.fps, config.match, config.triangulate, config.link)[:40]
    tri = triangulate_people(rig, person, kp.joint_names, config.triangulate, temporal=True)
    person = unswapped(rig, person, tri.points, kp.joint_names)
    ev = people_evidence(person, tri.points, config.track, 0.2, tri.inliers, kp.joint_names)
    F, Q = constant_velocity(1 / crossing.fps, config.track.acceleration_sigma)
    ref = forward_filter(rig_measure(rig), ev, F, Q, config.track, rig_centres(rig))
    N, J = ev.start.shape[1], person.shape[3]
    ours = compiled_forward(rig, ev, J, F, np.ascontiguousarray(np.broadcast_to(Q, (N, 6, 6))), config.track)
    assert (ref.views == 1).any() and (~ref.linked & np.isfinite(ref.xs).all(-1)).any()  # one-view and restarts
    np.testing.assert_array_equal(ours.views, ref.views)
    np.testing.assert_array_equal(ours.linked, ref.linked)
    np.testing.assert_array_equal(np.isfinite(ours.xs), np.isfinite(ref.xs))
    np.testing.assert_allclose(ours.xs, ref.xs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.Ps, ref.Ps, rtol=0, atol=1e-9)


def test_the_reference_filter_with_the_same_model_reports_what_the_tracker_reports(crossing):
    """filter_people through the numpy reference (``motion=``, what ``mocap bench track --motion``
    measures other motion models with) with the tracker's own constant-velocity model = the
    compiled tracker: the same joints reported, positions within 1e-9 m; a constant-acceleration
    model reports the same people, within 5 cm of it on the joints both report (median)."""
    from mocap.track.filter_people import filter_people
    from mocap.track.people import people_views
    from mocap.track.ukf import constant_acceleration
    from mocap.triangulation.people import triangulate_people

    config = ProcessConfig()
    kp, rig, fps = crossing.keypoints, crossing.rig, crossing.fps
    person = people_views(kp, rig, fps, config.match, config.triangulate, config.link)[:40]
    tri = triangulate_people(rig, person, kp.joint_names, config.triangulate, temporal=True)
    track = dataclasses.replace(config.track, mode="ukf")
    run = lambda motion=None: filter_people(rig, person, tri.points, fps, track, 0.2, tri.inliers,  # noqa: E731
                                            kp.joint_names, motion=motion)
    ours, views = run()
    ref, ref_views = run(constant_velocity(1 / fps, track.acceleration_sigma))
    np.testing.assert_array_equal(np.isfinite(ref), np.isfinite(ours))
    np.testing.assert_array_equal(ref_views, views)
    np.testing.assert_allclose(ref, ours, rtol=0, atol=1e-9)
    ca, _ = run(constant_acceleration(1 / fps, 30.0))
    both = np.isfinite(ca).all(-1) & np.isfinite(ours).all(-1)
    assert both.mean() > 0.5 * np.isfinite(ours).all(-1).mean()
    assert 0 < np.median(np.linalg.norm(ca - ours, axis=-1)[both]) < 0.05


def test_a_one_frame_triangulation_outlier_is_not_followed(one_person):
    """The per-frame triangulation puts the left wrist 40 cm off for one frame (a wrong joint,
    as on the real two-person take): the filter holds it (within 3 cm of the truth there); the
    old setting, restart at the first disagreement, follows it (negative control)."""
    from mocap.track.filter_people import filter_people
    from mocap.track.people import people_views
    from mocap.triangulation.people import triangulate_people

    scene, config = one_person, ProcessConfig()
    kp = scene.keypoints
    person = people_views(kp, scene.rig, scene.fps, config.match, config.triangulate, config.link)
    tri = triangulate_people(scene.rig, person, kp.joint_names, config.triangulate, temporal=True)
    j, t = kp.joint_names.index("left_wrist"), 70
    points = tri.points.copy()
    points[t, 0, j] += [0.4, 0.0, 0.0]
    err = {}
    for frames in (TrackConfig().restart_frames, 1):
        track = dataclasses.replace(config.track, mode="ukf", restart_frames=frames)
        out, _ = filter_people(scene.rig, person, points, scene.fps, track, inliers=tri.inliers,
                               joint_names=kp.joint_names)
        err[frames] = np.linalg.norm(out[t, 0, j] - scene.gt_positions[t, 0, j])
    assert err[TrackConfig().restart_frames] < 0.03 and err[1] > 0.2, err


def test_online_bone_lengths_come_from_the_past_only(rng):
    """``online`` holds joints at the running median of their bones over the last BONE_WINDOW
    frames (what a live run knows): a change in a later frame leaves earlier lengths as they
    were; offline every frame has the take's median."""
    from mocap.track.filter_people import BONE_WINDOW, bone_lengths

    T = BONE_WINDOW + 40
    names = ("left_shoulder", "left_elbow", "left_wrist")
    points = np.zeros((T, 1, 3, 3))
    points[:, 0, 1, 0] = 0.30 + rng.normal(0, 0.01, T)  # elbow 30 cm from the shoulder
    points[:, 0, 2, 0] = points[:, 0, 1, 0] + 0.25  # wrist 25 cm from the elbow
    parent, live = bone_lengths(points, names, causal=True)
    assert parent.tolist() == [-1, 0, 1] and np.isnan(live[:, 0, 0]).all()
    for t in (0, 7, BONE_WINDOW + 20):
        np.testing.assert_allclose(live[t, 0, 1], np.median(points[max(0, t - BONE_WINDOW + 1):t + 1, 0, 1, 0]))
    later = points.copy()
    later[100:, 0, 1, 0] += 0.2
    np.testing.assert_array_equal(bone_lengths(later, names, causal=True)[1][:100], live[:100])
    _, whole = bone_lengths(points, names)
    np.testing.assert_allclose(whole[:, 0, 1], np.median(points[:, 0, 1, 0]))


def test_a_view_with_left_and_right_exchanged_is_relabelled_in_the_update(one_person):
    """Camera 0's left/right labels exchanged for 6 frames (the synthetic detector's whole-person
    swap) after the triangulation's own relabelling: the update scores both labellings of that
    view and keeps the likelier, so the filter runs as on the unswapped evidence (the same states
    to rounding) where without the hypothesis it differs; the numpy reference does the same."""
    from mocap.skeleton.joints import left_right_permutation
    from mocap.track.filter_people import (compiled_forward, forward_filter, people_evidence, rig_centres, rig_measure,
                                           unswapped)
    from mocap.track.people import people_views
    from mocap.triangulation.people import triangulate_people

    scene, config = one_person, ProcessConfig()
    kp, rig = scene.keypoints, scene.rig
    person = people_views(kp, rig, scene.fps, config.match, config.triangulate, config.link)[:90]
    tri = triangulate_people(rig, person, kp.joint_names, config.triangulate, temporal=True)
    person = unswapped(rig, person, tri.points, kp.joint_names)
    clean = people_evidence(person, tri.points, config.track, 0.2, tri.inliers, kp.joint_names)
    mirror = left_right_permutation(kp.joint_names)
    arrays = {}
    for name in ("z", "var", "observed"):
        a = getattr(clean, name).copy()
        a[70:76, :, 0] = a[70:76][:, mirror, 0]
        arrays[name] = a
    swapped = dataclasses.replace(clean, **arrays)
    F, Q = constant_velocity(1 / scene.fps, config.track.acceleration_sigma)
    N, J = clean.start.shape[1], len(mirror)
    Qn = np.ascontiguousarray(np.broadcast_to(Q, (N, 6, 6)))
    run = lambda ev: compiled_forward(rig, ev, J, F, Qn, config.track).xs  # noqa: E731
    np.testing.assert_allclose(run(swapped), run(clean), rtol=0, atol=1e-9)
    blind = run(dataclasses.replace(swapped, mirror=None)) - run(dataclasses.replace(clean, mirror=None))
    assert np.nanmax(np.abs(blind[70:76, :, :3])) > 0.005
    ref = forward_filter(rig_measure(rig), swapped, F, Q, config.track, rig_centres(rig))
    np.testing.assert_allclose(ref.xs, run(swapped), rtol=0, atol=1e-9)


def test_a_swapped_leg_with_one_knee_missing_is_relabelled_whole_as_the_triangulation_does(one_person):
    """Camera 1 sees the performer's legs exchanged in frame 5 and only the right knee, labelled
    left (its right_knee column empty): the triangulation relabels the whole leg and triangulates
    the right knee with that view, so the filter must see the same labels. Before, the pair was
    judged alone, and a pair with one side missing was never relabelled (the filter then had one
    camera fewer than the triangulation on that knee: two of the failing ``mocap bench track
    --one-camera-only`` runs on seeds 1-8, seed 4 camera 2 and seed 6 camera 1, failed because of
    it). A lone exchanged pair whose limb fits as labelled is left."""
    from mocap.track.filter_people import rig_measure, unswapped

    scene = one_person
    names = list(scene.joint_names)
    points = scene.gt_positions[:10, :1]  # (T, 1, J, 3)
    xy = np.moveaxis(rig_measure(scene.rig)(points), 2, 3)  # (T, 1, C, J, 2)
    clean = np.concatenate([xy, np.ones(xy.shape[:-1] + (1,))], axis=-1)
    leg = [n for n in names if n.startswith("left_") and n[5:] in ("hip", "knee", "ankle", "heel", "big_toe", "small_toe")]
    L = [names.index(n) for n in leg]
    R = [names.index("right_" + n[5:]) for n in leg]
    person = clean.copy()
    person[5, 0, 1, L + R] = clean[5, 0, 1, R + L]  # the whole leg exchanged in camera 1
    person[5, 0, 1, names.index("right_knee")] = np.nan  # the left knee not seen: only the right one, called left
    elbows = [names.index("left_elbow"), names.index("right_elbow")]
    person[7, 0, 2, elbows] = clean[7, 0, 2, elbows[::-1]]  # one pair of an arm that otherwise fits
    out = unswapped(scene.rig, person, points, names)
    np.testing.assert_allclose(out[5, 0, 1, names.index("right_knee")], clean[5, 0, 1, names.index("right_knee")])
    assert np.isnan(out[5, 0, 1, names.index("left_knee")]).all()
    np.testing.assert_allclose(out[5, 0, 1, L + R], person[5, 0, 1, R + L])
    np.testing.assert_array_equal(out[7], person[7])  # a lone pair follows its limb: left as labelled
    np.testing.assert_array_equal(np.delete(out, [5], axis=0), np.delete(person, [5], axis=0))


def test_the_crossings_own_one_camera_stretches_are_counted_as_written_out(crossing):
    """``mocap bench track`` counts the runs of frames in which one camera's detection of a
    performer has a joint, between frames two or more have it: :func:`cameras_seeing` and
    :func:`one_camera_stretches` against the same count written out detection by detection."""
    from mocap.bench.track import cameras_seeing, one_camera_stretches

    data, who = crossing.keypoints.data, crossing.gt_person_index
    T, C, D, J = data.shape[:4]
    G = crossing.gt_positions.shape[1]
    plain = np.zeros((T, G, J), int)
    for t, c, d in np.ndindex(T, C, D):
        if who[t, c, d] >= 0:
            for j in range(J):
                plain[t, who[t, c, d], j] += bool(np.isfinite(data[t, c, d, j, :2]).all() and data[t, c, d, j, 2] > 0)
    np.testing.assert_array_equal(cameras_seeing(crossing), plain)
    err = np.abs(np.random.default_rng(0).normal(scale=0.03, size=(T, G, J)))
    err[::7] = np.nan
    runs = []
    for g, j in np.ndindex(G, J):
        t = 1
        while t < T:
            if plain[t, g, j] == 1 and plain[t - 1, g, j] >= 2:
                b = t
                while b < T and plain[b, g, j] == 1:
                    b += 1
                if b < T and plain[b, g, j] >= 2:
                    runs.append(err[t:b, g, j])
                t = b
            else:
                t += 1
    got = one_camera_stretches(err, crossing)
    assert got["one_camera_runs"] == len(runs) > 0
    assert got["one_camera_reported"] == sum(np.isfinite(e).all() for e in runs)
    assert got["one_camera_within_5cm"] == sum(np.isfinite(e).all() and e.max() < 0.05 for e in runs)
    assert got["one_camera_longest"] == max(len(e) for e in runs)
