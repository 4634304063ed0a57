"""Draw an armature as Blender imported it (the JSON of ``blender_fbx_positions.py``) to a PNG.

    python tools/draw_armature.py IMPORTED.json OUT.png [--frame K] [--title TEXT]

Left: the rest armature front on, each bone from Blender's head to its tail (what Blender's
viewport draws), heads as dots. Right: frame ``K`` of the animation, every bone head joined to
its parent's. World axes of Blender (Z up, metres); the figure shows what was imported, nothing
is recomputed.
"""

from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("imported")
    parser.add_argument("out")
    parser.add_argument("--frame", type=int, default=0)
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    data = json.loads(open(args.imported).read())
    names = data["names"]
    heads, tails = np.array(data["rest_heads"]), np.array(data["rest_tails"])
    parents = [names.index(p) if p else -1 for p in data["rest_parents"]]
    posed = np.array(data["positions"])[args.frame]

    fig, (ax_rest, ax_pose) = plt.subplots(1, 2, figsize=(10, 6), subplot_kw={"projection": "3d"})
    for h, t in zip(heads, tails):
        ax_rest.plot(*np.stack([h, t]).T, color="tab:blue", lw=2.5, solid_capstyle="round")
    ax_rest.scatter(*heads.T, color="k", s=8)
    for j, p in enumerate(parents):
        if p >= 0:
            ax_pose.plot(*np.stack([posed[p], posed[j]]).T, color="tab:orange", lw=2.5)
    ax_pose.scatter(*posed.T, color="k", s=8)
    for ax, pts, what in ((ax_rest, np.concatenate([heads, tails]), "rest (bones head to tail)"),
                          (ax_pose, posed, f"frame {args.frame}")):
        centre, half = pts.mean(axis=0), (pts.max(axis=0) - pts.min(axis=0)).max() / 2 + 0.05
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(centre[2] - half, centre[2] + half)
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=10, azim=-70)
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
        ax.set_zlabel("z (m)")
        ax.set_title(what)
    fig.suptitle(args.title or f"Blender 3.4 FBX import: {len(names)} bones")
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
