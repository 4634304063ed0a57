"""``mocap record --preview``: the latest frame of every camera as one mosaic, while recording.

The recorder usually runs on a machine without a screen (and the opencv-python-headless wheel
opens no window), so the mosaic is served over HTTP: ``http://HOST:PORT/`` is an MJPEG stream
any browser shows, ``/preview.jpg`` one still; ``SESSION/preview.jpg`` is replaced with the
same picture each time (the last one stays after the take). Each tile says the camera's name,
the frames written and those dropped. Cameras recorded with ``--fourcc copy`` keep their frames
encoded, so their tile only says so. The mosaic is built :data:`RATE` times a second from frames
the capture threads already hold: it costs a resize per camera and one small JPEG.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

from mocap.io.files import atomic_write

log = logging.getLogger(__name__)

#: Mosaics per second.
RATE = 2.0
#: Width of one camera's tile, px (smaller frames keep their size).
TILE_WIDTH = 480
BOUNDARY = b"mocapframe"


def mosaic(tiles: list, labels: list[str], frame_size=(0, 0), tile_width: int = TILE_WIDTH) -> np.ndarray:
    """One picture of ``tiles`` (frames ``(H, W, 3)`` uint8 or None: grey) in a near-square grid,
    each shrunk to ``tile_width`` (never enlarged) and captioned with its label; tiles are sized
    from ``frame_size`` (width, height) when known, else from the first frame."""
    shape = (frame_size[1], frame_size[0]) if min(frame_size) > 0 else \
        next((t.shape for t in tiles if t is not None), (270, 480, 3))
    w = min(tile_width, shape[1])
    h = max(int(round(shape[0] * w / shape[1])), 1)
    cols = max(int(math.ceil(math.sqrt(len(tiles)))), 1)
    rows = int(math.ceil(len(tiles) / cols))
    out = np.full((rows * h, cols * w, 3), 64, np.uint8)
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        y, x = (i // cols) * h, (i % cols) * w
        if tile is not None:
            out[y:y + h, x:x + w] = cv2.resize(tile, (w, h), interpolation=cv2.INTER_AREA) \
                if tile.shape[:2] != (h, w) else tile
        cv2.putText(out, label, (x + 6, y + h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3)
        cv2.putText(out, label, (x + 6, y + h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
    return out


class Preview:
    """Serves the mosaic of a take's cameras (module docstring). The port is bound when it is
    made (``port`` 0: any free one; :attr:`url`), the pictures start with :meth:`start`."""

    def __init__(self, port: int = 8765, host: str = "127.0.0.1"):
        self._jpeg, self._cond, self._stop = b"", threading.Condition(), threading.Event()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}/"
        self._threads: list[threading.Thread] = []

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def start(self, workers: list, session: Path) -> None:
        """Serve and refresh the mosaic of ``workers`` (:class:`mocap.record.capture.CameraWorker`)."""
        self._threads = [threading.Thread(target=self._server.serve_forever, name="preview-http", daemon=True),
                         threading.Thread(target=self._refresh, args=(workers, Path(session) / "preview.jpg"),
                                          name="preview", daemon=True)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._threads:  # shutdown() waits for serve_forever(), which only start() runs
            self._server.shutdown()
        self._server.server_close()
        for t in self._threads:
            t.join(5.0)

    def latest(self, timeout: float = 5.0, newer_than: bytes = b"") -> bytes:
        """The newest mosaic as JPEG bytes (waits for one other than ``newer_than``)."""
        with self._cond:
            self._cond.wait_for(lambda: (self._jpeg and self._jpeg is not newer_than) or self._stop.is_set(), timeout)
            return self._jpeg

    def _refresh(self, workers: list, path: Path) -> None:
        while not self._stop.is_set():
            tiles, labels = [], []
            for w in workers:
                c = w.log
                tiles.append(w.latest)
                labels.append(f"{c.name}: {c.frames_written} frames, {c.dropped_by_recorder} dropped"
                              + (" (copied: no preview)" if getattr(w.source, "copy", False) else ""))
            size = next((tuple(w.source.size) for w in workers if min(getattr(w.source, "size", (0, 0))) > 0), (0, 0))
            ok, buf = cv2.imencode(".jpg", mosaic(tiles, labels, size), [cv2.IMWRITE_JPEG_QUALITY, 80])
            if ok:
                with self._cond:
                    self._jpeg = buf.tobytes()
                    self._cond.notify_all()
                try:
                    atomic_write(path, lambda tmp: Path(tmp).write_bytes(self._jpeg))
                except OSError as exc:  # a full disk is the recorder's to report
                    log.debug("preview: cannot write %s: %s", path, exc)
            self._stop.wait(1.0 / RATE)


def _handler(preview: Preview):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.path.startswith("/preview.jpg"):
                return self._send_still()
            if self.path not in ("/", "/stream"):
                return self.send_error(404, "the preview is at / (stream) and /preview.jpg")
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
            self.end_headers()
            jpeg = b""
            try:
                while not preview.stopped:
                    jpeg = preview.latest(newer_than=jpeg)
                    if not jpeg:
                        break
                    self.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                     + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser went away

        def _send_still(self):
            jpeg = preview.latest()
            if not jpeg:
                return self.send_error(503, "no picture yet")
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(jpeg)))
            self.end_headers()
            self.wfile.write(jpeg)

        def log_message(self, fmt, *args):
            log.debug("preview: " + fmt, *args)

    return Handler
