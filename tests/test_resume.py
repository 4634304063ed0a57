"""Resumable stages: a real `mocap process` killed halfway and run again gives the outputs of an
uninterrupted run without redoing finished work (the log says which stage was reused), and a
changed setting reruns only the stages that read it."""

import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from conftest import POSE2SIM
from mocap.io.tracks import load_tracks

TRIAL = POSE2SIM / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial"
CALIB = POSE2SIM / "S00_Calibration" / "Calib.qca.txt"
FRAMES = 10


@pytest.fixture(scope="module")
def take(tmp_path_factory):
    """The demo take's first frames (4 cameras), so that a run takes seconds."""
    session = tmp_path_factory.mktemp("take") / "take01"
    (session / "videos").mkdir(parents=True)
    for src in sorted((TRIAL / "videos").glob("cam*.mp4")):
        cap = cv2.VideoCapture(str(src))
        fps = cap.get(cv2.CAP_PROP_FPS)
        writer = None
        for _ in range(FRAMES):
            ok, frame = cap.read()
            assert ok
            if writer is None:
                writer = cv2.VideoWriter(str(session / "videos" / src.name), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                         (frame.shape[1], frame.shape[0]))
            writer.write(frame)
        writer.release()
        cap.release()
    return session


def command(session, out, *extra):
    return [sys.executable, "-m", "mocap", "process", str(session), "--calibration", str(CALIB), "--out", str(out),
            "--workers", "1", "--format", "bvh", *extra]


def run(session, out, *extra) -> str:
    """The log (stderr) of a finished run."""
    proc = subprocess.run(command(session, out, *extra), capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr


def _env():
    # numpy triangulation: a short take needs no compiled kernels (what `mocap process` picks itself
    # for a short take when numba's cache is empty)
    return {**os.environ, "PYTHONUNBUFFERED": "1", "MOCAP_BACKEND": "numpy"}


def finished(folder):
    """The cameras' files written in full (not ``.<cam>.npz.XXXX.npz``, a write the kill cut short)."""
    return [p for p in folder.glob("*.npz") if not p.name.startswith(".")]


def test_killed_run_resumes_and_changed_settings_rerun_only_their_stages(take, tmp_path):
    reference = tmp_path / "reference"
    run(take, reference)
    out = tmp_path / "killed"
    proc = subprocess.Popen(command(take, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    deadline = time.monotonic() + 240
    # halfway: two of the four cameras detected (one worker: one camera after the other)
    while len(finished(out / "keypoints2d")) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (out / "stages" / "detect.yaml").exists() and not (out / "tracks.npz").exists()
    done = sorted(p.stem for p in finished(out / "keypoints2d"))

    log = run(take, out)
    for cam in done:  # the cameras finished before the kill are not detected again
        assert f"camera {cam}: already detected" in log, log
    assert "stage detect: runs (no finished run recorded)" in log
    a, b = load_tracks(reference / "tracks.npz"), load_tracks(out / "tracks.npz")
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.track_ids, b.track_ids)
    assert (reference / "export" / "person_0.bvh").read_text() == (out / "export" / "person_0.bvh").read_text()

    detected = (out / "keypoints2d" / "cam01.npz").stat().st_mtime_ns
    log = run(take, out, "--format", "bvh,trc")  # an export setting: export only
    assert "stage detect: reused" in log and "stage reconstruct: reused" in log, log
    assert "stage export: runs (changed since the last run: export)" in log, log
    assert any((out / "export").glob("*.trc"))
    log = run(take, out, "--format", "bvh,trc", "--set", "smooth.acceleration_sigma=5.0")  # reconstruct and export
    assert "stage detect: reused" in log, log
    assert "stage reconstruct: runs (changed since the last run: smooth)" in log, log
    assert "stage export: runs (changed since the last run: tracks)" in log, log
    assert (out / "keypoints2d" / "cam01.npz").stat().st_mtime_ns == detected


def test_outputs_made_by_other_mocap_code_are_not_reused(tmp_path, monkeypatch, caplog):
    """A stage record also holds the digest of the package's source and weights: after an upgrade
    (any .py or .pt file of the package changed) the stage runs again and the log says why."""
    import logging
    from pathlib import Path

    from mocap.runtime import stages

    out = tmp_path / "out"
    (out / "export").mkdir(parents=True)
    result = out / "export" / "a.bvh"
    result.write_text("HIERARCHY\n")
    package = tmp_path / "pkg"
    (package / "track" / "__pycache__").mkdir(parents=True)
    (package / "track" / "ukf.py").write_text("X = 1\n")
    (package / "weights.pt").write_bytes(b"\x00\x01")
    first = stages.source_digest(package)
    (package / "track" / "__pycache__" / "ukf.cpython-311.pyc").write_bytes(b"cache")  # not source
    (package / "notes.txt").write_text("not code")
    assert stages.source_digest(package) == first
    (package / "track" / "ukf.py").write_text("X = 2\n")  # an upgrade changes a source file
    assert stages.source_digest(package) != first
    (package / "track" / "ukf.py").write_text("X = 1\n")
    (package / "weights.pt").write_bytes(b"\x00\x02")  # or the shipped weights
    assert stages.source_digest(package) != first
    assert stages.code_digest() == stages.source_digest(Path(stages.__file__).resolve().parents[1])
    record = stages.StageRecord(out, "export", {"export": {"format": "bvh"}})
    record.done([result])
    with caplog.at_level(logging.INFO, logger="mocap.runtime.stages"):
        assert record.reusable()
        monkeypatch.setattr(stages, "code_digest", lambda: "0123456789abcdef")
        assert not record.reusable()
    assert "stage export: runs (changed since the last run: mocap code)" in caplog.text


def test_camera_detections_made_by_other_mocap_code_are_not_reused(monkeypatch):
    """A camera's ``<cam>.npz`` is reused only with the same settings fingerprint, which now holds
    the code digest too."""
    from mocap.config import DetectConfig
    from mocap.detect.session import settings_fingerprint
    from mocap.runtime import stages

    before = settings_fingerprint(DetectConfig())
    assert settings_fingerprint(DetectConfig()) == before
    monkeypatch.setattr(stages, "code_digest", lambda: "0123456789abcdef")
    assert settings_fingerprint(DetectConfig()) != before
