"""``mocap process SESSION --calibration FILE --out DIR``: video to animation in one command.

Runs detect -> reconstruct -> export and writes ``DIR/tracks.npz``, ``DIR/export/*.bvh|fbx`` and
``DIR/process.yaml`` (settings, inputs and time per stage). Detection is resumable per camera:
run it again after an interruption and finished cameras are skipped.
"""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("process", help="detect, reconstruct and export a session in one go",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("session", help="session folder with videos/<cam>.mp4")
    p.add_argument("--calibration", required=True, help="calibration.yaml, .toml or Qualisys .qca.txt")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--detector", default="blazepose", help="blazepose (default) or onnx:PATH")
    p.add_argument("--triangulation", default="robust", choices=("robust", "dlt"))
    p.add_argument("--format", default="bvh,fbx", help="comma-separated: bvh,fbx,trc,csv,c3d (default bvh,fbx)")
    p.add_argument("--preset", default="canonical", help="joint names: canonical, mixamo, unreal, unity")
    p.add_argument("--workers", type=int, default=0,
                   help="cameras detected in parallel processes (default 0: one per CPU core)")
    p.add_argument("--no-smooth", action="store_true", help="keep the per-frame triangulation (no smoothing)")
    p.add_argument("--no-cross-view", action="store_true",
                   help="do not look again for people a camera missed where the other cameras place them")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from mocap.pipeline import ProcessConfig, process_session

    config = ProcessConfig(detector=args.detector, triangulation=args.triangulation,
                           formats=tuple(f.strip() for f in args.format.split(",") if f.strip()),
                           preset=args.preset, workers=args.workers,
                           cross_view=not args.no_cross_view, smooth=not args.no_smooth)
    result = process_session(args.session, args.calibration, args.out, config, progress=not args.quiet)
    print_result(result)
    return 0


def print_result(result) -> None:
    print(f"tracks:    {result.tracks_path.resolve()}")
    for p in result.export_paths:
        print(f"wrote:     {p.resolve()}")
    print("time per stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings_s.items()))
    if result.report is not None:
        print(f"report:    {(result.tracks_path.parent / 'report.md').resolve()}")
        for line in result.report["checks"]:
            print(f"  check: {line}")
