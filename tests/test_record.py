"""mocap record: synthetic cameras into a session folder, faults, signals, the sync report.

Every take runs in a subprocess (``python -m mocap record``), as a user runs it: signals and the
file-size limit then act on the recorder, not on pytest.
"""

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from mocap.record.report import camera_timing, matched_frames, read_timestamps
from mocap.record.sources import read_barcode

JITTER_MS = 3.0


def _rig(path: Path, cameras: dict, fps: float = 30) -> Path:
    path.write_text(yaml.safe_dump({"fps": fps, "cameras": {n: {"source": {"synthetic": s}} for n, s in cameras.items()}}))
    return path


def _record(rig: Path, out: Path, *args, preexec_fn=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "mocap", "record", str(rig), "--out", str(out), *args],
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn)


def _decoded_numbers(video: Path) -> list[int]:
    cap = cv2.VideoCapture(str(video))
    numbers = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        numbers.append(read_barcode(frame))
    cap.release()
    return numbers


def _assert_every_frame_on_disk(session: Path, cameras) -> dict:
    """Each video decodes to its last frame, and its frames are exactly the timestamp rows (the
    frame number drawn in each frame = the CSV's source_frame, in order). Returns the rows."""
    rows = {}
    for cam in cameras:
        stamps = read_timestamps(session / "timestamps" / f"{cam}.csv")
        assert len(stamps) > 0, cam
        assert _decoded_numbers(session / "videos" / f"{cam}.mp4") == stamps[:, 3].tolist(), cam
        rows[cam] = stamps
    return rows


@pytest.fixture(scope="module")
def take_with_a_dead_camera(tmp_path_factory):
    """4 synthetic cameras, 30 fps, 3 ms jitter, cam03 dies after 3 s, 10 s take."""
    tmp = tmp_path_factory.mktemp("take")
    spec = {"size": [320, 240], "jitter_ms": JITTER_MS}
    cams = {f"cam0{i}": dict(spec) for i in range(1, 5)}
    cams["cam03"]["die_after_s"] = 3
    run = _record(_rig(tmp / "rig.yaml", cams), tmp / "session", "--duration", "10")
    return run, tmp / "session"


def test_a_take_writes_every_frame_and_names_the_dead_camera(take_with_a_dead_camera):
    run, session = take_with_a_dead_camera
    assert run.returncode == 0, run.stderr
    rows = _assert_every_frame_on_disk(session, ["cam01", "cam02", "cam03", "cam04"])
    assert len(rows["cam03"]) == 90  # frames 0..89 are due before 3 s
    assert all(len(rows[c]) >= 295 for c in ("cam01", "cam02", "cam04"))
    report = yaml.safe_load((session / "sync_report.yaml").read_text())
    assert report["stopped_cameras"] == ["cam03"]
    assert "Camera cam03 stopped" in (session / "sync_report.md").read_text()
    manifest = yaml.safe_load((session / "session.yaml").read_text())
    assert manifest["cameras"]["cam01"]["frames"] == len(rows["cam01"])
    assert manifest["cameras"]["cam03"]["ended"].startswith("stopped delivering frames")
    assert (session / "config.yaml").is_file()


def test_the_measured_jitter_and_spread_match_the_injected_jitter(take_with_a_dead_camera, rng):
    _, session = take_with_a_dead_camera
    report = yaml.safe_load((session / "sync_report.yaml").read_text())
    for cam, c in report["cameras"].items():
        assert abs(c["jitter_ms"] - JITTER_MS) < 1.0, (cam, c["jitter_ms"])
        assert c["dropped"] == 0 and c["duplicated"] == 0 and c["dropped_by_recorder"] == 0
    # The spread of n cameras with independent N(0, 3 ms) jitter is the range of n normal draws;
    # its median over the take's instants (4 cameras before cam03 died, 3 after) by simulation.
    table = np.array([report["matched_frames"][c] for c in report["matched_frames"]]).T
    counts = (table >= 0).sum(1)
    counts = counts[counts >= 2]
    sims = [np.ptp(rng.normal(0, JITTER_MS, (200, n)), axis=1) for n in counts]
    expected = np.median(np.concatenate(sims))
    assert abs(report["spread_ms"]["median"] - expected) < 1.0, (report["spread_ms"], expected)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_take_with_every_file_playable(tmp_path, sig):
    rig = _rig(tmp_path / "rig.yaml", {"a": {"size": [320, 240]}, "b": {"size": [320, 240]}})
    proc = subprocess.Popen([sys.executable, "-m", "mocap", "record", str(rig), "--out", str(tmp_path / "s")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    stamps = tmp_path / "s" / "timestamps" / "a.csv"
    while time.monotonic() < deadline and (not stamps.is_file() or stamps.stat().st_size < 200):
        time.sleep(0.1)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    rows = _assert_every_frame_on_disk(tmp_path / "s", ["a", "b"])
    assert len(rows["a"]) > 10
    assert (tmp_path / "s" / "session.yaml").is_file() and (tmp_path / "s" / "sync_report.md").is_file()


def _limit_file_size(nbytes: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, resource.RLIM_INFINITY))
    return apply


def test_a_full_disk_stops_the_take_with_every_file_finalized(tmp_path):
    """For real: the recorder runs under a 700 kB file-size limit (RLIMIT_FSIZE)."""
    rig = _rig(tmp_path / "rig.yaml", {"a": {"size": [640, 480]}, "b": {"size": [640, 480]}}, fps=60)
    run = _record(rig, tmp_path / "s", "--duration", "30", "--set", "record.reserve_mb=0.05",
                  preexec_fn=_limit_file_size(700_000))
    assert run.returncode == 1, run.stderr
    assert "disk full" in run.stderr and "file-size limit" in run.stderr
    rows = _assert_every_frame_on_disk(tmp_path / "s", ["a", "b"])
    assert max(len(r) for r in rows.values()) < 900  # stopped well before 30 s (1800 frames)
    assert "disk full" in yaml.safe_load((tmp_path / "s" / "sync_report.yaml").read_text())["fault"]
    assert yaml.safe_load((tmp_path / "s" / "session.yaml").read_text())["fault"].startswith("disk full")


def test_a_full_tmpfs_stops_the_take_with_every_file_finalized(tmp_path):
    """For real, where mounting is allowed: a 2 MB tmpfs."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here (the file-size limit test covers the case)")
    try:
        rig = _rig(tmp_path / "rig.yaml", {"a": {"size": [640, 480]}, "b": {"size": [640, 480]}}, fps=60)
        run = _record(rig, mnt / "s", "--duration", "60", "--set", "record.reserve_mb=0.02")
        assert run.returncode == 1, run.stderr
        assert "disk full" in run.stderr and "free space" in run.stderr
        _assert_every_frame_on_disk(mnt / "s", ["a", "b"])
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_an_unwritable_output_is_one_line_before_recording(tmp_path):
    rig = _rig(tmp_path / "rig.yaml", {"a": {"size": [320, 240]}})
    (tmp_path / "file").write_text("x")
    run = _record(rig, tmp_path / "file" / "s", "--duration", "1")
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "is a file" in run.stderr


def test_lockstep_gives_every_camera_the_same_frames(tmp_path):
    rig = _rig(tmp_path / "rig.yaml", {"a": {"size": [320, 240], "jitter_ms": 2},
                                       "b": {"size": [320, 240], "jitter_ms": 2}})
    run = _record(rig, tmp_path / "s", "--duration", "2", "--lockstep")
    assert run.returncode == 0, run.stderr
    rows = _assert_every_frame_on_disk(tmp_path / "s", ["a", "b"])
    assert abs(len(rows["a"]) - len(rows["b"])) <= 1


def test_an_unknown_synthetic_setting_names_the_allowed_ones(tmp_path):
    rig = _rig(tmp_path / "rig.yaml", {"a": {"size": [320, 240], "jiter_ms": 2}})
    run = _record(rig, tmp_path / "s", "--duration", "1")
    assert run.returncode == 2 and "allowed: fps, size, jitter_ms" in run.stderr


def test_camera_timing_counts_dropped_and_duplicated_frames(rng):
    period = 1e9 / 30
    slots = np.array([0, 1, 2, 4, 5, 5, 6, 9, 10])  # 3, 7, 8 dropped; 5 twice
    t = 5e12 + slots * period + rng.normal(0, 1e6, len(slots))
    timing = camera_timing(t.astype(np.int64), 30)
    assert timing["dropped"] == 3 and timing["duplicated"] == 1


def test_the_matched_table_leaves_a_dropped_frame_empty(rng):
    period = 1e9 / 60
    a = 1e12 + np.arange(20) * period + rng.normal(0, 1e6, 20)
    b = 1e12 + np.delete(np.arange(20), 7) * period + 3e6 + rng.normal(0, 1e6, 19)
    _, table = matched_frames({"a": a, "b": b}, 60)
    assert table.shape == (20, 2)
    np.testing.assert_array_equal(table[:, 0], np.arange(20))
    np.testing.assert_array_equal(table[:, 1], np.r_[np.arange(7), -1, np.arange(7, 19)])


def test_a_late_frame_keeps_its_own_instant(rng):
    """A frame delivered 0.6 period late lands nearest the next instant; in order it is put
    back on its own, and nothing is counted as dropped or duplicated."""
    period = 1e9 / 30
    t = 1e12 + np.arange(12) * period + rng.normal(0, 5e5, 12)
    t[5] += 0.6 * period
    _, table = matched_frames({"a": t, "b": 1e12 + np.arange(12) * period}, 30)
    np.testing.assert_array_equal(table[:, 0], np.arange(12))
    timing = camera_timing(t.astype(np.int64), 30)
    assert timing["dropped"] == 0 and timing["duplicated"] == 0
