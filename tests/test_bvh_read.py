"""BVH reader, forward kinematics and the CMU -> canonical mapping."""

import logging

import numpy as np
import pytest

from conftest import CMU, require_module
from mocap.errors import MocapError
from mocap.io.bvh import (
    bvh_end_site_positions,
    bvh_forward_kinematics,
    bvh_local_transforms,
    bvh_root_positions,
    read_bvh,
)
from mocap.skeleton.animation import SkeletonAnimation, forward_kinematics
from mocap.skeleton.joints import CANONICAL_JOINTS
from mocap.synthetic import CMU_UNIT_M, cmu_to_canonical


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


# Root: 6 channels in an unusual order; "arm": 6 channels on a non-root joint (positions replace
# the offset); "hand": 3 rotation channels Y X Z; tabs, blank lines and an End Site.
SMALL_BVH = """HIERARCHY
ROOT root
{
\tOFFSET 0 0 0
\tCHANNELS 6 Zrotation Xposition Yposition Zposition Xrotation Yrotation
\tJOINT arm
\t{
        OFFSET 1.0 2.0 3.0
\t\tCHANNELS 6 Xposition Yposition Zposition Yrotation Zrotation Xrotation
\t\tJOINT hand
\t\t{
\t\t\tOFFSET 0 -2 0
\t\t\tCHANNELS 3 Yrotation Xrotation Zrotation
\t\t\tEnd Site
\t\t\t{
\t\t\t\tOFFSET 0.5 0 0
\t\t\t}
\t\t}
\t}
}

MOTION
Frames: 2
Frame Time: 0.04

10 1 2 3 20 30   4 5 6 40 50 60   70 80 90
-10 0 0 0 0 0    0 0 1 0 0 0   90 0 0

"""


def _small_expected(row):
    d = np.deg2rad
    z0, x0, y0, z0r, x0r, y0r = row[0], row[1], row[2], row[3], row[4], row[5]
    R0 = _rz(d(z0)) @ _rx(d(x0r)) @ _ry(d(y0r))
    p0 = np.array([x0, y0, z0r])
    R1 = _ry(d(row[9])) @ _rz(d(row[10])) @ _rx(d(row[11]))
    p1 = p0 + R0 @ np.array(row[6:9])
    R2 = _ry(d(row[12])) @ _rx(d(row[13])) @ _rz(d(row[14]))
    G1 = R0 @ R1
    p2 = p1 + G1 @ np.array([0, -2.0, 0])
    G2 = G1 @ R2
    end = p2 + G2 @ np.array([0.5, 0, 0])
    return np.stack([p0, p1, p2]), np.stack([R0, G1, G2]), end


@pytest.fixture
def small_bvh(tmp_path):
    path = tmp_path / "small.bvh"
    path.write_text(SMALL_BVH)
    return path


@pytest.fixture(scope="module")
def cmu131():
    return read_bvh(CMU / "131_01.bvh")


def test_read_cmu_structure(cmu131):
    m = cmu131
    assert m.num_joints == 31 and m.num_frames == 994
    assert m.joint_names[0] == "Hips" and m.parents[0] == -1
    assert np.all(m.parents[1:] < np.arange(1, 31))
    assert m.channels[0] == ("Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation")
    assert m.channels[m.joint("LeftElbow")] == ("Zrotation", "Xrotation", "Yrotation")
    assert m.motion.shape == (994, 6 + 30 * 3)
    assert m.fps == pytest.approx(120.0, rel=1e-4)
    assert len(m.end_site_parents) == 7


def test_fk_channel_orders_and_nonroot_positions(small_bvh):
    m = read_bvh(small_bvh)
    pos, rot = bvh_forward_kinematics(m)
    ends = bvh_end_site_positions(m, pos, rot)
    assert pos.shape == (2, 3, 3) and rot.shape == (2, 3, 3, 3) and ends.shape == (2, 1, 3)
    for t in range(2):
        p, g, e = _small_expected(m.motion[t])
        np.testing.assert_allclose(pos[t], p, atol=1e-12)
        np.testing.assert_allclose(rot[t], g, atol=1e-12)
        np.testing.assert_allclose(ends[t, 0], e, atol=1e-12)
    assert m.frame_time == 0.04


def test_local_transforms_reproduce_fk(cmu131):
    rot, trans = bvh_local_transforms(cmu131)
    anim = SkeletonAnimation(cmu131.joint_names, cmu131.parents, cmu131.offsets, rot,
                             bvh_root_positions(cmu131), cmu131.fps)
    pos_ref, glob_ref = forward_kinematics(anim)
    pos, glob = bvh_forward_kinematics(cmu131)
    np.testing.assert_allclose(trans[:, 1:], np.broadcast_to(cmu131.offsets[1:], trans[:, 1:].shape))
    np.testing.assert_allclose(pos, pos_ref, atol=1e-9)
    np.testing.assert_allclose(glob, glob_ref, atol=1e-12)


def test_fk_matches_bvhio(cmu131):
    bvhio = require_module("bvhio")
    root = bvhio.readAsHierarchy(str(CMU / "131_01.bvh"))
    layout = [j for j, _, _ in root.layout()]
    assert [j.Name for j in layout] == list(cmu131.joint_names)
    pos, _ = bvh_forward_kinematics(cmu131)
    worst = 0.0
    for frame in range(0, cmu131.num_frames, 41):
        root.loadPose(frame)
        ref = np.array([list(j.PositionWorld) for j in layout], dtype=np.float64)
        worst = max(worst, np.abs(ref - pos[frame]).max() / np.abs(pos[frame]).max())
    # bvhio computes in float32 (glm): agreement is at its precision.
    assert worst < 1e-6


def test_lenient_extra_frame_line(tmp_path, caplog):
    text = SMALL_BVH.replace("Frames: 2", "Frames: 1")
    path = tmp_path / "extra.bvh"
    path.write_text(text)
    with caplog.at_level(logging.WARNING):
        m = read_bvh(path)
    assert m.num_frames == 2 and "Frames: 1" in caplog.text


def test_lenient_missing_frame_line(tmp_path):
    path = tmp_path / "missing.bvh"
    path.write_text(SMALL_BVH.replace("Frames: 2", "Frames: 3"))
    assert read_bvh(path).num_frames == 2


def test_error_channel_count_names_file_and_line(tmp_path):
    path = tmp_path / "bad.bvh"
    path.write_text(SMALL_BVH.replace("-10 0 0 0 0 0", "-10 0 0 0 0"))
    with pytest.raises(MocapError, match=r"bad\.bvh:27: frame line has 14 values .* 15 channels"):
        read_bvh(path)


def test_error_malformed_hierarchy_names_line(tmp_path):
    path = tmp_path / "bad.bvh"
    path.write_text(SMALL_BVH.replace("\t\t\tCHANNELS 3 Yrotation", "\t\t\tCHANNELS 3 Wrotation"))
    with pytest.raises(MocapError, match=r"bad\.bvh:13: malformed BVH hierarchy: .*'Wrotation'"):
        read_bvh(path)


def test_error_missing_brace(tmp_path):
    path = tmp_path / "bad.bvh"
    path.write_text(SMALL_BVH.replace("\t\t\t}\n\t\t}\n\t}\n}", "\t\t\t}\n\t\t}\n\t}"))
    with pytest.raises(MocapError, match=r"bad\.bvh:\d+: malformed BVH hierarchy"):
        read_bvh(path)


def test_error_truncated_frames(tmp_path):
    path = tmp_path / "bad.bvh"
    path.write_text(SMALL_BVH.replace("Frames: 2", "Frames: 10"))
    with pytest.raises(MocapError, match="Frames: 10.*2 frame lines"):
        read_bvh(path)


def test_error_non_numeric_frame(tmp_path):
    path = tmp_path / "bad.bvh"
    path.write_text(SMALL_BVH.replace("-10 0 0 0 0 0", "-10 0 0 x 0 0"))
    with pytest.raises(MocapError, match=r"bad\.bvh:27: .*non-numeric"):
        read_bvh(path)


# ------------------------------------------------------------------ CMU -> canonical


@pytest.fixture(scope="module")
def canon131(cmu131):
    return cmu_to_canonical(cmu131)


def test_cmu_canonical_shape_and_names(cmu131, canon131):
    pos, names = canon131
    assert names == CANONICAL_JOINTS
    assert pos.shape == (994, len(CANONICAL_JOINTS), 3) and np.isfinite(pos).all()


def test_cmu_standing_height_plausible(canon131):
    pos, names = canon131
    z = pos[..., 2]
    feet = [names.index(n) for n in ("left_heel", "right_heel", "left_foot_index", "right_foot_index")]
    height = z[:, names.index("head_top")] - z[:, feet].min(axis=1)
    assert 1.5 < np.percentile(height, 95) < 1.9
    # Z is up: head above pelvis above ankles in (nearly) every frame of a walk.
    assert np.mean(z[:, names.index("head_top")] > z[:, names.index("pelvis")]) > 0.99
    assert np.mean(z[:, names.index("pelvis")] > z[:, names.index("left_ankle")]) > 0.99


def test_cmu_feet_on_floor(canon131):
    pos, names = canon131
    feet = [names.index(n) for n in ("left_heel", "right_heel", "left_big_toe", "right_big_toe")]
    lowest = pos[:, feet, 2].min(axis=1)
    # The lowest foot keypoint (heel or toe tip, themselves 1-3 cm above the sole) stays near the
    # floor (z = 0) through a walk: median within [-2, 5] cm, 90 % of frames within 7 cm.
    assert -0.02 < np.median(lowest) < 0.05
    assert np.mean(np.abs(lowest) < 0.07) > 0.9


def test_cmu_bone_lengths_constant(canon131):
    pos, names = canon131
    for a, b in (("left_hip", "left_knee"), ("right_knee", "right_ankle"), ("left_shoulder", "left_elbow"),
                 ("left_ear", "right_ear"), ("left_heel", "left_ankle"), ("left_foot_index", "left_big_toe")):
        d = np.linalg.norm(pos[:, names.index(a)] - pos[:, names.index(b)], axis=-1)
        assert d.std() < 1e-9 * d.mean(), (a, b)
    thigh = np.linalg.norm(pos[0, names.index("left_hip")] - pos[0, names.index("left_knee")])
    assert 0.35 < thigh < 0.5  # metres (7.29 units × 5.64 cm)


def test_cmu_world_axes_right_handed(canon131):
    pos, names = canon131
    left = pos[:, names.index("left_shoulder")] - pos[:, names.index("right_shoulder")]
    fwd = pos[:, names.index("nose")] - pos[:, names.index("neck")]
    up = np.broadcast_to([0.0, 0.0, 1.0], left.shape)
    # Facing fwd with up = +Z, a person's left is up × fwd (right-handed world).
    assert np.mean(np.sum(np.cross(up, fwd) * left, axis=-1) > 0) > 0.99


def test_cmu_scale_and_axis_change(cmu131):
    pos, names = cmu_to_canonical(cmu131, ("left_hip",))
    ref, _ = bvh_forward_kinematics(cmu131)
    x, y, z = (ref[:, cmu131.joint("LeftHip")] * CMU_UNIT_M).T
    np.testing.assert_allclose(pos[:, 0], np.stack([x, -z, y], axis=-1), atol=1e-12)


def test_cmu_other_dialect():
    pos, names = cmu_to_canonical(read_bvh(CMU / "01_01.bvh"), ("left_ankle", "left_knee", "head_top"))
    shin = np.linalg.norm(pos[:, 0] - pos[:, 1], axis=-1)
    assert 0.35 < shin.mean() < 0.45 and np.isfinite(pos).all()


def test_cmu_rejects_other_skeleton(small_bvh):
    with pytest.raises(MocapError, match="not a CMU skeleton"):
        cmu_to_canonical(read_bvh(small_bvh))


def test_bvh_to_animation_world_frame(cmu131):
    from mocap.export.axes import YUP_FROM_WORLD
    from mocap.io.bvh import bvh_to_animation

    anim = bvh_to_animation(cmu131, CMU_UNIT_M, YUP_FROM_WORLD.T)
    pos, _ = forward_kinematics(anim)
    ref, _ = bvh_forward_kinematics(cmu131)
    np.testing.assert_allclose(pos, CMU_UNIT_M * ref @ YUP_FROM_WORLD, atol=1e-9)
    canon, names = cmu_to_canonical(cmu131, ("left_knee",))
    np.testing.assert_allclose(pos[:, cmu131.joint("LeftKnee")], canon[:, 0], atol=1e-9)


def test_bvh_to_animation_rejects_nonroot_positions(small_bvh):
    from mocap.io.bvh import bvh_to_animation

    with pytest.raises(ValueError, match=r"\['arm'\] have position channels"):
        bvh_to_animation(read_bvh(small_bvh))
