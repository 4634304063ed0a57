"""``tracks.npz``: the 3D result every exporter and benchmark reads (DESIGN.md contract).

Arrays: ``positions`` float (T, P, J, 3) world metres (Z up), NaN where person p is absent;
``joint_names`` (J,) str; ``track_ids`` (P,) int; ``fps`` float; ``frame_indices`` (T,) int;
optional ``confidence`` (T, P, J).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mocap._checks import check_shape
from mocap.errors import MocapError
from mocap.io.files import atomic_write


@dataclass(frozen=True, eq=False)
class Tracks:
    """3D joint trajectories of P people over T frames.

    Attributes:
        positions: ``(T, P, J, 3)`` world metres, NaN where absent.
        joint_names: ``(J,)`` canonical joint names.
        track_ids: ``(P,)`` persistent person IDs.
        fps: frames per second.
        frame_indices: ``(T,)`` source frame index of each row.
        confidence: optional ``(T, P, J)`` in [0, 1].
    """

    positions: np.ndarray
    joint_names: tuple[str, ...]
    track_ids: np.ndarray
    fps: float
    frame_indices: np.ndarray
    confidence: np.ndarray | None = None

    def __post_init__(self):
        pos = check_shape(np.asarray(self.positions, dtype=np.float64), "T P J 3", "positions")
        T, P, J, _ = pos.shape
        names = tuple(str(n) for n in self.joint_names)
        if len(names) != J:
            raise ValueError(f"joint_names: expected {J} names, got {len(names)}")
        ids = check_shape(np.asarray(self.track_ids, dtype=np.int64).reshape(-1), "P", "track_ids")
        if ids.shape[0] != P:
            raise ValueError(f"track_ids: expected {P} ids, got {ids.shape[0]}")
        frames = np.asarray(self.frame_indices, dtype=np.int64).reshape(-1)
        if frames.shape[0] != T:
            raise ValueError(f"frame_indices: expected {T} entries, got {frames.shape[0]}")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps: expected a positive number, got {self.fps}")
        conf = self.confidence
        if conf is not None:
            conf = check_shape(np.asarray(conf, dtype=np.float64), "T P J", "confidence")
            if conf.shape != (T, P, J):
                raise ValueError(f"confidence: expected shape {(T, P, J)}, got {conf.shape}")
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "joint_names", names)
        object.__setattr__(self, "track_ids", ids)
        object.__setattr__(self, "frame_indices", frames)
        object.__setattr__(self, "fps", float(self.fps))
        object.__setattr__(self, "confidence", conf)

    @property
    def num_frames(self) -> int:
        return self.positions.shape[0]

    @property
    def num_people(self) -> int:
        return self.positions.shape[1]

    def person(self, p: int) -> "Tracks":
        """The tracks of person index ``p`` only (P = 1)."""
        conf = None if self.confidence is None else self.confidence[:, p : p + 1]
        return Tracks(self.positions[:, p : p + 1], self.joint_names, self.track_ids[p : p + 1], self.fps, self.frame_indices, conf)


def save_tracks(tracks: Tracks, path: str | os.PathLike) -> Path:
    """Write ``tracks.npz`` atomically."""
    arrays = dict(
        positions=tracks.positions,
        joint_names=np.array(tracks.joint_names, dtype=str),
        track_ids=tracks.track_ids,
        fps=np.float64(tracks.fps),
        frame_indices=tracks.frame_indices,
    )
    if tracks.confidence is not None:
        arrays["confidence"] = tracks.confidence

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    return atomic_write(path, write)


def load_tracks(path: str | os.PathLike) -> Tracks:
    """Read ``tracks.npz``; a missing key or a bad shape is a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such tracks file")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("positions", "joint_names", "track_ids", "fps", "frame_indices") if k not in z]
            if missing:
                raise MocapError(f"{path}: not a tracks.npz file, missing {', '.join(missing)}")
            return Tracks(
                positions=z["positions"],
                joint_names=tuple(z["joint_names"].tolist()),
                track_ids=z["track_ids"],
                fps=float(z["fps"]),
                frame_indices=z["frame_indices"],
                confidence=z["confidence"] if "confidence" in z else None,
            )
    except ValueError as exc:
        raise MocapError(f"{path}: {exc}") from None


#: Elements (float64) per block the streaming writer builds at most: 32 MB.
BLOCK_ELEMENTS = 1 << 22


def write_npy_blocks(zf, name: str, shape: tuple, dtype, blocks) -> None:
    """Member ``name.npy`` of the open ``zipfile.ZipFile`` ``zf`` written from ``blocks``: arrays
    whose rows (axis 0) follow each other and add up to ``shape`` (C order), never the whole array."""
    dtype = np.dtype(dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(int(s) for s in shape)}
    rows = 0
    with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, header)
        for block in blocks:
            block = np.ascontiguousarray(block, dtype=dtype)
            if block.shape[1:] != tuple(shape[1:]):
                raise ValueError(f"{name}: a block of shape {block.shape} in an array of shape {tuple(shape)}")
            f.write(block.data)
            rows += block.shape[0]
    if rows != shape[0]:
        raise ValueError(f"{name}: blocks gave {rows} rows, expected {shape[0]}")


def save_tracks_blocks(path: str | os.PathLike, people: int, joint_names, track_ids, fps: float, frame_indices,
                       positions, confidence=None) -> Path:
    """Write ``tracks.npz`` (the same arrays as :func:`save_tracks`, read by :func:`load_tracks`
    unchanged) from blocks of frames, atomically: ``positions()`` returns an iterator of
    ``(n, P, J, 3)`` blocks in frame order, ``confidence()`` (or None) of ``(n, P, J)``. Memory is
    one block, not the take."""
    import zipfile

    names = np.array([str(n) for n in joint_names], dtype=str)
    ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
    frames = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    T, P, J = len(frames), int(people), len(names)
    if len(ids) != P:
        raise ValueError(f"track_ids: expected {P} ids, got {len(ids)}")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps: expected a positive number, got {fps}")

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            write_npy_blocks(zf, "positions", (T, P, J, 3), np.float64, positions())
            for key, value in (("joint_names", names), ("track_ids", ids), ("fps", np.float64(fps)),
                               ("frame_indices", frames)):
                with zf.open(f"{key}.npy", "w") as f:
                    np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
            if confidence is not None:
                write_npy_blocks(zf, "confidence", (T, P, J), np.float64, confidence())

    return atomic_write(path, write)
