"""The Kalman/RTS smoother of :func:`mocap.track.smoothing.smooth_trajectories` over chunks of
frames, with the same result as one pass over the take.

The forward (Kalman) pass runs chunk after chunk and carries its state (``x``, ``P``, which
points have started) from one chunk to the next, so every frame sees exactly what it sees in
one pass; it is the forward half of the two-sided gate, and each chunk's measurements go to
disk. The backward half runs the same filter over the chunks in reverse; then a final forward
pass without the measurements both halves refused writes each chunk's filtered and predicted
states to disk, and the backward (RTS) pass reads them back from the last chunk to the first,
carrying the smoothed state of the frame after the chunk. A chunk holds only the points alive in
it (their ids), and the gap rule reads each chunk's measurements with each point's last measured
frame before it and first after it: memory is bounded by the chunk length and the points alive in it.

:class:`ChunkedFilter` does the same for the ``ukf`` and ``online`` trackers of
:mod:`mocap.track.filter_people`: the compiled UKF's forward pass chunk after chunk with its
states carried (:func:`mocap.track.ukf_compiled.filter_frames`), then the RTS (or fixed-lag) pass over the chunks in
reverse (:func:`mocap.track.ukf_compiled.backward_chunk_kernel`), offline with each chunk's one-view gaps fitted once
the chunks they can reach are smoothed (:func:`mocap.track.one_view.fit_in_reverse`); equal to one pass to the last
bit on the synthetic crossings (tested within 1e-6 m).
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mocap.geometry import Rig
from mocap.skeleton.joints import left_right_permutation
from mocap.threads import run_blocks
from mocap.track.filter_people import (BONE_WINDOW, ODD_BONE, ForwardPass, TrackConfig, bone_lengths, gap_evidence,
                                       people_evidence, unswapped)
from mocap.track.one_view import GapEvidence, fit_in_reverse, gap_motion
from mocap.track.smoothing import SmoothConfig, filter_step, predict_step, update_step, within_short_gaps
from mocap.track.ukf import DIM, SigmaWeights, constant_velocity
from mocap.track.ukf_compiled import backward_chunk_kernel, camera_table, filter_frames, smooth_kernel

#: Frames whose filtered states (``(frames, N, 6, 6)`` twice) the chunked smoother holds at once.
SUB_FRAMES = 256
#: Measurement standard deviation where a point has no covariance, metres (as ``smooth_trajectories``).
SIGMA_M = 0.02


def motion_model(fps: float, config: SmoothConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(F, Q, H)`` of the constant-velocity model (state x y z vx vy vz) at ``fps``."""
    dt = 1.0 / fps
    F = np.eye(6)
    F[:3, 3:] = np.eye(3) * dt
    q = config.acceleration_sigma ** 2
    Q = np.kron(np.array([[dt ** 4 / 4, dt ** 3 / 2], [dt ** 3 / 2, dt ** 2]]) * q, np.eye(3))
    H = np.concatenate([np.eye(3), np.zeros((3, 3))], axis=1)
    return F, Q, H


def measurement_noise(z: np.ndarray, covariance: np.ndarray | None, config: SmoothConfig) -> np.ndarray:
    """``R (n, N, 3, 3)`` m^2 of measurements ``z (n, N, 3)``: their covariance where finite, else
    :data:`SIGMA_M` isotropic; plus ``config.min_variance_m2``."""
    n, N = z.shape[:2]
    R = np.broadcast_to(np.eye(3) * SIGMA_M ** 2, (n, N, 3, 3)).copy()
    if covariance is not None:
        good = np.isfinite(covariance).all(axis=(-1, -2))
        R[good] = covariance[good]
    return R + np.eye(3) * config.min_variance_m2


def gaps_kept(measured: np.ndarray, lo: int, prev: np.ndarray, nxt: np.ndarray, T: int, max_gap: int) -> np.ndarray:
    """:func:`mocap.track.smoothing.within_short_gaps` of frames ``lo .. lo + n`` of a take of ``T``
    frames from the chunk's ``measured (n, N)`` alone: ``prev (N,)`` each point's last measured
    frame before the chunk (-1: none), ``nxt (N,)`` its first after it (``T``: none)."""
    idx = lo + np.arange(measured.shape[0])[:, None]
    before = np.maximum(np.maximum.accumulate(np.where(measured, idx, -1), axis=0), prev)
    after = np.minimum(np.minimum.accumulate(np.where(measured, idx, T)[::-1], axis=0)[::-1], nxt)
    return measured | ((before >= 0) & (after < T) & (after - before - 1 <= max_gap))


def carried(ids: np.ndarray, old_ids: np.ndarray, old: np.ndarray, fill) -> np.ndarray:
    """``old (len(old_ids), ...)`` rows at ``ids`` (both sorted); ``fill`` for the ids not in ``old_ids``."""
    pos = np.minimum(np.searchsorted(old_ids, ids), max(len(old_ids) - 1, 0))
    have = (old_ids[pos] == ids) if len(old_ids) else np.zeros(len(ids), bool)
    out = np.full((len(ids),) + old.shape[1:], fill, dtype=old.dtype)
    out[have] = old[pos[have]]
    return out


@dataclass(eq=False)
class ChunkedSmoother:
    """Forward pass chunk by chunk (:meth:`forward`), then :meth:`backward` for every chunk.

    Each chunk may hold only the points alive in it (``ids``): a point's state is carried from
    the first chunk that holds it to the last, so memory is bounded by the points alive in a
    chunk, not by every point of the take. A point must be held by every chunk from its first
    measurement to its last (after its last, it has nothing left to change: its smoothed
    positions there are NaN and the RTS pass gets nothing back from them).

    Attributes:
        num_points: ``N`` points of the take (the ids are ``0 .. N - 1``).
        fps: frames per second.
        config: the smoother's settings.
        folder: where the chunks' states go (a temporary folder if None).
    """

    num_points: int
    fps: float
    config: SmoothConfig = field(default_factory=SmoothConfig)
    folder: Path | None = None

    def __post_init__(self):
        self.F, self.Q, self.H = motion_model(self.fps, self.config)
        self.ids = np.zeros(0, np.int64)  # the points held now (sorted), and their state:
        self.x, self.P = np.zeros((0, 6)), np.zeros((0, 6, 6))
        self.started, self.last = np.zeros(0, dtype=bool), np.zeros(0, np.int64)  # last: measured frame or -1
        self.retired = np.zeros(0, np.int64)
        self._tmp = None
        if self.folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mocap-smooth-")
            self.folder = Path(self._tmp.name)
        self.ranges: list[tuple[int, int]] = []
        self.rejected = 0
        self._settled = False

    def hold(self, ids: np.ndarray) -> None:
        """Carry the state of the points ``ids`` (sorted) into the next chunk; new ones start empty."""
        if len(self.retired) and np.isin(ids, self.retired).any():
            raise ValueError("chunked smoother: a point came back after a chunk that did not hold it; "
                             "hold every point from its first chunk to its last")
        self.retired = np.union1d(self.retired, np.setdiff1d(self.ids, ids))
        self.x, self.P = carried(ids, self.ids, self.x, 0.0), carried(ids, self.ids, self.P, 0.0)
        self.started, self.last = carried(ids, self.ids, self.started, False), carried(ids, self.ids, self.last, -1)
        self.ids = ids

    def forward(self, lo: int, z: np.ndarray, covariance: np.ndarray | None, ids: np.ndarray | None = None) -> None:
        """Filter frames ``lo .. lo + len(z)`` (consecutive after the previous call): ``z (n, N', 3)``
        metres (NaN: missing), ``covariance (n, N', 3, 3)`` or None, of the points ``ids (N',)``
        (sorted; default all ``num_points``). This is the forward half of the two-sided gate
        (:func:`mocap.track.smoothing.two_sided_rejections`); the chunk's measurements go to disk
        for the backward half and the final pass (:meth:`backward_points`)."""
        n = z.shape[0]
        if self.ranges and self.ranges[-1][1] != lo:
            raise ValueError(f"chunk at frame {lo}: expected frame {self.ranges[-1][1]} (chunks in order)")
        self.hold(np.arange(self.num_points) if ids is None else np.asarray(ids, np.int64))
        R = measurement_noise(z, covariance, self.config)
        gated = np.stack([filter_step(self.x, self.P, self.started, z[i], R[i], self.F, self.Q, self.H,
                                      self.config.gate) for i in range(n)]) if n else np.zeros((0, len(self.ids)), bool)
        np.savez(self.folder / f"measured_{len(self.ranges):06d}.npz", z=z, R=R, ids=self.ids, gated=gated)
        self.ranges.append((lo, lo + n))

    def _settle(self) -> None:
        """The backward half of the gate (chunks in reverse, each point's state carried from the
        chunk after), then the final forward pass without the measurements both halves refused,
        its states to disk for the RTS pass."""
        if self._settled:
            return
        self._settled = True
        ids, x, P, started = np.zeros(0, np.int64), np.zeros((0, 6)), np.zeros((0, 6, 6)), np.zeros(0, dtype=bool)
        for k in range(len(self.ranges) - 1, -1, -1):
            with np.load(self.folder / f"measured_{k:06d}.npz") as f:
                z, R, held, gated = f["z"], f["R"], f["ids"], f["gated"]
            x, P, started = carried(held, ids, x, 0.0), carried(held, ids, P, 0.0), carried(held, ids, started, False)
            ids = held
            for i in range(len(z) - 1, -1, -1) if self.config.gate_both_ways else ():
                gated[i] &= filter_step(x, P, started, z[i], R[i], self.F, self.Q, self.H, self.config.gate)
            np.save(self.folder / f"refused_{k:06d}.npy", gated)  # refused both ways
        self.ids, self.x, self.P = np.zeros(0, np.int64), np.zeros((0, 6)), np.zeros((0, 6, 6))
        self.started, self.last, self.retired = np.zeros(0, dtype=bool), np.zeros(0, np.int64), np.zeros(0, np.int64)
        for k, (lo, _) in enumerate(self.ranges):
            with np.load(self.folder / f"measured_{k:06d}.npz") as f:
                z, R, held = f["z"], f["R"], f["ids"]
            refused = np.load(self.folder / f"refused_{k:06d}.npy")
            self.rejected += int(refused.sum())
            self._final_chunk(k, lo, np.where(refused[..., None], np.nan, z), R, held)

    def _final_chunk(self, k: int, lo: int, z: np.ndarray, R: np.ndarray, ids: np.ndarray) -> None:
        """The final forward pass over chunk ``k`` (the refused measurements NaN): its filtered and
        predicted states to disk, ``SUB_FRAMES`` frames at a time, and what the gap rule needs."""
        n, N = z.shape[:2]
        self.hold(ids)
        prev = self.last.copy()
        measured = np.isfinite(z).all(-1)
        parts = range(0, n, SUB_FRAMES)
        for part, a in enumerate(parts):  # the states of SUB_FRAMES frames at a time in memory
            m = min(n, a + SUB_FRAMES) - a
            out = {key: np.full((m, N) + s, np.nan) for key, s in (("xs", (6,)), ("Ps", (6, 6)), ("xp", (6,)),
                                                                   ("Pp", (6, 6)))}
            for i in range(m):
                x, P, started = self.x, self.P, self.started
                predict_step(x, P, started, self.F, self.Q)
                out["xp"][i, started], out["Pp"][i, started] = x[started], P[started]
                update_step(x, P, started, z[a + i], R[a + i], self.H, np.inf)
                out["xs"][i, started], out["Ps"][i, started] = x[started], P[started]
            np.savez(self.folder / f"chunk_{k:06d}_{part:04d}.npz", **out)
        hit = measured.any(0)
        self.last[hit] = lo + n - 1 - np.argmax(measured[::-1, hit], axis=0)
        np.savez(self.folder / f"chunk_{k:06d}.npz", ids=self.ids, measured=measured, prev=prev, parts=len(parts))

    def backward_points(self):
        """Yield ``(lo, hi, ids, positions (hi - lo, N', 3))`` from the last chunk to the first, the
        points each chunk held: RTS-smoothed, NaN outside each point's measured span and in gaps
        longer than ``max_gap_s``."""
        self._settle()
        T, max_gap = (self.ranges[-1][1] if self.ranges else 0), int(np.floor(self.config.max_gap_s * self.fps))
        nxt = (np.zeros(0, np.int64), np.zeros((0, 6)), np.zeros((0, 6)), np.zeros((0, 6, 6)), np.zeros(0, np.int64))
        for k in range(len(self.ranges) - 1, -1, -1):
            lo, hi = self.ranges[k]
            with np.load(self.folder / f"chunk_{k:06d}.npz") as f:
                ids, measured, prev, parts = f["ids"], f["measured"], f["prev"], int(f["parts"])
            # the frame after (smoothed, predicted, predicted covariance) of the points held here
            after = tuple(carried(ids, nxt[0], a, np.nan) for a in nxt[1:4])
            pos = np.empty((hi - lo, len(ids), 3))
            for part in range(parts - 1, -1, -1):
                after = self._smooth_part(self.folder / f"chunk_{k:06d}_{part:04d}.npz", after,
                                          pos[part * SUB_FRAMES: (part + 1) * SUB_FRAMES])
            first = np.where(measured.any(0), lo + np.argmax(measured, axis=0), carried(ids, nxt[0], nxt[4], T))
            pos[~gaps_kept(measured, lo, prev, carried(ids, nxt[0], nxt[4], T), T, max_gap)] = np.nan
            nxt = (ids, *after, first)
            yield lo, hi, ids, pos

    def _smooth_part(self, path: Path, after: tuple, pos: np.ndarray) -> tuple:
        """The RTS pass over one part of a chunk (its states in ``path``), given ``after`` (smoothed,
        predicted, predicted covariance of the frame after it); positions into ``pos``. Returns its
        first frame's ``after`` for the part before."""
        with np.load(path) as f:
            xs, Ps, xp, Pp = f["xs"], f["Ps"], f["xp"], f["Pp"]
        sm = xs.copy()
        for i in range(len(xs) - 1, -1, -1):
            nxt = (sm[i + 1], xp[i + 1], Pp[i + 1]) if i + 1 < len(xs) else after
            ok = np.isfinite(xs[i]).all(-1) & np.isfinite(nxt[1]).all(-1)
            if ok.any():
                C = Ps[i, ok] @ self.F.T @ np.linalg.inv(nxt[2][ok])
                sm[i, ok] = xs[i, ok] + np.einsum("nij,nj->ni", C, nxt[0][ok] - nxt[1][ok])
        pos[:] = sm[..., :3]
        return sm[0], xp[0], Pp[0]

    def backward(self):
        """Yield ``(lo, hi, positions (hi - lo, N, 3))`` of every point from the last chunk to the
        first (:meth:`backward_points`, NaN for the points a chunk did not hold)."""
        for lo, hi, ids, pos in self.backward_points():
            full = np.full((hi - lo, self.num_points, 3), np.nan)
            full[:, ids] = pos
            yield lo, hi, full

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


@dataclass(eq=False)
class ChunkedFilter:
    """The ``ukf`` and ``online`` trackers (:func:`mocap.track.filter_people.filter_people`) over
    chunks of frames, with the same result as one pass.

    :meth:`add` takes each chunk's people as it is triangulated (to disk) and their bone lengths
    per frame (kept: the bones are the median over the take, ``online``: over the last
    :data:`~mocap.track.filter_people.BONE_WINDOW` frames); :meth:`forward` runs the compiled
    UKF chunk after chunk, its states carried across the borders (:func:`mocap.track.ukf_compiled.filter_frames`),
    the filtered states to disk; :meth:`backward` reads them back from the last chunk to the
    first: the RTS pass carrying the smoothed state of the frame after the chunk
    (:func:`mocap.track.ukf_compiled.backward_chunk_kernel`), ``online`` the fixed-lag pass with the ``lag`` filtered
    frames after the chunk. Kept for the whole take: ``(T, P, J)`` bone lengths and two
    ``(T, P * J)`` booleans (the gap rules).

    Attributes:
        rig: the calibration.
        joint_names: ``(J,)`` names.
        people: ``P``.
        fps: frames per second.
        config: the tracker's settings (``mode`` ``ukf`` or ``online``).
        min_confidence: weaker keypoints are not measurements.
        folder: where the chunks go (a temporary folder if None).
    """

    rig: Rig
    joint_names: tuple
    people: int
    fps: float
    config: TrackConfig
    min_confidence: float = 0.2
    folder: Path | None = None

    def __post_init__(self):
        self._tmp = None
        if self.folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mocap-ukf-")
            self.folder = Path(self._tmp.name)
        self.parent = bone_lengths(np.zeros((1, 1, len(self.joint_names), 3)), self.joint_names)[0]  # (J,)
        J = len(self.joint_names)
        self.points_parent = np.where(self.parent >= 0, self.parent + J * np.arange(self.people)[:, None],
                                      -1).ravel().astype(np.int64)  # (P * J,) flat, person-major
        self.points_motion = np.tile(gap_motion(self.joint_names), (self.people, 1))
        self.ranges: list[tuple[int, int]] = []
        self.lengths: list[np.ndarray] = []  # (n, P, J) per chunk
        self.updated: list[np.ndarray] = []  # (n, N) per chunk: views > 0
        self.triangulated: list[np.ndarray] = []  # (n, N)
        self._median = None  # (frames, (P, J) the take's median bone lengths), once per take

    def add(self, lo: int, person: np.ndarray, points: np.ndarray, inliers: np.ndarray) -> None:
        """Frames ``lo .. lo + n`` (consecutive after the previous call): ``person (n, P, C, J, 3)``,
        their per-frame triangulation ``points (n, P, J, 3)`` and its kept views ``inliers (n, P, J, C)``."""
        if self.ranges and self.ranges[-1][1] != lo:
            raise ValueError(f"chunk at frame {lo}: expected frame {self.ranges[-1][1]} (chunks in order)")
        n = len(person)
        person = unswapped(self.rig, person, points, self.joint_names)
        np.savez(self.folder / f"people_{len(self.ranges):06d}.npz", person=person, points=points, inliers=inliers)
        parent = self.parent
        with np.errstate(invalid="ignore"):  # as bone_lengths
            self.lengths.append(np.where(parent >= 0, np.linalg.norm(points - points[:, :, np.maximum(parent, 0)],
                                                                     axis=-1), np.nan))
        self.triangulated.append(np.isfinite(points).all(-1).reshape(n, -1))
        self.ranges.append((lo, lo + n))

    def bones(self, k: int) -> np.ndarray:
        """``(n, P, J)`` the bone lengths chunk ``k`` is filtered with (:func:`bone_lengths`)."""
        lo, hi = self.ranges[k]
        if len(self.lengths) > 1:
            self.lengths = [np.concatenate(self.lengths)]
        per_frame = self.lengths[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # joints never seen with their parent
            if self.config.mode != "online":
                if self._median is None or self._median[0] != len(per_frame):
                    self._median = (len(per_frame), np.nanmedian(per_frame, axis=0))  # once per take
                return np.broadcast_to(self._median[1], (hi - lo,) + per_frame.shape[1:])
            a = max(0, lo - BONE_WINDOW + 1)
            padded = np.concatenate([np.full((BONE_WINDOW - 1 - (lo - a),) + per_frame.shape[1:], np.nan),
                                     per_frame[a:hi]])
            windows = np.lib.stride_tricks.sliding_window_view(padded, BONE_WINDOW, axis=0)
            length = np.empty((hi - lo,) + per_frame.shape[1:])
            for s in range(0, hi - lo, 64):  # bounded memory, as bone_lengths
                length[s:s + 64] = np.nanmedian(windows[s:s + 64], axis=-1)
            return length

    def forward(self) -> None:
        """The forward UKF over every chunk :meth:`add` took, in order, its states carried."""
        cfg, J, P = self.config, len(self.joint_names), self.people
        N = P * J
        F, Q = constant_velocity(1.0 / self.fps, cfg.acceleration_sigma)
        self.F, self.Q = F, np.ascontiguousarray(np.broadcast_to(Q, (N, DIM, DIM)))
        w = SigmaWeights.merwe()
        settings = (float(cfg.gate), int(np.floor(cfg.max_gap_s / abs(F[0, 3]))), float(cfg.restart_m),
                    int(cfg.restart_frames), float(cfg.bone_sigma_m), float(cfg.start_velocity_sigma), ODD_BONE)
        state = (np.zeros((N, DIM)), np.zeros((N, DIM, DIM)), np.zeros(N, bool), np.zeros(N, np.int64),
                 np.zeros(N, np.int64))
        cams = camera_table(self.rig)
        parents = self.points_parent
        no_bones = replace(cfg, mode="ukf")  # the evidence's bones are set here (causal ones too)
        mirror = left_right_permutation(self.joint_names).astype(np.int64)
        for k, (lo, hi) in enumerate(self.ranges):
            n = hi - lo
            with np.load(self.folder / f"people_{k:06d}.npz") as f:
                person, points, inliers = f["person"], f["points"], f["inliers"]
            ev = people_evidence(person, points, no_bones, self.min_confidence, inliers)
            evt = (np.array(ev.z, order="C"), np.array(ev.var, order="C"), np.array(ev.observed, order="C"),
                   np.ascontiguousarray(ev.start), parents, np.empty((n, N)))  # copies: swapped views relabelled
            evt[-1][:] = self.bones(k).reshape(n, N)  # a fresh C array: one compiled signature
            out = (np.full((n, N, DIM), np.nan), np.full((n, N, DIM, DIM), np.nan), np.zeros((n, N), bool),
                   np.zeros((n, N), np.int64))
            run_blocks(filter_frames, P, J, evt, cams, F, self.Q, (w.wm, w.wc, w.lam), settings, out, mirror,
                       state)
            state[3][:] -= n  # last update counted from the next chunk's first frame
            np.savez(self.folder / f"filtered_{k:06d}.npz", xs=out[0], Ps=out[1], linked=out[2])
            if self.config.fits_one_view_gaps:  # what the one-view gap fit reads in the backward pass
                gaps = gap_evidence(replace(ev, bone=evt[-1]), ForwardPass(*out))
                np.savez(self.folder / f"gaps_{k:06d}.npz", **{f: getattr(gaps, f) for f in GapEvidence.FRAME_FIELDS})
            (self.folder / f"people_{k:06d}.npz").unlink()
            self.updated.append(out[3] > 0)

    def backward(self):
        """Yield ``(lo, hi, positions (hi - lo, P, J, 3))`` from the last chunk to the first:
        smoothed (``online``: each frame with the ``lag_frames`` after it), one-view gaps fitted
        (offline ``ukf``: :func:`mocap.track.one_view.fit_in_reverse`), NaN where one pass
        reports none (:func:`mocap.track.filter_people.filter_points`' rules)."""
        cfg, J, P = self.config, len(self.joint_names), self.people
        keep = within_short_gaps(np.concatenate(self.updated), int(np.floor(cfg.max_gap_s * self.fps)))
        max_untriangulated = int(np.floor(cfg.max_untriangulated_s * self.fps))
        keep &= within_short_gaps(np.concatenate(self.triangulated), max_untriangulated)
        chunks = self.smoothed()
        if cfg.fits_one_view_gaps:
            chunks = fit_in_reverse(self.rig, chunks, self.ranges[-1][1], self.fps, max_untriangulated)
        for lo, hi, positions, sd, *_ in chunks:
            ok = keep[lo:hi] & (sd <= cfg.max_sigma_m)
            yield lo, hi, np.where(ok[..., None], positions, np.nan).reshape(hi - lo, P, J, 3)

    def smoothed(self):
        """Yield ``(lo, hi, positions (n, N, 3), sd (n, N), GapEvidence or None)`` from the last
        chunk to the first: the backward pass (and what the gap fit reads, where
        :attr:`~mocap.track.filter_people.TrackConfig.fits_one_view_gaps`)."""
        cfg, N = self.config, self.people * len(self.joint_names)
        carry = (np.zeros((N, DIM)), np.zeros((N, DIM, DIM)), np.zeros(N, bool))  # the frame after the chunk
        lag = cfg.lag_frames
        after = (np.zeros((0, N, DIM)), np.zeros((0, N, DIM, DIM)), np.zeros((0, N), bool))  # online: lag frames
        for k in range(len(self.ranges) - 1, -1, -1):
            lo, hi = self.ranges[k]
            n = hi - lo
            with np.load(self.folder / f"filtered_{k:06d}.npz") as f:
                xs, Ps, linked = f["xs"], f["Ps"], f["linked"]
            if cfg.mode == "online":
                xs, Ps, linked = (np.concatenate([a, b]) for a, b in zip((xs, Ps, linked), after))
                after = (xs[:lag], Ps[:lag], linked[:lag])
            positions, sd = np.full((len(xs), N, 3), np.nan), np.full((len(xs), N), np.nan)
            if cfg.mode == "online":
                run_blocks(smooth_kernel, N, xs, Ps, self.F, self.Q, linked, lag, positions, sd, min_block=16)
            else:
                run_blocks(backward_chunk_kernel, N, xs, Ps, self.F, self.Q, linked, carry, positions, sd, min_block=16)
            ev = None
            if cfg.fits_one_view_gaps:
                with np.load(self.folder / f"gaps_{k:06d}.npz") as f:
                    ev = GapEvidence(parent=self.points_parent, motion=self.points_motion,
                                     **{key: f[key] for key in f.files})
            yield lo, hi, positions[:n], sd[:n], ev

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
