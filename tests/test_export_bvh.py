"""BVH export: layout, units, target rigs, round trips through three readers (ours, bvhio, Blender).

Ground truth is our own forward kinematics of the exported animation (world, Z up, metres).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import CMU, require_module
from mocap.errors import MocapError
from mocap.export import export_tracks
from mocap.export.axes import points_yup_to_world, rotmat_world_to_yup
from mocap.export.bvh import format_bvh, write_bvh
from mocap.export.rigs import retarget
from mocap.skeleton.animation import SkeletonAnimation, forward_kinematics
from mocap.skeleton.joints import BODY_25B
from mocap.skeleton.solve import solve_skeleton
from mocap.io.tracks import Tracks
from importers.synthetic_skeleton import between_keys_error_deg, gimbal_sweep_animation, turn_per_frame_deg
from test_skeleton_solve import synthetic_poses

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def solved():
    _, _, _, points, names = synthetic_poses(np.random.default_rng(3), T=25)
    return solve_skeleton(points, names, 60.0, name="person_1").animation


@pytest.fixture(scope="module")
def cmu_clip():
    from mocap.io.bvh import read_bvh
    from mocap.synthetic.cmu import cmu_to_canonical

    motion = read_bvh(CMU / "131_03.bvh")
    points, names = cmu_to_canonical(motion, BODY_25B)
    return points[200:290], names, motion.fps  # 90 frames of the hop


def test_layout_is_what_blenders_parser_reads(solved):
    lines = format_bvh(solved).splitlines()
    J = len(solved.joint_names)
    assert lines[0] == "HIERARCHY" and lines[1] == "ROOT pelvis" and lines[2] == "{"
    assert lines[3].split() == ["OFFSET", "0.000000", "0.000000", "0.000000"]
    assert lines[4].split() == ["CHANNELS", "6", "Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"]
    joints = [i for i, ln in enumerate(lines) if ln.strip().startswith(("ROOT", "JOINT"))]
    assert len(joints) == J
    for i in joints:  # name, '{', OFFSET, CHANNELS on consecutive lines
        assert lines[i + 1].strip() == "{" and lines[i + 2].split()[0] == "OFFSET" and lines[i + 3].split()[0] == "CHANNELS"
    ends = [i for i, ln in enumerate(lines) if ln.strip() == "End Site"]
    leaves = sum(1 for p in range(J) if p not in solved.parents)
    assert len(ends) == leaves
    for i in ends:
        assert lines[i + 1].strip() == "{" and lines[i + 2].split()[0] == "OFFSET" and lines[i + 3].strip() == "}"
    m = lines.index("MOTION")
    assert lines[m + 1] == f"Frames: {solved.num_frames}" and lines[m + 2].split()[:2] == ["Frame", "Time:"]
    rows = lines[m + 3:]
    assert len(rows) == solved.num_frames and all(len(r.split()) == 3 + 3 * J for r in rows)
    assert sum(ln.strip() == "{" for ln in lines) == sum(ln.strip() == "}" for ln in lines) == J + leaves


def test_round_trip_through_our_reader(solved, tmp_path):
    from mocap.io.bvh import bvh_forward_kinematics, read_bvh

    path = write_bvh(solved, tmp_path / "a.bvh", units="cm")
    motion = read_bvh(path)
    pos, _ = bvh_forward_kinematics(motion)
    fk, _ = forward_kinematics(solved)
    order = [motion.joint_names.index(n) for n in solved.joint_names]
    err = np.abs(points_yup_to_world(pos[:, order], "cm") - fk).max()
    assert motion.fps == pytest.approx(60.0, rel=1e-7)
    assert err < 1e-6


def test_round_trip_through_bvhio(solved, tmp_path):
    bvhio = require_module("bvhio")
    mixamo = retarget(solved, "mixamo")
    path = write_bvh(mixamo, tmp_path / "a.bvh", units="m")
    root = bvhio.readAsHierarchy(str(path))
    joints = {j.Name: j for j, _, _ in root.layout()}
    names = mixamo.joint_names
    fk, _ = forward_kinematics(mixamo)
    err = 0.0
    for t in range(mixamo.num_frames):
        root.loadPose(t)
        got = np.array([np.array(joints[n].PositionWorld) for n in names])
        err = max(err, np.abs(points_yup_to_world(got, "m") - fk[t]).max())
    assert err < 1e-5  # bvhio computes in float32


def test_units_scale_offsets_and_root(solved):
    def numbers(text):
        lines = text.splitlines()
        offs = np.array([[float(v) for v in ln.split()[1:]] for ln in lines if ln.strip().startswith("OFFSET")])
        m = lines.index("MOTION")
        return offs, np.array([[float(v) for v in ln.split()] for ln in lines[m + 3:]])

    off_cm, mot_cm = numbers(format_bvh(solved, units="cm"))
    off_m, mot_m = numbers(format_bvh(solved, units="m"))
    np.testing.assert_allclose(off_cm, 100 * off_m, atol=1e-4)
    np.testing.assert_allclose(mot_cm[:, :3], 100 * mot_m[:, :3], atol=1e-4)
    np.testing.assert_allclose(mot_cm[:, 3:], mot_m[:, 3:], atol=1e-6)
    # Y up: the T-pose head is above the pelvis along +Y, the left hip at +X.
    names = solved.joint_names
    yup = np.array([[float(v) for v in ln.split()[1:]] for ln in format_bvh(solved).splitlines()
                    if ln.strip().startswith("OFFSET")])
    assert yup[1, 0] > 0 and abs(yup[1, 1]) < 1e-6  # left_hip
    assert names[1] == "left_hip"


@pytest.mark.parametrize("rig", ["mixamo", "ue5", "unity"])
def test_rigs_name_every_joint_uniquely(solved, rig):
    names = retarget(solved, rig).joint_names
    assert len(set(names)) == len(names) and names != solved.joint_names
    text = format_bvh(retarget(solved, rig))
    expected = {"mixamo": ("mixamorig:Hips", "mixamorig:LeftUpLeg", "mixamorig:LeftForeArm", "mixamorig:Spine2"),
                "ue5": ("pelvis", "thigh_l", "lowerarm_r", "spine_05"),
                "unity": ("Hips", "LeftUpperLeg", "RightLowerArm", "UpperChest")}[rig]
    for name in expected:
        assert f"JOINT {name}\n" in text or f"ROOT {name}\n" in text


def test_unknown_units_are_rejected(solved):
    with pytest.raises(ValueError, match="units: unknown value 'inch'"):
        format_bvh(solved, units="inch")


def test_non_finite_animation_never_leaves_a_file(solved, tmp_path):
    root = solved.root_positions.copy()
    root[3] = np.nan
    bad = SkeletonAnimation(solved.joint_names, solved.parents, solved.offsets, solved.rotations, root, 60.0, "bad")
    with pytest.raises(ValueError, match="non-finite"):
        write_bvh(bad, tmp_path / "bad.bvh")
    assert list(tmp_path.iterdir()) == []


def rotation_channels(motion) -> dict[str, np.ndarray]:
    """Each joint's rotation channels ``(T, 3)`` degrees, in file order, as read from the file."""
    starts = motion.channel_starts
    return {name: motion.motion[:, [starts[j] + k for k, c in enumerate(chans) if c.endswith("rotation")]]
            for j, (name, chans) in enumerate(zip(motion.joint_names, motion.channels))}


def test_rotation_channels_follow_the_motion_through_gimbal_lock(tmp_path):
    """ZXY is singular where X is ±90°, and the sweep's left hip pitches through it. Read from the
    file, every channel steps no more per frame than its joint turns (measured: 2.7° steps,
    3.6°/frame turns; a per-frame decomposition steps 180°), and the left hip's channels are the
    angles the motion was made of."""
    from mocap.io.bvh import read_bvh

    anim, angles = gimbal_sweep_animation()
    channels = rotation_channels(read_bvh(write_bvh(anim, tmp_path / "sweep.bvh")))
    turn = turn_per_frame_deg(anim.rotations)  # (T - 1, J)
    for j, name in enumerate(anim.joint_names):
        step = np.abs(np.diff(channels[name], axis=0)).max(axis=-1)
        worst = int(np.argmax(step - turn[:, j]))
        # 25 % covers the Euler-rate / turn-rate ratio of this motion; 1e-5° the 6 written decimals.
        assert (step <= 1.25 * turn[:, j] + 1e-5).all(), (name, worst, step[worst], turn[worst, j])
    np.testing.assert_allclose(channels["left_hip"], angles["bvh_left_hip"], atol=1e-5)
    # Between keys: measured 0.02° (0.83° for a per-frame decomposition, unwrapped).
    stacked = np.stack([channels[n] for n in anim.joint_names], axis=1)
    assert between_keys_error_deg(stacked, rotmat_world_to_yup(anim.rotations), "ZXY").max() < 0.1


def _two_people(points, names, fps):
    second = points + np.array([1.5, 0.3, 0.0])
    second[:15] = np.nan  # enters late
    return Tracks(np.stack([points, second], axis=1), names, [3, 8], fps, np.arange(len(points)))


def test_two_people_export_two_bvh_and_one_fbx(cmu_clip, tmp_path):
    tracks = _two_people(*cmu_clip)
    paths = export_tracks(tracks, tmp_path, "bvh,fbx", rig="mixamo")
    names = sorted(p.name for p in paths)
    assert names == ["export.json", "person_3.bvh", "person_8.bvh", "tracks.fbx"]
    report = json.loads((tmp_path / "export.json").read_text())
    assert set(report["people"]) == {"person_3", "person_8"}
    assert report["people"]["person_8"]["present_frames"] == len(cmu_clip[0]) - 15


def test_bad_people_are_skipped_and_all_bad_is_an_error(cmu_clip, tmp_path, caplog):
    points, names, fps = cmu_clip
    tracks = _two_people(points, names, fps)
    pos = tracks.positions.copy()
    pos[:20, 1] = pos[23:, 1] = np.nan  # person 8 in 3 frames only
    ok = export_tracks(Tracks(pos, names, [3, 8], fps, tracks.frame_indices), tmp_path / "a", "bvh")
    assert sorted(p.name for p in ok) == ["export.json", "person_3.bvh"]
    assert "person_8: pelvis and hips seen in only 3 of" in caplog.text
    pos[:, 0] = np.nan
    with pytest.raises(MocapError, match="no person could be solved"):
        export_tracks(Tracks(pos, names, [3, 8], fps, tracks.frame_indices), tmp_path / "b", "bvh")
    assert not (tmp_path / "b").exists() or list((tmp_path / "b").iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("rig", ["canonical", "mixamo"])
def test_blender_import_matches_our_positions(cmu_clip, tmp_path, rig, blender):
    points, names, fps = cmu_clip
    anim = retarget(solve_skeleton(points, names, fps, name="person_1").animation, rig)
    path = write_bvh(anim, tmp_path / "clip.bvh", units="cm")
    out = tmp_path / "blender.json"
    subprocess.run([blender, "-b", "--factory-startup", "--python", str(HERE / "importers" / "blender_bvh_positions.py"),
                    "--", str(path), str(out), "0.01"], check=True, capture_output=True, timeout=300)
    got = json.loads(out.read_text())
    positions = np.array(got["positions"])
    order = [got["names"].index(n) for n in anim.joint_names]
    fk, _ = forward_kinematics(anim)
    assert positions.shape == (anim.num_frames, len(anim.joint_names), 3)
    err = np.linalg.norm(positions[:, order] - fk, axis=-1)
    print(f"Blender BVH import ({rig}, {anim.num_frames} frames): max {err.max() * 1e3:.4f} mm, mean {err.mean() * 1e3:.4f} mm")
    assert err.max() <= 1e-6  # README: within 0.001 mm; measured 0.0008 mm (Blender computes in float32)
    assert got["fps"] == pytest.approx(fps, rel=1e-3)
