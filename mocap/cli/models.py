"""``mocap models``: which model files are installed, and fetching them.

    mocap models                 list the models, their cache paths and state
    mocap models fetch [--wheel mediapipe-0.10.21-*.whl] [--force]
"""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("models", help="list or fetch detector model files",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=_list)
    acts = p.add_subparsers(dest="models_action", metavar="ACTION")
    f = acts.add_parser("fetch", help="download the mediapipe wheel from PyPI and extract the BlazePose models")
    f.add_argument("--wheel", help="extract from this local mediapipe==0.10.21 wheel instead of downloading")
    f.add_argument("--force", action="store_true", help="extract again even if the files verify")
    f.set_defaults(func=_fetch)


def _list(args) -> int:
    from mocap.detect.models import model_status, models_dir

    rows = model_status()
    print(f"model cache: {models_dir()}")
    for r in rows:
        print(f"  {r['name']:<20} {r['state']:<13} {r['path']}")
    if any(r["state"] != "ok" for r in rows):
        print("run `mocap models fetch` (or copy the files from the mediapipe==0.10.21 wheel into the cache)")
        return 1
    return 0


def _fetch(args) -> int:
    from mocap.detect.models import fetch_models

    for key, path in fetch_models(wheel=args.wheel, force=args.force).items():
        print(f"  {key:<20} ok  {path}")
    return 0
