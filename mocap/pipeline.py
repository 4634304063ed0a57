"""The one place that chains the stages: ``reconstruct`` (match -> triangulate -> track -> smooth)
and ``process`` (detect -> reconstruct -> export) on a session folder.

Every performer (default): per frame the detections are matched across views
(:mod:`mocap.match`), each group triangulated, and the groups linked over time into persistent
people (:mod:`mocap.track.people`); each person's joints are then triangulated again over the
whole take (:mod:`mocap.triangulation.people`: robust with the temporal left/right check, or the
confidence-weighted DLT) and followed over time (:mod:`mocap.track`: the Kalman/RTS smoother of the
triangulated 3D by default, or an unscented Kalman filter on the 2D evidence). With
``match.multi_person`` off, the most confident detection of every view is the one performer. The
derived joints ``pelvis``/``neck`` are appended where the keypoint format lacks them.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mocap.config import ProcessConfig, write_resolved
from mocap.geometry import Rig, normalize_camera_name
from mocap.io.files import check_output_dir
from mocap.io.keypoints import Keypoints2D
from mocap.io.tracks import Tracks, save_tracks
from mocap.skeleton.joints import add_derived_joints
from mocap.track.people import people_views
from mocap.track.affinity import temporal_people_views
from mocap.track.filter_people import follow_people
from mocap.triangulation.people import most_confident_person, triangulate_people

log = logging.getLogger(__name__)


def _check_aligned(keypoints: Keypoints2D, rig: Rig) -> None:
    ours = [normalize_camera_name(n) for n in keypoints.camera_names]
    theirs = [normalize_camera_name(n) for n in rig.names]
    if ours != theirs:
        raise ValueError(f"keypoints: cameras {list(keypoints.camera_names)} are not in the calibration's order "
                         f"{rig.names}; call mocap.io.openpose.align_to_rig(keypoints, rig) first")


def _log_summary(tri, method: str) -> None:
    n_ok = np.isfinite(tri.points).all(-1)
    log.info("reconstructed %d frames x %d people x %d joints (%s): %.1f%% joints triangulated, %.2f views per "
             "joint, median reprojection error %.2f px", tri.points.shape[0], tri.points.shape[1], tri.points.shape[2],
             method, 100 * n_ok.mean(), tri.views_used[n_ok].mean() if n_ok.any() else 0.0,
             np.nanmedian(np.where(tri.inliers, tri.reproj_error_px, np.nan)) if tri.inliers.any() else np.nan)


def reconstruct(keypoints: Keypoints2D, rig: Rig, config: ProcessConfig | None = None,
                fps: float | None = None, chunk_frames: int | None = None, executor=None) -> Tracks:
    """2D keypoints of every camera -> :class:`~mocap.io.tracks.Tracks` of every person.

    Args:
        keypoints: ``data (T, C, P, J, 3)``, cameras in ``rig`` order (``align_to_rig``).
        rig: the calibration (world Z up, metres).
        config: the ``match``, ``link``, ``triangulate``, ``smooth`` and ``track`` sections are used;
            defaults if None.
        fps: frame rate; default ``keypoints.fps``, else ``config.fps``.
        chunk_frames: run over chunks of this many frames (:mod:`mocap.runtime.chunked`: the same
            result as one pass, memory bounded by the chunk); None: chunks of
            ``DEFAULT_CHUNK_FRAMES`` when the take is longer, else one pass. Settings without a
            chunked form (image identities, learned or volumetric triangulation) run in one pass.
        executor: where the chunks run (:mod:`mocap.runtime.executor`); None: this process.

    Returns:
        ``Tracks`` with ``positions (T, P, J', 3)`` metres (NaN where a person is absent or a
        joint had too few views; ``P = 1`` without ``match.multi_person``), ``joint_names`` the
        keypoint format's plus ``pelvis``/``neck`` where absent, and ``confidence (T, P, J')``
        the mean detector confidence over the views used (0 where NaN). Raises ``ValueError``
        when no person is seen by two cameras in any frame.
    """
    from mocap.runtime.chunked import DEFAULT_CHUNK_FRAMES, chunkable, reconstruct_chunked

    config = config or ProcessConfig()
    fps = fps or keypoints.fps or config.fps
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps: expected a positive frame rate, got {fps}")
    _check_aligned(keypoints, rig)
    chunk = chunk_frames or DEFAULT_CHUNK_FRAMES
    if keypoints.data.shape[0] > chunk or executor is not None and executor.name != "local":
        why = chunkable(config)
        if why is None:
            return reconstruct_chunked(keypoints, rig, config, fps, chunk, executor)
        log.info("reconstructing in one pass: %s", why)
    if config.match.multi_person:
        views = temporal_people_views if config.track.identities == "images" else people_views
        person = views(keypoints, rig, fps, config.match, config.triangulate, config.link)  # (T, P, C, J, 3)
        if person.shape[1] == 0:
            raise ValueError("keypoints: no person is seen by two cameras in any frame; check that the videos "
                             "overlap in time and that the calibration belongs to these cameras")
    else:
        person = most_confident_person(keypoints.data)[:, None]  # (T, 1, C, J, 3)
    tri = triangulate_people(rig, person, keypoints.joint_names, config.triangulate, temporal=True)
    conf = np.nan_to_num(np.moveaxis(person[..., 2], -2, -1))  # (T, P, J, C)
    used_conf = np.where(tri.inliers, conf, 0.0).sum(-1) / np.maximum(tri.inliers.sum(-1), 1)
    points = follow_people(rig, tri, person, fps, config.track, config.smooth, config.triangulate.min_confidence,
                           keypoints.joint_names)
    stacked = np.concatenate([points, used_conf[..., None]], axis=-1)  # (T, P, J, 4)
    stacked, names = add_derived_joints(stacked, keypoints.joint_names)
    positions, confidence = stacked[..., :3], np.nan_to_num(stacked[..., 3])
    confidence[~np.isfinite(positions).all(-1)] = 0.0
    _log_summary(tri, config.triangulate.method)
    return Tracks(positions=positions, joint_names=names, track_ids=np.arange(person.shape[1]), fps=float(fps),
                  frame_indices=keypoints.frame_indices, confidence=confidence)


@dataclass(frozen=True)
class ProcessResult:
    """What :func:`process_session` wrote and how long each stage took."""

    tracks_path: Path
    export_paths: tuple[Path, ...]
    timings_s: dict = field(default_factory=dict)
    tracks: Tracks | None = None
    """The result in memory (None for a take read from disk a chunk at a time: read ``tracks_path``)."""
    report: dict | None = None
    """:func:`mocap.report.run_report`'s numbers (also in ``DIR/report.yaml`` and ``report.md``)."""


def check_process_inputs(session: str | os.PathLike, calibration: str | os.PathLike, out_dir: str | os.PathLike,
                         config: ProcessConfig):
    """Everything :func:`process_session` can check before detecting: the output folder, the
    calibration, every video against its calibrated camera, the detector's model files.
    Returns ``(rig, videos)``."""
    from mocap.calibration.io import load_calibration
    from mocap.detect import check_session, session_videos

    check_output_dir(out_dir)
    rig = load_calibration(calibration)
    videos = session_videos(session)
    check_session(videos, rig)
    if config.detect.detector.startswith("onnx:") and not Path(config.detect.detector[5:]).is_file():
        raise FileNotFoundError(f"detector {config.detect.detector}: ONNX model file not found")
    return rig, videos


def _detect_stage(session, out: Path, rig: Rig, calibration, config: ProcessConfig, progress: bool, executor=None,
                  chunk_frames: int | None = None, chunk_mode: str = "exact", stack: bool = True):
    """Detection (resumable per camera and chunk in :func:`mocap.detect.detect_session`), recorded
    as a stage: when its record matches, the keypoints are read back without opening a video
    decoder. The chunk size is part of the record only in ``warmup`` mode (``exact`` chunks give
    one pass's result). ``stack`` False: the detections stay in their files (returns None)."""
    from mocap.detect import detect_session, session_videos
    from mocap.detect.session import session_chunk_settings
    from mocap.detect.video import video_fingerprint
    from mocap.runtime.stages import StageRecord, file_digest

    videos = session_videos(session)
    record = StageRecord(out, "detect", {
        "videos": {cam: video_fingerprint(p) for cam, p in videos.items()},
        "detector": session_chunk_settings(config.detect, chunk_frames, chunk_mode)[0],
        "cross_view": {"calibration": file_digest(calibration), "look_again": config.detect.look_again,
                       "cross_view": config.detect.cross_view, "match": config.match}})
    if record.reusable():
        return load_keypoints(out / "keypoints2d") if stack else None
    t0 = time.perf_counter()
    if executor is not None and executor.name != "local" and len(videos) > 1:
        from mocap.runtime.tasks import detect_cameras

        detect_cameras(executor, session, out / "keypoints2d", config.detect, list(videos), chunk_frames, chunk_mode)
    keypoints = detect_session(session, out / "keypoints2d", config.detect, progress=progress, calibration=rig,
                               match=config.match, chunk_frames=chunk_frames, chunk_mode=chunk_mode, stack=stack)
    record.done([out / "keypoints2d" / f"{cam}.npz" for cam in videos], time.perf_counter() - t0)
    return keypoints


def _reconstruct_stage(keypoints, session, out: Path, rig: Rig, calibration, config: ProcessConfig,
                       executor=None, chunk_frames: int | None = None) -> Tracks | None:
    """Reconstruction, recorded as a stage over the detections, calibration, sync files and the
    settings it reads (not the chunk size or executor: they change the time, not the result).
    ``keypoints``: a :class:`Keypoints2D` (the result is returned), or a frame source read a chunk
    at a time into ``tracks.npz`` (:func:`~mocap.runtime.chunked.reconstruct_chunked_to_file`;
    returns None)."""
    from mocap.runtime.chunked import DEFAULT_CHUNK_FRAMES, reconstruct_chunked_to_file
    from mocap.io.tracks import load_tracks
    from mocap.runtime.stages import StageRecord, file_digest

    sync = {p.name: file_digest(p) for p in (Path(session) / "sync.yaml", Path(session) / "sync_report.yaml") if p.is_file()}
    record = StageRecord(out, "reconstruct", {
        "keypoints": {p.name: file_digest(p) for p in sorted((out / "keypoints2d").glob("*.npz"))},
        "calibration": file_digest(calibration), "sync": sync, "fps": config.fps, "match": config.match,
        "link": config.link, "triangulate": config.triangulate, "smooth": config.smooth, "track": config.track})
    streamed = not isinstance(keypoints, Keypoints2D)
    if record.reusable():
        return None if streamed else load_tracks(out / "tracks.npz")
    t0 = time.perf_counter()
    if streamed:
        path = reconstruct_chunked_to_file(keypoints, rig, out / "tracks.npz", config, chunk_frames=chunk_frames or
                                           DEFAULT_CHUNK_FRAMES, executor=executor, work_dir=keypoints.folder)
        record.done([path], time.perf_counter() - t0)
        return None
    tracks = reconstruct(keypoints, rig, config, chunk_frames=chunk_frames, executor=executor)
    record.done([save_tracks(tracks, out / "tracks.npz")], time.perf_counter() - t0)
    return tracks


def _export_stage(out: Path, config: ProcessConfig) -> list[Path]:
    """Export of ``tracks.npz`` (read a chunk of frames at a time), recorded as a stage over it
    and the export and skeleton settings."""
    from mocap.export import export_file
    from mocap.runtime.stages import StageRecord, file_digest

    record = StageRecord(out, "export", {"tracks": file_digest(out / "tracks.npz"), "export": config.export,
                                         "skeleton": config.skeleton})
    if record.reusable():
        return record.outputs()
    t0 = time.perf_counter()
    paths = export_file(out / "tracks.npz", out / "export", config.export.formats, rig=config.export.rig,
                        units=config.export.units, rotation_order=config.export.rotation_order,
                        solve_config=config.skeleton)
    record.done(paths, time.perf_counter() - t0)
    return list(paths)


def process_session(session: str | os.PathLike, calibration: str | os.PathLike, out_dir: str | os.PathLike,
                    config: ProcessConfig | None = None, progress: bool = True, executor=None,
                    chunk_frames: int | None = None, detect_chunk_frames: int | None = None,
                    detect_chunk_mode: str = "exact") -> ProcessResult:
    """Run every stage on a session folder; each stage resumable.

    Writes ``DIR/keypoints2d/<cam>.npz``, ``DIR/tracks.npz``, ``DIR/export/*``, ``DIR/report.md`` +
    ``report.yaml`` + ``report.html`` (:mod:`mocap.report`) and ``DIR/config.yaml`` (resolved
    settings, inputs, version, time per stage). Detection, reconstruction and export are stages
    (:mod:`mocap.runtime.stages`): each writes ``DIR/stages/<stage>.yaml`` when it finishes, and
    is skipped on a later run when its inputs, the settings it reads and its outputs are
    unchanged (the log says which stage was reused, or why it runs): a run killed halfway
    resumes at the stage it was in, and a changed setting reruns only the stages that read it.
    Inputs are checked before any detection (:func:`check_process_inputs`). Before matching, the
    cameras are put on one timeline when the session holds a recorded take's
    ``sync_report.yaml`` or a ``sync.yaml`` (:func:`mocap.record.resample.session_timeline`).
    A take longer than one reconstruction chunk is never held in memory when the settings allow
    (:func:`in_memory_reason`): the detections are read from their files a chunk at a time
    (:class:`~mocap.runtime.detection_frames.DetectionFrames`, unpacked into ``DIR/.work``),
    ``tracks.npz`` is written in blocks, and export and report read it back a chunk at a time
    (``ProcessResult.tracks`` is then None).

    Args:
        session: folder with ``videos/<cam>.mp4`` (Pose2Sim's ``videos/camNN.mp4`` as is).
        calibration: any supported calibration file; video names are matched to its cameras.
        out_dir: output folder (created).
        config: settings; defaults when None.
        progress: show progress bars.
        executor: where detection (one task per camera) and the chunks of a long take run
            (:mod:`mocap.runtime.executor`); None: this machine's process pool.
        chunk_frames: reconstruct in chunks of this many frames (same result as one pass);
            None: chunks of :data:`~mocap.runtime.chunked.DEFAULT_CHUNK_FRAMES` for longer takes.
        detect_chunk_frames: detect videos longer than this in chunks of this many frames, each
            written as it is done and resumable (:mod:`mocap.runtime.detect_chunks`); None:
            :data:`~mocap.runtime.detect_chunks.DEFAULT_DETECT_CHUNK_FRAMES`; 0: one pass per camera.
        detect_chunk_mode: ``exact`` (one task per camera carrying its tracker across chunks: the
            same detections as one pass) or ``warmup`` (one executor task per camera x chunk, each
            tracker warmed up on the 30 frames before: more tasks, not equal to one pass at borders).
    """
    from mocap.io.openpose import align_to_rig
    from mocap.record.resample import session_timeline
    config = config or ProcessConfig()
    rig, videos = check_process_inputs(session, calibration, out_dir, config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    why = in_memory_reason(session, videos, config, chunk_frames)
    log.info("the take is %s", f"held in memory: {why}" if why else "read from disk a chunk of frames at a time")
    timings: dict[str, float] = {}
    work = out / WORK_FOLDER
    shutil.rmtree(work, ignore_errors=True)  # a killed run's

    t0 = time.perf_counter()
    keypoints = _detect_stage(session, out, rig, calibration, config, progress, executor, detect_chunk_frames,
                              detect_chunk_mode, stack=why is not None)
    timings["detect"] = time.perf_counter() - t0
    log.info("detect: %d cameras in %.1f s", len(videos), timings["detect"])

    t0 = time.perf_counter()
    if why is None:
        from mocap.runtime.detection_frames import DetectionFrames

        keypoints = DetectionFrames.open(out / "keypoints2d", rig, work)
    else:
        keypoints = session_timeline(align_to_rig(keypoints, rig), session)
    tracks = _reconstruct_stage(keypoints, session, out, rig, calibration, config, executor, chunk_frames)
    tracks_path = out / "tracks.npz"
    timings["reconstruct"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    paths = _export_stage(out, config)
    timings["export"] = time.perf_counter() - t0

    report, report_paths = _report(out, keypoints, rig, tracks if tracks is not None else tracks_path, timings)
    shutil.rmtree(work, ignore_errors=True)
    write_resolved(out, config, "process", {"session": Path(session).resolve(), "calibration": Path(calibration).resolve()},
                   {"timings_s": {k: round(v, 3) for k, v in timings.items()},
                    "outputs": {"tracks": str(tracks_path), "export": [str(p) for p in paths],
                                "report": [str(p) for p in report_paths]}})
    return ProcessResult(tracks_path, tuple(paths), timings, tracks, report)


def _report(out: Path, keypoints, rig: Rig, tracks, timings: dict) -> tuple[dict, tuple[Path, ...]]:
    """``report.yaml``, ``.md`` and ``.html`` from the take read once, a chunk at a time; the checks logged."""
    from mocap.report import figures_report, load_export_summary, take_figures, write_html_report, write_run_report

    figures = take_figures(keypoints, rig, tracks)
    report = figures_report(figures, rig, timings, load_export_summary(out / "export"))
    paths = (*write_run_report(report, out), write_html_report(report, out, None, rig, None, figures=figures))
    for line in report["checks"]:
        log.info("check: %s", line)
    return report, paths


#: Folder of ``mocap process``'s output holding a long take's unpacked detections and the
#: reconstruction's chunk files while it runs (removed at the end, and at the start of a run).
WORK_FOLDER = ".work"


def in_memory_reason(session, videos: dict, config: ProcessConfig, chunk_frames: int | None = None) -> str | None:
    """None when ``mocap process`` reads the take from disk a chunk of frames at a time (a take
    longer than one reconstruction chunk, with settings that have a chunked form, no sync file);
    else why the take is held in memory."""
    from mocap.detect.video import video_info
    from mocap.runtime.chunked import DEFAULT_CHUNK_FRAMES, chunkable

    frames = max(video_info(p).frame_count for p in videos.values())
    if frames <= (chunk_frames or DEFAULT_CHUNK_FRAMES):
        return f"{frames} frames fit in one chunk"
    sync = [n for n in ("sync_report.yaml", "sync.yaml") if (Path(session) / n).is_file()]
    if sync:
        return f"{sync[0]} puts the cameras on one timeline, which is done in memory"
    return chunkable(config)


def load_keypoints(folder: str | os.PathLike, keypoint_format: str = "body_25") -> Keypoints2D:
    """2D keypoints of every camera from a folder: ``mocap detect``'s ``<cam>.npz`` files when it
    holds them (``keypoint_format`` is then ignored), else OpenPose JSON per camera."""
    from mocap.detect.pipeline import load_camera_detections, to_keypoints2d
    from mocap.io.openpose import load_openpose

    folder = Path(folder)
    npz = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    if not npz:
        return load_openpose(folder, keypoint_format)
    kp = to_keypoints2d([load_camera_detections(p) for p in npz])
    log.info("read %d cameras of detections from %s (%s)", len(npz), folder, ", ".join(p.stem for p in npz))
    return kp
