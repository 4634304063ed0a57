"""Triangulation: DLT (weighted, batched, NaN-aware), robust view rejection, covariance."""

import time
import warnings
from functools import partial

import numpy as np
import pytest

import conftest

from mocap.geometry import Camera, Rig, project_rig, undistort_points
from mocap.triangulation import (
    left_right_limbs, triangulate_dlt, triangulate_robust, triangulation_covariance,
)


look_at_camera = partial(conftest.look_at_camera, f=1000.0, skew=0.3, aspect=1.002)


@pytest.fixture(params=["numpy", "numba"])
def backend(request):
    """Every accuracy test runs on both numerics backends: the numpy path is tested on its own."""
    if request.param == "numba":
        pytest.importorskip("numba")
    return request.param


def ring(C, radius=4.0):
    """C cameras on a ring around a 2 m tall volume, distorting lenses, slightly varied heights."""
    angles = np.linspace(0, 2 * np.pi, C, endpoint=False)
    return Rig(tuple(look_at_camera(f"cam{i}", [radius * np.cos(a), radius * np.sin(a), 2.0 + 0.3 * np.sin(3 * a)])
                     for i, a in enumerate(angles)))


def body_points(rng, shape):
    return rng.normal([0, 0, 1.0], [0.35, 0.35, 0.5], tuple(shape) + (3,))


def reference_dlt(rig, xy_px, weight):
    """Per-point textbook loop: undistort, Hartley-normalise (K^-1, world centred/scaled on the
    camera centres), unit rows times weight, smallest right singular vector of A by SVD."""
    centers = rig.centers
    c = centers.mean(0)
    s = np.sqrt(3) / np.linalg.norm(centers - c, axis=1).mean()
    world_from_norm = np.block([[np.eye(3) / s, c[:, None]], [np.zeros((1, 3)), np.ones((1, 1))]])
    out = np.full(xy_px.shape[:-2] + (3,), np.nan)
    for idx in np.ndindex(*xy_px.shape[:-2]):
        rows = []
        for ci, cam in enumerate(rig.cameras):
            if not np.isfinite(xy_px[idx][ci]).all() or weight[idx][ci] <= 0:
                continue
            u = undistort_points(cam, xy_px[idx][ci])
            xn = np.linalg.solve(cam.K, [u[0], u[1], 1.0])
            P = np.hstack([cam.R, cam.t[:, None]]) @ world_from_norm
            for r in (xn[0] * P[2] - P[0], xn[1] * P[2] - P[1]):
                rows.append(weight[idx][ci] * r / np.linalg.norm(r))
        if len(rows) >= 4:
            v = np.linalg.svd(np.array(rows))[2][-1]
            out[idx] = (world_from_norm @ v)[:3] / (world_from_norm @ v)[3]
    return out


# -- smoke / shape -------------------------------------------------------------------------------

def test_dlt_shapes_over_leading_dims(rng, backend):
    rig = ring(4)
    xy = project_rig(rig, body_points(rng, (5, 2, 3)))
    res = triangulate_dlt(rig, xy, backend=backend)
    assert res.points.shape == (5, 2, 3, 3)
    assert res.views_used.shape == (5, 2, 3)
    assert res.reproj_error_px.shape == (5, 2, 3, 4)
    assert res.inliers.shape == (5, 2, 3, 4)
    assert res.covariance is None


def test_robust_returns_same_fields_and_shapes_as_dlt(rng, backend):
    rig = ring(4)
    xy = project_rig(rig, body_points(rng, (6, 5)))
    a = triangulate_dlt(rig, xy, sigma_px=2.0, backend=backend)
    b = triangulate_robust(rig, xy, sigma_px=2.0, backend=backend)
    for name in ("points", "views_used", "reproj_error_px", "inliers", "covariance"):
        assert getattr(a, name).shape == getattr(b, name).shape, name


# -- exceptions ----------------------------------------------------------------------------------

def test_wrong_camera_count_is_rejected():
    with pytest.raises(ValueError, match="expected 4 cameras on axis -2"):
        triangulate_dlt(ring(4), np.zeros((10, 3, 2)))


def test_weight_shape_is_checked():
    with pytest.raises(ValueError, match=r"weight: expected shape \(10, 4\)"):
        triangulate_dlt(ring(4), np.zeros((10, 4, 2)), np.ones((10, 3)))


def test_negative_weight_is_rejected():
    with pytest.raises(ValueError, match="weight: confidences must be >= 0"):
        triangulate_robust(ring(4), np.zeros((2, 4, 2)), -np.ones((2, 4)))


def test_limb_indices_are_checked():
    with pytest.raises(ValueError, match=r"limbs: joint indices must be in \[0, 3\)"):
        triangulate_robust(ring(4), np.zeros((2, 3, 4, 2)), limbs=[[(0, 5)]])


# -- accuracy ------------------------------------------------------------------------------------

@pytest.mark.parametrize("C", [2, 4, 8, 16])
def test_dlt_exact_recovery_without_noise(rng, C, backend):
    rig = ring(C)
    X = body_points(rng, (200,))
    res = triangulate_dlt(rig, project_rig(rig, X), backend=backend)
    np.testing.assert_allclose(res.points, X, atol=1e-9)
    assert np.all(res.views_used == C)
    assert np.nanmax(res.reproj_error_px) < 1e-6


def test_robust_exact_recovery_without_noise(rng, backend):
    rig = ring(6)
    X = body_points(rng, (300,))
    res = triangulate_robust(rig, project_rig(rig, X), refine=True, backend=backend)
    np.testing.assert_allclose(res.points, X, atol=1e-9)
    assert res.inliers.all()


def test_dlt_from_bare_projection_matrices(rng, backend):
    cams = [c.replace(dist=np.zeros(5)) for c in ring(5)]
    X = body_points(rng, (100,))
    xy = project_rig(Rig(tuple(cams)), X)
    P = np.stack([c.P for c in cams]) * np.array([2.0, -3.0, 0.5, 1.0, -1.0])[:, None, None]  # any scale/sign
    np.testing.assert_allclose(triangulate_dlt(P, xy, backend=backend).points, X, atol=1e-9)


def test_equal_weights_equal_unweighted(rng, backend):
    rig = ring(5)
    xy = project_rig(rig, body_points(rng, (300,))) + rng.normal(0, 3.0, (300, 5, 2))
    a = triangulate_dlt(rig, xy, backend=backend)
    b = triangulate_dlt(rig, xy, np.full((300, 5), 0.37), backend=backend)
    np.testing.assert_allclose(b.points, a.points, atol=1e-10)


def test_weighted_batch_equals_per_point_svd_reference(rng, backend):
    rig = ring(4)
    xy = project_rig(rig, body_points(rng, (4, 3, 5))) + rng.normal(0, 4.0, (4, 3, 5, 4, 2))
    w = rng.uniform(0.05, 1.0, (4, 3, 5, 4))
    xy[0, 0, 0, 1] = np.nan  # a missing view
    w[1, 2, 3, 2] = 0.0  # a zero-confidence view
    xy[2, 1, 1, :3] = np.nan  # seen once only: no point
    ours = triangulate_dlt(rig, xy, w, backend=backend)
    ref = reference_dlt(rig, xy, w)
    np.testing.assert_allclose(ours.points, ref, atol=1e-9)
    assert np.isnan(ours.points[2, 1, 1]).all() and ours.views_used[2, 1, 1] == 1
    assert ours.views_used[0, 0, 0] == 3 and ours.views_used[1, 2, 3] == 3


def test_confidence_weighting_reduces_error_of_noisy_views(rng, backend):
    """Views with 10x the noise and 0.1x the confidence: weighting helps (10 px vs 1 px noise)."""
    rig = ring(4)
    X = body_points(rng, (2000,))
    sigma = np.where(rng.random((2000, 4)) < 0.3, 10.0, 1.0)
    xy = project_rig(rig, X) + rng.normal(0, 1, (2000, 4, 2)) * sigma[..., None]
    e_plain = np.linalg.norm(triangulate_dlt(rig, xy, backend=backend).points - X, axis=-1).mean()
    e_weighted = np.linalg.norm(triangulate_dlt(rig, xy, 1.0 / sigma, backend=backend).points - X, axis=-1).mean()
    assert e_weighted < 0.75 * e_plain


def test_corrupted_view_is_rejected(rng, backend):
    rig = ring(5)
    X = body_points(rng, (400,))
    xy = project_rig(rig, X)
    xy[:, 2] += rng.choice([-1, 1], (400, 2)) * rng.uniform(60, 300, (400, 2))  # view 2 is garbage
    plain = triangulate_dlt(rig, xy, backend=backend)
    res = triangulate_robust(rig, xy, backend=backend)
    assert np.linalg.norm(plain.points - X, axis=-1).mean() > 0.01
    assert not res.inliers[:, 2].any() and res.inliers[:, [0, 1, 3, 4]].all()
    np.testing.assert_allclose(res.points, X, atol=1e-9)
    assert np.all(res.views_used == 4)
    assert np.all(res.reproj_error_px[:, 2] > 15.0)


def test_sixteen_cameras_thirty_percent_outliers_bounded_time(rng, backend):
    rig = ring(16)
    N = 5000
    X = body_points(rng, (N,))
    xy = project_rig(rig, X) + rng.normal(0, 2.0, (N, 16, 2))
    out = rng.random((N, 16)) < 0.3
    xy[out] += rng.uniform(40, 400, (out.sum(), 2)) * rng.choice([-1, 1], (out.sum(), 2))
    t0 = time.perf_counter()
    res = triangulate_robust(rig, xy, max_hypotheses=64, backend=backend)
    elapsed = time.perf_counter() - t0
    err = np.linalg.norm(res.points - X, axis=-1)
    assert elapsed < 10.0  # ~1 s on one loaded core; 64 pairs at most per point, whatever happens
    assert np.median(err) < 0.005 and np.mean(err) < 0.01
    assert (~res.inliers[out]).mean() > 0.99  # outliers rejected
    assert res.inliers[~out].mean() > 0.97  # inliers kept


def test_robust_time_is_bounded_by_max_hypotheses(rng, backend):
    """Fewer allowed hypotheses never take longer: the pair search is capped, not exhaustive."""
    rig = ring(16)
    xy = project_rig(rig, body_points(rng, (2000,)))
    xy += rng.uniform(-500, 500, xy.shape)  # every view an outlier: the search never exits early
    times = {}
    for h in (8, 120):
        t0 = time.perf_counter()
        triangulate_robust(rig, xy, max_hypotheses=h, backend=backend)
        times[h] = time.perf_counter() - t0
    assert times[8] < times[120]


def test_refinement_does_not_increase_reprojection_error(rng, backend):
    rig = ring(4)
    xy = project_rig(rig, body_points(rng, (500,))) + rng.normal(0, 3.0, (500, 4, 2))
    a = triangulate_robust(rig, xy, refine=False, backend=backend)
    b = triangulate_robust(rig, xy, refine=True, refine_iterations=3, backend=backend)
    assert np.nanmean(b.reproj_error_px**2) <= np.nanmean(a.reproj_error_px**2) + 1e-9


def test_left_right_swap_is_relabelled(rng, backend):
    names = ("left_knee", "right_knee", "left_ankle", "right_ankle")
    rig = ring(4)
    T = 50
    X = np.stack([body_points(rng, (T,)) for _ in names], axis=1)  # (T, 4 joints, 3)
    X[:, 1] = X[:, 0] + [0.0, 0.3, 0.0]  # knees 30 cm apart
    X[:, 3] = X[:, 2] + [0.0, 0.3, 0.0]
    xy = project_rig(rig, X)  # (T, J, C, 2)
    xy[:, [0, 1, 2, 3], 0] = xy[:, [1, 0, 3, 2], 0]  # camera 0 (sees the legs 75 px apart) swaps them
    limbs = left_right_limbs(names)
    assert limbs == [[(0, 1), (2, 3)]]
    without = triangulate_robust(rig, xy, backend=backend)
    with_check = triangulate_robust(rig, xy, limbs=limbs, backend=backend)
    assert not without.inliers[:, :, 0].any()
    assert with_check.inliers.all()
    np.testing.assert_allclose(with_check.points, X, atol=1e-9)


def test_covariance_matches_monte_carlo(rng, backend):
    rig = ring(4)
    X = np.array([0.2, -0.1, 1.1])
    sigma = 3.0
    xy = project_rig(rig, X)
    trials = xy + rng.normal(0, sigma, (4000, 4, 2))
    est = triangulate_dlt(rig, trials, backend=backend).points
    empirical = np.cov(est.T)
    predicted = triangulation_covariance(rig, X, sigma)
    res = triangulate_dlt(rig, xy, sigma_px=sigma, backend=backend)
    np.testing.assert_allclose(res.covariance, predicted, rtol=1e-9)
    # Within Monte-Carlo error (4000 samples: ~5 % on variances) plus DLT's small inefficiency.
    np.testing.assert_allclose(np.sqrt(np.diag(empirical)), np.sqrt(np.diag(predicted)), rtol=0.1)


def test_covariance_scales_with_confidence(rng, backend):
    rig = ring(4)
    X = body_points(rng, (10,))
    xy = project_rig(rig, X)
    full = triangulate_dlt(rig, xy, np.ones((10, 4)), sigma_px=2.0, backend=backend).covariance
    half = triangulate_dlt(rig, xy, np.full((10, 4), 0.5), sigma_px=2.0, backend=backend).covariance
    np.testing.assert_allclose(half, 4.0 * full, rtol=1e-9)  # weight 0.5 = twice the 2D noise


def test_covariance_is_nan_with_one_view(rng, backend):
    rig = ring(3)
    xy = project_rig(rig, body_points(rng, (2,)))
    xy[0, 1:] = np.nan
    cov = triangulate_dlt(rig, xy, sigma_px=1.0, backend=backend).covariance
    assert np.isnan(cov[0]).all() and np.isfinite(cov[1]).all()


def test_per_view_threshold_shape_is_checked():
    with pytest.raises(ValueError, match=r"threshold_px: expected a scalar or shape \(10, 4\)"):
        triangulate_robust(ring(4), np.zeros((10, 4, 2)), threshold_px=np.ones((10, 3)))


def test_two_inconsistent_views_give_no_point(rng, backend):
    """Two views whose rays miss each other by far more than the threshold: no point, not a guess."""
    rig = ring(4)
    X = body_points(rng, (50,))
    xy = project_rig(rig, X)
    xy[:, 2:] = np.nan
    xy[:, 1, 1] += 80.0  # vertical: across the (nearly horizontal) epipolar lines of a ring
    res = triangulate_robust(rig, xy, backend=backend)
    assert np.isnan(res.points).all() and np.all(res.views_used < 2)


# -- closed-form normal-equation solve, temporal left/right check ------------------------------

def test_dlt_equals_svd_reference_with_grossly_inconsistent_views(rng, backend):
    """Outliers make inverse iteration converge slowly: the extra steps and the eigh fallback
    still give the SVD answer (1e-9 m)."""
    rig = ring(5)
    xy = project_rig(rig, body_points(rng, (200,))) + rng.normal(0, 2.0, (200, 5, 2))
    bad = rng.random((200, 5)) < 0.3
    xy[bad] += rng.normal(0, 250.0, (bad.sum(), 2))
    w = rng.uniform(0.2, 1.0, (200, 5))
    ours = triangulate_dlt(rig, xy, w, backend=backend).points
    np.testing.assert_allclose(ours, reference_dlt(rig, xy, w), atol=1e-9)


def test_normal_equation_solve_matches_eigh_and_flags_ill_conditioned():
    from mocap.triangulation.dlt import solve_normal, solve_normal_eigh

    rng = np.random.default_rng(5)
    A = rng.normal(size=(300, 8, 4))
    i, j = np.triu_indices(4)
    M = np.einsum("nri,nrj->nij", A, A)[:, i, j].T  # (10, N) upper triangles
    # Three matrices whose 3x3 block B = diag(1, 0, 0) is singular: they must take the eigh path.
    M[:, :3] = np.array([1.0, 0, 0, 0.3, 0, 0, 0.2, 0, 0.1, 1.0])[:, None]
    X, fallback = solve_normal(M)
    assert fallback[:3].all()
    ref = solve_normal_eigh(M).T
    ok = np.isfinite(ref).all(0)
    np.testing.assert_allclose(X[:, ok], ref[:, ok], atol=1e-9, rtol=1e-9)


def test_temporal_reference_is_nan_aware_median_of_neighbours(rng):
    from mocap.triangulation import temporal_reference

    P = rng.normal(size=(30, 4, 3))
    P[rng.random(P.shape) < 0.3] = np.nan
    ref = temporal_reference(P)
    for t in (0, 1, 7, 28, 29):
        nb = np.stack([P[s] for s in (t - 2, t - 1, t + 1, t + 2) if 0 <= s < 30])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
            want = np.nanmedian(nb, axis=0)
        np.testing.assert_allclose(ref[t], want, atol=1e-15, equal_nan=True)


def test_temporal_check_resolves_a_two_of_four_views_swap(rng, backend):
    """Left/right swapped in 2 of 4 views in some frames: a tie no single frame can break; the
    joints predicted from the neighbouring frames break it."""
    names = ("left_knee", "right_knee", "left_ankle", "right_ankle")
    rig = ring(4)
    T = 40
    walk = np.linspace(0, 0.8, T)[:, None] * [1.0, 0.2, 0.0] + [0.0, 0.0, 0.5]  # smooth, 2 cm per frame
    X = np.stack([walk + [0, 0, 0.5], walk + [0, 0.3, 0.5], walk, walk + [0, 0.3, 0]], axis=1)  # (T, J, 3)
    xy = project_rig(rig, X)  # (T, J, C, 2)
    frames = [6, 14, 22, 30]  # every way of picking the two swapped views: some tie goes wrong
    for t, views in zip(frames, [(0, 1), (2, 3), (0, 2), (1, 3)]):
        for c in views:
            xy[t, [0, 1, 2, 3], c] = xy[t, [1, 0, 3, 2], c]
    limbs = left_right_limbs(names)
    per_frame = triangulate_robust(rig, xy, limbs=limbs, backend=backend)
    err = np.linalg.norm(per_frame.points - X, axis=-1)
    assert (np.nan_to_num(err, nan=1.0)[frames] > 0.1).any()  # the single-frame answer is wrong somewhere
    temporal = triangulate_robust(rig, xy, limbs=limbs, temporal=True, backend=backend)
    np.testing.assert_allclose(temporal.points, X, atol=1e-9)
    assert temporal.inliers.all()


def test_a_reference_breaks_a_two_of_four_views_swap_frame_by_frame(rng, backend):
    """The same ties, one frame at a time (a live tracker has no frames after): checked against
    given points (the tracker's prediction, here the truth moved by 1 cm) every swap is
    relabelled; a reference that is NaN, or the wrong shape, is no check or a clear error."""
    names = ("left_knee", "right_knee", "left_ankle", "right_ankle")
    rig = ring(4)
    walk = np.linspace(0, 0.8, 4)[:, None] * [1.0, 0.2, 0.0] + [0.0, 0.0, 0.5]
    X = np.stack([walk + [0, 0, 0.5], walk + [0, 0.3, 0.5], walk, walk + [0, 0.3, 0]], axis=1)  # (4, J, 3)
    xy = project_rig(rig, X)
    for t, views in enumerate([(0, 1), (2, 3), (0, 2), (1, 3)]):
        for c in views:
            xy[t, [0, 1, 2, 3], c] = xy[t, [1, 0, 3, 2], c]
    limbs = left_right_limbs(names)
    alone = [triangulate_robust(rig, xy[t:t + 1], limbs=limbs, backend=backend).points[0] for t in range(4)]
    assert (np.nan_to_num(np.linalg.norm(np.stack(alone) - X, axis=-1), nan=1.0) > 0.1).any()
    prediction = X + rng.normal(scale=0.01, size=X.shape)
    checked = [triangulate_robust(rig, xy[t:t + 1], limbs=limbs, reference=prediction[t:t + 1], backend=backend)
               for t in range(4)]
    np.testing.assert_allclose(np.stack([c.points[0] for c in checked]), X, atol=1e-9)
    assert all(c.inliers.all() for c in checked)
    unknown = [triangulate_robust(rig, xy[t:t + 1], limbs=limbs, reference=np.full((1, 4, 3), np.nan),
                                  backend=backend).points[0] for t in range(4)]
    np.testing.assert_array_equal(np.stack(unknown), np.stack(alone))
    with pytest.raises(ValueError, match="reference: expected shape"):
        triangulate_robust(rig, xy[:1], limbs=limbs, reference=np.zeros((4, 3)), backend=backend)


def test_a_made_up_leg_is_left_out_so_its_hip_cannot_outvote_two_right_views(rng, backend):
    """One view's leg fits the 3D leg neither as labelled nor exchanged (its right labels on the
    true left leg, its left knee and ankle made up: a rear view with one leg hidden), and its left
    hip agrees exactly with another view's wrong left hip: a two-against-two tie the made-up view
    wins on its exact fit. That view's leg is left out (step 7) and the two right views decide."""
    names = ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
    rig = ring(4)
    T = 5
    hip = body_points(rng, (T,)) * [1, 1, 0] + [0, 0, 1.0]
    side = np.array([0.2, 0.2, 0.0])  # the right leg 28 cm aside, apart in every view
    X = np.stack([hip, hip + side, hip + [0.05, 0, -0.45], hip + side + [0.05, 0, -0.45],
                  hip + [0, 0, -0.9], hip + side + [0, 0, -0.9]], axis=1)  # (T, 6, 3)
    wrong = X[:, 0] + [0.0, -0.12, 0.2]  # where cameras 0 and 1 put the left hip
    xy = project_rig(rig, X) + rng.normal(0, 2.0, (T, 6, 4, 2))  # (T, J, C, 2)
    xy[:, 0, :2] = project_rig(rig, wrong)[:, :2]  # exactly consistent: it beats the noisy right pair
    xy[:, [1, 3, 5], 1] = project_rig(rig, X[:, [0, 2, 4]])[:, :, 1]  # right labels on the left leg
    xy[:, [2, 4], 1] = project_rig(rig, X[:, [2, 4]] + [0.0, -0.5, 0.3])[:, :, 1]  # made up
    limbs = left_right_limbs(names)
    res = triangulate_robust(rig, xy, limbs=limbs, backend=backend)
    np.testing.assert_allclose(res.points[:, 0], X[:, 0], atol=0.03)  # two views, 2 px noise; wrong: 23 cm
    assert not res.inliers[:, :, 1].any()  # camera 1's leg is used for no joint
    assert res.inliers[:, :, 2:].all()
    without = triangulate_robust(rig, xy, backend=backend)  # no left/right checks: the tie goes wrong
    assert (np.linalg.norm(without.points[:, 0] - wrong, axis=-1) < 0.01).all()


def test_temporal_check_needs_limbs():
    with pytest.raises(ValueError, match="temporal"):
        triangulate_robust(ring(4), np.zeros((3, 2, 4, 2)), temporal=True)


def test_robust_point_seen_once_reports_its_single_view(rng, backend):
    rig = ring(4)
    xy = project_rig(rig, body_points(rng, (3,)))
    xy[1, 1:] = np.nan
    res = triangulate_robust(rig, xy, backend=backend)
    assert np.isnan(res.points[1]).all() and res.views_used[1] == 1 and res.views_used[0] == 4


def test_relabelled_points_resumed_from_their_estimate_equal_a_fresh_solve(rng, backend):
    """Points solved again after a left/right relabel start from their previous estimate: where a
    strict majority of views agrees with it, the DLT refitted on those views; elsewhere a fresh
    solve. Either way the same inlier views and point as solving from scratch (1e-9 m)."""
    from mocap.triangulation import robust
    from mocap.triangulation.dlt import prepare

    rig, n = ring(8), 600
    X = body_points(rng, (n,))
    xy = project_rig(rig, X) + rng.normal(0, 0.5, (n, 8, 2))
    bad = rng.integers(0, 8, n)
    xy[np.arange(n), bad] += rng.choice([-1, 1], (n, 2)) * rng.uniform(60, 300, (n, 2))  # one wrong view each
    obs = prepare(rig, xy, None, True)
    steps = _numba_steps() if backend == "numba" else None
    views = robust.chunk_views(obs, slice(None), np.full((8, n), 15.0), steps)
    solver = robust.RobustSolver(obs.cams, robust.view_pairs(8, 64), refine=False, refine_iterations=2, steps=steps)
    fresh = robust.solve_chunk(solver, views)
    start = X.T + rng.normal(0, 0.003, (3, n))  # previous estimates a few mm off ...
    start[:, ::3] += 0.5  # ... and a third of them wrong: no majority agrees, solved afresh
    idx = np.arange(n)[::-1].copy()  # a subset in another order: the numba path reads views in place
    resumed = robust.solve_chunk(solver, views, start=start[:, idx], idx=idx)
    assert fresh[1].sum(0).min() == 7  # the wrong view rejected everywhere
    np.testing.assert_array_equal(resumed[1], fresh[1][:, idx])
    np.testing.assert_allclose(resumed[0], fresh[0][:, idx], atol=1e-9)


def _numba_steps():
    pytest.importorskip("numba")
    from mocap.triangulation import _numba_steps

    return _numba_steps


@pytest.mark.parametrize("limbs", [False, True])
def test_numba_backend_equals_numpy_backend(rng, limbs):
    """The compiled kernels (all-view DLT, RANSAC) take the same decisions as the numpy path: same
    inliers, points within 1e-9 m, with outliers, missing views, per-view thresholds, a point
    seen twice and left/right swaps with the temporal check."""
    pytest.importorskip("numba")
    rig = ring(8)
    names = ("left_knee", "right_knee", "left_ankle", "right_ankle")
    T = 60
    X = body_points(rng, (T, len(names)))
    X[:, 1] = X[:, 0] + [0.0, 0.3, 0.0]
    X[:, 3] = X[:, 2] + [0.0, 0.3, 0.0]
    xy = project_rig(rig, X) + rng.normal(0, 1.0, (T, len(names), 8, 2))
    out = rng.random(xy.shape[:-1]) < 0.25
    xy[out] += rng.uniform(30, 300, (out.sum(), 2)) * rng.choice([-1, 1], (out.sum(), 2))
    xy[rng.random(xy.shape[:-1]) < 0.2] = np.nan
    xy[0, 0, 2:] = np.nan  # seen by two views
    xy[0, 1, 1:] = np.nan  # seen once
    swap = rng.random((T, 8)) < 0.1
    t, c = np.nonzero(swap)
    xy[t[:, None], [0, 1, 2, 3], c[:, None]] = xy[t[:, None], [1, 0, 3, 2], c[:, None]]
    w = rng.uniform(0.2, 1.0, xy.shape[:-1])
    tau = rng.uniform(8.0, 20.0, xy.shape[:-1])
    kw = dict(limbs=left_right_limbs(names), temporal=True) if limbs else {}
    a = triangulate_robust(rig, xy, w, threshold_px=tau, backend="numpy", **kw)
    b = triangulate_robust(rig, xy, w, threshold_px=tau, backend="numba", **kw)
    assert 0.05 < (~a.inliers & np.isfinite(xy[..., 0])).mean() < 0.5  # RANSAC really rejected views
    np.testing.assert_array_equal(b.inliers, a.inliers)
    np.testing.assert_array_equal(b.views_used, a.views_used)
    np.testing.assert_allclose(b.points, a.points, rtol=0, atol=1e-9)
    np.testing.assert_allclose(b.reproj_error_px, a.reproj_error_px, rtol=0, atol=1e-6)
    assert np.isnan(a.points).any()  # the point seen once is NaN in both


def test_numba_dlt_equals_numpy_dlt(rng):
    """``triangulate_dlt`` on both backends: the same views, points within 1e-9 m, errors within
    1e-6 px and covariances within 1e-9 relative, with missing and zero-weight views."""
    pytest.importorskip("numba")
    rig = ring(6)
    xy = project_rig(rig, body_points(rng, (50, 17))) + rng.normal(0, 2.0, (50, 17, 6, 2))
    xy[rng.random(xy.shape[:-1]) < 0.3] = np.nan
    w = rng.uniform(0.0, 1.0, xy.shape[:-1])
    a = triangulate_dlt(rig, xy, w, sigma_px=1.5, backend="numpy")
    b = triangulate_dlt(rig, xy, w, sigma_px=1.5, backend="numba")
    assert np.isnan(a.points).any() and np.isfinite(a.points).mean() > 0.8
    np.testing.assert_array_equal(b.inliers, a.inliers)
    np.testing.assert_allclose(b.points, a.points, rtol=0, atol=1e-9)
    np.testing.assert_allclose(b.reproj_error_px, a.reproj_error_px, rtol=0, atol=1e-6)
    np.testing.assert_allclose(b.covariance, a.covariance, rtol=1e-9, atol=0)


def test_numba_undistortion_equals_numpy(rng):
    """Per-point Newton kernel: normalised coordinates within 1e-12 of ``lens.undistort``, the same
    invalid views (NaN pixel, weight 0 or NaN, a pixel far outside the lens' valid field) and the
    same undistorted pixels."""
    steps = _numba_steps()
    from mocap.triangulation._cameras import undistorted_pixels
    from mocap.triangulation.dlt import prepare

    rig = ring(6)
    xy = project_rig(rig, body_points(rng, (2000,))) + rng.normal(0, 2.0, (2000, 6, 2))
    xy[:5, 0] = [[-40000.0, 30000.0]] * 5  # beyond the fold of the radial model: NaN in both
    xy[rng.random(xy.shape[:-1]) < 0.1] = np.nan
    w = rng.uniform(0.0, 1.0, xy.shape[:-1])
    w[rng.random(w.shape) < 0.1] = 0.0
    w[rng.random(w.shape) < 0.05] = np.nan
    obs = prepare(rig, xy, w, True)
    x, y, wn, valid = obs.normalized(slice(None))
    pu, pv = undistorted_pixels(obs.cams, x, y)
    got = steps.normalize(obs, slice(None))
    assert not valid[0, :5].any() and valid.mean() > 0.6
    np.testing.assert_array_equal(got[3], valid)
    np.testing.assert_array_equal(got[2], wn)
    np.testing.assert_allclose(got[0], x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[1], y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[4], pu, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got[5], pv, rtol=0, atol=1e-9)


def test_numba_refit_dlt_equals_numpy(rng):
    """Compiled weighted DLT within 1e-9 m of ``dlt_world``, with one grossly wrong view (points
    needing more inverse-iteration steps), unused views and a point with one weighted view (NaN
    in both)."""
    steps = _numba_steps()
    from mocap.triangulation.dlt import dlt_world, prepare

    rig = ring(8)
    xy = project_rig(rig, body_points(rng, (3000,))) + rng.normal(0, 1.0, (3000, 8, 2))
    xy[::3, 2] += 400.0
    w = rng.uniform(0.2, 1.0, xy.shape[:-1]) * (rng.random(xy.shape[:-1]) > 0.2)
    w[0, 1:] = 0.0
    obs = prepare(rig, xy, w, True)
    x, y, wn, _ = obs.normalized(slice(None))
    want = dlt_world(obs.cams, x, y, wn)
    got = steps.dlt_world(obs.cams, x, y, wn)
    assert np.isnan(want[:, 0]).all() and np.isnan(got[:, 0]).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_numba_swap_scoring_equals_numpy(rng):
    """Compiled left/right scoring: the same limb views flagged as the numpy path, on swapped,
    missing and behind-the-camera joints with per-view thresholds."""
    _numba_steps()
    from mocap.triangulation import _left_right
    from mocap.triangulation._cameras import undistorted_pixels
    from mocap.triangulation._numba_swap import swap_flags_kernel
    from mocap.triangulation.dlt import prepare
    from mocap.triangulation.rules import KERNEL_RULES

    rig = ring(6)
    names = ("left_knee", "right_knee", "left_ankle", "right_ankle", "left_shoulder", "right_shoulder")
    T, J = 400, len(names)
    X = body_points(rng, (T, J))
    xy = project_rig(rig, X) + rng.normal(0, 2.0, (T, J, 6, 2))
    swap = rng.random((T, 6)) < 0.2
    t, c = np.nonzero(swap)
    xy[t[:, None], [0, 1, 2, 3], c[:, None]] = xy[t[:, None], [1, 0, 3, 2], c[:, None]]
    xy[rng.random(xy.shape[:-1]) < 0.1] = np.nan
    X[5, 0] = rig.centers[0] - [0.0, 0.0, 1.0]  # behind some camera
    obs = prepare(rig, xy, None, True)
    x, y, w, valid = obs.normalized(slice(None))
    pu, pv = undistorted_pixels(obs.cams, x, y)
    tau = rng.uniform(8.0, 20.0, pu.shape)
    limbs = left_right_limbs(names)
    L, R, limb = _left_right.limb_pairs(limbs)
    Xf = np.ascontiguousarray(X.reshape(-1, 3).T)
    shape = (6, T, J)
    want = _left_right.swap_flags(obs.cams, J, L, R, limb, Xf, *(a.reshape(shape) for a in (pu, pv, valid, tau)))
    got = swap_flags_kernel(obs.cams.KRt, Xf, pu, pv, valid, tau, J, L, R, limb, len(limbs), KERNEL_RULES)
    assert 0.05 < want.mean() < 0.5
    np.testing.assert_array_equal(got, want)


def test_numba_misfit_limbs_equal_numpy(rng):
    """Compiled step 7: the same limb views left out (weights and valid flags, and the
    observations it reports taken out) as the numpy path, on limbs made up in some views, random outliers, missing
    joints and per-view thresholds."""
    steps = _numba_steps()
    from mocap.triangulation import _left_right
    from mocap.triangulation._cameras import undistorted_pixels
    from mocap.triangulation._robust_numpy import Views
    from mocap.triangulation.dlt import prepare

    rig = ring(6)
    names = ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_shoulder",
             "right_shoulder")
    T, J = 400, len(names)
    X = body_points(rng, (T, J))
    xy = project_rig(rig, X) + rng.normal(0, 2.0, (T, J, 6, 2))
    made_up = rng.random((T, 6)) < 0.15
    t, c = np.nonzero(made_up)
    xy[t[:, None], [0, 1, 2, 3, 4, 5], c[:, None]] += rng.uniform(60, 200, (t.size, 6, 2))
    outlier = rng.random(xy.shape[:-1]) < 0.1
    xy[outlier] += rng.uniform(60, 200, (outlier.sum(), 2))
    xy[rng.random(xy.shape[:-1]) < 0.1] = np.nan
    obs = prepare(rig, xy, None, True)
    x, y, w, valid = obs.normalized(slice(None))
    pu, pv = undistorted_pixels(obs.cams, x, y)
    tau = rng.uniform(8.0, 20.0, pu.shape)
    limbs = left_right_limbs(names)
    Xf = np.ascontiguousarray(X.reshape(-1, 3).T)
    views = [Views(x, y, pu, pv, w.copy(), valid.copy(), tau * tau) for _ in range(2)]
    want = _left_right.drop_misfits(obs.cams, J, limbs, Xf, views[0], tau)
    got = steps.drop_misfits(obs.cams, J, limbs, Xf, views[1], tau)
    left_out = valid & ~views[0].valid
    assert 0.05 < left_out.reshape(6, T, J)[:, :, :6].mean() < 0.3  # made-up legs, and some outlier-ridden ones
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(views[1].valid, views[0].valid)
    np.testing.assert_array_equal(views[1].weight, views[0].weight)


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend: unknown value 'cuda'; expected one of 'auto', 'numpy', 'numba'"):
        triangulate_robust(ring(4), np.zeros((2, 4, 2)), backend="cuda")


def test_auto_backend_falls_back_to_numpy_without_numba(rng, monkeypatch):
    from mocap.triangulation import backend as backend_mod

    rig = ring(4)
    X = body_points(rng, (50,))
    xy = project_rig(rig, X)
    xy[:, 1] += 200.0  # an outlier view: RANSAC runs
    monkeypatch.setattr(backend_mod, "numba_available", lambda: False)  # as where numba does not import
    assert backend_mod.resolve_backend("auto") == "numpy"
    res = triangulate_robust(rig, xy, backend="auto")
    np.testing.assert_allclose(res.points, X, atol=1e-9)
    assert not res.inliers[:, 1].any()
    with pytest.raises(ValueError, match="numba"):
        triangulate_robust(rig, xy, backend="numba")


@pytest.mark.parametrize("value", ["numpy", "numba"])
def test_environment_variable_picks_the_auto_backend(monkeypatch, value):
    from mocap.triangulation import backend as backend_mod

    monkeypatch.setenv("MOCAP_BACKEND", value)
    monkeypatch.setattr(backend_mod, "numba_available", lambda: True)
    backend_mod.env_backend.cache_clear()
    try:
        assert backend_mod.resolve_backend("auto") == value
        assert backend_mod.resolve_backend("numpy") == "numpy"  # an explicit choice wins
        monkeypatch.setenv("MOCAP_BACKEND", "numpy" if value == "numba" else "numba")
        assert backend_mod.resolve_backend("auto") == value  # read once per process
    finally:
        backend_mod.env_backend.cache_clear()


def test_unknown_environment_backend_is_rejected(monkeypatch):
    from mocap.triangulation import backend as backend_mod

    monkeypatch.setenv("MOCAP_BACKEND", "cuda")
    backend_mod.env_backend.cache_clear()
    try:
        with pytest.raises(ValueError, match="MOCAP_BACKEND: unknown value 'cuda'; expected one of 'numpy', 'numba'"):
            triangulate_dlt(ring(3), np.zeros((2, 3, 2)))
    finally:
        backend_mod.env_backend.cache_clear()


def test_numpy_backend_does_not_import_numba():
    """Importing the package and running the numpy backend never imports numba (~0.3 s): the
    compiled kernels are imported, and compiled, only where ``backend`` resolves to numba."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; sys.path.insert(0, 'tests'); import conftest, test_triangulation as t; "
            "rig = t.ring(4); xy = t.project_rig(rig, np.zeros((3, 3)) + [0, 0, 1.0]); "
            "t.triangulate_robust(rig, xy, backend='numpy'); t.triangulate_dlt(rig, xy, backend='numpy'); "
            "assert 'numba' not in sys.modules, 'numba imported'")
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_numba_temporal_reference_equals_numpy(rng):
    """Compiled neighbour median: the same values as ``temporal_reference`` with missing frames."""
    steps = _numba_steps()
    from mocap.triangulation import temporal_reference

    pts = rng.normal(0, 1, (40, 5, 3))
    pts[rng.random((40, 5)) < 0.3] = np.nan
    pts[:, 2] = np.nan  # a joint never seen
    want = temporal_reference(pts)
    got = steps.temporal_reference(pts.reshape(-1, 3).T, 40).T.reshape(pts.shape)
    assert np.isnan(want[:, 2]).all() and np.isfinite(want).mean() > 0.5
    np.testing.assert_array_equal(got, want)


def test_numba_backend_does_not_depend_on_thread_count(rng):
    """Every point is computed as in one thread: one thread and several give equal results."""
    pytest.importorskip("numba")
    import numba

    rig = ring(8)
    xy = project_rig(rig, body_points(rng, (3000,))) + rng.normal(0, 1.0, (3000, 8, 2))
    out = rng.random(xy.shape[:-1]) < 0.2
    xy[out] += rng.uniform(30, 300, (out.sum(), 2))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = triangulate_robust(rig, xy, backend="numba")
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b = triangulate_robust(rig, xy, backend="numba")
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(b.inliers, a.inliers)
    np.testing.assert_array_equal(b.points, a.points)


def test_numba_eigh_fallbacks_equal_numpy(rng, monkeypatch):
    """The numpy fallbacks of the compiled path (points the kernels leave to ``eigh``: step 1 and
    the inlier refit) give the same inliers and points (1e-9 m) as the numpy backend. The kernels
    are made to flag every other point, as they do for ill-conditioned ones."""
    _numba_steps()
    from mocap.triangulation import _numba_kernels as nk

    step1, refit = nk.step1_kernel, nk.refit_kernel
    flagged = []

    def step1_flagging(*args):
        X, used, status = step1(*args)
        status[::2][status[::2] == 0] = 2  # "not converged, views agree": finished by eigh
        flagged.append(np.count_nonzero(status == 2))
        return X, used, status

    def refit_flagging(*args):
        bad = refit(*args)
        bad[::2] = True
        return bad

    monkeypatch.setattr(nk, "step1_kernel", step1_flagging)
    monkeypatch.setattr(nk, "refit_kernel", refit_flagging)
    rig = ring(6)
    xy = project_rig(rig, body_points(rng, (400,))) + rng.normal(0, 1.0, (400, 6, 2))
    xy[::3, 1] += 250.0
    a = triangulate_robust(rig, xy, backend="numpy")
    b = triangulate_robust(rig, xy, backend="numba")
    assert flagged[0] > 50
    np.testing.assert_array_equal(b.inliers, a.inliers)
    np.testing.assert_allclose(b.points, a.points, rtol=0, atol=1e-9)


def test_limb_joint_in_two_pairs_is_rejected():
    with pytest.raises(ValueError, match="one left/right pair"):
        triangulate_robust(ring(4), np.zeros((3, 4, 4, 2)), limbs=[[(0, 1)], [(1, 2)]])
