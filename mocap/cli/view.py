"""``mocap view``: the 3D result drawn back onto every camera's video (overlay MP4s).

    mocap view DIR [--out DIR/overlay] [--no-detections]
    mocap view --tracks tracks.npz --session SESSION --calibration FILE --out OUT

``DIR`` is a ``mocap process`` output folder: its ``config.yaml`` names the session and the
calibration, and its ``keypoints2d/`` the detections drawn as grey dots. Each performer is a stick
figure in their own colour with their ID.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("view", help="overlay the 3D result on every camera's video (MP4 per camera)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", nargs="?", help="a `mocap process` output folder")
    p.add_argument("--tracks", help="tracks.npz (default: FOLDER/tracks.npz)")
    p.add_argument("--session", help="session folder with videos/ (default: from FOLDER/config.yaml)")
    p.add_argument("--calibration", help="calibration file (default: from FOLDER/config.yaml)")
    p.add_argument("--out", help="output folder (default: FOLDER/overlay)")
    p.add_argument("--no-detections", action="store_true", help="do not draw the 2D detections")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import yaml

    from mocap.calibration.io import load_calibration
    from mocap.detect import load_camera_detections, session_videos, to_keypoints2d
    from mocap.io.openpose import align_to_rig
    from mocap.io.tracks import load_tracks
    from mocap.view import write_overlays

    folder = Path(args.folder) if args.folder else None
    record = {}
    if folder is not None:
        if not (folder / "config.yaml").is_file() and not (args.session and args.calibration):
            raise FileNotFoundError(f"{folder}: no config.yaml (not a `mocap process` output folder); "
                                    f"pass --session and --calibration")
        if (folder / "config.yaml").is_file():
            record = (yaml.safe_load((folder / "config.yaml").read_text()) or {}).get("inputs") or {}
    tracks_path = Path(args.tracks) if args.tracks else (folder / "tracks.npz" if folder else None)
    session = args.session or record.get("session")
    calibration = args.calibration or record.get("calibration")
    if tracks_path is None or session is None or calibration is None:
        raise ValueError("view: give a `mocap process` output folder, or --tracks, --session and --calibration")
    out = Path(args.out) if args.out else (folder / "overlay" if folder else Path("overlay"))
    rig = load_calibration(calibration)
    tracks = load_tracks(tracks_path)
    detections = None
    kp_dir = folder / "keypoints2d" if folder else None
    if not args.no_detections and kp_dir is not None and any(kp_dir.glob("*.npz")):
        detections = align_to_rig(to_keypoints2d([load_camera_detections(p) for p in sorted(kp_dir.glob("*.npz"))]), rig)
    paths = write_overlays(tracks, rig, session_videos(session), out, detections, progress=not args.quiet)
    for p in paths:
        print(f"wrote {p}")
    return 0
