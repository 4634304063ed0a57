"""OpenCV's stereo chessboard samples: our calibration against OpenCV's own answers.

The golden numbers come from outside: ``left_intrinsics.yml`` is OpenCV's calibration of the
left camera (fx = 535.9, mean reprojection 0.39 px), and ``cv2.stereoCalibrate`` run on the
same corners gives the reference baseline.
"""

import numpy as np
import pytest

from mocap.calibration.boards import load_board
from mocap.calibration.detect_corners import detect_sources
from mocap.calibration.intrinsics import calibrate_intrinsics
from mocap.calibration.rig import calibrate_rig_from_detections

OPENCV_FX = 535.9157  # left_intrinsics.yml camera_matrix[0, 0]


@pytest.fixture(scope="module")
def board():
    return load_board("checkerboard_9x6_25mm")


@pytest.fixture(scope="module")
def dets(shared, board):
    d = shared / "calibration" / "opencv_stereo_9x6"
    return detect_sources({"left": str(d / "left*.jpg"), "right": str(d / "right*.jpg")}, board)


@pytest.fixture(scope="module")
def result(dets, board):
    return calibrate_rig_from_detections(dets, board)


def test_every_sample_has_the_board(dets):
    for d in dets.values():
        assert d.valid.all() and d.xy.shape == (13, 54, 2)


def test_left_intrinsics_match_opencv(dets, board):
    r = calibrate_intrinsics(dets["left"], board)
    assert r.ok
    assert abs(r.K[0, 0] / OPENCV_FX - 1) < 0.005  # measured 534.08 (-0.34 %) with the board released
    assert r.rms_px <= 0.42


def test_both_cameras_find_the_same_board_warp(dets, board):
    """The board's corners released with each lens (cv2.calibrateCameraRO): the left and right
    cameras, from different images, must find the same out-of-plane warp of the one printed board
    (measured: up to 0.48 / 0.38 mm, the two warps within 0.1 mm of each other), and the residual
    must drop well below the flat board's."""
    import cv2

    obj = board.object_points.astype(np.float32)
    warps = []
    for d in dets.values():
        r = calibrate_intrinsics(d, board)
        assert r.board_warp_m > 2e-4, r.message  # released: the information criterion found the warp real
        out = cv2.calibrateCameraRO([obj] * len(d.xy), list(d.xy.astype(np.float32)), d.image_size,
                                    board.corner_grid[0] - 1, None, None)
        warps.append(np.asarray(out[5]).reshape(-1, 3)[:, 2])
        flat = cv2.calibrateCamera([obj] * len(d.xy), list(d.xy.astype(np.float32)), d.image_size, None, None)[0]
        print(f"{d.camera}: RMS {flat:.3f} px flat -> {r.rms_px:.3f} px released, warp {r.board_warp_m * 1e3:.2f} mm")
        assert r.rms_px < 0.7 * flat
    print(f"left-right warp difference: max {np.abs(warps[0] - warps[1]).max() * 1e3:.2f} mm")
    assert np.abs(warps[0] - warps[1]).max() < 0.15e-3


def test_rig_left_fx_within_half_percent_of_opencv(result):
    left = result.rig["left"]
    print(f"rig left fx {left.K[0, 0]:.3f} vs OpenCV {OPENCV_FX}: {abs(left.K[0, 0] / OPENCV_FX - 1):.2%}, "
          f"rms left {left.rms_px:.3f} px, bundle {result.bundle.rms_px:.3f} px")
    assert abs(left.K[0, 0] / OPENCV_FX - 1) < 0.005  # README: within 0.5 %; measured 0.41 %
    # README: RMS ≈ 0.19 px; measured 0.194 (left) and 0.195 px (bundle), 0.005 px margin.
    assert left.rms_px <= 0.20
    assert result.bundle.rms_px <= 0.20


def test_baseline_matches_stereo_calibrate(dets, board, result):
    import cv2

    left, right = dets["left"], dets["right"]
    obj = [board.object_points.astype(np.float32)] * 13
    il = [x.astype(np.float32) for x in left.xy]
    ir = [x.astype(np.float32) for x in right.xy]
    _, K1, d1, _, _ = cv2.calibrateCamera(obj, il, left.image_size, None, None)
    _, K2, d2, _, _ = cv2.calibrateCamera(obj, ir, right.image_size, None, None)
    rms, *_, R, T, _, _ = cv2.stereoCalibrate(obj, il, ir, K1, d1, K2, d2, left.image_size, flags=0)
    ref = np.linalg.norm(T)
    ours = np.linalg.norm(result.rig.centers[0] - result.rig.centers[1])
    print(f"baseline {ours:.6f}, cv2.stereoCalibrate {ref:.6f} (board units): {abs(ours / ref - 1):.2e}")
    assert abs(ours / ref - 1) < 1e-4, (ours, ref)  # README: within 0.01 %; measured 0.005 %


def test_metric_check_square_length(result):
    sq = result.report["square_length_check"]
    assert sq["n"] > 1000
    assert abs(sq["mean_error_mm"]) < 0.1 and sq["sd_error_mm"] < 0.3  # 25 mm squares
