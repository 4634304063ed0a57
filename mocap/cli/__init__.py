"""``mocap`` command line: one thin subcommand per stage.

Each subcommand lives in ``mocap/cli/<name>.py`` and defines ``register(subparsers)``, which adds
its parser and sets ``func(args) -> int``. Library errors (``ValueError``, ``FileNotFoundError``,
:class:`mocap.errors.MocapError`) become one line on stderr and exit code 2.
"""


from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mocap import __version__
from mocap.errors import MocapError
from mocap.text import plain_text

EPILOG = """examples:
  mocap demo                      real 4-camera takes to BVH + FBX (downloads once)
  mocap calibrate --board calibration/checkerboard_9x6_25mm.yaml --camera cam01=calib/cam01.mp4 --camera cam02=calib/cam02.mp4 --out calibration.yaml
  mocap process takes/take01 --calibration calibration.yaml --out out/take01
  mocap view out/take01           overlay videos of the result
  mocap config print              every setting and its default

`mocap COMMAND --help` lists a command's options. detect, reconstruct, export and process also
take --config FILE and --set KEY=VALUE for any setting `mocap config print` shows.
"""

#: Subcommand modules in the order ``mocap --help`` lists them.
SUBCOMMANDS = ("calibrate", "record", "sync", "detect", "reconstruct", "export", "process", "view", "config", "models", "train", "demo", "bench")


class _Formatter(logging.Formatter):
    """Progress notes as plain lines, problems as ``warning: ...``; logger names with ``-v``."""

    def __init__(self, verbose: bool = False):
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        return f"[{record.name}] {text}" if self.verbose else text


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (``mocap process: error: ...; see mocap process --help``), exit 2;
    descriptions shown without reST markup."""

    def __init__(self, *args, **kwargs):
        kwargs["description"] = plain_text(kwargs.get("description"))
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="mocap", description="Multi-camera markerless motion capture: calibrate, "
                                     "detect, reconstruct, export.", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"mocap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"mocap.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from mocap.cli.calibrate import rewrite_argv

    argv = rewrite_argv(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed as one line)
        return int(exc.code or 0)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler()
    handler.setFormatter(_Formatter(verbose=args.verbose))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm():  # log lines above the progress bars, not through them
            return int(args.func(args) or 0)
    except (MocapError, ValueError, OSError) as exc:
        print(f"mocap {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mocap {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
