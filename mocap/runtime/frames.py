"""A take's 2D keypoints on disk, read a chunk of frames at a time (:class:`FrameFile`).

``FOLDER/keypoints.npy`` holds ``data (T, C, P, J, 3)`` and ``FOLDER/meta.yaml`` the joint and
camera names, fps and frame indices. :meth:`FrameFile.part` maps the file, copies the frames
asked for and unmaps it, so that reading a long take chunk by chunk keeps only one chunk in
memory (what :func:`mocap.runtime.chunked.reconstruct_chunked` needs of its input).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from mocap.io.keypoints import Keypoints2D


def save_frames(keypoints: Keypoints2D, folder: str | os.PathLike) -> Path:
    """Write ``keypoints`` (no extras) as a :class:`FrameFile` folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "keypoints.npy", np.ascontiguousarray(keypoints.data, dtype=np.float64))
    np.save(folder / "frame_indices.npy", np.asarray(keypoints.frame_indices, dtype=np.int64))
    meta = {"joint_names": list(keypoints.joint_names), "camera_names": list(keypoints.camera_names),
            "fps": None if keypoints.fps is None else float(keypoints.fps)}
    (folder / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return folder


@dataclass(frozen=True, eq=False)
class FrameFile:
    """A frame source over a :func:`save_frames` folder; ``num_frames`` may cut the take short."""

    folder: Path
    limit: int | None = None

    def __post_init__(self):
        path = Path(self.folder) / "keypoints.npy"
        if not path.is_file() or not (Path(self.folder) / "meta.yaml").is_file():
            raise FileNotFoundError(f"{self.folder}: expected keypoints.npy and meta.yaml (mocap.runtime.frames.save_frames)")
        meta = yaml.safe_load((Path(self.folder) / "meta.yaml").read_text())
        object.__setattr__(self, "joint_names", tuple(meta["joint_names"]))
        object.__setattr__(self, "camera_names", tuple(meta["camera_names"]))
        object.__setattr__(self, "fps", meta["fps"])

    @property
    def num_frames(self) -> int:
        T = int(np.load(Path(self.folder) / "keypoints.npy", mmap_mode="r").shape[0])
        return T if self.limit is None else min(T, self.limit)

    @property
    def frame_indices(self) -> np.ndarray:
        return np.load(Path(self.folder) / "frame_indices.npy")[: self.num_frames]

    def part(self, lo: int, hi: int) -> Keypoints2D:
        """Frames ``lo:hi`` as :class:`Keypoints2D` (a copy; the file is unmapped again)."""
        mapped = np.load(Path(self.folder) / "keypoints.npy", mmap_mode="r")
        data = np.array(mapped[lo:hi])
        del mapped
        return Keypoints2D(data, self.joint_names, self.camera_names, self.fps, self.frame_indices[lo:hi])
