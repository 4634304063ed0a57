"""One camera's detection over chunks of frames: bounded memory, resumable per chunk, one task per
(camera x chunk) on an executor.

A chunk ``[lo, hi)`` of a video is detected by a fresh person tracker that starts ``warmup``
frames earlier (``[lo - warmup, hi)``): the tracker's state at a chunk border (who is followed,
where their ROI is) is rebuilt on those frames instead of being carried from the previous chunk,
so chunks are independent tasks. The warm-up frames are detected by both chunks; they decide
which track slot of a chunk continues which slot of the previous one
(:func:`stitch_slots`: matched on the 2D body joints over the second half of the overlap, where
the fresh tracker has converged) and are then dropped from the later chunk. The left/right flip
repair (:func:`~mocap.detect.roi_tracking.fix_left_right_flips`) runs once over the whole camera,
as in one pass.

Each chunk is written as ``<out>/<camera>.chunks/<lo>-<hi>.npz`` (the
:func:`~mocap.detect.pipeline.save_camera_detections` format, warm-up frames included) and reused
when it was made from the same video and settings, so an interrupted camera resumes at its first
missing chunk. The result differs from one pass only where the fresh tracker at a border sees
someone differently from the tracker that followed them (``mocap bench long_take --video``
measures it on the demo take).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from mocap.detect.appearance import DESCRIPTOR_SIZE, appearance_descriptors
from mocap.detect.pipeline import (CameraDetections, load_camera_detections, make_detector,
                                   save_camera_detections)
from mocap.detect.roi_tracking import fix_left_right_flips, keypoint_distance
from mocap.detect.video import read_frames, video_fingerprint, video_info

log = logging.getLogger(__name__)

#: Frames a chunk's tracker runs before its first frame (1 s at 30 fps).
DEFAULT_WARMUP = 30
#: Two slots of neighbouring chunks are one person when their body joints are this close
#: (median distance over the mean ROI size, :func:`~mocap.detect.roi_tracking.keypoint_distance`).
SAME_PERSON = 0.15


def detect_chunks_ranges(frame_count: int, chunk_frames: int) -> list[tuple[int, int]]:
    """``[(lo, hi), ...]`` covering ``frame_count`` frames in chunks of ``chunk_frames``."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames: expected >= 1, got {chunk_frames}")
    return [(lo, min(lo + chunk_frames, frame_count)) for lo in range(0, frame_count, chunk_frames)]


def chunk_path(out: Path, camera: str, lo: int, hi: int) -> Path:
    return Path(out) / f"{camera}.chunks" / f"{lo:08d}-{hi:08d}.npz"


def _stack(rows: list, shape: tuple, P: int) -> np.ndarray:
    out = np.full((len(rows), P) + shape, np.nan, np.float32)
    for t, r in enumerate(rows):
        if r is not None and len(r):
            out[t, : len(r)] = r
    return out


def detect_range(video: Path, detector, camera: str, start: int, stop: int, allow_short: bool = False) -> CameraDetections:
    """Frames ``[start, stop)`` of one video through a fresh tracker (no flip repair)."""
    info = video_info(video)
    tracker = detector.new_tracker(fps=info.fps)
    kps, scores, apps, rois, frames = [], [], [], [], []
    for index, frame in read_frames(video, start, stop, allow_short=allow_short):
        res = tracker.step(frame)
        frames.append(index)
        kps.append(res.keypoints)
        scores.append(res.scores)
        rois.append(res.rois)
        apps.append(appearance_descriptors(frame, res.keypoints, detector.joint_names))
    J = len(detector.joint_names)
    P = max((len(s) for s in scores), default=0)
    return CameraDetections(camera=camera, keypoints=_stack(kps, (J, 3), P), scores=_stack(scores, (), P),
                            appearance=_stack(apps, (DESCRIPTOR_SIZE,), P), rois=_stack(rois, (4,), P),
                            frame_indices=np.asarray(frames, np.int64), joint_names=tuple(detector.joint_names),
                            fps=info.fps, image_size=info.size, detector="", model_sha256=dict(detector.model_sha256),
                            video_fingerprint=video_fingerprint(video))


def detect_chunk_task(video: str, out_dir: str, config, camera: str, lo: int, hi: int, warmup: int,
                      settings: str) -> str:
    """Detect frames ``[lo, hi)`` of one camera (plus ``warmup`` frames before) into its chunk file,
    unless a reusable one is there. Returns the file's path."""
    path = chunk_path(Path(out_dir), camera, lo, hi)
    if reusable_chunk(path, Path(video), settings) is not None:
        return str(path)
    detector = make_detector(config.detector, config.model_config, config.blazepose)
    det = detect_range(Path(video), detector, camera, max(0, lo - warmup), hi, config.allow_short)
    spec = config.detector if config.detector == "blazepose" else "onnx:" + Path(config.detector[5:]).name
    save_camera_detections(replace(det, detector=spec, settings=settings), path)
    return str(path)


def reusable_chunk(path: Path, video: Path, settings: str) -> CameraDetections | None:
    """The chunk in ``path`` if it was made from this video with these settings (and warm-up)."""
    if not path.is_file():
        return None
    try:
        old = load_camera_detections(path)
    except Exception:  # an unreadable leftover is recomputed
        return None
    if old.video_fingerprint != video_fingerprint(video) or old.settings != settings:
        return None
    return old


def stitch_slots(prev: CameraDetections, prev_global: np.ndarray, cur: CameraDetections, overlap: int) -> np.ndarray:
    """Global slot of each of ``cur``'s slots: the previous chunk's slot it continues (matched on
    the last ``overlap`` frames of ``prev``, the first of ``cur``; second half only), else the
    lowest slot no person alive at the border holds."""
    P = cur.keypoints.shape[1]
    out = np.full(P, -1, int)
    half = max(1, overlap // 2)
    if overlap and prev.keypoints.shape[1] and P:
        a = prev.keypoints[-half:]                       # (h, Pa, J, 3)
        b = cur.keypoints[overlap - half: overlap]       # (h, Pb, J, 3)
        size = np.concatenate([prev.rois[-half:, :, 2], cur.rois[overlap - half: overlap, :, 2]], axis=1)
        cost = np.full((half, a.shape[1], P), np.nan)
        for t in range(half):
            people = np.concatenate([a[t], b[t]])
            d = keypoint_distance(people, size[t])
            cost[t] = d[: a.shape[1], a.shape[1]:]
        with warnings.catch_warnings():  # a pair never seen together: all-NaN, no match
            warnings.simplefilter("ignore", RuntimeWarning)
            cost = np.nanmedian(cost, axis=0)
        from scipy.optimize import linear_sum_assignment

        cost = np.where(np.isfinite(cost), cost, 1e6)
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols):
            if cost[r, c] < SAME_PERSON:
                out[c] = prev_global[r]
    alive = set(prev_global[np.isfinite(prev.scores[-1])].tolist()) if len(prev.scores) else set()
    taken = set(out[out >= 0].tolist()) | alive
    free = (g for g in range(10 ** 6) if g not in taken)
    for c in np.flatnonzero(out < 0):
        out[c] = next(free)
    return out


def merge_chunks(parts: list[CameraDetections], starts: list[int], perm=None, fix_flips: bool = False) -> CameraDetections:
    """One camera's detections from its chunks (``starts``: each chunk's first own frame)."""
    globals_, trimmed = [], []
    for k, part in enumerate(parts):
        overlap = int(np.searchsorted(part.frame_indices, starts[k]))
        if k == 0:
            g = np.arange(part.keypoints.shape[1])
        else:
            g = stitch_slots(parts[k - 1], globals_[-1], part, overlap)
        globals_.append(g)
        trimmed.append((part, overlap, g))
    P = max((int(g.max()) + 1 for g in globals_ if len(g)), default=0)
    first = parts[0]
    T = sum(len(p.frame_indices) - o for p, o, _ in trimmed)
    arrays = {name: np.full((T, P) + getattr(first, name).shape[2:], np.nan, np.float32)
              for name in ("keypoints", "scores", "appearance", "rois")}
    t = 0
    for part, overlap, g in trimmed:
        n = len(part.frame_indices) - overlap
        for name, arr in arrays.items():
            arr[t: t + n][:, g] = getattr(part, name)[overlap:]
        t += n
    if fix_flips and perm is not None and P:
        flip = fix_left_right_flips(arrays["keypoints"], perm)
        arrays["keypoints"][flip] = arrays["keypoints"][flip][:, perm]
    frames = np.concatenate([p.frame_indices[o:] for p, o, _ in trimmed])
    return replace(first, frame_indices=frames, **arrays)


def detect_camera_chunked(video: Path, camera: str, config, settings: str, out: Path, chunk_frames: int,
                          warmup: int = DEFAULT_WARMUP, executor=None) -> CameraDetections:
    """One camera over chunks (each a task on ``executor`` when given, else here, one at a time),
    merged into its detections. Chunk files stay in ``out/<camera>.chunks`` for resuming."""
    count = video_info(video).frame_count
    ranges = detect_chunks_ranges(count, chunk_frames)
    settings = chunk_settings(settings, warmup)
    items = [((lo, hi), (str(video), str(out), config, camera, lo, hi, warmup, settings)) for lo, hi in ranges]
    if executor is not None:
        paths = dict(executor.map(detect_chunk_task, items))
    else:
        paths = {key: detect_chunk_task(*args) for key, args in items}
    parts = [load_camera_detections(paths[r]) for r in ranges]
    detector_perm = _left_right_perm(config)
    return merge_chunks(parts, [lo for lo, _ in ranges], detector_perm, _fixes_flips(config))


def _left_right_perm(config):
    from mocap.skeleton.joints import BLAZEPOSE_33, left_right_permutation

    return left_right_permutation(BLAZEPOSE_33) if config.detector == "blazepose" else None


def _fixes_flips(config) -> bool:
    return bool(getattr(config.model_config, "fix_left_right_flips", False))


def chunk_settings(settings: str, warmup: int) -> str:
    return f"{settings}:w{warmup}"


def remove_chunks(out: Path, camera: str) -> None:
    """Drop a camera's chunk files once its merged file is written."""
    folder = Path(out) / f"{camera}.chunks"
    if folder.is_dir():
        for p in folder.glob("*.npz"):
            os.unlink(p)
        folder.rmdir()
