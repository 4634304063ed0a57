"""mocap export: tracks.npz -> BVH / FBX (solved skeletons) and TRC / CSV / C3D (3D joints).

    mocap export tracks.npz --format bvh,fbx --out DIR [--rig mixamo|ue5|unity] [--units cm]

BVH: one file per person (person_<id>.bvh); FBX: one file with one armature per person;
TRC and C3D: one file per person; CSV: one tidy file. DIR/export.json records each person's
skeleton residual, DIR/config.yaml the settings.

examples:
  mocap export out/take01/tracks.npz --format bvh,fbx --rig ue5 --out out/take01/export
  mocap export tracks.npz --format trc,c3d --units mm --out analysis/
"""

from __future__ import annotations

import argparse

from mocap.cli.common import add_config_options, add_export_flags, resolve_config


def register(sub) -> None:
    p = sub.add_parser("export", help="write BVH/FBX animations and TRC/CSV/C3D point files from tracks.npz",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tracks", help="tracks.npz (the reconstruct stage's output)")
    p.add_argument("--out", required=True, help="output folder")
    add_export_flags(p)
    add_config_options(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    import json
    from pathlib import Path

    from mocap.config import write_resolved
    from mocap.export import export_file
    from mocap.io.files import check_output_dir

    config = resolve_config(args)
    out = check_output_dir(args.out)
    e = config.export
    # BVH/FBX read tracks.npz a chunk of frames at a time: memory does not grow with the take
    paths = export_file(args.tracks, out, e.formats, rig=e.rig, units=e.units, rotation_order=e.rotation_order,
                        stem=Path(args.tracks).stem, solve_config=config.skeleton)
    write_resolved(out, config, "export", {"tracks": str(Path(args.tracks).resolve())},
                   {"outputs": [str(p) for p in paths]})
    for path in paths:
        print(f"wrote {path}")
    report = json.loads((out / "export.json").read_text())
    for person, info in report["people"].items():
        res = {k: v for k, v in info["residual_m"].items() if v[1] == v[1]}  # drop NaN (never seen)
        if res:
            worst = max(res, key=lambda k: res[k][1])
            med = sorted(v[0] for v in res.values())[len(res) // 2]
            print(f"{person}: {info['present_frames']} frames, skeleton residual median {1000 * med:.1f} mm, "
                  f"worst {worst} {1000 * res[worst][1]:.1f} mm")
        if info.get("stretch_m"):  # the clavicles sit on the neck point and stretch with it
            ranges = ", ".join(f"{k} {1000 * lo:+.1f}..{1000 * hi:+.1f} mm" for k, (lo, hi) in info["stretch_m"].items()
                               if not k.endswith("_clavicle"))
            print(f"{person}: bones following their chain's length: {ranges}")
    return 0
