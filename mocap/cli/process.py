"""mocap process SESSION --calibration FILE --out DIR: video to animation in one command.

Runs detect -> reconstruct -> export and writes DIR/tracks.npz, DIR/export/*.bvh|fbx,
DIR/report.md and DIR/config.yaml (every setting, the inputs and the time per stage). Inputs
are checked before any detection: every video against its calibrated camera, the output
folder, the settings. A recorded take's matched frame table (SESSION/sync_report.yaml, from
mocap record) and SESSION/sync.yaml (from mocap sync) put the cameras on one timeline before
matching. Every stage is resumable: detect, reconstruct and export each record a fingerprint
of their inputs, settings and the mocap code (DIR/stages/<stage>.yaml); run the command again after an
interruption and finished stages are reused (the log says which, or why a stage runs again),
and a changed setting reruns only the stages that read it. A long take is reconstructed in
chunks of frames (--chunk-frames; the same result as one pass, memory bounded by the chunk),
and a long video detected in chunks written as they are done (--detect-chunk-frames, resumable
per chunk; the default exact mode carries the person tracker across chunks: the same detections
as one pass).
Several takes at once: give several session folders; each goes to DIR/<take folder name>.
--executor ray runs the cameras' detection, the chunks of a long take and several takes as
Ray tasks (pip install 'mocap[ray]'; --address HOST:PORT of a running cluster, else a local
Ray runtime on this machine).

examples:
  mocap process takes/take01 --calibration calibration.yaml --out out/take01
  mocap process sessions/* --calibration calibration.yaml --out out/ --executor ray --address head:6379
  mocap process takes/take01 --calibration Calib.qca.txt --out out/take01 --format bvh,fbx,trc --rig mixamo
  mocap process takes/take01 --calibration calibration.yaml --out out/take01 --config out/take00/config.yaml
"""

from __future__ import annotations

import argparse

from mocap.cli.common import add_config_options, add_detect_chunk_flags, add_detect_flags, add_export_flags, add_reconstruct_flags, resolve_config


def register(sub) -> None:
    p = sub.add_parser("process", help="detect, reconstruct and export a session in one go",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("session", nargs="+", help="session folder with videos/<cam>.mp4 (several: each into "
                   "DIR/<folder name>)")
    p.add_argument("--calibration", required=True, help="calibration.yaml, .toml or Qualisys .qca.txt")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="where tasks run: local (this machine's process pool, default) or ray")
    p.add_argument("--address", default=None, help="with --executor ray: a running Ray cluster's address "
                   "(HOST:PORT or auto); default: start a local Ray runtime")
    p.add_argument("--chunk-frames", type=int, default=None,
                   help="reconstruct in chunks of this many frames (default 1800, only for longer takes)")
    add_detect_chunk_flags(p, "detect-")
    add_detect_flags(p)
    add_reconstruct_flags(p)
    add_export_flags(p)
    add_config_options(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from mocap.pipeline import process_session
    from mocap.runtime.executor import make_executor
    from mocap.runtime.speed import prefer_numpy_for_short_takes

    config = resolve_config(args)
    if args.chunk_frames is not None and args.chunk_frames < 1:
        raise ValueError(f"--chunk-frames: expected >= 1, got {args.chunk_frames}")
    if args.detect_chunk_frames is not None and args.detect_chunk_frames < 0:
        raise ValueError(f"--detect-chunk-frames: expected >= 0 (0: one pass), got {args.detect_chunk_frames}")
    if len(args.session) == 1:
        from mocap.pipeline import check_process_inputs

        check_process_inputs(args.session[0], args.calibration, args.out, config)  # bad input: one line first
        prefer_numpy_for_short_takes(args.session[0])
    executor = make_executor(args.executor, args.address)
    try:
        if len(args.session) > 1:
            return _run_takes(args, config, executor)
        result = process_session(args.session[0], args.calibration, args.out, config, progress=not args.quiet,
                                 executor=executor, chunk_frames=args.chunk_frames,
                                 detect_chunk_frames=args.detect_chunk_frames,
                                 detect_chunk_mode=args.detect_chunk_mode)
    finally:
        executor.close()
    print_result(result)
    return 0


def _run_takes(args, config, executor) -> int:
    """Several takes, one task each (on Ray: at once; locally: one after another)."""
    from mocap.pipeline import check_process_inputs
    from mocap.runtime.tasks import process_takes, take_out_dirs

    for session, out in take_out_dirs(args.session, args.out).items():  # every take checked before any work
        check_process_inputs(session, args.calibration, out, config)
    for session, res in process_takes(executor, args.session, args.calibration, args.out, config, args.chunk_frames,
                                      args.detect_chunk_frames, args.detect_chunk_mode):
        print(f"{session}: tracks {res['tracks_path']}; time per stage: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in res["timings_s"].items()))
        for line in res["checks"]:
            print(f"  check: {line}")
    return 0


def print_result(result) -> None:
    print(f"tracks:    {result.tracks_path.resolve()}")
    for p in result.export_paths:
        print(f"wrote:     {p.resolve()}")
    print("time per stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings_s.items()))
    if result.report is not None:
        print(f"report:    {(result.tracks_path.parent / 'report.md').resolve()}")
        print(f"           {(result.tracks_path.parent / 'report.html').resolve()}")
        for line in result.report["checks"]:
            print(f"  check: {line}")
