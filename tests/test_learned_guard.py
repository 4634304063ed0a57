"""The inference-time guard of the learned and volumetric modes (``triangulate.learned_guard``): where
the learned point is consistently farther than robust's from one of robust's inlier views, robust's
point is kept, counted in one log line; never NaN where robust had a point."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mocap.geometry import project_rig  # noqa: E402
from mocap.train.data import Scenario, scenario_person  # noqa: E402
from mocap.triangulation import learned, volumetric  # noqa: E402
from mocap.triangulation.features import FEATURE_NAMES, learned_inputs  # noqa: E402
from mocap.triangulation.people import TriangulateConfig, triangulate_people  # noqa: E402

RESIDUAL = FEATURE_NAMES.index("log_residual_px")
ROBUST, LEARNED, VOLUMETRIC = (TriangulateConfig(), TriangulateConfig(method="learned"),
                               TriangulateConfig(method="volumetric"))


class DropsTheWorstView(torch.nn.Module):
    """A stand-in network that gives (almost) no weight to the view farthest from robust's point."""

    camera_bias: dict = {}

    def forward(self, features, valid, bias=None):
        logit = torch.where(valid, -12.0 * features[..., RESIDUAL], torch.tensor(float("-inf")))
        w = torch.nan_to_num(torch.softmax(logit, dim=-1)) + learned.WEIGHT_FLOOR * valid
        return w / w.sum(-1, keepdim=True).clamp_min(1e-12)


@pytest.fixture(scope="module")
def capture():
    """40 frames of one performer, 4 cameras, exact projections plus 0.3 px of noise, confidences
    0.6-1.0."""
    scene, _, gt = scenario_person(Scenario(cameras=4, noise_px=0.0, outlier_rate=0.0, swap_rate=0.0, frames=40,
                                            seed=5))
    rng = np.random.default_rng(0)
    xy = np.moveaxis(project_rig(scene.rig, gt), 1, 2) + rng.normal(0.0, 0.3, (40, 4, gt.shape[1], 2))
    person = np.concatenate([xy, rng.uniform(0.6, 1.0, xy.shape[:-1] + (1,))], axis=-1)  # (T, C, J, 3)
    return scene, person


@pytest.fixture
def drop_net(monkeypatch):
    model = DropsTheWorstView()
    monkeypatch.setattr(learned, "load_weights", lambda path=None: model)
    monkeypatch.setattr(volumetric, "load_algebraic", lambda path=None: model)
    return model


def test_consistently_worse_needs_most_of_the_window_and_an_inlier_view():
    T, window = 30, 15
    r_robust = np.full((T, 1, 2), 5.0)
    r_net = r_robust.copy()
    r_net[::3, 0, 0] += 4.0  # worse in a third of the frames: not consistent
    inliers = np.ones((T, 1, 2), bool)
    margin = np.full((T, 1, 2), 1.0)
    assert not learned.consistently_worse(r_net, r_robust, inliers, margin, window).any()
    r_net[:, 0, 1] += 4.0  # view 1 worse in every frame
    assert learned.consistently_worse(r_net, r_robust, inliers, margin, window).all()
    inliers[..., 1] = False  # ... but robust left view 1 out: nothing to guard
    assert not learned.consistently_worse(r_net, r_robust, inliers, margin, window).any()
    r_net[:, 0, 0] = r_robust[:, 0, 0] + 0.5  # within the margin
    inliers[...] = True
    r_net[:, 0, 1] = r_robust[:, 0, 1] + 0.9
    assert not learned.consistently_worse(r_net, r_robust, inliers, margin, window).any()


def test_a_view_robust_keeps_and_the_net_drops_gives_robust_point(capture, drop_net, caplog):
    """Camera 0 is 6 px off in every frame (a detector bias): robust keeps it (threshold 15 px), the
    net drops it; with the guard the points are robust's, without it they are not."""
    scene, person = capture
    biased = person.copy()
    biased[:, 0, :, 0] += 6.0
    robust = triangulate_people(scene.rig, biased, scene.joint_names, ROBUST)
    assert robust.inliers[..., 0].mean() > 0.95  # robust keeps camera 0
    had = np.isfinite(robust.points).all(-1)
    off = triangulate_people(scene.rig, biased, scene.joint_names, replace(LEARNED, learned_guard=False))
    with caplog.at_level(logging.INFO, logger="mocap.triangulation.learned"):
        on = triangulate_people(scene.rig, biased, scene.joint_names, LEARNED)
    moved_off = np.linalg.norm(off.points - robust.points, axis=-1)[had]
    moved_on = np.linalg.norm(on.points - robust.points, axis=-1)[had]
    assert np.median(moved_off) > 2e-3  # the net's own points differ from robust's
    assert np.mean(moved_on < 1e-9) > 0.9  # the guard gives robust's points back ...
    assert np.isfinite(on.points[had]).all() and np.isfinite(on.reproj_error_px[had][:, 1:]).all()  # ... never NaN
    assert on.inliers[had].all(-1).mean() > 0.9  # robust's view set, camera 0 included
    lines = [r.getMessage() for r in caplog.records if "guard" in r.getMessage()]
    assert len(lines) == 1 and "kept robust for" in lines[0]  # counted once, not per frame


def test_the_guard_leaves_a_net_that_is_not_consistently_worse_alone(capture, drop_net):
    """Random per-frame noise (no view consistently off): the net drops a different view each time,
    and the guard keeps most of its points."""
    scene, person = capture
    noisy = person.copy()
    noisy[..., :2] += np.random.default_rng(1).normal(0.0, 3.0, noisy[..., :2].shape)
    robust = triangulate_people(scene.rig, noisy, scene.joint_names, ROBUST)
    on = triangulate_people(scene.rig, noisy, scene.joint_names, LEARNED)
    had = np.isfinite(robust.points).all(-1)
    assert np.mean(np.linalg.norm(on.points - robust.points, axis=-1)[had] > 1e-9) > 0.7


def test_volumetric_refined_points_are_guarded_too(capture, drop_net, caplog):
    """Without the guard some refined points are consistently farther than robust's from camera 0;
    with it every point the check flags is robust's own, and none is NaN."""
    scene, person = capture
    biased = person[:20].copy()
    biased[:, 0, :, 0] += 12.0  # still an inlier of robust's; the refinement moves off it by more than the margin
    robust = triangulate_people(scene.rig, biased, scene.joint_names, ROBUST)
    had = np.isfinite(robust.points).all(-1)

    seen = learned_inputs(scene.rig, biased, robust.points, scene.joint_names, VOLUMETRIC, True)[0]  # relabelled

    def worse(points):
        return learned.robust_guard(scene.rig, seen, points, robust, VOLUMETRIC.min_confidence, True,
                                    volumetric.GUARD_MARGIN)

    off = triangulate_people(scene.rig, biased, scene.joint_names, replace(VOLUMETRIC, learned_guard=False))
    with caplog.at_level(logging.INFO, logger="mocap.triangulation.learned"):
        on = triangulate_people(scene.rig, biased, scene.joint_names, VOLUMETRIC)
    assert worse(off.points).mean() > 0.1
    flagged = worse(on.points)
    assert np.allclose(on.points.reshape(-1, 3)[flagged], robust.points.reshape(-1, 3)[flagged])
    assert np.isfinite(on.points[had]).all()
    assert any(r.getMessage().startswith("learned triangulation guard") for r in caplog.records)


def test_the_guard_runs_for_the_shipped_weights_not_for_session_adapted_ones_and_can_be_turned_off(tmp_path):
    import copy

    model = copy.deepcopy(learned.load_weights())
    model.camera_bias = {"cam_01": -0.5}
    path = tmp_path / "studio.pt"
    learned.save_weights(model, path, {})
    assert learned.guard_applies(LEARNED)
    assert not learned.guard_applies(replace(LEARNED, learned_guard=False))
    assert not learned.guard_applies(replace(LEARNED, learned_weights=str(path)))


def test_flat_confidence_marks_the_person_with_a_view_of_one_confidence_only():
    rng = np.random.default_rng(1)
    person = np.concatenate([rng.normal(500.0, 50.0, (30, 2, 3, 21, 2)), rng.uniform(0.3, 0.9, (30, 2, 3, 21, 1))],
                            axis=-1)  # (T, P, C, J, 3)
    person[:, 1, 2, :, 2] = 1.0  # person 1, camera 2: every keypoint 1.0 (a source without scores)
    person[::2, 1, 2, :5] = np.nan  # missing keypoints do not count
    flat = learned.flat_confidence(person, 0.2, temporal=True).reshape(30, 2, 21)
    assert flat[:, 1].all() and not flat[:, 0].any()
    few = person.copy()
    few[:, 1, 2, :, :2] = np.nan
    few[0, 1, 2, :learned.FLAT_MIN_KEYPOINTS - 1, :2] = 500.0  # too few keypoints to say
    assert not learned.flat_confidence(few, 0.2, temporal=True).any()
    one_frame = learned.flat_confidence(person[:, 1], 0.2, temporal=False).reshape(30, 21)  # frames as groups
    assert one_frame[1::2].all() and not one_frame[::2].any()  # 16 keypoints left there: too few


@pytest.mark.parametrize("config", [LEARNED, VOLUMETRIC], ids=["learned", "volumetric"])
def test_a_person_whose_keypoints_all_carry_one_confidence_keeps_robust_points(capture, config, caplog):
    """The shipped weights read the detector's confidence; where a view gives every keypoint the
    same one (1.0 here, as a source without scores writes) the guard keeps robust's points for that
    person, and says why; with real confidences the network's points stand."""
    scene, person = capture
    noisy = person.copy()
    noisy[..., :2] += np.random.default_rng(2).normal(0.0, 3.0, noisy[..., :2].shape)
    robust = triangulate_people(scene.rig, noisy, scene.joint_names, ROBUST)
    varied = triangulate_people(scene.rig, noisy, scene.joint_names, config)
    assert not np.allclose(varied.points, robust.points)
    noisy[:, 3, :, 2] = 1.0  # one camera without scores
    with caplog.at_level(logging.INFO, logger="mocap.triangulation"):
        flat = triangulate_people(scene.rig, noisy, scene.joint_names, config)
    robust = triangulate_people(scene.rig, noisy, scene.joint_names, ROBUST)
    np.testing.assert_array_equal(flat.points, robust.points)
    said = [r for r in caplog.records if "give every keypoint the same confidence" in r.getMessage()]
    assert len(said) == 1  # once, also when the volumetric stage guards its refined points again
