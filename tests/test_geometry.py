"""Geometry core: projection, undistortion, rays, epipolar geometry, rotations."""

import numpy as np
import pytest

from mocap.geometry import (
    Camera, Rig, epipolar_distance, euler_to_rotmat, fundamental_matrix, normalize_camera_name,
    pixel_to_ray, project, quat_to_rotmat, rotation_between, rotmat_to_euler, rotmat_to_quat,
    rotmat_to_rotvec, rotvec_to_rotmat, undistort_points,
)
from mocap._checks import check_shape


from conftest import look_at_camera


@pytest.fixture
def cams():
    return [look_at_camera(f"cam{i}", [4 * np.cos(a), 4 * np.sin(a), 2.0]) for i, a in enumerate(np.linspace(0, 2 * np.pi, 4, endpoint=False))]


def test_project_known_point_without_distortion():
    cam = Camera("c", (640, 480), np.array([[500, 0, 320], [0, 500, 240], [0, 0, 1.0]]))
    np.testing.assert_allclose(project(cam, np.array([0.1, -0.2, 2.0])), [345.0, 190.0], atol=1e-12)


def test_project_matches_opencv(cams, rng):
    cv2 = pytest.importorskip("cv2")
    cam = cams[1]
    pts = rng.normal([0, 0, 1], 0.6, (50, 3))
    ours = project(cam, pts)
    ref, _ = cv2.projectPoints(pts, cv2.Rodrigues(cam.R)[0], cam.t, cam.K, cam.dist)
    np.testing.assert_allclose(ours, ref[:, 0], atol=1e-6)


def test_project_undistort_round_trip(cams, rng):
    cam = cams[0]
    pts = rng.normal([0, 0, 1], 0.5, (7, 11, 3))
    xy = project(cam, pts)
    und = undistort_points(cam, xy)
    ref = project(cam, pts, distort=False)
    np.testing.assert_allclose(und, ref, atol=1e-8)


def test_undistort_matches_opencv(cams, rng):
    cv2 = pytest.importorskip("cv2")
    cam = cams[2]
    xy = rng.uniform([100, 100], [1800, 1000], (200, 2))
    ref = cv2.undistortPointsIter(xy[:, None], cam.K, cam.dist, None, cam.K, (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-14))[:, 0]
    np.testing.assert_allclose(undistort_points(cam, xy), ref, atol=1e-4)


def test_behind_camera_is_nan(cams):
    cam = cams[0]
    behind = cam.center + 2 * (cam.center - np.array([0, 0, 1.0]))
    assert np.isnan(project(cam, behind)).all()


def test_pixel_ray_passes_through_point(cams, rng):
    cam = cams[3]
    pts = rng.normal([0, 0, 1], 0.5, (20, 3))
    rays = pixel_to_ray(cam, project(cam, pts))
    v = pts - cam.center
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    np.testing.assert_allclose(rays, v, atol=1e-9)


def test_fundamental_matrix_epipolar_constraint(cams, rng):
    a, b = cams[0], cams[1]
    pts = rng.normal([0, 0, 1], 0.5, (30, 3))
    F = fundamental_matrix(a, b)
    d = epipolar_distance(F, project(a, pts, distort=False), project(b, pts, distort=False))
    assert d.max() < 1e-6
    d_wrong = epipolar_distance(F, project(a, pts, distort=False), project(b, pts[::-1], distort=False))
    assert np.median(d_wrong) > 5.0


def test_rig_lookup_and_name_matching(cams):
    rig = Rig(tuple(cams))
    assert rig.index("CAM_2") == 2
    assert normalize_camera_name("cam01_json") == normalize_camera_name("cam_01") == normalize_camera_name("cam1")
    with pytest.raises(ValueError, match="unknown camera 'cam9'"):
        rig.index("cam9")
    assert rig.P.shape == (4, 3, 4)
    np.testing.assert_allclose(np.linalg.norm(rig.centers[:, :2], axis=1), 4.0)


def test_camera_rejects_non_rotation():
    with pytest.raises(ValueError, match="camera bad: R: not a rotation"):
        Camera("bad", (10, 10), np.eye(3), R=np.diag([1.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"camera bad: K: expected shape \(3, 3\)"):
        Camera("bad", (10, 10), np.eye(2))


def test_check_shape_message():
    with pytest.raises(ValueError, match=r"xy: expected shape \(\.\.\., C, 2\), got \(4, 3\)"):
        check_shape(np.zeros((4, 3)), "... C 2", "xy")


def test_rotation_round_trips(rng):
    rv = rng.normal(size=(100, 3))
    R = rotvec_to_rotmat(rv)
    np.testing.assert_allclose(rotvec_to_rotmat(rotmat_to_rotvec(R)), R, atol=1e-12)
    np.testing.assert_allclose(quat_to_rotmat(rotmat_to_quat(R)), R, atol=1e-12)
    for order in ("ZXY", "ZYX", "XYZ", "YXZ", "zyx", "ZXZ"):
        np.testing.assert_allclose(euler_to_rotmat(rotmat_to_euler(R, order), order), R, atol=1e-10)


def test_euler_near_gimbal_lock(rng):
    e = np.stack([rng.uniform(-3, 3, 50), np.full(50, np.pi / 2) - rng.uniform(0, 1e-7, 50), rng.uniform(-3, 3, 50)], -1)
    R = euler_to_rotmat(e, "ZXY")
    np.testing.assert_allclose(euler_to_rotmat(rotmat_to_euler(R, "ZXY"), "ZXY"), R, atol=1e-12)


def test_euler_intrinsic_order_is_matrix_product():
    a, b, c = 0.3, -0.7, 1.1
    Rz = rotvec_to_rotmat([0, 0, a]); Rx = rotvec_to_rotmat([b, 0, 0]); Ry = rotvec_to_rotmat([0, c, 0])
    np.testing.assert_allclose(euler_to_rotmat([a, b, c], "ZXY"), Rz @ Rx @ Ry, atol=1e-14)


def test_rotation_between_incl_antiparallel(rng):
    a = rng.normal(size=(50, 3)); b = rng.normal(size=(50, 3))
    a[0] = [0, 0, 1.0]; b[0] = [0, 0, -2.0]
    R = rotation_between(a, b)
    bn = b / np.linalg.norm(b, axis=-1, keepdims=True)
    an = a / np.linalg.norm(a, axis=-1, keepdims=True)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", R, an), bn, atol=1e-12)


def test_euler_order_validation():
    with pytest.raises(ValueError, match="order"):
        euler_to_rotmat(np.zeros(3), "ZXy")


# -- the lens model (mocap.geometry.lens and its compiled twin) ----------------------------------

LENSES = [  # k1 k2 p1 p2 k3: none, mild barrel, the test rig's, strong barrel, pincushion, tangential
    (0.0, 0.0, 0.0, 0.0, 0.0),
    (-0.1, 0.01, 0.0, 0.0, 0.0),
    (-0.25, 0.08, 1e-3, -5e-4, -0.01),
    (-0.4, 0.2, 2e-3, 1e-3, -0.05),
    (0.15, -0.02, -1e-3, 2e-3, 0.01),
    (0.05, 0.0, 5e-3, -5e-3, 0.0),
]


@pytest.fixture(params=range(len(LENSES)), ids=[f"lens{i}" for i in range(len(LENSES))])
def dist(request):
    return np.array(LENSES[request.param])


def _points_in_view(rng, n=2000, half_fov=0.6):
    """Undistorted normalised points over a ~62° x 62° field (|x|, |y| <= 0.6)."""
    return rng.uniform(-half_fov, half_fov, (n, 2))


def test_distort_undistort_round_trip(rng, dist):
    from mocap.geometry import lens

    xy = _points_in_view(rng)
    back = lens.undistort_normalized(lens.distort_normalized(xy, dist), dist)
    np.testing.assert_allclose(back, xy, rtol=0, atol=1e-14)


def test_undistort_distort_round_trip_in_pixels(rng, dist):
    """Distorted pixels of a 1000 px lens -> undistorted -> distorted again, within 1e-10 px."""
    from mocap.geometry import lens

    xy_d = lens.distort_normalized(_points_in_view(rng), dist)
    again = lens.distort_normalized(lens.undistort_normalized(xy_d, dist), dist)
    np.testing.assert_allclose(1000.0 * again, 1000.0 * xy_d, rtol=0, atol=1e-10)


def test_compiled_twin_equals_numpy_lens(rng, dist):
    """The scalar numba twin agrees with the vectorised numpy model to 1e-10 px (f = 1000 px) for
    distortion, its Jacobian and the inverse, including its NaN beyond the fold."""
    pytest.importorskip("numba")
    from mocap.geometry import lens, lens_compiled

    xy = _points_in_view(rng, 500)
    xy[:3] = [[30.0, -40.0], [np.nan, 0.1], [0.0, 0.0]]  # beyond any fold, missing, the centre
    k = tuple(dist)
    want = lens.distort_with_jacobian(xy[:, 0], xy[:, 1], k)
    want_inv = lens.undistort(want[0], want[1], k)
    got = np.array([lens_compiled.distort_point_jacobian(x, y, *k) for x, y in xy]).T
    got_inv = np.array([lens_compiled.undistort_point(xd, yd, *k, lens.UNDISTORT_MAX_ITERATIONS,
                                                      lens.UNDISTORT_TOLERANCE) for xd, yd in zip(*want[:2])]).T
    np.testing.assert_allclose(1000.0 * got, 1000.0 * np.array(want), rtol=0, atol=1e-10)
    np.testing.assert_allclose(1000.0 * got_inv, 1000.0 * np.array(want_inv), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(np.isnan(got_inv), np.isnan(want_inv))
    assert np.isnan(want_inv[0][1]) and np.isfinite(want_inv[0][3:]).all()


def test_undistort_is_nan_or_right_far_outside_the_field(rng, dist):
    """Far outside the lens' valid field (the model folds over) Newton may find no inverse: the
    answer is then NaN, never a wrong point. Wherever it is finite it distorts back exactly."""
    from mocap.geometry import lens

    xy_d = rng.uniform(-20.0, 20.0, (5000, 2))
    und = lens.undistort_normalized(xy_d, dist)
    ok = np.isfinite(und).all(-1)
    np.testing.assert_allclose(lens.distort_normalized(und[ok], dist), xy_d[ok], rtol=1e-12, atol=1e-12)
    assert np.isnan(und[~ok]).all()


def test_undistort_stops_by_its_iteration_budget(rng):
    """A point not converged after ``iterations`` Newton steps is NaN; with the default budget the
    same points converge."""
    from mocap.geometry import lens

    dist = np.array(LENSES[3])
    xy_d = lens.distort_normalized(_points_in_view(rng, 100), dist)
    xy_d[0] = np.nan
    assert np.isnan(lens.undistort_normalized(xy_d, dist, iterations=1)[1:]).any()
    full = lens.undistort_normalized(xy_d, dist)
    assert np.isnan(full[0]).all() and np.isfinite(full[1:]).all()


def test_distortion_jacobians_match_finite_differences(rng, dist):
    from mocap.geometry import lens

    xy = _points_in_view(rng, 50)
    h = 1e-6
    J = lens.distort_jacobian(xy, dist)
    for a in range(2):
        e = np.zeros(2)
        e[a] = h
        fd = (lens.distort_normalized(xy + e, dist) - lens.distort_normalized(xy - e, dist)) / (2 * h)
        np.testing.assert_allclose(J[:, :, a], fd, rtol=0, atol=1e-8)
    Jk = lens.distort_coefficient_jacobian(xy)
    for a in range(5):
        e = np.zeros(5)
        e[a] = h
        fd = (lens.distort_normalized(xy, dist + e) - lens.distort_normalized(xy, dist - e)) / (2 * h)
        np.testing.assert_allclose(Jk[:, :, a], fd, rtol=0, atol=1e-8)


def test_distortion_shape_is_checked():
    from mocap.geometry import lens

    with pytest.raises(ValueError, match=r"dist: expected shape \(\.\.\., 5\)"):
        lens.distort_normalized(np.zeros((3, 2)), np.zeros(4))


def test_lens_polynomial_is_defined_only_in_lens_modules():
    """One lens model: the distortion polynomial (its Horner radial term or its tangential
    terms) appears in the package source only in ``geometry/lens.py`` and its compiled twin,
    and every user calls those functions."""
    import pathlib
    import re

    import mocap
    from mocap.calibration import bundle
    from mocap.geometry import camera, lens
    from mocap.triangulation import _cameras, uncertainty

    root = pathlib.Path(mocap.__file__).parent
    formula = re.compile(r"r2\s*\*\s*\(\s*k1\b|\bp[12]\s*\*\s*\(\s*r2\s*\+\s*2|2\s*\*\s*k2\s*\+\s*3\s*\*\s*k3")
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if formula.search(p.read_text()))
    assert found == ["geometry/lens.py", "geometry/lens_compiled.py"]
    assert camera.distort_normalized is lens.distort_normalized
    assert camera.undistort_normalized is lens.undistort_normalized
    assert bundle.distort_jacobian is lens.distort_jacobian
    assert _cameras.lens is lens and uncertainty.distort_with_jacobian is lens.distort_with_jacobian
