"""The cross-view pass when cameras see different numbers of people (issue 11: it crashed with
``operands could not be broadcast together`` whenever a person only one camera saw had the
highest group number)."""

import cv2
import numpy as np
import pytest

from mocap.cli import main
from mocap.detect.cross_view import continues_track, plan_recovery
from mocap.detect.video import read_frames
from mocap.skeleton.joints import BLAZEPOSE_33
from mocap.synthetic import SyntheticConfig, make_scene

from conftest import POSE2SIM

HIPS = [BLAZEPOSE_33.index("left_hip"), BLAZEPOSE_33.index("right_hip")]


def _scene(num_people: int, seed: int):
    cfg = SyntheticConfig(num_frames=3, num_people=num_people, num_cameras=4, keypoint_format="blazepose_33",
                          seed=seed, placement_radius=1.5).without_errors()
    return make_scene(cfg)


def _by_truth(scene) -> np.ndarray:
    """``(T, C, P, J, 3)`` detections in ground-truth person order (the scene shuffles slots)."""
    data = scene.keypoints.data
    T, C = data.shape[:2]
    P = scene.gt_positions.shape[1]
    out = np.full((T, C, P) + data.shape[3:], np.nan)
    t, c, s = np.nonzero(scene.gt_person_index >= 0)
    out[t, c, scene.gt_person_index[t, c, s]] = data[t, c, s]
    return out


def _check_looks(scene, keypoints, seen, min_others=2):
    """Every person seen by ``min_others`` other cameras and missing from a camera is looked for
    there, and every look's projected hips lie within 2 px of a real person's (noise-free
    detections)."""
    looks = plan_recovery(scene.rig, keypoints)
    gt_hips = scene.gt_xy[..., HIPS, :].mean(-2)  # (T, C, P, 2)
    T, C, P = seen.shape
    found = np.zeros((T, C, P), dtype=bool)
    for lk in looks:
        d = np.linalg.norm(gt_hips[lk.t, lk.c] - np.nanmean(lk.projected[HIPS], axis=0), axis=-1)
        p = int(np.argmin(d))
        assert d[p] < 2.0, f"look at frame {lk.t} camera {lk.c}: hips {d[p]:.1f} px from the nearest person"
        found[lk.t, lk.c, p] = True
    W, H = scene.rig.sizes[:, 0], scene.rig.sizes[:, 1]
    inside = ((gt_hips[..., 0] > 0) & (gt_hips[..., 0] < W[None, :, None]) & (gt_hips[..., 1] > 0)
              & (gt_hips[..., 1] < H[None, :, None]))
    others = seen.sum(1, keepdims=True) - seen  # (T, C, P) views of each person besides camera c
    wanted = ~seen & (others >= min_others) & inside
    assert wanted.any()
    assert found[wanted].all(), f"{(wanted & ~found).sum()} of {wanted.sum()} missed people not looked for"
    return looks


def test_cameras_seeing_0_1_4_and_7_people_in_the_same_frame():
    """Camera 0 sees all 7 (and an eighth person nobody else sees, the group numbered last:
    the crash), camera 1 four, camera 2 one, camera 3 nobody."""
    scene = _scene(7, seed=3)
    kp = _by_truth(scene)
    seen = np.ones(kp.shape[:3], dtype=bool)
    seen[:, 1, 4:] = False
    seen[:, 2, 1:] = False
    seen[:, 3] = False
    kp = np.where(seen[..., None, None], kp, np.nan)
    ghost = kp[:, 0, :1].copy()
    ghost[..., :2] += [150.0, 0.0]  # beside person 0, seen by camera 0 only
    kp = np.concatenate([kp, np.full_like(ghost[:, None], np.nan).repeat(4, axis=1)], axis=2)
    kp[:, 0, 7] = ghost[:, 0]
    looks = _check_looks(scene, kp, seen)
    assert {lk.c for lk in looks} >= {2, 3}


def test_six_performers_each_camera_a_different_subset(rng):
    """Cameras see 6, 5, 3 and 2 of 6 performers, in shuffled slots. People seen by only two
    cameras may be matched to the wrong partner (two views alone do not settle epipolar
    ambiguities among six people), so only those seen by all three other cameras must be
    looked for; every look must still be at a real person."""
    scene = _scene(6, seed=4)
    kp = _by_truth(scene)
    T, C, P = kp.shape[:3]
    seen = np.stack([rng.permutation(P) < k for k in (6, 5, 3, 2)], axis=0)  # (C, P): 6, 5, 3, 2 people
    seen = np.broadcast_to(seen, (T, C, P))
    order = rng.permutation(P)  # each camera's slots in another order, empty slots anywhere
    kp = np.where(seen[..., None, None], kp, np.nan)[:, :, order]
    _check_looks(scene, kp, seen, min_others=3)  # checked against the truth, in its order


TRIAL = POSE2SIM / "S00_P01_MultiParticipants" / "S00_P01_T02_Participants1-2"
CALIBRATION = POSE2SIM / "S00_Calibration" / "Calib.qca.txt"
FRAMES = 12


def _write(path, frames, fps=60.0):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()


@pytest.fixture(scope="module")
def uneven_take(tmp_path_factory):
    """The real two-person take, 12 frames, where cam01 also shows cam02's picture in a corner
    (up to 4 people, 2 of them seen by no other camera), cam02 is grey (nobody), cam03 and cam04
    are as recorded (2 people)."""
    root = tmp_path_factory.mktemp("uneven") / "take"
    (root / "videos").mkdir(parents=True)
    frames = {c: [f for _, f in read_frames(TRIAL / "videos" / f"{c}.mp4", stop=FRAMES)]
              for c in ("cam01", "cam02", "cam03", "cam04")}
    inset = []
    for a, b in zip(frames["cam01"], frames["cam02"]):
        small = cv2.resize(b, (b.shape[1] // 2, b.shape[0] // 2), interpolation=cv2.INTER_AREA)
        a = a.copy()
        a[-small.shape[0]:, -small.shape[1]:] = small[:, : a.shape[1]]
        inset.append(a)
    _write(root / "videos" / "cam01.mp4", inset)
    _write(root / "videos" / "cam02.mp4", [np.full_like(f, 128) for f in frames["cam02"]])
    for c in ("cam03", "cam04"):
        _write(root / "videos" / f"{c}.mp4", frames[c])
    return root


@pytest.mark.slow
def test_detect_and_process_on_a_take_where_cameras_see_different_numbers(uneven_take, tmp_path):
    """``mocap detect --calibration`` then ``mocap process`` (which reuses those detections and
    their cross-view pass, so the take is detected once)."""
    out = tmp_path / "p" / "keypoints2d"
    tiles = ["--set", "detect.blazepose.tile_levels=3"]  # finer tiles find the people in cam01's inset
    assert main(["detect", str(uneven_take), "--calibration", str(CALIBRATION), "--out", str(out), "--workers", "1",
                 *tiles]) == 0
    counts = {c: np.isfinite(np.load(out / f"{c}.npz")["scores"]).sum(1) for c in ("cam01", "cam02", "cam03", "cam04")}
    assert counts["cam02"].max() == 0 and counts["cam01"].max() >= 3, {c: n.tolist() for c, n in counts.items()}
    assert main(["process", str(uneven_take), "--calibration", str(CALIBRATION), "--out", str(tmp_path / "p"),
                 "--workers", "1", *tiles]) == 0
    with np.load(tmp_path / "p" / "tracks.npz") as z:
        present = np.isfinite(z["positions"]).all(-1).any(-1)  # (T, P)
    assert (present.sum(1) >= 2).mean() >= 0.75, f"people per frame {present.sum(1).tolist()}"


def test_continues_track_keeps_a_steady_detection_and_replaces_a_jump():
    """A correction must continue the slot's own track at least as well as what it replaces: a
    detection close to both neighbours is kept against a candidate far from them (the other
    views were wrong), a detection that jumped away (a mixed skeleton) yields to a candidate close
    to the frame before, even when the frame after is itself off; a slot with no neighbours has
    nothing to check."""
    rng = np.random.default_rng(3)
    base = rng.uniform(100, 400, size=(33, 2))
    track = np.stack([np.column_stack([base + 2.0 * t, np.ones(33)]) for t in range(5)])[:, None]  # (5, 1, 33, 3)
    far = track[2, 0].copy()
    far[:, :2] += 80.0
    assert continues_track(track, 2, 0, track[2, 0] + [3.0, 0, 0], 8)
    assert not continues_track(track, 2, 0, far, 8)
    jumped = track.copy()
    jumped[2, 0, :, :2] += 80.0  # the mixed skeleton at frame 2 ...
    jumped[3, 0, :, :2] += 60.0  # ... and its aftermath at frame 3
    assert continues_track(jumped, 2, 0, track[2, 0], 8)
    alone = np.full_like(track, np.nan)
    alone[2] = track[2]
    assert continues_track(alone, 2, 0, far, 8)
    assert continues_track(track, 0, 0, track[0, 0], 8)  # first frame: one neighbour only
