"""``mocap calibrate``: rig calibration, format conversion, printable boards.

    mocap calibrate --board BOARD --camera NAME=PATH ... --out calibration.yaml
    mocap calibrate SESSION [--out ...]             (cameras from the session's rig file)
    mocap calibrate convert IN --out OUT            (YAML <-> Pose2Sim/Anipose TOML, Qualisys .qca.txt in)
    mocap calibrate board BOARD --out board.png     (printable board)

The first two forms are the ``rig`` action; the word ``rig`` may be left out.
"""

from __future__ import annotations

import argparse

ACTIONS = ("rig", "convert", "board")


def register(sub) -> None:
    p = sub.add_parser("calibrate", help="calibrate a rig, convert calibration files, print boards",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    acts = p.add_subparsers(dest="calibrate_action", metavar="ACTION")

    conv = acts.add_parser("convert", help="convert a calibration file between formats")
    conv.add_argument("input", help="calibration.yaml, Pose2Sim/Anipose/FreeMoCap .toml, or Qualisys .qca.txt")
    conv.add_argument("--out", required=True, help="output file; format from the extension (.yaml, .toml)")
    conv.set_defaults(func=_convert)

    board = acts.add_parser("board", help="write a printable image of a board definition")
    board.add_argument("board", help="board YAML (e.g. calibration/checkerboard_9x6_25mm.yaml) or its name")
    board.add_argument("--out", required=True, help="output .png or .pdf")
    board.add_argument("--dpi", type=int, default=300, help="print resolution, dots per inch (default 300)")
    board.set_defaults(func=_board)

    rig = acts.add_parser("rig", help="calibrate intrinsics and extrinsics of every camera")
    rig.add_argument("session", nargs="?", help="session folder with a rig file (alternative to --camera)")
    rig.add_argument("--board", help="board YAML or name from calibration/")
    rig.add_argument("--camera", action="append", default=[], metavar="NAME=PATH",
                     help="camera images: a folder, a glob or a video; repeat per camera")
    rig.add_argument("--out", default="calibration.yaml", help="output calibration file")
    rig.add_argument("--world-frame", default=None, metavar="CAM:FRAME",
                     help="set the world from the board lying on the floor in this camera's frame")
    rig.add_argument("--fix-intrinsics", action="store_true", help="keep intrinsics fixed in bundle adjustment")
    rig.add_argument("--intrinsics", default=None, metavar="FILE",
                     help="take K and distortion from this calibration file instead of fitting them per camera")
    rig.add_argument("--stride", type=int, default=None, help="use every N-th frame of videos (default 1)")
    rig.add_argument("--max-intrinsic-frames", type=int, default=None,
                     help="frames per camera for the intrinsic fit, chosen for diversity (default 40)")
    rig.add_argument("--loss", default=None, choices=("linear", "huber", "soft_l1", "cauchy"),
                     help="robust loss of the bundle adjustment (default soft_l1)")
    rig.add_argument("--workers", type=int, default=None, help="processes for corner detection (default 1)")
    rig.set_defaults(func=_rig)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def rewrite_argv(argv: list[str]) -> list[str]:
    """Insert the default action ``rig`` after ``calibrate`` when no action word is given."""
    words = [a for a in argv if not a.startswith("-")]
    if words and words[0] == "calibrate":  # not ``mocap bench calibrate``
        i = argv.index("calibrate")
        rest = argv[i + 1 :]
        if rest and rest[0] not in ACTIONS and rest[0] not in ("-h", "--help"):
            return argv[: i + 1] + ["rig"] + rest
    return argv


def _convert(args) -> int:
    from mocap.calibration.io import convert_calibration

    out = convert_calibration(args.input, args.out)
    print(f"wrote {out}")
    return 0


def _board(args) -> int:
    from mocap.calibration.boards import load_board, render_board

    out = render_board(load_board(args.board), args.out, dpi=args.dpi)
    print(f"wrote {out}")
    return 0


def parse_camera_sources(items: list[str]) -> dict[str, str]:
    """``--camera NAME=PATH`` values as ``{name: path}``; a malformed or repeated one raises."""
    from mocap.errors import CalibrationError

    sources = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise CalibrationError(f"--camera {item!r}: expected NAME=PATH (an image folder, a glob or a video)")
        if name in sources:
            raise CalibrationError(f"--camera {name}: given twice")
        sources[name] = path
    return sources


def _rig(args) -> int:
    """``mocap calibrate [SESSION] --board B --camera NAME=PATH ... --out calibration.yaml``.

    Writes the calibration and its report; prints every problem found. Exit code 0 when every
    camera was calibrated, 1 when some could not be (the others are still written).
    """
    from dataclasses import fields

    from mocap.calibration.boards import load_board
    from mocap.calibration.detect_corners import session_settings, session_sources
    from mocap.calibration.io import load_calibration
    from mocap.calibration.rig import RigCalibrationConfig, calibrate_rig, write_calibration
    from mocap.errors import CalibrationError

    sources = parse_camera_sources(args.camera)
    board_name, stamps = args.board, None
    if args.session:
        s_sources, s_board, stamps = session_sources(args.session)
        sources = sources or s_sources
        board_name = board_name or s_board
    if not sources:
        raise CalibrationError("no cameras: give --camera NAME=PATH per camera, or a session folder")
    if not board_name:
        raise CalibrationError("no board: give --board (e.g. checkerboard_9x6_25mm) or name it in the session's rig file")
    board = load_board(board_name)
    kw = {f.name: getattr(args, f.name) for f in fields(RigCalibrationConfig) if getattr(args, f.name, None) is not None}
    if args.session and "world_frame" not in kw and session_settings(args.session).get("world_frame"):
        kw["world_frame"] = str(session_settings(args.session)["world_frame"])  # from the rig file
    config = RigCalibrationConfig(**{**kw, "optimize_intrinsics": not args.fix_intrinsics})
    initial = {c.name: c for c in load_calibration(args.intrinsics)} if args.intrinsics else None
    result = calibrate_rig(sources, board, config, initial, timestamps_ns=stamps)
    # result.messages were logged once, as warnings, by calibrate_rig (shown with -q too)
    paths = write_calibration(result, args.out)
    _print_rig_summary(result.report, paths)
    return 0 if not result.unsolved else 1


def _print_rig_summary(report: dict, paths: list) -> None:
    for n, c in report["cameras"].items():
        print(f"{n}: {'solved' if c['solved'] else 'NOT solved'}, RMS {c['final_rms_px']:.3f} px, fx {c['fx']:.1f}")
    sq = report["square_length_check"]
    print(f"square length check: error {sq['mean_error_mm']:+.2f} ± {sq['sd_error_mm']:.2f} mm over {sq['n']} edges")
    print("wrote " + ", ".join(str(p) for p in paths[:3]) + (f" (+{len(paths) - 3} coverage images)" if len(paths) > 3 else ""))
