"""Bundle adjustment, extrinsic initialisation and world frame on generated scenes (no images)."""

import numpy as np
import pytest

from mocap.calibration.boards import Board
from mocap.calibration.bundle import (
    Observations,
    _Layout,
    bundle_adjust,
    intrinsics_to_vector,
    project_observations,
    projection_jacobians,
    rotvec_to_rotmat_fast,
)
from mocap.calibration.render import project_studio, synthetic_studio
from mocap.calibration.rig import RigCalibrationConfig, calibrate_rig_from_detections, select_bundle_frames
from mocap.calibration.world import ref_from_world_floor_board
from mocap.geometry.rotations import rotvec_to_rotmat

BOARD = Board("checkerboard", 9, 6, 0.08, name="synth")


def _angle_deg(Ra, Rb):
    return np.degrees(np.arccos(np.clip((np.trace(Ra.T @ Rb) - 1) / 2, -1, 1)))


def _problem(rng, C=3, F=5):
    obj = BOARD.object_points
    M = C * F * 6
    obs = Observations(rng.integers(0, C, M), rng.integers(0, F, M), rng.integers(0, len(obj), M), np.zeros((M, 2)))
    cam = np.concatenate([rng.normal(0, 0.3, (C, 3)), rng.normal(0, 0.2, (C, 3)) + [0, 0, 3]], 1)
    brd = np.concatenate([rng.normal(0, 0.3, (F, 3)), rng.normal(0, 0.2, (F, 3))], 1)
    intr = np.array([[1000, 990, 640, 360, -0.1, 0.05, 1e-3, -1e-3, 0.01]] * C, float) + rng.normal(0, 1e-3, (C, 9))
    return obs, obj, cam, brd, intr


def test_rodrigues_matches_reference(rng):
    v = np.concatenate([rng.normal(0, 1, (50, 3)), rng.normal(0, 1e-9, (5, 3)), np.zeros((1, 3))])
    np.testing.assert_allclose(rotvec_to_rotmat_fast(v), rotvec_to_rotmat(v), atol=1e-12)


def test_analytic_jacobian_matches_finite_differences(rng):
    obs, obj, cam, brd, intr = _problem(rng)
    lay = _Layout(len(cam), len(brd), fixed_camera=0, intrinsics=True)
    x0 = lay.pack(cam, brd, intr)

    def f(x):
        return project_observations(obs, obj, *lay.unpack(x, cam, intr)).ravel()

    J = lay.jacobian(obs, projection_jacobians(obs, obj, cam, brd, intr)).toarray()
    eps = 1e-6 * np.maximum(1, np.abs(x0))
    Jfd = np.stack([(f(x0 + e) - f(x0 - e)) / (2 * e[i]) for i, e in enumerate(np.diag(eps))], 1)
    np.testing.assert_allclose(J, Jfd, rtol=1e-5, atol=1e-4 * np.abs(Jfd).max())
    # the assembled Jacobian has exactly the declared sparsity
    assert not np.any((J != 0) & (lay.sparsity(obs).toarray() == 0))


def test_bundle_recovers_perturbed_rig_and_prunes_outliers(rng):
    studio = synthetic_studio(BOARD, 4, 16, rng)
    dets = project_studio(BOARD, studio, rng, noise_px=0.05)
    # 1 % gross outliers (30 px) in one camera
    xy = dets["cam02"].xy
    seen = np.argwhere(np.isfinite(xy[..., 0]))
    bad = seen[rng.choice(len(seen), max(3, len(seen) // 100), replace=False)]
    xy[bad[:, 0], bad[:, 1]] += 30.0
    res = calibrate_rig_from_detections(dets, BOARD, RigCalibrationConfig(world_frame="cam01:0" if studio.visible[0, 0] else
                                        f"{studio.rig.names[int(np.argmax(studio.visible[:, 0]))]}:0"))
    assert res, res.messages
    assert res.bundle.rms_px < 0.1  # noise 0.05 px per coordinate
    # every injected outlier is removed, before (per-view fit) or by the bundle's pruning
    assert any("cam02" in m and f"{len(bad)} corner(s)" in m for m in res.messages), res.messages
    assert res.bundle.error_px[res.bundle.inlier].max() < 1.0
    # 4 cameras seeing 7-10 frames each at 0.05 px noise (what rendered images give)
    for cam, true in zip(res.rig, studio.rig):
        assert np.linalg.norm(cam.center - true.center) < 5e-3
        assert _angle_deg(cam.R, true.R) < 0.1
        assert abs(cam.K[0, 0] / true.K[0, 0] - 1) < 3e-3


def test_bundle_rejects_unknown_loss(rng):
    obs, obj, cam, brd, intr = _problem(rng)
    K = np.tile(np.eye(3), (3, 1, 1))
    with pytest.raises(ValueError, match="loss"):
        bundle_adjust(obs, obj, K, np.zeros((3, 5)), cam[:, :3], cam[:, 3:], brd[:, :3], brd[:, 3:], loss="l7")


def test_intrinsics_vector_layout():
    K = np.array([[[1000.0, 0, 640], [0, 990, 360], [0, 0, 1]]])
    v = intrinsics_to_vector(K, np.arange(5.0)[None])
    np.testing.assert_array_equal(v, [[1000, 990, 640, 360, 0, 1, 2, 3, 4]])


def test_select_bundle_frames_keeps_every_camera():
    views = np.zeros((3, 200), bool)
    views[:2, :150] = True  # cameras 0, 1 share many frames
    views[2, 150:] = True  # camera 2 alone in the rest
    views[1, 150:160] = True
    chosen = select_bundle_frames(views, 30, np.arange(200))
    assert len(chosen) == 30
    assert views[2, chosen].sum() >= 9  # camera 2 still gets its turn
    assert np.all(np.diff(chosen) > 0)


def test_floor_board_world_has_cameras_above(rng):
    # board at 1 m along ref z, tilted; cameras on the printed side (board -z)
    R = rotvec_to_rotmat(np.array([0.3, -0.2, 0.1]))
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, [0.1, 0.2, 1.0]
    centers = T[:3, 3] - (R[:, 2] * 2.0) + rng.normal(0, 0.3, (4, 3))
    ref_from_world = ref_from_world_floor_board(T, centers)
    world_from_ref = np.linalg.inv(ref_from_world)
    heights = (centers @ world_from_ref[:3, :3].T + world_from_ref[:3, 3])[:, 2]
    assert np.all(heights > 1.0)
    np.testing.assert_allclose(ref_from_world[:3, 3], T[:3, 3])  # origin at the board's first corner
    np.testing.assert_allclose(ref_from_world[:3, 0], R[:, 0], atol=1e-12)  # X along the board's rows
