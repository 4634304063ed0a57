"""Capture workers: one grab thread and one encoder thread per camera, joined by a bounded queue.

The grab thread timestamps every frame the moment the source returns it (monotonic and wall
clock, ns) and hands it to the encoder without waiting: a full queue (the encoder falling behind)
drops that frame and counts it as dropped by the recorder, so the camera is never slowed and
memory stays at ``queue_frames`` frames per camera. The encoder writes each frame to
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


class CameraWorker:
    """Grabs one source into ``video_path`` and ``stamps_path`` until the take stops or the
    source ends."""

    def __init__(self, source, video_path: Path, stamps_path: Path, config: RecordConfig, control: TakeControl,
                 start_ns: int, lockstep: Lockstep | None = None, cameras_sharing_disk: int = 1):
        self.source, self.video_path, self.stamps_path = source, video_path, stamps_path
        self.config, self.control, self.start_ns, self.lockstep = config, control, start_ns, lockstep
        self.log = CameraLog(source.name, float(source.fps), float(getattr(source, "rate", source.fps)))
        self._queue: queue.Queue = queue.Queue(maxsize=config.queue_frames)
        self._reserve = config.reserve_mb * 1e6
        self._cameras = cameras_sharing_disk
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
                try:
                    self._queue.put_nowait((item[0], item[1], t_ns, wall_ns))
                except queue.Full:
                    self.log.dropped_by_recorder += 1
        except Exception as exc:  # a driver error ends this camera, not the take
            self.log.ended, self.log.failed = f"source error: {exc}", True
            self.log.stopped_after_s = (time.monotonic_ns() - self.start_ns) / 1e9
            log.warning("camera %s: %s", self.log.name, self.log.ended)
        finally:
            if self.lockstep is not None:
                self.lockstep.leave(self.log.name)
            self.source.close()
            self._queue.put(_END)

    def _encode(self) -> None:
        writer, stamps = None, None
        try:
            stamps = open(self.stamps_path, "w", buffering=1 << 16)
            stamps.write(TIMESTAMP_HEADER)
            flushed = time.monotonic()
            w, h = getattr(self.source, "size", (0, 0))
            if w > 0 and h > 0:  # open the encoder before frame 0 is due, not while frames queue up
                writer = self._open_writer(w, h)
            while True:
                item = self._queue.get()
                if item is _END:
                    break
                frame, source_frame, t_ns, wall_ns = item
                if writer is None or (frame.shape[1], frame.shape[0]) != self.log.size:
                    writer, frame = self._fit_writer(writer, frame)
                if not self._room_left(frame.nbytes):
                    self._drain()
                    break
                writer.write(frame)
                stamps.write(f"{self.log.frames_written},{t_ns},{wall_ns},{source_frame}\n")
                self.log.frames_written += 1
                if t_ns / 1e9 - flushed > STAMPS_FLUSH_S:  # a crash loses at most this much
                    stamps.flush()
                    flushed = t_ns / 1e9
        except Exception as exc:  # ENOSPC/EFBIG on the timestamps, an unwritable folder, a codec error
            what = getattr(exc, "strerror", None) or exc
            self.control.fail(f"camera {self.log.name}: cannot write {getattr(exc, 'filename', None) or self.stamps_path}: "
                              f"{what}")
            self.log.error = str(exc)
            self._drain()
        finally:
            if writer is not None:
                writer.release()
            if stamps is not None:
                try:
                    stamps.close()
                except OSError as exc:
                    self.control.fail(f"camera {self.log.name}: cannot write {self.stamps_path}: {exc.strerror}")

    def _fit_writer(self, writer, frame):
        """A writer for this frame's size: a device that gives another size than it announced
        before its first frame gets a new writer; after that, frames are resized to the video's."""
        if writer is not None and self.log.frames_written:
            return writer, cv2.resize(frame, self.log.size)
        if writer is not None:
            writer.release()
        return self._open_writer(frame.shape[1], frame.shape[0]), frame

    def _open_writer(self, w: int, h: int) -> cv2.VideoWriter:
        self.log.size = (w, h)
        writer = cv2.VideoWriter(str(self.video_path), cv2.VideoWriter_fourcc(*self.config.fourcc),
                                 self.log.fps, (w, h))
        if not writer.isOpened():
            raise OSError(f"cannot open a {self.config.fourcc} video writer for {self.video_path}")
        return writer

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
