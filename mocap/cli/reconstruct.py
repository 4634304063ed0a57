"""mocap reconstruct: 2D keypoints + calibration -> tracks.npz (match -> triangulate -> track).

    mocap reconstruct --keypoints DIR --calibration FILE --out tracks.npz
                      [--keypoint-format body_25] [--triangulation dlt|robust] [--single-person]
                      [--sync sync.yaml] [--chunk-frames 1800]

DIR holds one folder of OpenPose JSON per camera (DIR/<cam>/*.json or DIR/<cam>_json, or a
Pose2Sim session's pose/), or the <cam>.npz files `mocap detect` wrote (their joint names and
appearance descriptors are used; --keypoint-format is ignored); FILE is a calibration in any
supported format. The resolved settings are written beside the output as config.yaml.

examples:
  mocap reconstruct --keypoints out/take01/keypoints2d --calibration calibration.yaml --out out/take01/tracks.npz
  mocap reconstruct --keypoints SESSION/pose --calibration Calib.toml --out tracks.npz --keypoint-format body_25b
"""

from __future__ import annotations

import argparse
import logging

from mocap.cli.common import add_config_options, add_reconstruct_flags, config_flag, resolve_config

log = logging.getLogger(__name__)


def register(sub) -> None:
    from mocap.skeleton.joints import KEYPOINT_FORMATS

    p = sub.add_parser("reconstruct", help="triangulate 2D keypoints of all cameras into tracks.npz",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keypoints", required=True, help="folder with one OpenPose JSON folder per camera, or "
                   "the <cam>.npz files of `mocap detect`")
    p.add_argument("--calibration", required=True, help="calibration.yaml, Pose2Sim/Anipose .toml or Qualisys .qca.txt")
    p.add_argument("--out", required=True, help="output tracks.npz")
    p.add_argument("--keypoint-format", default="body_25", choices=list(KEYPOINT_FORMATS),
                   help="keypoints per person in the JSON files (default body_25)")
    p.add_argument("--sync", help="sync.yaml (mocap sync), or a recorded take's sync_report.yaml (mocap record: "
                   "its matched frame table): put every camera's keypoints on that timeline first")
    config_flag(p, "--fps", "fps", "frame rate when the input carries none (OpenPose JSON; default 30)", type=float)
    p.add_argument("--chunk-frames", type=int, default=None,
                   help="reconstruct in chunks of this many frames, the same result as one pass with memory "
                        "bounded by the chunk (default 1800, only for longer takes)")
    add_reconstruct_flags(p)
    add_config_options(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from pathlib import Path

    import numpy as np

    from mocap.calibration.io import load_calibration
    from mocap.config import write_resolved
    from mocap.io.files import check_output_file
    from mocap.io.openpose import align_to_rig
    from mocap.io.tracks import save_tracks
    from mocap.pipeline import load_keypoints, reconstruct

    config = resolve_config(args)
    out = check_output_file(args.out)
    rig = load_calibration(args.calibration)
    kp = load_keypoints(Path(args.keypoints), args.keypoint_format)
    kp = align_to_rig(kp, rig)
    if args.sync:
        from mocap.record.resample import apply_sync_file

        kp = apply_sync_file(kp, args.sync)
    if kp.fps is None:
        log.info("the keypoints carry no frame rate; using %g fps (--fps)", config.fps)
    if args.chunk_frames is not None and args.chunk_frames < 1:
        raise ValueError(f"--chunk-frames: expected >= 1, got {args.chunk_frames}")
    tracks = reconstruct(kp, rig, config, chunk_frames=args.chunk_frames)
    save_tracks(tracks, out)
    cfg_path = write_resolved(out.parent, config, "reconstruct", {
        "keypoints": str(Path(args.keypoints).resolve()),
        "keypoint_format": "mocap detect (.npz)" if "detections" in (kp.extras or {}) else args.keypoint_format,
        "calibration": str(Path(args.calibration).resolve()),
        "sync": str(Path(args.sync).resolve()) if args.sync else None,
        "cameras": list(rig.names), "fps": tracks.fps}, {"outputs": {"tracks": str(out)}})
    ok = np.isfinite(tracks.positions).all(-1)  # (T, P, J)
    present = ok.any(-1)  # (T, P)
    n = tracks.positions.shape[1]
    print(f"wrote {out} ({tracks.num_frames} frames, {n} {'person' if n == 1 else 'people'}, "
          f"{len(tracks.joint_names)} joints) and {cfg_path}")
    for p, tid in enumerate(tracks.track_ids):
        seen = present[:, p]
        print(f"  person {tid}: in {int(seen.sum())} frames, {100 * ok[seen, p].mean() if seen.any() else 0:.1f}% "
              f"of joints triangulated there")
    return 0
