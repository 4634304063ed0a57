"""Bad input: each problem gives a message naming cameras and frames, and the rest is still solved."""

import numpy as np
import pytest

from mocap.calibration.boards import Board
from mocap.calibration.detect_corners import Detections, detect_board
from mocap.calibration.render import project_studio, synthetic_studio
from mocap.calibration.rig import RigCalibrationConfig, calibrate_rig_from_detections
from mocap.cli.calibrate import parse_camera_sources
from mocap.errors import CalibrationError

BOARD = Board("checkerboard", 9, 6, 0.08, name="synth")
SYMMETRIC = Board("checkerboard", 8, 6, 0.08, name="symmetric")  # 9 x 7 squares: same colour at both ends


def _angle_deg(Ra, Rb):
    return np.degrees(np.arccos(np.clip((np.trace(Ra.T @ Rb) - 1) / 2, -1, 1)))


def _aligned_errors(rig, truth):
    """Centre (m) and orientation (deg) errors after a rigid alignment on the camera centres."""
    A, B = rig.centers, np.stack([truth[n].center for n in rig.names])
    a, b = A - A.mean(0), B - B.mean(0)
    U, _, Vt = np.linalg.svd(b.T @ a)
    R = U @ np.diag([1, 1, np.linalg.det(U @ Vt)]) @ Vt
    centre = np.linalg.norm(a @ R.T - b, axis=1)
    ang = [_angle_deg(c.R @ R.T, truth[c.name].R) for c in rig]
    return centre, np.array(ang)


@pytest.fixture(scope="module")
def studio():
    return synthetic_studio(BOARD, 5, 20, np.random.default_rng(3))


@pytest.fixture
def dets(studio):
    return project_studio(BOARD, studio, np.random.default_rng(4), noise_px=0.05)


def test_frame_without_board_is_named(studio, dets):
    res = calibrate_rig_from_detections(dets, BOARD)
    empty = np.flatnonzero(~studio.visible[1])
    msg = [m for m in res.messages if m.startswith("camera cam02: no board")]
    assert msg and f"frame {empty[0]}" in msg[0], res.messages
    assert res and len(res.rig) == 5


def test_camera_that_never_sees_the_board(studio, dets):
    d = dets["cam03"]
    dets["cam03"] = Detections(d.camera, np.full_like(d.xy, np.nan), d.frame_ids, d.image_size, "cam03.mp4")
    res = calibrate_rig_from_detections(dets, BOARD)
    assert res.unsolved == ["cam03"]
    assert any("camera cam03: board found in 0 of 20 frames of cam03.mp4" in m for m in res.messages), res.messages
    centre, ang = _aligned_errors(res.rig, studio.rig)
    assert res.rig.names == ["cam01", "cam02", "cam04", "cam05"]
    assert centre.max() < 5e-3 and ang.max() < 0.2


def test_disconnected_camera_with_its_own_frames_is_reported():
    studio = synthetic_studio(BOARD, 4, 30, np.random.default_rng(8))
    dets = project_studio(BOARD, studio, np.random.default_rng(9), noise_px=0.05)
    # cam02 keeps only the frames that no other camera sees
    shared = np.zeros(30, bool)
    for n, d in dets.items():
        if n != "cam02":
            shared |= np.isfinite(d.xy[:, 0, 0])
    d = dets["cam02"]
    xy = d.xy.copy()
    xy[shared] = np.nan
    # and add private views of its own: the board shown only to it (re-use its frames, shifted ids)
    extra = np.isfinite(d.xy[:, 0, 0]) & shared
    xy_extra = d.xy[extra]
    dets["cam02"] = Detections("cam02", np.concatenate([xy, xy_extra]),
                               np.concatenate([d.frame_ids, 1000 + np.arange(extra.sum())]), d.image_size, "cam02")
    res = calibrate_rig_from_detections(dets, BOARD)
    assert res.unsolved == ["cam02"]
    assert any("camera cam02: shares no simultaneous board view with cam01, cam03, cam04" in m for m in res.messages), res.messages
    assert res.intrinsics["cam02"].ok  # its intrinsics are still calibrated
    assert set(res.rig.names) == {"cam01", "cam03", "cam04"}


def test_symmetric_board_seen_upside_down_is_resolved():
    studio = synthetic_studio(SYMMETRIC, 5, 24, np.random.default_rng(11))
    dets = project_studio(SYMMETRIC, studio, np.random.default_rng(12), noise_px=0.05)
    # a real detector cannot tell a symmetric board's two ends apart: emulate its image-based rule
    flipped_any = False
    for d in dets.values():
        swap = d.xy[:, 0].sum(-1) > d.xy[:, -1].sum(-1)
        d.xy[swap] = d.xy[swap, ::-1]
        flipped_any |= bool(swap.any())
    assert flipped_any
    res = calibrate_rig_from_detections(dets, SYMMETRIC)
    assert res and not res.unsolved
    msgs = [m for m in res.messages if "symmetric board turned 180°" in m]
    assert msgs and msgs[0].startswith("camera cam") and "frame(s) (indices" in msgs[0]
    centre, ang = _aligned_errors(res.rig, studio.rig)
    assert centre.max() < 5e-3 and ang.max() < 0.2
    assert res.bundle.rms_px < 0.1


def test_bad_world_frame_names_camera_and_frames(studio, dets):
    not_seen = int(np.flatnonzero(~studio.visible[0])[0])
    with pytest.raises(CalibrationError, match=f"camera cam01 did not see the board in frame {not_seen}; choose one"):
        calibrate_rig_from_detections(dets, BOARD, RigCalibrationConfig(world_frame=f"cam01:{not_seen}"))
    with pytest.raises(CalibrationError, match="expected CAM:FRAME"):
        calibrate_rig_from_detections(dets, BOARD, RigCalibrationConfig(world_frame="camXX:1"))


def test_no_two_cameras_together_is_a_falsy_result(studio, dets):
    one = {"cam01": dets["cam01"]}
    res = calibrate_rig_from_detections(one, BOARD)
    assert not res and res.rig is None
    assert any("no two cameras" in m for m in res.messages)


def test_camera_argument_format():
    assert parse_camera_sources(["a=x/*.jpg", "b=y.mp4"]) == {"a": "x/*.jpg", "b": "y.mp4"}
    with pytest.raises(CalibrationError, match="expected NAME=PATH"):
        parse_camera_sources(["left.jpg"])
    with pytest.raises(CalibrationError, match="given twice"):
        parse_camera_sources(["a=x", "a=y"])


def test_blank_image_has_no_board():
    img = np.full((240, 320), 128, np.uint8)
    assert np.isnan(detect_board(img, BOARD)).all()


def test_bad_config_values():
    with pytest.raises(ValueError, match="loss"):
        RigCalibrationConfig(loss="l3")
    with pytest.raises(ValueError, match="stride"):
        RigCalibrationConfig(stride=0)
