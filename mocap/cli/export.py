"""``mocap export``: tracks.npz -> BVH / FBX (solved skeletons) and TRC / CSV / C3D (3D joints).

    mocap export tracks.npz --format bvh,fbx --out DIR [--preset mixamo] [--units cm]

BVH: one file per person (``person_<id>.bvh``); FBX: one file with one armature per person;
TRC and C3D: one file per person; CSV: one tidy file. ``DIR/export.json`` records the options
and each person's skeleton residual.
"""

from __future__ import annotations

import argparse


def register(sub) -> None:
    from mocap.export import FORMATS
    from mocap.export.bvh import ROTATION_ORDERS
    from mocap.export.presets import PRESETS

    p = sub.add_parser("export", help="write BVH/FBX animations and TRC/CSV/C3D point files from tracks.npz",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tracks", help="tracks.npz (the reconstruct stage's output)")
    p.add_argument("--format", default="bvh", help=f"comma-separated, any of {', '.join(FORMATS)} (default bvh)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--preset", default="canonical", choices=list(PRESETS), help="joint names for BVH/FBX")
    p.add_argument("--units", default=None, choices=["m", "cm", "mm"],
                   help="length unit (default: cm for BVH/FBX, m for TRC/CSV, mm for C3D)")
    p.add_argument("--rotation-order", default="ZXY", choices=list(ROTATION_ORDERS), help="BVH rotation order")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import json
    from pathlib import Path

    from mocap.export import export_tracks
    from mocap.io.tracks import load_tracks

    tracks = load_tracks(args.tracks)
    paths = export_tracks(tracks, args.out, args.format, preset=args.preset, units=args.units,
                          rotation_order=args.rotation_order, stem=Path(args.tracks).stem)
    for path in paths:
        print(f"wrote {path}")
    report = json.loads((Path(args.out) / "export.json").read_text())
    for person, info in report["people"].items():
        res = {k: v for k, v in info["residual_m"].items() if v[1] == v[1]}  # drop NaN (never seen)
        if res:
            worst = max(res, key=lambda k: res[k][1])
            med = sorted(v[0] for v in res.values())[len(res) // 2]
            print(f"{person}: {info['present_frames']} frames, skeleton residual median {1000 * med:.1f} mm, "
                  f"worst {worst} {1000 * res[worst][1]:.1f} mm")
    return 0
