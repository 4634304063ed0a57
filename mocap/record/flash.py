"""Sync from a flash: each camera's frame where the scene suddenly brightens (a light switched on,
a photo flash, a phone torch held up to the cameras), to a fraction of a frame.

A frame integrates light over its exposure, so the frame during which the flash starts is only
partly brighter: with the brightness ``B`` before, ``P`` once the flash is fully on, a frame at
level ``b`` caught a fraction ``(b - B) / (P - B)`` of it. The onset in frames is the first
fully bright frame minus the fractions of the partly bright ones before it (exact for an
exposure as long as the frame period, the common indoor setting; a short exposure leaves an
error up to half a frame). The flash must stay on for at least three frames.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from mocap.errors import MocapError

#: Frames before the jump whose median is the brightness before the flash, and after it the level.
BASE_FRAMES = 5
LEVEL_FRAMES = 3
#: A flash raises the mean grey level by at least this much (0-255) ...
MIN_RISE = 10.0
#: ... and by this many times the typical frame-to-frame change (median absolute difference).
MIN_RISE_OVER_NOISE = 8.0


def brightness(path: str | os.PathLike, side: int = 64) -> np.ndarray:
    """Mean grey level of every frame ``(T,)`` (frames shrunk to ``side`` px: the mean is what counts)."""
    from mocap.detect.video import read_frames

    values = []
    for _, frame in read_frames(path, allow_short=True):
        small = cv2.resize(frame, (side, side), interpolation=cv2.INTER_AREA)
        values.append(float(small.mean()))
    return np.asarray(values)


def flash_onset(levels: np.ndarray, name: str = "camera") -> float:
    """The flash's start in frames (sub-frame; frame k spans [k, k + 1)) from a brightness series.

    Raises :class:`~mocap.errors.MocapError` naming ``name`` when no rise stands out.
    """
    levels = np.asarray(levels, dtype=np.float64)
    if levels.size < BASE_FRAMES + LEVEL_FRAMES + 2:
        raise MocapError(f"{name}: {levels.size} frames, too short to find a flash")
    rise = np.diff(levels)
    k = int(np.argmax(rise))  # the biggest step: from frame k to frame k + 1
    base = float(np.median(levels[max(0, k - BASE_FRAMES): k])) if k > 0 else float(levels[0])
    level = float(np.median(levels[k + 1: k + 1 + LEVEL_FRAMES]))
    noise = float(np.median(np.abs(rise))) + 1e-9
    if level - base < max(MIN_RISE, MIN_RISE_OVER_NOISE * noise):
        raise MocapError(f"{name}: no flash found (largest brightness rise {level - base:.1f} grey levels at frame "
                         f"{k + 1}); switch a light on in view of every camera, or sync from the performers' motion")
    full = k + 1 + int(np.argmax(levels[k + 1:] >= base + 0.95 * (level - base)))  # first fully bright frame
    partial = np.clip((levels[max(0, k - 1): full] - base) / (level - base), 0.0, 1.0)
    return float(full - partial.sum())


def flash_offsets(videos: dict[str, Path], reference: str | None = None) -> tuple[str, dict[str, float], dict]:
    """Each camera's offset to the reference, in frames, from one flash seen by all.

    Args:
        videos: ``{camera: video}``.
        reference: the camera the others are measured against (default: the first).

    Returns:
        ``(reference, offsets, onsets)``: ``offsets[c]`` is such that camera c's frame k shows
        the reference's frame k + offset (the sync.yaml convention); ``onsets[c]`` the flash's
        start in camera c's frames.
    """
    reference = reference or next(iter(videos))
    if reference not in videos:
        raise ValueError(f"reference: camera {reference!r} is not among {', '.join(videos)}")
    onsets = {cam: flash_onset(brightness(path), f"camera {cam} ({path})") for cam, path in videos.items()}
    return reference, {cam: onsets[reference] - t for cam, t in onsets.items()}, onsets
