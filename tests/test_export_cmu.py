"""Real CMU motion through ``mocap export``: every joint on its input point in Blender and assimp.

Three windows of shared CMU clips (all canonical joints, 240 frames at 120 fps) where a skeleton
with fixed bone lengths is farthest from the input (the solve with ``stretch`` off, measured):
05_06's cartwheel-like turn (the pelvis-to-mid-shoulder distance moves 10 cm: neck 72.5 mm off),
01_01's jumps (head 51.3 mm) and 05_17's grand jeté (head 28.7 mm, toes 26.2 mm). Every clip
whole, every rig: ``mocap bench export``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fbx_dump import read_fbx
from importers.assimp_positions import assimp_positions
from mocap.bench.export import clip_points, curve_steps, turn_deg
from mocap.cli import main
from mocap.export.axes import points_yup_to_world
from mocap.export.rigs import RIGS, retarget, retarget_sources
from mocap.io.bvh import read_bvh
from mocap.io.tracks import Tracks, save_tracks
from mocap.skeleton.animation import forward_kinematics
from mocap.skeleton.solve import SolveConfig, solve_skeleton
from test_export_fbx import rotation_curves

HERE = Path(__file__).parent
WINDOWS = {"05_06": (60, 300), "01_01": (930, 1170), "05_17": (700, 940)}
#: Joints whose bone stands for a chain of real joints (trunk, shoulder girdle, neck, foot).
CHAINS = {"neck", "left_clavicle", "right_clavicle", "head", "left_toe", "right_toe"}


@pytest.fixture(scope="module")
def windows(shared):
    out = {}
    for clip, (start, stop) in WINDOWS.items():
        path = next((shared / "motion").glob(f"cmu*/{clip}.bvh"))
        points, names, fps = clip_points(path)
        out[clip] = points[start:stop], names, fps
    return out


def _inputs(fit, points):
    """``{our joint: (T, 3)}`` the input point each joint of the solve sits on."""
    at = fit.skeleton.points(points)
    return {s.name: at[:, fit.skeleton.point_index(s.at)] for s in fit.skeleton.joints}


def _worst(positions, names, sources, inputs):
    """Largest distance (m) over frames between a bone on one of our joints and that joint's input."""
    return max(np.linalg.norm(positions[:, list(names).index(bone)] - inputs[joint], axis=-1).max()
               for bone, joint in sources.items())


def test_stretching_chains_put_every_joint_on_its_input(windows):
    """Fixed lengths leave the neck, head and toes 26-73 mm off in these windows; by default the
    bones that stand for a chain of real joints follow its length (along the bone only, the limbs
    keep theirs) and FK puts every joint on its input (measured: 1e-13 m)."""
    for clip, (points, names, fps) in windows.items():
        fit = solve_skeleton(points, names, fps, name="person_1")
        inputs = _inputs(fit, points)
        anim = fit.animation
        ours = {n: n for n in anim.joint_names}
        rigid = solve_skeleton(points, names, fps, name="person_1", config=SolveConfig(stretch=False)).animation
        rigid_err = _worst(forward_kinematics(rigid)[0], rigid.joint_names, ours, inputs)
        err = _worst(forward_kinematics(anim)[0], anim.joint_names, ours, inputs)
        print(f"{clip}: fixed lengths {rigid_err * 1e3:.1f} mm, default {err * 1e3:.6f} mm")
        assert rigid_err > 0.025 and err < 1e-9, clip
        moving = {n for n, m in zip(anim.joint_names, anim.stretching()) if m}
        assert moving <= CHAINS and {"neck", "head"} <= moving, (clip, moving)
        trans = anim.local_translations()
        along = np.cross(trans, anim.offsets) / np.maximum(np.linalg.norm(anim.offsets, axis=-1, keepdims=True), 1e-12)
        assert np.abs(along).max() < 1e-9, clip  # a stretch moves the joint along its bone only


@pytest.mark.slow
def test_cmu_windows_through_mocap_export_and_real_importers(windows, tmp_path, blender, assimp):
    """Each window through ``mocap export --format fbx,bvh`` for every rig; Blender 3.4 imports the
    FBX files (default settings, one run) and the canonical BVHs, assimp the FBX files. Every bone
    that sits on one of our joints lands within 10 mm of that joint's input on every frame (the
    issue's bar; measured: Blender <= 0.0015 mm, it computes in float32; assimp <= 0.0072 mm, its
    JSON keeps 6 significant digits of centimetres, 0.01 mm a few metres from the origin),
    and no BVH channel or FBX curve steps more than 30° between frames where its joint turns less
    than 10° (measured <= 10°)."""
    fbx_args, bvh_args, jobs = [], [], []
    for clip, (points, names, fps) in windows.items():
        tracks = Tracks(points[:, None], names, [1], fps, np.arange(len(points)))
        save_tracks(tracks, tmp_path / f"{clip}.npz")
        for rig in RIGS:
            out = tmp_path / clip / rig
            assert main(["export", str(tmp_path / f"{clip}.npz"), "--format", "fbx,bvh", "--rig", rig, "--out", str(out)]) == 0
            fbx_args += [str(out / f"{clip}.fbx"), str(out / "fbx.json")]
            if rig == "canonical":
                bvh_args += [str(out / "person_1.bvh"), str(out / "bvh.json")]
            jobs.append((clip, rig, out))
    for script, args in (("blender_fbx_positions.py", fbx_args), ("blender_bvh_positions.py", bvh_args + ["0.01"])):
        subprocess.run([blender, "-b", "--factory-startup", "--python", str(HERE / "importers" / script), "--", *args],
                       check=True, timeout=300, capture_output=True)
    worst = {"blender_fbx": 0.0, "blender_bvh": 0.0, "assimp": 0.0, "bvh_calm": 0.0, "fbx_calm": 0.0}
    for clip, rig, out in jobs:
        points, names, fps = windows[clip]
        fit = solve_skeleton(points, names, fps, name="person_1")
        inputs = _inputs(fit, points)
        target = retarget(fit.animation, rig)
        sources = {n: n for n in target.joint_names} if rig == "canonical" else retarget_sources(rig, fit.animation.joint_names)
        got = json.loads((out / "fbx.json").read_text())
        blender_names = [n.split("/", 1)[1] for n in got["names"]]
        worst["blender_fbx"] = max(worst["blender_fbx"], _worst(np.array(got["positions"]), blender_names, sources, inputs))
        a_names, a_pos = assimp_positions(assimp, out / f"{clip}.fbx", out)
        worst["assimp"] = max(worst["assimp"], _worst(points_yup_to_world(a_pos, "cm"), a_names, sources, inputs))
        if rig == "canonical":
            got = json.loads((out / "bvh.json").read_text())
            worst["blender_bvh"] = max(worst["blender_bvh"], _worst(np.array(got["positions"]), got["names"], sources, inputs))
        turn = turn_deg(target.rotations)
        motion = read_bvh(out / "person_1.bvh")
        starts = motion.channel_starts
        bvh = np.stack([motion.motion[:, [starts[j] + k for k, c in enumerate(motion.channels[j]) if c.endswith("rotation")]]
                        for j in [motion.joint_names.index(n) for n in target.joint_names]], axis=1)
        fbx_curves = rotation_curves(read_fbx(out / f"{clip}.fbx"))
        fbx = np.stack([fbx_curves[n] for n in target.joint_names], axis=1)
        worst["bvh_calm"] = max(worst["bvh_calm"], curve_steps(bvh, turn)[0])
        worst["fbx_calm"] = max(worst["fbx_calm"], curve_steps(fbx, turn)[0])
    print({k: round(v * 1e3, 5) if not k.endswith("calm") else round(v, 2) for k, v in worst.items()},
          "(mm; calm: degrees)")
    assert max(worst["blender_fbx"], worst["blender_bvh"]) < 1e-5 and worst["assimp"] < 5e-5
    assert worst["bvh_calm"] < 30.0 and worst["fbx_calm"] < 30.0
