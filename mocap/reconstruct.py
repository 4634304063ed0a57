"""2D keypoints of every camera + calibration -> 3D tracks (single person for now).

Per frame and camera the most confident detected person is taken (sum of joint confidences),
its joints are triangulated (:func:`mocap.triangulation.triangulate_robust` or
:func:`~mocap.triangulation.triangulate_dlt`) with the detector confidences as weights, and the
derived joints ``pelvis``/``neck`` are appended where the keypoint format lacks them. The output
keeps a people axis of size 1 (``tracks.npz`` contract).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from mocap._checks import check_choice
from mocap.geometry import Rig, normalize_camera_name
from mocap.keypoints import Keypoints2D
from mocap.skeleton.joints import add_derived_joints
from mocap.tracks import Tracks
from mocap.triangulation import Triangulation, left_right_limbs, triangulate_dlt, triangulate_robust

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

    def __post_init__(self):
        if not 0 <= self.min_confidence < 1:
            raise ValueError(f"min_confidence: expected a value in [0, 1), got {self.min_confidence}")
        if self.threshold_px <= 0:
            raise ValueError(f"threshold_px: must be > 0 pixels, got {self.threshold_px}")
        if not 0 <= self.threshold_fraction < 1:
            raise ValueError(f"threshold_fraction: expected a value in [0, 1), got {self.threshold_fraction}")
        if self.min_views < 2:
            raise ValueError(f"min_views: a 3D point needs at least 2 views, got {self.min_views}")

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
    """Outlier threshold per frame and view ``(T, C)`` px: ``max(threshold_px, fraction * size)``
    with ``size`` the larger side of the box of the person's keypoints ``person (T, C, J, 3)``
    that reach ``min_confidence``."""
    ok = person[..., 2] >= min_confidence
    xy = np.where(ok[..., None], person[..., :2], np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN views: no person
        size = (np.nanmax(xy, axis=2) - np.nanmin(xy, axis=2)).max(axis=-1)
    return np.maximum(threshold_px, fraction * np.nan_to_num(size))


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


def reconstruct(keypoints: Keypoints2D, rig: Rig, method: str = "robust", fps: float | None = None,
                config: ReconstructConfig | None = None) -> Tracks:
    """2D keypoints of one person in every view -> :class:`~mocap.tracks.Tracks` with P = 1.

    Args:
        keypoints: ``data (T, C, P, J, 3)``, cameras in ``rig`` order; the most confident person
            of each view is used.
        rig: the calibration (world Z up, metres).
        method: ``"dlt"`` (confidence-weighted linear) or ``"robust"`` (outlier views rejected,
            left/right check).
        fps: frame rate; default ``keypoints.fps``.
        config: thresholds; defaults if None.

    Returns:
        ``Tracks`` with ``positions (T, 1, J', 3)`` metres (NaN where a joint had too few views),
        ``joint_names`` the keypoint format's plus ``pelvis``/``neck`` where absent, and
        ``confidence (T, 1, J')`` the mean detector confidence over the views used (0 where NaN).
    """
    fps = fps if fps is not None else keypoints.fps
    if fps is None or not np.isfinite(fps) or fps <= 0:
        raise ValueError("fps: the keypoints carry no frame rate; pass fps (frames per second)")
    tri = triangulate_single_person(keypoints, rig, method, config)
    conf = np.moveaxis(most_confident_person(keypoints)[..., 2], 1, 2)  # (T, J, C)
    with np.errstate(invalid="ignore"):
        used_conf = np.where(tri.inliers, np.nan_to_num(conf), 0.0).sum(-1) / np.maximum(tri.inliers.sum(-1), 1)
    stacked = np.concatenate([tri.points, used_conf[..., None]], axis=-1)[:, None]  # (T, 1, J, 4)
    stacked, names = add_derived_joints(stacked, keypoints.joint_names)
    positions, confidence = stacked[..., :3], np.nan_to_num(stacked[..., 3])
    confidence[~np.isfinite(positions).all(-1)] = 0.0
    n_ok = np.isfinite(tri.points).all(-1)
    log.info("reconstructed %d frames x %d joints (%s): %.1f%% joints triangulated, %.2f views per joint, "
             "median reprojection error %.2f px", *tri.points.shape[:2], method, 100 * n_ok.mean(),
             tri.views_used[n_ok].mean() if n_ok.any() else 0.0,
             np.nanmedian(np.where(tri.inliers, tri.reproj_error_px, np.nan)) if tri.inliers.any() else np.nan)
    return Tracks(positions=positions, joint_names=names, track_ids=np.array([0]), fps=float(fps),
                  frame_indices=keypoints.frame_indices, confidence=confidence)
