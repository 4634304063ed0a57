"""The run report (mocap.report) on the synthetic studio and on `mocap process`'s real output."""

import numpy as np
import yaml

from mocap.geometry import Rig, rotvec_to_rotmat
from mocap.pipeline import reconstruct
from mocap.report import run_report, write_run_report
from mocap.synthetic import SyntheticConfig, make_scene


def test_report_counts_and_flags_a_miscalibrated_camera(tmp_path):
    scene = make_scene(SyntheticConfig(num_frames=60, num_people=2, num_cameras=4, seed=2, keypoint_format="blazepose_33"))
    tracks = reconstruct(scene.keypoints, scene.rig)
    report = run_report(scene.keypoints, scene.rig, tracks, {"reconstruct": 0.5})
    assert report["summary"] == {"frames": 60, "fps": 30.0, "cameras": 4, "people": 2, "performers_in_most_frames": 2}
    assert report["checks"] == [], report["checks"]
    for p in ("person_0", "person_1"):  # both performers stay in the volume for the whole take
        assert report["people"][p]["frames"] == 60 and report["people"][p]["first_frame"] == 0
    # Per camera: the detections the scene generated (real people and spurious ones alike).
    detected = scene.gt_person_index >= -1  # (T, C, P'): -2 is an empty slot
    for c, (name, cam) in enumerate(report["cameras"].items()):
        assert name == scene.rig.names[c]
        assert cam["frames_with_people"] == round(float(detected[:, c].any(-1).mean()), 4)
        assert cam["people_per_frame"] == round(float(detected[:, c].sum(-1).mean()), 3)
        # 3 px detector noise at 500 px height: measured 2.0-3.8 px (the 3° turn below: 88 px).
        assert cam["reprojection_px"] < 5
    # the same result seen through a calibration whose camera 2 is turned by 3 degrees
    cams = list(scene.rig.cameras)
    turn = rotvec_to_rotmat(np.array([0.0, np.radians(3.0), 0.0]))  # about the camera's own centre
    cams[2] = cams[2].replace(R=turn @ cams[2].R, t=turn @ cams[2].t)
    bad = run_report(scene.keypoints, Rig(tuple(cams)), tracks)
    assert any(line.startswith(f"camera {cams[2].name}:") and "recalibrate" in line for line in bad["checks"])
    assert not any(line.startswith(f"camera {cams[0].name}:") for line in bad["checks"])
    y, md = write_run_report(report, tmp_path)
    assert yaml.safe_load(y.read_text())["summary"] == report["summary"]
    assert "| person_0 |" in md.read_text() and "nothing to look at" in md.read_text()


def test_report_names_a_camera_whose_video_stops_early():
    """Camera 3's recording ends halfway: the report says so (its detections end at frame 30)."""
    from types import SimpleNamespace

    from mocap.io.keypoints import Keypoints2D

    scene = make_scene(SyntheticConfig(num_frames=60, num_people=1, num_cameras=4, seed=4, keypoint_format="blazepose_33"))
    data = scene.keypoints.data.copy()
    data[30:, 3] = np.nan
    dets = [SimpleNamespace(camera=name, recovered=None, frame_indices=np.arange(30 if c == 3 else 60))
            for c, name in enumerate(scene.rig.names)]
    kp = Keypoints2D(data, scene.keypoints.joint_names, scene.keypoints.camera_names, fps=scene.fps,
                     extras={"detections": dets})
    report = run_report(kp, scene.rig, reconstruct(kp, scene.rig))
    cam = scene.rig.names[3]
    assert report["cameras"][cam]["frames_recorded"] == 30
    assert any(line.startswith(f"camera {cam}: its video ends at frame 30 of 60") for line in report["checks"])
    assert not any("video ends" in line and not line.startswith(f"camera {cam}:") for line in report["checks"])


def test_report_median_from_its_histogram_is_within_half_a_percent():
    """The report keeps reprojection distances as histograms (a long take's distances are not
    held); the median read back is within 0.5 % of the exact one over a wide range."""
    from mocap.report.collect import EDGES, hist_median

    rng = np.random.default_rng(0)
    for scale in (0.05, 1.0, 12.0, 400.0):
        x = scale * rng.lognormal(0.0, 0.8, size=5001)
        counts = np.bincount(np.searchsorted(EDGES, x, side="right") - 1, minlength=len(EDGES) - 1)
        exact = float(np.median(x))
        assert abs(hist_median(counts) - exact) <= 0.005 * exact, (scale, hist_median(counts), exact)
    assert np.isnan(hist_median(np.zeros(len(EDGES) - 1, np.int64)))
