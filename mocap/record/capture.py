"""Capture workers: one grab thread and one encoder thread per camera, joined by a bounded queue.

The grab thread timestamps every frame the moment the source returns it (monotonic and wall
clock, ns) and hands it to the encoder without waiting: a full queue (the encoder falling behind)
drops that frame and counts it as dropped by the recorder (and when), so the camera is never
slowed and memory stays bounded (:func:`queue_lengths`: each camera's share of
:attr:`RecordConfig.queue_mb`). The encoder writes each frame to
``videos/<cam>.mp4`` and only then its row to ``timestamps/<cam>.csv``, so every timestamp
row names a frame that is in the video. OpenCV releases the GIL while it decodes and encodes,
so threads use every core without copying frames between processes.

Before each frame the encoder checks the room left for its video: free space on the disk and,
when the process has one, the file-size limit (``RLIMIT_FSIZE``). Below
:attr:`RecordConfig.reserve_mb` it stops the take so that every file can still be finalized
(an MP4 is only playable once its index is written at the end).
"""

from __future__ import annotations

import logging
import os
import queue
import resource
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from mocap.record.copy import PacketWriter
from mocap.record.options import RecordConfig

log = logging.getLogger(__name__)

#: Timestamp file header: the video frame index first and the capture time second, the columns
#: ``mocap calibrate SESSION`` reads.
TIMESTAMP_HEADER = "frame,time_ns,wall_time_ns,source_frame\n"
_END = object()
#: Bytes a video holds in memory before they reach the file: OpenCV's FFmpeg MP4 writer flushes
#: in 256 KiB steps (measured: the file stays at 44 bytes, then jumps to 262 188).
FFMPEG_IO_BUFFER = 1 << 18
#: Timestamp rows reach the file at least this often, seconds.
STAMPS_FLUSH_S = 1.0
#: Times of recorder drops kept per camera for the report (the count has them all).
DROP_TIMES_KEPT = 100


@dataclass
class CameraLog:
    """What happened to one camera during a take (filled in by its worker)."""

    name: str
    fps: float
    """Frame rate of the content (written in the video's container)."""
    rate: float
    """Frames the source delivers per second (``fps``, or less for a file played slowly)."""
    size: tuple[int, int] = (0, 0)
    frames_written: int = 0
    dropped_by_recorder: int = 0
    ended: str | None = None
    """Why the camera stopped before the take did (None: it ran to the end)."""
    failed: bool = False
    """The camera stopped by failing (not a file reaching its end)."""
    stopped_after_s: float | None = None
    error: str | None = None
    queue_frames: int = 0
    """Length of the camera's queue (frames)."""
    queue_peak: int = 0
    """Most frames that waited in the queue at once (queue_frames: it overflowed)."""
    drop_times_s: list = field(default_factory=list)
    """Seconds into the take of the first :data:`DROP_TIMES_KEPT` frames dropped by the recorder."""


def queue_lengths(sizes: dict, config: RecordConfig) -> dict:
    """Frames each camera's capture queue holds: its share of ``config.queue_mb`` in frames of
    its size (``sizes {camera: (width, height)}``, (0, 0) when unknown before the first frame),
    never fewer than ``config.queue_frames``."""
    share = config.queue_mb * 1e6 / max(len(sizes), 1)
    return {name: max(config.queue_frames, int(share // (w * h * 3)) if w > 0 and h > 0 else 0)
            for name, (w, h) in sizes.items()}


class Lockstep:
    """A software trigger: :meth:`wait` returns once every camera still running has called it."""

    def __init__(self, names):
        self._cond = threading.Condition()
        self._members, self._arrived, self._generation = set(names), set(), 0

    def wait(self, name: str, stop: threading.Event) -> None:
        with self._cond:
            generation = self._generation
            self._arrived.add(name)
            self._release_if_ready()
            while generation == self._generation and not stop.is_set():
                self._cond.wait(0.05)

    def leave(self, name: str) -> None:
        with self._cond:
            self._members.discard(name)
            self._arrived.discard(name)
            self._release_if_ready()

    def _release_if_ready(self) -> None:
        if self._members and self._arrived >= self._members:
            self._arrived.clear()
            self._generation += 1
            self._cond.notify_all()


def room_bytes(path: Path) -> tuple[float, str]:
    """Bytes that can still be written to file ``path``, and what limits them (disk or
    file-size limit)."""
    st = os.statvfs(path.parent)
    room, what = st.f_bavail * st.f_frsize, f"free space on {path.parent}"
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        left = soft - (path.stat().st_size if path.exists() else 0)
        if left < room:
            room, what = left, f"the file-size limit ({soft} bytes)"
    return float(room), what


@dataclass
class TakeControl:
    """Shared by the workers of one take: the stop signal and the first fault that stopped it."""

    stop: threading.Event = field(default_factory=threading.Event)
    fault: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, reason: str) -> None:
        with self.lock:
            if self.fault is None:
                self.fault = reason
        self.stop.set()


class FrameEncoder:
    """Encodes decoded frames into ``path`` with ``fourcc``; sized by the first frame (a device
    that gives another size than it announced before its first frame gets a new writer; after
    that, frames are resized to the video's)."""

    def __init__(self, path: Path, fourcc: str, log: CameraLog, size=(0, 0)):
        self.path, self.fourcc, self.log = path, fourcc, log
        self._writer = self._open(*size) if size[0] > 0 and size[1] > 0 else None
        self._written = 0

    def _open(self, w: int, h: int) -> cv2.VideoWriter:
        self.log.size = (w, h)
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.log.fps, (w, h))
        if not writer.isOpened():
            raise OSError(f"cannot open a {self.fourcc} video writer for {self.path}")
        return writer

    def write(self, frame, source_frame: int, t_ns: int, wall_ns: int, key=None, dropped: int = 0) -> list:
        """Encode one frame; its timestamp row ``[(source frame, time_ns, wall_ns)]``."""
        if self._writer is None or (frame.shape[1], frame.shape[0]) != self.log.size:
            if self._writer is not None and self._written:
                frame = cv2.resize(frame, self.log.size)
            else:
                if self._writer is not None:
                    self._writer.release()
                self._writer = self._open(frame.shape[1], frame.shape[0])
        self._writer.write(frame)
        self._written += 1
        return [(source_frame, t_ns, wall_ns)]

    def close(self) -> list:
        if self._writer is not None:
            self._writer.release()
        return []


class CameraWorker:
    """Grabs one source into ``video_path`` and ``stamps_path`` until the take stops or the
    source ends."""

    def __init__(self, source, video_path: Path, stamps_path: Path, config: RecordConfig, control: TakeControl,
                 start_ns: int, lockstep: Lockstep | None = None, cameras_sharing_disk: int = 1,
                 queue_frames: int | None = None):
        self.source, self.video_path, self.stamps_path = source, video_path, stamps_path
        self.config, self.control, self.start_ns, self.lockstep = config, control, start_ns, lockstep
        self.log = CameraLog(source.name, float(source.fps), float(getattr(source, "rate", source.fps)),
                             queue_frames=queue_frames or config.queue_frames)
        self._queue: queue.Queue = queue.Queue(maxsize=self.log.queue_frames)
        self._reserve = config.reserve_mb * 1e6
        self._rows = 0  # timestamp rows written (= frames in the video once its file is final)
        self._skipping = False  # a copied packet was dropped: the rest of its group of pictures goes too
        self._cameras = cameras_sharing_disk
        self.keep_latest = False
        """Hold on to the newest frame in :attr:`latest` (for ``--preview``)."""
        self.latest = None
        self._threads = [threading.Thread(target=self._grab, name=f"grab-{source.name}", daemon=True),
                         threading.Thread(target=self._encode, name=f"encode-{source.name}", daemon=True)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def join(self, timeout: float | None = None) -> None:
        for t in self._threads:
            t.join(timeout)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _grab(self) -> None:
        stop = self.control.stop
        try:
            while not stop.is_set():
                if self.lockstep is not None:
                    self.lockstep.wait(self.log.name, stop)
                    if stop.is_set():
                        break
                item = self.source.read()
                t_ns, wall_ns = time.monotonic_ns(), time.time_ns()
                if item is None:
                    self.log.ended, self.log.failed = self.source.reason, self.source.failed
                    self.log.stopped_after_s = (t_ns - self.start_ns) / 1e9
                    break
                self._put((item[0], item[1], t_ns, wall_ns, item[2] if len(item) > 2 else None))
                if self.keep_latest and len(item) == 2:
                    self.latest = item[0]
        except Exception as exc:  # a driver error ends this camera, not the take
            self.log.ended, self.log.failed = f"source error: {exc}", True
            self.log.stopped_after_s = (time.monotonic_ns() - self.start_ns) / 1e9
            log.warning("camera %s: %s", self.log.name, self.log.ended)
        finally:
            if self.lockstep is not None:
                self.lockstep.leave(self.log.name)
            self.source.close()
            self._queue.put(_END)

    def _put(self, item) -> None:
        """Hand a frame to the encoder, or drop it (counted, with its time) when the queue is full;
        a copied packet after a dropped one is dropped too, up to the next key frame."""
        key = item[4]
        try:
            if self._skipping and not key:
                raise queue.Full
            self._queue.put_nowait(item + (self.log.dropped_by_recorder,))
            self._skipping = False
        except queue.Full:
            self._skipping = key is not None
            self.log.dropped_by_recorder += 1
            if len(self.log.drop_times_s) < DROP_TIMES_KEPT:
                self.log.drop_times_s.append(round((item[2] - self.start_ns) / 1e9, 3))
            return
        waiting = self._queue.qsize()
        if waiting > self.log.queue_peak:
            self.log.queue_peak = waiting

    def _encode(self) -> None:
        sink, stamps = None, None
        try:
            stamps = open(self.stamps_path, "w", buffering=1 << 16)
            stamps.write(TIMESTAMP_HEADER)
            flushed = time.monotonic()
            sink = self._open_sink()
            while True:
                item = self._queue.get()
                if item is _END:
                    break
                if not self._room_left(item[0].nbytes):
                    self._drain()
                    break
                rows = sink.write(*item)
                self.log.frames_written += 1
                self._write_rows(stamps, rows)
                if item[2] / 1e9 - flushed > STAMPS_FLUSH_S:  # a crash loses at most this much
                    stamps.flush()
                    flushed = item[2] / 1e9
        except Exception as exc:  # ENOSPC/EFBIG on the timestamps, an unwritable folder, a codec error
            self._write_failed(exc)
        finally:
            self._finish(sink, stamps)

    def _open_sink(self):
        """Where frames go: their own packets copied (a copying source), else an encoder (opened
        now when the source announced its size, so not while frames queue up)."""
        if getattr(self.source, "copy", False):
            self.log.size = tuple(self.source.size)
            return PacketWriter(self.video_path, self.source.tag, self.log.fps, self.log.size)
        fourcc = "mp4v" if self.config.fourcc == "copy" else self.config.fourcc
        return FrameEncoder(self.video_path, fourcc, self.log, getattr(self.source, "size", (0, 0)))

    def _write_rows(self, stamps, rows) -> None:
        for source_frame, t_ns, wall_ns in rows:
            stamps.write(f"{self._rows},{t_ns},{wall_ns},{source_frame}\n")
            self._rows += 1

    def _write_failed(self, exc: Exception) -> None:
        what = getattr(exc, "strerror", None) or exc
        self.control.fail(f"camera {self.log.name}: cannot write {getattr(exc, 'filename', None) or self.stamps_path}: "
                          f"{what}")
        self.log.error = str(exc)
        self._drain()

    def _finish(self, sink, stamps) -> None:
        """Finalize the video, then write the rows it still held and close the timestamps."""
        rows = []
        if sink is not None:
            try:
                rows = sink.close()
            except Exception as exc:
                self._write_failed(exc)
        if stamps is None:
            return
        try:
            self._write_rows(stamps, rows)
            stamps.close()
        except OSError as exc:
            self.control.fail(f"camera {self.log.name}: cannot write {self.stamps_path}: {exc.strerror}")

    def _room_left(self, frame_bytes: int) -> bool:
        """False (and the take stopped) when this video has less than the reserve left."""
        room, what = room_bytes(self.video_path)
        n = self.log.frames_written
        size = self.video_path.stat().st_size if n else 0
        # What is not on disk yet: FFmpeg's unflushed buffer, the next frame at up to 4x the mean
        # compressed frame (a key frame; before the first flush, 1/50 of the raw frame).
        per_frame = size / n if n and size > FFMPEG_IO_BUFFER else frame_bytes / 50
        need = self._reserve + FFMPEG_IO_BUFFER + 4 * per_frame
        if what.startswith("free"):  # the disk is shared by every camera; the file-size limit is per file
            need *= self._cameras
        if room >= need:
            return True
        self.control.fail(f"disk full: {max(room, 0) / 1e6:.1f} MB left under {what} for {self.video_path.name}; "
                          "the take was stopped and every file finalized")
        return False

    def _drain(self) -> None:
        """Empty the queue so the grab thread is never blocked on a put."""
        self.control.stop.set()
        while True:
            try:
                if self._queue.get(timeout=1.0) is _END:
                    return
            except queue.Empty:
                if not self._threads[0].is_alive():
                    return
