"""Refit :data:`mocap.track.one_view.GAP_MOTION`: per joint group, the share ``β`` of its parent
joint's acceleration a joint follows and the RMS of the rest (least squares), and the growth of
that rest with the limb's speed (:func:`mocap.track.one_view.activity`; maximum likelihood over
windows as long as a 0.5 s gap and its held ends), on real motion capture played at 30 fps (every
4th frame of the 120 fps CMU clips, each of the 4 phases).

    .venv/bin/python tools/fit_gap_motion.py [FOLDER]   # default ../shared/data/motion/cmu_more

The shipped table came from ``motion/cmu_more``; ``mocap bench track`` plays ``motion/cmu``.
"""

import sys
from pathlib import Path

import numpy as np

from mocap.io.bvh import read_bvh
from mocap.skeleton.joints import CANONICAL_JOINTS
from mocap.synthetic.cmu import cmu_to_canonical
from mocap.synthetic.motion import first_motion_frame
from mocap.track.filter_people import BONES
from mocap.track.one_view import GAP_MOTION, activity

FPS, SOURCE_FPS = 30, 120
#: Window (a 15-frame gap and two held frames either side) and the step between windows, frames.
WINDOW, STEP = 19, 5
PARENT = np.array([CANONICAL_JOINTS.index(BONES[j]) if BONES.get(j) in CANONICAL_JOINTS else -1
                   for j in CANONICAL_JOINTS])


def clips(folder: Path):
    """Each clip at 30 fps, once per phase: ``(T, J, 3)`` canonical joints, m."""
    step = SOURCE_FPS // FPS
    for path in sorted(folder.glob("*.bvh")):
        positions, _ = cmu_to_canonical(read_bvh(path))
        positions = positions[first_motion_frame(positions):]  # its reference pose dropped
        for phase in range(step):
            yield positions[phase::step]


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data/motion/cmu_more"
    if not any(folder.glob("*.bvh")):
        raise SystemExit(f"{folder}: no .bvh files (give the folder of CMU clips)")
    groups = {j: j.split("_", 1)[1] for j in BONES if j in CANONICAL_JOINTS and j.split("_", 1)[1] in GAP_MOTION}
    pairs: dict[str, list] = {g: [] for g in GAP_MOTION}
    for p in clips(folder):
        acc = (p[2:] - 2 * p[1:-1] + p[:-2]) * FPS * FPS
        for joint, group in groups.items():
            i = CANONICAL_JOINTS.index(joint)
            pairs[group].append((acc[:, i], acc[:, PARENT[i]], p, i))
    print(f"{len(list(folder.glob('*.bvh')))} clips from {folder}")
    for group, got in pairs.items():
        if not got:
            print(f"{group:>10}: no data")
            continue
        own, parent = (np.concatenate([g[k].ravel() for g in got]) for k in (0, 1))
        beta = float(own @ parent / (parent @ parent))
        rms = float(np.sqrt(np.mean((own - beta * parent) ** 2)))
        y2, x2 = window_spread(got, beta)
        c = speed_scale(y2, x2) if len(x2) else float("nan")
        print(f"{group:>10}: beta {beta:.2f}  c {c:5.2f} 1/s  sigma {rms:5.2f} m/s^2   (shipped {GAP_MOTION[group]})")


def window_spread(got: list, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Per window: the mean square per axis of the joint's acceleration less ``beta`` times its parent's,
    and the squared speed of the limb (:func:`mocap.track.one_view.activity`), where known."""
    y2s, x2s = [], []
    for acc_own, acc_parent, p, i in got:
        starts = np.arange(0, len(p) - WINDOW + 1, STEP)
        if not len(starts):
            continue
        t = starts[:, None] + np.arange(WINDOW)
        res = acc_own - beta * acc_parent
        y2 = np.mean(res[t[:, :-2]] ** 2, axis=(1, 2))  # the window's second differences
        x = activity(p, PARENT, np.full(len(starts), i), t, np.ones(t.shape, bool), FPS)
        y2s.append(y2[np.isfinite(x)])
        x2s.append(x[np.isfinite(x)] ** 2)
    return np.concatenate([np.zeros(0)] + y2s), np.concatenate([np.zeros(0)] + x2s)


def speed_scale(y2: np.ndarray, x2: np.ndarray) -> float:
    """``c`` of the maximum-likelihood ``σ² = s0² + c² x²`` (Gaussian windows, ``s0`` fitted too)."""
    from scipy.optimize import minimize

    def nll(q):
        var = np.exp(2 * q[0]) + np.exp(2 * q[1]) * x2
        return float(np.mean(np.log(var) + y2 / var))
    return float(np.exp(minimize(nll, np.zeros(2), method="Nelder-Mead").x[1]))


if __name__ == "__main__":
    main()
