"""FBX export: binary encoding, scene tree, and three real importers (ufbx, Blender, assimp).

Ground truth is our own forward kinematics (world, Z up, metres). Every importer must put every
joint of every frame within 0.001 mm of it (README), as measured: float32 keys and importers;
Blender, which computes in float32, within 0.005 mm on the test animations below (TOL_BLENDER_M).
Bones point at their children (tests/test_export_rigs.py checks it in Blender for every rig).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CMU
from fbx_dump import FBXFile, Node, read_fbx
from importers.synthetic_skeleton import (between_keys_error_deg, gimbal_sweep_animation, synthetic_animation,
                                         turn_per_frame_deg)
from mocap.export.axes import YUP_FROM_WORLD, points_yup_to_world, rotmat_world_to_yup
from mocap.export.bones import bone_local_rotations
from mocap.export.fbx import FBX_TICKS_PER_SECOND, animation_channels, build_fbx_scene, write_fbx
from mocap.export.fbx_binary import FBXNode, encode_fbx, f32, i16, i64, node, raw
from mocap.export.rigs import retarget
from mocap.geometry.rotations import euler_to_rotmat
from mocap.skeleton.animation import SkeletonAnimation, forward_kinematics

HERE = Path(__file__).parent
# README: importers agree with our positions within 0.001 mm on every joint and frame. Measured
# (float32 keys in cm): Blender <= 0.00084 mm, ufbx <= 0.00031 mm; the margin is what is left.
TOL_M = 1e-6
# Blender computes its armature in float32 and, since bones point at their children (rest
# frames that are not the identity, every child hung on its parent's tail), loses more on the
# exporter test animations: 0.0019 mm on the synthetic humanoid (random turns of up to 0.6 rad at
# every joint, a full root turn), 0.0030 mm on CMU's own 31-joint skeleton (0.00084 mm before).
# ufbx and our own evaluation of the same files stay at <= 0.0003 mm (the files are exact), and
# every skeleton the solve makes stays within TOL_M in Blender too (canonical and every rig:
# <= 0.00056 mm, tests/test_export_rigs.py).
TOL_BLENDER_M = 5e-6


def _reference_dir(shared) -> Path:
    return shared / "fbx_reference"


# ---------------------------------------------------------------------------------------------
# Helpers: an independent evaluation of our file (own reader, not the writer's code)
# ---------------------------------------------------------------------------------------------

def _name(value: bytes) -> str:
    return value.split(b"\x00\x01")[0].decode()


def _p70(n: Node) -> dict[str, list]:
    props = n.find("Properties70")
    return {} if props is None else {p.values[0].decode(): p.values[4:] for p in props.children}


def _model_channels(fbx: FBXFile) -> tuple[dict, dict]:
    """The file's models as stored: ``{id: (name, kind, translation (T|1, 3), rotation_deg (T|1, 3))}``
    (Lcl Translation / Lcl Rotation curves, or the static value where a model has none) and
    ``{id: parent id}`` (0 = the scene root)."""
    objects = {n.values[0]: n for n in fbx.find("Objects").children}
    conns = [c.values for c in fbx.find("Connections").children]
    parent = {src: dst for kind, src, dst, *_ in conns if kind == b"OO" and objects.get(src) is not None
              and objects[src].name == "Model"}
    curve_of = {(dst, prop.decode()): src for kind, src, dst, *rest in conns if kind == b"OP" for prop in rest}

    def channel(model_id, prop, letter) -> np.ndarray:
        cnode = curve_of.get((model_id, prop))
        static = np.array(_p70(objects[model_id])[prop], dtype=np.float64)
        if cnode is None:
            return static[None]
        out = []
        for k, axis in enumerate("XYZ"):
            curve = objects[curve_of[(cnode, f"d|{axis}")]]
            out.append(curve.find("KeyValueFloat").values[0].astype(np.float64))
        assert _name(objects[cnode].values[1]) == letter
        return np.stack(out, axis=-1)

    models = {i: (_name(n.values[1]), n.values[2].decode(), channel(i, "Lcl Translation", "T"),
                  channel(i, "Lcl Rotation", "R")) for i, n in objects.items() if n.name == "Model"}
    return models, {m: parent.get(m, 0) for m in models}


#: FBX ``RotationOrder`` enum -> our extrinsic order (eEulerXYZ: R = Rz Ry Rx, "xyz"), as the FBX
#: SDK documents FbxEuler::EOrder; independent of the writer's table.
ORDER_NAMES = {0: "xyz", 1: "xzy", 2: "yzx", 3: "yxz", 4: "zxy", 5: "zyx"}


def fbx_euler_to_rotmat(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """FBX ``Lcl Rotation`` ``(..., 3)`` degrees — angles about X, Y, Z, whatever the order —
    applied in extrinsic ``order`` (``"zxy"``: Z first, ``R = Ry Rx Rz``) -> ``(..., 3, 3)``."""
    return euler_to_rotmat(np.radians(angles_deg)[..., ["xyz".index(a) for a in order]], order)


def rotation_orders(fbx: FBXFile) -> dict[str, str]:
    """Each model's Euler order as our extrinsic order string: ``RotationOrder`` where
    ``RotationActive`` is set (the FBX SDK ignores the order otherwise), else XYZ."""
    props = {_name(o.values[1]): _p70(o) for o in fbx.find("Objects").children if o.name == "Model"}
    return {name: ORDER_NAMES[p.get("RotationOrder", [0])[0] if p.get("RotationActive", [0])[0] else 0]
            for name, p in props.items()}


def rotation_curves(fbx: FBXFile) -> dict[str, np.ndarray]:
    """Each LimbNode's ``Lcl Rotation`` keys ``(T, 3)`` degrees X, Y, Z, as stored in the file."""
    models, _ = _model_channels(fbx)
    return {name: rot for name, kind, _, rot in models.values() if kind == "LimbNode"}


def evaluate_file(fbx: FBXFile) -> tuple[list[str], np.ndarray]:
    """World positions ``(T, N, 3)`` in our world frame (Z up, metres) of every LimbNode, by
    evaluating the file's node tree and curves: ``T @ R`` per node, ``R`` the Euler angles in the
    node's ``RotationOrder``, times in ticks."""
    settings = _p70(fbx.find("GlobalSettings"))
    cm_per_unit = settings["UnitScaleFactor"][0]
    assert settings["UpAxis"][0] == 1 and settings["FrontAxis"][0] == 2 and settings["CoordAxis"][0] == 0
    models, parent = _model_channels(fbx)
    orders = rotation_orders(fbx)
    local = {m: (t, fbx_euler_to_rotmat(r, orders[name])) for m, (name, _, t, r) in models.items()}
    cache = {}

    def world(m):
        if m not in cache:
            t, r = local[m]
            p = parent[m]
            if p == 0:
                cache[m] = (r, t)
            else:
                pr, pt = world(p)
                cache[m] = (pr @ r, pt + (pr @ t[..., None])[..., 0])
        return cache[m]

    limbs = [m for m, (_, kind, _, _) in models.items() if kind == "LimbNode"]
    names = [models[m][0] for m in limbs]
    T = max(len(world(m)[1]) for m in limbs)
    pos = np.stack([np.broadcast_to(world(m)[1], (T, 3)) for m in limbs], axis=1)
    return names, points_yup_to_world(pos * cm_per_unit, "cm")


def _cmu_animation(num_frames: int = 120, start: int = 300) -> SkeletonAnimation:
    """A real CMU clip (01_01, 120 fps) on the file's own 31-joint skeleton, in our world frame:
    BVH local rotations and offsets taken as they are, axes through the one converter."""
    from mocap.io.bvh import bvh_local_transforms, read_bvh
    from mocap.synthetic.cmu import CMU_UNIT_M

    motion = read_bvh(CMU / "01_01.bvh")
    rot, trans = bvh_local_transforms(motion)
    rot, trans = rot[start:start + num_frames], trans[start:start + num_frames]
    world_from_file = YUP_FROM_WORLD.T
    return SkeletonAnimation(
        motion.joint_names, motion.parents, CMU_UNIT_M * motion.offsets @ world_from_file.T,
        world_from_file @ rot @ world_from_file.T, CMU_UNIT_M * trans[:, 0] @ world_from_file.T,
        round(1.0 / motion.frame_time, 3), "cmu_01_01")  # the file rounds 1/120 s to 0.0083333


def _solved_cmu_animation(num_frames: int = 120, start: int = 300) -> SkeletonAnimation:
    """The skeleton solve's animation of a real CMU clip's canonical joint trajectories."""
    from mocap.io.bvh import read_bvh
    from mocap.skeleton.solve import solve_skeleton
    from mocap.synthetic.cmu import cmu_to_canonical

    points_world, names = cmu_to_canonical(read_bvh(CMU / "01_01.bvh"))
    return solve_skeleton(points_world[start:start + num_frames], names, 120.0, name="person_1").animation


def _errors(anim: SkeletonAnimation, names: list[str], positions: np.ndarray, prefix: str = "") -> np.ndarray:
    """Per frame and joint distance (m) between importer positions and our FK."""
    expected, _ = forward_kinematics(anim)
    idx = [names.index(prefix + n) for n in anim.joint_names]
    assert positions.shape[0] == anim.num_frames
    return np.linalg.norm(positions[:, idx] - expected, axis=-1)


# ---------------------------------------------------------------------------------------------
# Binary encoding
# ---------------------------------------------------------------------------------------------

def test_binary_round_trip_all_property_types(tmp_path, rng):
    big = rng.normal(size=500)
    tree = [
        node("Header", children=[node("Version", 1003), node("Flag", True), node("Small", i16(-7)),
                                 node("Single", f32(1.5)), node("Id", i64(2**40 + 3)), node("Blob", raw(b"\x00\x01\xff"))]),
        node("Arrays", big, big.astype(np.float32), np.arange(1000, dtype=np.int64), np.arange(5, dtype=np.int32),
             np.array([True, False, True])),
        node("Name", b"pelvis\x00\x01Model", "ünïcode"),
        node("EmptyBlock", 1, block=True),
        node("NoProps"),
    ]
    path = tmp_path / "t.fbx"
    path.write_bytes(encode_fbx(tree))
    fbx = read_fbx(path)
    assert fbx.version == 7400 and fbx.footer_ok

    def compare(ours: FBXNode, theirs: Node):
        assert ours.name == theirs.name
        assert [p.code for p in ours.props] == [c for c, _ in theirs.props]
        for p, (_, v) in zip(ours.props, theirs.props):
            if isinstance(p.value, np.ndarray):
                np.testing.assert_array_equal(v, p.value)
            elif p.code == "F":
                assert v == np.float32(p.value)
            else:
                assert v == (p.value.encode() if isinstance(p.value, str) else p.value)
        # The null record closes a nested list: children, an explicit block, or no properties.
        assert theirs.has_null_record == bool(ours.children or ours.block or not ours.props)
        assert len(ours.children) == len(theirs.children)
        for a, b in zip(ours.children, theirs.children):
            compare(a, b)

    assert len(fbx.nodes) == len(tree)
    for a, b in zip(tree, fbx.nodes):
        compare(a, b)


def test_large_arrays_are_compressed():
    data = encode_fbx([node("A", np.zeros(10000))])
    assert len(data) < 2000  # 80 kB of zeros deflate to almost nothing


def test_encode_rejects_bad_values():
    with pytest.raises(ValueError, match="int32"):
        node("X", 2**40)
    with pytest.raises(ValueError, match="7.4"):
        encode_fbx([], version=7500)
    with pytest.raises(ValueError, match="1-D"):
        node("X", np.zeros((2, 2)))


# ---------------------------------------------------------------------------------------------
# Scene
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def anim(rng):
    return synthetic_animation(rng, num_frames=60, fps=30.0)


REFERENCE_BINARIES = [
    "cmu_isaacgym/09_11_cmu.fbx", "ufbx/blender_279_default_7400_binary.fbx", "ufbx/maya_human_ik_7400_binary.fbx",
    "ufbx/maya_character_7500_binary.fbx", "ufbx/maya_kenney_character_7700_binary.fbx",
]


@pytest.mark.parametrize("name", REFERENCE_BINARIES)
def test_reader_parses_files_written_by_real_tools(shared, name):
    fbx = read_fbx(_reference_dir(shared) / name)
    expected_version = int(name.split("_")[-2]) if name.startswith("ufbx/") else 7400
    assert fbx.footer_ok and fbx.version == expected_version
    assert fbx.find("Objects") is not None and fbx.find("Connections") is not None


def test_reader_rejects_ascii_fbx(shared):
    with pytest.raises(ValueError, match="not a binary FBX"):
        read_fbx(_reference_dir(shared) / "ufbx" / "maya_human_ik_7400_ascii.fbx")


def test_node_tree_matches_blender_and_maya_references(tmp_path, anim, shared):
    ref = read_fbx(_reference_dir(shared) / "cmu_isaacgym" / "01_01_cmu.fbx")
    maya = read_fbx(_reference_dir(shared) / "ufbx" / "maya_human_ik_7400_binary.fbx")
    ours = read_fbx(write_fbx([anim], tmp_path / "a.fbx"))
    assert [n.name for n in ours.nodes] == [n.name for n in ref.nodes] == [n.name for n in maya.nodes]
    assert _p70(maya.find("GlobalSettings"))["UpAxis"] == _p70(ours.find("GlobalSettings"))["UpAxis"] == [1]
    # Same record layout for every object kind a skeleton-only animation needs.
    def first(fbx, kind):
        return next(n for n in fbx.find("Objects").children
                    if n.name == kind and (kind != "Model" or n.values[2] == b"LimbNode"))

    for kind in ("Model", "NodeAttribute", "AnimationCurveNode", "AnimationCurve", "AnimationStack"):
        ref_obj, our_obj = first(ref, kind), first(ours, kind)
        assert [c for c, _ in our_obj.props] == [c for c, _ in ref_obj.props], kind
        assert {c.name for c in ref_obj.children} <= {c.name for c in our_obj.children}, kind
        for child in ref_obj.children:
            mine = our_obj.find(child.name)
            assert [c for c, _ in mine.props] == [c for c, _ in child.props], f"{kind}.{child.name}"


def test_definitions_and_connections_are_consistent(tmp_path, anim):
    fbx = read_fbx(write_fbx([anim], tmp_path / "a.fbx"))
    objects = fbx.find("Objects").children
    counts = {o.values[0].decode(): o.find("Count").values[0] for o in fbx.find("Definitions").find_all("ObjectType")}
    kinds = {}
    for o in objects:
        kinds[o.name] = kinds.get(o.name, 0) + 1
    assert counts == {"GlobalSettings": 1, **kinds}
    J = len(anim.joint_names)
    assert kinds == {"AnimationStack": 1, "AnimationLayer": 1, "Model": J + 1, "NodeAttribute": J + 1,
                     "AnimationCurveNode": 2 * J, "AnimationCurve": 6 * J}
    ids = {o.values[0] for o in objects} | {0}
    for c in fbx.find("Connections").children:
        assert c.values[1] in ids and c.values[2] in ids
    attrs = [o for o in objects if o.name == "NodeAttribute" and o.values[2] == b"LimbNode"]
    assert len(attrs) == J and all(a.find("TypeFlags").values == [b"Skeleton"] for a in attrs)


def test_global_settings_axes_units_and_frame_rate(tmp_path, rng):
    a30 = synthetic_animation(rng, num_frames=10, fps=30.0)
    settings = _p70(read_fbx(write_fbx([a30], tmp_path / "a.fbx")).find("GlobalSettings"))
    assert settings["UpAxis"] == [1] and settings["UpAxisSign"] == [1] and settings["UnitScaleFactor"] == [1.0]
    assert settings["TimeMode"] == [6] and settings["CustomFrameRate"] == [30.0]
    assert settings["TimeSpanStop"] == [9 * FBX_TICKS_PER_SECOND // 30]
    a20 = synthetic_animation(rng, num_frames=10, fps=20.0)
    settings = _p70(read_fbx(write_fbx([a20], tmp_path / "b.fbx", units="m")).find("GlobalSettings"))
    assert settings["TimeMode"] == [14] and settings["CustomFrameRate"] == [20.0]
    assert settings["UnitScaleFactor"] == [100.0]


def test_key_times_are_fbx_ticks_every_frame(tmp_path, anim):
    fbx = read_fbx(write_fbx([anim], tmp_path / "a.fbx"))
    curves = [o for o in fbx.find("Objects").children if o.name == "AnimationCurve"]
    expected = np.arange(anim.num_frames) * (FBX_TICKS_PER_SECOND // 30)
    for c in curves:
        np.testing.assert_array_equal(c.find("KeyTime").values[0], expected)
        assert c.find("KeyAttrFlags").values[0][0] & 0xE == 0x4  # linear interpolation
        assert c.find("KeyAttrRefCount").values[0][0] == anim.num_frames


@pytest.mark.parametrize("units", ["cm", "m"])
def test_file_reproduces_world_positions(tmp_path, anim, units):
    names, positions = evaluate_file(read_fbx(write_fbx([anim], tmp_path / "a.fbx", units=units)))
    err = _errors(anim, names, positions)
    assert err.max() < TOL_M  # float32 keys: measured <= 0.00029 mm


def _rest_pose(fbx: FBXFile) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The file's rest pose from the static ``Lcl Translation`` / ``Lcl Rotation`` only: names,
    world positions ``(N, 3)`` (Z up, metres) and each LimbNode's +Y axis ``(N, 3)`` in world axes."""
    settings = _p70(fbx.find("GlobalSettings"))
    objects = {n.values[0]: n for n in fbx.find("Objects").children if n.name == "Model"}
    conns = [c.values for c in fbx.find("Connections").children]
    parent = {src: dst for kind, src, dst, *_ in conns if kind == b"OO" and src in objects}
    cache = {}

    def world(m):
        if m not in cache:
            props = _p70(objects[m])
            order = ORDER_NAMES[props.get("RotationOrder", [0])[0] if props.get("RotationActive", [0])[0] else 0]
            r = fbx_euler_to_rotmat(np.array(props["Lcl Rotation"], dtype=float), order)
            t = np.array(props["Lcl Translation"], dtype=float)
            p = parent.get(m, 0)
            pr, pt = (np.eye(3), np.zeros(3)) if p == 0 else world(p)
            cache[m] = (pr @ r, pt + pr @ t)
        return cache[m]

    limbs = [m for m, n in objects.items() if n.values[2] == b"LimbNode"]
    pos = np.array([world(m)[1] for m in limbs]) * settings["UnitScaleFactor"][0]
    y_axis = np.array([world(m)[0][:, 1] for m in limbs])
    return [_name(objects[m].values[1]) for m in limbs], points_yup_to_world(pos, "cm"), y_axis @ YUP_FROM_WORLD


def _single_child_angles_deg(parents: list[int], heads: np.ndarray, y_axis: np.ndarray) -> np.ndarray:
    """Angle between each single-child bone's +Y and the direction to its child (degrees)."""
    out = []
    for j in range(len(parents)):
        kids = [c for c, p in enumerate(parents) if p == j]
        if len(kids) == 1:
            d = heads[kids[0]] - heads[j]
            out.append(np.degrees(np.arccos(np.clip(d @ y_axis[j] / np.linalg.norm(d), -1.0, 1.0))))
    return np.array(out)


def test_rest_pose_is_the_t_pose_with_bones_pointing_at_their_children(tmp_path, anim):
    names, rest_world, y_axis = _rest_pose(read_fbx(write_fbx([anim], tmp_path / "a.fbx")))
    order = [names.index(n) for n in anim.joint_names]
    T_pose = SkeletonAnimation(anim.joint_names, anim.parents, anim.offsets, np.eye(3)[None, None].repeat(len(order), 1),
                               anim.offsets[:1], anim.fps)
    np.testing.assert_allclose(rest_world[order], forward_kinematics(T_pose)[0][0], atol=1e-9)
    angles = _single_child_angles_deg(list(anim.parents), rest_world[order], y_axis[order])
    assert len(angles) == 8 and angles.max() < 1e-6  # hips, knees, shoulders, elbows
    # Skeleton attributes: Size and LimbLength are the drawn length, the mean distance to the
    # children (Blender's rule), in file units; a leaf takes its parent's.
    objects = read_fbx(tmp_path / "a.fbx").find("Objects").children
    attrs = {_name(o.values[1]): _p70(o) for o in objects if o.name == "NodeAttribute" and o.values[2] == b"LimbNode"}
    knee = anim.joint_names.index("left_knee")
    assert attrs["left_knee"]["Size"] == attrs["left_knee"]["LimbLength"] == pytest.approx([40.0])
    assert attrs["left_hip"]["Size"] == pytest.approx([100 * np.linalg.norm(anim.offsets[knee])])
    assert attrs["left_big_toe"]["Size"] == attrs["left_ankle"]["Size"]
    channels = animation_channels(anim, "cm")
    G = channels["bone_frames"]
    np.testing.assert_allclose(G @ np.swapaxes(G, -1, -2), np.broadcast_to(np.eye(3), G.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(G), 1.0, atol=1e-12)


def test_rotation_curves_follow_the_motion_through_gimbal_lock(tmp_path):
    """FBX's default Euler XYZ is singular where the middle angle is ±90°, and the sweep's pelvis
    passes there twice (its Y, the vertical, turns 300°). The writer gives each joint the order
    whose singularity its motion stays farthest from: read from the file, the pelvis is not XYZ
    and its middle angle stays within the sway (17°); every curve steps no more per frame than
    its joint turns (measured: 3.6° steps for 3.6°/frame turns; XYZ with continuous curves stepped
    2.5°/frame but swung fast near 90°; a wrapped per-frame decomposition steps 180°); halfway
    between keys the pose is the motion's; positions are unchanged."""
    anim, _ = gimbal_sweep_animation()
    fbx = read_fbx(write_fbx([anim], tmp_path / "sweep.fbx"))
    curves, orders = rotation_curves(fbx), rotation_orders(fbx)
    middle = curves["pelvis"][:, "xyz".index(orders["pelvis"][1])]
    assert orders["pelvis"] != "xyz" and np.abs(middle).max() < 17.3
    turn = turn_per_frame_deg(anim.rotations)  # (T - 1, J)
    for j, name in enumerate(anim.joint_names):
        step = np.abs(np.diff(curves[name], axis=0)).max(axis=-1)
        worst = int(np.argmax(step - turn[:, j]))
        # 25 % covers the Euler-rate / turn-rate ratio of this motion; 1e-4° the float32 keys.
        assert (step <= 1.25 * turn[:, j] + 1e-4).all(), (name, worst, step[worst], turn[worst, j])
    # Between keys: measured 0.01°; the 180° step showed the pelvis half a turn away (180°).
    bone_locals = bone_local_rotations(anim.parents, animation_channels(anim)["bone_frames"],
                                       rotmat_world_to_yup(anim.rotations))
    for j, name in enumerate(anim.joint_names):
        in_order = curves[name][:, None, ["xyz".index(a) for a in orders[name]]]  # by axis -> order sequence
        assert between_keys_error_deg(in_order, bone_locals[:, j:j + 1], orders[name]).max() < 0.1
    assert _errors(anim, *evaluate_file(fbx)).max() < TOL_M


def test_cmu_clip_reproduces_world_positions(tmp_path):
    cmu = _cmu_animation(num_frames=60)
    names, positions = evaluate_file(read_fbx(write_fbx([cmu], tmp_path / "cmu.fbx")))
    assert _errors(cmu, names, positions).max() < TOL_M


def test_two_people_two_armatures(tmp_path, rng):
    a = synthetic_animation(rng, name="person_1")
    b = synthetic_animation(rng, name="person_2", start_xy=(2.0, 1.0))
    fbx = read_fbx(write_fbx([a, b], tmp_path / "two.fbx"))
    objects = fbx.find("Objects").children
    nulls = [_name(o.values[1]) for o in objects if o.name == "Model" and o.values[2] == b"Null"]
    assert nulls == ["person_1", "person_2"]
    assert sum(o.name == "AnimationStack" for o in objects) == 1
    names, positions = evaluate_file(fbx)
    assert _errors(a, names, positions, "person_1:").max() < TOL_M
    assert _errors(b, names, positions, "person_2:").max() < TOL_M


def test_bad_input_raises_and_leaves_existing_file(tmp_path, anim, rng):
    path = tmp_path / "a.fbx"
    path.write_bytes(b"previous")
    bad = SkeletonAnimation(anim.joint_names, anim.parents, anim.offsets, anim.rotations,
                            np.where(np.arange(anim.num_frames)[:, None] == 5, np.nan, anim.root_positions), anim.fps, "p")
    with pytest.raises(ValueError, match="NaN"):
        write_fbx([bad], path)
    assert path.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["a.fbx"]
    other_fps = synthetic_animation(rng, fps=25.0, name="person_2")
    with pytest.raises(ValueError, match="same fps"):
        write_fbx([anim, other_fps], path)
    with pytest.raises(ValueError, match="unique"):
        write_fbx([anim, anim], path)
    with pytest.raises(ValueError, match="units"):
        write_fbx([anim], path, units="inch")
    with pytest.raises(ValueError, match="at least one"):
        build_fbx_scene([])


# ---------------------------------------------------------------------------------------------
# Real importers (subprocesses: Blender, ufbx, assimp)
# ---------------------------------------------------------------------------------------------

def _ufbx_positions(path: Path, tmp_path: Path):
    out = tmp_path / f"{path.stem}_ufbx.npz"
    subprocess.run([sys.executable, str(HERE / "importers" / "ufbx_positions.py"), str(path), str(out)],
                   check=True, timeout=120)
    return np.load(out)


def _blender_positions(blender: str, path: Path, tmp_path: Path) -> dict:
    out = tmp_path / f"{path.stem}_blender.json"
    subprocess.run([blender, "-b", "--factory-startup", "--python", str(HERE / "importers" / "blender_fbx_positions.py"),
                    "--", str(path), str(out)], check=True, timeout=300, capture_output=True)
    return json.loads(out.read_text())


@pytest.mark.slow
def test_ufbx_agrees_with_world_positions(tmp_path, rng):
    # 20 fps has no named FBX time mode: the custom-rate path.
    a = synthetic_animation(rng, num_frames=60, fps=20.0, name="person_1")
    b = synthetic_animation(rng, num_frames=60, fps=20.0, name="person_2", start_xy=(2.0, 1.0))
    cmu = _cmu_animation(num_frames=120)
    for anims, prefixes in (([cmu], [""]), ([a, b], ["person_1:", "person_2:"])):
        path = write_fbx(anims, tmp_path / f"{anims[0].name}_{len(anims)}.fbx")
        result = _ufbx_positions(path, tmp_path)
        assert float(result["fps"]) == pytest.approx(anims[0].fps) and int(result["num_stacks"]) == 1
        names = list(result["names"])
        assert len(names) == sum(len(x.joint_names) for x in anims)
        for anim, prefix in zip(anims, prefixes):
            err = _errors(anim, names, result["positions"], prefix)
            print(f"ufbx {anim.name}: max {err.max() * 1e3:.5f} mm, mean {err.mean() * 1e3:.5f} mm")
            assert err.max() < TOL_M


@pytest.mark.slow
def test_blender_agrees_with_world_positions(tmp_path, rng, blender):
    # 20 fps has no named FBX time mode: the custom-rate path.
    a = synthetic_animation(rng, num_frames=60, fps=20.0, name="person_1")
    b = synthetic_animation(rng, num_frames=60, fps=20.0, name="person_2", start_xy=(2.0, 1.0))
    cmu = _cmu_animation(num_frames=120)
    for anims, prefixes in (([cmu], [""]), ([a, b], ["person_1:", "person_2:"])):
        path = write_fbx(anims, tmp_path / f"{anims[0].name}_{len(anims)}.fbx")
        result = _blender_positions(blender, path, tmp_path)
        assert result["armatures"] == sorted(x.name for x in anims)
        assert result["fps"] == pytest.approx(anims[0].fps)
        positions = np.array(result["positions"])
        for anim, prefix in zip(anims, prefixes):
            err = _errors(anim, result["names"], positions, f"{anim.name}/{prefix}")
            print(f"blender {anim.name}: max {err.max() * 1e3:.5f} mm, mean {err.mean() * 1e3:.5f} mm")
            assert err.max() < TOL_BLENDER_M


@pytest.mark.slow
def test_assimp_reports_one_animation_with_a_channel_per_joint(tmp_path, rng, assimp):
    a = synthetic_animation(rng, name="person_1")
    b = synthetic_animation(rng, name="person_2", start_xy=(2.0, 1.0))
    for anims in ([a], [a, b], [_cmu_animation(num_frames=60)]):
        path = write_fbx(anims, tmp_path / f"{anims[0].name}_{len(anims)}.fbx")
        info = subprocess.run([assimp, "info", str(path)], check=True, capture_output=True, text=True, timeout=60).stdout
        fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in info.splitlines()) if v}
        assert fields["Animations"] == "1"
        assert fields["Animation Channels"] == str(sum(len(x.joint_names) for x in anims))
        # Every joint is a node: armature + joints per person, plus assimp's RootNode.
        assert fields["Nodes"] == str(1 + sum(len(x.joint_names) + 1 for x in anims))


@pytest.mark.slow
def test_ufbx_reads_our_frame_rates(tmp_path, rng):
    rates = [120.0, 100.0, 60.0, 50.0, 48.0, 30.0, 25.0, 24.0, 30000 / 1001, 60000 / 1001, 24000 / 1001, 20.0, 90.0]
    paths = [write_fbx([synthetic_animation(rng, num_frames=3, fps=r)], tmp_path / f"r{i}.fbx") for i, r in enumerate(rates)]
    script = ("import sys, ufbx\n"
              "for p in sys.argv[1:]:\n"
              "    scene = ufbx.load_file(p)\n"
              "    settings = scene.settings\n"
              "    print(repr(settings.frames_per_second))\n")
    out = subprocess.run([sys.executable, "-c", script, *map(str, paths)], check=True, capture_output=True,
                         text=True, timeout=60).stdout.split()
    # ufbx reports the NTSC modes as 29.97 / 59.94 / 23.976 (the FBX SDK: 30000/1001 …): 1e-6 apart.
    np.testing.assert_allclose([float(x) for x in out], rates, rtol=2e-6)


@pytest.mark.slow
def test_importers_agree_on_solved_cmu_skeleton_on_the_mixamo_rig(tmp_path, blender):
    anim = retarget(_solved_cmu_animation(num_frames=120), "mixamo")
    path = write_fbx([anim], tmp_path / "solved.fbx")
    result = _ufbx_positions(path, tmp_path)
    err_ufbx = _errors(anim, list(result["names"]), result["positions"])
    result = _blender_positions(blender, path, tmp_path)
    err_blender = _errors(anim, result["names"], np.array(result["positions"]), f"{anim.name}/")
    print(f"solved CMU, mixamo rig: ufbx max {err_ufbx.max() * 1e3:.5f} mm, blender max {err_blender.max() * 1e3:.5f} mm")
    assert err_ufbx.max() < TOL_M and err_blender.max() < TOL_M
