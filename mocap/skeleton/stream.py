"""The skeleton solve in chunks of frames: the same numbers as :func:`mocap.skeleton.solve.solve_skeleton`,
with peak memory independent of the take's length.

:func:`solve_skeleton` works on whole-take arrays (``(T, J, 3, 3)`` rotations and a few copies of
them). Here every per-frame array lives in a :class:`FrameStore` (raw files in a temporary folder,
read and written a chunk of frames at a time with ordinary file I/O, so they sit in the page cache,
not in the process) and the solve runs joint by joint, in parent order, as :func:`solve_skeleton`
does, each joint in a few passes over the chunks:

- the whole-take choices are made on small per-frame vectors, exactly as the one-pass solve makes
  them: which joints have data, the rest offset (the robust median of a ``(T, 3)`` sample), the
  stretching offsets (``(T, 3)``, interpolated through gaps), the twist kept continuous over the
  take (``(T,)``), the frames a rotation is oriented on (``(T,)``);
- everything else (swing, twist, FK, the slerp through frames a joint cannot be oriented on, with
  the key frames on either side of a chunk read back from the store) is computed chunk by chunk
  with the one-pass solve's own functions, so each number is the same to the last bit.

Gap filling reads each chunk with ``max_gap + 1`` frames either side (:func:`fill_gaps` only
interpolates between samples that close). A source is anything with ``num_frames``,
``num_people``, ``joint_names``, ``track_ids``, ``fps`` and ``read_positions(start, stop)``
(``(n, P, J, 3)``): :class:`mocap.export.source.TracksSource`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from mocap.errors import MocapError
from mocap.skeleton.animation import SkeletonAnimation, forward_kinematics
from mocap.skeleton.hierarchy import Skeleton, resolve_skeleton
from mocap.skeleton.solve import (
    RIGID_STRETCH_M,
    SolveConfig,
    apply_twist,
    continuous_twist,
    fill_gaps,
    fill_positions,
    joint_swing,
    observed_local,
    pair_offsets,
    robust_median,
    stretch_from_local,
)

log = logging.getLogger(__name__)

#: Frames per chunk unless told otherwise.
DEFAULT_CHUNK_FRAMES = 1024


class FrameStore:
    """Per-frame arrays ``(T, ...)`` float64 in raw files under ``folder``, written and read a range
    of frames at a time (``write(name, start, values)``, ``read(name, start, stop)``)."""

    def __init__(self, folder: str | os.PathLike, num_frames: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.num_frames = num_frames
        self._shapes: dict[str, tuple[int, ...]] = {}

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.f8"

    def write(self, name: str, start: int, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=np.float64)
        shape = self._shapes.setdefault(name, values.shape[1:])
        if values.shape[1:] != shape:
            raise ValueError(f"frame store {name}: rows of shape {shape}, got {values.shape[1:]}")
        path = self._path(name)
        with open(path, "r+b" if path.exists() else "wb") as f:
            f.seek(start * 8 * int(np.prod(shape, dtype=np.int64)))
            f.write(values.tobytes())

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        shape = self._shapes[name]
        size = int(np.prod(shape, dtype=np.int64))
        data = np.fromfile(self._path(name), dtype=np.float64, count=(stop - start) * size, offset=start * 8 * size)
        return data.reshape((stop - start,) + shape)

    def rows(self, name: str, frames: np.ndarray, start: int, block: np.ndarray) -> np.ndarray:
        """Rows ``frames`` of ``name``; those in ``[start, start + len(block))`` come from ``block``."""
        out = np.empty((len(frames),) + self._shapes[name])
        inside = (frames >= start) & (frames < start + len(block))
        out[inside] = block[frames[inside] - start]
        for i in np.flatnonzero(~inside):
            out[i] = self.read(name, int(frames[i]), int(frames[i]) + 1)[0]
        return out

    def drop(self, name: str) -> None:
        self._shapes.pop(name, None)
        self._path(name).unlink(missing_ok=True)


def chunk_ranges(num_frames: int, chunk_frames: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(num_frames)`` in chunks of ``chunk_frames``."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames: expected >= 1, got {chunk_frames}")
    return [(a, min(a + chunk_frames, num_frames)) for a in range(0, num_frames, chunk_frames)]


def windows(source, chunk_frames: int, halo: int):
    """``(start, stop, window, lead)`` per chunk: ``window`` the positions of frames
    ``[start - lead, min(T, stop + halo))``, ``lead = min(start, halo)``. Each frame is read once."""
    T = source.num_frames
    buf, buf_start, read_to = None, 0, 0
    for a, b in chunk_ranges(T, chunk_frames):
        need = min(T, b + halo)
        if need > read_to:
            new = source.read_positions(read_to, need)
            buf = new if buf is None else np.concatenate([buf, new])
            read_to = need
        lead = min(a, halo)
        keep = a - lead - buf_start
        buf, buf_start = buf[keep:], a - lead
        yield a, b, buf[: need - buf_start], lead


@dataclass(eq=False)
class StreamedFit:
    """One person's solved skeleton, its per-frame arrays in a :class:`FrameStore`.

    ``chunk(start, stop)`` is the :class:`SkeletonAnimation` of those frames (the same numbers
    :func:`solve_skeleton`'s animation has there); the rest is what the exporters report.
    """

    name: str
    skeleton: Skeleton
    offsets: np.ndarray
    fps: float
    num_frames: int
    store: FrameStore
    stretched: tuple[int, ...]
    present_frames: int = 0
    residual_summary: dict = field(default_factory=dict)
    stretching: np.ndarray | None = None
    stretch_change: np.ndarray | None = None  # (J, 2) shortest and longest change from rest, metres

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.skeleton.joint_names

    @property
    def parents(self) -> np.ndarray:
        return self.skeleton.parents

    def chunk(self, start: int, stop: int) -> SkeletonAnimation:
        J = len(self.joint_names)
        local = np.stack([self.store.read(f"local{j}", start, stop) for j in range(J)], axis=1)
        root = self.store.read("root", start, stop)
        trans = None
        if self.stretched:
            trans = np.broadcast_to(self.offsets, (stop - start, J, 3)).copy()
            for j in self.stretched:
                trans[:, j] = self.store.read(f"moved{j}", start, stop)
        return SkeletonAnimation(self.joint_names, self.parents, self.offsets, local, root, self.fps, self.name, trans)


def solve_stream(source, folder: str | os.PathLike, config: SolveConfig | None = None,
                 chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> list[StreamedFit]:
    """:func:`mocap.skeleton.solve.solve_tracks` over ``source`` in chunks of frames; each person's
    arrays under ``folder/person_<id>``. People who cannot be solved are skipped with a warning.

    Raises:
        MocapError: when no person can be solved.
    """
    cfg = config or SolveConfig()
    T, names = source.num_frames, tuple(source.joint_names)
    if T < 1:
        raise MocapError("tracks: no frames to export")
    max_gap = max(0, int(round(cfg.max_gap_s * source.fps)))
    who = [f"person_{int(t)}" for t in source.track_ids]
    stores = [FrameStore(Path(folder) / w, T) for w in who]
    available = np.zeros((len(who), len(names)), bool)
    for a, b, win, lead in windows(source, chunk_frames, max_gap + 1):
        for p, store in enumerate(stores):
            filled = fill_gaps(win[:, p], max_gap)[lead : lead + b - a]
            available[p] |= np.isfinite(filled).all(axis=-1).any(axis=0)
            store.write("filled", a, filled)
            store.write("raw", a, win[lead : lead + b - a, p])
    fits, reasons = [], []
    for p, store in enumerate(stores):
        try:
            fits.append(_solve_person(store, names, available[p], source.fps, who[p], cfg, chunk_frames))
        except MocapError as exc:
            log.warning("skipping %s", exc)
            reasons.append(str(exc))
        store.drop("filled")
    if not fits:
        raise MocapError("no person could be solved: " + "; ".join(reasons))
    return fits


def _solve_person(store: FrameStore, names: tuple[str, ...], available: np.ndarray, fps: float, name: str,
                  cfg: SolveConfig, chunk_frames: int) -> StreamedFit:
    """:func:`solve_skeleton` of one person whose gap-filled points are ``store``'s ``filled``."""
    T = store.num_frames
    chunks = chunk_ranges(T, chunk_frames)
    if not available.all():
        log.warning("%s: no data at all for %s; left out of the skeleton", name, ", ".join(np.array(names)[~available]))
    skel = resolve_skeleton(names, available, who=name)
    hips = [skel.point_index(p) for p in ("pelvis", "left_hip", "right_hip")]
    present, pelvis = 0, np.empty((T, 3))
    for a, b in chunks:
        pts = skel.points(store.read("filled", a, b))
        store.write("pts", a, pts)
        present += int(np.isfinite(pts[:, hips]).all(axis=(1, 2)).sum())
        pelvis[a:b] = pts[:, skel.point_index("pelvis")]
    if present < cfg.min_frames:
        raise MocapError(f"{name}: pelvis and hips seen in only {present} of {T} frames "
                         f"(needs at least {cfg.min_frames}); drop this person or lower min_frames")
    root = fill_positions(pelvis)
    del pelvis
    for a, b in chunks:
        store.write("root", a, root[a:b])
    offsets, known, stretched = _solve_joints(store, skel, cfg, name, chunks, root)
    del root
    offsets = pair_offsets(offsets, known, skel.joint_names, cfg.symmetric_bones)
    J = len(skel.joints)
    rest = SkeletonAnimation(skel.joint_names, skel.parents, offsets, np.eye(3)[None, None].repeat(J, 1), np.zeros((1, 3)), fps)
    offsets[0] = [0.0, 0.0, -forward_kinematics(rest)[0][0, :, 2].min()]  # rest: lowest joint on the floor
    store.drop("pts")
    fit = StreamedFit(name, skel, offsets, fps, T, store, tuple(sorted(stretched)), present)
    _summarise(fit, chunks)
    return fit


def _solve_joints(store: FrameStore, skel: Skeleton, cfg: SolveConfig, name: str, chunks, root: np.ndarray):
    """Rest offsets ``(J, 3)``, which were estimated and the stretching joints, one joint at a time in
    parent order (:func:`mocap.skeleton.solve._solve_joints`); writes ``local<j>``, ``moved<j>``."""
    J = len(skel.joints)
    offsets, known, stretched = np.zeros((J, 3)), np.zeros(J, bool), set()
    last_child = {p: j for j, p in enumerate(skel.parents) if p >= 0}
    for j, spec in enumerate(skel.joints):
        p = skel.parents[j]
        if p < 0:
            for a, b in chunks:
                store.write(f"model{j}", a, root[a:b])
        else:
            offsets[j], known[j] = _joint_offset(store, skel, j, cfg, name, chunks)
            if _place_joint(store, skel, j, offsets[j], known[j], cfg, chunks):
                stretched.add(j)
        if spec.primary is None:  # leaf: follows its parent
            for a, b in chunks:
                parent = store.read(f"glob{p}", a, b)
                store.write(f"local{j}", a, np.broadcast_to(np.eye(3), parent.shape))
                store.write(f"glob{j}", a, parent)
                store.write(f"raw{j}", a, np.full(parent.shape, np.nan))
        else:
            _orient_joint(store, skel, j, cfg, name, chunks)
        if p >= 0 and last_child[p] == j:
            for kind in ("model", "glob", "raw"):
                store.drop(f"{kind}{p}")
    for j in range(J):
        if j not in last_child:
            for kind in ("model", "glob", "raw"):
                store.drop(f"{kind}{j}")
    return offsets, known, stretched


def _joint_offset(store: FrameStore, skel: Skeleton, j: int, cfg: SolveConfig, who: str, chunks):
    """:func:`mocap.skeleton.solve._joint_offset` with its samples gathered chunk by chunk."""
    spec, p = skel.joints[j], skel.parents[j]
    names = skel.joint_names
    if spec.at == skel.joints[p].at:
        return np.zeros(3), True
    at, parent_pt = skel.point_index(spec.at), skel.point_index(skel.joints[p].at)
    lengths, samples = [], []
    for a, b in chunks:
        pts = store.read("pts", a, b)
        parent_raw = store.read(f"raw{p}", a, b)
        d = pts[:, at] - store.read(f"model{p}", a, b)
        length = np.linalg.norm(pts[:, at] - pts[:, parent_pt], axis=-1)
        lengths.append(length[np.isfinite(length)])
        ok = np.isfinite(parent_raw).all(axis=(1, 2)) & np.isfinite(d).all(axis=-1)
        samples.append(np.einsum("tji,tj->ti", parent_raw[ok], d[ok]))
    length = np.concatenate(lengths)
    if length.size and np.median(length) < cfg.min_bone_m:
        log.warning("%s: bone %s -> %s has zero length (median %.4f m); check the input for merged joints",
                    who, names[p], spec.name, np.median(length))
        return np.zeros(3), False
    local = np.concatenate(samples)
    if not len(local):
        log.warning("%s: %s never oriented together with %s; bone length unknown", who, spec.name, names[p])
        return np.zeros(3), False
    return robust_median(local, cfg.outlier_mad), True


def _place_joint(store: FrameStore, skel: Skeleton, j: int, offset: np.ndarray, known: bool, cfg: SolveConfig,
                 chunks) -> bool:
    """Write joint ``j``'s FK position ``model<j>`` (and ``moved<j>``, its per-frame offset, where it
    stretches); returns whether it stretches."""
    spec, p = skel.joints[j], skel.parents[j]
    moved = None
    if cfg.stretch and spec.stretch and known:
        at = skel.point_index(spec.at)
        local = np.concatenate([observed_local(store.read("pts", a, b)[:, at], store.read(f"model{p}", a, b),
                                               store.read(f"glob{p}", a, b)) for a, b in chunks])
        moved = stretch_from_local(local, offset, cfg.stretch_limits)
        del local
        if not np.abs(moved - offset).max() > RIGID_STRETCH_M:  # a rigid input keeps its rest lengths
            moved = None
    for a, b in chunks:
        model, parent = store.read(f"model{p}", a, b), store.read(f"glob{p}", a, b)
        if moved is None:
            store.write(f"model{j}", a, model + parent @ offset)
        else:
            store.write(f"moved{j}", a, moved[a:b])
            store.write(f"model{j}", a, model + np.einsum("tab,tb->ta", parent, moved[a:b]))
    return moved is not None


def _orient_joint(store: FrameStore, skel: Skeleton, j: int, cfg: SolveConfig, name: str, chunks) -> None:
    """Joint ``j``'s global rotations (``raw<j>``, NaN where not oriented), local rotations
    (``local<j>``: slerped through the frames it is not oriented on) and ``glob<j>``."""
    spec, p = skel.joints[j], skel.parents[j]
    T = store.num_frames

    def parent_glob(a, b):
        return store.read(f"glob{p}", a, b) if p >= 0 else np.broadcast_to(np.eye(3), (b - a, 3, 3))

    def swing(a, b):
        pts, parent = store.read("pts", a, b), parent_glob(a, b)
        start = store.read(f"model{j}", a, b) if spec.primary.start == spec.at else None
        return parent, joint_swing(spec, skel, pts, parent, cfg, start)

    valid, phis, ws = np.zeros(T, bool), [], []
    for a, b in chunks:
        _, (valid[a:b], _, phi, w) = swing(a, b)
        if phi is not None:
            phis.append(phi)
            ws.append(w)
    twist = continuous_twist(np.concatenate(phis), np.concatenate(ws)) if phis else None
    ws = np.concatenate(ws) if phis else None
    done = 0
    for a, b in chunks:
        parent, (ok, parts, _, _) = swing(a, b)
        glob_raw = np.full((b - a, 3, 3), np.nan)
        n = int(ok.sum())
        if n:
            glob_raw[ok] = apply_twist(parts, None if twist is None else twist[done : done + n],
                                       None if twist is None else ws[done : done + n])
        done += n
        store.write(f"raw{j}", a, glob_raw)
        raw_local = np.swapaxes(parent, -1, -2) @ np.where(ok[:, None, None], glob_raw, np.eye(3))
        store.write(f"local{j}", a, raw_local if valid.any() else np.broadcast_to(np.eye(3), raw_local.shape))
    if not valid.any():
        log.warning("%s: %s cannot be oriented in any frame (zero-length or missing bone); left at rest", name, spec.name)
    elif not valid.all():
        _slerp_gaps(store, f"local{j}", valid, chunks)
    for a, b in chunks:
        store.write(f"glob{j}", a, parent_glob(a, b) @ store.read(f"local{j}", a, b))


def _slerp_gaps(store: FrameStore, name: str, valid: np.ndarray, chunks) -> None:
    """:func:`mocap.skeleton.solve._fill_rotations` of ``name`` chunk by chunk: the slerp between the
    valid frames (keys on either side of a chunk read back), held at the ends. Every frame is
    replaced by the slerp's value, as in the one-pass solve."""
    good = np.flatnonzero(valid)
    if good.size == 1:
        key = store.read(name, int(good[0]), int(good[0]) + 1)[0]
        for a, b in chunks:
            store.write(name, a, np.broadcast_to(key, (b - a, 3, 3)))
        return
    for a, b in chunks:  # into a second file: a later chunk reads keys an earlier one would overwrite
        t = np.clip(np.arange(a, b), good[0], good[-1])
        i0 = max(int(np.searchsorted(good, t[0])) - 1, 0)
        i1 = max(int(np.searchsorted(good, t[-1])), i0 + 1)
        keys = good[i0 : i1 + 1]
        mats = store.rows(name, keys, a, store.read(name, a, b))
        store.write(name + "_slerp", a, Slerp(keys, Rotation.from_matrix(mats))(t).as_matrix())
    for a, b in chunks:
        store.write(name, a, store.read(name + "_slerp", a, b))
    store.drop(name + "_slerp")


def _summarise(fit: StreamedFit, chunks) -> None:
    """The FK residual summary, which joints stretch and by how much (:func:`solve_skeleton`'s log
    line, :meth:`SkeletonFit.residual_summary`, :meth:`SkeletonAnimation.stretching`)."""
    skel, store = fit.skeleton, fit.store
    J = len(skel.joints)
    at = [skel.point_index(s.at) for s in skel.joints]
    residual = np.empty((fit.num_frames, J))
    deviation, lo, hi = np.zeros(J), np.full(J, np.inf), np.full(J, -np.inf)
    rest_length = np.linalg.norm(fit.offsets, axis=-1)
    for a, b in chunks:
        anim = fit.chunk(a, b)
        fk, _ = forward_kinematics(anim)
        residual[a:b] = np.linalg.norm(fk - skel.points(store.read("raw", a, b))[:, at], axis=-1)
        if anim.translations is not None:
            deviation = np.maximum(deviation, np.abs(anim.translations - anim.offsets).max(axis=(0, 2)))
        change = np.linalg.norm(anim.local_translations(), axis=-1) - rest_length
        lo, hi = np.minimum(lo, change.min(axis=0)), np.maximum(hi, change.max(axis=0))
    store.drop("raw")
    fit.stretching = deviation > 1e-9
    fit.stretching[0] = False
    fit.stretch_change = np.stack([lo, hi], axis=-1)
    out = {}
    for j, name in enumerate(fit.joint_names):
        r = residual[:, j]
        r = r[np.isfinite(r)]
        out[name] = (float(np.median(r)), float(r.max())) if r.size else (float("nan"), float("nan"))
    fit.residual_summary = out
    worst = np.nanmax(residual, axis=0) if np.isfinite(residual).any() else np.full(J, np.nan)
    log.info("%s: solved %d joints over %d frames (present in %d); FK residual median %.4f m, worst %s %.4f m",
             fit.name, J, fit.num_frames, fit.present_frames, np.nanmedian(residual),
             fit.joint_names[int(np.nanargmax(worst))], np.nanmax(worst))
