"""Pose2Sim's checkerboard images (4 x 7 inner corners, 60 mm) against the Qualisys calibration."""

import pytest

from mocap.calibration.boards import load_board
from mocap.calibration.detect_corners import detect_source
from mocap.calibration.intrinsics import calibrate_intrinsics
from mocap.calibration.io import load_calibration

from conftest import POSE2SIM

CAMS = ["cam01", "cam02", "cam03", "cam04"]


@pytest.fixture(scope="module")
def qualisys(shared):
    return load_calibration(POSE2SIM / "S00_Calibration" / "Calib_qualisys.toml")


@pytest.fixture(scope="module")
def intrinsics(shared):
    board = load_board("checkerboard_4x7_60mm")
    out = {}
    for cam in CAMS:
        det = detect_source(cam, POSE2SIM / "S00_Calibration" / "intrinsics" / f"int_{cam}_img", board)
        out[cam] = (det, calibrate_intrinsics(det, board))
    return out


@pytest.mark.parametrize("cam", CAMS)
def test_fx_within_half_percent_of_qualisys(intrinsics, qualisys, cam):
    det, r = intrinsics[cam]
    assert r.ok, r.message
    assert det.image_size == (1088, 1920)
    fx, fy = r.K[0, 0] / qualisys[cam].K[0, 0] - 1, r.K[1, 1] / qualisys[cam].K[1, 1] - 1
    print(f"{cam}: fx {fx:+.3%}, fy {fy:+.3%} of Qualisys, rms {r.rms_px:.3f} px")
    # README: within 0.5 %. Measured fx -0.50 / +0.17 / -0.46 / -0.06 %, fy -0.49 / +0.15 / -0.50 /
    # -0.08 % (cam01-04): cam01's fx (-0.496 %) and cam03's fy (-0.497 %) leave almost no margin.
    assert abs(fx) < 0.005 and abs(fy) < 0.005, (r.K[0, 0], r.K[1, 1])
    assert r.rms_px < 0.25  # measured 0.19-0.22 px


def test_principal_point_offset_is_in_the_images_not_the_solve(intrinsics, qualisys):
    """The checkerboard principal points sit 17-46 px from Qualisys's (the 1.0-1.6 deg the performers'
    orientations cannot get below). Is it the solve (too rich a model, too little coverage: the board
    reached 35-47 % of the image)? The same views re-rendered through Qualisys's own lens (each view's
    board pose kept, 0.2 px noise) come back within a few px of Qualisys's principal point with no
    bias, so these views do hold the principal point; the real offsets are 8-20 of the fit's own
    standard deviations. Model selection by leave-one-view-out error (k1 k2 only, k3, tangential,
    rational: measured in the report) moves it by at most 4.5 px."""
    import dataclasses

    import cv2
    import numpy as np

    board = load_board("checkerboard_4x7_60mm")
    obj = board.object_points.astype(np.float64)
    rng = np.random.default_rng(3)
    for cam in CAMS:
        det, r = intrinsics[cam]
        ref = qualisys[cam]
        poses = [cv2.solvePnP(obj, det.xy[t], r.K, r.dist)[1:] for t in np.flatnonzero(r.used)]
        syn_off = []
        for _ in range(5):  # each view's board pose from the real fit, imaged by Qualisys's lens
            xy = np.full_like(det.xy, np.nan)
            for t, (rv, tv) in zip(np.flatnonzero(r.used), poses):
                xy[t] = cv2.projectPoints(obj, rv, tv, ref.K, ref.dist)[0].reshape(-1, 2) + rng.normal(0, 0.2, (len(obj), 2))
            syn_off.append(calibrate_intrinsics(dataclasses.replace(det, xy=xy), board).K[:2, 2] - ref.K[:2, 2])
        syn_off = np.mean(syn_off, 0)
        real_off = r.K[:2, 2] - ref.K[:2, 2]
        sd = r.sd[2:4]
        print(f"{cam}: real principal point {np.round(real_off, 1)} px off Qualisys's (sd {np.round(sd, 1)}: "
              f"{np.round(np.abs(real_off) / sd, 1)} sd); Qualisys's lens through the same views: "
              f"{np.round(syn_off, 1)} px (mean of 5)")
        # measured within 1.2 px (10 draws: no bias, spread 1.7-4.5 px as the fit's own sd says)
        assert np.all(np.abs(syn_off) < 5.0), (cam, syn_off)  # the views hold it
        assert np.linalg.norm(real_off) > 5 * np.linalg.norm(sd), (cam, real_off, sd)  # the images disagree
