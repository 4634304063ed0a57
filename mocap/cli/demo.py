"""``mocap demo``: real 4-camera video to BVH + FBX on this machine, in a minute or two.

Fetches Pose2Sim's demo sessions from PyPI (one wheel, cached, sha256-verified: a single
performer balancing, and two performers) and the BlazePose model files, runs ``mocap process``
on each, draws the result back onto the videos (``overlay/``, as ``mocap view``) and says where
the animation went (``OUT/single/``, ``OUT/multi/``). When OpenPose
keypoints of the single-person take are at hand (``../shared/data``), it also prints how far our
3D lands from them when projected into each camera.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("demo", help="fetch a real 4-camera take and turn it into BVH + FBX",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--wheel", default=None, help="a local pose2sim wheel to take the demo from (offline)")
    p.add_argument("--workers", type=int, default=0, help="cameras detected in parallel (default 0: one per CPU core)")
    p.add_argument("--trial", default="both", choices=("single", "multi", "both"),
                   help="single performer, two performers, or both (default)")
    p.add_argument("--no-overlay", action="store_true", help="skip the overlay videos (mocap view)")
    p.set_defaults(func=_run)


def _reference_keypoints(session: Path):
    """OpenPose keypoints of the demo take: in the session, or the same take in ../shared/data."""
    from mocap.demo_data import DEMO_FILES
    from mocap.detect.models import sha256_file
    from mocap.paths import shared_data_dir

    candidates = [session / "pose"]
    shared = shared_data_dir() / "sessions/pose2sim_demo/S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial"
    video = shared / "videos" / "cam01.mp4"
    if video.is_file() and sha256_file(video) == DEMO_FILES["videos/cam01.mp4"][1]:
        candidates.append(shared / "pose")
    for folder in candidates:
        if folder.is_dir():
            from mocap.io.openpose import load_openpose

            return folder, load_openpose(folder, keypoint_format="body_25b")
    return None, None


def _run(args) -> int:
    import numpy as np

    from mocap.cli.process import print_result
    from mocap.demo_data import fetch_demo_sessions
    from mocap.detect.models import ensure_models
    from mocap.config import ProcessConfig, override
    from mocap.pipeline import process_session

    trials = ("single", "multi") if args.trial == "both" else (args.trial,)
    print("fetching the demo sessions and the BlazePose model (cached after the first run)...")
    sessions = fetch_demo_sessions(trials, wheel=args.wheel)
    ensure_models()
    written = []
    for trial in trials:
        session = sessions[trial]
        calibration = session / "calibration" / "Calib.qca.txt"
        what = "one performer" if trial == "single" else "two performers"
        print(f"\n[{trial}] {what}: {session}\nprocessing 4 cameras x 100 frames (detect -> reconstruct -> export)...")
        result = process_session(session, calibration, Path(args.out) / trial, override(ProcessConfig(), {"detect.workers": args.workers}),
                                 progress=not args.quiet)
        print_result(result)
        present = np.isfinite(result.tracks.positions).all(-1).any(-1)  # (T, P)
        print(f"people: {present.shape[1]} (" + ", ".join(f"person {i}: {n} frames" for i, n in
                                                       zip(result.tracks.track_ids, present.sum(0))) + ")")
        if trial == "single":
            folder, ref = _reference_keypoints(session)
            if ref is not None:
                from mocap.calibration.io import load_calibration
                from mocap.evaluate import reprojection_vs_keypoints

                medians = reprojection_vs_keypoints(result.tracks, load_calibration(calibration), ref)
                print(f"our 3D projected into each camera vs OpenPose keypoints ({folder}), 12 limb joints, median px: "
                      + ", ".join(f"{c} {m:.1f}" for c, m in medians.items()))
        written += list(result.export_paths)
        if not args.no_overlay:
            from mocap.calibration.io import load_calibration
            from mocap.detect import session_videos
            from mocap.view import write_overlays

            overlays = write_overlays(result.tracks, load_calibration(calibration), session_videos(session),
                                      Path(args.out) / trial / "overlay")
            print(f"overlay videos (the 3D drawn back on each camera): {overlays[0].parent.resolve()}/")
    bvh = [p for p in written if p.suffix == ".bvh"]
    fbx = [p for p in written if p.suffix == ".fbx"]
    print(f"\nDone. BVH: {', '.join(str(p.resolve()) for p in bvh)}\n      FBX: {', '.join(str(p.resolve()) for p in fbx)}")
    return 0
