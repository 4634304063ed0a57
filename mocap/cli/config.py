"""mocap config print [--config FILE] [--set KEY=VALUE] [--no-comments]: the settings tree, resolved,
each field with its documentation as a comment.

Every stage reads the same tree (mocap/config.py): a YAML file given with --config may hold
any part of it; unknown keys are rejected with their path. Every stage writes the tree it used
to config.yaml next to its output, and that file can be given back to --config.

examples:
  mocap config print > settings.yaml          # edit, then: mocap process ... --config settings.yaml
  mocap config print --config settings.yaml --set triangulate.threshold_px=20
"""

from __future__ import annotations

import argparse

from mocap.cli.common import add_config_options, resolve_config


def register(sub) -> None:
    p = sub.add_parser("config", help="print the settings tree (defaults, or a file's values resolved)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    acts = p.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    show = acts.add_parser("print", help="print the resolved settings as YAML", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("--no-comments", action="store_true", help="values only, without each field's documentation")
    add_config_options(show)
    show.set_defaults(func=_print)


def _print(args) -> int:
    from mocap.config import dump

    print(dump(resolve_config(args), comments=not args.no_comments), end="")
    return 0
