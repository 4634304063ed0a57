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
    board.add_argument("--dpi", type=int, default=300)
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


def _rig(args) -> int:
    from mocap.calibration.rig import calibrate_from_cli

    return calibrate_from_cli(args)
