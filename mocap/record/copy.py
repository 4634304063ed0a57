"""Recording a source's own encoded frames (``record.fourcc: copy``): a video file or an
``rtsp://``/``http://`` stream is read as compressed packets and written into
``videos/<cam>.mp4`` as they are, without decoding or encoding: the recording decodes to the
very pixels of the source (bit for bit), at almost no CPU.

Packets arrive in decoding order; with B-frames a frame's packet can come before the frames it
is shown after (presentation times 0 1 2 3 4 8 6 5 ...). The container gets each packet's own
presentation time, renumbered past frames the recorder dropped. ``timestamps/<cam>.csv`` keeps
one row per video frame in presentation order: frame k gets the k-th arrival time (packets
reach the recorder at the camera's steady rate, so the k-th arrival is frame k's instant, up to
the encoder's constant delay) and the source frame its presentation time says. Rows are written
once a group of pictures is complete (at the next key frame, or at the end of the take).

A frame dropped by the recorder (its queue full) takes the rest of its group of pictures with
it: later packets refer to it, so they are dropped too (and counted) until the next key frame.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

#: Decoding timestamps run this many frames behind presentation (the deepest B-frame reordering
#: H.264 and HEVC allow), so that no packet is decoded after it is shown.
DTS_DELAY = 16
#: Source codecs (OpenCV FourCC as read) and the FourCC their packets are written under in .mp4.
COPY_TAGS = {"h264": "avc1", "avc1": "avc1", "hevc": "hev1", "hev1": "hev1", "hvc1": "hev1",
             "FMP4": "mp4v", "mp4v": "mp4v", "XVID": "mp4v", "DIVX": "mp4v", "VP90": "vp09", "vp09": "vp09",
             "av01": "av01", "AV01": "av01"}


def fourcc_text(code: int) -> str:
    """An OpenCV FourCC number as its four characters."""
    return int(code).to_bytes(4, "little").decode("latin-1").rstrip("\x00")


class PacketReader:
    """Compressed packets of a video file or stream, in decoding order."""

    def __init__(self, name: str, target):
        self._cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, [cv2.CAP_PROP_FORMAT, -1])
        if not self._cap.isOpened():
            self._cap.release()
            raise OSError(f"camera {name}: cannot open source {target!r} to copy its encoded frames")
        codec = fourcc_text(self._cap.get(cv2.CAP_PROP_FOURCC))
        if codec not in COPY_TAGS:
            self._cap.release()
            raise ValueError(f"camera {name}: its {codec or 'unknown'} video cannot be copied into an .mp4 "
                             f"(H.264, HEVC, MPEG-4, VP9 or AV1 can); record it with --fourcc mp4v")
        self.tag = COPY_TAGS[codec]
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0)
        self.size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._extradata, self._pts0 = None, None
        if self.tag == "mp4v":  # MPEG-4 part 2 keeps its headers out of band: they go before packet 0
            ok, extra = self._cap.retrieve(None, int(self._cap.get(cv2.CAP_PROP_CODEC_EXTRADATA_INDEX)))
            self._extradata = extra.reshape(-1) if ok and extra is not None and extra.size else None

    def read(self):
        """``(packet (1, N) uint8, presentation frame number, key frame)`` or None at the end.
        Frames count from the first key frame: a stream joined between key frames starts at the
        next one (the packets before it, and B-frames shown before it, cannot be decoded)."""
        while True:
            ok, packet = self._cap.read()
            if not ok or packet is None or packet.size == 0:
                return None
            pts = int(round(self._cap.get(cv2.CAP_PROP_PTS)))
            key = bool(self._cap.get(cv2.CAP_PROP_LRF_HAS_KEY_FRAME))
            if self._pts0 is None and key:
                self._pts0 = pts
            if self._pts0 is not None and pts >= self._pts0:
                break
        pts -= self._pts0
        if self._extradata is not None:
            packet = np.concatenate([self._extradata, packet.reshape(-1)])[None, :]
            self._extradata = None
        return packet, pts, key

    def release(self) -> None:
        self._cap.release()


class PacketWriter:
    """Writes packets into an .mp4 unchanged; gives back each group of pictures' timestamp rows
    in presentation order once it is complete (:meth:`write`, :meth:`close`)."""

    def __init__(self, path: Path, tag: str, fps: float, size: tuple[int, int]):
        self._writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*tag), fps, size,
                                       [cv2.VIDEOWRITER_PROP_RAW_VIDEO, 1])
        if not self._writer.isOpened():
            raise OSError(f"cannot open a writer that copies {tag} packets into {path}")
        self._writer.set(cv2.VIDEOWRITER_PROP_DTS_DELAY, DTS_DELAY)
        self._group: list = []  # (presentation frame, time_ns, wall_ns) of the open group of pictures

    def write(self, packet: np.ndarray, pts: int, t_ns: int, wall_ns: int, key: bool, dropped: int = 0) -> list:
        """Write one packet (``dropped``: frames the recorder dropped before it, whole groups
        before a key frame, so its presentation time moves back by as many); returns the rows
        ``(source frame, time_ns, wall_ns)`` of the group it closes (a key frame closes the one
        before it), else []."""
        rows = self._flush() if key else []
        self._writer.set(cv2.VIDEOWRITER_PROP_KEY_FLAG, 1 if key else 0)
        self._writer.set(cv2.VIDEOWRITER_PROP_PTS, float(pts - dropped))
        self._writer.write(packet)
        self._group.append((pts, t_ns, wall_ns))
        return rows

    def _flush(self) -> list:
        shown = sorted(p for p, _, _ in self._group)
        rows = [(p, t, w) for p, (_, t, w) in zip(shown, self._group)]
        self._group = []
        return rows

    def close(self) -> list:
        """Finalize the file; the last group's rows."""
        rows = self._flush()
        self._writer.release()
        return rows
