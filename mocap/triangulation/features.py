"""Per view × joint evidence for the learned triangulation (numpy, no torch).

For every point (a joint of a person at a frame) and every view, a row of features describing
how far that view's 2D joint can be trusted, from what every input format has: the detector
confidence, the person's size in the view (crop scale), the viewing geometry against a first
robust estimate ``X0`` (distance, angle to the optical axis, the angles between this view's ray
and the other views' rays) and the agreement with the other views (the reprojection residual of
``X0``, absolute, relative to the person's size and to the other views' residuals). The rows feed
:mod:`mocap.triangulation.learned`; the DLT rows of each view (normalised, undistorted
coordinates, world centred and scaled for conditioning) are built here too, so that torch only
weights and solves them.

Heatmap peak and spread (BlazePose ``keep_heatmaps``) are not among the features: the keypoints
that reach the triangulation (``Keypoints2D``, OpenPose JSON) carry confidences only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from mocap.geometry import Rig
from mocap.geometry.camera import pixel_to_normalized, project_rig

#: Feature names, in column order (stored with the weights: a file made for other features is refused).
FEATURE_NAMES = (
    "valid", "confidence", "confidence_vs_best", "robust_inlier", "log_size",
    "log_residual_px", "log_residual_rel_size", "log_residual_vs_median", "log_distance",
    "log_distance_vs_median", "cos_optical_axis", "mean_sin_to_others", "max_sin_to_others",
    "log_views", "has_temporal", "log_temporal_residual_px", "log_temporal_residual_rel_size",
    "log_temporal_residual_vs_median", "log_robust_to_temporal_m",
)

#: Residuals are expressed in units of this fraction of the person's size in the view.
RESIDUAL_SIZE_FRACTION = 0.02
#: Size of a person (px) the log-size feature is centred on.
REFERENCE_SIZE_PX = 500.0


@dataclass(frozen=True, eq=False)
class ViewEvidence:
    """Inputs of the learned weighting for ``N`` points seen by ``C`` views (numpy).

    Attributes:
        features: ``(N, C, F)`` float32, 0 in views that are not ``valid``.
        valid: ``(N, C)`` bool, views whose 2D joint is usable.
        rows: ``(N, C, 2, 4)`` float64 unit-norm DLT rows in the conditioned world frame (0 where invalid).
        ok: ``(N,)`` bool, points whose features are all finite with at least two valid views.
        center, scale: the conditioning: ``X_world = center + X_cond / scale``.
    """

    features: np.ndarray
    valid: np.ndarray
    rows: np.ndarray
    ok: np.ndarray
    center: np.ndarray
    scale: float


def conditioning(rig: Rig) -> tuple[np.ndarray, float]:
    """``(center (3,), scale)``: the centroid of the camera centres and the factor that brings
    their mean distance to it to sqrt(3) (Hartley & Zisserman 4.4.4)."""
    centres = np.stack([c.center for c in rig.cameras])
    center = centres.mean(axis=0)
    spread = np.linalg.norm(centres - center, axis=1).mean()
    return center, float(np.sqrt(3) / spread) if spread > 0 else 1.0


def dlt_rows(rig: Rig, xy_px: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Unit-norm DLT rows ``(N, C, 2, 4)`` of pixels ``xy_px (N, C, 2)`` (undistorted through the
    lens model, normalised by K, world conditioned) with 0 where not ``valid``; and the conditioning."""
    center, scale = conditioning(rig)
    N, C = valid.shape
    rows = np.zeros((N, C, 2, 4))
    for c, cam in enumerate(rig.cameras):
        P = np.concatenate([cam.R, (scale * (cam.R @ center + cam.t))[:, None]], axis=1)  # (3, 4)
        xy = pixel_to_normalized(cam, np.where(valid[:, c, None], xy_px[:, c], 0.0))
        rows[:, c, 0] = xy[:, :1] * P[2] - P[0]
        rows[:, c, 1] = xy[:, 1:] * P[2] - P[1]
    norm = np.linalg.norm(rows, axis=-1, keepdims=True)
    good = valid[..., None, None] & np.isfinite(rows).all(-1, keepdims=True) & (norm > 0)
    rows = np.where(good, rows / np.where(norm > 0, norm, 1.0), 0.0)
    return rows, center, scale


def _log_vs_median(a: np.ndarray, valid: np.ndarray, floor: float) -> np.ndarray:
    """``log((a + floor) / (median over valid views + floor))`` per view, 0 where invalid."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # points with no valid view
        med = np.nanmedian(np.where(valid, a, np.nan), axis=1, keepdims=True)
    return np.where(valid, np.log((a + floor) / (med + floor)), 0.0)


def ray_features(rig: Rig, X0: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(N, C, 5)``: log distance, log distance vs the views' median, cos of the angle to the
    optical axis, mean and max sine of the angle between this view's ray to ``X0 (N, 3)`` and
    the other valid views' rays."""
    centres = np.stack([c.center for c in rig.cameras])  # (C, 3)
    axes = np.stack([c.R[2] for c in rig.cameras])  # (C, 3) optical axes in the world
    d = X0[:, None, :] - centres[None]  # (N, C, 3)
    dist = np.linalg.norm(d, axis=-1)
    ray = d / np.maximum(dist, 1e-9)[..., None]
    cos_axis = np.einsum("nci,ci->nc", ray, axes)
    cos = np.clip(np.matmul(ray, np.swapaxes(ray, 1, 2)), -1.0, 1.0)  # (N, C, C) between unit rays
    sin = np.sqrt(1.0 - cos * cos)
    other = valid[:, None, :] & ~np.eye(valid.shape[1], dtype=bool)[None]
    n_other = np.maximum(other.sum(-1), 1)
    mean_sin = np.where(other, sin, 0.0).sum(-1) / n_other
    max_sin = np.where(other, sin, 0.0).max(-1)
    log_d = np.log(np.maximum(dist, 1e-3))
    return np.stack([log_d, _log_vs_median(dist, valid, 0.0), cos_axis, mean_sin, max_sin], axis=-1)


def residual_features(rig: Rig, X: np.ndarray, xy_px: np.ndarray, size: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(N, C, 3)``: the distance (px) between each view's detection and ``X (N, 3)`` reprojected,
    as ``log1p(px)``, ``log1p`` in units of :data:`RESIDUAL_SIZE_FRACTION` × the person's size,
    and log against the median over the valid views."""
    with np.errstate(invalid="ignore", divide="ignore"):
        res = np.linalg.norm(project_rig(rig, np.nan_to_num(X)) - xy_px, axis=-1)
        return np.stack([np.log1p(res), np.log1p(res / (RESIDUAL_SIZE_FRACTION * size)),
                         _log_vs_median(res, valid, 1.0)], axis=-1)


def temporal_features(rig: Rig, X0: np.ndarray, reference: np.ndarray | None, xy_px, size, valid) -> np.ndarray:
    """``(N, C, 5)``: whether a temporal reference exists, its :func:`residual_features` and the
    log distance (m) between the first estimate and it; 0 where there is none."""
    N, C = valid.shape
    if reference is None:
        return np.zeros((N, C, 5))
    has = np.isfinite(reference).all(-1) & np.isfinite(X0).all(-1)  # (N,)
    with np.errstate(invalid="ignore"):
        gap = np.log(np.linalg.norm(X0 - reference, axis=-1) + 1e-3)
    out = np.concatenate([np.broadcast_to(has[:, None, None], (N, C, 1)),
                          residual_features(rig, reference, xy_px, size, valid),
                          np.broadcast_to(gap[:, None, None], (N, C, 1))], axis=-1)
    return np.where(has[:, None, None], out, 0.0)


def view_evidence(rig: Rig, xy_px: np.ndarray, confidence: np.ndarray, size_px: np.ndarray,
                  X0: np.ndarray, inliers0: np.ndarray, reference: np.ndarray | None = None) -> ViewEvidence:
    """Features and DLT rows of ``N`` points.

    Args:
        rig: the calibration (``C`` cameras).
        xy_px: ``(N, C, 2)`` detected (distorted) pixels, NaN where missing.
        confidence: ``(N, C)`` weights already floored (0 = not used).
        size_px: ``(N, C)`` the person's size in each view (larger side of its keypoints' box), px.
        X0: ``(N, 3)`` the first (robust) estimate, world metres; NaN rows are not ``ok``.
        inliers0: ``(N, C)`` the views the first estimate kept.
        reference: ``(N, 3)`` the points predicted from the neighbouring frames (NaN: none), or None.

    Returns:
        :class:`ViewEvidence`.
    """
    conf = np.nan_to_num(np.asarray(confidence, dtype=np.float64))
    valid = (conf > 0) & np.isfinite(xy_px).all(-1)
    rows, center, scale = dlt_rows(rig, xy_px, valid)
    valid &= np.abs(rows).sum(axis=(-1, -2)) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        size = np.where(size_px > 0, size_px, np.nan)
        n_views = valid.sum(-1, keepdims=True)
        best = np.where(valid, conf, 0.0).max(-1, keepdims=True)
        cols = np.stack([valid.astype(np.float64), conf, conf / np.where(best > 0, best, 1.0), inliers0 & valid,
                         np.log(size / REFERENCE_SIZE_PX)], axis=-1)
        feats = np.concatenate([cols, residual_features(rig, X0, xy_px, size, valid), ray_features(rig, X0, valid),
                                np.broadcast_to(np.log(np.maximum(n_views, 1))[..., None], valid.shape + (1,)),
                                temporal_features(rig, X0, reference, xy_px, size, valid)], -1)
    feats = np.where(valid[..., None], feats, 0.0)
    ok = np.isfinite(X0).all(-1) & (n_views[:, 0] >= 2) & np.isfinite(feats).all(axis=(1, 2))
    feats = np.where(np.isfinite(feats), feats, 0.0)
    return ViewEvidence(feats.astype(np.float32), valid, rows, ok, center, scale)


def flat_views(person: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """People given per view ``(..., C, J, 3)`` as ``N = prod(...) * J`` points in C order: their
    pixels ``(N, C, 2)`` and the person's size in each view ``(N, C)`` px
    (:func:`mocap.match.epipolar.person_sizes` of keypoints at ``min_confidence`` or above)."""
    from mocap.match.epipolar import person_sizes

    C = person.shape[-3]
    xy = np.moveaxis(person[..., :2], -3, -2).reshape(-1, C, 2)
    size = person_sizes(person, min_confidence)  # (..., C)
    return xy, np.broadcast_to(size[..., None, :], person.shape[:-3] + (person.shape[-2], C)).reshape(-1, C)


def person_evidence(rig: Rig, person: np.ndarray, points0: np.ndarray, inliers0: np.ndarray,
                    min_confidence: float, reference: np.ndarray | None = None, chunk: int | None = None):
    """:func:`view_evidence` of people given per view, in chunks of points (bounded memory).

    Args:
        rig: the calibration.
        person: ``(..., C, J, 3)`` x px, y px, confidence; NaN where not seen.
        points0: ``(..., J, 3)`` the robust estimate; ``inliers0 (..., J, C)`` its views.
        min_confidence: 2D joints below this confidence are not used.
        reference: ``(..., J, 3)`` points predicted from the neighbouring frames, or None.
        chunk: points per chunk; None: one chunk.

    Yields:
        ``(slice, ViewEvidence)`` over the ``N = prod(...) * J`` flattened points in C order.
    """
    C = person.shape[-3]
    xy, size = flat_views(person, min_confidence)  # (N, C, 2), (N, C)
    conf = np.nan_to_num(np.moveaxis(person[..., 2], -2, -1)).reshape(-1, C)
    conf = np.where(conf >= min_confidence, conf, 0.0)
    X0, inl, ref = points0.reshape(-1, 3), inliers0.reshape(-1, C), None if reference is None else reference.reshape(-1, 3)
    N = len(X0)
    step = max(1, chunk or N)
    for start in range(0, N, step):
        sl = slice(start, min(N, start + step))
        yield sl, view_evidence(rig, xy[sl], conf[sl], size[sl], X0[sl], inl[sl], None if ref is None else ref[sl])


def relabel_left_right(rig: Rig, person: np.ndarray, points0: np.ndarray, limbs, threshold_px: np.ndarray) -> np.ndarray:
    """``person`` with each view's left/right limbs exchanged where the exchanged labels fit the
    first estimate much better (robust mode's rule, :data:`~mocap.triangulation.rules.SWAP_GAIN`:
    exchanged cost below that fraction of the labelled cost, and a labelled joint failing its
    threshold), so that the learned weights see the views robust mode relabelled.

    Args:
        rig: the calibration.
        person: ``(..., C, J, 3)``; ``points0 (..., J, 3)`` the first estimate.
        limbs: left/right joint pairs per limb (:func:`~mocap.triangulation.left_right_limbs`); empty: no check.
        threshold_px: ``(..., C)`` outlier threshold per view, px (the costs are truncated there).

    Returns:
        A relabelled copy of ``person``.
    """
    from mocap.triangulation.rules import SWAP_FAILS, SWAP_GAIN

    out = person.copy()
    if not limbs:
        return out
    with np.errstate(invalid="ignore"):
        proj = np.moveaxis(project_rig(rig, points0), -2, -3)  # (..., C, J, 2)
    tau2 = (threshold_px ** 2)[..., None]  # (..., C, 1)
    seen = np.isfinite(person[..., :2]).all(-1) & np.isfinite(proj).all(-1)
    for pairs in limbs:
        L, R = np.array(pairs).T
        both = seen[..., L] & seen[..., R]

        def cost(a, j):
            d2 = ((proj[..., a, :] - person[..., j, :2]) ** 2).sum(-1)
            return np.where(both, np.fmin(d2, tau2), 0.0)

        keep_l, keep_r = cost(L, L), cost(R, R)
        fails = (np.maximum(keep_l, keep_r) >= SWAP_FAILS * tau2).any(-1)
        flip = ((cost(L, R) + cost(R, L)).sum(-1) < SWAP_GAIN * (keep_l + keep_r).sum(-1)) & fails  # (..., C)
        out[..., L, :] = np.where(flip[..., None, None], person[..., R, :], person[..., L, :])
        out[..., R, :] = np.where(flip[..., None, None], person[..., L, :], person[..., R, :])
    return out


def learned_inputs(rig: Rig, person: np.ndarray, points0: np.ndarray, joint_names, config,
                   temporal: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """What the learned triangulation sees of people given per view besides their robust
    triangulation ``points0 (..., J, 3)``: the detections relabelled as robust mode would
    (:func:`relabel_left_right`, when ``config.swap_check``) and, when ``temporal`` (axis 0 is
    consecutive frames), the points predicted from the neighbouring frames
    (:func:`~mocap.triangulation.temporal_reference`). ``config`` is the
    :class:`~mocap.triangulation.people.TriangulateConfig`. Returns ``(relabelled person
    (..., C, J, 3), reference (..., J, 3) or None)`` for :func:`person_evidence`."""
    from mocap.triangulation import left_right_limbs, temporal_reference
    from mocap.triangulation.people import view_thresholds

    if config.swap_check:
        tau = view_thresholds(person, config.min_confidence, config.threshold_px, config.threshold_fraction)
        person = relabel_left_right(rig, person, points0, left_right_limbs(joint_names), tau)
    reference = temporal_reference(points0) if temporal and points0.shape[0] > 1 else None
    return person, reference
