"""Reading videos frame by frame, with errors that name the file and the frame.

OpenCV reports a missing, unreadable or truncated file by silently returning no frame; here each
case becomes a :class:`mocap.errors.VideoError` saying what to do.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# FFmpeg's own log lines ("overread 8" on a damaged frame) duplicate the one-line errors below;
# OpenCV reads this when it first opens a video.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from mocap.errors import VideoError  # noqa: E402

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video."""

    path: Path
    size: tuple[int, int]
    """(width, height) pixels."""
    fps: float | None
    frame_count: int
    """Frames the container declares (0 when unknown)."""


def _open(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise VideoError(f"video {path}: file not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"video {path}: cannot be opened (not a video, an unsupported codec, or truncated: "
                         f"an .mp4 or .avi cut short loses its index); copy it again or re-encode it "
                         f"(ffmpeg -i IN -c:v libx264 OUT.mp4)")
    return cap


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Size, fps and declared frame count; :class:`VideoError` when the file cannot be opened."""
    path = Path(path)
    cap = _open(path)
    try:
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
        count = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    finally:
        cap.release()
    if w <= 0 or h <= 0:
        raise VideoError(f"video {path}: the container declares no frame size; re-encode it")
    return VideoInfo(path, (w, h), fps, count)


def read_frames(path: str | os.PathLike, start: int = 0, stop: int | None = None,
                allow_short: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, frame (H, W, 3) uint8 BGR)`` from ``start`` up to ``stop`` (exclusive).

    Raises :class:`VideoError` when the file cannot be opened, when no frame at all decodes, or
    when decoding stops before the frame count the container declares (a truncated or corrupted
    file), naming the frame where it stopped; with ``allow_short`` the last case is a warning
    and the frames that exist are kept.
    """
    path = Path(path)
    info = video_info(path)
    end = info.frame_count if stop is None else min(stop, info.frame_count) if info.frame_count else stop
    cap = _open(path)
    try:
        if start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        index = start
        while end is None or index < end:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            yield index, frame
            index += 1
    finally:
        cap.release()
    if index == start and (end is None or end > start):
        raise VideoError(f"video {path}: no frame could be decoded (corrupted or truncated file); re-copy or re-encode it")
    if end is not None and index < end and allow_short:
        log.warning("video %s: decoding stopped at frame %d of %d declared; carrying on with %d frames "
                    "(allow_short)", path, index, end, index - start)
    elif end is not None and index < end:
        raise VideoError(f"video {path}: decoding stopped at frame {index} of {end} declared "
                         f"(truncated or corrupted file); re-copy or re-encode it, or pass --allow-short to use the frames that exist")


def video_fingerprint(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """A short content fingerprint of a video: sha256 of its size, first and last MiB.

    Cheap on hour-long files, and different for another take (or a re-encode) of the same name:
    cached stage outputs are reused only when it matches.
    """
    import hashlib

    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(chunk))
        if size > chunk:
            f.seek(max(size - chunk, chunk))
            h.update(f.read(chunk))
    return h.hexdigest()[:16]
