"""The live tracker: frames pushed one at a time, each frame's people emitted ``lag_frames`` later.

Per pushed frame (all of it causal, decided from this frame and the ones before):

1. **Identities** (:class:`mocap.track.affinity.FrameMatcher`): every view's 2D people are matched
   to the existing tracks' predicted projections (temporal affinity), the rest grouped across
   views by the epipolar matching (:mod:`mocap.match.epipolar`); a group of two views or more
   continues a track lost lately near it, else starts a new one. Each track's views are
   triangulated on their own (robust), each view's left/right labels checked against the
   track's predicted joints where the offline run checks them against the neighbouring frames
   (``reference`` of :func:`mocap.triangulation.triangulate_robust`: a swap in two of four views
   is a tie no single frame breaks).
2. **Track states**: a track is *tentative* until triangulated in ``LinkConfig.min_track_s``
   worth of frames, then *confirmed* (only confirmed tracks are emitted, and not those whose
   body centre lay outside the capture volume in most of their frames so far: bystanders,
   :func:`mocap.track.linking.without_bystanders`); a confirmed track
   without views this frame is *coasting* (its filter predicts; its joints end after
   ``TrackConfig.max_gap_s``); a track unseen for ``LinkConfig.max_gap_s`` has *ended*, and its
   last ``lag`` frames are still emitted before it is dropped.
3. **Filter**: one step of the compiled UKF of the offline tracker
   (:func:`mocap.track.ukf_compiled.filter_frames`, the offline filter's frame loop, left/right
   swap hypotheses included, with the states carried between calls) on the
   2D keypoints each camera gave the track, bones held at the median of their lengths over the
   last :data:`~mocap.track.filter_people.BONE_WINDOW` frames (what a live run knows).
4. **Fixed-lag smoothing**: frame ``t - lag`` is the RTS smoother over the ``lag + 1`` filtered
   frames ``t - lag … t`` (the ``online`` mode's fixed-lag smoother); a joint that one camera
   alone sees there, inside a run of untriangulated frames, is then refitted over that run so far
   (``track.one_view_fit``: :func:`mocap.track.one_view.fit_one_view_gaps` on the frames emitted
   before it as they were emitted and frames ``t - lag … t`` as smoothed now, the run's end free,
   Gauss-Newton from the smoothed estimate), reported where the filter
   updated the joint within ``max_gap_s``, the triangulation had it within
   ``max_untriangulated_s`` (both counted up to that frame: the offline mode also looks at how
   a gap ends) and its smoothed position is within ``max_sigma_m``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numba
import numpy as np

from mocap.geometry import Rig
from mocap.skeleton.joints import left_right_permutation
from mocap.track.affinity import FrameMatcher, nan_median
from mocap.track.filter_people import BONE_WINDOW, ODD_BONE, bone_lengths, people_evidence, unswapped
from mocap.track.linking import body_centres, cameras_seeing
from mocap.track.one_view import GapEvidence, fit_one_view_gaps, gap_motion
from mocap.track.ukf import DIM, SigmaWeights, constant_velocity
from mocap.track.ukf_compiled import camera_table, filter_frames, smooth_kernel


@dataclass(frozen=True, eq=False)
class OnlineFrame:
    """The people of one frame as the live tracker emits them."""

    frame_index: int
    """Which frame these estimates are of (the pushed frame's index minus the lag)."""
    ids: np.ndarray
    """``(K,)`` int: the confirmed tracks' identities, stable over the take."""
    positions: np.ndarray
    """``(K, J, 3)`` metres, NaN where a joint is not reported."""


@dataclass(eq=False)
class _TrackFilter:
    """One track's filter and the frames it still has to emit."""

    x: np.ndarray
    P: np.ndarray
    alive: np.ndarray
    last: np.ndarray
    strikes: np.ndarray
    bones: np.ndarray
    """``(BONE_WINDOW, J)`` per-frame bone lengths, newest last."""
    since_view: np.ndarray
    since_tri: np.ndarray
    seen: int = 0
    ended_at: int = -1
    inside: list = field(default_factory=list)
    """Cameras whose field of view held the body centre, per triangulated frame (the last
    :data:`BONE_WINDOW`): a track mostly outside the capture volume is a bystander, not emitted."""
    history: list = field(default_factory=list)
    """The last ``lag + 1`` frames: ``(xs (J, 6), Ps (J, 6, 6), linked (J,), since_view, since_tri)``."""
    evidence: list = field(default_factory=list)
    """What the one-view gap fit reads of the last frames (one :class:`GapEvidence` per frame)."""
    past: list = field(default_factory=list)
    """The last emitted frames before the gate: ``(frame, positions (J, 3), sd (J,))``."""

    @classmethod
    def new(cls, J: int, far: int) -> _TrackFilter:
        return cls(np.zeros((J, DIM)), np.zeros((J, DIM, DIM)), np.zeros(J, bool), np.full(J, -far, np.int64),
                   np.zeros(J, np.int64), np.full((BONE_WINDOW, J), np.nan), np.full(J, far), np.full(J, far))


class OnlineTracker:
    """Frame-by-frame tracker: :meth:`push` a frame's 2D people of every view, get back the
    people of the frame ``lag`` frames earlier (:class:`OnlineFrame`), :meth:`flush` at the end.

    Args:
        rig: the calibration (views in its camera order).
        joint_names: ``(J,)`` the keypoints' joint names.
        fps: frames per second.
        config: a :class:`mocap.config.ProcessConfig` (``match``, ``triangulate``, ``link``,
            ``track``: ``lag_frames`` and the filter's settings); defaults if None.
    """

    def __init__(self, rig: Rig, joint_names, fps: float, config=None):
        from mocap.config import ProcessConfig

        config = config or ProcessConfig()
        if not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps: expected a positive number, got {fps}")
        self.rig, self.names, self.fps = rig, tuple(joint_names), float(fps)
        self.track = replace(config.track, mode="online")
        self.min_confidence = config.triangulate.min_confidence
        self.matcher = FrameMatcher(rig, self.names, fps, config.match, config.triangulate, config.link)
        self.lag = int(self.track.lag_frames)
        self.confirm = max(1, int(np.ceil(config.link.min_track_s * fps)))
        self.volume = min(config.link.volume_cameras, len(rig))  # 0: bystanders emitted too
        self.F, Q = constant_velocity(1.0 / fps, self.track.acceleration_sigma)
        self.Q1 = np.ascontiguousarray(Q)
        self.cams = camera_table(rig)
        w = SigmaWeights.merwe()
        self.weights = (w.wm, w.wc, w.lam)
        self.max_gap = int(np.floor(self.track.max_gap_s * fps))
        self.max_untri = int(np.floor(self.track.max_untriangulated_s * fps))
        self.settings = (float(self.track.gate), self.max_gap, float(self.track.restart_m),
                         int(self.track.restart_frames), float(self.track.bone_sigma_m),
                         float(self.track.start_velocity_sigma), ODD_BONE)
        self.mirror = left_right_permutation(self.names).astype(np.int64)  # swap hypotheses, as offline
        self.parent = bone_lengths(np.zeros((1, 1, len(self.names), 3)), self.names)[0]  # (J,) -1: no bone
        self.motion = gap_motion(self.names) if self.track.one_view_fit else None
        self.held = self.max_untri + 2  # emitted frames a gap fit looks back at: the gap and its held start
        self.filters: dict[int, _TrackFilter] = {}
        self.next_frame = 0

    def push(self, frame_index: int, frame: np.ndarray) -> OnlineFrame | None:
        """Frame ``frame_index``'s detections ``(C, P, J, 3)`` (x px, y px, confidence; NaN where
        none): the people of frame ``frame_index - lag``, or None while fewer frames came."""
        frame = self._checked(frame_index, frame)
        threads = numba.get_num_threads()
        numba.set_num_threads(1)  # per-frame batches are too small for threads (this thread only)
        try:
            return self._push(frame_index, frame)
        finally:
            numba.set_num_threads(threads)

    def _push(self, t: int, frame: np.ndarray) -> OnlineFrame | None:
        match = self.matcher.step(t, frame)
        live = set(self.matcher.live_ids().tolist())
        rows = {int(i): r for r, i in enumerate(match.ids) if i >= 0}
        for i in rows:
            if i not in self.filters:
                self.filters[i] = _TrackFilter.new(len(self.names), 10 ** 6)
        for i, f in list(self.filters.items()):
            if i not in live and i not in rows and f.ended_at < 0:
                f.ended_at = t
            elif f.ended_at >= 0 and t - f.ended_at > self.lag:
                del self.filters[i]
        self._filter_step(list(self.filters), rows, match)
        self.next_frame = t + 1
        return self._emitted(t - self.lag, self.lag) if t >= self.lag else None

    def flush(self) -> list[OnlineFrame]:
        """The last ``lag`` frames (each smoothed with what came after it), at the end of a take."""
        t = self.next_frame - 1
        return [self._emitted(s, t - s) for s in range(max(0, t - self.lag + 1), t + 1)]

    def _checked(self, frame_index: int, frame) -> np.ndarray:
        frame = np.asarray(frame, dtype=np.float64)
        C, J = len(self.rig), len(self.names)
        if frame.ndim != 4 or frame.shape[0] != C or frame.shape[2:] != (J, 3):
            raise ValueError(f"frame {frame_index}: expected detections of shape ({C} cameras, people, {J} joints, 3), "
                             f"got {frame.shape}")
        if frame_index != self.next_frame:
            raise ValueError(f"frame {frame_index}: frames must come in order, expected frame {self.next_frame}")
        return frame

    def _filter_step(self, ids: list[int], rows: dict, match) -> None:
        """One UKF step for the tracks ``ids`` (those without views this frame only predict)."""
        K, J, C = len(ids), len(self.names), len(self.rig)
        if not K:
            return
        person, points = np.full((1, K, C, J, 3), np.nan), np.full((1, K, J, 3), np.nan)
        inliers = np.zeros((1, K, J, C), bool)
        for k, i in enumerate(ids):
            if i in rows:
                person[0, k], points[0, k] = match.person[rows[i]], match.tri.points[0, rows[i]]
                inliers[0, k] = match.tri.inliers[0, rows[i]]
        person = unswapped(self.rig, person, points, self.names)
        ev = people_evidence(person, points, self.track, self.min_confidence, inliers)  # bones below
        filters = [self.filters[i] for i in ids]
        with np.errstate(invalid="ignore"):
            lengths = np.where(self.parent >= 0, np.linalg.norm(points[0] - points[0][:, np.maximum(self.parent, 0)],
                                                                axis=-1), np.nan)  # (K, J) this frame
        parents = np.where(self.parent >= 0, self.parent + J * np.arange(K)[:, None], -1).ravel()
        ev = replace(ev, parent=parents, bone=self._running_bones(filters, lengths).reshape(1, K * J))
        state = tuple(np.ascontiguousarray(np.concatenate([getattr(f, a) for f in filters]))
                      for a in ("x", "P", "alive", "last", "strikes"))
        state[3][:] -= 1  # frames since the last update, counted from this frame
        N = K * J
        out = (np.full((1, N, DIM), np.nan), np.full((1, N, DIM, DIM), np.nan), np.zeros((1, N), bool),
               np.zeros((1, N), np.int64))
        evt = (np.ascontiguousarray(ev.z), np.ascontiguousarray(ev.var), np.ascontiguousarray(ev.observed),
               np.ascontiguousarray(ev.start), ev.parent.astype(np.int64), np.ascontiguousarray(ev.bone))
        Qn = np.ascontiguousarray(np.broadcast_to(self.Q1, (N, DIM, DIM)))
        filter_frames(0, K, J, evt, self.cams, self.F, Qn, self.weights, self.settings, out, self.mirror, state)
        has_tri = np.isfinite(ev.start[0]).all(-1).reshape(K, J)
        centres = body_centres(points[0], self.names)  # (K, 3)
        cameras = cameras_seeing(self.rig, centres)
        for k, f in enumerate(filters):
            part = slice(k * J, (k + 1) * J)
            f.x, f.P, f.alive, f.last, f.strikes = (s[part] for s in state)
            f.since_view = np.where(out[3][0, part] > 0, 0, f.since_view + 1)
            f.since_tri = np.where(has_tri[k], 0, f.since_tri + 1)
            f.seen += int(has_tri[k].any())
            if np.isfinite(centres[k]).all():
                f.inside = (f.inside + [int(cameras[k])])[-BONE_WINDOW:]
            f.history = (f.history + [(out[0][0, part], out[1][0, part], out[2][0, part], f.since_view,
                                       f.since_tri)])[-(self.lag + 1):]
            if self.motion is not None:
                frame = GapEvidence(ev.z[:, part], ev.var[:, part], ev.observed[:, part], has_tri[k][None], self.parent,
                                    ev.bone[:, part], self.motion, out[0][:, part, :3], out[3][:, part])
                f.evidence = (f.evidence + [frame])[-(self.held + self.lag + 1):]

    def _running_bones(self, filters: list, per_frame: np.ndarray) -> np.ndarray:
        """``(K, J)`` each bone's median length over the last :data:`BONE_WINDOW` frames."""
        for f, lengths in zip(filters, per_frame):
            f.bones = np.concatenate([f.bones[1:], lengths[None]])
        return nan_median(np.moveaxis(np.stack([f.bones for f in filters]), 1, -1))

    def _emitted(self, s: int, ahead: int) -> OnlineFrame:
        """Frame ``s`` of the confirmed tracks, smoothed with the ``ahead`` frames after it (one
        compiled backward pass over every track's points)."""
        J = len(self.names)
        chosen = [(i, f) for i, f in sorted(self.filters.items())
                  if f.seen >= self.confirm and len(f.history) - 1 - ahead >= 0
                  and (not self.volume or np.median(f.inside or [0]) >= self.volume)]  # not a bystander
        if not chosen:
            return OnlineFrame(s, np.zeros(0, np.int64), np.zeros((0, J, 3)))
        window = [f.history[len(f.history) - 1 - ahead:] for _, f in chosen]  # frames s ... s + ahead
        xs, Ps, linked = (np.ascontiguousarray(np.concatenate([np.stack([h[a] for h in w]) for w in window], axis=1))
                          for a in range(3))  # (ahead + 1, K J, ...)
        N = xs.shape[1]
        pos, sd = np.full((ahead + 1, N, 3), np.nan), np.full((ahead + 1, N), np.nan)
        smooth_kernel(0, N, xs, Ps, self.F, np.ascontiguousarray(np.broadcast_to(self.Q1, (N, DIM, DIM))),
                      linked, -1, pos, sd)
        since_view = np.stack([w[0][3] for w in window])  # (K, J) at frame s
        since_tri = np.stack([w[0][4] for w in window])
        if self.motion is not None:
            for k, (_, f) in enumerate(chosen):
                part = slice(k * J, (k + 1) * J)
                pos[0, part], sd[0, part] = self._gaps_fitted(f, s, pos[:, part], sd[:, part], since_tri[k] > 0)
        keep = (since_view <= self.max_gap) & (since_tri <= self.max_untri)
        with np.errstate(invalid="ignore"):
            keep &= sd[0].reshape(-1, J) <= self.track.max_sigma_m
        positions = np.where(keep[..., None], pos[0].reshape(-1, J, 3), np.nan)
        return OnlineFrame(s, np.array([i for i, _ in chosen], np.int64), positions)

    def _gaps_fitted(self, f: _TrackFilter, s: int, pos: np.ndarray, sd: np.ndarray,
                     untriangulated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``s`` of one track (``pos (ahead + 1, J, 3)``, ``sd``: frames ``s …`` now) with
        the one-view gaps it lies in fitted (:func:`mocap.track.one_view.fit_one_view_gaps`) on
        what came so far: the frames emitted before it as they were emitted, the gap's end free
        where it has not come; recorded for the frames after."""
        out, out_sd = pos[0], sd[0]
        h = 0  # emitted frames s - h ... s - 1 kept, consecutive
        while h < min(len(f.past), self.held) and f.past[-1 - h][0] == s - 1 - h:
            h += 1
        h = min(h, len(f.evidence) - len(pos))
        if untriangulated.any() and h >= 0:
            before = f.past[len(f.past) - h:]
            positions = np.concatenate([np.reshape([b[1] for b in before], (h,) + pos.shape[1:]), pos])
            sds = np.concatenate([np.reshape([b[2] for b in before], (h,) + sd.shape[1:]), sd])
            ev = GapEvidence.joined(f.evidence[len(f.evidence) - h - len(pos):])
            fitted, fitted_sd = fit_one_view_gaps(self.rig, ev, positions, sds, self.fps, self.max_untri,
                                                  own=(h, h + 1), edges=(h < self.held, True), from_smoothed=True)
            out, out_sd = fitted[h], fitted_sd[h]
        f.past = (f.past + [(s, out, out_sd)])[-self.held:]
        return out, out_sd


def track_online(tracker: OnlineTracker, data: np.ndarray, seconds: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A whole take ``data (T, C, P, J, 3)`` pushed frame by frame through ``tracker`` (fresh):
    ``(positions (T, K, J, 3), ids (K,))`` with one column per identity ever emitted;
    ``seconds``: if given, each push's ``(wall, CPU)`` seconds are appended to it."""
    frames = []
    for t in range(len(data)):
        t0, c0 = time.perf_counter(), time.process_time()
        got = tracker.push(t, data[t])
        if seconds is not None:
            seconds.append((time.perf_counter() - t0, time.process_time() - c0))
        if got is not None:
            frames.append(got)
    frames += tracker.flush()
    ids = np.unique(np.concatenate([f.ids for f in frames])) if frames else np.zeros(0, np.int64)
    out = np.full((len(data), len(ids), len(tracker.names), 3), np.nan)
    for f in frames:
        out[f.frame_index, np.searchsorted(ids, f.ids)] = f.positions
    return out, ids
