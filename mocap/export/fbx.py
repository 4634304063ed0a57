"""FBX export of skeleton animations: binary FBX 7.4, Y up, one armature per person.

Scene layout (the node tree real exporters write for a skeleton-only animated file):

- ``GlobalSettings``: Y up (``UpAxis=1``, front +Z, coord +X), ``UnitScaleFactor`` = centimetres
  per file unit (1 for ``cm``), ``TimeMode`` / ``CustomFrameRate`` = the clip's frame rate.
- per person: a ``Null`` model named after the animation (the armature), and one ``LimbNode``
  model per joint, parented as the skeleton. Each LimbNode's static ``Lcl Translation`` and
  ``Lcl Rotation`` are the T pose in **bone frames** (:mod:`mocap.export.bones`: +Y along the
  bone towards its child, as Blender's importer and Mixamo rigs draw bones), so the rest pose is
  the T pose and every bone points at its child; the curves are compensated, world positions
  are the animation's. The skeleton attribute's ``Size``/``LimbLength`` is the bone's length.
- one ``AnimationStack`` with one ``AnimationLayer``; per joint an ``AnimationCurveNode`` ``T``
  and ``R`` feeding ``Lcl Translation`` / ``Lcl Rotation``, each with X/Y/Z ``AnimationCurve``\\ s
  keyed linearly at every frame.

Rotations: each joint has its own ``RotationOrder`` (:func:`euler_orders`: the order whose
singularity its motion stays farthest from); ``eEulerXYZ`` means the local matrix is
``R = R_z(z) @ R_y(y) @ R_x(x)`` on column vectors — our extrinsic ``"xyz"`` order — and likewise
for the others (:data:`FBX_ROTATION_ORDERS`), angles in degrees. All conversion to Y up goes
through :mod:`mocap.export.axes`.

With several people the joint models are named ``<person>:<joint>`` (an FBX namespace), so every
node name in the file is unique; one person keeps plain joint names.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from mocap._checks import check_choice
from mocap.export.axes import UNIT_SCALE, points_world_to_yup, rotmat_world_to_yup
from mocap.export.bones import bone_lengths, bone_local_rotations, bone_offsets, rest_bone_frames
from mocap.export.fbx_binary import (
    CREATION_TIME,
    FBX_VERSION,
    FILE_ID,
    FBXNode,
    Prop,
    encode_fbx,
    i32,
    i64,
    node,
    object_name,
    raw,
    write_fbx_file,
)
from mocap.skeleton.animation import SkeletonAnimation
from mocap.geometry.rotations import rotmat_to_euler
from mocap.skeleton.euler import ContinuousEuler, LeastSingularOrders, least_singular_orders, rotmat_to_euler_continuous
from mocap.io.files import atomic_write

logger = logging.getLogger(__name__)

#: FBX time units per second (``KTime``).
FBX_TICKS_PER_SECOND = 46186158000
CREATOR = "mocap FBX exporter"
# FbxTime::EMode values for frame rates that have one; anything else is eCustom + CustomFrameRate.
# NTSC rates are exact multiples of 1000/1001.
_TIME_MODES = {120.0: 1, 100.0: 2, 60.0: 3, 50.0: 4, 48.0: 5, 30.0: 6, 25.0: 10, 24.0: 11, 1000.0: 12, 96.0: 15, 72.0: 16,
               60000 / 1001: 17, 120000 / 1001: 18, 30000 / 1001: 9, 24000 / 1001: 13}
_TIME_MODE_CUSTOM = 14
# KeyAttrFlags: eInterpolationLinear (0x4) | eTangentUser (0x400), as Maya labels "Linear".
_KEY_FLAGS_LINEAR = 0x404
# KeyAttrDataFloat for one attribute: right slope, next-left slope, the two tangent weights packed
# as int16 pairs (0.3333 each -> 0x0D050D05, stored as raw float bits), velocities.
_KEY_DATA = np.array([0, 0, 0x0D050D05, 0], dtype="<i4").view("<f4")


#: FBX ``RotationOrder`` (FbxEuler::EOrder) of each extrinsic order: eEulerXYZ rotates about X
#: first, then Y, then Z, all about the parent's axes (``R = Rz Ry Rx``), our ``"xyz"``.
FBX_ROTATION_ORDERS = {"xyz": 0, "xzy": 1, "yzx": 2, "yxz": 3, "zxy": 4, "zyx": 5}


def euler_orders(local_rotmat: np.ndarray) -> list[str]:
    """Per joint, the Euler order whose singularity the motion stays farthest from.

    ``local_rotmat (T, J, 3, 3)``. Any Tait–Bryan order is singular where its middle angle is
    ±90°; near it the first and third curves swing fast for a small turn. For each joint the
    order with the largest ``min_t |cos(middle angle)|`` is taken (ties: the earlier in
    :data:`FBX_ROTATION_ORDERS`, so a joint that never turns keeps FBX's default XYZ). A performer
    who turns round makes XYZ's middle angle (the vertical axis) pass 90°; a foot bent 90° from
    its shin at rest makes an order with the bend's axis in the middle singular at rest.
    """
    return least_singular_orders(local_rotmat, FBX_ROTATION_ORDERS)


def _unit_scale_factor(units: str) -> float:
    """Centimetres per file unit (FBX's ``UnitScaleFactor``)."""
    return 100.0 / UNIT_SCALE[units]


def fbx_time_mode(fps: float) -> int:
    """FbxTime mode for ``fps``: a named rate when ``fps`` is that rate, else eCustom (14).

    The match is to 1e-9 relative: key times are written at exactly ``fps``, and an importer
    samples a named mode at the named rate, so a near miss must stay custom.
    """
    for rate, mode in _TIME_MODES.items():
        if abs(fps - rate) <= 1e-9 * rate:
            return mode
    return _TIME_MODE_CUSTOM


def key_times(num_frames: int, fps: float) -> np.ndarray:
    """``(T,)`` int64 FBX ticks of frames ``0 .. T-1``."""
    return np.round(np.arange(num_frames) * (FBX_TICKS_PER_SECOND / fps)).astype(np.int64)


def _p(name: str, type_name: str, label: str, flags: str, *values) -> FBXNode:
    return node("P", name, type_name, label, flags, *values)


def _p70(*props: FBXNode) -> FBXNode:
    return node("Properties70", children=list(props))


class _Ids:
    """Deterministic unique int64 object ids (0 is the scene root)."""

    def __init__(self, start: int = 1_000_000):
        self._next = start

    def __call__(self) -> int:
        self._next += 1
        return self._next


def _header_extension() -> FBXNode:
    stamp = node("CreationTimeStamp", children=[
        node("Version", 1000), node("Year", 1970), node("Month", 1), node("Day", 1), node("Hour", 10),
        node("Minute", 0), node("Second", 0), node("Millisecond", 0),
    ])
    scene_info = node("SceneInfo", object_name("GlobalInfo", "SceneInfo"), "UserData", children=[
        node("Type", "UserData"), node("Version", 100),
        node("MetaData", children=[node("Version", 100)] + [
            node(k, "") for k in ("Title", "Subject", "Author", "Keywords", "Revision", "Comment")]),
        _p70(_p("Original|ApplicationName", "KString", "", "", CREATOR),
             _p("LastSaved|ApplicationName", "KString", "", "", CREATOR)),
    ])
    return node("FBXHeaderExtension", children=[
        node("FBXHeaderVersion", 1003), node("FBXVersion", FBX_VERSION), node("EncryptionType", 0),
        stamp, node("Creator", CREATOR), scene_info,
    ])


def _global_settings(fps: float, units: str, stop_ticks: int) -> FBXNode:
    scale = _unit_scale_factor(units)
    return node("GlobalSettings", children=[node("Version", 1000), _p70(
        _p("UpAxis", "int", "Integer", "", 1), _p("UpAxisSign", "int", "Integer", "", 1),
        _p("FrontAxis", "int", "Integer", "", 2), _p("FrontAxisSign", "int", "Integer", "", 1),
        _p("CoordAxis", "int", "Integer", "", 0), _p("CoordAxisSign", "int", "Integer", "", 1),
        _p("OriginalUpAxis", "int", "Integer", "", 1), _p("OriginalUpAxisSign", "int", "Integer", "", 1),
        _p("UnitScaleFactor", "double", "Number", "", scale),
        _p("OriginalUnitScaleFactor", "double", "Number", "", scale),
        _p("AmbientColor", "ColorRGB", "Color", "", 0.0, 0.0, 0.0),
        _p("DefaultCamera", "KString", "", "", "Producer Perspective"),
        _p("TimeMode", "enum", "", "", fbx_time_mode(fps)),
        _p("TimeSpanStart", "KTime", "Time", "", i64(0)),
        _p("TimeSpanStop", "KTime", "Time", "", i64(stop_ticks)),
        _p("CustomFrameRate", "double", "Number", "", float(fps)),
    )])


def _definitions(counts: dict[str, int]) -> FBXNode:
    templates = {
        "Model": ("FbxNode", _p70(
            _p("RotationOrder", "enum", "", "", 0), _p("InheritType", "enum", "", "", 0),
            _p("PreRotation", "Vector3D", "Vector", "", 0.0, 0.0, 0.0),
            _p("PostRotation", "Vector3D", "Vector", "", 0.0, 0.0, 0.0),
            _p("RotationActive", "bool", "", "", 0),
            _p("Lcl Translation", "Lcl Translation", "", "A", 0.0, 0.0, 0.0),
            _p("Lcl Rotation", "Lcl Rotation", "", "A", 0.0, 0.0, 0.0),
            _p("Lcl Scaling", "Lcl Scaling", "", "A", 1.0, 1.0, 1.0),
            _p("Visibility", "Visibility", "", "A", 1.0),
        )),
        "AnimationStack": ("FbxAnimStack", _p70(
            _p("Description", "KString", "", "", ""),
            *(_p(k, "KTime", "Time", "", i64(0)) for k in ("LocalStart", "LocalStop", "ReferenceStart", "ReferenceStop")),
        )),
        "AnimationLayer": ("FbxAnimLayer", _p70(
            _p("Weight", "Number", "", "A", 100.0), _p("Mute", "bool", "", "", 0), _p("Solo", "bool", "", "", 0),
            _p("Lock", "bool", "", "", 0), _p("BlendMode", "enum", "", "", 0),
            _p("RotationAccumulationMode", "enum", "", "", 0), _p("ScaleAccumulationMode", "enum", "", "", 0),
        )),
        "AnimationCurveNode": ("FbxAnimCurveNode", _p70(_p("d", "Compound", "", ""))),
    }
    defs = node("Definitions", children=[node("Version", 100), node("Count", sum(counts.values()))])
    for type_name, count in counts.items():
        obj = defs.add("ObjectType", type_name)
        obj.add("Count", count)
        if type_name in templates:
            template_name, props = templates[type_name]
            obj.children.append(node("PropertyTemplate", template_name, children=[props]))
    return defs


def _model(obj_id: int, name: str, kind: str, translation: np.ndarray, rotation_deg: np.ndarray,
           rotation_order: str = "xyz") -> FBXNode:
    return node("Model", i64(obj_id), object_name(name, "Model"), kind, children=[
        node("Version", 232),
        _p70(
            _p("Lcl Translation", "Lcl Translation", "", "A+", *map(float, translation)),
            _p("Lcl Rotation", "Lcl Rotation", "", "A+", *map(float, rotation_deg)),
            _p("Lcl Scaling", "Lcl Scaling", "", "A+", 1.0, 1.0, 1.0),
            _p("RotationOrder", "enum", "", "", FBX_ROTATION_ORDERS[rotation_order]),
            # The FBX SDK, Blender and ufbx read RotationOrder only where RotationActive is set.
            _p("RotationActive", "bool", "", "", 1),
            _p("InheritType", "enum", "", "", 1),
            _p("DefaultAttributeIndex", "int", "Integer", "", 0),
        ),
        node("MultiLayer", 0), node("MultiTake", 0), node("Shading", True), node("Culling", "CullingOff"),
    ])


def _node_attribute(obj_id: int, name: str, kind: str, length: float) -> FBXNode:
    """A LimbNode's skeleton attribute: ``Size`` and ``LimbLength`` are the bone's drawn length in
    file units (Maya and MotionBuilder draw the limb with it; Blender measures its children)."""
    type_flags = "Skeleton" if kind == "LimbNode" else "Null"
    props = [_p("Size", "double", "Number", "", float(length))]
    if kind == "LimbNode":
        props.append(_p("LimbLength", "double", "Number", "H", float(length)))
    return node("NodeAttribute", i64(obj_id), object_name(name, "NodeAttribute"), kind, children=[
        node("TypeFlags", type_flags), _p70(*props),
    ])


def _curve(obj_id: int, times: np.ndarray, default: float, values) -> FBXNode:
    """An AnimationCurve keyed at ``times``: ``values`` float32 ``(T,)``, or a :class:`Prop` whose
    value loads them when the file is written (:func:`mocap.export.fbx_binary.write_fbx_file`)."""
    return node("AnimationCurve", i64(obj_id), object_name("", "AnimCurve"), "", children=[
        node("Default", float(default)),
        node("KeyVer", 4008),
        node("KeyTime", times),
        node("KeyValueFloat", values),
        node("KeyAttrFlags", np.array([_KEY_FLAGS_LINEAR], dtype=np.int32)),
        node("KeyAttrDataFloat", _KEY_DATA.copy()),
        node("KeyAttrRefCount", np.array([len(times)], dtype=np.int32)),
    ])


def _joint_names(anim: SkeletonAnimation, namespace: str | None) -> list[str]:
    names = list(anim.joint_names)
    return [f"{namespace}:{n}" for n in names] if namespace else names


def animation_channels(anim: SkeletonAnimation, units: str = "cm") -> dict[str, np.ndarray]:
    """What the file stores, per frame and joint, in Y-up axes and bone frames (:mod:`.bones`).

    Returns a dict of:
        rest_translation: ``(J, 3)`` static ``Lcl Translation`` in ``units``: the T-pose offset
            in the parent's bone frame (the root's: its rest position).
        rest_rotation_deg: ``(J, 3)`` static ``Lcl Rotation`` (Euler XYZ degrees): the rest bone
            frame relative to the parent's, so that the rest pose is the T pose with every bone
            pointing at its child.
        translation: ``(T, J, 3)`` animated ``Lcl Translation`` (the root's is its world position;
            others repeat the rest offset, or follow :attr:`SkeletonAnimation.translations` where
            the bone stretches).
        rotation_deg: ``(T, J, 3)`` animated ``Lcl Rotation``, Euler angles in degrees about X, Y
            and Z (FBX stores them by axis) applied in each joint's ``rotation_order``, continuous
            over frames (the BVH writer's routine,
            :func:`mocap.skeleton.euler.rotmat_to_euler_continuous`) so that linear keys do not
            spin: wrapping alone leaves a 180° step where the middle angle passes ±90°.
        rotation_order: ``(J,)`` each joint's extrinsic Euler order (:func:`euler_orders`,
            written as the node's ``RotationOrder``); static and animated angles use it.
        bone_frames: ``(J, 3, 3)`` rest bone frames ``G`` (:func:`.bones.rest_bone_frames`).
        bone_length: ``(J,)`` drawn bone length in ``units`` (mean distance to the children).
    """
    T, J = anim.rotations.shape[:2]
    offsets, frames, rest, rest_local = rest_channels(anim, units, anim.stretching())
    translation = frame_translations(anim, units, frames, rest)
    local = bone_local_rotations(anim.parents, frames, rotmat_world_to_yup(anim.rotations))
    orders = euler_orders(np.concatenate([rest_local[None], local]))
    rest_deg, rotation_deg = np.empty((J, 3)), np.empty((T, J, 3))
    for order in set(orders):
        js = [j for j in range(J) if orders[j] == order]
        by_axis = np.argsort([("xyz".index(a)) for a in order])  # FBX stores angles by axis: X, Y, Z
        rest_deg[js] = np.degrees(rotmat_to_euler(rest_local[js], order))[..., by_axis]
        rotation_deg[:, js] = np.degrees(rotmat_to_euler_continuous(local[:, js], order))[..., by_axis]
    return {
        "rest_translation": rest,
        "rest_rotation_deg": rest_deg,
        "rotation_order": orders,
        "translation": translation,
        "rotation_deg": rotation_deg,
        "bone_frames": frames,
        "bone_length": bone_lengths(anim.parents, offsets),
    }


def rest_channels(anim: SkeletonAnimation, units: str, moving: np.ndarray):
    """The static part of :func:`animation_channels`: offsets in Y-up ``units``, rest bone frames,
    rest ``Lcl Translation`` and rest bone-frame rotations ``(J, 3, 3)``; ``moving`` the joints
    whose offset is animated (over the whole take)."""
    offsets = points_world_to_yup(anim.offsets, units)
    frames = rest_bone_frames(anim.parents, offsets, moving)
    rest = bone_offsets(anim.parents, frames, offsets)
    return offsets, frames, rest, bone_local_rotations(anim.parents, frames, np.eye(3))


def frame_translations(anim: SkeletonAnimation, units: str, frames: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """``(T, J, 3)`` animated ``Lcl Translation`` of :func:`animation_channels`."""
    T, J = anim.rotations.shape[:2]
    if anim.translations is None:
        translation = np.broadcast_to(rest, (T, J, 3)).copy()
    else:
        translation = bone_offsets(anim.parents, frames, points_world_to_yup(anim.translations, units))
    translation[:, 0] = points_world_to_yup(anim.root_positions, units)
    return translation


def _armature_objects(anim: SkeletonAnimation, joint_names: list[str], ids: _Ids, layer_id: int, times: np.ndarray,
                      units: str, objects: list[FBXNode], connections: list[tuple]) -> None:
    """Append one person's Null + LimbNodes + curves to ``objects`` and their links to ``connections``."""
    channels = animation_channels(anim, units)
    values = {"T": channels["translation"], "R": channels["rotation_deg"]}
    armature_nodes(anim.name, anim.parents, joint_names, channels, {k: v[0] for k, v in values.items()},
                   lambda j, letter, k: values[letter][:, j, k].astype(np.float32), ids, layer_id, times, objects, connections)


def armature_nodes(name: str, parents: np.ndarray, joint_names: list[str], channels: dict, first: dict, curve,
                   ids: _Ids, layer_id: int, times: np.ndarray, objects: list[FBXNode], connections: list[tuple]) -> None:
    """One person's Null + LimbNodes + curves into ``objects`` and their links into ``connections``:
    ``channels`` the static entries of :func:`animation_channels`, ``first`` the first frame's
    ``{"T": translation (J, 3), "R": rotation_deg (J, 3)}`` and ``curve(j, letter, k)`` a curve's
    ``KeyValueFloat`` (float32 ``(T,)``, or a :class:`Prop` that loads it)."""
    rest, rest_rotation, length = channels["rest_translation"], channels["rest_rotation_deg"], channels["bone_length"]
    arm_id, arm_attr = ids(), ids()
    objects += [_node_attribute(arm_attr, name, "Null", float(np.median(length))),
                _model(arm_id, name, "Null", np.zeros(3), np.zeros(3))]
    connections += [("OO", arm_attr, arm_id), ("OO", arm_id, 0)]
    model_ids = []
    for j, joint in enumerate(joint_names):
        model_id, attr_id = ids(), ids()
        model_ids.append(model_id)
        objects += [_model(model_id, joint, "LimbNode", rest[j], rest_rotation[j], channels["rotation_order"][j]),
                    _node_attribute(attr_id, joint, "LimbNode", float(length[j]))]
        parent = arm_id if parents[j] < 0 else model_ids[parents[j]]
        connections += [("OO", attr_id, model_id), ("OO", model_id, parent)]
        for letter, prop in (("T", "Lcl Translation"), ("R", "Lcl Rotation")):
            cnode_id = ids()
            objects.append(node("AnimationCurveNode", i64(cnode_id), object_name(letter, "AnimCurveNode"), "", children=[
                _p70(*(_p(f"d|{axis}", "Number", "", "A", float(first[letter][j, k])) for k, axis in enumerate("XYZ"))),
            ]))
            connections += [("OO", cnode_id, layer_id), ("OP", cnode_id, model_id, prop)]
            for k, axis in enumerate("XYZ"):
                curve_id = ids()
                objects.append(_curve(curve_id, times, first[letter][j, k], curve(j, letter, k)))
                connections.append(("OP", curve_id, cnode_id, f"d|{axis}"))


def build_fbx_scene(animations: list[SkeletonAnimation], take_name: str = "Take 001", units: str = "cm") -> list[FBXNode]:
    """The top-level FBX node list for ``animations`` (one armature each, one shared take)."""
    if not animations:
        raise ValueError("animations: expected at least one SkeletonAnimation")
    check_choice(units, tuple(UNIT_SCALE), "units")
    fps = animations[0].fps
    names = [a.name for a in animations]
    if len(set(names)) != len(names):
        raise ValueError(f"animations: armature names must be unique, got {names}")
    for a in animations:
        if abs(a.fps - fps) > 1e-9 or a.num_frames != animations[0].num_frames:
            raise ValueError(f"animation {a.name!r}: all people in one FBX need the same fps and frame count "
                             f"({a.fps} fps × {a.num_frames} vs {fps} fps × {animations[0].num_frames}); resample first")
        if not (np.isfinite(a.rotations).all() and np.isfinite(a.root_positions).all() and np.isfinite(a.offsets).all()):
            raise ValueError(f"animation {a.name!r}: NaN/inf in rotations, root_positions or offsets; "
                             "fill gaps before export")

    def add_people(ids, layer_id, times, objects, connections):
        for anim in animations:
            namespace = anim.name if len(animations) > 1 else None
            _armature_objects(anim, _joint_names(anim, namespace), ids, layer_id, times, units, objects, connections)

    return fbx_scene(animations[0].num_frames, fps, add_people, take_name, units)


def fbx_scene(num_frames: int, fps: float, add_people, take_name: str = "Take 001", units: str = "cm") -> list[FBXNode]:
    """The top-level FBX node list of a take of ``num_frames`` at ``fps``: ``add_people(ids, layer_id,
    times, objects, connections)`` adds the armatures (:func:`armature_nodes`)."""
    times = key_times(num_frames, fps)
    stop = int(times[-1])
    ids = _Ids()
    doc_id, stack_id, layer_id = ids(), ids(), ids()
    objects: list[FBXNode] = [
        node("AnimationStack", i64(stack_id), object_name(take_name, "AnimStack"), "", children=[_p70(
            _p("LocalStop", "KTime", "Time", "", i64(stop)), _p("ReferenceStop", "KTime", "Time", "", i64(stop)),
        )]),
        node("AnimationLayer", i64(layer_id), object_name("BaseLayer", "AnimLayer"), "", block=True),
    ]
    connections: list[tuple] = [("OO", layer_id, stack_id)]
    add_people(ids, layer_id, times, objects, connections)

    counts: dict[str, int] = {"GlobalSettings": 1}
    for obj in objects:
        counts[obj.name] = counts.get(obj.name, 0) + 1
    documents = node("Documents", children=[node("Count", 1), node("Document", i64(doc_id), "Scene", "Scene", children=[
        _p70(_p("SourceObject", "object", "", ""), _p("ActiveAnimStackName", "KString", "", "", take_name)),
        node("RootNode", i64(0)),
    ])])
    conn_node = node("Connections", children=[
        node("C", kind, i64(src), i64(dst), *rest) for kind, src, dst, *rest in connections
    ])
    takes = node("Takes", children=[node("Current", take_name), node("Take", take_name, children=[
        node("FileName", f"{take_name.replace(' ', '_')}.tak"),
        node("LocalTime", i64(0), i64(stop)), node("ReferenceTime", i64(0), i64(stop)),
    ])])
    return [
        _header_extension(), node("FileId", raw(FILE_ID)), node("CreationTime", CREATION_TIME), node("Creator", CREATOR),
        _global_settings(fps, units, stop), documents, node("References"),
        _definitions(counts), node("Objects", children=objects), conn_node, takes,
    ]


def write_fbx(animations: list[SkeletonAnimation], path: str | os.PathLike, units: str = "cm") -> Path:
    """Write one binary FBX 7.4 file holding one armature per animation (one per person).

    Args:
        animations: ``P`` animations sharing fps and frame count ``T``; names must be unique. Joints
            keep the animation's names (a target rig's: :func:`mocap.export.rigs.retarget`).
        path: output ``.fbx`` path; written to a temporary name and renamed, never left half written.
        units: file length unit, ``cm`` (default), ``m`` or ``mm``.

    Returns:
        The written path.
    """
    path = Path(path)
    nodes = build_fbx_scene(list(animations), take_name=path.stem or "Take 001", units=units)
    data = encode_fbx(nodes)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    logger.debug("wrote %s: %d armature(s), %d frames, %.1f kB", path, len(animations), animations[0].num_frames,
                 len(data) / 1e3)
    return path


def write_fbx_stream(takes: list, path: str | os.PathLike, units: str, folder: str | os.PathLike) -> Path:
    """:func:`write_fbx` of takes given chunk by chunk: the same bytes, with memory independent of
    their length. Each of ``takes`` iterates over consecutive :class:`SkeletonAnimation` chunks (a
    fresh pass each time) and has ``name``, ``num_frames`` and ``stretching`` (the joints with
    animated offsets over the whole take). The curves wait in ``folder`` (a raw float32 file)
    until the file is written, one curve at a time."""
    path = Path(path)
    check_choice(units, tuple(UNIT_SCALE), "units")
    if not takes:
        raise ValueError("animations: expected at least one SkeletonAnimation")
    names = [t.name for t in takes]
    if len(set(names)) != len(names):
        raise ValueError(f"animations: armature names must be unique, got {names}")
    T, fps = takes[0].num_frames, takes[0].fps
    for t in takes:
        if abs(t.fps - fps) > 1e-9 or t.num_frames != T:
            raise ValueError(f"animation {t.name!r}: all people in one FBX need the same fps and frame count "
                             f"({t.fps} fps × {t.num_frames} vs {fps} fps × {T}); resample first")
    curves = Path(folder) / f"{path.stem}.curves.f4"
    people = []
    with open(curves, "wb") as f:
        base = 0
        for take in takes:
            people.append(_stream_channels(take, units, f, base))
            base += len(people[-1][1])

    def curve(index):
        return Prop("f", lambda: np.fromfile(curves, dtype="<f4", count=T, offset=index * T * 4))

    def add_people(ids, layer_id, times, objects, connections):
        base = 0
        for take, (parents, joint_names, channels, first) in zip(takes, people):
            namespaced = [f"{take.name}:{n}" for n in joint_names] if len(takes) > 1 else list(joint_names)
            armature_nodes(take.name, parents, namespaced, channels, first,
                           lambda j, letter, k, b=base: curve(((b + j) * 2 + "TR".index(letter)) * 3 + k),
                           ids, layer_id, times, objects, connections)
            base += len(joint_names)

    nodes = fbx_scene(T, fps, add_people, take_name=path.stem or "Take 001", units=units)

    def write(tmp):
        with open(tmp, "wb") as f:
            write_fbx_file(f, nodes)

    atomic_write(path, write)
    curves.unlink(missing_ok=True)
    logger.debug("wrote %s: %d armature(s), %d frames", path, len(takes), T)
    return path


def _stream_channels(take, units: str, f, base: int):
    """One person's :func:`animation_channels` over the chunks of ``take``: the Euler orders in a
    first pass, then the curves (float32) into the file ``f`` at curve ``base`` onwards (curve
    ``((base + j) * 2 + [T, R]) * 3 + axis``, ``take.num_frames`` values each). Returns the parents,
    joint names, the static channels and the first frame's values."""
    T = take.num_frames
    static = None
    choose = LeastSingularOrders(FBX_ROTATION_ORDERS)
    for anim in take:
        if not (np.isfinite(anim.rotations).all() and np.isfinite(anim.root_positions).all() and np.isfinite(anim.offsets).all()):
            raise ValueError(f"animation {anim.name!r}: NaN/inf in rotations, root_positions or offsets; "
                             "fill gaps before export")
        if static is None:
            static = (anim.parents, anim.joint_names) + rest_channels(anim, units, take.stretching)
            choose.update(static[5][None])
        choose.update(bone_local_rotations(anim.parents, static[3], rotmat_world_to_yup(anim.rotations)))
    parents, joint_names, offsets, frames, rest, rest_local = static
    orders, J = choose.result(), len(joint_names)
    groups = [(o, [j for j in range(J) if orders[j] == o], ContinuousEuler(o)) for o in set(orders)]
    rest_deg, first, start = np.empty((J, 3)), None, 0
    for order, js, _ in groups:
        by_axis = np.argsort([("xyz".index(a)) for a in order])
        rest_deg[js] = np.degrees(rotmat_to_euler(rest_local[js], order))[..., by_axis]
    for anim in take:
        local = bone_local_rotations(parents, frames, rotmat_world_to_yup(anim.rotations))
        values = {"T": frame_translations(anim, units, frames, rest), "R": np.empty((anim.num_frames, J, 3))}
        for order, js, stream in groups:
            by_axis = np.argsort([("xyz".index(a)) for a in order])
            values["R"][:, js] = np.degrees(stream(local[:, js]))[..., by_axis]
        first = first or {k: v[0].copy() for k, v in values.items()}
        for j in range(J):
            for li, letter in enumerate("TR"):
                for k in range(3):
                    f.seek(((((base + j) * 2 + li) * 3 + k) * T + start) * 4)
                    f.write(values[letter][:, j, k].astype("<f4").tobytes())
        start += anim.num_frames
    channels = {"rest_translation": rest, "rest_rotation_deg": rest_deg, "rotation_order": orders,
                "bone_length": bone_lengths(parents, offsets)}
    return parents, joint_names, channels, first


__all__ = ["FBX_ROTATION_ORDERS", "FBX_TICKS_PER_SECOND", "animation_channels", "build_fbx_scene", "euler_orders",
           "fbx_time_mode", "key_times", "write_fbx", "write_fbx_stream"]
