"""Work handed to an executor (:mod:`.executor`): one camera's detection, one whole take.

Each task is a module-level function of plain arguments (paths, frozen configs), so Ray can ship
it to any worker that has ``mocap`` installed and sees the same files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

log = logging.getLogger(__name__)


def detect_camera_task(session: str, out_dir: str, detect_config, camera: str, chunk_frames: int | None = None) -> str:
    """Detect one camera of a session into ``out_dir/<camera>.npz`` (one worker process: the
    executor runs the cameras in parallel; a long video in ``exact`` chunks, resumable per chunk).
    Returns the camera's name."""
    from mocap.detect import detect_session

    detect_session(session, out_dir, replace(detect_config, workers=1), cameras=[camera], progress=False,
                   chunk_frames=chunk_frames)
    return camera


def detect_cameras(executor, session, out_dir: Path, detect_config, cameras, chunk_frames: int | None = None,
                   chunk_mode: str = "exact") -> None:
    """Every camera of a session detected on ``executor``: one task per camera (``exact`` chunks:
    a camera's chunks in order, the tracker carried), or with ``chunk_mode="warmup"`` one task
    per camera x chunk of frames. The files they write are then reused by
    :func:`mocap.detect.detect_session` (which merges the chunks and adds the cross-view pass)."""
    if chunk_mode == "warmup" and chunk_frames:
        detect_camera_chunks(executor, session, out_dir, detect_config, cameras, chunk_frames)
        return
    items = ((cam, (str(session), str(out_dir), detect_config, cam, chunk_frames)) for cam in cameras)
    for cam, _ in executor.map_unordered(detect_camera_task, items):
        log.info("camera %s: detected by a %s task", cam, executor.name)


def detect_camera_chunks(executor, session, out_dir: Path, detect_config, cameras, chunk_frames: int) -> None:
    """(camera x chunk of frames) tasks on ``executor`` (:func:`~mocap.runtime.detect_chunks.detect_chunk_task`)."""
    from mocap.detect.session import session_videos, settings_fingerprint
    from mocap.detect.video import video_info
    from mocap.runtime.detect_chunks import DEFAULT_WARMUP, chunk_settings, detect_chunk_task, detect_chunks_ranges

    videos = session_videos(session)
    settings = chunk_settings(f"{settings_fingerprint(detect_config)}:chunks{chunk_frames}w{DEFAULT_WARMUP}", DEFAULT_WARMUP)
    items = []
    for cam in cameras:
        count = video_info(videos[cam]).frame_count
        if count <= chunk_frames:
            continue  # one pass, in detect_session
        items += [((cam, lo), (str(videos[cam]), str(out_dir), detect_config, cam, lo, hi, DEFAULT_WARMUP, settings))
                  for lo, hi in detect_chunks_ranges(count, chunk_frames)]
    for (cam, lo), _ in executor.map_unordered(detect_chunk_task, items):
        log.debug("camera %s, frames from %d: detected by a %s task", cam, lo, executor.name)
    log.info("detection: %d (camera x chunk) tasks on %s", len(items), executor.name)


def process_take_task(session: str, calibration: str, out_dir: str, config, chunk_frames: int | None,
                      one_worker: bool = True, detect_chunk_frames: int | None = None,
                      detect_chunk_mode: str = "exact") -> dict:
    """One take through :func:`mocap.pipeline.process_session` (detection on one process: the
    executor runs several takes at once). Returns what the caller prints."""
    from mocap.pipeline import process_session

    if one_worker:
        config = replace(config, detect=replace(config.detect, workers=1))
    result = process_session(session, calibration, out_dir, config, progress=False, chunk_frames=chunk_frames,
                             detect_chunk_frames=detect_chunk_frames, detect_chunk_mode=detect_chunk_mode)
    return {"tracks_path": str(result.tracks_path), "export_paths": [str(p) for p in result.export_paths],
            "timings_s": dict(result.timings_s), "checks": list((result.report or {}).get("checks", []))}


def take_out_dirs(sessions, out_root) -> dict[str, Path]:
    """``{session: out_root/<session folder name>}``; two takes of one name are a one-line error."""
    out = {}
    for s in sessions:
        name = Path(os.path.abspath(s)).name
        target = Path(out_root) / name
        if target in out.values():
            raise ValueError(f"sessions: two takes are named {name!r}; their outputs would share {target}")
        out[str(s)] = target
    return out


def process_takes(executor, sessions, calibration, out_root, config, chunk_frames: int | None = None,
                  detect_chunk_frames: int | None = None, detect_chunk_mode: str = "exact"):
    """Several takes, one task each on ``executor``: yields ``(session, result dict)`` as they finish."""
    dirs = take_out_dirs(sessions, out_root)
    items = ((s, (s, str(calibration), str(d), config, chunk_frames, executor.name != "local", detect_chunk_frames,
                  detect_chunk_mode)) for s, d in dirs.items())
    yield from executor.map_unordered(process_take_task, items)
