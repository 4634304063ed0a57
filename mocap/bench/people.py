"""Several performers: matching, tracking and smoothing on the synthetic studio (real CMU motion).

For 2-6 performers seen by 4-8 cameras, with every detector error of the synthetic studio on
(noise, occlusion, outlier joints, left/right swaps, missed and spurious people), reports:
tracks found vs performers, identity purity (fraction of a track's frames on its performer),
fragmentation (tracks per performer), mean joint error with and without smoothing, and the time
``reconstruct`` takes (match + triangulate + link + smooth).
"""

from __future__ import annotations

import time

import numpy as np

from mocap.config import ProcessConfig, override
from mocap.pipeline import reconstruct
from mocap.synthetic import SyntheticConfig, make_scene
from mocap.track.linking import body_centres

SCENARIOS = ((2, 4), (4, 6), (6, 8))


def add_arguments(parser) -> None:
    parser.add_argument("--frames", type=int, default=300, help="frames per scene (30 fps)")
    parser.add_argument("--seeds", type=int, default=3, help="scenes per scenario")


def _score(tracks, scene) -> dict:
    J = len(scene.joint_names)
    gt = body_centres(scene.gt_positions, scene.joint_names)  # (T, G, 3)
    ours = body_centres(tracks.positions[..., :J, :], scene.joint_names)  # (T, P, 3)
    G = gt.shape[1]
    owner, purity, errors = [], [], []
    for p in range(ours.shape[1]):
        seen = np.isfinite(ours[:, p]).all(-1)
        if seen.sum() < 0.1 * len(seen):
            continue
        nearest = np.argmin(np.linalg.norm(ours[seen, p][:, None] - gt[seen], axis=-1), axis=-1)
        g = int(np.bincount(nearest, minlength=G).argmax())
        owner.append(g)
        purity.append(float(np.mean(nearest == g)))
        err = np.linalg.norm(tracks.positions[:, p, :J] - scene.gt_positions[:, g], axis=-1)
        errors.append(float(np.nanmean(err)))
    return {"tracks": len(owner), "performers_found": len(set(owner)), "purity_min": min(purity, default=0.0),
            "tracks_per_performer": len(owner) / max(len(set(owner)), 1), "mean_error_mm": 1000 * float(np.mean(errors))}


def run(args) -> dict:
    rows = []
    print(f"{'people':>6} {'cams':>4} {'seed':>4} | {'tracks':>6} {'found':>5} {'purity':>6} {'frag':>5} | "
          f"{'raw mm':>7} {'smooth mm':>9} | {'seconds':>7}")
    for people, cams in SCENARIOS:
        for seed in range(args.seeds):
            scene = make_scene(SyntheticConfig(num_frames=args.frames, num_people=people, num_cameras=cams,
                                               seed=100 + seed, placement_radius=1.5))
            raw = _score(reconstruct(scene.keypoints, scene.rig, override(ProcessConfig(), {"smooth.enabled": False})), scene)
            t0 = time.perf_counter()
            tracks = reconstruct(scene.keypoints, scene.rig)
            seconds = time.perf_counter() - t0
            s = _score(tracks, scene)
            row = dict(people=people, cameras=cams, seed=seed, seconds=seconds, raw_error_mm=raw["mean_error_mm"], **s)
            rows.append(row)
            print(f"{people:>6} {cams:>4} {seed:>4} | {s['tracks']:>6} {s['performers_found']:>5} "
                  f"{s['purity_min']:>6.3f} {s['tracks_per_performer']:>5.2f} | {raw['mean_error_mm']:>7.1f} "
                  f"{s['mean_error_mm']:>9.1f} | {seconds:>7.2f}")
    print("tracks: kept tracks seen in >= 10 % of frames; found: performers owning a track; purity: the "
          "lowest fraction of a track's frames on its performer; frag: tracks per performer (1 = none)")
    return {"frames": args.frames, "rows": rows}
