"""mocap sync SESSION | --keypoints DIR  --calibration FILE --out sync.yaml: time offsets of
cameras that were not synchronized, from the performers' motion (or, with --flash, from a light
switched on in view of every camera: sub-frame from the partly bright frame; or, with --clap,
from one sharp sound in every video's audio track: sub-frame from the audio samples).

Each camera's offset to the reference camera, in frames (sub-frame): a first estimate from the
cross-correlation of joint speeds, refined by minimising the triangulation residual over the
offset with the 2D tracks interpolated. sync.yaml holds `reference: CAM` and `offsets: {CAM:
frames}`: camera c's frame k shows the reference camera's frame k + offset. `mocap reconstruct
--sync sync.yaml` and `mocap process` (when SESSION holds a sync.yaml) put every camera's 2D
keypoints on the reference camera's timeline before matching.

The 2D keypoints come from --keypoints DIR (OpenPose JSON per camera, or `mocap detect` output),
else from SESSION/pose (a Pose2Sim session), else SESSION is detected first (into
OUT_DIR/keypoints2d, resumable).

examples:
  mocap sync --keypoints SESSION/pose --calibration Calib.qca.txt --keypoint-format body_25b --out SESSION/sync.yaml
  mocap sync takes/take01 --calibration calibration.yaml --out takes/take01/sync.yaml
  mocap sync takes/take01 --flash --out takes/take01/sync.yaml      (a light switched on in view of all)
  mocap sync takes/take01 --clap --out takes/take01/sync.yaml       (hands clapped in hearing of all; needs PyAV)
"""

from __future__ import annotations

import argparse

from mocap.cli.common import add_config_options, config_flag, resolve_config


def register(sub) -> None:
    from mocap.skeleton.joints import KEYPOINT_FORMATS

    p = sub.add_parser("sync", help="time offsets of unsynchronized cameras from the performers' motion",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("session", nargs="?", help="session folder (videos/, or a Pose2Sim session with pose/)")
    p.add_argument("--keypoints", help="folder of OpenPose JSON per camera, or the <cam>.npz of mocap detect")
    p.add_argument("--calibration", help="calibration.yaml, .toml or Qualisys .qca.txt (for the sync from motion)")
    p.add_argument("--flash", action="store_true",
                   help="sync from a flash every camera sees (a light switched on) in SESSION's videos, "
                        "instead of the performers' motion; no calibration needed")
    p.add_argument("--clap", action="store_true",
                   help="sync from one sharp sound (a clap) in every video's audio track in SESSION; no calibration "
                        "needed (PyAV reads the audio: pip install av)")
    p.add_argument("--out", required=True, help="output sync.yaml")
    p.add_argument("--keypoint-format", default="body_25", choices=list(KEYPOINT_FORMATS),
                   help="keypoints per person in the JSON files (default body_25)")
    config_flag(p, "--reference", "sync.reference", "reference camera (default: the calibration's first)")
    config_flag(p, "--max-offset", "sync.max_offset_frames", "largest offset searched, frames", type=int)
    add_config_options(p)
    p.set_defaults(func=_run)


def _keypoints(args, config, rig, out):
    from pathlib import Path

    from mocap.pipeline import load_keypoints

    if args.keypoints:
        return load_keypoints(Path(args.keypoints), args.keypoint_format)
    if not args.session:
        raise ValueError("give a SESSION folder or --keypoints DIR")
    session = Path(args.session)
    if (session / "pose").is_dir():
        return load_keypoints(session / "pose", args.keypoint_format)
    from mocap.detect import detect_session

    return detect_session(session, out.parent / "keypoints2d", config.detect, progress=not args.quiet,
                          calibration=rig, match=config.match)


def _run_flash(args, config, out) -> int:
    from mocap.detect import session_videos
    from mocap.record.flash import flash_offsets
    from mocap.record.resample import SyncOffsets, save_sync

    if not args.session:
        raise ValueError("--flash: give the SESSION folder whose videos show the flash")
    reference, offsets, onsets = flash_offsets(session_videos(args.session), config.sync.reference or None)
    save_sync(SyncOffsets(reference, offsets), out,
              {"method": "flash onset", "onset_frames": {k: round(v, 3) for k, v in onsets.items()}})
    print(f"wrote {out}: reference {reference} (from a flash)")
    for name, off in offsets.items():
        print(f"  {name}: {off:+.3f} frames (flash starts at frame {onsets[name]:.2f})")
    return 0


def _run_clap(args, config, out) -> int:
    from mocap.detect import session_videos
    from mocap.record.clap import clap_offsets
    from mocap.record.resample import save_sync

    if not args.session:
        raise ValueError("--clap: give the SESSION folder whose videos hold the clap in their audio")
    sync, onsets = clap_offsets(session_videos(args.session), config.sync.reference or None)
    save_sync(sync, out, {"method": "clap onset (audio)", "onset_frames": {k: round(v, 3) for k, v in onsets.items()}})
    print(f"wrote {out}: reference {sync.reference} (from a clap)")
    for name, off in sync.offsets.items():
        print(f"  {name}: {off:+.3f} frames (clap at frame {onsets[name]:.2f})")
    return 0


def _run(args) -> int:
    from pathlib import Path

    from mocap.calibration.io import load_calibration
    from mocap.config import write_resolved
    from mocap.io.files import check_output_file
    from mocap.io.openpose import align_to_rig
    from mocap.record.resample import save_sync
    from mocap.record.sync import estimate_offsets

    config = resolve_config(args)
    out = check_output_file(args.out)
    if args.flash and args.clap:
        raise ValueError("--flash and --clap: choose one")
    if args.flash:
        return _run_flash(args, config, out)
    if args.clap:
        return _run_clap(args, config, out)
    if not args.calibration:
        raise ValueError("--calibration: needed to sync from the performers' motion (or use --flash)")
    rig = load_calibration(args.calibration)
    kp = align_to_rig(_keypoints(args, config, rig, out), rig)
    result = estimate_offsets(kp, rig, config.sync)
    extra = {"method": "cross-correlation of joint speeds, then triangulation residual over the offset",
             "coarse": result.coarse, "correlation": {k: round(v, 3) for k, v in result.correlation.items()},
             "residual_rms_px": {"synced": round(result.residual_px ** 0.5, 3),
                                 "unsynced": round(result.residual_unsynced_px ** 0.5, 3)}}
    save_sync(result.sync, out, extra)
    write_resolved(out.parent, config, "sync", {"session": args.session, "keypoints": args.keypoints,
                                                "calibration": str(Path(args.calibration).resolve())},
                   {"outputs": {"sync": str(out)}})
    print(f"wrote {out}: reference {result.sync.reference}")
    for name, off in result.sync.offsets.items():
        print(f"  {name}: {off:+.3f} frames (coarse {result.coarse[name]:+d}, correlation {result.correlation[name]:.2f})")
    print(f"triangulation residual (trimmed RMS): {result.residual_px ** 0.5:.2f} px with the offsets, "
          f"{result.residual_unsynced_px ** 0.5:.2f} px without")
    return 0
