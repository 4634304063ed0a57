"""Identities on the real two-person take from the raw OpenPose JSON (Pose2Sim demo): the two
performers keep one ID each over all 100 frames, and the seated bystander whom two cameras see
from behind the other two (outside the rig's capture volume) is not a third person."""

import numpy as np
import pytest

from conftest import POSE2SIM
from mocap.geometry import Camera, Rig
from mocap.track.linking import LinkConfig, body_centres, cameras_seeing, without_bystanders

MULTI = POSE2SIM / "S00_P01_MultiParticipants" / "S00_P01_T02_Participants1-2"
QUALISYS = POSE2SIM / "S00_Calibration" / "Calib_qualisys.toml"


def reconstruct_json(tmp_path, *extra):
    from mocap.cli import main
    from mocap.io.tracks import load_tracks

    out = tmp_path / "tracks.npz"
    code = main(["reconstruct", "--keypoints", str(MULTI / "pose"), "--calibration", str(QUALISYS), "--out", str(out),
                 "--keypoint-format", "body_25b", "--fps", "60", *extra])
    assert code == 0
    return load_tracks(out)


@pytest.mark.parametrize("mode,identities", [("ukf", "centres"), ("kalman", "centres"), ("kalman", "images")])
def test_raw_openpose_json_gives_two_stable_ids(shared, tmp_path, mode, identities):
    tracks = reconstruct_json(tmp_path, "--tracking", mode, "--set", f"track.identities={identities}")
    assert tracks.positions.shape[:2] == (100, 2), tracks.positions.shape
    assert list(tracks.track_ids) == [0, 1]
    centres = body_centres(tracks.positions, tracks.joint_names)  # (T, 2, 3)
    assert np.isfinite(centres).all(), "each performer in every frame"
    # no switch: each ID's body centre moves continuously (at 60 fps a walk moves ~2 cm a frame;
    # the performers stand 0.9-1.4 m apart, so a switch would jump by that much) ...
    step = np.linalg.norm(np.diff(centres, axis=0), axis=-1)  # (T-1, 2)
    assert step.max() < 0.05, step.max(0)
    # ... and stays nearer its own previous position than the other performer's
    own = np.linalg.norm(centres[1:] - centres[:-1], axis=-1)
    other = np.linalg.norm(centres[1:] - centres[:-1, ::-1], axis=-1)
    assert (own < other).all()
    apart = np.linalg.norm(centres[:, 0] - centres[:, 1], axis=-1)
    assert apart.min() > 0.5, apart.min()


def test_bystander_is_kept_on_request(shared, tmp_path):
    """``link.volume_cameras 0``: the bystander behind cameras 3 and 4 comes back (seen and
    triangulated by cameras 1 and 2 only, about 4.5 m from the rig's middle)."""
    tracks = reconstruct_json(tmp_path, "--tracking", "kalman", "--set", "link.volume_cameras=0")
    assert tracks.positions.shape[1] >= 3
    centres = body_centres(tracks.positions, tracks.joint_names)
    extra = centres[:, 2:]
    assert np.isfinite(extra).all(-1).any()
    assert (np.nanmedian(extra[..., 0], axis=0) < -4.0).all()  # behind cameras 3 and 4 (x -3.2, -3.8)


def two_cameras_facing():
    """Two cameras 4 m apart on the x axis, facing each other (640 x 480, f 500)."""
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    # camera looking along +x from x = -2: world x -> camera z
    R_a = np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]])
    R_b = np.array([[0.0, 1, 0], [0, 0, -1], [-1, 0, 0]])
    a = Camera("a", (640, 480), K, R=R_a, t=-R_a @ np.array([-2.0, 0, 1]))
    b = Camera("b", (640, 480), K, R=R_b, t=-R_b @ np.array([2.0, 0, 1]))
    return Rig((a, b))


def test_cameras_seeing_counts_fields_of_view():
    rig = two_cameras_facing()
    pts = np.array([[0.0, 0, 1], [3.0, 0, 1], [0.0, 5, 1], [np.nan, 0, 0]])  # middle, behind b, far aside, NaN
    np.testing.assert_array_equal(cameras_seeing(rig, pts), [2, 1, 0, 0])


def test_without_bystanders_drops_people_outside_the_volume():
    rig = two_cameras_facing()
    T = 10
    centres = np.full((T, 3, 3), np.nan)
    centres[:, 0] = [0.0, 0, 1]  # inside both
    centres[:, 1] = [3.0, 0, 1]  # behind camera b: seen by a only
    centres[:6, 2] = [3.0, 0, 1]  # mostly behind b ...
    centres[6:, 2] = [0.5, 0, 1]  # ... then inside for 4 frames
    track = np.tile(np.arange(3), (T, 1))
    kept = without_bystanders(track, centres, rig, LinkConfig(volume_cameras=2))
    assert (kept[:, 0] == 0).all() and (kept[:, 1:] == -1).all()
    np.testing.assert_array_equal(without_bystanders(track, centres, rig, LinkConfig(volume_cameras=0)), track)
    with pytest.raises(ValueError, match="volume_cameras"):
        LinkConfig(volume_cameras=-1)


def test_streaming_tracker_emits_the_two_performers_only(shared):
    """The live tracker (frames pushed one at a time) on the raw JSON: the bystander is never
    emitted (mostly outside the capture volume); the two performers are, with one ID each."""
    from mocap.calibration.io import load_calibration
    from mocap.io.openpose import align_to_rig, load_openpose
    from mocap.track.online import OnlineTracker, track_online

    rig = load_calibration(QUALISYS)
    kp = align_to_rig(load_openpose(MULTI, "body_25b"), rig)
    positions, ids = track_online(OnlineTracker(rig, kp.joint_names, 60.0), kp.data)
    assert len(ids) == 2, ids
    centres = body_centres(positions, kp.joint_names)  # (T, 2, 3)
    present = np.isfinite(centres).all(-1)
    assert present[20:].all(), present.sum(0)  # confirmed after min_track_s, then every frame
    step = np.linalg.norm(np.diff(centres, axis=0), axis=-1)
    assert np.nanmax(step) < 0.05
