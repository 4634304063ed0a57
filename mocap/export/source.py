"""Where the streamed export reads the tracks from: frames ``[start, stop)`` at a time.

:class:`TracksSource` serves a :class:`mocap.io.tracks.Tracks` in memory; :class:`NpzTracksSource`
reads ``positions`` of a ``tracks.npz`` (the DESIGN.md contract, as :func:`mocap.io.tracks.save_tracks`
writes it: a zip of ``.npy`` members, compressed or not) a range of frames at a time, straight from
the zip member, so the whole ``(T, P, J, 3)`` array is never in memory (except for an array stored
in Fortran order, which is read whole). Reads should go forward: a compressed member cannot seek
back cheaply (a read before the last one restarts the member).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from mocap.errors import MocapError
from mocap.io.tracks import Tracks

_REQUIRED = ("positions", "joint_names", "track_ids", "fps", "frame_indices")


class TracksSource:
    """A :class:`Tracks` in memory, read by frame ranges."""

    def __init__(self, tracks: Tracks):
        self.tracks = tracks
        self.num_frames, self.num_people = tracks.num_frames, tracks.num_people
        self.joint_names, self.track_ids, self.fps = tracks.joint_names, tracks.track_ids, tracks.fps

    def read_positions(self, start: int, stop: int) -> np.ndarray:
        return self.tracks.positions[start:stop]

    def load(self) -> Tracks:
        return self.tracks


class NpzTracksSource:
    """``tracks.npz`` read lazily: the small arrays at once, ``positions`` by frame ranges."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such tracks file")
        try:
            with np.load(self.path, allow_pickle=False) as z:
                missing = [k for k in _REQUIRED if k not in z]
                if missing:
                    raise MocapError(f"{self.path}: not a tracks.npz file, missing {', '.join(missing)}")
                self.joint_names = tuple(str(n) for n in z["joint_names"].tolist())
                self.track_ids = np.asarray(z["track_ids"], dtype=np.int64).reshape(-1)
                self.fps = float(z["fps"])
                self.frame_indices = np.asarray(z["frame_indices"], dtype=np.int64).reshape(-1)
            self._zip = zipfile.ZipFile(self.path)
            self._member = self._zip.open("positions.npy")
            version = np.lib.format.read_magic(self._member)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(self._member)
        except (ValueError, zipfile.BadZipFile, KeyError, OSError) as exc:
            raise MocapError(f"{self.path}: {exc}") from None
        if len(shape) != 4 or shape[3] != 3 or shape[2] != len(self.joint_names):
            raise MocapError(f"{self.path}: positions: expected (T, P, {len(self.joint_names)}, 3), got {shape}")
        # Fortran order (not what save_tracks writes) has no contiguous frames: read it whole
        self._whole = np.asarray(np.load(self.path)["positions"], dtype=np.float64) if fortran else None
        self.num_frames, self.num_people = int(shape[0]), int(shape[1])
        if self.track_ids.shape[0] != self.num_people or self.frame_indices.shape[0] != self.num_frames:
            raise MocapError(f"{self.path}: track_ids/frame_indices do not match positions {shape}")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise MocapError(f"{self.path}: fps: expected a positive number, got {self.fps}")
        self._dtype = np.dtype(dtype)
        self._data_start = self._member.tell()
        self._row = self._dtype.itemsize * self.num_people * len(self.joint_names) * 3
        self._at = 0  # the next frame the member's position is at

    def read_positions(self, start: int, stop: int) -> np.ndarray:
        if self._whole is not None:
            return self._whole[start:stop]
        if start != self._at:
            self._member.seek(self._data_start + start * self._row)
        data = self._member.read((stop - start) * self._row)
        if len(data) != (stop - start) * self._row:
            raise MocapError(f"{self.path}: positions end before frame {stop}; the file is truncated")
        self._at = stop
        shape = (stop - start, self.num_people, len(self.joint_names), 3)
        return np.frombuffer(data, dtype=self._dtype).reshape(shape).astype(np.float64)

    def load(self) -> Tracks:
        from mocap.io.tracks import load_tracks

        return load_tracks(self.path)

    def close(self) -> None:
        self._member.close()
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
