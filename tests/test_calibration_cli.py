"""The ``mocap calibrate`` command line: boards, image globs, session folders with timestamps."""

import csv

import numpy as np

from mocap.calibration.io import load_calibration
from mocap.cli import main


def test_cli_board(tmp_path, capsys):
    assert main(["calibrate", "board", "checkerboard_4x7_60mm", "--out", str(tmp_path / "b.png"), "--dpi", "50"]) == 0
    assert (tmp_path / "b.png").is_file()


def test_cli_stereo_end_to_end(shared, tmp_path, capsys):
    d = shared / "calibration" / "opencv_stereo_9x6"
    out = tmp_path / "calibration.yaml"
    rc = main(["calibrate", "--board", "checkerboard_9x6_25mm", "--camera", f"left={d}/left*.jpg",
               "--camera", f"right={d}/right*.jpg", "--out", str(out), "--world-frame", "left:0"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "square length check" in text and "left: solved" in text
    rig = load_calibration(out)
    assert rig.names == ["left", "right"]
    assert (tmp_path / "calibration_report.md").is_file() and (tmp_path / "calibration_coverage_left.png").is_file()


def test_cli_bad_camera_is_one_line_error(tmp_path, capsys):
    rc = main(["calibrate", "--board", "checkerboard_9x6_25mm", "--camera", "left", "--out", str(tmp_path / "c.yaml")])
    assert rc == 2
    assert "expected NAME=PATH" in capsys.readouterr().err


def test_cli_session_folder_with_timestamps(shared, tmp_path, capsys):
    """A session folder: videos/<cam>.mp4, timestamps/<cam>.csv (frame, ns), board named in session.yaml."""
    src = shared / "calibration" / "caliscope_charuco_4cam" / "post_optimization" / "calibration" / "extrinsic"
    session = tmp_path / "calib_session"
    (session / "videos").mkdir(parents=True)
    (session / "timestamps").mkdir()
    rows = list(csv.DictReader(open(src / "timestamps.csv")))
    for cam in range(2):  # two cameras keep the test short
        (session / "videos" / f"cam_{cam}.mp4").symlink_to(src / f"cam_{cam}.mp4")
        times = sorted(float(r["frame_time"]) for r in rows if r["cam_id"] == str(cam))
        with open(session / "timestamps" / f"cam_{cam}.csv", "w") as fh:
            fh.write("frame,time_ns\n" + "".join(f"{i},{int(t * 1e9)}\n" for i, t in enumerate(times)))
    (session / "session.yaml").write_text("board: charuco_4x5_54mm_inverted\n")
    out = tmp_path / "calibration.yaml"
    # the lenses come from caliscope (these views cover 8-13 % of each image: too little for a lens fit)
    assert main(["calibrate", str(session), "--out", str(out), "--intrinsics",
                 str(src.parent.parent / "camera_array.toml")]) == 0, capsys.readouterr()
    rig = load_calibration(out)
    assert rig.names == ["cam_0", "cam_1"]
    assert 0.2 < np.linalg.norm(rig.centers[0] - rig.centers[1]) < 2.0  # metres: a room-sized baseline


def test_cli_session_world_frame_from_rig_file(shared, tmp_path, capsys):
    """The rig file named in session.yaml supplies the board and the world frame (board on the floor)."""
    src = shared / "calibration" / "caliscope_charuco_4cam" / "post_optimization" / "calibration" / "extrinsic"
    session = tmp_path / "calib_session"
    (session / "videos").mkdir(parents=True)
    for cam in range(2):
        (session / "videos" / f"cam_{cam}.mp4").symlink_to(src / f"cam_{cam}.mp4")
    rigs = tmp_path / "rigs"
    rigs.mkdir()
    (rigs / "studio.yaml").write_text("board: charuco_4x5_54mm_inverted\nworld_frame: cam_0:20\n")
    (session / "session.yaml").write_text("rig: ../rigs/studio.yaml\n")
    out = tmp_path / "calibration.yaml"
    assert main(["calibrate", str(session), "--out", str(out), "--intrinsics",
                 str(src.parent.parent / "camera_array.toml")]) == 0, capsys.readouterr()
    report = (tmp_path / "calibration_report.yaml").read_text() if (tmp_path / "calibration_report.yaml").exists() else \
        "\n".join(p.read_text() for p in tmp_path.glob("*report*.yaml"))
    assert "cam_0:20" in report
    rig = load_calibration(out)
    # Both cameras look down at a board on the floor: they are above it (world Z up).
    assert (rig.centers[:, 2] > 0.2).all(), rig.centers


def test_cli_session_missing_rig_file_is_one_line_error(tmp_path, capsys):
    session = tmp_path / "s"
    (session / "videos").mkdir(parents=True)
    (session / "session.yaml").write_text("rig: nowhere.yaml\n")
    assert main(["calibrate", str(session), "--out", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere.yaml not found" in err[0]
