"""Skeleton solve: 3D joint trajectories -> bone lengths, root translation, joint rotations.

Steps (one person; vectorised over frames, one pass over joints in parent order):

1. **Gap filling.** Interior gaps of a joint up to ``max_gap_s`` are linearly interpolated;
   longer gaps stay NaN.
2. **Hierarchy** (:mod:`mocap.skeleton.hierarchy`) resolved against the joints that have data.
3. **Global rotations.** Each joint's rotation maps its rest primary direction exactly onto the
   observed one — from where the skeleton puts the joint (FK of its parent and its rest offset)
   to the observed end point, so a bone whose observed length varies (a bending spine, a
   shrugging shoulder) misplaces only its own end and the error does not run down the chain —
   by the shortest rotation from its parent's orientation ("swing"); the twist
   about that direction then comes from the secondary vector (the bend plane for a limb, the
   shoulder line for the chest, the ear line for the head). When the secondary is nearly
   parallel to the primary (a straight limb) or missing, the twist is unobservable and fades
   smoothly to the swing's (no twist relative to the parent) between ``straight_deg`` angles.
4. **Local rotations** ``parent^T @ global``; frames where a joint cannot be oriented (NaN,
   zero-length bone) are filled by slerp between the nearest oriented frames, held at the ends.
5. **Rest skeleton** (T-pose), estimated joint by joint before the joint is oriented: each
   child's offset is the robust median (MAD outlier rejection) of its observed point seen from
   its parent's FK position in the parent's solved frame, each side its own (the captured
   proportions; ``symmetric_bones`` averages left and right afterwards). For a limb this is
   the rest direction times the median bone length.
6. **Stretching chains** (``stretch``, on by default): a few of our bones each stand for a chain
   of real joints — the trunk (pelvis to mid-shoulders: lumbar and thoracic spine), the neck
   (to the head point), the foot (ankle to toe tip: arch and toes) — so their observed length
   varies as the chain bends (on the shared CMU clips by up to 10.7 cm for the trunk of a
   cartwheel). Those joints (``JointSpec.stretch``) get a per-frame offset from their parent along
   the bone (:attr:`SkeletonAnimation.translations`), which puts them exactly on their points;
   their rest offset stays the median, and the length stays within ``stretch_limits`` of it (a
   noisy toe point does not pull the foot to any length). Limbs keep fixed lengths. A stretch
   that never moves more than 1 µm (a rigid input) is dropped.
7. **Root translation** = the pelvis point, interpolated through gaps, held at the ends.

The per-joint residual between FK of the result and the input points says how rigid the
input was (exactly 0 up to rounding for a rigid skeleton; with stretching chains, how rigid the
limbs were).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from mocap._checks import check_shape
from mocap.errors import MocapError
from mocap.geometry.rotations import rotation_between, rotvec_to_rotmat
from mocap.skeleton.animation import SkeletonAnimation, forward_kinematics
from mocap.skeleton.hierarchy import Skeleton, mirror_name, resolve_skeleton

log = logging.getLogger(__name__)

_EPS = 1e-9
_RIGID_M = 1e-6  # a stretching bone whose length moves less than this (metres) keeps its rest length
#: The same, for :mod:`mocap.skeleton.stream`.
RIGID_STRETCH_M = _RIGID_M


@dataclass(frozen=True)
class SolveConfig:
    """Options of :func:`solve_skeleton`."""

    max_gap_s: float = 0.25
    """Interior gaps of a joint up to this long (seconds) are linearly interpolated."""
    min_frames: int = 10
    """A person needs the pelvis and both hips in at least this many frames."""
    outlier_mad: float = 3.0
    """Bone samples farther than this many (normalised) MADs from the median are rejected."""
    straight_deg: tuple[float, float] = (5.0, 15.0)
    """Angle between primary and secondary below which twist fades to the parent's (start, full)."""
    min_bone_m: float = 0.005
    """A bone shorter than this (median) is reported as zero-length."""
    symmetric_bones: bool = False
    """Average each left bone with its right twin (mirrored). Off: each side keeps its own
    measured length, the captured proportions (people are not symmetric: on CMU 131_03 averaging
    puts the wrists up to 10.5 mm from the input, each side its own 1.9 mm)."""
    stretch: bool = True
    """Bones that stand for a chain of real joints (trunk, neck, foot: see ``JointSpec.stretch``)
    follow their observed length with an animated offset along the bone, so every joint lands on
    its input point; off: every bone keeps its rest length (on the shared CMU clips the neck,
    shoulders and head then sit up to 10.7 cm from the input, the toes 3.2 cm)."""
    stretch_limits: tuple[float, float] = (0.65, 1.2)
    """Shortest and longest a stretching bone may get, as fractions of its rest (median) length: a
    chain bends shorter but hardly straightens beyond its median (the shared CMU clips stay within
    0.71-1.10), so a detector's noisy toe or head point does not pull the bone to any length."""

    def __post_init__(self):
        lo, hi = self.stretch_limits
        if not 0.0 < lo <= 1.0 <= hi:
            raise ValueError(f"skeleton.stretch_limits: expected (shortest, longest) with 0 < shortest <= 1 <= longest, "
                             f"got {tuple(self.stretch_limits)}")


@dataclass(frozen=True, eq=False)
class SkeletonFit:
    """Result of :func:`solve_skeleton` for one person.

    Attributes:
        animation: the solved :class:`SkeletonAnimation` (world frame, metres).
        skeleton: the resolved hierarchy (which input joints fed which point).
        residual: ``(T, J)`` metres, distance between the FK position of each skeleton joint and
            its input point; NaN where the input point is missing.
        present: ``(T,)`` frames where the person's pelvis and hips are known.
    """

    animation: SkeletonAnimation
    skeleton: Skeleton
    residual: np.ndarray
    present: np.ndarray

    def residual_summary(self) -> dict[str, tuple[float, float]]:
        """``{joint: (median, max)}`` residual in metres over frames where the joint was seen."""
        out = {}
        for j, name in enumerate(self.animation.joint_names):
            r = self.residual[:, j]
            r = r[np.isfinite(r)]
            out[name] = (float(np.median(r)), float(r.max())) if r.size else (float("nan"), float("nan"))
        return out


def fill_gaps(points: np.ndarray, max_gap: int) -> np.ndarray:
    """Linearly interpolate interior NaN runs of at most ``max_gap`` frames.

    Args:
        points: ``(T, J, D)`` with NaN rows for missing samples (a sample with any NaN
            coordinate counts as missing).
        max_gap: longest run of missing frames to fill.

    Returns:
        ``(T, J, D)`` copy with the short gaps filled; longer gaps and the ends stay NaN.
    """
    points = check_shape(np.asarray(points, dtype=np.float64), "T J D", "points")
    out = points.copy()
    T = points.shape[0]
    t = np.arange(T)
    valid = np.isfinite(points).all(axis=-1)  # (T, J)
    prev = np.maximum.accumulate(np.where(valid, t[:, None], -1), axis=0)
    nxt = np.minimum.accumulate(np.where(valid, t[:, None], T)[::-1], axis=0)[::-1]
    fill = ~valid & (prev >= 0) & (nxt < T) & (nxt - prev - 1 <= max_gap)
    for j in np.flatnonzero(fill.any(axis=0)):  # one joint at a time, all frames at once
        good = np.flatnonzero(valid[:, j])
        rows = np.flatnonzero(fill[:, j])
        for d in range(points.shape[2]):
            out[rows, j, d] = np.interp(rows, good, points[good, j, d])
    return out


def _unit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.linalg.norm(v, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / n[..., None], n


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _joint_global(spec, skel: Skeleton, pts: np.ndarray, parent_global: np.ndarray, cfg: SolveConfig,
                  start: np.ndarray | None = None):
    """Global rotation ``(T, 3, 3)`` of one joint (NaN where not orientable) and its valid mask.

    ``start``: ``(T, 3)`` where the primary direction starts (the joint's FK position), instead of
    the observed start point."""
    T = pts.shape[0]
    valid, swing, phi, w = joint_swing(spec, skel, pts, parent_global, cfg, start)
    out = np.full((T, 3, 3), np.nan)
    if not valid.any():
        return out, valid
    if phi is not None:
        phi = continuous_twist(phi, w)
    out[valid] = apply_twist(swing, phi, w)
    return out, valid


def joint_swing(spec, skel: Skeleton, pts: np.ndarray, parent_global: np.ndarray, cfg: SolveConfig,
                start: np.ndarray | None = None):
    """The frame-by-frame part of :func:`_joint_global`: the valid mask ``(T,)`` and, on the valid
    frames, ``(u, R)`` (the observed primary direction and the swing rotation), the raw twist angle
    ``phi`` and its weight ``w`` (None, None without a secondary). ``(valid, None, None, None)``
    where no frame is valid."""
    a = np.asarray(spec.primary.rest, float)
    if start is None:
        start = pts[:, skel.point_index(spec.primary.start)]
    d = pts[:, skel.point_index(spec.primary.end)] - start
    u, n = _unit(d)
    valid = np.isfinite(n) & (n > _EPS) & np.isfinite(parent_global).all(axis=(1, 2))
    if not valid.any():
        return valid, None, None, None
    u, Gp = u[valid], parent_global[valid]
    # Swing: the shortest rotation from where the parent carries the rest direction onto u.
    R = rotation_between(Gp @ a, u) @ Gp
    if spec.secondary is None:
        return valid, (u, R), None, None
    b = np.asarray(spec.secondary.rest, float)
    b = b - (b @ a) * a
    b /= np.linalg.norm(b)
    v = (pts[:, skel.point_index(spec.secondary.end)] - pts[:, skel.point_index(spec.secondary.start)])[valid]
    v_perp = v - np.sum(v * u, axis=-1, keepdims=True) * u
    f, f_norm = _unit(v_perp)
    with np.errstate(invalid="ignore", divide="ignore"):
        sin_angle = f_norm / np.linalg.norm(v, axis=-1)
    lo, hi = np.sin(np.radians(cfg.straight_deg))
    w = np.nan_to_num(_smoothstep((sin_angle - lo) / (hi - lo)), nan=0.0)
    # Twist angle about u taking the swung rest secondary e onto the observed f.
    e = R @ b
    phi = np.arctan2(np.sum(u * np.cross(e, f), axis=-1), np.sum(e * f, axis=-1))
    return valid, (u, R), phi, w


def continuous_twist(phi: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Keep the twist ``phi`` (over the valid frames of the whole take) continuous: where it is
    undefined (straight limb) hold the last value, then remove 2*pi wraps, so that ``w * phi`` never
    jumps when phi crosses +-pi (e.g. the bend plane flipping as a limb passes through straight)."""
    known = np.isfinite(phi) & (w > 0)
    last = np.maximum.accumulate(np.where(known, np.arange(len(phi)), -1))
    return np.unwrap(np.where(last >= 0, phi[np.maximum(last, 0)], 0.0))


def apply_twist(swing, phi: np.ndarray | None, w: np.ndarray | None) -> np.ndarray:
    """The global rotations ``(V, 3, 3)``: the swing ``(u, R)`` of :func:`joint_swing` turned by
    ``w * phi`` about ``u`` (``phi`` from :func:`continuous_twist`; None: the swing alone)."""
    u, R = swing
    if phi is None:
        return R
    return rotvec_to_rotmat(u * (w * phi)[:, None]) @ R


def _fill_rotations(local: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Slerp ``local (T, 3, 3)`` through frames where ``valid (T,)`` is False; hold the ends."""
    if valid.all():
        return local
    good = np.flatnonzero(valid)
    if good.size == 1:
        return np.broadcast_to(local[good[0]], local.shape).copy()
    slerp = Slerp(good, Rotation.from_matrix(local[good]))
    t = np.clip(np.arange(local.shape[0]), good[0], good[-1])
    return slerp(t).as_matrix()


def robust_median(samples: np.ndarray, k: float) -> np.ndarray:
    """Median ``(3,)`` of ``samples (N, 3)`` after dropping those beyond ``k`` normalised MADs."""
    med = np.median(samples, axis=0)
    dist = np.linalg.norm(samples - med, axis=-1)
    mad = 1.4826 * np.median(dist)
    keep = dist <= k * mad + 1e-12
    return np.median(samples[keep], axis=0)


def _joint_offset(skel: Skeleton, j: int, pts: np.ndarray, parent_at: np.ndarray, parent_raw: np.ndarray,
                  cfg: SolveConfig, who: str) -> tuple[np.ndarray, bool]:
    """Rest offset ``(3,)`` of joint ``j`` from its parent, in the parent's frame (world axes at
    rest), and whether data gave it: the robust median over frames of the joint's observed point
    seen from where the parent is (``parent_at (T, 3)``: its FK position) and how it is turned
    (``parent_raw (T, 3, 3)``, NaN where not oriented)."""
    spec, p = skel.joints[j], skel.parents[j]
    names = skel.joint_names
    if spec.at == skel.joints[p].at:
        return np.zeros(3), True  # sits on its parent's point by construction (spine at the pelvis)
    d = pts[:, skel.point_index(spec.at)] - parent_at
    length = np.linalg.norm(pts[:, skel.point_index(spec.at)] - pts[:, skel.point_index(skel.joints[p].at)], axis=-1)
    length = length[np.isfinite(length)]
    if length.size and np.median(length) < cfg.min_bone_m:
        log.warning("%s: bone %s -> %s has zero length (median %.4f m); check the input for merged joints",
                    who, names[p], spec.name, np.median(length))
        return np.zeros(3), False
    ok = np.isfinite(parent_raw).all(axis=(1, 2)) & np.isfinite(d).all(axis=-1)
    if not ok.any():
        log.warning("%s: %s never oriented together with %s; bone length unknown", who, spec.name, names[p])
        return np.zeros(3), False
    local = np.einsum("tji,tj->ti", parent_raw[ok], d[ok])  # parent^T @ d
    return robust_median(local, cfg.outlier_mad), True


def pair_offsets(offsets: np.ndarray, known: np.ndarray, names: tuple[str, ...], symmetric: bool) -> np.ndarray:
    """A side without an estimate (zero-length, never seen) takes the other side's, mirrored; with
    ``symmetric`` both sides of every pair take the mean of the pair."""
    offsets = offsets.copy()
    flip = np.array([-1.0, 1.0, 1.0])
    for j, name in enumerate(names):
        other = mirror_name(name)
        if name.startswith("left_") and other in names:
            k = names.index(other)
            if known[j] and known[k] and not symmetric:
                continue
            if known[j] or known[k]:
                wj, wk = float(known[j]), float(known[k])
                mean = (wj * offsets[j] + wk * offsets[k] * flip) / (wj + wk)
                offsets[j], offsets[k] = mean, mean * flip
    return offsets


def _stretch_offsets(observed: np.ndarray, parent_at: np.ndarray, parent_rot: np.ndarray, rest: np.ndarray,
                     limits: tuple[float, float]) -> np.ndarray:
    """Per-frame offset ``(T, 3)`` in the parent's frame that puts a joint on its ``observed (T, 3)``
    point from its parent's FK position ``parent_at (T, 3)`` and rotation ``parent_rot (T, 3, 3)``,
    its length within ``limits`` times the ``rest`` offset's; interpolated through frames without the
    point, held at the ends, ``rest`` if never seen."""
    return stretch_from_local(observed_local(observed, parent_at, parent_rot), rest, limits)


def observed_local(observed: np.ndarray, parent_at: np.ndarray, parent_rot: np.ndarray) -> np.ndarray:
    """``parent_rot^T @ (observed - parent_at)``: ``(T, 3)`` points seen in the parent's frame."""
    return np.einsum("tji,tj->ti", parent_rot, observed - parent_at)


def stretch_from_local(local: np.ndarray, rest: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """The whole-take part of :func:`_stretch_offsets` on the observed offsets ``local (T, 3)``."""
    if not np.isfinite(local).all(axis=-1).any():
        return np.broadcast_to(rest, local.shape).copy()
    local = fill_positions(local)
    length, rest_length = np.linalg.norm(local, axis=-1, keepdims=True), np.linalg.norm(rest)
    kept = np.clip(length, limits[0] * rest_length, limits[1] * rest_length)
    return local * (kept / np.maximum(length, _EPS))


def _solve_joints(skel: Skeleton, pts: np.ndarray, cfg: SolveConfig, name: str):
    """Local rotations ``(T, J, 3, 3)``, rest offsets ``(J, 3)`` and the per-frame offsets of the
    stretching joints ``{j: (T, 3)}``, one joint at a time in parent order. Each joint sits where
    FK of its parent puts it, and its primary direction starts there (not at the observed point),
    so a bone whose observed length varies (a spine that bends, a shoulder that shrugs) moves only
    its own end: the error does not run down the chain; a stretching joint (``JointSpec.stretch``)
    follows that length, so its end is exact too."""
    T, J = pts.shape[0], len(skel.joints)
    stretched: dict[int, np.ndarray] = {}
    local = np.empty((T, J, 3, 3))
    glob = np.empty((T, J, 3, 3))
    glob_raw = np.full((T, J, 3, 3), np.nan)
    model = np.empty((T, J, 3))  # FK position of each joint
    offsets, known = np.zeros((J, 3)), np.zeros(J, bool)
    eye = np.broadcast_to(np.eye(3), (T, 3, 3))
    for j, spec in enumerate(skel.joints):
        p = skel.parents[j]
        if p < 0:
            parent, model[:, j] = eye, fill_positions(pts[:, skel.point_index(spec.at)])
        else:
            parent = glob[:, p]
            offsets[j], known[j] = _joint_offset(skel, j, pts, model[:, p], glob_raw[:, p], cfg, name)
            model[:, j] = model[:, p] + parent @ offsets[j]
            if cfg.stretch and spec.stretch and known[j]:
                moved = _stretch_offsets(pts[:, skel.point_index(spec.at)], model[:, p], parent, offsets[j],
                                         cfg.stretch_limits)
                if np.abs(moved - offsets[j]).max() > _RIGID_M:  # a rigid input keeps its rest lengths
                    stretched[j] = moved
                    model[:, j] = model[:, p] + np.einsum("tab,tb->ta", parent, moved)
        if spec.primary is None:  # leaf: follows its parent
            local[:, j], glob[:, j] = eye, parent
            continue
        start = model[:, j] if spec.primary.start == spec.at else None
        glob_raw[:, j], valid = _joint_global(spec, skel, pts, parent, cfg, start)
        if not valid.any():
            log.warning("%s: %s cannot be oriented in any frame (zero-length or missing bone); left at rest", name, spec.name)
            local[:, j] = eye
        else:
            raw_local = np.swapaxes(parent, -1, -2) @ np.where(valid[:, None, None], glob_raw[:, j], np.eye(3))
            local[:, j] = _fill_rotations(raw_local, valid)
        glob[:, j] = parent @ local[:, j]
    return local, pair_offsets(offsets, known, skel.joint_names, cfg.symmetric_bones), stretched


def fill_positions(x: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``x (T, 3)`` through NaN rows, held at the ends."""
    ok = np.isfinite(x).all(axis=-1)
    good = np.flatnonzero(ok)
    t = np.arange(x.shape[0])
    return np.stack([np.interp(t, good, x[good, d]) for d in range(3)], axis=-1)


def solve_skeleton(points_world: np.ndarray, joint_names, fps: float, name: str = "person",
                   config: SolveConfig | None = None) -> SkeletonFit:
    """Solve one person's skeleton animation from 3D joint trajectories.

    Args:
        points_world: ``(T, J, 3)`` world metres (Z up), NaN where missing.
        joint_names: ``(J,)`` canonical joint names.
        fps: frames per second.
        name: armature name, also used in messages.
        config: :class:`SolveConfig`.

    Returns:
        :class:`SkeletonFit` with the animation (all ``T`` frames; frames where the person is
        absent hold the nearest pose) and the per-joint residual ``(T, J')``.

    Raises:
        MocapError: the pelvis/hips are missing or present in fewer than ``min_frames`` frames.
    """
    cfg = config or SolveConfig()
    points_world = check_shape(np.asarray(points_world, dtype=np.float64), "T J 3", "points_world")
    names = tuple(joint_names)
    if len(names) != points_world.shape[1]:
        raise ValueError(f"joint_names: expected {points_world.shape[1]} names, got {len(names)}")
    T = points_world.shape[0]
    filled = fill_gaps(points_world, max(0, int(round(cfg.max_gap_s * fps))))
    available = np.isfinite(filled).all(axis=-1).any(axis=0)
    if not available.all():
        log.warning("%s: no data at all for %s; left out of the skeleton", name, ", ".join(np.array(names)[~available]))
    skel = resolve_skeleton(names, available, who=name)
    pts = skel.points(filled)
    present = np.isfinite(pts[:, [skel.point_index(p) for p in ("pelvis", "left_hip", "right_hip")]]).all(axis=(1, 2))
    if present.sum() < cfg.min_frames:
        raise MocapError(f"{name}: pelvis and hips seen in only {present.sum()} of {T} frames "
                         f"(needs at least {cfg.min_frames}); drop this person or lower min_frames")

    J = len(skel.joints)
    local, offsets, stretched = _solve_joints(skel, pts, cfg, name)
    root = fill_positions(pts[:, skel.point_index("pelvis")])
    rest = SkeletonAnimation(skel.joint_names, skel.parents, offsets, np.eye(3)[None, None].repeat(J, 1), np.zeros((1, 3)), fps)
    offsets[0] = [0.0, 0.0, -forward_kinematics(rest)[0][0, :, 2].min()]  # rest: lowest joint on the floor
    translations = None
    if stretched:
        translations = np.broadcast_to(offsets, (T, J, 3)).copy()
        for j, values in stretched.items():
            translations[:, j] = values
    anim = SkeletonAnimation(skel.joint_names, skel.parents, offsets, local, root, fps, name, translations)

    fk, _ = forward_kinematics(anim)
    raw_pts = skel.points(points_world)
    at = [skel.point_index(s.at) for s in skel.joints]
    residual = np.linalg.norm(fk - raw_pts[:, at], axis=-1)
    worst = np.nanmax(residual, axis=0) if np.isfinite(residual).any() else np.full(J, np.nan)
    log.info("%s: solved %d joints over %d frames (present in %d); FK residual median %.4f m, worst %s %.4f m",
             name, J, T, present.sum(), np.nanmedian(residual), skel.joint_names[int(np.nanargmax(worst))], np.nanmax(worst))
    return SkeletonFit(anim, skel, residual, present)


def solve_tracks(tracks, config: SolveConfig | None = None) -> list[SkeletonFit]:
    """Solve every person of a :class:`mocap.io.tracks.Tracks`; armatures are named ``person_<id>``.

    People that cannot be solved (too few frames, no hips) are skipped with a warning.

    Raises:
        MocapError: when no person can be solved.
    """
    fits, reasons = [], []
    for p, tid in enumerate(tracks.track_ids):
        who = f"person_{int(tid)}"
        try:
            fits.append(solve_skeleton(tracks.positions[:, p], tracks.joint_names, tracks.fps, who, config))
        except MocapError as exc:
            log.warning("skipping %s", exc)
            reasons.append(str(exc))
    if not fits:
        raise MocapError("no person could be solved: " + "; ".join(reasons))
    return fits
