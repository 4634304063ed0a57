"""A synthetic 6-camera studio with rendered board images: every unknown must be recovered.

Images are ray-cast through the true lenses (distortion included) with defocus blur, sensor
noise and a lighting gradient; cameras that do not see the board in a frame get an empty
background image. Frame 0 has the board on the floor at the world origin, so the calibrated
world must equal the true one without any alignment.
"""

import numpy as np
import pytest

from mocap.calibration.boards import Board
from mocap.calibration.detect_corners import detect_images
from mocap.calibration.io import load_calibration
from mocap.calibration.render import _background, render_board_view, synthetic_studio
from mocap.calibration.rig import RigCalibrationConfig, calibrate_rig_from_detections, write_calibration
from mocap.geometry.camera import project

BOARD = Board("checkerboard", 9, 6, 0.08, name="synth_9x6_80mm")
N_CAMERAS, N_FRAMES = 6, 20


def _angle_deg(Ra, Rb):
    return np.degrees(np.arccos(np.clip((np.trace(Ra.T @ Rb) - 1) / 2, -1, 1)))


@pytest.fixture(scope="module")
def studio():
    return synthetic_studio(BOARD, N_CAMERAS, N_FRAMES, np.random.default_rng(1))


@pytest.fixture(scope="module")
def dets(studio):
    rng = np.random.default_rng(2)
    out = {}
    for c, cam in enumerate(studio.rig):
        w, h = cam.size
        images = [render_board_view(BOARD, cam, cam.cam_from_world @ T, rng, blur_sigma_px=0.8, noise_std=3.0)
                  if studio.visible[c, f] else np.clip(_background(h, w, rng), 0, 255).astype(np.uint8)
                  for f, T in enumerate(studio.world_from_board)]
        out[cam.name] = detect_images(cam.name, images, BOARD, thorough=False)  # video-style fast search
    return out


@pytest.fixture(scope="module")
def result(studio, dets):
    floor_cam = next(n for n, d in dets.items() if d.valid[0])  # a camera that found the floor board
    return calibrate_rig_from_detections(dets, BOARD, RigCalibrationConfig(world_frame=f"{floor_cam}:0"))


def test_rendered_corners_are_subpixel_accurate(studio, dets):
    errs = []
    for c, cam in enumerate(studio.rig):
        for f in np.flatnonzero(studio.visible[c]):
            T = studio.world_from_board[f]
            truth = project(cam, BOARD.object_points @ T[:3, :3].T + T[:3, 3])
            xy = dets[cam.name].xy[f]
            if np.isfinite(xy).all():
                errs.append(np.linalg.norm(xy - truth, axis=-1))
    errs = np.concatenate(errs)
    assert len(errs) > 0.9 * studio.visible.sum() * BOARD.n_corners  # almost every visible board found
    assert np.sqrt(np.mean(errs ** 2)) < 0.1


def test_cameras_recovered_in_the_true_world(studio, result):
    assert result and not result.unsolved
    for cam in result.rig:
        true = studio.rig[cam.name]
        assert np.linalg.norm(cam.center - true.center) < 2e-3, cam.name  # 2 mm
        assert _angle_deg(cam.R, true.R) < 0.1, cam.name  # 0.1 degree
        assert abs(cam.K[0, 0] / true.K[0, 0] - 1) < 3e-3, cam.name  # 0.3 %
        assert abs(cam.K[1, 1] / true.K[1, 1] - 1) < 3e-3, cam.name


def test_square_length_check_is_sub_millimetre(result):
    sq = result.report["square_length_check"]
    assert abs(sq["mean_error_mm"]) < 0.1 and sq["sd_error_mm"] < 0.5


def test_report_and_calibration_written_side_by_side(result, tmp_path):
    paths = write_calibration(result, tmp_path / "calibration.yaml")
    names = {p.name for p in paths}
    assert {"calibration.yaml", "calibration_report.yaml", "calibration_report.md"} <= names
    assert {f"calibration_coverage_cam{c:02d}.png" for c in range(1, N_CAMERAS + 1)} <= names
    back = load_calibration(tmp_path / "calibration.yaml")
    assert back.names == result.rig.names
    np.testing.assert_allclose(back.centers, result.rig.centers, atol=1e-12)
    md = (tmp_path / "calibration_report.md").read_text()
    assert "square length measured in 3D" in md and "cam01" in md


def test_flat_board_is_not_released():
    """A flat rendered board (OpenCV-sample-like lens, 13 views): the information criterion keeps the
    board flat (no warp fitted away from noise) and fx comes back within 0.05 %."""
    import cv2

    from mocap.calibration.boards import load_board
    from mocap.calibration.intrinsics import calibrate_intrinsics
    from mocap.geometry.camera import Camera

    board = load_board("checkerboard_9x6_25mm")
    K = np.array([[533.0, 0, 342], [0, 533, 234], [0, 0, 1]])
    cam = Camera("s", (640, 480), K, np.array([-0.285, 0.059, 0.001, 0, 0.09]), np.eye(3), np.zeros(3))
    rng = np.random.default_rng(0)
    images = []
    for _ in range(13):
        T = np.eye(4)
        T[:3, :3] = cv2.Rodrigues(rng.uniform(-0.6, 0.6, 3))[0]
        T[:3, 3] = [rng.uniform(-0.12, 0.02), rng.uniform(-0.08, 0.0), rng.uniform(0.3, 0.45)]
        images.append(render_board_view(board, cam, T, rng, blur_sigma_px=1.0))
    r = calibrate_intrinsics(detect_images("s", images, board), board)
    print(r.message)
    assert r.board_warp_m == 0.0
    assert abs(r.K[0, 0] / 533.0 - 1) < 5e-4  # measured -0.02 %
