"""Recording a take: every camera of a rig file into a session folder (DESIGN.md)::

    SESSION/session.yaml              cameras, fps, start time, rig, versions, how the take ended
    SESSION/videos/<cam>.mp4          frames encoded as they arrive
    SESSION/timestamps/<cam>.csv      frame, time_ns (monotonic), wall_time_ns, source_frame
    SESSION/sync_report.md + .yaml    timing per camera, spread, the matched frame table
    SESSION/config.yaml               the resolved settings

The take ends at ``duration_s``, when ``stop`` is set (Ctrl-C, SIGTERM), when every camera has
ended, or on a fault (disk full, an unwritable file); a camera that fails mid-take is named in
the report and the others keep recording. Every file is finalized in each case.
"""

from __future__ import annotations

import datetime
import logging
import os
import platform
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from mocap.io.files import atomic_write, check_output_dir
from mocap.record.capture import CameraLog, CameraWorker, Lockstep, TakeControl, queue_lengths
from mocap.record.options import RecordConfig
from mocap.record.report import read_timestamps, sync_report, write_sync_report
from mocap.record.sources import open_source

log = logging.getLogger(__name__)

#: Sources start together this long after the workers are created, so that a synthetic camera's
#: frame 0 is not already late when its thread first runs.
START_DELAY_S = 0.2


@dataclass(frozen=True)
class RecordResult:
    """What a take produced."""

    session: Path
    cameras: dict
    """``{camera: CameraLog}``."""
    report: dict
    """:func:`mocap.record.report.sync_report`'s numbers."""
    fault: str | None
    """Why the take stopped early (disk full, a write error), None otherwise."""
    duration_s: float


def load_rig(path: str | os.PathLike) -> dict:
    """A rig file (``rigs/*.yaml``) as a mapping with a non-empty ``cameras`` section."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rig {path}: no such file")
    try:
        rig = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"rig {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    cams = rig.get("cameras") if isinstance(rig, dict) else None
    if not isinstance(cams, dict) or not cams:
        raise ValueError(f"rig {path}: expected a 'cameras:' mapping of name -> {{source: ...}}")
    for name, cam in cams.items():
        if not isinstance(cam, dict) or "source" not in cam:
            raise ValueError(f"rig {path}: camera {name}: expected {{source: ...}}, got {cam!r}")
    return rig


def _open_sources(rig: dict, rig_dir: Path, start_ns: int, copy: bool = False) -> dict:
    sources = {}
    try:
        for name, cam in rig["cameras"].items():
            fps = cam.get("fps", rig.get("fps"))
            size = cam.get("resolution", rig.get("resolution"))
            sources[name] = open_source(str(name), cam["source"], rig_dir, fps, size, start_ns, copy)
    except BaseException:
        for s in sources.values():
            s.close()
        raise
    return sources


def _check_new_session(out: Path) -> None:
    check_output_dir(out)
    if (out / "session.yaml").exists() or any((out / "videos").glob("*.mp4")):
        raise FileExistsError(f"output {out}: already holds a take (session.yaml or videos/); "
                              "choose another --out so nothing recorded is overwritten")


def _wait(workers: list, control: TakeControl, duration_s: float | None, start_ns: int) -> None:
    while any(w.running for w in workers) and not control.stop.is_set():
        if duration_s is not None and time.monotonic_ns() - start_ns >= duration_s * 1e9:
            break
        control.stop.wait(0.05)
    control.stop.set()


def record_session(rig: dict, out: str | os.PathLike, duration_s: float | None = None,
                   config: RecordConfig | None = None, stop: threading.Event | None = None,
                   rig_path: str | os.PathLike | None = None, preview=None) -> RecordResult:
    """Record every camera of ``rig`` (a rig file's mapping, :func:`load_rig`) into ``out``.

    Args:
        rig: ``cameras: {name: {source, fps?, resolution?}}``, default ``fps``/``resolution``.
        out: the session folder (created; must not already hold a take).
        duration_s: stop after this many seconds (None: until ``stop`` or every camera ends).
        config: queue, disk reserve, codec, lockstep (:class:`RecordConfig`).
        stop: set it from anywhere (a signal handler) to end the take; every file is finalized.
        rig_path: the rig file, named in ``session.yaml`` (relative to the session).
        preview: a :class:`mocap.record.preview.Preview` to show the cameras while recording.

    Returns:
        :class:`RecordResult`; ``fault`` says why a take stopped early (disk full, write error).
    """
    config = config or RecordConfig()
    out = Path(out)
    _check_new_session(out)
    for sub in ("videos", "timestamps"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rig_dir = Path(rig_path).resolve().parent if rig_path else Path.cwd()
    sources = _open_sources(rig, rig_dir, time.monotonic_ns(), config.fourcc == "copy")
    start_ns = time.monotonic_ns() + int(START_DELAY_S * 1e9)
    for s in sources.values():
        s.start_ns = start_ns
    control = TakeControl(stop=stop or threading.Event())
    lockstep = Lockstep(sources) if config.lockstep else None
    lengths = queue_lengths({n: tuple(getattr(s, "size", (0, 0))) for n, s in sources.items()}, config)
    workers = [CameraWorker(s, out / "videos" / f"{n}.mp4", out / "timestamps" / f"{n}.csv", config, control,
                            start_ns, lockstep, cameras_sharing_disk=len(sources), queue_frames=lengths[n])
               for n, s in sources.items()]
    wall_start = datetime.datetime.now(datetime.timezone.utc)
    log.info("recording %d cameras into %s%s", len(workers), out,
             f" for {duration_s:g} s" if duration_s else " until Ctrl-C or every source has ended")
    for w in workers:
        w.keep_latest = preview is not None
        w.start()
    if preview is not None:
        preview.start(workers, out)
    try:
        _wait(workers, control, duration_s, start_ns)
    finally:
        if preview is not None:
            preview.stop()
    for w in workers:
        w.join(30.0)
    elapsed = (time.monotonic_ns() - start_ns) / 1e9
    logs = {w.log.name: w.log for w in workers}
    report = _finish(out, logs, control, config)
    _write_manifest(out, rig, rig_path, logs, wall_start, start_ns, elapsed, control.fault)
    return RecordResult(out, logs, report, control.fault, elapsed)


def _camera_fields(c: CameraLog) -> dict:
    return {"dropped_by_recorder": c.dropped_by_recorder, "dropped_by_recorder_at_s": c.drop_times_s,
            "queue_frames": c.queue_frames, "queue_peak": c.queue_peak, "ended": c.ended, "failed": c.failed,
            "stopped_after_s": None if c.stopped_after_s is None else round(c.stopped_after_s, 3), "error": c.error}


def _finish(out: Path, logs: dict, control: TakeControl, config: RecordConfig) -> dict:
    times = {}
    for name in logs:
        path = out / "timestamps" / f"{name}.csv"
        times[name] = read_timestamps(path)[:, 1] if path.is_file() else np.zeros(0, np.int64)
    report = sync_report(times, {n: c.rate for n, c in logs.items()}, {n: _camera_fields(c) for n, c in logs.items()},
                         config.match_tolerance)
    for name, c in logs.items():
        if c.ended:
            (log.warning if c.failed else log.info)("camera %s %s after %.1f s: %s", name,
                                                    "stopped" if c.failed else "ended", c.stopped_after_s or 0.0, c.ended)
    try:
        write_sync_report(report, out, control.fault)
    except OSError as exc:
        log.error("could not write the sync report in %s: %s", out, exc.strerror or exc)
    return report


def _write_manifest(out: Path, rig: dict, rig_path, logs: dict, wall_start, start_ns: int, elapsed: float,
                    fault: str | None) -> None:
    import cv2

    from mocap import __version__

    cams = {n: {"video": f"videos/{n}.mp4", "timestamps": f"timestamps/{n}.csv", "fps": c.fps,
                "size": list(c.size), "frames": c.frames_written,
                "source": _plain(rig["cameras"][n]["source"]), **({"ended": c.ended} if c.ended else {})}
            for n, c in logs.items()}
    manifest = {"cameras": cams, "fps": max(c.fps for c in logs.values()),
                "start_time": wall_start.isoformat(), "start_monotonic_ns": start_ns, "duration_s": round(elapsed, 3),
                "rig": os.path.relpath(Path(rig_path).resolve(), out.resolve()) if rig_path else None,
                "fault": fault,
                "versions": {"mocap": __version__, "opencv": cv2.__version__, "python": platform.python_version()}}
    for key in ("board", "world_frame", "name"):
        if key in rig:
            manifest.setdefault(key if key != "name" else "rig_name", rig[key])
    text = yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None)
    try:
        atomic_write(out / "session.yaml", lambda tmp: Path(tmp).write_text(text))
    except OSError as exc:
        log.error("could not write %s: %s", out / "session.yaml", exc.strerror or exc)


def _plain(value):
    """A YAML-safe copy of a rig ``source:`` entry (tuples as lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
