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
