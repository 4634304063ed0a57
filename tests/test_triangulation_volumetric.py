"""Volumetric triangulation: training behaviour, the linearised projection, held-out accuracy against
robust, fallbacks to robust, no NaN where robust had a point."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mocap.train.config import VolumetricTrainConfig  # noqa: E402
from mocap.train.data import TRAIN_SEED_BASE, Scenario, scenario_person  # noqa: E402
from mocap.train.volumetric import BATCH_KEYS, batch_loss, fit, training_step, volume_set  # noqa: E402
from mocap.triangulation.dlt import Triangulation  # noqa: E402
from mocap.triangulation.people import TriangulateConfig, triangulate_people  # noqa: E402
from mocap.triangulation.volumetric import (FINE_M, SHIPPED_WEIGHTS, VolumetricNet, cube_coords,  # noqa: E402
                                            joint_views, load_weights)

SCENE = Scenario(cameras=5, noise_px=3.0, outlier_rate=0.1, swap_rate=0.0, frames=8, seed=TRAIN_SEED_BASE + 777,
                 other_clip="01_01")


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return volume_set([SCENE])


@pytest.fixture(scope="module")
def capture():
    scene, person, gt = scenario_person(replace(SCENE, other_clip=None))
    robust = triangulate_people(scene.rig, person, scene.joint_names, TriangulateConfig())
    return scene, person, robust


def _model(seed=0):
    torch.manual_seed(seed)
    return VolumetricNet(8)


def test_a_training_step_reduces_the_loss_on_a_fixed_batch(data):
    batch = {k: data[k][:64] for k in BATCH_KEYS}
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = training_step(model, opt, batch)
    for _ in range(4):
        training_step(model, opt, batch)
    with torch.no_grad():
        after = float(batch_loss(model, batch))
    assert after < 0.9 * first


def test_gradients_reach_every_weight(data):
    model = _model()
    batch_loss(model, data).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_the_same_seed_gives_the_same_weights(data):
    cfg = VolumetricTrainConfig(steps=3, batch=4, width=8, threads=1)
    a, b, c = _model(0), _model(0), _model(1)
    fit(a, data, cfg)
    fit(b, data, cfg)
    fit(c, data, replace(cfg, seed=1))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_shipped_weights_load_small():
    assert SHIPPED_WEIGHTS.stat().st_size < 10 * 2**20
    assert isinstance(load_weights(), VolumetricNet)


def test_the_linearised_projection_matches_the_camera_model_near_the_centre(capture):
    from mocap.geometry.camera import project_rig

    scene, person, robust = capture
    centres = robust.points[:4].reshape(-1, 3)
    ok = np.isfinite(centres).all(-1)
    centres = centres[ok]
    xy = np.zeros((len(centres), len(scene.rig), 2))
    views = joint_views(scene.rig, xy, np.ones(xy.shape[:2]), centres, np.full((len(centres), 2, 3), np.nan))
    offs = cube_coords()
    near = offs[np.linalg.norm(offs, axis=-1) < FINE_M / 4]
    lin = views.residual[:, :, None] + np.einsum("ncij,vj->ncvi", views.jacobian, near)  # (N, C, V, 2)
    exact = np.moveaxis(project_rig(scene.rig, centres[:, None] + near), 2, 1)  # (N, C, V, 2)
    assert np.abs(lin - exact).max() < 0.5  # px, within 6 cm of the centre
    assert np.all(views.anchors == 1000.0)  # no anchor: far away


def test_the_quadratic_form_gives_the_squared_reprojection_distances(data):
    from mocap.triangulation.volumetric import squared_distances

    views = {k: data[k][:16] for k in ("residual", "jacobian", "voxel_px")}
    coords = torch.from_numpy(cube_coords().astype(np.float32))
    direct = views["residual"][:, :, None] + torch.einsum("bcij,vj->bcvi", views["jacobian"], coords)
    direct = (direct ** 2).sum(-1) / views["voxel_px"][..., None] ** 2
    fast = squared_distances(views, coords)
    assert torch.allclose(fast, direct, rtol=1e-3, atol=0.05)  # voxels²; float32 cancellation


def test_the_shipped_weights_beat_robust_on_a_held_out_heavy_scene():
    from mocap.bench.triangulate import heavy_scenario

    scene, person, gt = heavy_scenario(4, 30, seed=1)
    cfg = TriangulateConfig()
    robust = triangulate_people(scene.rig, person, scene.joint_names, cfg).points
    vol = triangulate_people(scene.rig, person, scene.joint_names, replace(cfg, method="volumetric")).points
    common = np.isfinite(gt).all(-1) & np.isfinite(robust).all(-1)
    assert np.isfinite(vol[common]).all()
    e_r, e_v = (np.linalg.norm(p - gt, axis=-1)[common].mean() for p in (robust, vol))
    assert e_v < 0.9 * e_r, (e_v, e_r)


def _volumetric(scene, person, robust):
    from mocap.triangulation.volumetric import triangulate_volumetric

    return triangulate_volumetric(scene.rig, person, robust, scene.joint_names, TriangulateConfig(method="volumetric"))


def test_no_nan_where_robust_had_a_point_and_close_to_the_truth(capture):
    scene, person, robust = capture
    out = _volumetric(scene, person, robust)
    had = np.isfinite(robust.points).all(-1)
    assert np.isfinite(out.points[had]).all()
    assert np.isnan(out.points[~had]).all()
    gt = scene.gt_positions[:, 0]
    err = np.linalg.norm(out.points - gt, axis=-1)[had]
    assert np.nanmean(err) < 0.1  # metres


def test_a_view_with_nan_inputs_falls_back_to_robust(capture, caplog):
    scene, person, robust = capture
    bad = person.copy()
    bad[0, 1, :, :2] = np.nan  # coordinates lost, confidences kept
    with caplog.at_level(logging.INFO, logger="mocap.triangulation.volumetric"):
        out = _volumetric(scene, bad, robust)
    assert "NaN inputs: 1" in caplog.text
    np.testing.assert_array_equal(out.points[0], robust.points[0])
    assert np.isfinite(out.points[np.isfinite(robust.points).all(-1)]).all()


def test_a_person_partly_outside_the_cube_falls_back_to_robust(capture, caplog):
    scene, person, robust = capture
    pts = robust.points.copy()
    pts[2, 15] += [0.0, 0.0, 3.0]  # an ankle 3 m away: outside the 2.5 m cube
    moved = Triangulation(pts, robust.views_used, robust.reproj_error_px, robust.inliers)
    with caplog.at_level(logging.INFO, logger="mocap.triangulation.volumetric"):
        out = _volumetric(scene, person, moved)
    assert "partly outside the cube: 1" in caplog.text
    np.testing.assert_array_equal(out.points[2], pts[2])


def test_one_camera_falls_back_to_robust(capture, caplog):
    scene, person, robust = capture
    one = person.copy()
    one[3, 1:] = np.nan  # frame 3 seen by camera 0 only
    moved = Triangulation(robust.points.copy(), robust.views_used, robust.reproj_error_px, robust.inliers)
    with caplog.at_level(logging.INFO, logger="mocap.triangulation.volumetric"):
        out = _volumetric(scene, one, moved)
    assert "fewer than 2 cameras: 1" in caplog.text
    np.testing.assert_array_equal(out.points[3], robust.points[3])


def test_the_volumetric_mode_runs_through_triangulate_people(capture):
    scene, person, robust = capture
    out = triangulate_people(scene.rig, person, scene.joint_names, TriangulateConfig(method="volumetric"))
    assert out.points.shape == robust.points.shape
    had = np.isfinite(robust.points).all(-1)
    assert np.isfinite(out.points[had]).all()


def test_refined_points_stay_within_max_move_of_the_algebraic_points(capture):
    from mocap.triangulation.volumetric import MAX_MOVE_M

    scene, person, robust = capture
    cfg = TriangulateConfig()
    learned = triangulate_people(scene.rig, person, scene.joint_names, replace(cfg, method="learned")).points
    vol = triangulate_people(scene.rig, person, scene.joint_names, replace(cfg, method="volumetric")).points
    had = np.isfinite(robust.points).all(-1)
    move = np.linalg.norm(vol - learned, axis=-1)[had]
    assert np.all(move <= MAX_MOVE_M + 1e-9)
    assert np.mean(move > 1e-4) > 0.5  # most points are refined, not copied
