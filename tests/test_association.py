"""Cross-view person matching (mocap.match.epipolar) on the synthetic studio with real CMU motion."""

import numpy as np
import pytest

from mocap.match.epipolar import AssociationConfig, associate, epipolar_costs, gather_groups, group_frame
from mocap.synthetic import SyntheticConfig, make_scene


def _pair_accuracy(groups, gt_index):
    """Fraction of detection pairs (different views, same frame, both real people) that are
    grouped together exactly when they are the same person."""
    right = total = 0
    T, C, P = groups.shape
    for t in range(T):
        real = [(c, p) for c in range(C) for p in range(P) if gt_index[t, c, p] >= 0]
        for i, (c, p) in enumerate(real):
            for d, q in real[i + 1:]:
                if c == d:
                    continue
                same = gt_index[t, c, p] == gt_index[t, d, q]
                right += same == (groups[t, c, p] == groups[t, d, q])
                total += 1
    return right / total


def test_exact_projections_cost_zero_for_the_same_person():
    scene = make_scene(SyntheticConfig(num_frames=20, num_people=3, seed=2).without_errors())
    cost = epipolar_costs(scene.rig, scene.keypoints.data)
    same = cost[:, :, :, np.arange(3), np.arange(3)]  # (T, C, C, P) same slot = same person without shuffling
    off_diag = ~np.eye(len(scene.rig), dtype=bool)
    assert np.nanmax(same[:, off_diag]) < 1e-9
    np.testing.assert_allclose(cost, np.swapaxes(np.swapaxes(cost, 1, 2), 3, 4))  # symmetric
    assert np.isinf(cost[:, np.arange(4), np.arange(4)]).all()


@pytest.mark.parametrize("num_people, cameras", [(2, 4), (4, 4), (4, 8)])
def test_groups_match_ground_truth_with_detector_errors(num_people, cameras):
    """Noise, occlusion, outlier joints, left/right swaps, misses and spurious people on."""
    scene = make_scene(SyntheticConfig(num_frames=60, num_people=num_people, num_cameras=cameras, seed=5,
                                       placement_radius=1.2))
    groups = associate(scene.rig, scene.keypoints.data, joint_names=scene.joint_names)
    acc = _pair_accuracy(groups, scene.gt_person_index)
    assert acc >= 0.99, f"{num_people} people, {cameras} cameras: {acc:.2%} of pairs right"
    # at most one detection per view in a group
    T, C, P = groups.shape
    for t in range(T):
        for k in range(groups[t].max() + 1):
            assert ((groups[t] == k).sum(axis=1) <= 1).all()


def test_group_frame_one_detection_per_view_and_complete_linkage():
    inf = np.inf
    C, P = 3, 2
    cost = np.full((C, C, P, P), inf)

    def setc(a, i, b, j, v):
        cost[a, b, i, j] = cost[b, a, j, i] = v

    # person A: (0,0)-(1,0)-(2,0) all cheap; (1,1) is close to (0,0) only: must not join A
    setc(0, 0, 1, 0, 0.01)
    setc(0, 0, 2, 0, 0.02)
    setc(1, 0, 2, 0, 0.02)
    setc(0, 0, 1, 1, 0.015)
    setc(0, 1, 2, 1, 0.03)  # person B in views 0 and 2
    present = np.ones((C, P), bool)
    g = group_frame(cost, present, max_cost=0.05)
    assert g[0, 0] == g[1, 0] == g[2, 0]
    assert g[0, 1] == g[2, 1] != g[0, 0]
    assert g[1, 1] not in (g[0, 0], g[0, 1])  # a singleton


def test_gather_groups_places_each_detection():
    kp = np.full((1, 2, 2, 3, 3), np.nan)
    kp[0, 0, 1] = 1.0
    kp[0, 1, 0] = 2.0
    groups = np.array([[[-1, 0], [0, -1]]])
    g = gather_groups(kp, groups)
    assert g.shape == (1, 1, 2, 3, 3)
    assert (g[0, 0, 0] == 1.0).all() and (g[0, 0, 1] == 2.0).all()


def test_bad_input_is_named():
    scene = make_scene(SyntheticConfig(num_frames=2, num_people=1).without_errors())
    with pytest.raises(ValueError, match="cameras"):
        epipolar_costs(scene.rig, scene.keypoints.data[:, :2])
    with pytest.raises(ValueError, match="max_cost"):
        AssociationConfig(max_cost=0)
