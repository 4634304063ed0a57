"""``mocap view``: look at a result. Overlay MP4s (default), the take in 3D, or the HTML report.

    mocap view DIR [--out DIR/overlay] [--no-detections]    the 3D drawn back onto every video
    mocap view DIR --3d [--turntable] [--out DIR/view3d]    open3d window, or offscreen turntable
    mocap view DIR --report [--out DIR]                     DIR/report.html
    mocap view --tracks tracks.npz --session SESSION --calibration FILE --out OUT

``DIR`` is a ``mocap process`` output folder: its ``config.yaml`` names the session and the
calibration, and its ``keypoints2d/`` the detections (grey dots on the overlays; the report's
per-camera figures). Each performer is drawn in their own colour with their ID. With ``--3d`` an
interactive open3d window opens where a display exists; without one (or with ``--turntable``) a
turntable is rendered offscreen: ``turntable.mp4`` and a strip of its frames, ``turntable.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("view", help="look at a result: overlay MP4 per camera, the take in 3D, or report.html",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", nargs="?", help="a `mocap process` output folder")
    p.add_argument("--tracks", help="tracks.npz (default: FOLDER/tracks.npz)")
    p.add_argument("--session", help="session folder with videos/ (default: from FOLDER/config.yaml)")
    p.add_argument("--calibration", help="calibration file (default: from FOLDER/config.yaml)")
    p.add_argument("--out", help="output folder (default: FOLDER/overlay, FOLDER/view3d with --3d, FOLDER with "
                                 "--report)")
    p.add_argument("--no-detections", action="store_true", help="do not draw the 2D detections")
    p.add_argument("--3d", dest="three_d", action="store_true",
                   help="the take in 3D: an open3d window where a display exists, else an offscreen turntable")
    p.add_argument("--turntable", action="store_true", help="with --3d: render the turntable even where a display exists")
    p.add_argument("--renderer", choices=("auto", "open3d", "opencv"), default="auto",
                   help="turntable renderer: open3d where it renders here, else OpenCV lines (default: auto)")
    p.add_argument("--size", default="960x540", metavar="WxH", help="turntable size in pixels (default: 960x540)")
    p.add_argument("--max-frames", type=int, default=300, metavar="N",
                   help="turntable: at most N evenly spaced frames of the take (default: 300)")
    p.add_argument("--report", action="store_true", help="write the HTML report (report.html) from the folder")
    p.set_defaults(func=_run)


def _inputs(args) -> tuple[Path | None, Path, str | None, str]:
    """``(folder, tracks path, session or None, calibration)`` from the folder's config.yaml and the flags."""
    import yaml

    folder = Path(args.folder) if args.folder else None
    record = {}
    if folder is not None:
        if not (folder / "config.yaml").is_file() and not args.calibration:
            raise FileNotFoundError(f"{folder}: no config.yaml (not a `mocap process` output folder); "
                                    f"pass --calibration (and --session for overlays)")
        if (folder / "config.yaml").is_file():
            record = (yaml.safe_load((folder / "config.yaml").read_text()) or {}).get("inputs") or {}
    tracks_path = Path(args.tracks) if args.tracks else (folder / "tracks.npz" if folder else None)
    calibration = args.calibration or record.get("calibration")
    if tracks_path is None or calibration is None:
        raise ValueError("view: give a `mocap process` output folder, or --tracks and --calibration")
    if not tracks_path.is_file():
        raise FileNotFoundError(f"{tracks_path}: no such tracks file; run `mocap process` first or pass --tracks")
    return folder, tracks_path, args.session or record.get("session"), calibration


def _detections(folder: Path | None, rig, session: str | None):
    """The folder's keypoints2d/ as Keypoints2D in rig order (on the session's timeline), or None."""
    from mocap.detect import load_camera_detections, to_keypoints2d
    from mocap.io.openpose import align_to_rig

    kp_dir = folder / "keypoints2d" if folder else None
    if kp_dir is None or not any(kp_dir.glob("*.npz")):
        return None
    keypoints = align_to_rig(to_keypoints2d([load_camera_detections(p) for p in sorted(kp_dir.glob("*.npz"))]), rig)
    if session and Path(session).is_dir():
        from mocap.record.resample import session_timeline

        keypoints = session_timeline(keypoints, session)
    return keypoints


def _report(args, folder: Path | None, rig, tracks_path: Path, session) -> Path:
    """report.html from a `mocap process` folder, the take read a chunk of frames at a time (its
    detections unpacked into a temporary folder, tracks.npz read in order); on a sync file's
    timeline the detections are stacked in memory."""
    import tempfile

    import yaml

    from mocap.report import figures_report, load_export_summary, take_figures, write_html_report
    from mocap.runtime.detection_frames import DetectionFrames

    if not any((folder / "keypoints2d").glob("*.npz")):
        raise FileNotFoundError(f"{folder}: no keypoints2d/*.npz; the report compares the 3D with each camera's "
                                f"detections, so it needs a `mocap process` output folder")
    config = yaml.safe_load((folder / "config.yaml").read_text()) if (folder / "config.yaml").is_file() else {}
    synced = session and Path(session).is_dir() and any((Path(session) / n).is_file()
                                                        for n in ("sync.yaml", "sync_report.yaml"))
    if synced:
        figures = take_figures(_detections(folder, rig, session), rig, tracks_path)
    else:
        with tempfile.TemporaryDirectory(prefix="mocap-view-") as work:
            figures = take_figures(DetectionFrames.open(folder / "keypoints2d", rig, work), rig, tracks_path)
    report = figures_report(figures, rig, (config or {}).get("timings_s"), load_export_summary(folder / "export"))
    out = Path(args.out) if args.out else folder
    return write_html_report(report, out, None, rig, None, title=f"Run report: {folder.name}", figures=figures)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size: expected WIDTHxHEIGHT such as 960x540, got {text!r}") from None
    return w, h


def _view3d(args, folder: Path | None, rig, tracks) -> list[Path]:
    import logging

    from mocap.view.render3d import open3d_problem
    from mocap.view.viewer3d import has_display, render_turntable, show_interactive

    if has_display() and not args.turntable:
        problem = open3d_problem()
        if problem is None:
            show_interactive(tracks, rig)
            return []
        logging.getLogger("mocap.view").warning("%s; rendering the turntable instead of opening a window", problem)
    out = Path(args.out) if args.out else (folder / "view3d" if folder else Path("view3d"))
    done = render_turntable(tracks, rig, out, size=_size(args.size), max_frames=args.max_frames,
                            renderer=args.renderer, progress=not args.quiet)
    return [done.video, done.strip]


def _run(args) -> int:
    from mocap.calibration.io import load_calibration
    from mocap.detect import session_videos
    from mocap.io.tracks import load_tracks
    from mocap.view import write_overlays

    folder, tracks_path, session, calibration = _inputs(args)
    rig = load_calibration(calibration)
    tracks = None if args.report and not args.three_d else load_tracks(tracks_path)
    paths = []
    if args.report:
        if folder is None:
            raise ValueError("view --report: give the `mocap process` output folder")
        paths.append(_report(args, folder, rig, tracks_path, session))
    if args.three_d:
        paths += _view3d(args, folder, rig, tracks)
    if not (args.report or args.three_d):
        if session is None:
            raise ValueError("view: the overlays need the videos: pass --session (or a folder whose config.yaml names it)")
        detections = None if args.no_detections else _detections(folder, rig, None)
        paths = write_overlays(tracks, rig, session_videos(session), Path(args.out) if args.out else
                               (folder / "overlay" if folder else Path("overlay")), detections, progress=not args.quiet)
    for p in paths:
        print(f"wrote {p}")
    return 0
