"""Sync from a clap: each camera's time of one sharp sound (hands clapped, a clapperboard, a
tap on the microphone) in its video's own audio track, to a fraction of a frame.

The audio is read with PyAV (``pip install av``, the ``mocap[audio]`` extra: OpenCV reads no
audio). The onset is where the sound's envelope (the absolute signal, maximum over
:data:`ENVELOPE_MS`) first climbs a quarter of the way from the noise floor to the clap's peak,
interpolated between samples; a camera's onset in frames counts from its first video frame
(the audio and video streams' start times in the container are taken into account). Two
limits: sound travels 1 m in 2.9 ms, so the clap should be about as far from every camera's
microphone (3 m further is half a frame at 60 fps); and a camera's own audio-to-video delay
(constant for a model, sometimes tens of ms) is not known here: use cameras of one model, or
correct it once with a flash (``mocap sync --flash``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mocap.errors import MocapError
from mocap.record.resample import SyncOffsets

#: The envelope is the maximum of the absolute signal over this window, ms.
ENVELOPE_MS = 1.0
#: The onset is where the envelope first climbs this fraction of the way from floor to peak.
ONSET_FRACTION = 0.25
#: A clap's peak stands at least this many times above the noise floor (median envelope).
MIN_PEAK_OVER_FLOOR = 8.0


@dataclass(frozen=True)
class AudioTrack:
    """One video's audio, mono."""

    samples: np.ndarray
    """``(N,)`` float64, channels averaged."""
    rate: float
    """Samples per second."""
    start_s: float
    """Time of sample 0 after the video's first frame, seconds (negative: before it)."""
    fps: float
    """The video's frame rate."""


def _open_av():
    try:
        import av
    except ImportError:
        raise MocapError("--clap reads the videos' audio with PyAV: pip install av (the mocap[audio] extra)") from None
    return av


def read_audio(path: str | os.PathLike, name: str = "camera") -> AudioTrack:
    """The first audio track of a video, mono, with its start relative to the first frame."""
    av = _open_av()
    path = Path(path)
    with av.open(str(path)) as container:
        if not container.streams.audio or not container.streams.video:
            raise MocapError(f"{name} ({path}): no audio track; sync it from a flash (--flash) or the performers' "
                             "motion instead")
        audio, video = container.streams.audio[0], container.streams.video[0]
        chunks, first_pts = [], None
        for frame in container.decode(audio):
            data = frame.to_ndarray().astype(np.float64)  # packed: (1, samples x channels); planar: (channels, samples)
            data = data.reshape(-1, len(frame.layout.channels)).mean(1) if frame.format.is_packed else data.mean(0)
            if first_pts is None and frame.pts is not None:
                first_pts = float(frame.pts * frame.time_base)
            chunks.append(data)
        fps = float(video.average_rate or video.guessed_rate or 0)
        video_start = float(video.start_time * video.time_base) if video.start_time is not None else 0.0
        rate = float(audio.rate)
    if not chunks or fps <= 0:
        raise MocapError(f"{name} ({path}): no audio samples or no frame rate; sync it another way (--flash)")
    return AudioTrack(np.concatenate(chunks), rate, (first_pts or 0.0) - video_start, fps)


def clap_onset_s(samples: np.ndarray, rate: float, name: str = "camera") -> float:
    """Time of the loudest sudden sound's start, seconds from sample 0 (sub-sample).

    Raises :class:`~mocap.errors.MocapError` naming ``name`` when no sound stands out.
    """
    x = np.abs(np.asarray(samples, np.float64))
    width = max(int(round(rate * ENVELOPE_MS / 1000)), 1)
    if x.size < 4 * width:
        raise MocapError(f"{name}: {x.size} audio samples, too short to find a clap")
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, (width - 1, 0)), width)
    env = windows.max(1)  # env[i]: loudest sample in (i - width, i]
    peak_at = int(np.argmax(env))
    floor, peak = float(np.median(env)), float(env[peak_at])
    if peak < MIN_PEAK_OVER_FLOOR * max(floor, 1e-12):
        raise MocapError(f"{name}: no clap found (loudest sound {peak / max(floor, 1e-12):.1f} x the background at "
                         f"{peak_at / rate:.2f} s); clap once in hearing of every camera, or sync another way")
    level = floor + ONSET_FRACTION * (peak - floor)
    below = np.flatnonzero(env[:peak_at + 1] < level)
    if below.size == 0:
        return 0.0
    i = int(below[-1])  # last sample under the level before the peak; env[i + 1] >= level
    return float((i + (level - env[i]) / (env[i + 1] - env[i])) / rate)


def clap_offsets(videos: dict[str, Path], reference: str | None = None) -> tuple[SyncOffsets, dict]:
    """Each camera's offset to the reference, in frames of the reference, from one clap heard by all.

    Args:
        videos: ``{camera: video with an audio track}``.
        reference: the camera the others are measured against (default: the first).

    Returns:
        ``(sync, onsets)``: ``sync.offsets[c]`` is such that camera c's frame k shows the
        reference's frame k + offset (the sync.yaml convention; ``sync.fps`` set when the
        cameras' rates differ); ``onsets[c]`` the clap in camera c's frames after its first frame.
    """
    reference = reference or next(iter(videos))
    if reference not in videos:
        raise ValueError(f"reference: camera {reference!r} is not among {', '.join(videos)}")
    onsets, fps = {}, {}
    for cam, path in videos.items():
        track = read_audio(path, f"camera {cam}")
        t = clap_onset_s(track.samples, track.rate, f"camera {cam} ({path})") + track.start_s
        onsets[cam], fps[cam] = float(t * track.fps), track.fps
    ref_fps = fps[reference]
    offsets = {cam: onsets[reference] - onsets[cam] / fps[cam] * ref_fps for cam in videos}
    rates = fps if len(set(fps.values())) > 1 else {}
    return SyncOffsets(reference, offsets, rates), onsets
