"""mocap process SESSION --calibration FILE --out DIR: video to animation in one command.

Runs detect -> reconstruct -> export and writes DIR/tracks.npz, DIR/export/*.bvh|fbx,
DIR/report.md and DIR/config.yaml (every setting, the inputs and the time per stage). Inputs
are checked before any detection: every video against its calibrated camera, the output
folder, the settings. A recorded take's matched frame table (SESSION/sync_report.yaml, from
mocap record) and SESSION/sync.yaml (from mocap sync) put the cameras on one timeline before
matching. Detection is resumable per camera: run it again after an interruption
and cameras already done from the same video with the same settings are reused.

examples:
  mocap process takes/take01 --calibration calibration.yaml --out out/take01
  mocap process takes/take01 --calibration Calib.qca.txt --out out/take01 --format bvh,fbx,trc --rig mixamo
  mocap process takes/take01 --calibration calibration.yaml --out out/take01 --config out/take00/config.yaml
"""

from __future__ import annotations

import argparse

from mocap.cli.common import add_config_options, add_detect_flags, add_export_flags, add_reconstruct_flags, resolve_config


def register(sub) -> None:
    p = sub.add_parser("process", help="detect, reconstruct and export a session in one go",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("session", help="session folder with videos/<cam>.mp4")
    p.add_argument("--calibration", required=True, help="calibration.yaml, .toml or Qualisys .qca.txt")
    p.add_argument("--out", required=True, help="output folder")
    add_detect_flags(p)
    add_reconstruct_flags(p)
    add_export_flags(p)
    add_config_options(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from mocap.pipeline import process_session

    config = resolve_config(args)
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
