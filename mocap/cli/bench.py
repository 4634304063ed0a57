"""``mocap bench NAME``: accuracy and speed figures (never part of the test suite).

Each benchmark is a module ``mocap/bench/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> dict`` (a JSON-able result; it prints its own table).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path


def available() -> list[str]:
    import mocap.bench

    return sorted(m.name for m in pkgutil.iter_modules(mocap.bench.__path__) if not m.name.startswith("_"))


def register(sub) -> None:
    p = sub.add_parser("bench", help="run benchmarks: " + ", ".join(available() + ["all"]))
    benches = p.add_subparsers(dest="bench_name", metavar="NAME")
    for name in available():
        module = importlib.import_module(f"mocap.bench.{name}")
        bp = benches.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else None)
        module.add_arguments(bp)
        bp.add_argument("--json", type=Path, help="also write the results to this JSON file")
        bp.set_defaults(func=_run_one, bench_module=module)
    allp = benches.add_parser("all", help="run every benchmark with its defaults")
    allp.add_argument("--json", type=Path, help="write all results to this JSON file")
    allp.set_defaults(func=_run_all)


def _run_one(args) -> int:
    result = args.bench_module.run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float))
    return 0


def _run_all(args) -> int:
    import argparse

    results = {}
    for name in available():
        module = importlib.import_module(f"mocap.bench.{name}")
        p = argparse.ArgumentParser()
        module.add_arguments(p)
        print(f"\n=== mocap bench {name} ===")
        results[name] = module.run(p.parse_args([]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0
