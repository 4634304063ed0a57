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

#: Subcommand modules in the order ``mocap --help`` lists them.
SUBCOMMANDS = ("calibrate", "detect", "reconstruct", "export", "process", "view", "models", "demo", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mocap", description="Multi-camera markerless motion capture.")
    parser.add_argument("--version", action="version", version=f"mocap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"mocap.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mocap.cli.{name}":
                continue  # stage not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from mocap.cli.calibrate import rewrite_argv

    argv = rewrite_argv(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (MocapError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"mocap {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mocap {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
