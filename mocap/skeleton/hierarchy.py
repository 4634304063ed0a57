"""The solve skeleton: one hierarchy, its T-pose rest directions, and where each joint sits.

Rest pose (T-pose) in world axes: **Z up, the person faces -Y, their left is +X**; legs along
-Z, arms along ±X, feet forward (-Y), palms down. Converted to Y-up at export this is the usual
BVH/FBX T-pose (facing +Z, left hand at +X) that Mixamo, Unity and Unreal retargeting expect.

Hierarchy (names are the solve's own; :mod:`mocap.export.rigs` maps them onto target rigs)::

    pelvis ─┬─ left_hip ── left_knee ── left_ankle ─┬─ left_toe
            │                                       └─ left_heel          (and right_…)
            └─ spine ─┬─ neck ── head
                      └─ left_clavicle ── left_shoulder ── left_elbow ── left_wrist ── left_hand

``spine`` sits at the pelvis (zero offset) and carries the trunk (pelvis -> neck);
``left_clavicle`` sits at the neck and carries the bone to the shoulder. This split gives every
observed bone a joint of its own, so the solve reproduces every observed point exactly when the
input is a rigid skeleton.

Each joint's global rotation is fixed by a **primary** vector (mapped exactly from its rest
direction onto the observed one) and an optional **secondary** vector that sets the twist about
the primary (its rest direction, made perpendicular to the primary, is mapped onto the observed
one made perpendicular). For a limb the secondary is the next bone, i.e. the twist comes from the
bend plane. The trunk (``neck``, and ``left_clavicle``/``right_clavicle`` on the same point), the
neck bone (``head``) and the foot (``left_toe``/``right_toe``) each stand for a chain of real
joints; their length follows the input (``JointSpec.stretch``, see :mod:`mocap.skeleton.solve`).
Only the subset of joints whose points the tracks provide is used: COCO-17 gives no
toes, heels or hands; BlazePose-33 gives hands and feet; BODY_25B gives heels, toes, head top.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap.errors import MocapError

#: Points the solve uses, each from the first alternative the tracks have (mean of its joints).
POINT_SOURCES: dict[str, tuple[tuple[str, ...], ...]] = {
    "pelvis": (("pelvis",), ("left_hip", "right_hip")),
    "neck": (("neck",), ("left_shoulder", "right_shoulder")),
    "head": (("head_top",), ("left_ear", "right_ear"), ("nose",)),
    "left_toe": (("left_foot_index",), ("left_big_toe",)),
    "right_toe": (("right_foot_index",), ("right_big_toe",)),
    "left_hand": (("left_index", "left_pinky"),),
    "right_hand": (("right_index", "right_pinky"),),
}


@dataclass(frozen=True)
class Direction:
    """A direction observed from point ``start`` to point ``end``, and where it points at rest."""

    start: str
    end: str
    rest: tuple[float, float, float]


@dataclass(frozen=True)
class JointSpec:
    """One joint of the full hierarchy: its parent, the point it sits at, how it is oriented."""

    name: str
    parent: str | None
    at: str
    primary: Direction | None = None
    secondary: Direction | None = None
    stretch: bool = False
    """Its bone from the parent stands for a chain of real joints (a spine, a neck, a foot's arch
    and toes), so its observed length varies as the chain bends: the solve animates the offset
    along the bone (``SolveConfig.stretch``)."""


def _mirror(spec: JointSpec) -> JointSpec:
    def name(n):
        return "right_" + n[5:] if n and n.startswith("left_") else n

    def direction(d):
        return None if d is None else Direction(name(d.start), name(d.end), (-d.rest[0], d.rest[1], d.rest[2]))

    return JointSpec(name(spec.name), name(spec.parent), name(spec.at), direction(spec.primary), direction(spec.secondary),
                     spec.stretch)


def _full_hierarchy() -> tuple[JointSpec, ...]:
    D = Direction
    X, Y, Z = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
    nX, nY, nZ = (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0)
    leg = (
        JointSpec("left_hip", "pelvis", "left_hip", D("left_hip", "left_knee", nZ), D("left_knee", "left_ankle", Y)),
        JointSpec("left_knee", "left_hip", "left_knee", D("left_knee", "left_ankle", nZ), D("left_ankle", "left_toe", nY)),
        JointSpec("left_ankle", "left_knee", "left_ankle", D("left_ankle", "left_toe", nY), D("left_heel", "left_ankle", Z)),
        JointSpec("left_toe", "left_ankle", "left_toe", stretch=True),
        JointSpec("left_heel", "left_ankle", "left_heel"),
    )
    arm = (
        JointSpec("left_clavicle", "spine", "neck", D("neck", "left_shoulder", X), stretch=True),
        JointSpec("left_shoulder", "left_clavicle", "left_shoulder", D("left_shoulder", "left_elbow", X), D("left_elbow", "left_wrist", nY)),
        JointSpec("left_elbow", "left_shoulder", "left_elbow", D("left_elbow", "left_wrist", X), D("left_pinky", "left_index", nY)),
        JointSpec("left_wrist", "left_elbow", "left_wrist", D("left_wrist", "left_hand", X), D("left_pinky", "left_index", nY)),
        JointSpec("left_hand", "left_wrist", "left_hand"),
    )
    specs = [JointSpec("pelvis", None, "pelvis", D("right_hip", "left_hip", X), D("pelvis", "neck", Z))]
    specs += list(leg) + [_mirror(s) for s in leg]
    specs += [
        JointSpec("spine", "pelvis", "pelvis", D("pelvis", "neck", Z), D("right_shoulder", "left_shoulder", X)),
        JointSpec("neck", "spine", "neck", D("neck", "head", Z), D("right_ear", "left_ear", X), stretch=True),
        JointSpec("head", "neck", "head", stretch=True),
    ]
    specs += list(arm) + [_mirror(s) for s in arm]
    return tuple(specs)


#: Every joint the solve can use, parents before children.
FULL_HIERARCHY: tuple[JointSpec, ...] = _full_hierarchy()

#: Joints without which no skeleton can be solved.
REQUIRED_POINTS = ("pelvis", "left_hip", "right_hip")


@dataclass(frozen=True, eq=False)
class Skeleton:
    """The hierarchy resolved against the joints one person's tracks provide.

    Attributes:
        joints: ``(J,)`` joint specs in parent order; ``joints[0]`` is ``pelvis``. A joint whose
            ``primary`` is None is a leaf (its local rotation stays the identity).
        parents: ``(J,)`` parent index, -1 for the root.
        point_names: ``(K,)`` names of the points the solve reads (joint points and the extra
            points secondaries use, e.g. ears).
        point_sources: ``(K,)`` tuples of indices into the tracks' joints; a point is their mean.
    """

    joints: tuple[JointSpec, ...]
    parents: np.ndarray
    point_names: tuple[str, ...]
    point_sources: tuple[tuple[int, ...], ...]

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    def point_index(self, name: str) -> int:
        return self.point_names.index(name)

    def points(self, points_world: np.ndarray) -> np.ndarray:
        """Points ``(..., K, 3)`` from tracks positions ``(..., J, 3)`` (NaN propagates)."""
        return np.stack([points_world[..., list(src), :].mean(axis=-2) for src in self.point_sources], axis=-2)


def _point_source(point: str, lookup: dict[str, int]) -> tuple[int, ...] | None:
    for alternative in POINT_SOURCES.get(point, ((point,),)):
        if all(n in lookup for n in alternative):
            return tuple(lookup[n] for n in alternative)
    return None


def resolve_skeleton(joint_names, available=None, who: str = "tracks") -> Skeleton:
    """The subset of :data:`FULL_HIERARCHY` that the given canonical joints support.

    Args:
        joint_names: ``(J,)`` canonical names of the tracks' joints.
        available: optional ``(J,)`` bool, False for joints that have no data at all (they are
            treated as absent).
        who: a name for error messages (file, person).

    Raises:
        MocapError: when the pelvis or a hip cannot be formed.
    """
    names = tuple(joint_names)
    ok = np.ones(len(names), bool) if available is None else np.asarray(available, bool)
    lookup = {n: i for i, n in enumerate(names) if ok[i]}
    sources: dict[str, tuple[int, ...]] = {}

    def has(point: str) -> bool:
        if point not in sources:
            src = _point_source(point, lookup)
            if src is None:
                return False
            sources[point] = src
        return True

    missing = [p for p in REQUIRED_POINTS if not has(p)]
    if missing:
        raise MocapError(f"{who}: no data for {', '.join(missing)}; a skeleton needs the pelvis (or both hips) and both hips")
    chosen: list[JointSpec] = []
    internal: set[str] = set()  # joints that have a primary direction (may have children)
    for spec in FULL_HIERARCHY:
        if spec.parent is not None and spec.parent not in internal:
            continue
        if not has(spec.at):
            continue
        primary = spec.primary if spec.primary is not None and has(spec.primary.start) and has(spec.primary.end) else None
        secondary = spec.secondary if primary is not None and spec.secondary is not None and has(spec.secondary.start) and has(spec.secondary.end) else None
        spec = JointSpec(spec.name, spec.parent, spec.at, primary, secondary, spec.stretch)
        chosen.append(spec)
        if primary is not None:
            internal.add(spec.name)
    index = {s.name: i for i, s in enumerate(chosen)}
    parents = np.array([-1 if s.parent is None else index[s.parent] for s in chosen], dtype=np.int64)
    used = []
    for s in chosen:
        for p in (s.at,) + sum(((d.start, d.end) for d in (s.primary, s.secondary) if d is not None), ()):
            if p not in used:
                used.append(p)
    return Skeleton(tuple(chosen), parents, tuple(used), tuple(sources[p] for p in used))


def mirror_name(name: str) -> str | None:
    """``left_x`` <-> ``right_x``; None for unpaired names."""
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return None
