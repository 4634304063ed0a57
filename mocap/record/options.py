"""Settings of ``mocap record`` and ``mocap sync`` (the ``record`` and ``sync`` sections of the
config tree, :mod:`mocap.config`)."""

from __future__ import annotations

from dataclasses import dataclass

#: FourCC codes OpenCV's FFmpeg writer puts in an ``.mp4`` without a GPU or an external encoder
#: library (``avc1``/H.264 needs an encoder the opencv-python wheels do not carry). FFV1 is
#: lossless (every decoded frame equals the frame captured, bit for bit) and slow: on 1080x1920
#: video 91 ms of CPU per frame (mp4v 13, MJPG 19) and 4 x MJPG's size. ``copy`` writes a file's
#: or a stream's own encoded frames (:mod:`mocap.record.copy`).
FOURCCS = ("mp4v", "MJPG", "FFV1", "copy")


@dataclass(frozen=True)
class RecordConfig:
    """How ``mocap record`` captures and writes a take."""

    queue_frames: int = 8
    """Fewest frames held per camera between the grab and the encoder (queue_mb may allow more).
    A full queue drops the new frame (counted as dropped by the recorder), so the camera is never
    slowed; memory stays bounded at the queue's length x frame size."""
    queue_mb: float = 192.0
    """Memory the capture queues of all cameras may hold together, MB: each camera's queue holds
    its share of it in frames of its size (never fewer than queue_frames), so that a stall of the
    encoder or the disk (a burst of other work, a write that blocks) is absorbed; 4 x 1280x720
    cameras: 17 frames each, 0.28 s at 60 fps (queue_frames alone: 8, 0.13 s)."""
    reserve_mb: float = 8.0
    """Stop the take, every file finalized, when less than this is left on the disk (or below the
    process's file-size limit) for a video: room for the container index written at the end."""
    fourcc: str = "mp4v"
    """Video codec FourCC for ``videos/<cam>.mp4``: mp4v (MPEG-4 part 2), MJPG, FFV1 (lossless,
    slow), or copy: files and rtsp/http streams keep their own encoded frames (H.264, HEVC, MPEG-4;
    no decoding or encoding: bit-exact, almost no CPU), devices and synthetic cameras get mp4v."""
    lockstep: bool = False
    """Software trigger: every camera grabs its next frame only when all are ready."""
    match_tolerance: float = 0.75
    """Matched frame table: the most frame periods a frame may lie from the instant it is given
    (frames keep their order, so a late frame goes back to its own instant)."""

    def __post_init__(self):
        if self.queue_frames < 1:
            raise ValueError(f"queue_frames: must be >= 1, got {self.queue_frames}")
        if self.queue_mb < 0:
            raise ValueError(f"queue_mb: must be >= 0, got {self.queue_mb}")
        if self.reserve_mb < 0:
            raise ValueError(f"reserve_mb: must be >= 0, got {self.reserve_mb}")
        if self.fourcc not in FOURCCS:
            raise ValueError(f"fourcc: expected one of {', '.join(FOURCCS)}, got {self.fourcc!r}")
        if not 0 < self.match_tolerance <= 2:
            raise ValueError(f"match_tolerance: must be in (0, 2], got {self.match_tolerance}")


@dataclass(frozen=True)
class SyncConfig:
    """How ``mocap sync`` finds each camera's time offset from the performers' 2D motion."""

    reference: str = ""
    """Reference camera (offsets are relative to it); empty: the first camera of the calibration."""
    max_offset_frames: int = 30
    """Largest offset searched by the cross-correlation of joint speeds, frames either way."""
    min_confidence: float = 0.3
    """2D keypoints below this confidence are ignored."""
    refine_step: float = 0.05
    """Sub-frame refinement: the final grid step of the offset search, frames."""
    refine_window: float = 1.5
    """Sub-frame refinement searches this many frames either side of the coarse estimate."""

    def __post_init__(self):
        if self.max_offset_frames < 1:
            raise ValueError(f"max_offset_frames: must be >= 1, got {self.max_offset_frames}")
        if not 0 < self.refine_step <= 0.5:
            raise ValueError(f"refine_step: must be in (0, 0.5], got {self.refine_step}")
        if self.refine_window <= 0:
            raise ValueError(f"refine_window: must be > 0, got {self.refine_window}")
        if not 0 <= self.min_confidence < 1:
            raise ValueError(f"min_confidence: must be in [0, 1), got {self.min_confidence}")
