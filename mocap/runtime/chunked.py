"""Reconstruction of a long take over chunks of frames, with the same result as one pass.

:func:`reconstruct_chunked` is :func:`mocap.pipeline.reconstruct` (match -> triangulate -> link
-> triangulate over the take -> smooth) with the take read ``chunk_frames`` at a time:

1. **Candidates, per chunk** (independent, an executor may run them anywhere): the detections of
   each frame are matched across views, each group triangulated, split groups merged. What the
   linking needs for the whole take is small (body centres ``(T, K, 3)``, the groups' joints
   ``(T, K, J, 3)``, appearance); the groups' 2D detections go to disk, one file per chunk.
2. **Identities, whole take**: the groups are linked into people over time
   (:func:`~mocap.track.linking.link_people`, appearance re-identification, people ordered as
   one pass orders them). These arrays are a few numbers per frame, so identities cross chunk
   borders exactly as in one pass.
3. **People, per chunk with overlap**: each person's joints triangulated with the temporal
   left/right check, which looks :data:`OVERLAP` frames either side (the chunk is read with that
   many frames of its neighbours, which are then dropped): every frame gets the inputs it gets
   in one pass. A chunk holds only the people **alive** in it (:class:`PeopleIndex`: those whose
   span from first to last frame meets the chunk; their index in the take is the global id), so
   a take where hundreds of short tracks come and go keeps a chunk's arrays as small as the
   people present then.
4. **Smoothing, chunk after chunk**: the Kalman forward pass carries its state across chunks and
   the RTS backward pass reads the chunks back in reverse (:mod:`.smooth_chunks`): exact. The
   ``ukf``/``online`` trackers the same way once every chunk is triangulated (their bone lengths
   are the take's median, ``online`` the last frames'): the compiled UKF carries its states
   across chunks, the backward pass (RTS, or the fixed lag with the next chunk's first frames)
   reads them back in reverse (:class:`.smooth_chunks.ChunkedFilter`): the same to rounding.
   The Kalman smoother holds the points of the people alive in each chunk (a person's state is
   carried from their first chunk to their last); the UKF holds every person of the take.
5. **Output**: each chunk's final joints go to disk for its people (:class:`ChunkResults`), then
   are assembled in frame order: in memory (:func:`reconstruct_chunked`) or into ``tracks.npz``
   a block of frames at a time, absent people as NaN rows (:func:`reconstruct_chunked_to_file`).

The image-space identities have no chunked form here; with them the take is reconstructed in
one pass (said in the log).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mocap.config import ProcessConfig
from mocap.geometry import Rig
from mocap.io.keypoints import Keypoints2D
from mocap.io.tracks import BLOCK_ELEMENTS, Tracks, save_tracks_blocks
from mocap.match.epipolar import associate, gather_groups, person_sizes
from mocap.runtime.executor import Executor, LocalExecutor
from mocap.runtime.smooth_chunks import ChunkedFilter, ChunkedSmoother
from mocap.skeleton.joints import add_derived_joints
from mocap.track.linking import (body_centres, group_appearance, link_people, relink_by_appearance,
                                 without_bystanders)
from mocap.track.people import merge_split_groups
from mocap.triangulation.people import most_confident_person, triangulate_people
from mocap.triangulation.rules import TEMPORAL_OFFSETS
from mocap.triangulation.uncertainty import triangulation_covariance

log = logging.getLogger(__name__)

#: Frames per chunk by default: a minute at 30 fps.
DEFAULT_CHUNK_FRAMES = 1800
#: Frames of the neighbouring chunks read with each chunk for the temporal left/right check.
OVERLAP = max(abs(d) for d in TEMPORAL_OFFSETS)
#: Frames of a chunk triangulated at once in step 3, 0: the whole chunk (the default). The robust
#: triangulation's memory is proportional to it and to the people alive (a 1800-frame chunk of
#: 11 people: ~0.9 GB; windows of 256 frames: ~0.2 GB), but its inlier decisions are not exactly
#: independent of how many frames it is given: a view whose residual is within rounding of the
#: threshold can flip (8-camera synthetic take: one joint 1.6 mm, 5 vs 6 views, with 102 frames
#: instead of 300), so every extra window border is a chance to differ from one pass.
PEOPLE_FRAMES = 0


def keypoints_part(kp: Keypoints2D, lo: int, hi: int) -> Keypoints2D:
    """Frames ``lo:hi`` of ``kp`` (per-frame ``extras`` arrays sliced, the rest dropped)."""
    T = kp.data.shape[0]
    extras = {k: v[lo:hi] for k, v in (kp.extras or {}).items() if isinstance(v, np.ndarray) and v.shape[:1] == (T,)}
    return Keypoints2D(kp.data[lo:hi], kp.joint_names, kp.camera_names, kp.fps, kp.frame_indices[lo:hi], extras)


@dataclass(frozen=True, eq=False)
class InMemoryFrames:
    """A take held in memory as a frame source: ``num_frames`` and ``part(lo, hi)``."""

    keypoints: Keypoints2D

    @property
    def num_frames(self) -> int:
        return self.keypoints.data.shape[0]

    def __getattr__(self, name):  # joint_names, camera_names, fps, frame_indices
        if name in ("joint_names", "camera_names", "fps", "frame_indices"):
            return getattr(self.keypoints, name)
        raise AttributeError(name)

    def part(self, lo: int, hi: int) -> Keypoints2D:
        return keypoints_part(self.keypoints, lo, hi)


def chunk_ranges(T: int, chunk_frames: int) -> list[tuple[int, int]]:
    """``[(lo, hi), ...]`` covering ``0..T`` in chunks of ``chunk_frames`` (the last may be shorter)."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames: expected >= 1, got {chunk_frames}")
    return [(lo, min(T, lo + chunk_frames)) for lo in range(0, T, chunk_frames)]


def candidates_task(kp: Keypoints2D, rig: Rig, config: ProcessConfig) -> dict:
    """Step 1 on one chunk: ``groups (n, K, C, J, 3)``, ``centres (n, K, 3)``, ``poses (n, K, J, 3)``,
    ``joints (n, K)`` (triangulated joints per group) and ``appearance (n, K, D)`` or None."""
    index = associate(rig, kp.data, config.match, kp.joint_names)  # (n, C, P)
    g = gather_groups(kp.data, index)  # (n, K, C, J, 3)
    tri = triangulate_people(rig, g, kp.joint_names, config.triangulate, temporal=False)
    centres = body_centres(tri.points, kp.joint_names)
    merge_split_groups(g, centres, tri.points)
    app = group_appearance(kp, index, g.shape[1])
    # only groups with a body centre can be linked: keep those, in their order (what the linking
    # sees is unchanged), so that the whole-take arrays hold a few groups per frame, not every
    # single-view detection
    keep = compact_index(np.isfinite(centres).all(-1))  # (n, K') original group, -1: none
    return {"groups": take_groups(g, keep), "centres": take_groups(centres, keep), "poses": take_groups(tri.points, keep),
            "joints": np.where(keep >= 0, np.take_along_axis(np.isfinite(tri.points).all(-1).sum(-1), np.maximum(keep, 0), 1), 0),
            "appearance": None if app is None else take_groups(app, keep)}


def compact_index(present: np.ndarray) -> np.ndarray:
    """``(n, K')`` per frame the indices of the ``present (n, K)`` groups in their order, -1 after."""
    order = np.argsort(~present, axis=1, kind="stable")
    width = int(present.sum(1).max()) if present.size else 0
    idx = order[:, :width]
    return np.where(np.take_along_axis(present, idx, 1), idx, -1)


def take_groups(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``a (n, K, ...)`` at ``idx (n, K')`` (NaN where -1)."""
    shape = idx.shape + (1,) * (a.ndim - 2)
    out = np.take_along_axis(a, np.maximum(idx, 0).reshape(shape), 1)
    return np.where((idx >= 0).reshape(shape), out, np.nan)


def _pad(a: np.ndarray, K: int, fill=np.nan) -> np.ndarray:
    """``a (n, k, ...)`` padded on axis 1 to ``K`` with ``fill``."""
    if a.shape[1] == K:
        return a
    out = np.full((a.shape[0], K) + a.shape[2:], fill, dtype=a.dtype)
    out[:, : a.shape[1]] = a
    return out


@dataclass(eq=False)
class GroupStore:
    """Step 1's per-chunk 2D groups on disk, readable back by frame range (with overlap)."""

    folder: Path
    ranges: list
    widths: list

    def put(self, k: int, groups: np.ndarray, poses: np.ndarray) -> None:
        np.save(self.folder / f"groups_{k:06d}.npy", groups)
        np.save(self.folder / f"poses_{k:06d}.npy", poses)
        self.widths[k] = groups.shape[1]

    def poses(self, T: int, J: int) -> np.ndarray:
        """``(T, K, J, 3)`` every chunk's groups' joints, read back one chunk at a time."""
        out = np.full((T, max(self.widths, default=0), J, 3), np.nan)
        for k, (a, b) in enumerate(self.ranges):
            p = np.load(self.folder / f"poses_{k:06d}.npy")
            out[a:b, : p.shape[1]] = p
        return out

    def frames(self, lo: int, hi: int, K: int) -> np.ndarray:
        """``(hi - lo, K, C, J, 3)`` the groups of frames ``lo:hi``."""
        parts = []
        for k, (a, b) in enumerate(self.ranges):
            if b > lo and a < hi:
                g = np.load(self.folder / f"groups_{k:06d}.npy")
                parts.append(_pad(g[max(lo, a) - a: min(hi, b) - a], K))
        return np.concatenate(parts)


def link_candidates(parts: dict, fps: float, config: ProcessConfig, rig: Rig) -> tuple[np.ndarray, np.ndarray]:
    """Step 2: ``(track (T, K), order (P,))``: each group's person and the people in one pass's order."""
    link = config.link
    track = link_people(parts["centres"], fps, link, poses=parts["poses"])
    track = without_bystanders(track, parts["centres"], rig, link)
    if parts["appearance"] is not None:
        track = relink_by_appearance(track, parts["appearance"], link)
    P = int(track.max()) + 1 if track.size else 0
    joints = np.zeros(P)
    t, k = np.nonzero(track >= 0)
    np.add.at(joints, track[t, k], parts["joints"][t, k])
    order = np.argsort(-joints, kind="stable")  # the most seen first; ties: first appearance
    return track, order[: link.max_people or P]


def _gather_candidates(source, rig: Rig, config: ProcessConfig, ranges, store: GroupStore, executor: Executor) -> dict:
    """Step 1 over every chunk (through ``executor``) -> the whole-take arrays step 2 needs."""
    results = {}

    def tasks():
        for k, (lo, hi) in enumerate(ranges):
            yield k, (source.part(lo, hi), rig, config)

    for k, res in executor.map_unordered(candidates_task, tasks()):
        store.put(k, res.pop("groups"), res.pop("poses"))
        results[k] = res
    K = max(store.widths) if ranges else 0
    parts = {"poses": store.poses(ranges[-1][1] if ranges else 0, len(source.joint_names))}
    for name in ("centres", "joints", "appearance"):
        chunks = [results[k][name] for k in range(len(ranges))]
        if any(c is None for c in chunks):
            parts[name] = None
            continue
        parts[name] = np.concatenate([_pad(c, K, 0 if name == "joints" else np.nan) for c in chunks])
    return parts


def people_task(person: np.ndarray, keep: slice, rig: Rig, joint_names, config: ProcessConfig) -> dict:
    """Step 3 on one chunk read with overlap: ``person (n', P, C, J, 3)``; the frames ``keep`` of it
    -> ``points``, ``inliers``, ``used_conf``, ``covariance`` (None unless Kalman-smoothed),
    ``views_used``, ``reproj_error_px`` (and ``person`` for the UKF). With :data:`PEOPLE_FRAMES`,
    triangulated that many frames at a time, each window read with :data:`OVERLAP` frames either
    side (the same inputs per frame; memory bounded by the window)."""
    parts, step = [], PEOPLE_FRAMES or keep.stop - keep.start
    for lo in range(keep.start, keep.stop, step):
        hi = min(keep.stop, lo + step)
        a, b = max(0, lo - OVERLAP), min(len(person), hi + OVERLAP)
        parts.append(people_window(person[a:b], slice(lo - a, hi - a), rig, joint_names, config))
    return {k: None if parts[0][k] is None else np.concatenate([p[k] for p in parts]) for k in parts[0]}


def people_window(person: np.ndarray, keep: slice, rig: Rig, joint_names, config: ProcessConfig) -> dict:
    """:func:`people_task` on one window of frames."""
    tri = triangulate_people(rig, person, joint_names, config.triangulate, temporal=True)
    person = person[keep]
    points, inliers = tri.points[keep], tri.inliers[keep]
    conf = np.nan_to_num(np.moveaxis(person[..., 2], -2, -1))  # (n, P, J, C)
    used_conf = np.where(inliers, conf, 0.0).sum(-1) / np.maximum(inliers.sum(-1), 1)
    cov = None
    if filtered_by_ukf(config):  # the UKF's 2D evidence
        return {"points": points, "inliers": inliers, "used_conf": used_conf, "covariance": None,
                "views_used": tri.views_used[keep], "reproj_error_px": tri.reproj_error_px[keep], "person": person}
    if smoothed_by_kalman(config):
        smooth = config.smooth
        size = person_sizes(person, config.triangulate.min_confidence)  # (n, P, C)
        sigma = smooth.noise_fraction * np.nan_to_num(size, nan=1.0)[:, :, None, :] / np.sqrt(np.maximum(conf, 0.05))
        with np.errstate(invalid="ignore"):
            cov = triangulation_covariance(rig, np.nan_to_num(points), np.maximum(sigma, 0.5), views=inliers)
        cov[~np.isfinite(points).all(-1)] = np.nan
    return {"points": points, "inliers": inliers, "used_conf": used_conf, "covariance": cov,
            "views_used": tri.views_used[keep], "reproj_error_px": tri.reproj_error_px[keep]}


def smoothed_by_kalman(config: ProcessConfig) -> bool:
    return config.smooth.enabled and config.track.mode == "kalman"


def filtered_by_ukf(config: ProcessConfig) -> bool:
    return config.smooth.enabled and config.track.mode in ("ukf", "online")


def chunkable(config: ProcessConfig) -> str | None:
    """None when :func:`reconstruct_chunked` gives one pass's result with these settings, else why not."""
    if config.triangulate.method not in ("robust", "dlt"):
        return f"triangulate.method {config.triangulate.method!r} has no chunked form"
    if config.match.multi_person and config.track.identities == "images":
        return "track.identities 'images' has no chunked form"
    return None


def _frame_source(keypoints_or_source):
    return InMemoryFrames(keypoints_or_source) if isinstance(keypoints_or_source, Keypoints2D) else keypoints_or_source


@dataclass(frozen=True, eq=False)
class PeopleIndex:
    """Who is who over the take after step 2: ``track (T, K)`` each group's person (their index in
    the output, -1: none), and each person's ``first``/``last`` frame with a group (``(P,)``)."""

    track: np.ndarray
    first: np.ndarray
    last: np.ndarray

    @classmethod
    def of(cls, track: np.ndarray, order: np.ndarray) -> PeopleIndex:
        """From step 2's ``track (T, K)`` (linked ids) and ``order (P,)`` (the ids kept, in order)."""
        rank = np.full(int(track.max()) + 2 if track.size else 1, -1)
        rank[order] = np.arange(len(order))
        out = rank[np.where(track >= 0, track, -1)]  # rank[-1] is the spare -1
        first, last = np.full(len(order), track.shape[0]), np.full(len(order), -1)
        t, k = np.nonzero(out >= 0)
        np.minimum.at(first, out[t, k], t)
        np.maximum.at(last, out[t, k], t)
        return cls(out, first, last)

    def alive(self, lo: int, hi: int) -> np.ndarray:
        """The people (sorted) whose span from first to last frame meets frames ``lo:hi``."""
        return np.flatnonzero((self.first < hi) & (self.last >= lo))


def _people_reader(source, rig: Rig, config: ProcessConfig, fps: float, ranges, folder: Path, executor: Executor,
                   timings: dict):
    """Steps 1-2 (multi-person) -> ``(read(lo, hi, ids) -> person (n, len(ids), C, J, 3), alive(lo, hi)
    -> ids, P)``: only the people ``alive`` in a chunk are read and followed there (all of them
    for the UKF, whose bones are the take's); ``timings["link"]`` the seconds of step 2."""
    T = source.num_frames
    if not config.match.multi_person:
        return (lambda lo, hi, ids: most_confident_person(source.part(lo, hi).data)[:, None]), \
            (lambda lo, hi: np.zeros(1, np.int64)), 1
    store = GroupStore(folder, ranges, [0] * len(ranges))
    parts = _gather_candidates(source, rig, config, ranges, store, executor)
    t0 = time.perf_counter()
    track, order = link_candidates(parts, fps, config, rig)
    del parts
    timings["link"] = time.perf_counter() - t0
    if len(order) == 0:
        raise ValueError("keypoints: no person is seen by two cameras in any frame; check that the videos "
                         "overlap in time and that the calibration belongs to these cameras")
    index, K, P = PeopleIndex.of(track, order), track.shape[1], len(order)
    del track

    def read(lo, hi, ids):
        g = store.frames(lo, hi, K)
        slot = np.full(P, -1)
        slot[ids] = np.arange(len(ids))
        who = index.track[lo:hi]
        t, k = np.nonzero(who >= 0)
        s = slot[who[t, k]]
        t, k, s = t[s >= 0], k[s >= 0], s[s >= 0]
        person = np.full((hi - lo, len(ids)) + g.shape[2:], np.nan)
        person[t, s] = g[t, k]
        return person

    every = np.arange(P)
    alive = (lambda lo, hi: every) if filtered_by_ukf(config) else index.alive
    log.info("%d people over %d frames; at most %d alive in a chunk", P, T,
             max((len(alive(lo, hi)) for lo, hi in ranges), default=0))
    return read, alive, P


def _people_tasks(read, alive, ranges, T: int, rig: Rig, names, config: ProcessConfig):
    for k, (lo, hi) in enumerate(ranges):
        a, b = max(0, lo - OVERLAP), min(T, hi + OVERLAP)
        yield k, (read(a, b, alive(lo, hi)), slice(lo - a, lo - a + hi - lo), rig, names, config)


@dataclass(eq=False)
class _Summary:
    """What :func:`reconstruct_chunked` logs, added up over chunks."""

    joints: int = 0
    ok: int = 0
    views: int = 0
    medians: tuple = ()

    def add(self, res: dict) -> None:
        ok = np.isfinite(res["points"]).all(-1)
        self.joints += ok.size
        self.ok += int(ok.sum())
        self.views += int(res["views_used"][ok].sum())
        if res["inliers"].any():
            self.medians += (float(np.nanmedian(np.where(res["inliers"], res["reproj_error_px"], np.nan))),)

    def log(self, T: int, P: int, J: int, method: str, chunks: int) -> None:
        log.info("reconstructed %d frames x %d people x %d joints (%s) in %d chunks: %.1f%% joints triangulated, "
                 "%.2f views per joint, median reprojection error %.2f px (median of the chunks' medians)", T, P, J,
                 method, chunks, 100 * self.ok / max(self.joints, 1), self.views / max(self.ok, 1),
                 float(np.median(self.medians)) if self.medians else float("nan"))


def reconstruct_chunked(keypoints, rig: Rig, config: ProcessConfig | None = None, fps: float | None = None,
                        chunk_frames: int = DEFAULT_CHUNK_FRAMES, executor: Executor | None = None,
                        work_dir: str | None = None, timings: dict | None = None) -> Tracks:
    """:func:`mocap.pipeline.reconstruct` over chunks of ``chunk_frames`` frames (same result).

    Args:
        keypoints: a :class:`Keypoints2D` (cameras in ``rig`` order) or a frame source with
            ``num_frames``, ``joint_names``, ``camera_names``, ``fps``, ``frame_indices`` and
            ``part(lo, hi) -> Keypoints2D`` (e.g. :class:`~mocap.runtime.frames.FrameFile`).
        rig: the calibration.
        config: settings (:func:`chunkable` must accept them).
        fps: frame rate; default the keypoints', else ``config.fps``.
        chunk_frames: frames per chunk.
        executor: where the chunks' matching and triangulation run (default: this process).
        work_dir: folder for the chunks' intermediate files (a temporary folder if None).
        timings: if a dict, filled with the seconds of ``identities`` (steps 1-2; ``link`` of it
            step 2), ``people`` (step 3 and the forward pass; ``forward`` of it the forward pass),
            ``smooth`` (the backward pass) and the number of ``chunks``.

    The result is assembled in memory (``(T, P, J, 3)``); :func:`reconstruct_chunked_to_file`
    writes it to ``tracks.npz`` a block of frames at a time instead.
    """
    return _reconstruct(keypoints, rig, config, fps, chunk_frames, executor, work_dir, timings,
                        lambda results, fps, frames: results.tracks(fps, frames))


def reconstruct_chunked_to_file(keypoints, rig: Rig, path, config: ProcessConfig | None = None,
                                fps: float | None = None, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                                executor: Executor | None = None, work_dir: str | None = None,
                                timings: dict | None = None) -> Path:
    """:func:`reconstruct_chunked` written to ``path`` (``tracks.npz``, :func:`mocap.io.tracks.load_tracks`
    reads it) without the take's ``(T, P, J, 3)`` in memory: each chunk holds only the people
    alive in it and the file is written a block of frames at a time. Returns the path."""
    return _reconstruct(keypoints, rig, config, fps, chunk_frames, executor, work_dir, timings,
                        lambda results, fps, frames: results.save(path, fps, frames))


def _reconstruct(keypoints, rig: Rig, config, fps, chunk_frames: int, executor, work_dir, timings, finish):
    """Steps 1-4 over the chunks; ``finish(results, fps, frame_indices)`` while the chunk files exist."""
    config = config or ProcessConfig()
    why = chunkable(config)
    if why:
        raise ValueError(f"chunked reconstruction: {why}; reconstruct in one pass")
    source = _frame_source(keypoints)
    fps = fps or source.fps or config.fps
    executor = executor or LocalExecutor()
    T, names = source.num_frames, tuple(source.joint_names)
    ranges = chunk_ranges(T, chunk_frames)
    clock = [time.perf_counter()]
    timings = {} if timings is None else timings

    def lap(name):
        clock.append(time.perf_counter())
        timings[name] = clock[-1] - clock[-2]

    timings["chunks"] = len(ranges)
    with tempfile.TemporaryDirectory(prefix="mocap-chunks-", dir=work_dir) as tmp:
        read, alive, P = _people_reader(source, rig, config, fps, ranges, Path(tmp), executor, timings)
        lap("identities")
        results = ChunkResults.empty(Path(tmp), ranges, P, names)
        follower = _Follower.of(config, rig, names, P, fps, Path(tmp))
        summary = _Summary()
        for k, res in executor.map(people_task, _people_tasks(read, alive, ranges, T, rig, names, config)):
            summary.add(res)
            follower.take(k, alive(*ranges[k]), res, results, timings)
        follower.forward(timings)
        lap("people")
        follower.backward(results, config.track.mode)
        lap("smooth")
        summary.log(T, P, len(names), config.triangulate.method, len(ranges))
        return finish(results, float(fps), source.frame_indices)


@dataclass(eq=False)
class _Follower:
    """Step 4 over the chunks: the Kalman smoother's forward pass as each chunk comes
    (:class:`~mocap.runtime.smooth_chunks.ChunkedSmoother`, holding the points of the people
    alive in the chunk), or the UKF's inputs stored and its forward pass once every chunk is in
    (:class:`~mocap.runtime.smooth_chunks.ChunkedFilter`: the bones are the take's); then the
    backward pass from the last chunk to the first. Neither (``off``, ``--no-smooth``): each
    chunk's triangulation is final."""

    smoother: ChunkedSmoother | ChunkedFilter | None
    people: int
    joints: int

    @classmethod
    def of(cls, config: ProcessConfig, rig: Rig, names, P: int, fps: float, folder: Path) -> _Follower:
        if smoothed_by_kalman(config):
            return cls(ChunkedSmoother(P * len(names), fps, config.smooth, folder), P, len(names))
        if filtered_by_ukf(config):
            return cls(ChunkedFilter(rig, names, P, fps, config.track, config.triangulate.min_confidence, folder),
                       P, len(names))
        return cls(None, P, len(names))

    def take(self, k: int, ids: np.ndarray, res: dict, results: ChunkResults, timings: dict) -> None:
        """Chunk ``k``'s :func:`people_task` result, of the people ``ids``."""
        lo, hi = results.ranges[k]
        n, N, t0 = hi - lo, len(ids) * self.joints, time.perf_counter()
        results.evidence(k, ids, res["used_conf"], np.isfinite(res["points"]).all(-1))
        if isinstance(self.smoother, ChunkedSmoother):
            points = (ids[:, None] * self.joints + np.arange(self.joints)).ravel()
            self.smoother.forward(lo, res["points"].reshape(n, N, 3), res["covariance"].reshape(n, N, 3, 3), points)
        elif isinstance(self.smoother, ChunkedFilter):
            self.smoother.add(lo, res["person"], res["points"], res["inliers"])
        else:
            results.put(k, ids, res["points"])
            return
        timings["forward"] = timings.get("forward", 0.0) + time.perf_counter() - t0

    def forward(self, timings: dict) -> None:
        """The UKF's forward pass over every chunk taken (the Kalman one ran in :meth:`take`)."""
        if isinstance(self.smoother, ChunkedFilter):
            t0 = time.perf_counter()
            self.smoother.forward()
            timings["forward"] = timings.get("forward", 0.0) + time.perf_counter() - t0

    def backward(self, results: ChunkResults, mode: str) -> None:
        if self.smoother is None:
            return
        chunk = {lo: k for k, (lo, _) in enumerate(results.ranges)}
        if isinstance(self.smoother, ChunkedSmoother):
            for lo, hi, points, pos in self.smoother.backward_points():
                ids = points[:: self.joints] // self.joints
                results.put(chunk[lo], ids, pos.reshape(hi - lo, len(ids), self.joints, 3))
        else:
            for lo, hi, pos in self.smoother.backward():
                results.put(chunk[lo], np.arange(self.people), pos)
        log.info("%s tracking: %d joint positions filled where the triangulation had none", mode, results.filled)


@dataclass(eq=False)
class ChunkResults:
    """The take's result on disk, one file per chunk holding the people alive in it: ``ids (A,)``,
    ``positions (n, A, J', 3)`` and ``confidence (n, A, J')`` with the derived joints; read back in
    frame order into the dense ``(T, P, ...)`` arrays of :class:`~mocap.io.tracks.Tracks`
    (:meth:`tracks`) or written to ``tracks.npz`` a block of frames at a time (:meth:`save`)."""

    folder: Path
    ranges: list
    people: int
    input_names: tuple
    names: tuple
    filled: int = 0

    @classmethod
    def empty(cls, folder: Path, ranges, P: int, names) -> ChunkResults:
        derived = add_derived_joints(np.zeros((1, len(names), 4)), names)[1]
        return cls(folder, list(ranges), P, tuple(names), derived)

    def _path(self, kind: str, k: int) -> Path:
        return self.folder / f"{kind}_{k:06d}.npz"

    def evidence(self, k: int, ids: np.ndarray, used_conf: np.ndarray, measured: np.ndarray) -> None:
        """Chunk ``k``'s per input joint mean confidence of the views used and whether it was triangulated."""
        np.savez(self._path("evidence", k), ids=ids, used_conf=used_conf, measured=measured)

    def put(self, k: int, ids: np.ndarray, points: np.ndarray) -> None:
        """Chunk ``k``'s final joints ``(n, A, J, 3)`` of the people ``ids``: derived joints added."""
        with np.load(self._path("evidence", k)) as f:
            if not np.array_equal(f["ids"], ids):
                raise ValueError(f"chunk {k}: the people followed are not the people triangulated")
            used_conf, measured = f["used_conf"], f["measured"]
        stacked, _ = add_derived_joints(np.concatenate([points, used_conf[..., None]], axis=-1), self.input_names)
        conf = np.nan_to_num(stacked[..., 3])
        conf[~np.isfinite(stacked[..., :3]).all(-1)] = 0.0
        np.savez(self._path("final", k), ids=ids, positions=stacked[..., :3], confidence=conf)
        self._path("evidence", k).unlink()
        self.filled += int((np.isfinite(points).all(-1) & ~measured).sum())

    def chunks(self, name: str):
        """Yield ``(lo, hi, ids, array)`` of every chunk in frame order (``positions`` or ``confidence``)."""
        for k, (lo, hi) in enumerate(self.ranges):
            with np.load(self._path("final", k)) as f:
                yield lo, hi, f["ids"], f[name]

    def blocks(self, name: str, fill: float):
        """Yield the dense ``(n, P, ...)`` rows of ``name`` in frame order, at most
        :data:`~mocap.io.tracks.BLOCK_ELEMENTS` numbers a block (``fill`` for the people not alive)."""
        width = self.people * len(self.names) * (3 if name == "positions" else 1)
        step = max(1, BLOCK_ELEMENTS // max(width, 1))
        for lo, hi, ids, values in self.chunks(name):
            for a in range(0, hi - lo, step):
                part = values[a: a + step]
                block = np.full((len(part), self.people) + part.shape[2:], fill)
                block[:, ids] = part
                yield block

    def tracks(self, fps: float, frame_indices) -> Tracks:
        """The result as :class:`~mocap.io.tracks.Tracks` in memory."""
        T, J = (self.ranges[-1][1] if self.ranges else 0), len(self.names)
        positions, confidence = np.full((T, self.people, J, 3), np.nan), np.zeros((T, self.people, J))
        for name, out in (("positions", positions), ("confidence", confidence)):
            for lo, hi, ids, values in self.chunks(name):
                out[lo:hi, ids] = values
        return Tracks(positions=positions, joint_names=self.names, track_ids=np.arange(self.people), fps=fps,
                      frame_indices=frame_indices, confidence=confidence)

    def save(self, path, fps: float, frame_indices) -> Path:
        """The result written to ``tracks.npz`` at ``path`` a block of frames at a time."""
        return save_tracks_blocks(path, self.people, self.names, np.arange(self.people), fps, frame_indices,
                                  lambda: self.blocks("positions", np.nan), lambda: self.blocks("confidence", 0.0))
