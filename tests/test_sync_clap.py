"""mocap sync --clap: offsets from one sharp sound in every video's audio track.

The videos are written with PyAV: H.264 video and AAC audio in .mp4, as a phone or an action
camera writes them, each with room noise and a clap at a known time after its first frame (one
camera at another frame rate, one whose audio starts after its video)."""

import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import require_module
from mocap.errors import MocapError

RATE = 48000
#: camera: (fps, clap seconds after the first video frame, audio start after the first frame)
CAMERAS = {"cam01": (30.0, 1.0000, 0.0), "cam02": (30.0, 1.0731, 0.0), "cam03": (60.0, 0.9512, 0.25)}


def _write_video(av, path, fps: float, clap_s: float, audio_start_s: float, seed: int, seconds: float = 2.5,
                 audio: bool = True) -> None:
    rng = np.random.default_rng(seed)
    out = av.open(str(path), "w")
    video = out.add_stream("libx264", rate=int(fps), options={"preset": "ultrafast"})
    video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
    sound = None
    if audio:
        sound = out.add_stream("aac", rate=RATE, layout="mono")
    for i in range(int(seconds * fps)):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (i * 5) % 255, np.uint8), format="bgr24")
        frame.pts = i
        for packet in video.encode(frame):
            out.mux(packet)
    for packet in video.encode():
        out.mux(packet)
    if sound is not None:
        n = int((seconds - audio_start_s) * RATE)
        signal = rng.normal(0, 0.003, n)
        at = int(round((clap_s - audio_start_s) * RATE))
        burst = rng.normal(0, 0.25, 4800) * np.exp(-np.arange(4800) / 480)
        signal[at:at + burst.size] += burst
        signal = signal.astype(np.float32)
        first = int(round(audio_start_s * RATE))
        for s in range(0, n, 1024):
            chunk = av.AudioFrame.from_ndarray(signal[None, s:s + 1024], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = RATE, first + s
            for packet in sound.encode(chunk):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)
    out.close()


@pytest.fixture(scope="module")
def clap_session(tmp_path_factory):
    av = require_module("av")
    session = tmp_path_factory.mktemp("clap") / "take"
    (session / "videos").mkdir(parents=True)
    for i, (cam, (fps, clap, start)) in enumerate(CAMERAS.items()):
        _write_video(av, session / "videos" / f"{cam}.mp4", fps, clap, start, seed=i)
    return session


def test_clap_offsets_are_recovered_within_a_millisecond(clap_session, tmp_path):
    """1 ms: 0.03 frame at 30 fps (AAC's pre-echo moves the onset by up to ~0.6 ms here)."""
    run = subprocess.run([sys.executable, "-m", "mocap", "sync", str(clap_session), "--clap", "--out",
                          str(tmp_path / "sync.yaml")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    doc = yaml.safe_load((tmp_path / "sync.yaml").read_text())
    assert doc["reference"] == "cam01" and doc["fps"]["cam03"] == 60.0
    ref_fps, ref_clap, _ = CAMERAS["cam01"]
    for cam, (fps, clap, _) in CAMERAS.items():
        # camera c's frame k shows the reference's frame k * fps_ref / fps_c + offset
        expected = ref_clap * ref_fps - clap * fps * ref_fps / fps
        assert abs(doc["offsets"][cam] - expected) / ref_fps < 1e-3, (cam, doc["offsets"][cam], expected)
        assert abs(doc["onset_frames"][cam] / fps - clap) < 1e-3, (cam, doc["onset_frames"][cam])


def test_a_video_without_sound_is_named(tmp_path):
    from mocap.record.clap import clap_offsets

    av = require_module("av")
    _write_video(av, tmp_path / "a.mp4", 30.0, 1.0, 0.0, seed=1)
    _write_video(av, tmp_path / "b.mp4", 30.0, 1.0, 0.0, seed=2, audio=False)
    with pytest.raises(MocapError, match=r"camera b .*b\.mp4\): no audio track"):
        clap_offsets({"a": tmp_path / "a.mp4", "b": tmp_path / "b.mp4"})


def test_silence_is_no_clap():
    from mocap.record.clap import clap_onset_s

    noise = np.random.default_rng(3).normal(0, 0.01, RATE)
    with pytest.raises(MocapError, match="camera x: no clap found"):
        clap_onset_s(noise, RATE, "camera x")
