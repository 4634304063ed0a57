"""Export: real CMU motion through mocap export (every rig), joints and curves read back.

Every shared CMU clip (``motion/cmu`` and ``motion/cmu_more``: 42 clips, 11 subjects plus 01/131,
walking, running, jumps, dance, cartwheel-like turns, basketball, bending over) as canonical joints
(:func:`mocap.synthetic.cmu.cmu_to_canonical`, all of them), skipping the frames the data's README
names (the converter's added T-pose frame 0, 07_12's zero frame 1, 03_02's frozen start), exported with
:func:`mocap.export.export_tracks` (BVH and FBX) for each ``--rigs``. Per clip and rig:

- ``file mm``: the largest distance, over every frame, between a joint of the written **BVH read
  back** (:mod:`mocap.io.bvh`) and the input point it stands on (every target bone that sits on
  one of our joints; ours: every joint);
- ``rigid mm``: the same for the solve with ``stretch`` off (every bone its rest length);
- ``stretch mm``: how far the stretching bones' length moves from their rest length;
- ``calm BVH/FBX``: the largest step (degrees) of any BVH channel / FBX rotation curve between two
  frames where the joint turns less than 10° (the issue's bar: 30°), and the largest step overall
  with the fastest turn.

``--importers``: also import every FBX into Blender 3.4 (default settings, one run for all files)
and assimp and report the largest distance from the input there (needs ``blender`` and ``assimp``
on the PATH and the repository's ``tests/importers`` scripts).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mocap.export import export_tracks
from mocap.export.axes import points_yup_to_world
from mocap.export.fbx import animation_channels
from mocap.export.rigs import RIGS, retarget, retarget_sources
from mocap.io.bvh import bvh_forward_kinematics, read_bvh
from mocap.io.tracks import Tracks
from mocap.paths import REPO_ROOT, shared_data_dir
from mocap.skeleton.animation import forward_kinematics
from mocap.skeleton.joints import CANONICAL_JOINTS
from mocap.skeleton.solve import SolveConfig, solve_skeleton
from mocap.synthetic.cmu import cmu_dialect, cmu_to_canonical

#: First frame of real motion where the data's README names one; otherwise 1 for the MotionBuilder-
#: friendly releases (their frame 0 is a T pose the converter added), else 0.
FIRST_FRAME = {"07_12": 2, "03_02": 25}
CALM_DEG = 10.0  # "where the motion turns less than 10 degrees" between two frames


def add_arguments(parser) -> None:
    parser.add_argument("--clips", default="", help="comma-separated clip stems (default: all 42)")
    parser.add_argument("--rigs", default=",".join(RIGS), help="comma-separated rigs")
    parser.add_argument("--importers", action="store_true",
                        help="also import every FBX into Blender and assimp (slow: minutes)")
    parser.add_argument("--keep", type=Path, help="keep the exported files in this folder")


def cmu_clips(stems: str = "") -> list[Path]:
    """The shared CMU BVH files (``motion/cmu``, ``motion/cmu_more``), optionally only ``stems``."""
    motion = shared_data_dir() / "motion"
    files = sorted(motion.glob("cmu/*.bvh")) + sorted(motion.glob("cmu_more/*.bvh"))
    wanted = [s for s in stems.split(",") if s]
    if wanted:
        files = [f for f in files if f.stem in wanted]
        missing = set(wanted) - {f.stem for f in files}
        if missing:
            raise SystemExit(f"bench export: no clip {', '.join(sorted(missing))} under {motion}/cmu*/")
    if not files:
        raise SystemExit(f"bench export: no CMU clips under {motion} (see ../shared/data/README.md)")
    return files


def clip_points(path: Path) -> tuple[np.ndarray, tuple[str, ...], float]:
    """Canonical joints ``(T, J, 3)`` world metres of one clip from its first frame of real motion."""
    motion = read_bvh(path)
    first = FIRST_FRAME.get(path.stem, 1 if cmu_dialect(motion) in ("mb", "cgspeed") else 0)
    points, names = cmu_to_canonical(motion, CANONICAL_JOINTS)
    return points[first:], names, float(round(motion.fps))


def turn_deg(rotations: np.ndarray) -> np.ndarray:
    """Angle (degrees) each joint turns between consecutive frames, ``(T - 1, J)``."""
    step = np.swapaxes(rotations[:-1], -1, -2) @ rotations[1:]
    return np.degrees(np.arccos(np.clip((np.trace(step, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)))


def curve_steps(curves_deg: np.ndarray, turn: np.ndarray) -> tuple[float, float]:
    """(largest step where the joint turns < :data:`CALM_DEG`, largest step) of ``(T, J, 3)`` curves."""
    step = np.abs(np.diff(curves_deg, axis=0)).max(axis=-1)
    calm = step[turn < CALM_DEG]
    return float(calm.max()) if calm.size else 0.0, float(step.max())


def _bvh_rotation_curves(path: Path, names) -> np.ndarray:
    """Rotation channels ``(T, J, 3)`` degrees of joints ``names`` of a BVH file, as read back."""
    motion = read_bvh(path)
    starts = motion.channel_starts
    cols = {name: [starts[j] + k for k, c in enumerate(chans) if c.endswith("rotation")]
            for j, (name, chans) in enumerate(zip(motion.joint_names, motion.channels))}
    return np.stack([motion.motion[:, cols[n]] for n in names], axis=1)


def _input_errors(positions: np.ndarray, names, sources: dict[str, str], inputs: dict[str, np.ndarray]) -> tuple[float, str]:
    """Largest distance (m) over frames between each named bone in ``positions (T, B, 3)`` and the
    input point of the joint it stands on, and the bone it occurs at."""
    errs = {bone: float(np.nanmax(np.linalg.norm(positions[:, list(names).index(bone)] - inputs[joint], axis=-1)))
            for bone, joint in sources.items()}
    worst = max(errs, key=errs.get)
    return errs[worst], worst


def _rig_figures(anim, rig: str, folder: Path, inputs: dict[str, np.ndarray]) -> dict:
    """Read the rig's BVH back, compare with the input; curve steps of the BVH and FBX."""
    target, t_posed = retarget(anim, rig), retarget(anim, rig, t_pose=True)  # FBX, BVH
    sources = {n: n for n in anim.joint_names} if rig == "canonical" else retarget_sources(rig, anim.joint_names)
    motion = read_bvh(folder / f"{anim.name}.bvh")
    pos = points_yup_to_world(bvh_forward_kinematics(motion)[0], "cm")
    file_err, worst = _input_errors(pos, motion.joint_names, sources, inputs)
    turn = turn_deg(t_posed.rotations)
    bvh_calm, bvh_max = curve_steps(_bvh_rotation_curves(folder / f"{anim.name}.bvh", t_posed.joint_names), turn)
    turn = turn_deg(target.rotations)
    fbx_calm, fbx_max = curve_steps(animation_channels(target)["rotation_deg"], turn)
    return {"file_mm": 1e3 * file_err, "worst": worst, "sources": sources, "bvh_calm_deg": bvh_calm, "bvh_max_deg": bvh_max,
            "fbx_calm_deg": fbx_calm, "fbx_max_deg": fbx_max, "fastest_turn_deg": float(turn.max()),
            "stretching": [n for n, s in zip(target.joint_names, target.stretching()) if s]}


def measure_clip(path: Path, rigs: list[str], out: Path) -> dict:
    """Export one clip for every rig into ``out/<rig>`` and measure it (see the module doc)."""
    points, names, fps = clip_points(path)
    tracks = Tracks(points[:, None], names, [1], fps, np.arange(len(points)))
    t0 = time.perf_counter()
    for rig in rigs:
        export_tracks(tracks, out / rig, "bvh,fbx", rig=rig)
    seconds = (time.perf_counter() - t0) / len(rigs)
    fit = solve_skeleton(points, names, fps, name="person_1")
    skel = fit.skeleton
    at = skel.points(points)
    inputs = {s.name: at[:, skel.point_index(s.at)] for s in skel.joints}
    rigid = solve_skeleton(points, names, fps, name="person_1", config=SolveConfig(stretch=False)).animation
    rigid_fk = forward_kinematics(rigid)[0]
    anim = fit.animation
    stretch = np.linalg.norm(anim.local_translations(), axis=-1) - np.linalg.norm(anim.offsets, axis=-1)
    moving = anim.stretching()
    return {"clip": path.stem, "frames": len(points), "export_s": seconds,
            "rigid_mm": 1e3 * _input_errors(rigid_fk, anim.joint_names, {n: n for n in anim.joint_names}, inputs)[0],
            "stretch_mm": 1e3 * float(np.abs(stretch[:, moving]).max()) if moving.any() else 0.0,
            "rigs": {rig: _rig_figures(anim, rig, out / rig, inputs) for rig in rigs}, "inputs": inputs}


def importer_errors(blender: str, assimp: str, results: list[dict], out: Path) -> None:
    """Import every clip's FBX (each rig) into Blender (one run) and assimp; adds ``blender_mm`` and
    ``assimp_mm`` (largest distance from the input over every frame and bone on our joints) per rig."""
    scripts = REPO_ROOT / "tests" / "importers"
    jobs = [(r, rig, out / r["clip"] / rig / "tracks.fbx") for r in results for rig in r["rigs"]]
    args = [str(a) for _, rig, fbx in jobs for a in (fbx, fbx.with_suffix(".blender.json"))]
    subprocess.run([blender, "-b", "--factory-startup", "--python", str(scripts / "blender_fbx_positions.py"), "--", *args],
                   check=True, capture_output=True)
    sys.path.insert(0, str(scripts))  # the repository's own importer helpers (tests/importers)
    from assimp_positions import assimp_positions

    for r, rig, fbx in jobs:
        names = r["rigs"][rig]["sources"]
        got = json.loads(fbx.with_suffix(".blender.json").read_text())
        b_names = [n.split("/", 1)[1] for n in got["names"]]
        r["rigs"][rig]["blender_mm"] = 1e3 * _input_errors(np.array(got["positions"]), b_names, names, r["inputs"])[0]
        a_names, a_pos = assimp_positions(assimp, fbx, fbx.parent)
        a_pos = points_yup_to_world(a_pos, "cm")
        r["rigs"][rig]["assimp_mm"] = 1e3 * _input_errors(a_pos, a_names, names, r["inputs"])[0]


def _print_row(r: dict) -> None:
    rigs = r["rigs"].values()
    worst = max(rigs, key=lambda f: f["file_mm"])
    extra = ""
    if "blender_mm" in worst:
        extra = (f" {max(f['blender_mm'] for f in rigs):8.4f} {max(f['assimp_mm'] for f in rigs):8.4f}")
    print(f"{r['clip']:>7} {r['frames']:6d} {r['rigid_mm']:8.1f} {r['stretch_mm']:8.1f} {worst['file_mm']:8.4f}"
          f"{extra} {max(f['bvh_calm_deg'] for f in rigs):6.1f} {max(f['fbx_calm_deg'] for f in rigs):6.1f}"
          f" {max(f['bvh_max_deg'] for f in rigs):6.1f} {max(f['fbx_max_deg'] for f in rigs):6.1f}"
          f" {max(f['fastest_turn_deg'] for f in rigs):6.1f} {r['export_s']:6.2f}", flush=True)


def run(args) -> dict:
    import logging

    logging.getLogger("mocap.skeleton.solve").setLevel(logging.WARNING)  # one line per clip, not per rig
    rigs = [r for r in args.rigs.split(",") if r]
    unknown = [r for r in rigs if r not in RIGS]
    if unknown:
        raise SystemExit(f"bench export: unknown rig {', '.join(unknown)}; choose from {', '.join(RIGS)}")
    tools = {t: shutil.which(t) for t in ("blender", "assimp")} if args.importers else {}
    if args.importers and not all(tools.values()):
        raise SystemExit("bench export --importers: needs blender and assimp on the PATH (tools/install_sysdeps.sh)")
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="mocap_bench_export_")
    out = Path(args.keep or tmp.name)
    print("clip     frames rigid_mm stretch   file_mm" + ("  blender   assimp" if args.importers else "")
          + "  calmB  calmF  maxB   maxF   turn  s/rig")
    results = []
    for path in cmu_clips(args.clips):
        results.append(measure_clip(path, rigs, out / path.stem))
        if not args.importers:
            _print_row(results[-1])
    if args.importers:
        importer_errors(tools["blender"], tools["assimp"], results, out)
        for r in results:
            _print_row(r)
    summary = _summary(results)
    print("all clips:", json.dumps(summary))
    for r in results:
        r.pop("inputs")
        for f in r["rigs"].values():
            f.pop("sources")
    if tmp is not None:
        tmp.cleanup()
    return {"summary": summary, "clips": results}


def _summary(results: list[dict]) -> dict:
    figures = [f for r in results for f in r["rigs"].values()]
    out = {"clips": len(results), "frames": sum(r["frames"] for r in results),
           "file_mm": max(f["file_mm"] for f in figures), "rigid_mm": max(r["rigid_mm"] for r in results),
           "stretch_mm": max(r["stretch_mm"] for r in results),
           "bvh_calm_deg": max(f["bvh_calm_deg"] for f in figures), "fbx_calm_deg": max(f["fbx_calm_deg"] for f in figures),
           "bvh_max_deg": max(f["bvh_max_deg"] for f in figures), "fbx_max_deg": max(f["fbx_max_deg"] for f in figures)}
    for key in ("blender_mm", "assimp_mm"):
        if key in figures[0]:
            out[key] = max(f[key] for f in figures)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}
