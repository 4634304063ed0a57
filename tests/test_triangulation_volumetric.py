"""Volumetric triangulation: training behaviour, fallbacks to robust, no NaN where robust had a point."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mocap.train.config import VolumetricTrainConfig  # noqa: E402
from mocap.train.data import TRAIN_SEED_BASE, Scenario, scenario_person  # noqa: E402
from mocap.train.volumetric import batch_loss, fit, training_step, volume_set  # noqa: E402
from mocap.triangulation.dlt import Triangulation  # noqa: E402
from mocap.triangulation.people import TriangulateConfig, triangulate_people  # noqa: E402
from mocap.triangulation.volumetric import SHIPPED_WEIGHTS, VolumetricNet, load_weights  # noqa: E402

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
    return VolumetricNet(25, 8)


def test_a_training_step_reduces_the_loss_on_a_fixed_batch(data):
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = training_step(model, opt, data)
    for _ in range(4):
        training_step(model, opt, data)
    with torch.no_grad():
        after = float(batch_loss(model, data))
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
