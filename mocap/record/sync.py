"""Time offsets of cameras that were not synchronized, from the performers' 2D motion.

Two steps per camera, against a reference camera:

1. **Coarse, whole frames:** the cross-correlation of joint motion. Each camera's features are
   the most confident person's per-joint vertical image velocity and speed, over the person's
   size in that view (cameras stand upright, so a joint moving up moves up in every view); the
   normalized correlation with the reference, averaged over features, ranks the lags within
   ``max_offset_frames``. Its best :data:`CANDIDATES` peaks (and lag 0) are then told apart by
   the two-view triangulation residual with the reference: a slow or repetitive motion
   correlates almost as well one beat early, the geometry does not.
2. **Sub-frame:** the offset that minimises the triangulation residual. The camera's 2D tracks are
   resampled at the shifted times by Gaussian kernel regression (:func:`kernel_resample`: the
   same smoothing at every fractional time, so that interpolation itself does not favour half
   frames), every joint of every frame is triangulated (confidence-weighted DLT) and the mean
   squared reprojection error of the best half of the points is evaluated on a grid of
   ``refine_step`` over ``±refine_window`` frames; a parabola through the best grid point and its
   neighbours gives the minimum (squared errors: a timing error adds (speed x error)^2, so the
   cost is a parabola around the true offset). First each camera with the reference alone (no
   camera's error leaks into another's estimate), then :data:`PASSES` pass(es) with all cameras.
   When the result fits worse than no offsets at all, every offset stays 0 (with a warning).

Several performers: the most confident person of each view is used, which works when one person
dominates each view.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from mocap.geometry import Rig
from mocap.io.keypoints import Keypoints2D
from mocap.record.options import SyncConfig
from mocap.record.resample import SyncOffsets
from mocap.triangulation.dlt import triangulate_dlt
from mocap.triangulation.people import most_confident_person

log = logging.getLogger(__name__)

#: Fraction of triangulated points the residual is averaged over (the rest, the worst, are
#: mismatched or left/right-swapped joints that no offset fixes). Measured: 0.8 let BlazePose's
#: swapped hands (60-90 px) dominate a real take (residual 63 px RMS, offsets off by frames);
#: 0.5 gives 14 px there and the same accuracy on OpenPose and the synthetic studio.
TRIM = 0.5
#: Passes of the sub-frame search with every camera, after the pairwise one.
PASSES = 1
#: Correlation peaks whose two-view residual decides the whole-frame offset.
CANDIDATES = 5
#: Gaussian kernel (sigma, frames) of the 2D tracks' resampling in the residual.
SMOOTH_SIGMA = 1.5


@dataclass(frozen=True)
class SyncResult:
    """Offsets found by :func:`estimate_offsets`."""

    sync: SyncOffsets
    coarse: dict
    """``{camera: whole-frame offset}`` from the cross-correlation."""
    correlation: dict
    """``{camera: normalized correlation at the coarse offset}`` (1: identical speed profiles)."""
    residual_px: float
    """Trimmed mean squared reprojection error (px^2) with the final offsets."""
    residual_unsynced_px: float
    """The same with every offset 0."""


def motion_features(person: np.ndarray, min_confidence: float) -> np.ndarray:
    """``(T, C, 2J)`` per joint: vertical image velocity (signed) and speed, both over the
    person's size in that view, NaN where unknown.

    Cameras stand upright, so a joint moving up or down in the world moves up or down in every
    view: the signed vertical velocity correlates across views, the speed adds the rest.

    Args:
        person: ``(T, C, J, 3)`` one person's x px, y px, confidence per camera.
    """
    xy = np.where((person[..., 2] >= min_confidence)[..., None], person[..., :2], np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames where a camera sees nobody
        size = np.nanmedian(np.nanmax(xy, -2) - np.nanmin(xy, -2), axis=(0, 2))  # (C,)
    size = np.where(np.isfinite(size) & (size > 0), size, 1.0)[None, :, None]
    v = np.diff(xy, axis=0) / size[..., None]  # (T-1, C, J, 2)
    feat = np.concatenate([v[..., 1], np.linalg.norm(v, axis=-1)], axis=-1)
    return np.concatenate([feat, np.full((1,) + feat.shape[1:], np.nan)])


def correlation_curve(ref: np.ndarray, sig: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lags (L,), r (L,))``: mean over features of the normalized correlation of
    ``sig[k]`` with ``ref[k + lag]`` over the frames both have (``ref``, ``sig`` ``(T, F)``;
    a feature counts where it has 10 common frames or more; -1 where none does)."""
    T = len(ref)
    lags = np.arange(-max_lag, max_lag + 1)
    r = np.full(len(lags), -1.0)
    for i, lag in enumerate(lags):
        lo, hi = max(0, -lag), min(T, T - lag)
        if hi - lo < 10:
            continue
        a, b = ref[lo + lag:hi + lag], sig[lo:hi]  # (N, F)
        ok = np.isfinite(a) & np.isfinite(b)
        n = ok.sum(0)
        use = n >= 10
        if not use.any():
            continue
        a, b = np.where(ok, a, 0.0), np.where(ok, b, 0.0)
        a = np.where(ok, a - a.sum(0) / np.maximum(n, 1), 0.0)
        b = np.where(ok, b - b.sum(0) / np.maximum(n, 1), 0.0)
        rf = (a * b).sum(0) / (np.sqrt((a * a).sum(0) * (b * b).sum(0)) + 1e-12)
        r[i] = float(rf[use].mean())
    return lags, r


def residual(rig: Rig, person: np.ndarray, offsets: np.ndarray, min_confidence: float) -> float:
    """Trimmed mean squared reprojection error (px^2) of every joint triangulated with camera c's
    track taken at fractional frame ``t - offsets[c]`` (:func:`kernel_resample`).

    Args:
        person: ``(T, C, J, 3)``; offsets: ``(C,)`` reference frames.
    """
    T, C = person.shape[:2]
    positions = np.arange(T)[:, None] - np.asarray(offsets, np.float64)[None, :]
    data = kernel_resample(person, positions, SMOOTH_SIGMA, min_confidence)  # (T, C, J, 3)
    w = np.where(data[..., 2] >= min_confidence, data[..., 2], 0.0)
    xy = np.moveaxis(data[..., :2], 1, 2)  # (T, J, C, 2)
    tri = triangulate_dlt(rig, xy, np.moveaxis(w, 1, 2), min_views=3 if C >= 3 else 2)
    err = np.where(tri.inliers, tri.reproj_error_px, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # Squared errors: an offset error adds (speed x error)^2 to the static error squared,
        # so the cost is a parabola around the true offset.
        per_point = np.nanmean(err ** 2, -1)[np.isfinite(tri.points).all(-1)]
    if per_point.size == 0:
        return np.inf
    per_point = np.sort(per_point)
    return float(per_point[:max(1, int(TRIM * per_point.size))].mean())


def kernel_resample(person: np.ndarray, positions: np.ndarray, sigma: float, min_confidence: float) -> np.ndarray:
    """Every camera's track at fractional frames by Gaussian kernel regression.

    ``x(t) = sum_k g(t - k) x_k / sum_k g(t - k)`` over the frames ``k`` where the joint is seen
    (``g`` a Gaussian of ``sigma`` frames). Unlike smoothing then interpolating linearly, the
    smoothing is the same at every fractional part of ``t``: linear interpolation halfway
    between two frames averages two noisy detections, lowering the residual by itself and
    pulling offsets towards half frames.

    Args:
        person: ``(T, C, J, 3)``; positions: ``(T', C)`` fractional frames (NaN: none).

    Returns:
        ``(T', C, J, 3)``; confidence the kernel-weighted mean; NaN where no frame within
        ``sigma`` is seen.
    """
    T, C, J, _ = person.shape
    radius = int(np.ceil(3 * sigma))
    ok = np.isfinite(person).all(-1) & (person[..., 2] >= min_confidence)  # (T, C, J)
    vals = np.where(ok[..., None], person, 0.0)
    pos = np.asarray(positions, np.float64)
    base = np.floor(np.nan_to_num(pos, nan=-1e9)).astype(np.int64)  # (T', C)
    cams = np.arange(C)[None, :]
    num = np.zeros(pos.shape + (J, 3))
    den = np.zeros(pos.shape + (J,))
    near = np.zeros(pos.shape + (J,))
    for m in range(-radius, radius + 2):
        k = base + m
        inside = (k >= 0) & (k < T) & np.isfinite(pos)
        kk = np.clip(k, 0, T - 1)
        g = np.where(inside, np.exp(-0.5 * ((pos - k) / sigma) ** 2), 0.0)[..., None] * ok[kk, cams]
        num += g[..., None] * vals[kk, cams]
        den += g
        near = np.maximum(near, np.where(np.abs(pos - k)[..., None] <= sigma, g, 0.0))
    out = num / np.maximum(den, 1e-12)[..., None]
    return np.where((near > 0)[..., None], out, np.nan)


def _coarse(rig: Rig, person: np.ndarray, feats: np.ndarray, ref: int, c: int, max_lag: int,
            config: SyncConfig) -> tuple[int, float]:
    """Whole-frame offset of camera ``c``: of the :data:`CANDIDATES` best-correlated lags (and
    lag 0), the one with the smallest two-view triangulation residual with the reference (a
    slow or repetitive motion can correlate almost as well one beat early; the geometry tells
    them apart)."""
    lags, r = correlation_curve(feats[:, ref], feats[:, c], max_lag)
    peaks = [i for i in range(len(r)) if r[i] > -1 and r[i] >= r[max(i - 1, 0)] and r[i] >= r[min(i + 1, len(r) - 1)]]
    best = sorted(peaks, key=lambda i: -r[i])[:CANDIDATES] or [int(np.argmax(r))]
    best = best + [int(np.flatnonzero(lags == 0)[0])] * (0 not in lags[best])  # cameras usually start close
    pair = person[:, [ref, c]]
    costs = [residual(rig.subset([rig.names[ref], rig.names[c]]), pair, np.array([0.0, lags[i]]),
                      config.min_confidence) for i in best]
    i = best[int(np.argmin(costs))]
    return int(lags[i]), float(r[i])


def _refine_one(rig, person, offsets, c, config: SyncConfig, depth: int = 0) -> float:
    """The offset of camera ``c`` minimising :func:`residual` around ``offsets[c]``."""
    centre = offsets[c]
    grid = centre + np.arange(-config.refine_window, config.refine_window + 1e-9, config.refine_step)
    costs = []
    for g in grid:
        trial = offsets.copy()
        trial[c] = g
        costs.append(residual(rig, person, trial, config.min_confidence))
    costs = np.asarray(costs)
    i = int(np.argmin(costs))
    if 0 < i < len(grid) - 1 and np.isfinite(costs[i - 1:i + 2]).all():
        y0, y1, y2 = costs[i - 1:i + 2]
        den = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / den if den > 0 else 0.0  # vertex of the parabola through 3 points
        return float(grid[i] + np.clip(shift, -1, 1) * config.refine_step)
    if depth < 2 and np.isfinite(costs[i]):  # the minimum lies beyond the window: look further
        trial = offsets.copy()
        trial[c] = grid[i]
        return _refine_one(rig, person, trial, c, config, depth + 1)
    return float(grid[i])


def estimate_offsets(keypoints: Keypoints2D, rig: Rig, config: SyncConfig | None = None) -> SyncResult:
    """Each camera's offset to the reference camera (``sync.yaml``'s meaning: camera c's frame k
    shows the reference's frame ``k + offset[c]``).

    Args:
        keypoints: ``data (T, C, P, J, 3)``, cameras in ``rig`` order (``align_to_rig``).
        rig: the calibration.
        config: reference camera, search range, refinement grid.

    Returns:
        :class:`SyncResult`. Raises ``ValueError`` when fewer than two cameras see a person.
    """
    config = config or SyncConfig()
    names = list(keypoints.camera_names)
    ref = names.index(config.reference) if config.reference in names else 0
    if config.reference and config.reference not in names:
        raise ValueError(f"sync.reference: camera {config.reference!r} is not one of {', '.join(names)}")
    person = most_confident_person(keypoints.data)  # (T, C, J, 3)
    feats = motion_features(person, config.min_confidence)
    if (np.isfinite(feats).any(-1).sum(0) >= 10).sum() < 2:
        raise ValueError("keypoints: fewer than two cameras see a person in 10 frames or more; nothing to sync")
    offsets = np.zeros(len(names))
    coarse, corr = {}, {}
    max_lag = min(config.max_offset_frames, len(feats) // 2)
    for c, name in enumerate(names):
        lag, r = (0, 1.0) if c == ref else _coarse(rig, person, feats, ref, c, max_lag, config)
        offsets[c], coarse[name], corr[name] = lag, lag, r
        log.info("sync: camera %s coarse offset %+d frames (correlation %.2f)", name, lag, r)
    unsynced = residual(rig, person, np.zeros(len(names)), config.min_confidence)
    for c in range(len(names)):  # each camera against the reference alone: no camera's error leaks into another's
        if c != ref:
            sub = rig.subset([rig.names[ref], rig.names[c]])
            offsets[c] = _refine_one(sub, person[:, [ref, c]], np.array([0.0, offsets[c]]), 1, config)
    for _ in range(PASSES):
        for c in range(len(names)):
            if c != ref:
                offsets[c] = _refine_one(rig, person, offsets, c, config)
    final = residual(rig, person, offsets, config.min_confidence)
    if unsynced < final:  # the motion did not say more than the cameras' own frame numbers
        log.warning("sync: the offsets found (%s) fit worse than none; keeping every offset 0",
                    ", ".join(f"{o:+.2f}" for o in offsets))
        offsets[:], final = 0.0, unsynced
    log.info("sync: triangulation residual (trimmed RMS) %.2f px with the offsets, %.2f px without",
             np.sqrt(final), np.sqrt(unsynced))
    sync = SyncOffsets(names[ref], {n: float(o) for n, o in zip(names, offsets)})
    return SyncResult(sync, coarse, corr, final, unsynced)
