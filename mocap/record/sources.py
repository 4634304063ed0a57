"""Where a camera's frames come from: a device, a stream URL, a video file played live, or a
synthetic pattern. Each source paces itself like a camera: :meth:`read` blocks until the next
frame is due and returns it, or None once the source has ended or failed (``reason`` says which).

Rig file forms of ``source:`` (``rigs/example_4cam.yaml``)::

    source: 0                                   # device index (V4L2 through OpenCV)
    source: "rtsp://host/stream1"               # rtsp://, http://, https:// URL
    source: recordings/cam04.mp4                # a video file, played at its own fps
    source: {file: {path: cam04.mp4, jitter_ms: 3, speed: 1}}   # speed < 1: slower than real time
    source: {synthetic: {fps: 30, size: [1280, 720], jitter_ms: 3, drop_rate: 0, die_after_s: null}}

A synthetic frame carries its frame number as a row of black/white blocks (:func:`read_barcode`
reads it back from a decoded video), plus the number and capture time as text.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mocap.record.copy import PacketReader

#: Bits of the frame number drawn into a synthetic frame (16.7 M frames: 77 h at 60 fps).
BARCODE_BITS = 24
URL_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://")


@dataclass(frozen=True)
class SyntheticSpec:
    """A synthetic camera: a moving pattern at ``fps`` with Gaussian timing jitter."""

    fps: float = 30.0
    size: tuple[int, int] = (640, 480)
    """(width, height) pixels."""
    jitter_ms: float = 0.0
    """Standard deviation of each frame's capture time around its nominal time, ms."""
    drop_rate: float = 0.0
    """Probability that the camera skips a frame (it never reaches the recorder)."""
    die_after_s: float | None = None
    """The camera stops delivering frames after this many seconds (a failure mid-take)."""
    seed: int | None = None

    def __post_init__(self):
        if not self.fps > 0:
            raise ValueError(f"synthetic fps: must be > 0, got {self.fps}")
        if len(self.size) != 2 or min(self.size) < 16:
            raise ValueError(f"synthetic size: expected [width, height] of at least 16 px, got {self.size}")
        if not 0 <= self.drop_rate < 1:
            raise ValueError(f"synthetic drop_rate: must be in [0, 1), got {self.drop_rate}")
        if self.jitter_ms < 0:
            raise ValueError(f"synthetic jitter_ms: must be >= 0, got {self.jitter_ms}")


def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


def barcode_block(width: int) -> int:
    """Side of one barcode block, px: big enough to survive MPEG-4 compression (>= 8 px)."""
    return max(8, width // (BARCODE_BITS + 8))


def draw_barcode(frame: np.ndarray, number: int) -> None:
    """Draw ``number``'s :data:`BARCODE_BITS` bits along the top of ``frame (H, W, 3)``, LSB first."""
    b = barcode_block(frame.shape[1])
    bits = (number >> np.arange(BARCODE_BITS)) & 1
    row = np.repeat(np.where(bits, 255, 0).astype(np.uint8), b)
    frame[:b, :row.size] = row[None, :, None]


def read_barcode(frame: np.ndarray) -> int:
    """The frame number :func:`draw_barcode` drew, read at the block centres of a decoded frame."""
    b = barcode_block(frame.shape[1])
    centres = frame[b // 2, b // 2:BARCODE_BITS * b:b].mean(-1)
    return int(((centres > 127).astype(np.int64) << np.arange(BARCODE_BITS)).sum())


class SyntheticSource:
    """A moving pattern with the frame number and capture time drawn in; frame k is due at
    ``start + k / fps`` plus Gaussian jitter (every synthetic camera of a take shares ``start``,
    like hardware-triggered cameras)."""

    def __init__(self, name: str, spec: SyntheticSpec, start_ns: int):
        self.name, self.spec, self.start_ns = name, spec, start_ns
        self.fps = self.rate = spec.fps
        self.size = tuple(spec.size)
        self.reason: str | None = None
        self.failed = False
        seed = spec.seed if spec.seed is not None else sum(map(ord, name))
        self._rng = np.random.default_rng(seed)
        self._next = 0
        w, h = self.size
        x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
        y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
        self._base = np.dstack([np.broadcast_to(x, (h, w)), np.broadcast_to(y, (h, w)),
                                np.full((h, w), 96, np.float32)]).astype(np.uint8)
        cv2.putText(self._base, name, (8, h - 12), cv2.FONT_HERSHEY_SIMPLEX, max(h / 480, 0.4), (255, 255, 255), 1)

    def render(self, k: int, t_s: float) -> np.ndarray:
        """Frame ``k`` (captured ``t_s`` seconds into the take): the same pixels every time."""
        frame = self._base.copy()
        w, h = self.size
        bar = max(w // 20, 2)
        x = int(k * max(w // 100, 1)) % (w - bar)
        frame[:, x:x + bar] = 255
        draw_barcode(frame, k)
        cv2.putText(frame, f"#{k} {t_s:.3f}s", (8, 3 * barcode_block(w) + 8), cv2.FONT_HERSHEY_SIMPLEX,
                    max(h / 720, 0.4), (0, 0, 0), 1)
        return frame

    def read(self):
        """``(frame (H, W, 3) uint8, source frame number)`` when it is due, or None (``reason``)."""
        spec = self.spec
        while spec.drop_rate and self._rng.random() < spec.drop_rate:
            self._next += 1  # the camera skipped this frame
        k = self._next
        self._next += 1
        offset_s = k / spec.fps
        if spec.die_after_s is not None and offset_s >= spec.die_after_s:
            self.reason, self.failed = f"stopped delivering frames after {spec.die_after_s:g} s (synthetic failure)", True
            return None
        jitter_ns = int(self._rng.normal(0.0, spec.jitter_ms * 1e6)) if spec.jitter_ms else 0
        frame = self.render(k, offset_s)
        _sleep_until(self.start_ns + int(round(offset_s * 1e9)) + jitter_ns)
        return frame, k

    def close(self) -> None:
        pass


class CaptureSource:
    """A device index or stream URL through OpenCV (V4L2, FFmpeg); or a video file played at
    its own fps (``paced``), optionally with Gaussian timing jitter. ``copy``: a file or stream
    gives its encoded packets (:class:`mocap.record.copy.PacketReader`), not decoded frames."""

    def __init__(self, name: str, target, fps: float | None = None, size=None, paced: bool = False,
                 jitter_ms: float = 0.0, start_ns: int | None = None, speed: float = 1.0, copy: bool = False):
        self.name, self.reason, self.failed, self.copy = name, None, False, copy
        self._cap, self._packets = None, None
        if copy:
            self._packets = PacketReader(name, target)
            own, self.size, self.tag = self._packets.fps, self._packets.size, self._packets.tag
        else:
            self._cap = self._open_capture(name, target, None if paced else fps, None if paced else size)
            own = float(self._cap.get(cv2.CAP_PROP_FPS) or 0)
            self.size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.fps = own if own > 0 else (fps or 30.0)
        self.rate = self.fps * speed
        """Frames delivered per second (a file played slower than real time: fewer than ``fps``)."""
        self._paced, self._jitter_ms = paced, jitter_ms
        self.start_ns = start_ns if start_ns is not None else time.monotonic_ns()
        """When frame 0 is due (paced files); the recorder sets it once every source is open."""
        self._rng = np.random.default_rng(sum(map(ord, name)))
        self._next = 0
        self._file = paced
        # A file's first frame is decoded now, not when it is already due (opening a large video
        # and decoding its first frame can take longer than a frame period).
        self._pending = self._grab() if paced else None

    @staticmethod
    def _open_capture(name: str, target, fps, size) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            cap.release()
            raise OSError(f"camera {name}: cannot open source {target!r}")
        if size is not None:  # ask a device for the rig's mode; files keep their own
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        return cap

    def _grab(self):
        """The next ``(frame, source frame)`` (copy: ``(packet, presentation frame, key)``) or None."""
        if self._packets is not None:
            return self._packets.read()
        ok, frame = self._cap.read()
        return (frame, self._next) if ok and frame is not None else None

    def read(self):
        item = self._pending if self._pending is not None else self._grab()
        self._pending = None
        if item is None:
            self.reason = "end of file" if self._file else "no frame from the source"
            self.failed = not self._file
            return None
        k = self._next  # decoding order: packets are due one per frame period, as a camera sends them
        self._next += 1
        if self._paced:
            jitter_ns = int(self._rng.normal(0.0, self._jitter_ms * 1e6)) if self._jitter_ms else 0
            _sleep_until(self.start_ns + int(round(k / self.rate * 1e9)) + jitter_ns)
        return item

    def close(self) -> None:
        if self._packets is not None:
            self._packets.release()
        if self._cap is not None:
            self._cap.release()


def open_source(name: str, source, rig_dir: Path, fps: float | None, size, start_ns: int, copy: bool = False):
    """The source object for one rig camera's ``source:`` entry (forms in the module docstring);
    ``copy``: files and streams give their encoded packets (devices and synthetic cameras, frames)."""
    if isinstance(source, bool) or source is None:
        raise ValueError(f"camera {name}: source: expected a device index, a URL, a file or a mapping, got {source!r}")
    if isinstance(source, int):
        return CaptureSource(name, source, fps, size)
    if isinstance(source, str) and source.lower().startswith(URL_PREFIXES):
        return CaptureSource(name, source, fps, size, copy=copy)
    if isinstance(source, str):
        return _file_source(name, {"path": source}, rig_dir, start_ns, copy)
    if isinstance(source, dict) and len(source) == 1:
        kind, params = next(iter(source.items()))
        if kind == "synthetic":
            params = dict(params or {})
            params.setdefault("fps", fps or 30.0)
            if size is not None:
                params.setdefault("size", size)
            params["size"] = tuple(params["size"])
            try:
                spec = SyntheticSpec(**params)
            except TypeError as exc:
                raise ValueError(f"camera {name}: synthetic: {exc}; allowed: fps, size, jitter_ms, drop_rate, "
                                 "die_after_s, seed") from None
            return SyntheticSource(name, spec, start_ns)
        if kind == "file":
            return _file_source(name, params if isinstance(params, dict) else {"path": params}, rig_dir, start_ns, copy)
    raise ValueError(f"camera {name}: source: expected a device index, a URL, a file, {{file: ...}} or "
                     f"{{synthetic: ...}}, got {source!r}")


def _file_source(name: str, params: dict, rig_dir: Path, start_ns: int, copy: bool = False) -> CaptureSource:
    unknown = set(params) - {"path", "jitter_ms", "speed"}
    if unknown or "path" not in params:
        raise ValueError(f"camera {name}: file source: expected {{path, jitter_ms, speed}}, got {sorted(params)}")
    speed = float(params.get("speed", 1.0))
    if not 0 < speed <= 10:
        raise ValueError(f"camera {name}: file source: speed must be in (0, 10], got {speed}")
    path = Path(os.path.expanduser(str(params["path"])))
    path = path if path.is_absolute() else rig_dir / path
    if not path.is_file():
        raise FileNotFoundError(f"camera {name}: source file {path} not found")
    return CaptureSource(name, str(path), paced=True, jitter_ms=float(params.get("jitter_ms", 0.0)), start_ns=start_ns,
                         speed=speed, copy=copy)
