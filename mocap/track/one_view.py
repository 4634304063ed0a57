"""Joints one camera sees for a while, fitted over each such gap at once (offline ``ukf``).

Where the triangulation lacks a joint for a run of frames between triangulated ones and one
camera still sees it, that camera's ray fixes the joint up to its depth. The forward filter
chooses the depth frame by frame (the bone's sphere about the parent and a constant-velocity
prediction); here, after the smoother, each such gap of at most ``max_frames`` frames is solved
as one small least-squares problem over its frames' 3D points ``X (m, 3)``:

- the ray: lateral distance from the ray of the camera whose keypoint lies nearest the filtered
  joint, standard deviation the keypoint's 2D noise at the joint's depth, Huber-weighted beyond
  :data:`RAY_HUBER_K` σ;
- the bones: length to the parent joint, and to each child the triangulation has, within
  :data:`BONE_SIGMA_M` of the take's median;
- the motion relative to the parent: the second difference of ``X − β · parent`` is white with
  standard deviation ``σ dt²``, σ per joint group and growing with how fast the limb around the
  joint moves in that window (:data:`GAP_MOTION`, :func:`motion_sigma`, fitted on real motion
  capture), Huber-weighted beyond :data:`HUBER_K` σ (a real knee does accelerate hard now and
  then), the gap's two frames before and after held at the smoothed triangulated joint.

Gauss-Newton runs from two starts and keeps, gap by gap, the end with the lower cost
(:func:`gap_cost`): the smoothed positions, and a sequence of the two places where the ray meets
the bone's sphere about the parent, one per frame, chosen by a Viterbi pass over the same motion
cost (a wrong side at a grazing ray is a local minimum Gauss-Newton does not leave). From the
Viterbi sides alone, where the rays miss the spheres, the fit left a smoother that had the knee
within 3 cm for a minimum 14-44 cm off (one-camera runs, seeds 31, 45, 73, 76); keeping the
cheaper end lost none of the runs the Viterbi start alone had within 5 cm on seeds 1-96. The
live tracker starts from its smoothed estimate alone (``from_smoothed``). The fit's uncertainty (the
largest standard deviation of each frame's block of the inverse normal matrix) replaces the
smoother's, so ``max_sigma_m`` still decides what is reported. Gaps of the same length are solved
together (batched normal equations), so the cost does not grow with a Python loop per gap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mocap.geometry import Rig
from mocap.geometry.camera import pixel_to_ray

#: Per joint group (the name without ``left_``/``right_``): ``(β, c, σ)``, the share ``β`` of the
#: parent's acceleration the joint follows; how the rest grows with the limb's speed (its standard
#: deviation per axis is about ``c`` times :func:`activity`, 1/s, the maximum-likelihood fit of
#: ``s0² + (c · speed)²`` over windows as long as a 0.5 s gap); and its RMS over all frames, m/s²,
#: the prior's σ where the limb is slow or its speed unknown (:func:`motion_sigma`). Fitted on the
#: 39 ``motion/cmu_more`` clips played at 30 fps, their reference poses dropped (``python
#: tools/fit_gap_motion.py``; the bench's clips, ``motion/cmu``, are not among them). The face
#: follows the nose and the hands the elbow closely; a knee takes half the hip's acceleration and
#: an ankle hardly the knee's. A fast limb (a kick: the ankle 5 m/s about the hip) lets its knee
#: accelerate at 40 m/s² and more, four times the knee's RMS, which a fixed σ would call a
#: 4 σ event and straighten.
GAP_MOTION = {
    "elbow": (0.99, 4.19, 5.67), "wrist": (1.09, 4.68, 4.85), "knee": (0.47, 8.85, 10.44),
    "ankle": (0.12, 6.85, 8.23), "heel": (1.12, 5.39, 7.01), "big_toe": (0.89, 13.61, 16.60),
    "small_toe": (0.94, 11.51, 13.80), "eye": (0.96, np.nan, 0.73), "ear": (0.81, np.nan, 2.15),
}
#: Joints with a parent but no group of their own (hands, foot index): ``(β, c, σ)`` (NaN ``c``:
#: σ whatever the speed, as for the face).
DEFAULT_MOTION = (1.0, np.nan, 7.2)
#: Bone length standard deviation in the fit, m. Chosen on the one-camera runs of seeds 17-24
#: (``mocap bench track --one-camera-only --one-camera-seeds 17-24``) with a one-off prototype of
#: this fit and a first motion table: 0.01: 119 of 128 runs within 5 cm, 0.02: 117.
BONE_SIGMA_M = 0.01
#: Huber threshold of the motion term, in σ (the same prototype, seeds 17-24: 2 σ 119, 1.5 σ 118,
#: none 116).
HUBER_K = 2.0
#: Huber threshold of the ray term, in σ of the keypoint: a wrong keypoint in the one camera (an
#: outlier the filter let through: 12-13 σ off in two of the failing runs) pulls no harder than a
#: few σ. Chosen a priori; measured 121 of 128 on seeds 17-24 with or without it, 120 against 119
#: on 1-8, 123 on 9-16 either way.
RAY_HUBER_K = 3.0
#: Gauss-Newton iterations (a step under :data:`STEP_M` ends one gap's iterations earlier: a gap
#: solved with others, or in a chunk, ends where it ends alone).
ITERATIONS = 30
STEP_M = 1e-9
#: Gaps solved at once (their normal matrices take up to 16 KB each at 15 frames).
GAP_BLOCK = 2048


def gap_motion(joint_names) -> np.ndarray:
    """``(J, 2)`` each joint's ``(β, σ m/s²)`` from :data:`GAP_MOTION` (:data:`DEFAULT_MOTION`
    for the others)."""
    def group(name: str) -> str:
        return name.split("_", 1)[1] if name.startswith(("left_", "right_")) else name
    return np.array([GAP_MOTION.get(group(str(n)), DEFAULT_MOTION) for n in joint_names], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class GapEvidence:
    """What the gap fit reads, frames first (``N`` points, ``C`` cameras; a window of the take).

    Attributes:
        z: ``(T, N, C, 2)`` keypoints, px; ``var (T, N, C)`` their noise variance, px²;
            ``observed (T, N, C)`` bool.
        triangulated: ``(T, N)`` bool: the per-frame triangulation has the point.
        parent: ``(N,)`` parent point (-1: none); ``bone (T, N)`` its bone's length, m.
        motion: ``(N, 2)`` :func:`gap_motion` per point.
        filtered: ``(T, N, 3)`` the forward filter's positions; ``views (T, N)`` the cameras that
            updated each point.
    """

    z: np.ndarray
    var: np.ndarray
    observed: np.ndarray
    triangulated: np.ndarray
    parent: np.ndarray
    bone: np.ndarray
    motion: np.ndarray
    filtered: np.ndarray
    views: np.ndarray

    #: The fields with frames first (``parent`` and ``motion`` are per point).
    FRAME_FIELDS = ("z", "var", "observed", "triangulated", "bone", "filtered", "views")

    def frames(self, cut: slice) -> GapEvidence:
        """Frames ``cut`` of the window."""
        return replace(self, **{k: getattr(self, k)[cut] for k in self.FRAME_FIELDS})

    @classmethod
    def joined(cls, parts: list[GapEvidence]) -> GapEvidence:
        """Consecutive windows' evidence as one (frames concatenated)."""
        return replace(parts[0], **{k: np.concatenate([getattr(p, k) for p in parts]) for k in cls.FRAME_FIELDS})


def fit_one_view_gaps(rig: Rig, ev: GapEvidence, positions: np.ndarray, sd: np.ndarray, fps: float,
                      max_frames: int, own: tuple[int, int] | None = None,
                      edges: tuple[bool, bool] = (True, True),
                      from_smoothed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each one-view gap refitted (module docstring).

    Args:
        rig: the calibration (``C`` cameras).
        ev: the evidence over frames ``0 .. T``.
        positions: ``(T, N, 3)`` smoothed positions, m (NaN where not alive).
        sd: ``(T, N)`` their largest standard deviation, m.
        fps: frames per second.
        max_frames: longest gap fitted (``max_untriangulated_s`` in frames; longer ones are not
            reported anyway).
        own: only gaps with a frame in ``[lo, hi)`` (a chunk inside a wider window); None: all.
        edges: whether frame 0 and frame ``T - 1`` are the take's first and last (a run of
            frames touching a window edge that is not the take's cannot be judged and is left).
        from_smoothed: start Gauss-Newton from the smoothed positions, not the Viterbi choice of
            sides (the live tracker: a gap whose end has not come yet gives the Viterbi pass no
            end to aim at; in a prototype run of ``mocap bench track --one-camera-only --live``
            it broke 8 of the 128 runs on seeds 1-8, up to 41 cm off; from the live smoother's
            estimate 4, each 50-59 mm off, and the fit refines the side that estimate chose).

    Returns:
        ``(positions, sd)``: copies with the gaps' frames replaced.
    """
    gaps = find_gaps(ev, positions, max_frames, own, edges)
    out, sdo = positions.copy(), sd.copy()
    for m in np.unique(gaps[:, 2] - gaps[:, 1]) if len(gaps) else ():
        same = gaps[gaps[:, 2] - gaps[:, 1] == m]
        for lo in range(0, len(same), GAP_BLOCK):  # bounded memory: (block, 3m, 3m) normal matrices
            n, a = same[lo:lo + GAP_BLOCK, :2].T
            X, s = solve_gaps(rig, ev, positions, n, a, int(m), 1.0 / fps, from_smoothed)
            t = a[:, None] + np.arange(m)
            out[t, n[:, None]], sdo[t, n[:, None]] = X, s
    return out, sdo


def find_gaps(ev: GapEvidence, positions: np.ndarray, max_frames: int, own, edges) -> np.ndarray:
    """``(K, 3)`` ``(point, first frame, end frame)`` of each gap to fit: a run of frames where a
    point with a parent is alive but not triangulated (parent alive, bone known), at most
    ``max_frames`` long, with a frame one camera updated."""
    T, N = ev.triangulated.shape
    p = np.maximum(ev.parent, 0)
    alive = np.isfinite(positions).all(-1)
    with np.errstate(invalid="ignore"):
        mask = (~ev.triangulated & alive & alive[:, p] & np.isfinite(ev.bone) & (ev.parent >= 0))
    edge = np.zeros((1, N), bool)
    d = np.diff(np.concatenate([edge, mask, edge]).astype(np.int8), axis=0)
    n, a = np.nonzero(d.T == 1)  # ordered by point, then frame: starts and ends pair up
    b = np.nonzero(d.T == -1)[1]
    one = np.concatenate([np.zeros((1, N), np.int64), np.cumsum(ev.views == 1, axis=0)])
    keep = (b - a <= max_frames) & (one[b, n] > one[a, n])
    keep &= (a > 0) | edges[0]
    keep &= (b < T) | edges[1]
    if own is not None:
        keep &= (a < own[1]) & (b > own[0])
    return np.stack([n, a, b], axis=1)[keep]


def solve_gaps(rig: Rig, ev: GapEvidence, positions: np.ndarray, n: np.ndarray, a: np.ndarray, m: int,
               dt: float, from_smoothed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(X (K, m, 3), sd (K, m))`` for ``K`` gaps of ``m`` frames: points ``n (K,)`` from frames
    ``a (K,)``; Gauss-Newton starts from the Viterbi choice of sides, or (``from_smoothed``) from
    the smoothed positions where there are any."""
    problem, starts = gap_problem(rig, ev, positions, n, a, m, dt, from_smoothed)
    fits = [gauss_newton(start, *problem) for start in starts]
    cost = np.stack([gap_cost(Xs, *problem) for Xs, _ in fits])  # (S, K)
    best, k = np.argmin(cost, axis=0), np.arange(len(n))  # per gap; a tie keeps the smoothed start
    X, H = np.stack([f[0] for f in fits])[best, k], np.stack([f[1] for f in fits])[best, k]
    idx = np.arange(m)
    blocks = np.linalg.inv(H).reshape(-1, m, 3, m, 3)[:, idx, :, idx, :]  # (m, K, 3, 3)
    sd = np.sqrt(np.maximum(np.linalg.eigvalsh(blocks)[..., -1], 0.0)).T
    return X, sd


def gap_problem(rig: Rig, ev: GapEvidence, positions: np.ndarray, n: np.ndarray, a: np.ndarray, m: int,
                dt: float, from_smoothed: bool = False) -> tuple[tuple, list]:
    """The least-squares problem of :func:`solve_gaps`' gaps: ``(problem, starts)``, ``problem``
    the arguments after ``X`` of :func:`gauss_newton` and :func:`gap_cost` (``ends, dpar, sa,
    rays, bones``), ``starts`` the ``(K, m, 3)`` paths Gauss-Newton starts from."""
    T = len(positions)
    t = a[:, None] + np.arange(m)  # (K, m)
    te = a[:, None] - 2 + np.arange(m + 4)  # the gap and two frames either side
    inside = ((te >= 0) & (te < T))[..., None]
    tc = np.clip(te, 0, T - 1)
    p = ev.parent[n]
    own = np.where(inside, positions[tc, n[:, None]], np.nan)  # (K, m + 4, 3)
    par = np.where(inside, positions[tc, p[:, None]], np.nan)
    beta = ev.motion[n, 0]
    sigma = motion_sigma(ev.motion[n], activity(positions, ev.parent, n, tc, inside[..., 0], 1.0 / dt))
    dpar = beta[:, None, None] * (par[:, 2:] - 2 * par[:, 1:-1] + par[:, :-2])  # (K, m + 2, 3)
    rays = view_rays(rig, ev, positions, n, t)
    length = ev.bone[t, n[:, None]]
    ends = own.copy()
    ends[:, 2:-2] = np.nan
    smooth = own[:, 2:-2]
    starts = [smooth]
    if not (from_smoothed and np.isfinite(smooth).all()):  # the Viterbi choice of sides
        cand = sphere_points(*rays[:2], par[:, 2:-2], length, smooth)
        side = np.take_along_axis(cand, viterbi(cand, ends, dpar)[..., None, None], axis=2)[:, :, 0]
        starts = [np.where(np.isfinite(smooth), smooth, side)] + ([] if from_smoothed else [side])
    bones = [(par[:, 2:-2], length, np.isfinite(length))] + child_bones(ev, positions, n, t)
    return (ends, dpar, sigma * dt * dt, rays, bones), starts


def gap_cost(X: np.ndarray, ends: np.ndarray, dpar: np.ndarray, sa: np.ndarray, rays: tuple,
             bones: list) -> np.ndarray:
    """``(K,)`` the cost :func:`gauss_newton` lowers, at ``X (K, m, 3)`` (the same arguments):
    the sum of :func:`gap_terms`."""
    return sum(gap_terms(X, ends, dpar, sa, rays, bones))


def gap_terms(X: np.ndarray, ends: np.ndarray, dpar: np.ndarray, sa: np.ndarray, rays: tuple,
              bones: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(motion, ray, bone)``, each ``(K,)``, the terms of :func:`gap_cost` at ``X (K, m, 3)``:
    the Huber motion and ray terms and the squared bone terms, in σ² (the motion term says how
    unlikely the path is as motion, the others how well it explains the camera's keypoints and
    the bones)."""
    m = X.shape[1]
    O, r, sig = rays
    Y = np.concatenate([ends[:, :2], X, ends[:, m + 2:]], axis=1)  # (K, m + 4, 3)
    acc = Y[:, 2:] - 2 * Y[:, 1:-1] + Y[:, :-2] - dpar  # NaN where an end or the parent is not held
    motion = np.linalg.norm(acc, axis=-1) / sa[:, None]
    v = X - O
    lateral = np.linalg.norm(v - np.einsum("kmi,kmi->km", v, r)[..., None] * r, axis=-1) / sig
    bone = np.zeros(len(X))
    for q, length, ok in bones:
        bone += np.where(ok, ((np.linalg.norm(X - q, axis=-1) - length) / BONE_SIGMA_M) ** 2, 0.0).sum(1)
    return np.nansum(huber(motion, HUBER_K), 1), np.nansum(huber(lateral, RAY_HUBER_K), 1), bone


def huber(x: np.ndarray, k: float) -> np.ndarray:
    """Huber's ρ of ``x >= 0`` in the scale of ``x²``: ``x²`` up to ``k``, then ``2 k x - k²``."""
    return np.where(x <= k, x * x, 2 * k * x - k * k)


def activity(positions: np.ndarray, parent: np.ndarray, n: np.ndarray, t: np.ndarray, inside: np.ndarray,
             fps: float) -> np.ndarray:
    """``(K,)`` how fast the limb around each point ``n (K,)`` moves over frames ``t (K, w)``
    (``inside``: the frames that exist), m/s: the RMS speed of the vectors from its parent to each
    of its children and from the parent's parent to the parent (frame differences, where both ends
    are known); NaN where none is."""
    p = parent[n]
    kids = children(parent)[n]
    gp = np.where(p >= 0, parent[np.maximum(p, 0)], -1)
    pairs = [(kids[:, s], p) for s in range(kids.shape[1])] + [(p, gp)]
    total, count = np.zeros(len(n)), np.zeros(len(n))
    for a, b in pairs:
        ok = (a >= 0) & (b >= 0)
        rel = positions[t, np.maximum(a, 0)[:, None]] - positions[t, np.maximum(b, 0)[:, None]]
        v2 = np.sum(np.diff(rel, axis=1) ** 2, -1) * fps * fps  # (K, w - 1)
        use = ok[:, None] & inside[:, 1:] & inside[:, :-1] & np.isfinite(v2)
        total += np.where(use, v2, 0.0).sum(1)
        count += use.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(total / count)


def motion_sigma(motion: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """``(K,)`` the motion prior's σ, m/s², from :func:`gap_motion` rows ``(K, 3)`` and the limb's
    :func:`activity` ``speed (K,)``: ``c · speed``, never under the group's σ (which is also the
    answer where the speed is unknown)."""
    return np.fmax(motion[:, 1] * speed, motion[:, 2])  # NaN c or speed: the group's σ


def view_rays(rig: Rig, ev: GapEvidence, positions: np.ndarray, n: np.ndarray,
              t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per gap frame ``t (K, m)`` the ray of the camera whose keypoint lies nearest the filtered
    joint, among those that see it where the filter updated it: ``(centre (K, m, 3), unit
    direction (K, m, 3), lateral standard deviation at the joint's depth (K, m) m)``; NaN where
    no camera does."""
    x = ev.filtered[t, n[:, None]]
    x = np.where(np.isfinite(x), x, positions[t, n[:, None]])
    best = np.full(t.shape, np.inf)
    O, r, sig = np.full(t.shape + (3,), np.nan), np.full(t.shape + (3,), np.nan), np.full(t.shape, np.nan)
    updated = ev.views[t, n[:, None]] >= 1
    for c, cam in enumerate(rig.cameras):  # vectorised over gaps x frames; C is small
        seen = updated & ev.observed[t, n[:, None], c]
        if not seen.any():
            continue
        rc = pixel_to_ray(cam, np.where(seen[..., None], ev.z[t, n[:, None], c], 0.0))
        v = x - cam.center
        depth = np.einsum("kmi,kmi->km", v, rc)
        off = np.linalg.norm(v - depth[..., None] * rc, axis=-1)
        better = seen & (off < best)  # NaN offsets are never better
        best[better], O[better], r[better] = off[better], cam.center, rc[better]
        sig[better] = np.sqrt(ev.var[t, n[:, None], c][better]) * depth[better] / cam.K[0, 0]
    return O, r, sig


def sphere_points(O: np.ndarray, r: np.ndarray, parent: np.ndarray, length: np.ndarray,
                  own: np.ndarray) -> np.ndarray:
    """``(K, m, 2, 3)`` the far and near points where each ray meets the bone's sphere about the
    parent (the ray's closest point to the parent, twice, where it misses; the smoothed joint
    ``own`` twice where there is no ray)."""
    s0 = np.einsum("kmi,kmi->km", parent - O, r)
    d2 = np.maximum(np.sum((parent - O) ** 2, -1) - s0 * s0, 0.0)
    h = np.sqrt(np.maximum(length * length - d2, 0.0))
    cand = O[:, :, None] + (s0[..., None] + np.stack([h, -h], -1))[..., None] * r[:, :, None]
    return np.where(np.isfinite(cand).all(-1, keepdims=True), cand, own[:, :, None])


def viterbi(cand: np.ndarray, ends: np.ndarray, dpar: np.ndarray) -> np.ndarray:
    """``(K, m)`` which of the two ``cand (K, m, 2, 3)`` per frame, minimising the summed squared
    second difference relative to the parent (``dpar (K, m + 2, 3)``) over the gap and its held
    ends (``ends (K, m + 4, 3)``, NaN where none): second-order Viterbi, four states per frame."""
    K, m = cand.shape[:2]
    both = np.broadcast_to(ends[:, :, None], (K, m + 4, 2, 3))
    E = np.concatenate([both[:, :2], cand, both[:, m + 2:]], axis=1)  # (K, m + 4, 2, 3)
    cost, back = np.zeros((K, 2, 2)), []
    for e in range(m + 2):  # a loop over the gap's frames (at most max_frames), batched over gaps
        d = (E[:, e, :, None, None] - 2 * E[:, e + 1, None, :, None] + E[:, e + 2, None, None, :]
             - dpar[:, e, None, None, None])
        acc = np.nan_to_num(np.sum(d * d, -1), nan=0.0)  # (K, c0, c1, c2); no held end: no term
        total = cost[:, :, :, None] + acc
        back.append(np.argmin(total, axis=1))
        cost = np.min(total, axis=1)
    seq = np.zeros((K, m + 4), np.int64)
    seq[:, m + 2], seq[:, m + 3] = np.divmod(np.argmin(cost.reshape(K, 4), axis=1), 2)
    k = np.arange(K)
    for e in range(m + 1, -1, -1):
        seq[:, e] = back[e][k, seq[:, e + 1], seq[:, e + 2]]
    return seq[:, 2:m + 2]


def child_bones(ev: GapEvidence, positions: np.ndarray, n: np.ndarray, t: np.ndarray) -> list:
    """``[(child (K, m, 3), length (K, m), usable (K, m))]`` per child slot: the children the
    triangulation has in those frames, with a known bone."""
    kids = children(ev.parent)[n]  # (K, S)
    out = []
    for s in range(kids.shape[1]):
        k = np.maximum(kids[:, s], 0)[:, None]
        q, length = positions[t, k], ev.bone[t, k]
        ok = (kids[:, s] >= 0)[:, None] & ev.triangulated[t, k] & np.isfinite(length) & np.isfinite(q).all(-1)
        out.append((q, length, ok))
    return out


def children(parent: np.ndarray) -> np.ndarray:
    """``(N, S)`` each point's children (-1 pads)."""
    kid = np.flatnonzero(parent >= 0)
    order = np.argsort(parent[kid], kind="stable")
    kid, par = kid[order], parent[kid][order]
    rank = np.arange(len(par)) - np.searchsorted(par, par)
    table = np.full((len(parent), int(rank.max()) + 1 if len(rank) else 1), -1, np.int64)
    table[par, rank] = kid
    return table


def gauss_newton(X: np.ndarray, ends: np.ndarray, dpar: np.ndarray, sa: np.ndarray, rays: tuple,
                 bones: list) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Newton on the module docstring's cost from ``X (K, m, 3)``: ``(X, normal matrix
    (K, 3m, 3m))`` (the motion term reweighted each iteration, Huber)."""
    K, m = X.shape[:2]
    O, r, sig = rays
    has_ray = np.isfinite(sig) & (sig > 0)
    H_ray = np.where(has_ray[..., None, None], (np.eye(3) - r[..., :, None] * r[..., None, :])
                     / np.where(has_ray, sig, 1.0)[..., None, None] ** 2, 0.0)  # (K, m, 3, 3)
    O = np.where(has_ray[..., None], O, 0.0)
    D = np.zeros((m + 2, m + 4))
    D[np.arange(m + 2), np.arange(m + 2)], D[np.arange(m + 2), np.arange(1, m + 3)] = 1.0, -2.0
    D[np.arange(m + 2), np.arange(2, m + 4)] = 1.0
    held = np.isfinite(ends).all(-1)
    held[:, 2:m + 2] = True
    valid = held[:, :-2] & held[:, 1:-1] & held[:, 2:] & np.isfinite(dpar).all(-1)  # (K, m + 2)
    const = np.where(valid[..., None], D @ np.nan_to_num(ends) - dpar, 0.0)
    Dx, s = D[:, 2:m + 2], sa[:, None, None]
    idx, done = np.arange(m), np.zeros(K, bool)
    for _ in range(ITERATIONS):
        res = (Dx @ X + const) / s  # (K, m + 2, 3) in σ
        norm = np.linalg.norm(res, axis=-1)
        w2 = np.where(norm <= HUBER_K, 1.0, HUBER_K / np.maximum(norm, 1e-12)) * valid  # IRLS weight²
        H_acc = (Dx.T * w2[:, None, :]) @ Dx / s ** 2
        pull = (H_ray @ (X - O)[..., None])[..., 0]  # ray residual r: |r|² = (X - O)·pull
        lateral = np.sqrt(np.maximum(np.einsum("kmi,kmi->km", X - O, pull), 0.0))
        w_ray = np.where(lateral <= RAY_HUBER_K, 1.0, RAY_HUBER_K / np.maximum(lateral, 1e-12))
        g = Dx.T @ (w2[..., None] * res) / s + w_ray[..., None] * pull
        H_pt = w_ray[..., None, None] * H_ray
        for q, length, ok in bones:
            d = X - q
            h = np.linalg.norm(d, axis=-1)
            use = (ok & (h > 1e-9))[..., None]
            u = np.where(use, d / np.where(use[..., 0], h, 1.0)[..., None], 0.0) / BONE_SIGMA_M
            H_pt += u[..., :, None] * u[..., None, :]
            g += u * np.where(use[..., 0], h - length, 0.0)[..., None] / BONE_SIGMA_M
        H = (H_acc[:, :, None, :, None] * np.eye(3)[None, None, :, None, :]).reshape(K, m, 3, m, 3)
        H[:, idx, :, idx, :] += np.moveaxis(H_pt, 1, 0)
        H = H.reshape(K, 3 * m, 3 * m) + 1e-9 * np.eye(3 * m)
        step = np.linalg.solve(H, -g.reshape(K, 3 * m, 1)).reshape(K, m, 3)
        step[done] = 0.0
        X = X + step
        done |= np.abs(step).max(axis=(1, 2)) < STEP_M
        if done.all():
            break
    return X, H


def fit_in_reverse(rig: Rig, chunks, frames: int, fps: float, max_frames: int):
    """:func:`fit_one_view_gaps` over chunks that come from the last frames to the first (the
    chunked backward pass): ``chunks`` yields ``(lo, hi, positions (n, N, 3), sd (n, N),
    GapEvidence of frames lo:hi)``; yields ``(lo, hi, positions, sd)`` in the same order, each
    chunk once the chunks before it that its gaps can reach have come (``max_frames + 2`` frames;
    the same result as one pass over ``frames`` frames)."""
    margin = max_frames + 2
    held: list = []  # chunks still needed, from the highest frames down
    pending: list = []
    for chunk in chunks:
        held.append(chunk)
        pending.append(chunk)
        low = chunk[0]
        while pending and (low == 0 or pending[0][0] - margin >= low):
            lo, hi = pending.pop(0)[:2]
            w0, w1 = max(0, lo - margin), min(frames, hi + margin)
            parts = [c for c in reversed(held) if c[0] < w1 and c[1] > w0]  # ascending frames
            base = parts[0][0]
            cut = slice(w0 - base, w1 - base)
            positions = np.concatenate([c[2] for c in parts])[cut]
            sd = np.concatenate([c[3] for c in parts])[cut]
            ev = GapEvidence.joined([c[4] for c in parts]).frames(cut)
            positions, sd = fit_one_view_gaps(rig, ev, positions, sd, fps, max_frames, own=(lo - w0, hi - w0),
                                              edges=(w0 == 0, w1 == frames))
            yield lo, hi, positions[lo - w0:hi - w0], sd[lo - w0:hi - w0]
            held = [c for c in held if c[0] < lo + margin]
