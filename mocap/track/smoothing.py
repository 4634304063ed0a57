"""Kalman filtering and Rauch–Tung–Striebel smoothing of 3D joint trajectories.

Every joint of every person is a constant-velocity point driven by white-noise acceleration
(``acceleration_sigma``, m/s²). Each frame's triangulated position is a measurement whose 3×3
covariance comes from the triangulation itself (:func:`mocap.triangulation.triangulation_covariance`:
few or close views give a point that is uncertain along the rays, and the filter trusts it
less there). A measurement farther than ``gate`` standard deviations (Mahalanobis) from the
prediction of the filter run forwards in time and from that of the same filter run backwards is
treated as missing (a left/right flip or a wrong view that survived triangulation disagrees with
the frames on both sides; the start of a fast move, which the forward prediction does not see
coming, agrees with the frames after it: :func:`two_sided_rejections`). Then the filter runs
once more without those, and the backward RTS pass turns it into a smoother: each frame uses the
frames after it as well. Gaps up to ``max_gap_s`` are filled from the smoother; longer ones stay NaN.

All joints of all people are filtered together: one loop over frames, batched over points.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from mocap.geometry import Rig
from mocap.match.epipolar import person_sizes
from mocap.triangulation import Triangulation, triangulation_covariance

log = logging.getLogger(__name__)


#: Bytes the filter's per-frame states may take at once (points are filtered in chunks).
MEMORY_BUDGET = 256e6
#: Prior variance of a point's velocity at its first measurement, (m/s)^2: the first measurement
#: says nothing about velocity.
START_VELOCITY_VAR = 100.0


@dataclass(frozen=True)
class SmoothConfig:
    """Settings of :func:`smooth_trajectories` and :func:`smooth_people`."""

    enabled: bool = True
    """Kalman-filter and RTS-smooth every joint, each frame weighted by its triangulation
    covariance; short gaps are filled (False: keep the per-frame triangulation)."""
    acceleration_sigma: float = 50.0
    """White-noise acceleration of a joint, m/s² (the process noise). Hands and feet reach
    50-100 m/s² in fast moves; smaller values smooth more and lag behind fast motion."""
    gate: float = 5.0
    """Measurements farther than this many standard deviations (Mahalanobis, 3 dof) from the
    prediction, forwards and backwards in time both, are ignored."""
    gate_both_ways: bool = True
    """False: the forward prediction's gate alone, which refuses the start of a fast move (the
    smoother before 60d7cf8; ``mocap bench track --fast-motion --forward-gate-only`` measures what
    the backward half changes)."""
    max_gap_s: float = 0.2
    """Gaps up to this long are filled by the smoother; longer gaps stay NaN."""
    min_variance_m2: float = 1e-6
    """Floor on each measurement variance (1 mm²): a covariance from two nearly exact rays must
    not make a measurement unquestionable."""
    noise_fraction: float = 0.01
    """2D detector noise (standard deviation) of a confidence-1 keypoint as a fraction of the
    person's size in that view (divided by the square root of the confidence): how the
    triangulation covariance of each measurement is scaled."""

    def __post_init__(self):
        for name in ("acceleration_sigma", "gate", "min_variance_m2", "noise_fraction"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        if self.max_gap_s < 0:
            raise ValueError(f"max_gap_s: must be >= 0, got {self.max_gap_s}")


def smooth_trajectories(points: np.ndarray, covariance: np.ndarray | None, fps: float,
                        config: SmoothConfig | None = None, sigma_m: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Kalman-filter and RTS-smooth trajectories.

    Args:
        points: ``(T, ..., 3)`` metres, NaN where a point is missing (frames on axis 0).
        covariance: ``(T, ..., 3, 3)`` m² measurement covariances (NaN entries: isotropic
            ``sigma_m``), or None for ``sigma_m`` everywhere.
        fps: frames per second.
        config: process noise, gate, gap filling (defaults if None).
        sigma_m: measurement standard deviation, metres, where no covariance is given.

    Returns:
        ``(smoothed (T, ..., 3), rejected (T, ...))``: the smoothed positions (NaN outside the
        measured span of each point and in gaps longer than ``max_gap_s``) and the measurements
        the gate ignored.
    """
    config = config or SmoothConfig()
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim < 2 or pts.shape[-1] != 3:
        raise ValueError(f"points: expected shape (T, ..., 3), got {pts.shape}")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps: expected a positive number, got {fps}")
    T, lead = pts.shape[0], pts.shape[1:-1]
    z = pts.reshape(T, -1, 3)
    N = z.shape[1]
    R = np.broadcast_to(np.eye(3) * sigma_m ** 2, (T, N, 3, 3)).copy()
    if covariance is not None:
        cov = np.asarray(covariance, dtype=np.float64)
        if cov.shape != pts.shape + (3,):
            raise ValueError(f"covariance: expected shape {pts.shape + (3,)}, got {cov.shape}")
        cov = cov.reshape(T, N, 3, 3)
        good = np.isfinite(cov).all(axis=(-1, -2))
        R[good] = cov[good]
    R += np.eye(3) * config.min_variance_m2
    dt = 1.0 / fps
    F = np.eye(6)
    F[:3, 3:] = np.eye(3) * dt
    q = config.acceleration_sigma ** 2
    Q1 = np.array([[dt ** 4 / 4, dt ** 3 / 2], [dt ** 3 / 2, dt ** 2]]) * q
    Q = np.kron(Q1, np.eye(3))  # state order: x y z vx vy vz
    H = np.concatenate([np.eye(3), np.zeros((3, 3))], axis=1)

    out = np.full((T, N, 3), np.nan)
    rejected = np.zeros((T, N), dtype=bool)
    # the filter keeps every frame's state and covariance for the backward pass (~700 B per frame
    # and point): points go through in chunks that stay within MEMORY_BUDGET
    chunk = max(1, int(MEMORY_BUDGET // (max(T, 1) * 700)))
    for lo in range(0, N, chunk):
        hi = min(lo + chunk, N)
        out[:, lo:hi], rejected[:, lo:hi] = _filter_and_smooth(z[:, lo:hi], R[:, lo:hi], F, Q, H, config)
    # NaN outside each point's measured span and in long gaps
    measured = np.isfinite(z).all(-1) & ~rejected
    out[~within_short_gaps(measured, int(np.floor(config.max_gap_s * fps)))] = np.nan
    return out.reshape(pts.shape), rejected.reshape((T,) + lead)


def _filter_and_smooth(z: np.ndarray, R: np.ndarray, F: np.ndarray, Q: np.ndarray, H: np.ndarray,
                       config: SmoothConfig) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided gate, forward Kalman filter and backward RTS pass of points ``z (T, N, 3)`` with
    measurement covariances ``R (T, N, 3, 3)`` -> ``(positions (T, N, 3), rejected (T, N))``."""
    if config.gate_both_ways:
        rejected = two_sided_rejections(z, R, F, Q, H, config.gate)
    else:
        rejected = kalman_forward(z, R, F, Q, H, config.gate, keep=False)
    xs, Ps, xs_pred, Ps_pred = kalman_forward(np.where(rejected[..., None], np.nan, z), R, F, Q, H, np.inf)
    return rts_positions(xs, Ps, xs_pred, Ps_pred, F), rejected


def two_sided_rejections(z: np.ndarray, R: np.ndarray, F: np.ndarray, Q: np.ndarray, H: np.ndarray,
                         gate: float) -> np.ndarray:
    """``(T, N)`` the measurements outside the gate of the filter run forwards in time and of the
    same filter run backwards: a wrong joint disagrees with the frames on both sides of it, while
    the start of a fast move, which the forward prediction has not seen coming, agrees with the
    frames after it (the forward gate alone dropped such moves and the smoother cut across them)."""
    forward = kalman_forward(z, R, F, Q, H, gate, keep=False)
    backward = kalman_forward(z[::-1], R[::-1], F, Q, H, gate, keep=False)[::-1]
    return forward & backward


def kalman_forward(z: np.ndarray, R: np.ndarray, F: np.ndarray, Q: np.ndarray, H: np.ndarray, gate: float,
                   keep: bool = True):
    """Forward Kalman filter of points ``z (T, N, 3)`` (:func:`predict_step` and
    :func:`update_step` frame after frame) -> ``(xs, Ps, xs_pred, Ps_pred)``, every frame's
    filtered and predicted states (NaN before a point starts); ``keep=False``: only the
    measurements the gate refused, ``(T, N)``."""
    T, N = z.shape[:2]
    x, P, started = np.zeros((N, 6)), np.zeros((N, 6, 6)), np.zeros(N, dtype=bool)
    rejected = np.zeros((T, N), dtype=bool)
    if keep:
        xs, xs_pred = np.full((T, N, 6), np.nan), np.full((T, N, 6), np.nan)
        Ps, Ps_pred = np.full((T, N, 6, 6), np.nan), np.full((T, N, 6, 6), np.nan)
    for t in range(T):
        predict_step(x, P, started, F, Q)
        if keep:
            xs_pred[t, started], Ps_pred[t, started] = x[started], P[started]
        rejected[t] = update_step(x, P, started, z[t], R[t], H, gate)
        if keep:
            xs[t, started], Ps[t, started] = x[started], P[started]
    return (xs, Ps, xs_pred, Ps_pred) if keep else rejected


def filter_step(x: np.ndarray, P: np.ndarray, started: np.ndarray, z: np.ndarray, R: np.ndarray, F: np.ndarray,
                Q: np.ndarray, H: np.ndarray, gate: float) -> np.ndarray:
    """One frame of the constant-velocity filter: :func:`predict_step`, then :func:`update_step`
    (its return value)."""
    predict_step(x, P, started, F, Q)
    return update_step(x, P, started, z, R, H, gate)


def predict_step(x: np.ndarray, P: np.ndarray, started: np.ndarray, F: np.ndarray, Q: np.ndarray) -> None:
    """The started points' states ``x (N, 6)``, ``P (N, 6, 6)`` predicted one frame, in place."""
    x[started] = x[started] @ F.T
    P[started] = F @ P[started] @ F.T + Q


def update_step(x: np.ndarray, P: np.ndarray, started: np.ndarray, z: np.ndarray, R: np.ndarray, H: np.ndarray,
                gate: float) -> np.ndarray:
    """One frame's measurements ``z (N, 3)`` (covariances ``R (N, 3, 3)``), in place on the states
    ``x (N, 6)``, ``P (N, 6, 6)`` and ``started (N,)``: the points measured for the first time
    start at their measurement (velocity unknown: :data:`START_VELOCITY_VAR`), the others are
    updated where the measurement lies within ``gate`` standard deviations (Mahalanobis) of the
    prediction. Returns ``(N,)`` the measurements the gate refused."""
    have = np.isfinite(z).all(-1)
    new = have & ~started
    x[new] = np.concatenate([z[new], np.zeros((new.sum(), 3))], axis=1)
    P[new] = 0.0
    P[new, :3, :3] = R[new]
    P[new, 3:, 3:] = np.eye(3) * START_VELOCITY_VAR
    started |= new
    rejected = np.zeros(len(z), dtype=bool)
    upd = have & ~new & started
    if upd.any():
        S = P[upd][:, :3, :3] + R[upd]  # (n, 3, 3)
        innov = z[upd] - x[upd][:, :3]
        S_inv = np.linalg.inv(S)
        ok = np.einsum("ni,nij,nj->n", innov, S_inv, innov) <= gate ** 2
        idx = np.flatnonzero(upd)
        rejected[idx[~ok]] = True
        idx, S_inv, innov = idx[ok], S_inv[ok], innov[ok]
        K = P[idx][:, :, :3] @ S_inv  # (n, 6, 3)
        x[idx] = x[idx] + np.einsum("nij,nj->ni", K, innov)
        P[idx] = (np.eye(6) - K @ H) @ P[idx]
    return rejected


def rts_positions(xs: np.ndarray, Ps: np.ndarray, xs_pred: np.ndarray, Ps_pred: np.ndarray,
                  F: np.ndarray) -> np.ndarray:
    """The RTS backward pass over :func:`kalman_forward`'s states -> smoothed positions ``(T, N, 3)``."""
    sm = xs.copy()
    for t in range(xs.shape[0] - 2, -1, -1):
        ok = np.isfinite(xs[t]).all(-1) & np.isfinite(xs_pred[t + 1]).all(-1)
        if not ok.any():
            continue
        C = Ps[t, ok] @ F.T @ np.linalg.inv(Ps_pred[t + 1, ok])
        sm[t, ok] = xs[t, ok] + np.einsum("nij,nj->ni", C, sm[t + 1, ok] - xs_pred[t + 1, ok])
    return sm[..., :3]


def within_short_gaps(measured: np.ndarray, max_gap: int) -> np.ndarray:
    """``(T, N)`` True on measured frames and on unmeasured runs of at most ``max_gap`` frames
    that have a measured frame on both sides."""
    T, N = measured.shape
    idx = np.arange(T)[:, None]
    prev = np.maximum.accumulate(np.where(measured, idx, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(measured, idx, T)[::-1], axis=0)[::-1]
    gap = nxt - prev - 1
    return measured | ((prev >= 0) & (nxt < T) & (gap <= max_gap))


def smooth_people(rig: Rig, tri: Triangulation, person: np.ndarray, fps: float, config: SmoothConfig | None = None,
                  min_confidence: float = 0.2) -> np.ndarray:
    """People's triangulated joints Kalman/RTS-smoothed with their triangulation covariances.

    Args:
        rig: the calibration.
        tri: the people's :class:`~mocap.triangulation.Triangulation` over ``(T, P, J)``.
        person: ``(T, P, C, J, 3)`` the 2D evidence it came from (x px, y px, confidence).
        fps: frames per second.
        config: smoothing settings; the 2D noise of each view is ``noise_fraction`` of the
            person's size there over the square root of the confidence (at least 0.5 px).
        min_confidence: keypoints counted in the person's size.

    Returns:
        ``(T, P, J, 3)`` metres, smoothed; short gaps filled, NaN elsewhere the input was.
    """
    config = config or SmoothConfig()
    conf = np.nan_to_num(np.moveaxis(person[..., 2], -2, -1))  # (T, P, J, C)
    size = person_sizes(person, min_confidence)  # (T, P, C)
    sigma = config.noise_fraction * np.nan_to_num(size, nan=1.0)[:, :, None, :] / np.sqrt(np.maximum(conf, 0.05))
    sigma = np.maximum(sigma, 0.5)  # px: never more exact than half a pixel
    with np.errstate(invalid="ignore"):
        cov = triangulation_covariance(rig, np.nan_to_num(tri.points), sigma, views=tri.inliers)
    cov[~np.isfinite(tri.points).all(-1)] = np.nan
    smoothed, rejected = smooth_trajectories(tri.points, cov, fps, config)
    log.debug("smoothing: %d measurements outside the gate ignored", int(rejected.sum()))
    return smoothed
