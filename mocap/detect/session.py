"""Detecting every camera of a session folder: inputs checked first, resumable per camera.

Before any frame is decoded, :func:`check_session` opens every video and compares it with the
calibration (when one is given): a camera the calibration lacks, or a video whose size is not
the size its camera was calibrated at, is a one-line error. A camera's ``<cam>.npz`` in the
output folder is reused only when it was made from the same video content
(:func:`~mocap.detect.video.video_fingerprint`), detector settings and model files; otherwise it
is detected again.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from mocap.detect.pipeline import (CameraDetections, DetectConfig, detect_video, load_camera_detections,
                                   make_detector, save_camera_detections, to_keypoints2d)
from mocap.detect.video import VIDEO_SUFFIXES, video_fingerprint, video_info
from mocap.errors import CalibrationError, VideoError
from mocap.geometry import Rig
from mocap.io.keypoints import Keypoints2D
from mocap.match.epipolar import AssociationConfig

log = logging.getLogger(__name__)

#: Video and calibration sizes that differ by less than this (each side, px) are the same pixels:
#: encoders pad frames to 16-pixel macroblocks (the Pose2Sim demo: 1080 rows in the video, 1088
#: in the Qualisys calibration), which shifts nothing. A larger difference is a resized, cropped
#: or rotated copy, for which the calibration is wrong.
CODEC_PADDING_PX = 16


def session_videos(session: str | os.PathLike) -> dict[str, Path]:
    """``{camera: video}`` of a session folder (``videos/<cam>.<ext>``, or videos directly in it)."""
    session = Path(session)
    if not session.is_dir():
        raise FileNotFoundError(f"session {session}: not a folder")
    folder = session / "videos" if (session / "videos").is_dir() else session
    videos = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES}
    if not videos:
        raise FileNotFoundError(f"session {session}: no videos ({', '.join(VIDEO_SUFFIXES)}) in {folder}")
    return videos


def check_session(videos: dict[str, Path], rig: Rig | None = None) -> None:
    """Open every video; with a calibration, check that each video's camera is in it and that the
    video has the size that camera was calibrated at (up to :data:`CODEC_PADDING_PX`). One-line
    errors naming the file and camera."""
    for cam, path in videos.items():
        info = video_info(path)
        if rig is None:
            continue
        try:
            camera = rig.cameras[rig.index(cam)]
        except ValueError:
            raise CalibrationError(f"video {path}: camera {cam!r} is not in the calibration ({', '.join(rig.names)}); "
                                   "rename the video after its calibrated camera (names match ignoring case, "
                                   "'_', '-' and leading zeros)") from None
        gap = np.abs(np.subtract(info.size, camera.size))
        if gap.any() and (gap < CODEC_PADDING_PX).all():
            log.debug("video %s: %dx%d px, camera %s calibrated at %dx%d: codec padding, same pixels",
                      path, *info.size, camera.name, *camera.size)
        elif gap.any():
            raise VideoError(f"video {path}: {info.size[0]}x{info.size[1]} px, but camera {camera.name} was calibrated "
                             f"at {camera.size[0]}x{camera.size[1]}; use the videos this calibration was made for "
                             "(not a resized or rotated copy) or calibrate again")


def settings_fingerprint(config: DetectConfig) -> str:
    """What a reusable ``<cam>.npz`` must have been made with: the detector and its settings
    (threads and workers excluded: they change the time, not the result), and the same mocap
    code (:func:`mocap.runtime.stages.code_digest`)."""
    from mocap.runtime.stages import code_digest

    model = {k: v for k, v in asdict(config.model_config).items() if k != "num_threads"}
    person = {k: v for k, v in asdict(config.blazepose).items() if k != "num_threads"}
    text = repr((config.detector, model, person, config.allow_short, code_digest()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _model_hashes(detector: str) -> dict:
    from mocap.detect.models import MODELS, sha256_file

    hashes = {k: s.sha256 for k, s in MODELS.items()}
    if detector.startswith("onnx:") and Path(detector[len("onnx:"):]).is_file():
        hashes = {"onnx": sha256_file(detector[len("onnx:"):]), **hashes}
    return hashes


def _reusable(path: Path, video: Path, settings: str, hashes: dict) -> CameraDetections | None:
    """The detections in ``path`` if they were made from this video with these settings."""
    if not path.is_file():
        return None
    try:
        old = load_camera_detections(path)
    except Exception:  # unreadable leftovers are recomputed
        return None
    if old.video_fingerprint != video_fingerprint(video):
        log.info("camera %s: %s was made from another video; detecting again", old.camera, path)
        return None
    if old.settings != settings or old.model_sha256 != hashes:
        log.info("camera %s: %s was made with other detector settings or other mocap code; detecting again", old.camera, path)
        return None
    return old


@dataclass(frozen=True)
class _Job:
    camera: str
    video: Path
    config: DetectConfig
    settings: str
    out: Path | None
    progress: bool
    chunk_frames: int | None = None
    chunk_mode: str = "exact"


def _chunked(job: _Job) -> bool:
    """Detect this camera over chunks of frames (:mod:`mocap.runtime.detect_chunks`)?"""
    keep_hm = bool(getattr(job.config.model_config, "keep_heatmaps", False))
    return bool(job.chunk_frames and job.out is not None and not keep_hm
                and video_info(job.video).frame_count > job.chunk_frames)


def _detect_one(job: _Job) -> CameraDetections:
    cfg = job.config
    if _chunked(job):
        from mocap.runtime.detect_chunks import detect_camera_chunked, remove_chunks

        det = replace(detect_camera_chunked(job.video, job.camera, cfg, job.settings, job.out, job.chunk_frames,
                                            mode=job.chunk_mode, progress=job.progress), settings=job.settings)
        save_camera_detections(det, job.out / f"{job.camera}.npz")
        remove_chunks(job.out, job.camera)
        return det
    det = detect_video(job.video, make_detector(cfg.detector, cfg.model_config, cfg.blazepose), camera=job.camera,
                       progress=job.progress, detector_spec=cfg.detector, allow_short=cfg.allow_short)
    det = replace(det, settings=job.settings)
    if job.out is not None:
        save_camera_detections(det, job.out / f"{job.camera}.npz")
    return det


def _worker_count(workers: int) -> int:
    if workers:
        return workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def detect_session(session: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                   config: DetectConfig | None = None, cameras=None, progress: bool = False,
                   calibration=None, match: AssociationConfig | None = None,
                   chunk_frames: int | None = None, chunk_mode: str = "exact", stack: bool = True) -> Keypoints2D | None:
    """Detect people in every camera of a session.

    Args:
        session: session folder (``videos/<cam>.mp4``; Pose2Sim's ``videos/camNN.mp4`` as is).
        out_dir: write ``<cam>.npz`` there and skip cameras already done from the same video with
            the same settings.
        config: detector, workers, cross-view pass (:class:`~mocap.detect.pipeline.DetectConfig`).
        cameras: subset of camera names (default: all).
        progress: show progress bars.
        calibration: a :class:`~mocap.geometry.Rig` or calibration file. With it, every video is
            checked against its camera before detection, and (with ``config.cross_view`` and
            BlazePose) people a camera missed, or saw as a mixture with someone in front, are
            looked for again where the other cameras place them (:mod:`mocap.detect.cross_view`);
            such detections are marked in ``recovered``.
        match: cross-view matching settings for that pass (defaults when None).
        chunk_frames: with ``out_dir``, detect a video longer than this in chunks of this many
            frames, each written as it is done (:mod:`mocap.runtime.detect_chunks`: resumable per
            chunk); None: :data:`~mocap.runtime.detect_chunks.DEFAULT_DETECT_CHUNK_FRAMES`; 0: one
            pass per video.
        chunk_mode: ``exact`` (default: the tracker carried across chunk borders, the result equal
            to one pass bit for bit) or ``warmup`` (independent chunks, each tracker warmed up on
            the frames before it: for an executor with more workers than cameras; not equal to
            one pass at the borders).
        stack: False (with ``out_dir``): the detections stay in their files and None is returned
            (a long take's ``(T, C, P, J, 3)`` is never built; :class:`~mocap.runtime.detection_frames.DetectionFrames`
            reads them a chunk at a time).

    Returns:
        :class:`Keypoints2D` with ``data (T, C, P, J, 3)`` (``T`` the longest video, ``P`` the
        most slots in any camera) and ``extras``: ``appearance (T, C, P, D)``, ``scores
        (T, C, P)``, ``detections`` (the :class:`CameraDetections` per camera).
    """
    config = config or DetectConfig()
    videos = session_videos(session)
    if cameras is not None:
        unknown = sorted(set(cameras) - set(videos))
        if unknown:
            raise ValueError(f"cameras: {', '.join(unknown)} not in {session}; available: {', '.join(videos)}")
        videos = {c: videos[c] for c in cameras}
    rig = None
    if calibration is not None:
        from mocap.calibration.io import load_calibration

        rig = calibration if isinstance(calibration, Rig) else load_calibration(calibration)
    check_session(videos, rig)
    out = Path(out_dir) if out_dir is not None else None
    settings, chunk_frames = session_chunk_settings(config, chunk_frames, chunk_mode)
    hashes = _model_hashes(config.detector)
    done: dict[str, CameraDetections] = {}
    todo = []
    for cam, video in videos.items():
        old = _reusable(out / f"{cam}.npz", video, settings, hashes) if out is not None else None
        if old is not None:
            log.info("camera %s: already detected in %s, reused", cam, out / f"{cam}.npz")
            done[cam] = old
        else:
            todo.append(_Job(cam, video, config, settings, out, progress, chunk_frames, chunk_mode))
    workers = _worker_count(config.workers)
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
            for det in pool.map(_detect_one, [replace(j, progress=False) for j in todo]):
                done[det.camera] = det
    else:
        for job in todo:
            det = _detect_one(job)
            done[det.camera] = det
    dets = [done[c] for c in videos]
    if rig is not None and config.cross_view and config.detector == "blazepose":
        dets = _cross_view_pass(dets, videos, rig, config, match or AssociationConfig(), out, progress)
    if not stack and out is not None:
        return None
    return to_keypoints2d(dets)


def session_chunk_settings(config: DetectConfig, chunk_frames: int | None, chunk_mode: str = "exact") -> tuple[str, int]:
    """``(settings fingerprint of a camera's merged file, chunk size)``: in ``exact`` mode the
    fingerprint is one pass's (the result is the same, so either file is reused for the other);
    in ``warmup`` mode it names the chunk size and warm-up. ``chunk_frames`` None: the default."""
    from mocap.runtime.detect_chunks import DEFAULT_DETECT_CHUNK_FRAMES, DEFAULT_WARMUP, check_mode

    check_mode(chunk_mode)
    chunk_frames = DEFAULT_DETECT_CHUNK_FRAMES if chunk_frames is None else int(chunk_frames)
    if chunk_frames < 0:
        raise ValueError(f"chunk_frames: expected >= 0 (0 = one pass), got {chunk_frames}")
    settings = settings_fingerprint(config)
    if chunk_frames and chunk_mode == "warmup":
        settings = f"{settings}:chunks{chunk_frames}w{DEFAULT_WARMUP}"  # not the one-pass result
    return settings, chunk_frames


def _cross_view_key(rig: Rig, config: DetectConfig, match: AssociationConfig) -> str:
    arrays = [np.concatenate([c.K.ravel(), c.dist, c.R.ravel(), c.t]) for c in rig.cameras]
    text = repr((asdict(config.look_again), asdict(match), settings_fingerprint(config)))
    return hashlib.sha256(np.concatenate(arrays).tobytes() + text.encode()).hexdigest()[:16]


def _cross_view_pass(dets: list, videos: dict, rig: Rig, config: DetectConfig, match: AssociationConfig,
                     out: Path | None, progress: bool = False) -> list:
    """Run :func:`~mocap.detect.cross_view.recover_missed_people` unless every camera's file
    already holds its result for this calibration and these settings (then it is reused)."""
    from mocap.detect.blazepose import BlazePose
    from mocap.detect.cross_view import recover_missed_people

    key = _cross_view_key(rig, config, match)
    if all(d.cross_view == key for d in dets):
        log.info("cross-view pass: already done for this calibration, reused")
        return dets
    index = {d.camera: i for i, d in enumerate(dets)}
    order = list(index)  # every camera is in the calibration (check_session)
    if len(order) < 2:
        log.warning("cross-view pass skipped: fewer than two cameras")
        return dets
    sub = rig.subset([rig.names[rig.index(c)] for c in order])
    new, stats = recover_missed_people([dets[index[c]] for c in order], {c: videos[c] for c in order}, sub,
                                       BlazePose(config.blazepose), config.look_again, progress, match=match)
    result = list(dets)
    for d in new:
        result[index[d.camera]] = d
    result = [replace(d, cross_view=key) for d in result]
    if out is not None:
        for d in result:
            save_camera_detections(d, out / f"{d.camera}.npz")
    looked, found = sum(v[0] for v in stats.values()), sum(v[1] for v in stats.values())
    log.info("cross-view pass: looked again at %d people in %d cameras, %d found or corrected", looked, len(order), found)
    return result
