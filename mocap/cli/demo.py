"""``mocap demo``: real 4-camera video to BVH + FBX on this machine, in a minute or two.

Fetches Pose2Sim's demo sessions from PyPI (one wheel, cached, sha256-verified: a single
performer balancing, and two performers) and the BlazePose model files, runs ``mocap process``
on each, draws the result back onto the videos (``overlay/``, as ``mocap view``) and says where
the animation went (``OUT/single/``, ``OUT/multi/``). When OpenPose
keypoints of the single-person take are at hand (``../shared/data``), it also prints how far our
3D lands from them when projected into each camera.

``mocap demo record``: the whole studio flow without cameras. The single-performer take's four
videos play as live file sources (--speed of real time, 3 ms timing jitter), ``mocap record``
records them into OUT/record/session (videos, timestamps, sync report; by default each video's
own encoded frames are kept, as an IP camera's stream is recorded, so the recording decodes to
the same pixels and what is compared is the recorder's timing, not a codec's loss; --fourcc mp4v
re-encodes), the recording is processed end to end (its matched frame table puts the cameras on
one timeline), ``mocap sync`` measures the offsets of the recording and of the original videos
from the performer's motion (a recorder that shifted a camera would show as a difference), and
the result is compared with processing the original videos: the distance between the two takes'
joints at each original frame, over the instants where every camera has its frame and over
those where the recorder dropped one.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("demo", help="fetch a real 4-camera take and turn it into BVH + FBX",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("form", nargs="?", choices=["record"],
                   help="record: play the take as live cameras, record, sync, process, compare with the originals")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="record: play the videos at this fraction of real time (default 1: real time; re-encoding "
                        "4 x 1080x1920 @ 60 fps with --fourcc mp4v needs about 0.1 on 2 cores to drop no frame)")
    p.add_argument("--fourcc", default="copy", choices=["copy", "mp4v", "MJPG", "FFV1"],
                   help="record: copy (default) keeps the videos' own encoded frames, as an IP camera's stream is "
                        "recorded: bit-exact; mp4v or MJPG re-encode, to see what a lossy codec changes in the joints")
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
    if args.form == "record":
        return _run_record(args)
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


def _record_take(session: Path, out: Path, speed: float, fourcc: str):
    """Play ``session``'s videos as live file sources into ``out`` (a previous demo take there
    is replaced: it is this command's own output)."""
    import shutil

    from mocap.cli.record import print_summary
    from mocap.detect import session_videos
    from mocap.record.options import RecordConfig
    from mocap.record.session import record_session

    if (out / "session.yaml").is_file():
        shutil.rmtree(out)
    rig = {"cameras": {cam: {"source": {"file": {"path": str(p), "jitter_ms": 3.0, "speed": speed}}}
                       for cam, p in session_videos(session).items()}}
    print(f"recording the 4 videos as live cameras ({speed:g} x real time, 3 ms jitter, {fourcc}) into {out} ...")
    result = record_session(rig, out, config=RecordConfig(fourcc=fourcc))
    print_summary(result)
    if result.fault:
        raise OSError(result.fault)
    drops = sum(c["dropped_by_recorder"] for c in result.report["cameras"].values())
    if drops:
        print(f"note: the recorder dropped {drops} frame(s) (this machine did not keep up at {speed:g} x real "
              f"time with {fourcc}); a lower --speed records every frame")
    return result


def source_frames(take: Path):
    """``(T, C)`` the original video frame each camera shows at each matched instant of the
    recording (-1 where it has none), and the camera names."""
    import numpy as np

    from mocap.record.report import load_matched_frames, read_timestamps

    table = load_matched_frames(take)
    cols = []
    for cam, col in table.items():
        source = read_timestamps(take / "timestamps" / f"{cam}.csv")[:, 3]
        cols.append(np.where(col >= 0, source[np.clip(col, 0, len(source) - 1)], -1))
    return np.stack(cols, 1).astype(np.int64), list(table)


def _distances(recorded, original, rows, frames):
    """Joint distances, cm, between recorded instants ``rows`` and original ``frames``, person 0."""
    import numpy as np

    d = np.linalg.norm(recorded.positions[rows, 0] - original.positions[frames, 0], axis=-1) * 100
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"instants": int(len(rows)), "joints": 0}
    return {"instants": int(len(rows)), "joints": int(d.size), "median_cm": float(np.median(d)),
            "p95_cm": float(np.percentile(d, 95)), "max_cm": float(d.max()), "within_1cm": float((d <= 1.0).mean())}


def compare_with_original(recorded, original, source) -> dict:
    """The two takes' joints at the same original frame: ``complete`` over the recorded instants
    where every camera shows the same original frame, ``missing`` over those where a camera has
    no frame (dropped by the recorder) or another one."""
    import numpy as np

    n = min(len(source), len(recorded.positions))
    source = source[:n]
    frame = source.max(1)
    complete = (source == frame[:, None]).all(1) & (frame >= 0) & (frame < len(original.positions))
    partial = ~complete & (frame >= 0) & (frame < len(original.positions))
    rows_c, rows_p = np.flatnonzero(complete), np.flatnonzero(partial)
    # a partial instant is compared at the frame most of its cameras show
    frame_p = np.array([np.bincount(r[r >= 0]).argmax() for r in source[rows_p]], np.int64)
    return {"complete": _distances(recorded, original, rows_c, frame[rows_c]),
            "missing": _distances(recorded, original, rows_p, frame_p)}


def _print_comparison(cmp: dict) -> None:
    for key, what in (("complete", "instants where every camera has its frame"),
                      ("missing", "instants where a camera's frame is missing")):
        c = cmp[key]
        if not c["joints"]:
            print(f"  {what}: {c['instants']}")
            continue
        print(f"  {what}: {c['instants']}, {c['joints']} joint positions: median {c['median_cm']:.2f} cm, 95th "
              f"percentile {c['p95_cm']:.2f} cm, max {c['max_cm']:.2f} cm; {100 * c['within_1cm']:.1f} % within 1 cm")


def _sync_both(recorded_kp, original_kp, rig, config, out: Path):
    """``mocap sync`` on the recording and on the original videos; the recording's offsets go to
    ``out/sync.yaml``. Printed side by side: the recorder should have shifted no camera."""
    from mocap.record.resample import save_sync
    from mocap.record.sync import estimate_offsets

    rec = estimate_offsets(recorded_kp, rig, config).sync
    orig = estimate_offsets(original_kp, rig, config).sync
    save_sync(rec, out / "sync.yaml")
    print(f"mocap sync, offsets to {rec.reference} (frames), recording vs original videos: "
          + ", ".join(f"{n} {o:+.2f} vs {orig.offsets[n]:+.2f}" for n, o in rec.offsets.items()))
    return rec, orig


def _run_record(args) -> int:
    from mocap.calibration.io import load_calibration
    from mocap.config import ProcessConfig, override
    from mocap.demo_data import fetch_demo_sessions
    from mocap.detect.models import ensure_models
    from mocap.io.openpose import align_to_rig
    from mocap.pipeline import load_keypoints, process_session
    from mocap.record.resample import session_timeline

    if not 0 < args.speed <= 1:
        raise ValueError(f"--speed: must be in (0, 1], got {args.speed}")
    print("fetching the demo session and the BlazePose model (cached after the first run)...")
    session = fetch_demo_sessions(("single",), wheel=args.wheel)["single"]
    ensure_models()
    calibration = session / "calibration" / "Calib.qca.txt"
    out = Path(args.out) / "record"
    take = _record_take(session, out / "session", args.speed, args.fourcc).session
    config = override(ProcessConfig(), {"detect.workers": args.workers})
    print("\nprocessing the recording (detect -> reconstruct -> export)...")
    recorded = process_session(take, calibration, out / "recorded", config, progress=not args.quiet)
    print("\nprocessing the original videos...")
    original = process_session(session, calibration, out / "original", config, progress=not args.quiet)
    rig = load_calibration(calibration)
    _sync_both(session_timeline(align_to_rig(load_keypoints(out / "recorded" / "keypoints2d"), rig), take),
               align_to_rig(load_keypoints(out / "original" / "keypoints2d"), rig), rig, config.sync, out / "recorded")
    source, _ = source_frames(take)
    cmp = compare_with_original(recorded.tracks, original.tracks, source)
    print(f"\nrecorded ({args.fourcc}) vs original videos, the same original frame:")
    _print_comparison(cmp)
    print(f"recording: {take.resolve()}\nresults: {(out / 'recorded').resolve()}, {(out / 'original').resolve()}")
    return 0
