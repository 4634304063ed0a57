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

from mocap.record.capture import queue_lengths
from mocap.record.options import RecordConfig
from mocap.record.report import camera_timing, matched_frames, read_timestamps
from mocap.record.sources import SyntheticSource, SyntheticSpec, read_barcode

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


def test_queues_share_the_memory_budget():
    cfg = RecordConfig(queue_frames=8, queue_mb=192)
    sizes = {"a": (1280, 720), "b": (1280, 720), "c": (1280, 720), "d": (1280, 720)}
    assert queue_lengths(sizes, cfg) == {n: 17 for n in sizes}  # 48 MB / 2.76 MB
    assert queue_lengths({"a": (3840, 2160), "b": (0, 0)}, cfg) == {"a": 8, "b": 8}  # never below queue_frames
    assert queue_lengths(sizes, RecordConfig(queue_frames=3, queue_mb=0)) == {n: 3 for n in sizes}


def test_ffv1_keeps_every_frame_bit_exact(tmp_path):
    rig = _rig(tmp_path / "rig.yaml", {"a": {"size": [320, 240]}})
    run = _record(rig, tmp_path / "s", "--duration", "1", "--fourcc", "FFV1")
    assert run.returncode == 0, run.stderr
    rows = _assert_every_frame_on_disk(tmp_path / "s", ["a"])
    source = SyntheticSource("a", SyntheticSpec(fps=30, size=(320, 240)), 0)
    cap = cv2.VideoCapture(str(tmp_path / "s" / "videos" / "a.mp4"))
    for k in rows["a"][:, 3]:
        ok, frame = cap.read()
        assert ok and np.array_equal(frame, source.render(int(k), k / 30)), k
    cap.release()


def test_frames_the_encoder_cannot_take_are_counted_with_their_time(tmp_path):
    """1080p at 60 fps into a lossless encoder with a one-frame queue: the encoder falls behind, and
    every frame missing from the video is a recorder drop, reported with when it happened."""
    rig = _rig(tmp_path / "rig.yaml", {"a": {"size": [1920, 1080]}}, fps=60)
    run = _record(rig, tmp_path / "s", "--duration", "1.5", "--fourcc", "FFV1", "--set", "record.queue_frames=1",
                  "--set", "record.queue_mb=0")
    assert run.returncode == 0, run.stderr
    rows = _assert_every_frame_on_disk(tmp_path / "s", ["a"])
    cam = yaml.safe_load((tmp_path / "s" / "sync_report.yaml").read_text())["cameras"]["a"]
    gaps = int((np.diff(rows["a"][:, 3]) - 1).sum()) + int(rows["a"][0, 3])
    assert cam["queue_frames"] == 1 and cam["queue_peak"] == 1
    assert gaps > 0 and cam["dropped_by_recorder"] >= gaps
    at = np.array(cam["dropped_by_recorder_at_s"])
    start_ns = yaml.safe_load((tmp_path / "s" / "session.yaml").read_text())["start_monotonic_ns"]
    last = (rows["a"][-1, 1] - start_ns) / 1e9  # the last frame in the video, seconds into the take
    assert len(at) == min(cam["dropped_by_recorder"], 100) and ((at >= 0) & (at < 2.0)).all()
    assert int((at < last).sum()) == gaps  # each gap in the video is a drop at its time
    assert "dropped by the recorder" in (tmp_path / "s" / "sync_report.md").read_text()


def test_the_demo_compares_only_frames_that_match():
    """compare_with_original: an instant where every camera shows the original frame f is
    compared with frame f; one where a camera dropped it goes to 'missing'."""
    from types import SimpleNamespace

    from mocap.cli.demo import compare_with_original

    rng = np.random.default_rng(1)
    original = SimpleNamespace(positions=rng.normal(size=(10, 1, 5, 3)))
    source = np.tile(np.arange(1, 9)[:, None], (1, 4))  # the recording starts at original frame 1
    source[3, 2] = -1  # camera 2 dropped original frame 4
    recorded = SimpleNamespace(positions=original.positions[1:9].copy())
    recorded.positions[3] += 0.05  # triangulated without camera 2: 5 cm off
    cmp = compare_with_original(recorded, original, source)
    assert cmp["complete"]["instants"] == 7 and cmp["complete"]["max_cm"] == 0.0
    assert cmp["missing"]["instants"] == 1 and abs(cmp["missing"]["median_cm"] - 5 * np.sqrt(3)) < 1e-9


DEMO_VIDEOS = "sessions/pose2sim_demo/S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial/videos"


def _same_frames(a: Path, b: Path) -> tuple[int, int]:
    """(frames of ``a`` equal bit for bit to ``b``'s at the same index, frames of ``a``)."""
    ca, cb = cv2.VideoCapture(str(a)), cv2.VideoCapture(str(b))
    same = n = 0
    while True:
        oa, fa = ca.read()
        ob, fb = cb.read()
        if not oa:
            break
        n += 1
        same += bool(ob and np.array_equal(fa, fb))
    ca.release()
    cb.release()
    return same, n


def test_copy_records_real_videos_bit_exact_at_real_time(shared, tmp_path):
    """The demo take's H.264 (with B-frames) and VP9 videos played live at their own 60 fps: the
    recording decodes to the same pixels, every frame in order, one timestamp row each."""
    videos = {cam: shared / DEMO_VIDEOS / f"{cam}.mp4" for cam in ("cam01", "cam02")}
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump({"cameras": {c: {"source": {"file": {"path": str(p), "jitter_ms": 3}}}
                                               for c, p in videos.items()}}))
    run = _record(rig, tmp_path / "s", "--fourcc", "copy")
    assert run.returncode == 0, run.stderr
    report = yaml.safe_load((tmp_path / "s" / "sync_report.yaml").read_text())
    for cam, src in videos.items():
        assert _same_frames(src, tmp_path / "s" / "videos" / f"{cam}.mp4") == (100, 100), cam
        rows = read_timestamps(tmp_path / "s" / "timestamps" / f"{cam}.csv")
        np.testing.assert_array_equal(rows[:, 0], np.arange(100))
        np.testing.assert_array_equal(rows[:, 3], np.arange(100))
        assert (np.diff(rows[:, 1]) > 0).all()
        assert report["cameras"][cam]["dropped_by_recorder"] == 0
        assert report["cameras"][cam]["fps_effective"] > 30  # real time (no decoding: a busy machine keeps up)


def test_copy_of_an_mpeg4_file_keeps_its_headers(tmp_path):
    """MPEG-4 part 2 keeps its headers out of band: the copy puts them before the first packet."""
    src = tmp_path / "src.mp4"
    synth = SyntheticSource("a", SyntheticSpec(fps=30, size=(320, 240)), 0)
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 30, (320, 240))
    for k in range(30):
        writer.write(synth.render(k, k / 30))
    writer.release()
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump({"cameras": {"a": {"source": {"file": {"path": str(src), "speed": 2}}}}}))
    run = _record(rig, tmp_path / "s", "--fourcc", "copy")
    assert run.returncode == 0, run.stderr
    assert _same_frames(src, tmp_path / "s" / "videos" / "a.mp4") == (30, 30)
    _assert_every_frame_on_disk(tmp_path / "s", ["a"])


def test_a_video_that_cannot_be_copied_is_one_line(tmp_path):
    src = tmp_path / "src.avi"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump({"cameras": {"a": {"source": str(src)}}}))
    run = _record(rig, tmp_path / "s", "--fourcc", "copy")
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0
    assert "camera a: its MJPG video cannot be copied" in run.stderr and "--fourcc mp4v" in run.stderr


def test_preview_serves_the_latest_frame_of_every_camera(tmp_path):
    """--preview: the mosaic over HTTP during the take shows each camera's recent frame (its
    barcode reads a frame number the take has reached) and SESSION/preview.jpg is left behind."""
    import urllib.request

    rig = _rig(tmp_path / "rig.yaml", {"a": {"size": [320, 240]}, "b": {"size": [320, 240]}})
    proc = subprocess.Popen([sys.executable, "-m", "mocap", "record", str(rig), "--out", str(tmp_path / "s"),
                             "--duration", "4", "--preview", "--preview-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("preview: http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[1]
        deadline, jpeg = time.monotonic() + 20, None
        while time.monotonic() < deadline and jpeg is None:
            try:
                jpeg = urllib.request.urlopen(url + "preview.jpg", timeout=5).read()
            except OSError:
                time.sleep(0.2)
        assert jpeg is not None, "no picture from the preview"
        picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert picture.shape == (240, 640, 3)  # two 320x240 tiles side by side
        numbers = [read_barcode(picture[:, :320]), read_barcode(picture[:, 320:])]
        assert all(0 <= n < 4 * 30 for n in numbers), numbers
    finally:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert cv2.imread(str(tmp_path / "s" / "preview.jpg")).shape == (240, 640, 3)
