"""``mocap reconstruct``: 2D keypoints + calibration -> tracks.npz (match -> triangulate -> track).

    mocap reconstruct --keypoints DIR --calibration FILE --out tracks.npz
                      [--keypoint-format body_25] [--triangulation dlt|robust] [--single-person]

DIR holds one folder of OpenPose JSON per camera (``DIR/<cam>/*.json`` or ``DIR/<cam>_json``, or
a Pose2Sim session's ``pose/``), or the ``<cam>.npz`` files ``mocap detect`` wrote (their joint
names and appearance descriptors are used; ``--keypoint-format`` is ignored); FILE is a
calibration in any supported format. The resolved settings are written beside the output as
``<out>.config.yaml``.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0


def register(sub) -> None:
    from mocap.reconstruct import METHODS, ReconstructConfig
    from mocap.skeleton.joints import KEYPOINT_FORMATS

    d = ReconstructConfig()
    p = sub.add_parser("reconstruct", help="triangulate 2D keypoints of all cameras into tracks.npz",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keypoints", required=True, help="folder with one OpenPose JSON folder per camera")
    p.add_argument("--calibration", required=True, help="calibration.yaml, Pose2Sim/Anipose .toml or Qualisys .qca.txt")
    p.add_argument("--out", required=True, help="output tracks.npz")
    p.add_argument("--keypoint-format", default="body_25", choices=list(KEYPOINT_FORMATS), help="default body_25")
    p.add_argument("--triangulation", default="robust", choices=list(METHODS), help="default robust")
    p.add_argument("--fps", type=float, default=None, help=f"frame rate (JSON carries none; default {DEFAULT_FPS:g})")
    p.add_argument("--min-confidence", type=float, default=d.min_confidence, help="ignore weaker 2D keypoints")
    p.add_argument("--threshold-px", type=float, default=d.threshold_px, help="robust: outlier reprojection threshold")
    p.add_argument("--refine", action="store_true", help="robust: Gauss-Newton refinement of the reprojection error")
    p.add_argument("--no-swap-check", dest="swap_check", action="store_false", help="robust: no left/right check")
    p.add_argument("--no-temporal-swap-check", dest="temporal_swap_check", action="store_false",
                   help="robust: no left/right check against the neighbouring frames")
    p.add_argument("--single-person", dest="multi_person", action="store_false",
                   help="one performer: the most confident person of every view (default: match and track everyone)")
    p.add_argument("--no-smooth", dest="smooth", action="store_false",
                   help="keep the per-frame triangulation (no Kalman/RTS smoothing)")
    p.add_argument("--acceleration-sigma", type=float, default=d.acceleration_sigma,
                   help="smoothing: joint acceleration noise, m/s^2 (smaller smooths more)")
    p.add_argument("--max-people", type=int, default=0,
                   help="keep at most N people, those triangulated most (default 0: everyone)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from pathlib import Path

    import numpy as np
    import yaml

    from mocap import __version__
    from mocap.calibration.io import load_calibration
    from mocap.io.openpose import align_to_rig, load_openpose
    from mocap.reconstruct import ReconstructConfig, reconstruct
    from mocap.io.tracks import save_tracks
    from mocap.io.files import atomic_write

    config = ReconstructConfig(min_confidence=args.min_confidence, threshold_px=args.threshold_px,
                               refine=args.refine, swap_check=args.swap_check,
                               temporal_swap_check=args.temporal_swap_check, multi_person=args.multi_person,
                               max_people=args.max_people, smooth=args.smooth,
                               acceleration_sigma=args.acceleration_sigma)
    rig = load_calibration(args.calibration)
    kp = align_to_rig(_load_keypoints(Path(args.keypoints), args.keypoint_format, args.fps), rig)
    fps = args.fps or kp.fps
    if fps is None:
        log.warning("no frame rate given or found; using %g fps (pass --fps)", DEFAULT_FPS)
        fps = DEFAULT_FPS
    tracks = reconstruct(kp, rig, args.triangulation, fps=fps, config=config)
    out = save_tracks(tracks, args.out)
    resolved = {
        "mocap_version": __version__,
        "keypoints": str(Path(args.keypoints).resolve()),
        "keypoint_format": args.keypoint_format if not any(Path(args.keypoints).glob("*.npz")) else "mocap detect (.npz)",
        "calibration": str(Path(args.calibration).resolve()),
        "cameras": list(rig.names),
        "fps": float(fps),
        "triangulation": args.triangulation,
        **config.to_dict(),
    }
    cfg_path = out.with_name(out.name.removesuffix(".npz") + ".config.yaml")
    atomic_write(cfg_path, lambda tmp: Path(tmp).write_text(yaml.safe_dump(resolved, sort_keys=False)))
    ok = np.isfinite(tracks.positions).all(-1)  # (T, P, J)
    present = ok.any(-1)  # (T, P)
    n = tracks.positions.shape[1]
    print(f"wrote {out} ({tracks.num_frames} frames, {n} {'person' if n == 1 else 'people'}, "
          f"{len(tracks.joint_names)} joints) and {cfg_path.name}")
    for p, tid in enumerate(tracks.track_ids):
        seen = present[:, p]
        print(f"  person {tid}: in {int(seen.sum())} frames, {100 * ok[seen, p].mean() if seen.any() else 0:.1f}% "
              f"of joints triangulated there")
    return 0


def _load_keypoints(folder, keypoint_format: str, fps: float | None):
    """``mocap detect``'s ``<cam>.npz`` files when the folder holds them, else OpenPose JSON."""
    from mocap.io.openpose import load_openpose

    npz = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    if not npz:
        return load_openpose(folder, keypoint_format, fps=fps)
    from dataclasses import replace

    from mocap.detect.pipeline import load_camera_detections, to_keypoints2d

    kp = to_keypoints2d([load_camera_detections(p) for p in npz])
    log.info("read %d cameras of detections from %s (%s)", len(npz), folder, ", ".join(p.stem for p in npz))
    return replace(kp, fps=fps) if fps else kp
