"""Sync from a flash (mocap.record.flash, `mocap sync --flash`): real video frames (the Pose2Sim
demo take) with a light switched on at a different, sub-frame instant in each camera; each frame
caught the fraction of the flash its exposure overlapped."""

import cv2
import numpy as np
import pytest
import yaml

from conftest import POSE2SIM
from mocap.cli import main
from mocap.detect.video import read_frames
from mocap.record.flash import flash_onset

VIDEOS = POSE2SIM / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial" / "videos"
#: Where the flash starts in each camera's frames (frame k spans [k, k + 1)).
ONSETS = {"cam01": 12.3, "cam02": 15.0, "cam03": 9.65}
RISE = 60.0  # grey levels


def _take(folder, onsets, frames=30):
    folder.joinpath("videos").mkdir(parents=True)
    for cam, onset in onsets.items():
        writer = None
        for k, frame in read_frames(VIDEOS / f"{cam}.mp4", stop=frames):
            small = cv2.resize(frame, (frame.shape[1] // 4, frame.shape[0] // 4), interpolation=cv2.INTER_AREA)
            lit = np.clip(k + 1 - onset, 0.0, 1.0) if onset is not None else 0.0
            small = np.clip(small.astype(np.float64) + RISE * lit, 0, 255).astype(np.uint8)
            if writer is None:
                writer = cv2.VideoWriter(str(folder / "videos" / f"{cam}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30.0,
                                         small.shape[1::-1])
            writer.write(small)
        writer.release()
    return folder


def test_flash_onset_is_sub_frame_on_an_exact_series():
    levels = 80.0 + np.random.default_rng(0).normal(0, 0.3, 40)
    for onset in (10.0, 10.25, 10.5, 10.9):
        lit = levels + 50.0 * np.clip(np.arange(40) + 1 - onset, 0, 1)
        assert flash_onset(lit) == pytest.approx(onset, abs=0.03)


def test_sync_from_a_flash_on_real_frames(shared, tmp_path, capsys):
    session = _take(tmp_path / "take", ONSETS)
    out = tmp_path / "sync.yaml"
    assert main(["sync", str(session), "--flash", "--out", str(out)]) == 0
    sync = yaml.safe_load(out.read_text())
    assert sync["reference"] == "cam01"
    print("flash onsets, true -> found (frames):",
          ", ".join(f"{c} {t} -> {sync['onset_frames'][c]}" for c, t in ONSETS.items()))
    for cam, onset in ONSETS.items():  # camera c's frame k shows the reference's frame k + offset
        assert sync["offsets"][cam] == pytest.approx(ONSETS["cam01"] - onset, abs=0.1), (cam, sync)


def test_a_camera_without_the_flash_is_named(shared, tmp_path, capsys):
    session = _take(tmp_path / "take", {"cam01": 12.3, "cam02": None})
    assert main(["sync", str(session), "--flash", "--out", str(tmp_path / "sync.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "camera cam02" in err[0] and "no flash found" in err[0]
    assert not (tmp_path / "sync.yaml").exists()
