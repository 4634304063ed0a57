"""``mocap calibrate``: rig calibration, format conversion, printable boards.

    mocap calibrate intrinsics --board BOARD --camera NAME=PATH ... --out intrinsics.yaml
                                                    (step 1: each lens on its own, views need not be simultaneous)
    mocap calibrate extrinsics --intrinsics intrinsics.yaml --board BOARD --camera NAME=PATH ... --out calibration.yaml
                                                    (step 2: poses from simultaneous board views, lenses held)
    mocap calibrate --board BOARD --camera NAME=PATH ... [--lens-views NAME=PATH ...] --out calibration.yaml
                                                    (both in one go; --lens-views: a camera's own lens views)
    mocap calibrate SESSION [--out ...]             (cameras from the session's rig file)
    mocap calibrate convert IN --out OUT            (YAML <-> Pose2Sim/Anipose TOML, Qualisys .qca.txt in)
    mocap calibrate board BOARD --out board.png     (printable board)

The one-go forms are the ``rig`` action; the word ``rig`` may be left out. A camera whose result
is not plausible (RMS, focal length, coverage, inliers, square length, views not simultaneous)
is reported with the reason; then nothing is written under the output name (the cameras that
passed go to ``<name>.partial.yaml``) and the exit code is 1.
"""

from __future__ import annotations

import argparse

ACTIONS = ("rig", "intrinsics", "extrinsics", "click", "convert", "board")


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

    _register_steps(acts)
    rig = acts.add_parser("rig", help="calibrate intrinsics and extrinsics of every camera")
    rig.add_argument("session", nargs="?", help="session folder with a rig file (alternative to --camera)")
    rig.add_argument("--board", help="board YAML or name from calibration/")
    rig.add_argument("--camera", action="append", default=[], metavar="NAME=PATH",
                     help="camera images: a folder, a glob or a video; repeat per camera")
    rig.add_argument("--lens-views", action="append", default=[], metavar="NAME=PATH",
                     help="more views of one camera for its lens alone (e.g. the board waved close before it; need "
                          "not be simultaneous with anything); its lens comes from them when they pass the checks, "
                          "else from them pooled with its --camera views; repeat per camera")
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


def _register_steps(acts) -> None:
    intr = acts.add_parser("intrinsics", help="step 1: each camera's lens on its own (views need not be simultaneous)")
    intr.add_argument("--board", required=True, help="board YAML or name from calibration/")
    intr.add_argument("--camera", action="append", default=[], metavar="NAME=PATH", required=True,
                      help="camera images: a folder, a glob or a video; repeat per camera")
    intr.add_argument("--out", default="intrinsics.yaml", help="output intrinsics file (default intrinsics.yaml)")
    intr.add_argument("--stride", type=int, default=1, help="use every N-th frame of videos (default 1)")
    intr.add_argument("--max-frames", type=int, default=40, help="views per camera, chosen for diversity (default 40)")
    intr.add_argument("--workers", type=int, default=1, help="processes for corner detection (default 1)")
    intr.set_defaults(func=_intrinsics)

    ext = acts.add_parser("extrinsics", help="step 2: camera poses from simultaneous board views, lenses held")
    ext.add_argument("--intrinsics", required=True, metavar="FILE",
                     help="intrinsics.yaml from step 1, or any calibration file (its K and distortion are used)")
    ext.add_argument("--board", help="board YAML or name from calibration/ (with --camera)")
    ext.add_argument("--camera", action="append", default=[], metavar="NAME=PATH",
                     help="simultaneous camera images or videos of the board; repeat per camera")
    ext.add_argument("--people", action="append", default=[], metavar="PATH",
                     help="instead of a board, the performers: a folder of OpenPose JSON per camera (or a Pose2Sim "
                          "session folder, or mocap detect's output); repeat for several takes")
    ext.add_argument("--scene", default=None, metavar="FILE",
                     help="instead of a board, known scene points: a YAML of 3D points (metres) and their pixel "
                          "positions per camera (see `mocap calibrate click`)")
    ext.add_argument("--keypoint-format", default="body_25b", help="OpenPose JSON format of --people (default body_25b)")
    ext.add_argument("--height", type=float, default=None, metavar="M",
                     help="the performer's height in metres: sets the metric scale with --people")
    ext.add_argument("--frame-step", type=int, default=1, help="with --people, use every N-th frame (default 1)")
    ext.add_argument("--out", default="calibration.yaml", help="output calibration file")
    ext.add_argument("--world-frame", default=None, metavar="CAM:FRAME",
                     help="set the world from the board lying on the floor in this camera's frame")
    ext.add_argument("--refine-intrinsics", action="store_true",
                     help="let the bundle adjustment refine the lenses too (default: held as given)")
    ext.add_argument("--stride", type=int, default=None, help="use every N-th frame of videos (default 1)")
    ext.add_argument("--workers", type=int, default=None, help="processes for corner detection (default 1)")
    ext.set_defaults(func=_extrinsics)

    click = acts.add_parser("click", help="click a scene file's points on one camera's image (needs a display)")
    click.add_argument("scene", help="scene YAML with 'points' (metres); the clicks go under 'cameras: {CAMERA: ...}'")
    click.add_argument("--image", required=True, help="a frame of the camera")
    click.add_argument("--camera", required=True, help="the camera's name")
    click.set_defaults(func=_click)


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


def _intrinsics(args) -> int:
    """``mocap calibrate intrinsics``: exit 0 when every camera's lens is trusted, 1 otherwise."""
    from mocap.calibration.boards import load_board
    from mocap.calibration.each_camera import calibrate_each_camera, write_intrinsics

    sources = parse_camera_sources(args.camera)
    lenses = calibrate_each_camera(sources, load_board(args.board), stride=args.stride, workers=args.workers,
                                   max_frames=args.max_frames)
    for lens in lenses.values():
        print(lens.summary())
    paths = write_intrinsics(lenses, args.out)
    failed = [n for n, lens in lenses.items() if not lens]
    if failed:
        print(f"{', '.join(failed)} failed: {args.out} not written" + (f"; the others are in {paths[0]}" if
                                                                        len(failed) < len(lenses) else ""))
        return 1
    print(f"wrote {paths[0]} (+{len(paths) - 1} coverage images)")
    return 0


def _extrinsics(args) -> int:
    """``mocap calibrate extrinsics --intrinsics FILE --board B --camera NAME=PATH ...``."""
    from mocap.calibration.boards import load_board
    from mocap.calibration.io import load_intrinsics
    from mocap.calibration.rig import RigCalibrationConfig, calibrate_rig
    from mocap.errors import CalibrationError
    from mocap.geometry.camera import normalize_camera_name

    lenses = load_intrinsics(args.intrinsics)
    if args.people:
        return _extrinsics_people(args, lenses)
    if args.scene:
        return _extrinsics_scene(args, lenses)
    if not args.camera or not args.board:
        raise CalibrationError("extrinsics need views: --board B with --camera NAME=PATH per camera, --scene FILE, "
                               "or --people PATH")
    sources = parse_camera_sources(args.camera)
    known = {normalize_camera_name(n) for n in lenses}
    missing = [n for n in sources if normalize_camera_name(n) not in known]
    if missing:
        raise CalibrationError(f"camera {missing[0]}: not in {args.intrinsics} (it has {', '.join(lenses)}); "
                               "run `mocap calibrate intrinsics` for it first")
    kw = {k: getattr(args, k) for k in ("stride", "workers", "world_frame") if getattr(args, k) is not None}
    config = RigCalibrationConfig(**kw, optimize_intrinsics=args.refine_intrinsics)
    result = calibrate_rig(sources, load_board(args.board), config, lenses)
    return _write_rig(result, args.out)


def _extrinsics_scene(args, lenses) -> int:
    """``mocap calibrate extrinsics --intrinsics FILE --scene scene.yaml``."""
    from pathlib import Path

    from mocap.calibration.io import save_calibration
    from mocap.calibration.scene import CLICK_SIGMA_PX, calibrate_from_scene

    rig, failed, sigma = calibrate_from_scene(lenses, args.scene)
    for cam in rig:
        print(f"{cam.name}: {'FAILED' if cam.name in failed else 'solved'}, scene points reproject at "
              f"{cam.rms_px:.2f} px RMS; {CLICK_SIGMA_PX:g} px of click error moves it {sigma[cam.name] * 100:.1f} cm")
    for reason in failed.values():
        print(reason)
    out = Path(args.out) if not failed else Path(args.out).with_name(f"{Path(args.out).stem}.partial.yaml")
    print(f"wrote {save_calibration(rig, out)}" + (f"; {args.out} not written" if failed else ""))
    return 1 if failed else 0


def _click(args) -> int:
    """``mocap calibrate click SCENE --image IMG --camera NAME``: add one camera's clicked points to the scene file."""
    from pathlib import Path

    import yaml

    from mocap.calibration.scene import click_points, load_scene

    points, _ = load_scene(args.scene)
    clicked = click_points(args.image, list(points))
    doc = yaml.safe_load(Path(args.scene).read_text())
    doc.setdefault("cameras", {})[args.camera] = clicked
    Path(args.scene).write_text(yaml.safe_dump(doc, sort_keys=False))
    print(f"{args.camera}: {len(clicked)} of {len(points)} points clicked; wrote {args.scene}")
    return 0


def _extrinsics_people(args, lenses) -> int:
    """``mocap calibrate extrinsics --intrinsics FILE --people PATH ... [--height M]``."""
    from pathlib import Path

    from mocap.calibration.checks import MIN_INLIER_SHARE
    from mocap.calibration.io import save_calibration
    from mocap.calibration.people import MAX_RMS_PX, calibrate_from_people, join_takes
    from mocap.pipeline import load_keypoints

    kp = join_takes([load_keypoints(p, args.keypoint_format) for p in args.people], args.frame_step)
    result = calibrate_from_people(kp, lenses, args.height)
    for m in result.messages:
        print(m)
    if not result:
        print(f"nothing calibrated: {args.out} not written")
        return 1
    failed = [n for n in result.rig.names if not (result.camera_rms_px[n] <= MAX_RMS_PX
                                                   and result.inlier_share[n] >= MIN_INLIER_SHARE)]
    for n in result.rig.names:
        print(f"{n}: {'FAILED' if n in failed else 'solved'}, RMS {result.camera_rms_px[n]:.2f} px, "
              f"{result.inlier_share[n]:.0%} of its joints kept")
    out = Path(args.out)
    if failed:
        out = out.with_name(f"{out.stem}.partial{out.suffix}")
    print(f"wrote {save_calibration(result.rig, out)}")
    if failed:
        print(f"{', '.join(failed)} failed (RMS above {MAX_RMS_PX:g} px or under {MIN_INLIER_SHARE:.0%} of joints "
              f"kept): {args.out} not written")
        return 1
    return 0


def _write_rig(result, out) -> int:
    """Write a rig result; print the summary; the exit code. When a camera failed, only the cameras
    that passed are written, to ``<out>.partial.yaml``, and the exit code is 1."""
    from dataclasses import replace
    from pathlib import Path

    from mocap.calibration.rig import write_calibration
    from mocap.geometry.camera import Rig

    out = Path(out)
    if not result:
        for m in result.messages[-3:]:
            print(m)
        if len(result.intrinsics) == 1:
            print("one camera has no pose to solve: calibrate its lens with `mocap calibrate intrinsics`")
        print(f"nothing calibrated: {out} not written")
        return 1
    bad = result.unsolved + [n for n in result.failed if n not in result.unsolved]
    for reasons in result.failed.values():
        print(reasons[0] + (f" (+{len(reasons) - 1} more in the report)" if len(reasons) > 1 else ""))
    if not bad:
        _print_rig_summary(result.report, write_calibration(result, out))
        return 0
    kept = tuple(c for c in result.rig if c.name not in result.failed)
    target = out.with_name(f"{out.stem}.partial{out.suffix}")
    if kept and "rig" not in result.failed:
        result = replace(result, rig=Rig(kept, result.rig.metadata))
        _print_rig_summary(result.report, write_calibration(result, target))
        print(f"{', '.join(bad)} failed: {out} not written; the cameras that passed are in {target}")
    else:
        from mocap.calibration.report import write_report

        paths = write_report(result.report, target.parent, target.stem, result.coverage)
        print(f"{', '.join(bad)} failed: no calibration written; the report and coverage pictures are "
              f"{paths[1]} and {target.stem}_coverage_*.png")
    return 1


def _rig(args) -> int:
    """``mocap calibrate [SESSION] --board B --camera NAME=PATH ... --out calibration.yaml``.

    Writes the calibration and its report; prints every problem found. Exit code 0 when every
    camera was calibrated, 1 when some could not be (the others are still written).
    """
    from dataclasses import fields

    from mocap.calibration.boards import load_board
    from mocap.calibration.detect_corners import session_settings, session_sources
    from mocap.calibration.io import load_intrinsics
    from mocap.calibration.rig import RigCalibrationConfig, calibrate_rig
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
    initial = load_intrinsics(args.intrinsics) if args.intrinsics else None
    lens_sources = parse_camera_sources(args.lens_views) or None
    result = calibrate_rig(sources, board, config, initial, timestamps_ns=stamps, lens_sources=lens_sources)
    # result.messages were logged once, as warnings, by calibrate_rig (shown with -q too)
    print("frames of different cameras matched " + ("by capture time (timestamps/)" if stamps else "by index")
          + "; views that disagree across cameras are reported as not simultaneous")
    return _write_rig(result, args.out)


def _print_rig_summary(report: dict, paths: list) -> None:
    for n, c in report["cameras"].items():
        state = "FAILED" if c.get("failed") else "solved" if c["solved"] else "NOT solved"
        print(f"{n}: {state}, RMS {c['final_rms_px']:.3f} px, fx {c['fx']:.1f}")
    sq = report["square_length_check"]
    print(f"square length check: error {sq['mean_error_mm']:+.2f} ± {sq['sd_error_mm']:.2f} mm over {sq['n']} edges")
    for n, c in report["cameras"].items():
        if c.get("lens"):
            print(f"{n}: {c['lens']}")
    print("wrote " + ", ".join(str(p) for p in paths[:3]) + (f" (+{len(paths) - 3} coverage images)" if len(paths) > 3 else ""))
