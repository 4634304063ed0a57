"""Session adaptation checked against ground truth: a synthetic studio whose calibration is off for
one camera (:func:`mocap.synthetic.rig.turned_camera`), adapted without 3D ground truth on one take
(``mocap train algebraic --session``'s :func:`mocap.train.adapt.adapt_to_session`, its defaults) and
scored on another take of the same studio (another CMU clip, another performer): MPJPE against the
truth and the held-out-view px per camera, robust / learned (shipped weights) / adapted.

The real takes have no 3D truth, so the adaptation is judged there by the held-out-view error and
bone-length CV alone; this says whether those move with the 3D error where the truth is known.
``mocap bench adaptation [--degrees 0 0.5 1] [--seeds 3 4 5 6]`` (needs torch; about 5 s per
studio and offset on 2 cores). The real takes' adaptation figures: ``mocap bench triangulate
--only-adaptation``.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

#: The adaptation take (a training clip of the shipped weights) and the scoring take (held out).
ADAPT_CLIP, SCORE_CLIP = "01_01", "131_01"
#: How far camera 1 of the studio's calibration is off, degrees (0: a control, nothing to fix).
DEGREES = (0.0, 0.5, 1.0)
#: Studios (rig seeds: focal lengths and placements differ).
SEEDS = (3, 4, 5, 6)


def add_arguments(parser) -> None:
    parser.add_argument("--degrees", type=float, nargs="+", default=list(DEGREES),
                        help="how far camera 1 of the calibration is turned, degrees (default 0 0.5 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="studios (default 3 4 5 6)")
    parser.add_argument("--adapt", action="append", metavar="KEY=VALUE",
                        help="a setting of the adaptation (mocap.train.adapt.AdaptConfig); repeatable")


def run(args) -> dict:
    rows = synthetic_adaptation(args.degrees, args.seeds, args.adapt or ())
    print_synthetic_adaptation(rows)
    return {"studios": rows}


def studio_case(degrees: float, seed: int, frames: int = 200, spec=()) -> dict:
    """One studio: adapt on the :data:`ADAPT_CLIP` take with the off calibration, score the
    :data:`SCORE_CLIP` take (``frames`` × 3/4 frames) -> MPJPE mm, held-out-view px per camera and
    bone-length CV per method, and the learned camera bias. ``spec``: ``KEY=VALUE`` settings of the
    adaptation (its defaults otherwise)."""
    from mocap.train.adapt import adapt_to_session, parse_adapt
    from mocap.train.data import Scenario, scenario_person
    from mocap.train.session_scores import held_out_view_frames, median_per_person, person_bone_cv
    from mocap.synthetic.rig import turned_camera
    from mocap.triangulation import learned
    from mocap.triangulation.people import TriangulateConfig

    take = Scenario(cameras=4, noise_px=3.0, outlier_rate=0.05, swap_rate=0.0, frames=frames, seed=seed,
                    clip=ADAPT_CLIP)
    scene, adapt_person, _ = scenario_person(take)
    _, person, gt = scenario_person(replace(take, clip=SCORE_CLIP, frames=frames * 3 // 4))
    rig, names = turned_camera(scene.rig, 0, degrees), scene.joint_names
    model = copy.deepcopy(learned.load_weights())
    meta = adapt_to_session(model, rig, adapt_person[:, None], names, parse_adapt(list(spec)))
    out = {"degrees": degrees, "seed": seed, "cameras": list(rig.names), "camera_bias": meta["camera_bias"],
           "frames": [len(adapt_person), len(person)]}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "adapted.pt")
        learned.save_weights(model, path, meta)
        configs = {"robust": TriangulateConfig(), "learned": TriangulateConfig(method="learned"),
                   "adapted": TriangulateConfig(method="learned", learned_weights=path)}
        for name, config in configs.items():
            err, all_points = held_out_view_frames(rig, person[:, None], names, config)  # and all cameras'
            out[name] = {"mpjpe_mm": 1000 * float(np.nanmean(np.linalg.norm(all_points[:, 0] - gt, axis=-1))),
                         "held_out_view_px": median_per_person(err)[0].tolist(),
                         "bone_cv": float(person_bone_cv(all_points, names)[0])}
    return out


def synthetic_adaptation(degrees=DEGREES, seeds=SEEDS, spec=()) -> list[dict]:
    """:func:`studio_case` for every offset and studio."""
    return [studio_case(d, s, spec=spec) for d in degrees for s in seeds]


def print_synthetic_adaptation(rows: list[dict]) -> None:
    adapt_frames, score_frames = rows[0]["frames"]
    print("\nSynthetic studio, camera 1's calibration turned off (degrees; the detections from the true rig): "
          f"adapted on one take ({ADAPT_CLIP}, {adapt_frames} frames, no 3D truth), scored on another ({SCORE_CLIP}, "
          f"{score_frames} frames): MPJPE against the truth; held-out-view median px per camera; bone-length CV")
    print(f"  {'off':>5} {'seed':>4} {'method':8s} {'MPJPE':>7} " + "".join(f"{c:>8s}" for c in rows[0]["cameras"])
          + f"{'mean':>8s}{'bone CV':>9s}   camera bias")
    for r in rows:
        for m in ("robust", "learned", "adapted"):
            px = r[m]["held_out_view_px"]
            bias = (" ".join(f"{v:+.2f}" for v in r["camera_bias"].values()) if m == "adapted" else "")
            print(f"  {r['degrees']:5.1f} {r['seed']:4d} {m:8s} {r[m]['mpjpe_mm']:7.2f} "
                  + "".join(f"{v:8.2f}" for v in px) + f"{np.mean(px):8.2f}{r[m]['bone_cv']:9.4f}   {bias}")
    for d in sorted({r["degrees"] for r in rows}):
        ratio = [r["adapted"]["mpjpe_mm"] / r["learned"]["mpjpe_mm"] for r in rows if r["degrees"] == d]
        print(f"  off by {d:.1f}°: adapted / learned MPJPE {min(ratio):.2f}-{max(ratio):.2f} over {len(ratio)} studios")
