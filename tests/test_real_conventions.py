"""Every convention at once, on the real Pose2Sim demo capture.

Qualisys calibration (mm, Qualisys camera axes, sub-pixel intrinsics) -> our Rig; Pose2Sim's TRC
(Y up) -> our world (Z up, m); OpenPose BODY_25B JSON -> Keypoints2D; camera names matched across
the three. If any of these is wrong, Pose2Sim's own 3D joints do not land on the 2D keypoints.

The TRC is a peer's triangulation (Pose2Sim keeps views up to 15 px reprojection error, and does
not undistort), not ground truth: agreement at the scale of ~10 px is what it can show.
"""

import numpy as np
import pytest

from conftest import POSE2SIM
from mocap.calibration.io import load_calibration
from mocap.geometry import Rig, project_rig
from mocap.io.openpose import align_to_rig, load_openpose
from mocap.io.trc import POSE2SIM_MARKER_TO_JOINT, read_trc, trc_to_world

CALIB = POSE2SIM / "S00_Calibration"
TRIAL = POSE2SIM / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial"

#: Required agreement of Pose2Sim's 3D joints with the 2D keypoints, median per camera (px).
#: README: 8-18 px; measured 8.0 / 11.4 / 17.9 / 9.4-9.6 px (cam_01-04, either file).
MEDIAN_PX = 18.0


def test_qualisys_qca_and_pose2sim_toml_agree():
    """The same calibration read from QTM's file and from Pose2Sim's conversion of it.

    Cameras are matched by name with ``Rig.index`` (case, ``_``/``-`` and leading zeros
    ignored): the .qca.txt names cameras by their ``serial`` attribute, Pose2Sim's TOML names its
    tables after the same serials (``cam_01`` ...).
    """
    qca, toml = load_calibration(CALIB / "Calib.qca.txt"), load_calibration(CALIB / "Calib_qualisys.toml")
    assert len(qca) == len(toml) == 4
    for cam in qca:
        other = toml[toml.index(cam.name)]
        assert cam.size == other.size
        for field in ("K", "R", "t"):
            a, b = getattr(cam, field), getattr(other, field)
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * np.abs(b).max(), err_msg=f"{cam.name} {field}")
        # Pose2Sim's converter also divides the (already normalised) distortion by 64; see formats_qca.
        np.testing.assert_allclose(other.dist * 64, cam.dist, rtol=1e-6, atol=1e-12)


def reprojection_errors(rig: Rig, world_from_trc=None) -> np.ndarray:
    """``(T, C, N)`` pixel distance between Pose2Sim's projected 3D joints and the OpenPose keypoints."""
    trc = read_trc(TRIAL / "pose-3d" / "S00_P00_T01_BalancingTrial_0-100.trc")
    kwargs = {} if world_from_trc is None else {"world_from_trc": world_from_trc}
    points_world = trc_to_world(trc.positions, trc.units, **kwargs)  # (T, N, 3)
    kp = align_to_rig(load_openpose(TRIAL / "pose-associated", "body_25b"), rig)
    joints = [kp.joint_names.index(POSE2SIM_MARKER_TO_JOINT[m]) for m in trc.marker_names]
    assert kp.shape[0] == trc.positions.shape[0] == 100  # TRC frame k+1 is JSON frame k
    observed = kp.xy[:, :, 0][:, :, joints]  # (T, C, N, 2), the one associated person
    projected = np.moveaxis(project_rig(rig, points_world), -2, 1)  # (T, C, N, 2)
    return np.linalg.norm(projected - observed, axis=-1)


@pytest.mark.parametrize("calibration", ["Calib.qca.txt", "Calib_qualisys.toml"])
def test_pose2sim_3d_projects_onto_openpose_keypoints(calibration, record_property):
    rig = load_calibration(CALIB / calibration)
    err = reprojection_errors(rig)
    medians = np.nanmedian(err, axis=(0, 2))
    counts = np.isfinite(err).sum(axis=(0, 2))
    report = ", ".join(f"{n} {m:.1f} px" for n, m in zip(rig.names, medians))
    print(f"\n{calibration}: median reprojection of Pose2Sim's TRC on OpenPose BODY_25B: {report}")
    record_property("median_px", dict(zip(rig.names, medians.round(2).tolist())))
    assert np.all(counts > 1500), counts  # ~21 joints x 100 frames seen per camera
    assert np.all(medians < MEDIAN_PX), report


def test_a_wrong_convention_is_caught():
    """The check above can fail: Y-up TRC taken as world, or R transposed, miss by > 100 px."""
    rig = load_calibration(CALIB / "Calib.qca.txt")
    no_axis_change = np.nanmedian(reprojection_errors(rig, world_from_trc=np.eye(3)), axis=(0, 2))
    transposed = Rig(tuple(c.replace(R=c.R.T) for c in rig))
    wrong_rotation = np.nanmedian(reprojection_errors(transposed), axis=(0, 2))
    assert np.all(no_axis_change > 100) and np.all(wrong_rotation > 100), (no_axis_change, wrong_rotation)
