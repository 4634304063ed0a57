"""Refit :data:`mocap.track.one_view.GAP_MOTION`: per joint group, the share ``β`` of its parent
joint's acceleration a joint follows and the RMS of the rest (m/s²), least squares over real
motion capture played at 30 fps (every 4th frame of the 120 fps CMU clips, each of the 4 phases).

    .venv/bin/python tools/fit_gap_motion.py [FOLDER]   # default ../shared/data/motion/cmu_more

The shipped table came from ``motion/cmu_more``; ``mocap bench track`` plays ``motion/cmu``.
"""

import sys
from pathlib import Path

import numpy as np

from mocap.io.bvh import read_bvh
from mocap.skeleton.joints import CANONICAL_JOINTS
from mocap.synthetic.cmu import cmu_to_canonical
from mocap.track.filter_people import BONES
from mocap.track.one_view import GAP_MOTION

FPS, SOURCE_FPS = 30, 120
#: Most CMU clips open on a reference pose (frame 0, 07_12 frames 0-1): leading frames up to the
#: last jump of a joint over this many metres between two of the first few frames are dropped.
JUMP_M = 0.3


def first_frame(positions: np.ndarray, look: int = 5) -> int:
    """The first frame after the clip's reference pose (0 where it has none)."""
    jumps = np.linalg.norm(np.diff(positions[:look], axis=0), axis=-1).max(-1) > JUMP_M
    return int(np.flatnonzero(jumps)[-1]) + 1 if jumps.any() else 0


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data/motion/cmu_more"
    files = sorted(folder.glob("*.bvh"))
    if not files:
        raise SystemExit(f"{folder}: no .bvh files (give the folder of CMU clips)")
    step = SOURCE_FPS // FPS
    pairs: dict[str, list] = {group: [] for group in GAP_MOTION}
    for path in files:
        positions, _ = cmu_to_canonical(read_bvh(path))
        positions = positions[first_frame(positions):]
        for phase in range(step):
            p = positions[phase::step]
            acc = (p[2:] - 2 * p[1:-1] + p[:-2]) * FPS * FPS
            for joint, parent in BONES.items():
                group = joint.split("_", 1)[1]
                if group in pairs and joint in CANONICAL_JOINTS and parent in CANONICAL_JOINTS:
                    i, k = CANONICAL_JOINTS.index(joint), CANONICAL_JOINTS.index(parent)
                    pairs[group].append((acc[:, i].ravel(), acc[:, k].ravel()))
    print(f"{len(files)} clips from {folder}")
    for group, got in pairs.items():
        if not got:
            print(f"{group:>10}: no data")
            continue
        own, parent = (np.concatenate(x) for x in zip(*got))
        beta = float(own @ parent / (parent @ parent))
        rms = float(np.sqrt(np.mean((own - beta * parent) ** 2)))
        print(f"{group:>10}: beta {beta:.2f}  sigma {rms:5.2f} m/s^2   (shipped {GAP_MOTION[group]})")


if __name__ == "__main__":
    main()
