"""Extrinsics from the performers (`mocap calibrate extrinsics --people`), Pose2Sim's real take
against its Qualisys calibration: lenses from `mocap calibrate intrinsics` on the checkerboards,
poses from the OpenPose keypoints of the balancing trial, scale from the stated height 1.72 m."""

import numpy as np
import pytest

from mocap.calibration.io import load_calibration
from mocap.calibration.people import select_performer
from mocap.calibration.report import triangulate_corners
from mocap.cli import main
from mocap.geometry.camera import Camera, Rig, pixel_to_normalized
from mocap.io.openpose import load_openpose

from conftest import POSE2SIM

TAKE = POSE2SIM / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial"
QUALISYS = POSE2SIM / "S00_Calibration" / "Calib_qualisys.toml"
CAMS = ["cam01", "cam02", "cam03", "cam04"]


@pytest.fixture(scope="module")
def lenses(tmp_path_factory):
    out = tmp_path_factory.mktemp("people") / "intrinsics.yaml"
    args = ["calibrate", "intrinsics", "--board", "checkerboard_4x7_60mm", "--out", str(out)]
    for c in CAMS:
        args += ["--camera", f"{c}={POSE2SIM}/S00_Calibration/intrinsics/int_{c}_img"]
    assert main(args) == 0
    return out


def _people(intrinsics, out):
    return main(["calibrate", "extrinsics", "--intrinsics", str(intrinsics), "--people", str(TAKE),
                 "--keypoint-format", "body_25b", "--height", "1.72", "--frame-step", "2", "--out", str(out)])


@pytest.fixture(scope="module")
def from_lenses(lenses):
    out = lenses.parent / "calibration.yaml"
    assert _people(lenses, out) == 0
    return load_calibration(out)


def _compare(rig, ref):
    """Centre errors (m), orientation errors (deg) and scale after a similarity alignment (Umeyama)."""
    A, B = rig.centers, np.stack([ref[n].center for n in rig.names])
    ma, mb = A.mean(0), B.mean(0)
    U, S, Vt = np.linalg.svd((B - mb).T @ (A - ma))
    D = np.diag([1, 1, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    s = np.sum(S * np.diag(D)) / np.sum((A - ma) ** 2)
    centre = np.linalg.norm(s * A @ R.T + mb - s * R @ ma - B, axis=1)
    ang = np.array([np.degrees(np.arccos(np.clip((np.trace((c.R @ R.T).T @ ref[c.name].R) - 1) / 2, -1, 1)))
                    for c in rig])
    return centre, ang, s


def lens_rotation(lens, ref) -> np.ndarray:
    """The rotation ``(3, 3)`` taking ``lens``'s pixel rays to ``ref``'s (same pixels, least squares
    over a 9 x 9 grid on the central 80 % of the image): two lenses with different principal points
    put the same pixel on rays a fixed rotation apart, so a camera solved with ``lens`` seeing the
    world exactly as ``ref``'s camera does differs from it in orientation by this much."""
    w, h = ref.size
    u, v = np.meshgrid(np.linspace(0.1 * w, 0.9 * w, 9), np.linspace(0.1 * h, 0.9 * h, 9))
    p = np.c_[u.ravel(), v.ravel()]
    a = np.c_[pixel_to_normalized(lens, p), np.ones(len(p))]
    b = np.c_[pixel_to_normalized(ref, p), np.ones(len(p))]
    U, _, Vt = np.linalg.svd(b.T @ a)
    return U @ np.diag([1, 1, np.sign(np.linalg.det(U @ Vt))]) @ Vt


def _angle_deg(R) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))))


def test_checkerboard_lenses_held(from_lenses):
    qualisys = load_calibration(QUALISYS)
    centre, ang, s = _compare(from_lenses, qualisys)
    # Qualisys's cameras turned by what the checkerboard lenses alone imply (their principal points
    # sit 17-45 px from Qualisys's): the orientation a perfect solve with these lenses would give
    offset = {c.name: lens_rotation(c, qualisys[c.name]) for c in from_lenses}
    turned = {n: offset[n].T @ qualisys[n].R for n in from_lenses.names}
    ref = Rig(tuple(Camera(n, q.size, q.K, q.dist, turned[n], -turned[n] @ q.center)
                    for n, q in ((n, qualisys[n]) for n in from_lenses.names)))
    pointing = _compare(from_lenses, ref)[1]
    print(f"centres {np.round(centre * 100, 1)} cm, angles {np.round(ang, 2)} deg (lens offsets alone "
          f"{np.round([_angle_deg(r) for r in offset.values()], 2)} deg; beyond them {np.round(pointing, 2)} deg), "
          f"scale {s:.4f}")
    # measured 1.44 % short (2.06 % when the trunk counted at its median length over the take: the
    # performer leans); through Qualisys's own calibration the same joints measure 1.700 m for the
    # stated 1.72 m (1.17 % short: heel and head-top keypoints lie inside the body)
    assert abs(s - 1) < 0.02
    assert centre.max() < 0.05  # measured 4.4 / 3.3 / 1.9 / 2.7 cm
    # Measured 1.63 / 0.92 / 2.06 / 0.58 deg against Qualisys's orientations: the lens offsets alone
    # are 1.10 / 1.02 / 1.63 / 1.11 deg, so 1 deg cannot be reached with these lenses held; beyond
    # them (the solve's own error) 0.86 / 0.23 / 0.85 / 0.63 deg.
    assert pointing.max() < 1.0 and ang.max() < 2.5


def test_qualisys_lenses_held(tmp_path):
    out = tmp_path / "calibration.yaml"
    assert _people(QUALISYS, out) == 0
    centre, ang, s = _compare(load_calibration(out), load_calibration(QUALISYS))
    print(f"centres {np.round(centre * 100, 1)} cm, angles {np.round(ang, 2)} deg, scale {s:.4f}")
    assert ang.max() < 1.0  # measured 0.28-0.88 deg
    assert centre.max() < 0.05 and abs(s - 1) < 0.025  # measured 1.9-4.2 cm, scale 1.99 % (2.6 % before)


def _median_reprojection(rig):
    """Median reprojection px per camera (``cam01``...) of the performer's joints triangulated through ``rig``."""
    kp = load_openpose(TAKE, "body_25b")
    perf = select_performer(kp.data)  # (T, C, J, 3)
    xy = np.moveaxis(perf[..., :2], 1, 0)  # (C, T, J, 2)
    X = triangulate_corners(rig, xy)  # (T, J, 3)
    from mocap.geometry.camera import project

    return {f"cam{i + 1:02d}": float(np.nanmedian(np.linalg.norm(project(c, X.reshape(-1, 3)) - xy[i].reshape(-1, 2), axis=-1)))
            for i, c in enumerate(rig)}


def test_keypoints_reproject_as_well_as_through_qualisys(from_lenses):
    ours, theirs = _median_reprojection(from_lenses), _median_reprojection(load_calibration(QUALISYS))
    print("median px, ours / Qualisys: " + ", ".join(f"{n} {ours[n]:.1f} / {theirs[n]:.1f}" for n in CAMS))
    for n in CAMS:
        assert ours[n] <= theirs[n] * 1.05, (n, ours[n], theirs[n])


def test_people_jacobian_matches_finite_differences():
    """The bundle adjustment's analytic Jacobian (free camera poses, then points) against central
    differences of the projection, on a random 4-camera problem with distorted lenses."""
    from mocap.calibration.people import people_jacobian
    from mocap.calibration.people import project_joints as project_people

    rng = np.random.default_rng(0)
    C, N, M, fixed = 4, 40, 120, 1
    K = np.tile(np.array([[1600.0, 0, 540], [0, 1600, 960], [0, 0, 1]]), (C, 1, 1))
    dist = rng.normal(0, 0.05, (C, 5))
    pose = np.c_[rng.normal(0, 0.5, (C, 3)), rng.normal(0, 0.3, (C, 2)), np.full(C, 4.0)]
    X = rng.normal(0, 0.5, (N, 3))
    cam, pt = rng.integers(0, C, M), rng.integers(0, N, M)
    free = [c for c in range(C) if c != fixed]

    def f(x):
        p = pose.copy()
        p[free] = x[: 6 * (C - 1)].reshape(-1, 6)
        return project_people(K, dist, p, x[6 * (C - 1):].reshape(N, 3), cam, pt).ravel()

    x0, h = np.r_[pose[free].ravel(), X.ravel()], 1e-6
    numeric = np.stack([(f(x0 + h * e) - f(x0 - h * e)) / (2 * h) for e in np.eye(len(x0))], axis=1)
    analytic = people_jacobian(K, dist, pose, X, cam, pt, fixed).toarray()
    assert np.abs(analytic - numeric).max() < 1e-5 * np.abs(numeric).max()  # measured 4e-8 of 874


def test_stature_counts_the_leaning_trunk_at_its_upright_length():
    """A performer upright in 40 % of the frames and leaning (trunk 6 cm shorter, as the hip keypoints
    ride up when bending) in the rest: the stature is the upright one, and the rigid leg segments'
    scatter does not move it."""
    from mocap.calibration.people import stature

    names = ("left_heel", "right_heel", "left_ankle", "right_ankle", "left_knee", "right_knee", "left_hip",
             "right_hip", "neck", "head_top")
    z = {"heel": 0.0, "ankle": 0.07, "knee": 0.50, "hip": 0.92, "neck": 1.48, "head_top": 1.75}
    T, rng = 50, np.random.default_rng(1)
    P = np.zeros((T, len(names), 3))
    for j, n in enumerate(names):
        P[:, j, 2] = z[n.split("_", 1)[-1] if n.startswith(("left", "right")) else n]
        P[:, j, 0] = 0.1 if n.startswith("left") else -0.1 if n.startswith("right") else 0.0
    leaning = rng.permutation(T) < 30
    P[leaning, names.index("neck"):, 2] -= 0.06  # trunk 0.50 m instead of 0.56 m; the head rides along
    P[:, :6, 2] += rng.normal(0, 0.003, (T, 6))  # legs: detector scatter
    assert abs(stature(P, names) - 1.75) < 0.01  # the median trunk would give 1.69 m
