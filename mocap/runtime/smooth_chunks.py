"""The Kalman/RTS smoother of :func:`mocap.track.smoothing.smooth_trajectories` over chunks of
frames, with the same result as one pass over the take.

The forward (Kalman) pass runs chunk after chunk and carries its state (``x``, ``P``, which
points have started) from one chunk to the next, so every frame sees exactly what it sees in
one pass. Each chunk's filtered and predicted states go to disk (``ChunkSpill``), and the
backward (RTS) pass reads them back from the last chunk to the first, carrying the smoothed
state of the frame after the chunk. Only the ``(T, N)`` booleans of which measurements were used
are kept for the whole take (for the gap rule); memory is bounded by the chunk length.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mocap.track.smoothing import SmoothConfig, within_short_gaps

#: Prior variance of a point's velocity at its first measurement, (m/s)^2 (as the one-pass smoother).
START_VELOCITY_VAR = 100.0
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


@dataclass(eq=False)
class ChunkedSmoother:
    """Forward pass chunk by chunk (:meth:`forward`), then :meth:`backward` for every chunk.

    Attributes:
        num_points: ``N`` points per frame.
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
        N = self.num_points
        self.x, self.P = np.zeros((N, 6)), np.zeros((N, 6, 6))
        self.started = np.zeros(N, dtype=bool)
        self._tmp = None
        if self.folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mocap-smooth-")
            self.folder = Path(self._tmp.name)
        self.ranges: list[tuple[int, int]] = []
        self.measured: list[np.ndarray] = []
        self.rejected = 0

    def forward(self, lo: int, z: np.ndarray, covariance: np.ndarray | None) -> None:
        """Filter frames ``lo .. lo + len(z)`` (consecutive after the previous call): ``z (n, N, 3)``
        metres (NaN: missing), ``covariance (n, N, 3, 3)`` or None."""
        n, N = z.shape[:2]
        if self.ranges and self.ranges[-1][1] != lo:
            raise ValueError(f"chunk at frame {lo}: expected frame {self.ranges[-1][1]} (chunks in order)")
        R = measurement_noise(z, covariance, self.config)
        out = {k: np.full((n, N) + s, np.nan) for k, s in (("xs", (6,)), ("Ps", (6, 6)), ("xp", (6,)), ("Pp", (6, 6)))}
        rejected = np.zeros((n, N), dtype=bool)
        for i in range(n):
            self._step(lo + i, z[i], R[i], i, out, rejected)
        np.savez(self.folder / f"chunk_{len(self.ranges):06d}.npz", **out)
        self.ranges.append((lo, lo + n))
        self.measured.append(np.isfinite(z).all(-1) & ~rejected)
        self.rejected += int(rejected.sum())

    def _step(self, t: int, z: np.ndarray, R: np.ndarray, i: int, out: dict, rejected: np.ndarray) -> None:
        """One frame of the forward pass (the same operations as the one-pass smoother)."""
        x, P, started, F = self.x, self.P, self.started, self.F
        have = np.isfinite(z).all(-1)
        if t > 0:
            x[started] = x[started] @ F.T
            P[started] = F @ P[started] @ F.T + self.Q
        out["xp"][i, started], out["Pp"][i, started] = x[started], P[started]
        new = have & ~started
        x[new] = np.concatenate([z[new], np.zeros((new.sum(), 3))], axis=1)
        P[new] = 0.0
        P[new, :3, :3] = R[new]
        P[new, 3:, 3:] = np.eye(3) * START_VELOCITY_VAR
        started |= new
        upd = have & started & ~new
        if upd.any():
            S = P[upd][:, :3, :3] + R[upd]
            innov = z[upd] - x[upd][:, :3]
            S_inv = np.linalg.inv(S)
            d2 = np.einsum("ni,nij,nj->n", innov, S_inv, innov)
            ok = d2 <= self.config.gate ** 2
            idx = np.flatnonzero(upd)
            rejected[i, idx[~ok]] = True
            idx, S_inv, innov = idx[ok], S_inv[ok], innov[ok]
            K = P[idx][:, :, :3] @ S_inv
            x[idx] = x[idx] + np.einsum("nij,nj->ni", K, innov)
            P[idx] = (np.eye(6) - K @ self.H) @ P[idx]
        out["xs"][i, started], out["Ps"][i, started] = x[started], P[started]

    def backward(self):
        """Yield ``(lo, hi, positions (hi - lo, N, 3))`` from the last chunk to the first: RTS-smoothed,
        NaN outside each point's measured span and in gaps longer than ``max_gap_s``."""
        keep = within_short_gaps(np.concatenate(self.measured), int(np.floor(self.config.max_gap_s * self.fps)))
        nxt = None  # (smoothed, predicted, predicted covariance) of the frame after the chunk
        for k in range(len(self.ranges) - 1, -1, -1):
            lo, hi = self.ranges[k]
            with np.load(self.folder / f"chunk_{k:06d}.npz") as f:
                xs, Ps, xp, Pp = f["xs"], f["Ps"], f["xp"], f["Pp"]
            sm = xs.copy()
            for i in range(hi - lo - 1, -1, -1):
                after = (sm[i + 1], xp[i + 1], Pp[i + 1]) if i + 1 < hi - lo else nxt
                if after is None:
                    continue
                ok = np.isfinite(xs[i]).all(-1) & np.isfinite(after[1]).all(-1)
                if ok.any():
                    C = Ps[i, ok] @ self.F.T @ np.linalg.inv(after[2][ok])
                    sm[i, ok] = xs[i, ok] + np.einsum("nij,nj->ni", C, after[0][ok] - after[1][ok])
            nxt = (sm[0].copy(), xp[0], Pp[0])  # before the gap rule blanks frames of it
            pos = sm[..., :3]
            pos[~keep[lo:hi]] = np.nan
            yield lo, hi, pos

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
