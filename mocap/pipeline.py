"""``process``: detect -> reconstruct -> export on a session folder, in one call."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from mocap import __version__
from mocap._checks import check_choice
from mocap.io.tracks import Tracks, save_tracks
from mocap.io.files import atomic_write

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessConfig:
    """Settings of :func:`process_session` (written to ``DIR/process.yaml``)."""

    detector: str = "blazepose"
    """2D detector: ``blazepose`` (default, CPU) or ``onnx:PATH`` (a top-down ONNX pose model)."""
    triangulation: str = "robust"
    """``robust`` (outlier views rejected, left/right check) or ``dlt`` (confidence-weighted linear)."""
    formats: tuple[str, ...] = ("bvh", "fbx")
    """Export formats: any of bvh, fbx, trc, csv, c3d."""
    preset: str = "canonical"
    """Joint naming in BVH/FBX: canonical, mixamo, unreal, unity."""
    workers: int = 0
    """Cameras detected in parallel processes (each loads its own model, ~250 MB); 0: one per CPU core."""
    smooth: bool = True
    """Kalman/RTS-smooth the 3D joints (:mod:`mocap.track.smoothing`)."""
    cross_view: bool = True
    """After detection, look again for people a camera missed (or saw mixed with someone in
    front) where the other cameras place them (BlazePose only; :mod:`mocap.detect.cross_view`)."""

    def __post_init__(self):
        check_choice(self.triangulation, ("robust", "dlt"), "triangulation")
        if self.workers < 0:
            raise ValueError(f"workers: expected >= 0 (0 = one per CPU core), got {self.workers}")


@dataclass(frozen=True)
class ProcessResult:
    """What :func:`process_session` wrote and how long each stage took."""

    tracks_path: Path
    export_paths: tuple[Path, ...]
    timings_s: dict = field(default_factory=dict)
    tracks: Tracks | None = None
    report: dict | None = None
    """:func:`mocap.report.run_report`'s numbers (also in ``DIR/report.yaml`` and ``report.md``)."""


def process_session(session: str | os.PathLike, calibration: str | os.PathLike, out_dir: str | os.PathLike,
                    config: ProcessConfig | None = None, progress: bool = True) -> ProcessResult:
    """Run every stage on a session folder.

    Writes ``DIR/keypoints2d/<cam>.npz`` (resumable), ``DIR/tracks.npz``, ``DIR/export/*``,
    ``DIR/report.md`` + ``report.yaml`` (:mod:`mocap.report`) and ``DIR/process.yaml``
    (resolved settings, inputs, versions, time per stage).

    Args:
        session: folder with ``videos/<cam>.mp4`` (Pose2Sim's ``videos/camNN.mp4`` as is).
        calibration: any supported calibration file; video names are matched to its cameras.
        out_dir: output folder (created).
        config: settings; defaults when None.
        progress: show progress bars.
    """
    from mocap.calibration.io import load_calibration
    from mocap.detect import detect_session
    from mocap.export import export_tracks
    from mocap.io.openpose import align_to_rig
    from mocap.reconstruct import ReconstructConfig, reconstruct

    config = config or ProcessConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    rig = load_calibration(calibration)
    keypoints = detect_session(session, out / "keypoints2d", detector=config.detector,
                               workers=config.workers, progress=progress,
                               calibration=rig if config.cross_view else None)
    timings["detect"] = time.perf_counter() - t0
    log.info("detect: %d frames x %d cameras in %.1f s", keypoints.data.shape[0], keypoints.data.shape[1], timings["detect"])

    t0 = time.perf_counter()
    keypoints = align_to_rig(keypoints, rig)
    fps = keypoints.fps or 30.0
    tracks = reconstruct(keypoints, rig, method=config.triangulation, fps=fps,
                         config=ReconstructConfig(smooth=config.smooth))
    tracks_path = save_tracks(tracks, out / "tracks.npz")
    timings["reconstruct"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    paths = export_tracks(tracks, out / "export", formats=config.formats, preset=config.preset)
    timings["export"] = time.perf_counter() - t0

    from mocap.report import load_export_summary, run_report, write_run_report

    report = run_report(keypoints, rig, tracks, timings, load_export_summary(out / "export"))
    report_paths = write_run_report(report, out)
    for line in report["checks"]:
        log.info("check: %s", line)

    record = {
        "mocap_version": __version__,
        "session": str(Path(session).resolve()),
        "calibration": str(Path(calibration).resolve()),
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "outputs": {"tracks": str(tracks_path), "export": [str(p) for p in paths],
                    "report": [str(p) for p in report_paths]},
    }
    atomic_write(out / "process.yaml", lambda tmp: Path(tmp).write_text(yaml.safe_dump(record, sort_keys=False)))
    return ProcessResult(tracks_path, tuple(paths), timings, tracks, report)
