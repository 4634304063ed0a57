"""A take's detections (``DIR/keypoints2d/<cam>.npz``) read a chunk of frames at a time.

:func:`mocap.pipeline.load_keypoints` stacks every camera's detections into one ``(T, C, P, J, 3)``
array of float64: for a long take that is most of the memory of the stages after detection.
:class:`DetectionFrames` is the frame source that :func:`~mocap.runtime.chunked.reconstruct_chunked`
and the run report read instead: each camera's ``keypoints``, ``scores``, ``appearance`` and
``frame_indices`` are unpacked once from its compressed ``.npz`` into plain ``.npy`` files in a
work folder, streamed a block of rows at a time (:func:`unpack_member`), and :meth:`part`
maps those files, copies the frames asked for and unmaps them. A part is what
:func:`~mocap.detect.pipeline.to_keypoints2d` followed by
:func:`~mocap.io.openpose.align_to_rig` gives for the same frames (cameras in the calibration's
order, a calibration camera without detections all NaN, ``extras`` ``appearance`` and ``scores``).
"""

from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from mocap.detect.appearance import DESCRIPTOR_SIZE
from mocap.geometry import Rig
from mocap.io.keypoints import Keypoints2D

log = logging.getLogger(__name__)

#: The arrays of a camera's detections a part is built from.
FIELDS = ("keypoints", "scores", "appearance", "frame_indices")
#: Bytes per block when unpacking a member.
BLOCK_BYTES = 16 << 20


def unpack_member(npz: Path, name: str, dst: Path) -> tuple[tuple, np.dtype]:
    """Member ``name`` of the ``.npz`` file ``npz`` written to ``dst`` (a ``.npy`` file) a block of
    rows at a time, never the whole array in memory. Returns its ``(shape, dtype)``."""
    with zipfile.ZipFile(npz) as zf, zf.open(f"{name}.npy") as src:
        version = np.lib.format.read_magic(src)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(src)
        if fortran and len(shape) > 1:
            raise ValueError(f"{npz}: {name} is stored in Fortran order; detect again")
        out = np.lib.format.open_memmap(dst, mode="w+", dtype=dtype, shape=shape)
        row = max(int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize, 1)
        step = max(1, BLOCK_BYTES // row)
        flat = out.reshape(shape[0], -1) if len(shape) else out.reshape(1, -1)
        for lo in range(0, flat.shape[0], step):
            n = min(step, flat.shape[0] - lo)
            flat[lo: lo + n] = np.frombuffer(src.read(n * row), dtype=dtype).reshape(n, -1)
        out.flush()
        del flat, out
    return tuple(shape), np.dtype(dtype)


@dataclass(frozen=True, eq=False)
class DetectionFrames:
    """A frame source over unpacked detections (:meth:`open`): ``num_frames``, ``joint_names``,
    ``camera_names`` (the calibration's), ``fps``, ``frame_indices`` and ``part(lo, hi)``."""

    folder: Path
    cameras: tuple
    """Per calibration camera, the detection file's stem unpacked in ``folder``, or None."""
    joint_names: tuple
    camera_names: tuple
    fps: float | None
    num_frames: int
    slots: int
    recorded: dict
    """Calibration camera name -> frames its video holds."""
    recovered: dict
    """Calibration camera name -> detections found by the cross-view pass."""

    @classmethod
    def open(cls, detections: str | os.PathLike, rig: Rig, work: str | os.PathLike) -> DetectionFrames:
        """Unpack ``detections/<cam>.npz`` (every camera of ``rig`` found there, matched by name as
        :func:`~mocap.io.openpose.align_to_rig` does) into ``work``."""
        from mocap.detect.pipeline import load_detection_header
        from mocap.io.openpose import rig_order

        paths = sorted(Path(detections).glob("*.npz"))
        if not paths:
            raise FileNotFoundError(f"{detections}: no detections (<camera>.npz); run mocap detect first")
        heads = [load_detection_header(p) for p in paths]
        src_of_rig = rig_order([h["camera"] for h in heads], rig, "detection camera")
        missing = [rig.names[r] for r in np.flatnonzero(src_of_rig < 0)]
        if missing:
            log.warning("no keypoints for calibration camera(s) %s: they are treated as seeing nothing", ", ".join(missing))
        work = Path(work)
        work.mkdir(parents=True, exist_ok=True)
        slots, recorded, recovered = 0, [], []
        for p in paths:
            with zipfile.ZipFile(p) as zf:
                present = {n[:-4] for n in zf.namelist()}
            shapes = {name: unpack_member(p, name, work / f"{p.stem}.{name}.npy")[0] for name in FIELDS if name in present}
            frames = np.load(work / f"{p.stem}.frame_indices.npy", mmap_mode="r")
            recorded.append(int(frames[-1]) + 1 if len(frames) else 0)
            slots = max(slots, shapes["keypoints"][1])
            del frames
            with np.load(p) as z:  # (T, P) bools: small
                recovered.append(int(z["recovered"].sum()) if "recovered" in z.files else 0)
        cameras = tuple(paths[s].stem if s >= 0 else None for s in src_of_rig)
        fps = next((h["fps"] for h in heads if h["fps"]), None)
        mine = {rig.names[r]: s for r, s in enumerate(src_of_rig) if s >= 0}
        return cls(work, cameras, heads[0]["joint_names"], tuple(rig.names), fps, max(recorded), slots,
                   {n: recorded[s] for n, s in mine.items()}, {n: recovered[s] for n, s in mine.items()})

    @property
    def frame_indices(self) -> np.ndarray:
        return np.arange(self.num_frames)

    def part(self, lo: int, hi: int) -> Keypoints2D:
        """Frames ``lo:hi`` as :class:`Keypoints2D` with ``extras`` ``appearance (n, C, P, D)`` and
        ``scores (n, C, P)``: :func:`~mocap.detect.pipeline.to_keypoints2d` of the mapped files
        (copies of those frames; the files are unmapped again)."""
        from mocap.detect.pipeline import to_keypoints2d

        cams = [self._mapped(stem) for stem in self.cameras]
        kp = to_keypoints2d(cams, (lo, hi))
        del cams
        return Keypoints2D(kp.data, self.joint_names, self.camera_names, self.fps, kp.frame_indices,
                           {"appearance": kp.extras["appearance"], "scores": kp.extras["scores"]})

    def _mapped(self, stem: str | None) -> SimpleNamespace:
        """One camera's arrays as :func:`~mocap.detect.pipeline.to_keypoints2d` reads them: memory
        maps of its files (no file: no frames; no appearance: NaN, not allocated)."""
        J = len(self.joint_names)
        if stem is None:
            return SimpleNamespace(frame_indices=np.zeros(0, np.int64), keypoints=np.zeros((0, self.slots, J, 3)),
                                   appearance=np.zeros((0, self.slots, DESCRIPTOR_SIZE)), scores=np.zeros((0, self.slots)),
                                   joint_names=self.joint_names, camera="", fps=self.fps)
        m = {name: np.load(self.folder / f"{stem}.{name}.npy", mmap_mode="r") for name in FIELDS
             if (self.folder / f"{stem}.{name}.npy").is_file()}
        if "appearance" not in m:
            m["appearance"] = np.broadcast_to(np.float32(np.nan), m["scores"].shape + (DESCRIPTOR_SIZE,))
        return SimpleNamespace(**m, joint_names=self.joint_names, camera=stem, fps=self.fps)
