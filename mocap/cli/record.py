"""mocap record RIG.yaml --out SESSION [--duration S] [--lockstep] [--preview]: record a take from every camera.

Each camera's source: in the rig file is a device index, an rtsp:// or http:// URL, a video file
(played as a live source at its own fps; {file: {path: P, jitter_ms: 3}} adds timing jitter), or
{synthetic: {fps, size, jitter_ms, drop_rate, die_after_s}} (a moving pattern with the frame
number drawn in). Writes SESSION/videos/<cam>.mp4, timestamps/<cam>.csv, session.yaml,
sync_report.md + .yaml (per camera fps, dropped and duplicated frames, jitter, the spread between
cameras and the matched frame table) and config.yaml. Ctrl-C, SIGTERM and --duration end the
take with every file playable; a camera that fails is named and the others keep going; a full
disk stops the take with every file finalized and exit status 1. Frames wait for the encoder in
a bounded queue per camera (record.queue_mb in all); a frame that finds it full is dropped by
the recorder and the report says when. --fourcc copy keeps a file's or an rtsp/http stream's own
encoded frames (no decoding or encoding: bit-exact, almost no CPU).

examples:
  mocap record rigs/example_4cam.yaml --out takes/take01 --duration 60
  mocap record rig.yaml --out /tmp/take --duration 10 --lockstep --preview   (then open http://127.0.0.1:8765/)
      (rig.yaml: cameras: {cam01: {source: {synthetic: {fps: 30, size: [640, 480], jitter_ms: 3}}}, cam02: ...})
  mocap record ip_cameras.yaml --out takes/take02 --duration 60 --fourcc copy
"""

from __future__ import annotations

import argparse

from mocap.cli.common import add_config_options, config_flag, resolve_config


def register(sub) -> None:
    p = sub.add_parser("record", help="record a synchronized take from the cameras of a rig file",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rig", help="rig file (rigs/*.yaml) with cameras: {name: {source: ...}}")
    p.add_argument("--out", required=True, help="session folder to create")
    p.add_argument("--duration", type=float, default=None, help="seconds to record (default: until Ctrl-C)")
    config_flag(p, "--lockstep", "record.lockstep", "software trigger: each camera grabs when all are ready",
                value=True)
    config_flag(p, "--fourcc", "record.fourcc", "video codec (FFV1: lossless, slow; copy: files and streams keep "
                "their own encoded frames, bit-exact)", choices=["mp4v", "MJPG", "FFV1", "copy"])
    p.add_argument("--preview", action="store_true",
                   help="show every camera's latest frame while recording: an MJPEG stream at "
                        "http://127.0.0.1:PORT/ (any browser) and SESSION/preview.jpg")
    p.add_argument("--preview-port", type=int, default=8765, help="port of --preview (default 8765; 0: any free one)")
    add_config_options(p)
    p.set_defaults(func=_run)


def _install_signals(stop) -> None:
    """Ctrl-C and SIGTERM end the take (files finalized); a file-size limit (RLIMIT_FSIZE) makes
    writes fail with EFBIG instead of killing the process (SIGXFSZ)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _run(args) -> int:
    import sys
    import threading
    from pathlib import Path

    from mocap.config import write_resolved
    from mocap.record.session import load_rig, record_session

    config = resolve_config(args)
    if args.duration is not None and not args.duration > 0:
        raise ValueError(f"--duration: must be > 0 seconds, got {args.duration}")
    rig = load_rig(args.rig)
    stop = threading.Event()
    _install_signals(stop)
    preview = _open_preview(args.preview_port) if args.preview else None
    result = record_session(rig, args.out, args.duration, config.record, stop, rig_path=args.rig, preview=preview)
    try:
        write_resolved(Path(args.out), config, "record", {"rig": str(Path(args.rig).resolve())},
                       {"outputs": {"session": str(Path(args.out).resolve())}})
    except OSError:
        pass  # the disk is full: the take's own files matter more
    print_summary(result)
    if result.fault:
        print(f"mocap record: error: {result.fault}", file=sys.stderr)
        return 1
    return 0


def _open_preview(port: int):
    from mocap.record.preview import Preview

    if not 0 <= port <= 65535:
        raise ValueError(f"--preview-port: expected 0-65535, got {port}")
    try:
        preview = Preview(port)
    except OSError as exc:
        raise OSError(f"--preview: cannot listen on port {port} ({exc.strerror}); choose another --preview-port") from None
    print(f"preview: {preview.url} (open it in a browser)", flush=True)
    return preview


def print_summary(result) -> None:
    rep = result.report
    print(f"recorded {result.duration_s:.1f} s into {result.session}")
    for name, c in rep["cameras"].items():
        state = (f"{'stopped' if c.get('failed') else 'ended'} after {c['stopped_after_s']:.1f} s: {c['ended']}"
                 if c.get("ended") else "ok")
        fps = "-" if c["fps_effective"] is None else f"{c['fps_effective']:.2f}"
        jit = "-" if c["jitter_ms"] is None else f"{c['jitter_ms']:.2f}"
        print(f"  {name}: {c['frames']} frames, {fps} fps, dropped {c['dropped']} (recorder "
              f"{c['dropped_by_recorder']}), duplicated {c['duplicated']}, jitter {jit} ms, {state}")
    s = rep["spread_ms"]
    if s["median"] is not None:
        print(f"spread between cameras: median {s['median']:.2f} ms, p95 {s['p95']:.2f} ms, max {s['max']:.2f} ms "
              f"over {s['instants']} instants")
    print(f"report: {result.session / 'sync_report.md'}")
