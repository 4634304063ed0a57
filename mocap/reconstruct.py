"""2D keypoints of every camera + calibration -> 3D tracks of every person (match -> triangulate -> track).

Every person (default): per frame the detections are matched across views
(:mod:`mocap.match.epipolar`), each group triangulated, and the groups linked over time into
persistent people by their body centres (:mod:`mocap.track.linking`); each person's joints are then
triangulated again over the whole take (:func:`mocap.triangulation.triangulate_robust` with the
temporal left/right check, or :func:`~mocap.triangulation.triangulate_dlt`) with the detector
confidences as weights. ``multi_person=False``: one person, the most confident detection of every
view (sum of joint confidences), as before matching existed. The derived joints
``pelvis``/``neck`` are appended where the keypoint format lacks them.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from mocap._checks import check_choice
from mocap.match.epipolar import AssociationConfig, associate, gather_groups, person_sizes
from mocap.geometry import Rig, normalize_camera_name
from mocap.io.keypoints import Keypoints2D
from mocap.skeleton.joints import add_derived_joints
from mocap.track.smoothing import SmoothConfig, smooth_trajectories
from mocap.track.linking import LinkConfig, body_centres, link_people, relink_by_appearance
from mocap.io.tracks import Tracks
from mocap.triangulation import (Triangulation, left_right_limbs, triangulate_dlt, triangulate_robust,
                                 triangulation_covariance)

log = logging.getLogger(__name__)

METHODS = ("dlt", "robust")


@dataclass(frozen=True)
class ReconstructConfig:
    """Settings of :func:`reconstruct` (written next to every output)."""

    min_confidence: float = 0.2
    """2D keypoints below this detector confidence are ignored (OpenPose: 0.1-0.3 is noise)."""
    threshold_px: float = 15.0
    """Robust mode: a view reprojecting farther than this many pixels is an outlier (at least)."""
    threshold_fraction: float = 0.05
    """Robust mode: ... or farther than this fraction of the person's size in that view (the
    larger side of its keypoints' box), whichever is larger: detector noise grows with the size."""
    max_hypotheses: int = 64
    """Robust mode: at most this many view pairs tried per joint (bounds the time)."""
    refine: bool = False
    """Robust mode: Gauss–Newton refinement of the reprojection error after the view selection."""
    swap_check: bool = True
    """Robust mode: relabel a view's left/right limb when exchanged labels fit the 3D limb much better."""
    temporal_swap_check: bool = True
    """Robust mode: check every view's left/right labels again against the joints predicted from
    the neighbouring frames (median of frames t-2, t-1, t+1, t+2) and solve the relabelled joints
    again: resolves swaps one frame cannot (a swap in two of four views is a two-against-two tie)."""
    min_views: int = 2
    """Joints seen by fewer (inlier) views are NaN."""
    multi_person: bool = True
    """Match detections across views and track every person (False: the most confident person
    of each view is taken as the one performer)."""
    max_people: int = 0
    """With ``multi_person``: keep at most this many people, those with the most triangulated
    joints over the take (0: everyone found)."""
    smooth: bool = True
    """Kalman-filter and RTS-smooth every joint (:mod:`mocap.track.smoothing`), each frame weighted by
    its triangulation covariance; short gaps are filled."""
    acceleration_sigma: float = 50.0
    """Smoothing: white-noise acceleration of a joint, m/s² (smaller smooths more, lags more)."""
    noise_fraction: float = 0.01
    """Smoothing: 2D detector noise (standard deviation) of a confidence-1 keypoint as a fraction
    of the person's size in that view (divided by the square root of the confidence)."""

    def __post_init__(self):
        if not 0 <= self.min_confidence < 1:
            raise ValueError(f"min_confidence: expected a value in [0, 1), got {self.min_confidence}")
        if self.threshold_px <= 0:
            raise ValueError(f"threshold_px: must be > 0 pixels, got {self.threshold_px}")
        if not 0 <= self.threshold_fraction < 1:
            raise ValueError(f"threshold_fraction: expected a value in [0, 1), got {self.threshold_fraction}")
        if self.min_views < 2:
            raise ValueError(f"min_views: a 3D point needs at least 2 views, got {self.min_views}")
        if self.max_people < 0:
            raise ValueError(f"max_people: expected >= 0 (0 = everyone), got {self.max_people}")

    def to_dict(self) -> dict:
        return asdict(self)


def most_confident_person(keypoints: Keypoints2D) -> np.ndarray:
    """Per frame and camera the detection with the largest summed joint confidence.

    Returns:
        ``(T, C, J, 3)`` x px, y px, confidence; NaN where a camera saw nobody.
    """
    data = keypoints.data
    score = np.nansum(data[..., 2], axis=-1)  # (T, C, P)
    best = np.argmax(score, axis=-1)  # (T, C)
    return np.take_along_axis(data, best[..., None, None, None], axis=2)[:, :, 0]


def view_thresholds(person: np.ndarray, min_confidence: float, threshold_px: float, fraction: float) -> np.ndarray:
    """Outlier threshold per view ``(..., C)`` px: ``max(threshold_px, fraction * size)`` with
    ``size`` the larger side of the box of the person's keypoints ``person (..., C, J, 3)`` that
    reach ``min_confidence``."""
    return np.maximum(threshold_px, fraction * np.nan_to_num(person_sizes(person, min_confidence)))


def _check_aligned(keypoints: Keypoints2D, rig: Rig) -> None:
    ours = [normalize_camera_name(n) for n in keypoints.camera_names]
    theirs = [normalize_camera_name(n) for n in rig.names]
    if ours != theirs:
        raise ValueError(f"keypoints: cameras {list(keypoints.camera_names)} are not in the calibration's order "
                         f"{rig.names}; call mocap.io.openpose.align_to_rig(keypoints, rig) first")


def triangulate_frames(rig: Rig, xy_px: np.ndarray, weight: np.ndarray, threshold_px: np.ndarray, limbs,
                       config: ReconstructConfig) -> Triangulation:
    """Robust triangulation of one person over frames (with the temporal left/right check if
    ``config.temporal_swap_check``).

    Args:
        rig: the calibration.
        xy_px: ``(T, J, C, 2)`` pixels; ``weight (T, J, C)``; ``threshold_px (T, J, C)`` px.
        limbs: left/right joint pairs per limb (:func:`~mocap.triangulation.left_right_limbs`) or None.
        config: the robust-mode settings.

    Returns:
        :class:`~mocap.triangulation.Triangulation` over ``(T, J)``.
    """
    return triangulate_robust(rig, xy_px, weight, threshold_px=threshold_px, max_hypotheses=config.max_hypotheses,
                              refine=config.refine, limbs=limbs or None,
                              temporal=bool(limbs) and config.temporal_swap_check, min_views=config.min_views)


def triangulate_single_person(keypoints: Keypoints2D, rig: Rig, method: str = "robust",
                              config: ReconstructConfig | None = None) -> Triangulation:
    """Triangulate the most confident person of every view.

    Args:
        keypoints: ``data (T, C, P, J, 3)`` with cameras in ``rig`` order (see ``align_to_rig``).
        rig: the calibration.
        method: ``"dlt"`` or ``"robust"``.
        config: thresholds; defaults if None.

    Returns:
        :class:`~mocap.triangulation.Triangulation` over ``(T, J)``: ``points (T, J, 3)``,
        ``reproj_error_px (T, J, C)``, ...
    """
    check_choice(method, METHODS, "method")
    config = config or ReconstructConfig()
    _check_aligned(keypoints, rig)
    person = most_confident_person(keypoints)  # (T, C, J, 3)
    xy = np.moveaxis(person[..., :2], 1, 2)  # (T, J, C, 2)
    conf = np.moveaxis(person[..., 2], 1, 2)  # (T, J, C)
    weight = np.where(conf >= config.min_confidence, conf, 0.0)
    if method == "dlt":
        return triangulate_dlt(rig, xy, weight, min_views=config.min_views)
    limbs = left_right_limbs(keypoints.joint_names) if config.swap_check else None
    tau = view_thresholds(person, config.min_confidence, config.threshold_px, config.threshold_fraction)
    tau = np.broadcast_to(tau[:, None], xy.shape[:-1])  # (T, J, C)
    return triangulate_frames(rig, xy, weight, tau, limbs, config)


def _triangulate_views(rig: Rig, person: np.ndarray, joint_names, method: str, config: ReconstructConfig,
                       temporal: bool) -> Triangulation:
    """Triangulate people given per view: ``person (T, ..., C, J, 3)`` -> over ``(T, ..., J)``."""
    xy = np.moveaxis(person[..., :2], -3, -2)  # (T, ..., J, C, 2)
    conf = np.nan_to_num(np.moveaxis(person[..., 2], -2, -1))  # (T, ..., J, C)
    weight = np.where(conf >= config.min_confidence, conf, 0.0)
    if method == "dlt":
        return triangulate_dlt(rig, xy, weight, min_views=config.min_views)
    limbs = left_right_limbs(joint_names) if config.swap_check else None
    tau = view_thresholds(person, config.min_confidence, config.threshold_px, config.threshold_fraction)
    tau = np.broadcast_to(tau[..., None, :], weight.shape)  # (T, ..., J, C)
    return triangulate_robust(rig, xy, weight, threshold_px=tau, max_hypotheses=config.max_hypotheses,
                              refine=config.refine, limbs=limbs or None,
                              temporal=temporal and bool(limbs) and config.temporal_swap_check,
                              min_views=config.min_views)


def people_views(keypoints: Keypoints2D, rig: Rig, method: str = "robust", config: ReconstructConfig | None = None,
                 link: LinkConfig | None = None, fps: float | None = None) -> np.ndarray:
    """Every person's detections per view, matched across views and linked over time.

    Args:
        keypoints: ``data (T, C, P, J, 3)``, cameras in ``rig`` order.
        rig: the calibration.
        method: triangulation of the per-frame groups whose body centres are linked.
        config: thresholds; defaults if None.
        link: linking thresholds (:class:`~mocap.track.linking.LinkConfig`); defaults if None.
        fps: frame rate (default ``keypoints.fps``).

    Returns:
        ``(T, P, C, J, 3)`` person ``p``'s detection in view ``c`` at frame ``t`` (NaN where not
        seen), people ordered by how much of them was triangulated over the take (the main
        performer first; ties by first appearance); ``config.max_people`` keeps the first ones.
    """
    config = config or ReconstructConfig()
    fps = fps if fps is not None else keypoints.fps
    if fps is None or not np.isfinite(fps) or fps <= 0:
        raise ValueError("fps: the keypoints carry no frame rate; pass fps (frames per second)")
    groups = associate(rig, keypoints.data, AssociationConfig(), keypoints.joint_names)  # (T, C, P)
    g = gather_groups(keypoints.data, groups)  # (T, K, C, J, 3)
    tri = _triangulate_views(rig, g, keypoints.joint_names, method, config, temporal=False)
    centres = body_centres(tri.points, keypoints.joint_names)  # (T, K, 3)
    _merge_split_groups(g, centres, tri.points)
    track = link_people(centres, fps, link, poses=tri.points)  # (T, K)
    app = keypoints.extras.get("appearance") if keypoints.extras else None
    if app is not None and np.shape(app)[:3] == keypoints.data.shape[:3]:
        K_ = g.shape[1]
        per = np.full((g.shape[0], K_, len(rig), app.shape[-1]), np.nan)
        t_, c_, p_ = np.nonzero(groups >= 0)
        per[t_, groups[t_, c_, p_], c_] = app[t_, c_, p_]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # candidates without a descriptor
            track = relink_by_appearance(track, np.nanmean(per, axis=2), link)
    T, K, C, J, _ = g.shape
    P = int(track.max()) + 1 if track.size else 0
    person = np.full((T, P, C, J, 3), np.nan)
    t, k = np.nonzero(track >= 0)
    person[t, track[t, k]] = g[t, k]
    # the most seen first: the performer, not a bystander who walked through the back of frame 0
    joints = np.zeros(P)
    np.add.at(joints, track[t, k], np.isfinite(tri.points[t, k]).all(-1).sum(-1))
    order = np.argsort(-joints, kind="stable")  # ties: first appearance
    return person[:, order[: config.max_people or P]]


def _smoothed(rig: Rig, tri: Triangulation, person: np.ndarray, conf: np.ndarray, fps: float,
              config: ReconstructConfig) -> np.ndarray:
    """``tri.points (T, P, J, 3)`` Kalman/RTS-smoothed with their triangulation covariances
    (2D noise ``noise_fraction`` of the person's size per view, over the square root of the
    confidence)."""
    size = person_sizes(person, config.min_confidence)  # (T, P, C)
    sigma = config.noise_fraction * np.nan_to_num(size, nan=1.0)[:, :, None, :] / np.sqrt(np.maximum(conf, 0.05))
    sigma = np.maximum(sigma, 0.5)  # px: never more exact than half a pixel
    with np.errstate(invalid="ignore"):
        cov = triangulation_covariance(rig, np.nan_to_num(tri.points), sigma, views=tri.inliers)
    cov[~np.isfinite(tri.points).all(-1)] = np.nan
    smoothed, rejected = smooth_trajectories(tri.points, cov, fps, SmoothConfig(acceleration_sigma=config.acceleration_sigma))
    log.debug("smoothing: %d measurements outside the gate ignored", int(rejected.sum()))
    return smoothed


#: Two groups of one frame whose body centres are closer than this are one person whose views the
#: matching split in two (two people's torsos cannot be closer), metres.
SAME_PERSON_M = 0.25


def _merge_split_groups(g: np.ndarray, centres: np.ndarray, points: np.ndarray) -> None:
    """In place: groups of one frame closer than :data:`SAME_PERSON_M` that share no view are
    merged into the one seen by more views (its centre and points kept); the other is emptied."""
    T, K = centres.shape[:2]
    with np.errstate(invalid="ignore"):
        close = np.linalg.norm(centres[:, :, None] - centres[:, None], axis=-1) < SAME_PERSON_M  # (T, K, K)
    close &= ~np.eye(K, dtype=bool)
    for t in np.flatnonzero(close.any(axis=(1, 2))):  # rare: a loop over those frames only
        views = np.isfinite(g[t, ..., 0]).any(-1)  # (K, C)
        for a, b in zip(*np.nonzero(np.triu(close[t]))):
            if not (views[a].any() and views[b].any()) or (views[a] & views[b]).any():
                continue
            keep, drop = (a, b) if views[a].sum() >= views[b].sum() else (b, a)
            g[t, keep, views[drop]] = g[t, drop, views[drop]]
            g[t, drop] = np.nan
            centres[t, drop] = np.nan
            points[t, drop] = np.nan
            views[keep] |= views[drop]
            views[drop] = False


def reconstruct(keypoints: Keypoints2D, rig: Rig, method: str = "robust", fps: float | None = None,
                config: ReconstructConfig | None = None, link: LinkConfig | None = None) -> Tracks:
    """2D keypoints of every camera -> :class:`~mocap.io.tracks.Tracks` of every person.

    Args:
        keypoints: ``data (T, C, P, J, 3)``, cameras in ``rig`` order (``align_to_rig``).
        rig: the calibration (world Z up, metres).
        method: ``"dlt"`` (confidence-weighted linear) or ``"robust"`` (outlier views rejected,
            left/right check).
        fps: frame rate; default ``keypoints.fps``.
        config: thresholds and ``multi_person``; defaults if None.
        link: how people are linked over time (:class:`~mocap.track.linking.LinkConfig`).

    Returns:
        ``Tracks`` with ``positions (T, P, J', 3)`` metres (NaN where a person is absent or a
        joint had too few views; ``P = 1`` without ``multi_person``), ``joint_names`` the
        keypoint format's plus ``pelvis``/``neck`` where absent, and ``confidence (T, P, J')``
        the mean detector confidence over the views used (0 where NaN). Raises ``ValueError``
        when no person is seen by two cameras in any frame.
    """
    check_choice(method, METHODS, "method")
    config = config or ReconstructConfig()
    fps = fps if fps is not None else keypoints.fps
    if fps is None or not np.isfinite(fps) or fps <= 0:
        raise ValueError("fps: the keypoints carry no frame rate; pass fps (frames per second)")
    _check_aligned(keypoints, rig)
    if config.multi_person:
        person = people_views(keypoints, rig, method, config, link, fps)  # (T, P, C, J, 3)
        if person.shape[1] == 0:
            raise ValueError("keypoints: no person is seen by two cameras in any frame; check that the videos "
                             "overlap in time and that the calibration belongs to these cameras")
    else:
        person = most_confident_person(keypoints)[:, None]  # (T, 1, C, J, 3)
    tri = _triangulate_views(rig, person, keypoints.joint_names, method, config, temporal=True)
    conf = np.nan_to_num(np.moveaxis(person[..., 2], -2, -1))  # (T, P, J, C)
    used_conf = np.where(tri.inliers, conf, 0.0).sum(-1) / np.maximum(tri.inliers.sum(-1), 1)
    points = _smoothed(rig, tri, person, conf, fps, config) if config.smooth else tri.points
    stacked = np.concatenate([points, used_conf[..., None]], axis=-1)  # (T, P, J, 4)
    stacked, names = add_derived_joints(stacked, keypoints.joint_names)
    positions, confidence = stacked[..., :3], np.nan_to_num(stacked[..., 3])
    confidence[~np.isfinite(positions).all(-1)] = 0.0
    n_ok = np.isfinite(tri.points).all(-1)
    if config.smooth:
        filled = np.isfinite(points).all(-1) & ~n_ok
        log.info("smoothing: %d joint positions filled in short gaps", int(filled.sum()))
    log.info("reconstructed %d frames x %d people x %d joints (%s): %.1f%% joints triangulated, %.2f views per "
             "joint, median reprojection error %.2f px", tri.points.shape[0], tri.points.shape[1], tri.points.shape[2],
             method, 100 * n_ok.mean(), tri.views_used[n_ok].mean() if n_ok.any() else 0.0,
             np.nanmedian(np.where(tri.inliers, tri.reproj_error_px, np.nan)) if tri.inliers.any() else np.nan)
    return Tracks(positions=positions, joint_names=names, track_ids=np.arange(person.shape[1]), fps=float(fps),
                  frame_indices=keypoints.frame_indices, confidence=confidence)
