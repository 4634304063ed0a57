"""``mocap detect``: 2D people × joints per camera and frame.

    mocap detect SESSION [--detector blazepose|onnx:PATH] --out DIR [--cameras cam01,cam02]
                 [--no-tracking] [--detect-every N] [--heatmaps] [--workers N] [--calibration FILE]

With ``--calibration`` people a camera missed (or saw mixed with someone in front) are looked for
again where the other cameras place them (``recovered`` in the output).

Writes ``DIR/<cam>.npz`` per camera (format: :mod:`mocap.detect.pipeline`) and
``DIR/detect_config.yaml``; cameras already done with the same detector are skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("detect", help="detect 2D keypoints in every camera of a session",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("session", help="session folder (videos/<cam>.mp4)")
    p.add_argument("--out", required=True, help="output folder for <cam>.npz")
    p.add_argument("--detector", default="blazepose", help="blazepose (default) or onnx:PATH")
    p.add_argument("--cameras", help="comma-separated camera names (default: all)")
    p.add_argument("--no-tracking", action="store_true", help="run the person detector on every frame")
    p.add_argument("--detect-every", type=int, default=10, help="tracking mode: detector every N frames")
    p.add_argument("--heatmaps", action="store_true", help="also store 64×64 heatmaps (large)")
    p.add_argument("--threads", type=int, default=1, help="inference threads per camera")
    p.add_argument("--workers", type=int, default=0,
                   help="cameras processed in parallel processes (default 0: one per CPU core)")
    p.add_argument("--calibration", help="calibration file: look again where other cameras place a missed person")
    p.set_defaults(func=_run)


def _config(args):
    from mocap.detect.blazepose import BlazePoseConfig

    cfg = BlazePoseConfig(tracking=not args.no_tracking, detect_every=args.detect_every,
                          keep_heatmaps=args.heatmaps, num_threads=args.threads)
    if args.detector.startswith("onnx:"):
        from mocap.detect.onnx_backend import OnnxConfig

        return OnnxConfig(person=cfg, num_threads=args.threads)
    return cfg


def _run(args) -> int:
    import yaml

    from mocap.detect import detect_session

    config = _config(args)
    cameras = [c.strip() for c in args.cameras.split(",")] if args.cameras else None
    kp = detect_session(args.session, out_dir=args.out, detector=args.detector, config=config,
                        cameras=cameras, workers=args.workers, progress=True, calibration=args.calibration)
    out = Path(args.out)
    resolved = {"session": str(args.session), "detector": args.detector, "cameras": list(kp.camera_names),
                "calibration": args.calibration,
                "config": _plain(dataclasses.asdict(config))}
    (out / "detect_config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    found = kp.extras["scores"]
    print(f"{'camera':<10} {'frames':>6} {'people':>6} {'person-frames':>13} {'cross-view':>10}")
    for c, name in enumerate(kp.camera_names):
        det = kp.extras["detections"][c]
        rec = int(det.recovered.sum()) if det.recovered is not None else 0
        print(f"{name:<10} {len(det.frame_indices):>6} {det.keypoints.shape[1]:>6} "
              f"{int((found[:, c] == found[:, c]).sum()):>13} {rec:>10}")
    print(f"wrote {out}/<cam>.npz")
    return 0


def _plain(d):
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, tuple | list):
        return [_plain(v) for v in d]
    return d
