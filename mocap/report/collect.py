"""What the run report needs of a take, gathered a chunk of frames at a time (:class:`TakeFigures`).

The report's numbers and pictures are sums, counts, medians and per-frame flags over the take.
:func:`take_figures` reads the detections and the 3D result ``chunk_frames`` frames at a time
(from memory, or from a :class:`~mocap.runtime.detection_frames.DetectionFrames` and a
``tracks.npz`` read in order), so a long take's report needs one chunk in memory, not the take:

- reprojection (3D projected into each camera vs that camera's own detection of the person it
  lands closest to, per frame): a histogram per camera and joint on log-spaced bins
  (:data:`EDGES`, 0.46 % wide), whose median is read back interpolated within its bin;
- bone-length steadiness: each bone's count, sum and sum of squares per person;
- presence: per frame, which people are there and how many people each camera detects (a few
  bytes per frame), each person's path (pelvis) at most :data:`PATH_POINTS` points.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from mocap.evaluate import BONES, LIMB_JOINTS, closest_detection_distances
from mocap.geometry import Rig, project_rig

#: Reference keypoints below this confidence are not compared (as in :mod:`mocap.evaluate`).
MIN_CONFIDENCE = 0.3
#: Histogram bin edges of the reprojection distances, px: 0, then 4000 log-spaced bins from 1e-3
#: to 1e5 (each 0.46 % wide); farther distances land in the last bin.
EDGES = np.concatenate([[0.0], np.geomspace(1e-3, 1e5, 4001)])
#: Points of each person's path kept for the rig plot (every k-th frame).
PATH_POINTS = 4000
#: Frames read at a time.
CHUNK_FRAMES = 600


@dataclass(eq=False)
class TakeFigures:
    """Counts and histograms of one take (see the module docstring); fill with :meth:`add`."""

    camera_names: tuple
    joint_names: tuple
    """The tracks' joints."""
    compared: tuple
    """Joints both the tracks and the detections have (reprojection)."""
    track_ids: np.ndarray
    fps: float
    detections_fps: float | None
    path_step: int
    frames: int = 0
    hist: np.ndarray = None  # (C, Jc, bins)
    people_per_frame: list = field(default_factory=list)  # (n, C) per chunk
    present: list = field(default_factory=list)  # (n, P) per chunk
    ok_joints: np.ndarray = None  # (P,) joints finite over the frames present
    bones: np.ndarray = None  # (P, B, 3) count, sum, sum of squares
    paths: list = field(default_factory=list)  # per chunk (m, P, 3)
    recorded: dict = field(default_factory=dict)
    """Camera name -> frames its video holds (where known)."""
    recovered: dict = field(default_factory=dict)
    """Camera name -> detections found by the cross-view pass."""

    @classmethod
    def empty(cls, camera_names, joint_names, detection_joints, track_ids, fps: float, detections_fps, T: int):
        compared = tuple(n for n in joint_names if n in detection_joints)
        P = len(track_ids)
        return cls(tuple(camera_names), tuple(joint_names), compared, np.asarray(track_ids), float(fps), detections_fps,
                   max(1, -(-T // PATH_POINTS)), hist=np.zeros((len(camera_names), len(compared), len(EDGES) - 1), np.int64),
                   ok_joints=np.zeros(P, np.int64), bones=np.zeros((P, len(cls.bone_pairs(joint_names)), 3)))

    @staticmethod
    def bone_pairs(joint_names) -> list[tuple[str, str]]:
        return [(a, b) for a, b in BONES if a in joint_names and b in joint_names]

    def add(self, lo: int, data: np.ndarray, detection_joints, positions: np.ndarray, rig: Rig) -> None:
        """Frames ``lo..lo+n``: detections ``data (n, C, P', J', 3)`` (cameras in ``rig`` order,
        joints ``detection_joints``) and the 3D ``positions (n, P, J, 3)``."""
        n = min(len(data), len(positions))
        data, positions = data[:n], positions[:n]
        self.frames += n
        self.people_per_frame.append(np.isfinite(data[..., 0]).any(-1).sum(-1).astype(np.int16))
        ok = np.isfinite(positions).all(-1)  # (n, P, J)
        here = ok.any(-1)
        self.present.append(here)
        self.ok_joints += np.where(here[..., None], ok, False).sum((0, 2))
        self._add_bones(positions)
        names = list(self.joint_names)
        first = -(-lo // self.path_step) * self.path_step - lo  # the first kept frame in this chunk
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            kept = positions[first::self.path_step]
            # a copy: a view would hold the chunk's positions alive
            self.paths.append(np.array(kept[:, :, names.index("pelvis")]) if "pelvis" in names else np.nanmean(kept, axis=2))
        alive = np.flatnonzero(here.any(0))
        if self.compared and len(alive):
            self._add_reprojection(data, detection_joints, positions[:, alive], rig)

    def _add_bones(self, positions: np.ndarray) -> None:
        names = list(self.joint_names)
        for b, (u, v) in enumerate(self.bone_pairs(names)):
            length = np.linalg.norm(positions[:, :, names.index(u)] - positions[:, :, names.index(v)], axis=-1)  # (n, P)
            seen = np.isfinite(length)
            x = np.where(seen, length, 0.0)
            self.bones[:, b] += np.stack([seen.sum(0), x.sum(0), (x * x).sum(0)], axis=-1)

    def _add_reprojection(self, data: np.ndarray, detection_joints, positions: np.ndarray, rig: Rig) -> None:
        ti = [self.joint_names.index(n) for n in self.compared]
        ki = [list(detection_joints).index(n) for n in self.compared]
        proj = project_rig(rig, positions[:, :, ti])  # (n, P, J, C, 2)
        bins = len(EDGES) - 1
        for c in range(len(rig)):
            chosen = closest_detection_distances(proj[..., c, :], data[:, c][:, :, ki], MIN_CONFIDENCE)  # (n, P, J)
            j = np.broadcast_to(np.arange(len(ti)), chosen.shape)[np.isfinite(chosen)]
            k = np.clip(np.searchsorted(EDGES, chosen[np.isfinite(chosen)], side="right") - 1, 0, bins - 1)
            self.hist[c] += np.bincount(j * bins + k, minlength=len(ti) * bins).reshape(len(ti), bins)

    # ---- what the report reads -------------------------------------------------------------
    def found(self) -> np.ndarray:
        """``(T, C)`` people each camera detects in each frame."""
        C = len(self.camera_names)
        return np.concatenate(self.people_per_frame) if self.people_per_frame else np.zeros((0, C), np.int16)

    def presence(self) -> np.ndarray:
        """``(T, P)`` person present (any joint) in frame."""
        return np.concatenate(self.present) if self.present else np.zeros((0, len(self.track_ids)), bool)

    def reprojection_per_joint(self) -> np.ndarray:
        """``(C, Jc)`` median px per camera and compared joint (NaN: nothing compared)."""
        return np.array([[hist_median(h) for h in cam] for cam in self.hist]).reshape(self.hist.shape[:2])

    def reprojection_per_camera(self) -> dict[str, float]:
        """``{camera: median px over the limb joints}`` (:data:`mocap.evaluate.LIMB_JOINTS`)."""
        limbs = [j for j, n in enumerate(self.compared) if n in LIMB_JOINTS]
        return {name: hist_median(self.hist[c, limbs].sum(0)) if limbs else float("nan")
                for c, name in enumerate(self.camera_names)}

    def bone_cv(self) -> tuple[np.ndarray, list[str]]:
        """``(P, B)`` each bone's length std / mean per person (NaN: never seen), bone names."""
        count, total, squares = np.moveaxis(self.bones, -1, 0)
        with np.errstate(all="ignore"):
            mean = total / count
            cv = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0)) / mean
        return np.where(count > 0, cv, np.nan), [f"{a}-{b}" for a, b in self.bone_pairs(self.joint_names)]

    def person_paths(self) -> list[tuple[int, np.ndarray]]:
        """``[(track id, (m, 3) path)]`` of each person seen, every :attr:`path_step`-th frame."""
        if not self.paths:
            return []
        every = np.concatenate(self.paths)  # (m, P, 3)
        out = []
        for p, tid in enumerate(self.track_ids):
            path = every[:, p][np.isfinite(every[:, p]).all(-1)]
            if len(path):
                out.append((int(tid), path))
        return out


def hist_median(counts: np.ndarray) -> float:
    """The median of the values binned in ``counts`` on :data:`EDGES`, interpolated within its bin."""
    total = int(counts.sum())
    if total == 0:
        return float("nan")
    cum = np.cumsum(counts)
    half = total / 2
    k = int(np.searchsorted(cum, half))
    before = cum[k - 1] if k else 0
    frac = (half - before) / max(counts[k], 1)
    return float(EDGES[k] + frac * (EDGES[k + 1] - EDGES[k]))


def take_figures(keypoints, rig: Rig, tracks, chunk_frames: int = CHUNK_FRAMES) -> TakeFigures:
    """:class:`TakeFigures` of a take.

    Args:
        keypoints: the detections, cameras in ``rig`` order: a :class:`~mocap.io.keypoints.Keypoints2D`
            (``extras["detections"]`` give the frames recorded and the cross-view counts) or a frame
            source with ``part(lo, hi)`` (:class:`~mocap.runtime.detection_frames.DetectionFrames`,
            whose ``recorded``/``recovered`` give them).
        rig: the calibration.
        tracks: the 3D result: :class:`~mocap.io.tracks.Tracks`, or a ``tracks.npz`` path read in order.
        chunk_frames: frames read at a time.
    """
    from mocap.export.source import NpzTracksSource, TracksSource
    from mocap.runtime.chunked import InMemoryFrames

    source = keypoints if hasattr(keypoints, "part") else InMemoryFrames(keypoints)
    reader = TracksSource(tracks) if hasattr(tracks, "positions") else NpzTracksSource(tracks)
    try:
        T = min(source.num_frames, reader.num_frames)
        figures = TakeFigures.empty(rig.names, reader.joint_names, source.joint_names, reader.track_ids, reader.fps,
                                    source.fps, T)
        for lo in range(0, T, chunk_frames):
            hi = min(T, lo + chunk_frames)
            figures.add(lo, source.part(lo, hi).data, source.joint_names, reader.read_positions(lo, hi), rig)
    finally:
        getattr(reader, "close", lambda: None)()
    figures.recorded, figures.recovered = detection_counts(keypoints, rig)
    return figures


def detection_counts(keypoints, rig: Rig) -> tuple[dict, dict]:
    """``({camera: frames recorded}, {camera: found by the cross-view pass})`` where known."""
    if hasattr(keypoints, "recorded"):
        return dict(keypoints.recorded), dict(keypoints.recovered)
    recorded, recovered = {}, {}
    for det in (getattr(keypoints, "extras", None) or {}).get("detections", []) or []:
        try:
            name = rig.names[rig.index(det.camera)]
        except ValueError:
            continue
        rec = getattr(det, "recovered", None)
        recovered[name] = int(rec.sum()) if rec is not None else 0
        recorded[name] = int(det.frame_indices.max()) + 1 if len(det.frame_indices) else 0
    return recorded, recovered
