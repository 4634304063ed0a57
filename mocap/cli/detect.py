"""mocap detect: 2D people x joints per camera and frame.

    mocap detect SESSION --out DIR [--detector blazepose|onnx:PATH] [--cameras cam01,cam02]
                 [--calibration FILE] [--no-tracking] [--detect-every N] [--heatmaps] [--workers N]

With --calibration every video is first checked against its calibrated camera (name and
size), and people a camera missed (or saw mixed with someone in front) are looked for again
where the other cameras place them (`recovered` in the output).

Writes DIR/<cam>.npz per camera (format: mocap/detect/pipeline.py) and DIR/config.yaml; a
camera whose file was made from the same video with the same settings is reused.

examples:
  mocap detect takes/take01 --out out/take01/keypoints2d --calibration calibration.yaml
  mocap detect takes/take01 --out kp --cameras cam01,cam02 --no-cross-view
"""

from __future__ import annotations

import argparse

from mocap.cli.common import add_config_options, add_detect_chunk_flags, add_detect_flags, comma_list, resolve_config


def register(sub) -> None:
    p = sub.add_parser("detect", help="detect 2D keypoints in every camera of a session",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("session", help="session folder (videos/<cam>.mp4)")
    p.add_argument("--out", required=True, help="output folder for <cam>.npz")
    p.add_argument("--cameras", type=comma_list, help="comma-separated camera names (default: all)")
    p.add_argument("--calibration", help="calibration file: check the videos against it and look again where "
                   "other cameras place a missed person")
    add_detect_chunk_flags(p)
    add_detect_flags(p)
    add_config_options(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from pathlib import Path

    from mocap.config import write_resolved
    from mocap.detect import detect_session
    from mocap.io.files import check_output_dir

    config = resolve_config(args)
    if args.chunk_frames is not None and args.chunk_frames < 0:
        raise ValueError(f"--chunk-frames: expected >= 0 (0: one pass), got {args.chunk_frames}")
    out = check_output_dir(args.out)
    kp = detect_session(args.session, out_dir=out, config=config.detect, cameras=args.cameras,
                        progress=not args.quiet, calibration=args.calibration, match=config.match,
                        chunk_frames=args.chunk_frames, chunk_mode=args.chunk_mode)
    write_resolved(out, config, "detect", {"session": str(Path(args.session).resolve()),
                                           "calibration": str(Path(args.calibration).resolve()) if args.calibration else None,
                                           "cameras": list(kp.camera_names)})
    found = kp.extras["scores"]
    print(f"{'camera':<10} {'frames':>6} {'people':>6} {'person-frames':>13} {'cross-view':>10}")
    for c, name in enumerate(kp.camera_names):
        det = kp.extras["detections"][c]
        rec = int(det.recovered.sum()) if det.recovered is not None else 0
        print(f"{name:<10} {len(det.frame_indices):>6} {det.keypoints.shape[1]:>6} "
              f"{int((found[:, c] == found[:, c]).sum()):>13} {rec:>10}")
    print(f"wrote {out}/<cam>.npz and {out / 'config.yaml'}")
    return 0
