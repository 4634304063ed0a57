"""Triangulating people whose views are known: the settings and the per-person entry points.

A person is given per view as ``(..., C, J, 3)`` (x px, y px, confidence; NaN where a view did
not see them), from the cross-view matching (:mod:`mocap.match`) or, for one performer, the most
confident detection of every view (:func:`most_confident_person`). The detector confidences are
the weights; robust mode's outlier threshold per view grows with the person's size in that view
(:func:`view_thresholds`: detector noise is a fraction of the size).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap._checks import check_choice
from mocap.errors import MocapError
from mocap.geometry import Rig
from mocap.match.epipolar import person_sizes
from mocap.triangulation.dlt import Triangulation, triangulate_dlt
from mocap.triangulation.robust import left_right_limbs, triangulate_robust

METHODS = ("dlt", "robust", "learned", "volumetric")


@dataclass(frozen=True)
class TriangulateConfig:
    """How each person's joints are triangulated."""

    method: str = "robust"
    """``robust`` (outlier views rejected, left/right check), ``dlt`` (confidence-weighted linear) or
    ``learned`` (robust first, then a weighted DLT with per-view weights from a small trained
    network, :mod:`mocap.triangulation.learned`; needs torch) or ``volumetric`` (robust first, then
    per-person heatmap cubes, a small 3D network and a soft-argmax, :mod:`mocap.triangulation.volumetric`;
    needs torch)."""
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
    """Robust mode: relabel a view's left/right limb when exchanged labels fit the 3D limb much better,
    and leave out a view's limb that still misses it after that (three quarters of its joints over
    twice the threshold while two other views fit it: a limb the detector made up; step 7 of
    :func:`~mocap.triangulation.robust.triangulate_robust`)."""
    temporal_swap_check: bool = True
    """Robust mode: check every view's left/right labels again against the joints predicted from
    the neighbouring frames (median of frames t-2, t-1, t+1, t+2) and solve the relabelled joints
    again: resolves swaps one frame cannot (a swap in two of four views is a two-against-two tie)."""
    min_views: int = 2
    """Joints seen by fewer (inlier) views are NaN."""
    learned_weights: str = ""
    """Learned mode: the weights file (``mocap train algebraic --out FILE``); "" for the shipped ones."""
    volumetric_weights: str = ""
    """Volumetric mode: the weights file (``mocap train volumetric --out FILE``); "" for the shipped ones."""
    learned_guard: bool = True
    """Learned and volumetric modes: keep robust's point where the learned one is consistently farther
    from one of robust's inlier views (weights adapted with ``--session`` are not guarded)."""

    def __post_init__(self):
        check_choice(self.method, METHODS, "method")
        if not 0 <= self.min_confidence < 1:
            raise ValueError(f"min_confidence: expected a value in [0, 1), got {self.min_confidence}")
        if self.threshold_px <= 0:
            raise ValueError(f"threshold_px: must be > 0 pixels, got {self.threshold_px}")
        if not 0 <= self.threshold_fraction < 1:
            raise ValueError(f"threshold_fraction: expected a value in [0, 1), got {self.threshold_fraction}")
        if self.max_hypotheses < 1:
            raise ValueError(f"max_hypotheses: must be >= 1, got {self.max_hypotheses}")
        if self.min_views < 2:
            raise ValueError(f"min_views: a 3D point needs at least 2 views, got {self.min_views}")
        if self.method == "learned":  # fail fast, before any detection
            check_learned_available(self.learned_weights)
        if self.method == "volumetric":
            check_learned_available(self.volumetric_weights, "volumetric")


def most_confident_person(data: np.ndarray) -> np.ndarray:
    """Per frame and camera the detection with the largest summed joint confidence.

    Args:
        data: ``(T, C, P, J, 3)`` detections (``Keypoints2D.data``).

    Returns:
        ``(T, C, J, 3)`` x px, y px, confidence; NaN where a camera saw nobody.
    """
    score = np.nansum(data[..., 2], axis=-1)  # (T, C, P)
    best = np.argmax(score, axis=-1)  # (T, C)
    return np.take_along_axis(data, best[..., None, None, None], axis=2)[:, :, 0]


def view_thresholds(person: np.ndarray, min_confidence: float, threshold_px: float, fraction: float) -> np.ndarray:
    """Outlier threshold per view ``(..., C)`` px: ``max(threshold_px, fraction * size)`` with
    ``size`` the larger side of the box of the person's keypoints ``person (..., C, J, 3)`` that
    reach ``min_confidence``."""
    return np.maximum(threshold_px, fraction * np.nan_to_num(person_sizes(person, min_confidence)))


def triangulate_frames(rig: Rig, xy_px: np.ndarray, weight: np.ndarray, threshold_px: np.ndarray, limbs,
                       config: TriangulateConfig) -> Triangulation:
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


def triangulate_people(rig: Rig, person: np.ndarray, joint_names, config: TriangulateConfig,
                       temporal: bool = True, reference: np.ndarray | None = None) -> Triangulation:
    """Triangulate people given per view.

    Args:
        rig: the calibration (cameras in the order of the ``C`` axis).
        person: ``(T, ..., C, J, 3)`` x px, y px, confidence; NaN where not seen.
        joint_names: ``(J,)`` names (for the left/right checks).
        config: method and thresholds.
        temporal: allow the temporal left/right check (needs frames on axis 0 to be consecutive).
        reference: ``(T, ..., J, 3)`` points to check each view's left/right labels against where
            ``temporal`` is off (a live tracker's prediction; NaN where none), or None.

    Returns:
        :class:`~mocap.triangulation.Triangulation` over ``(T, ..., J)``.
    """
    xy = np.moveaxis(person[..., :2], -3, -2)  # (T, ..., J, C, 2)
    conf = np.nan_to_num(np.moveaxis(person[..., 2], -2, -1))  # (T, ..., J, C)
    weight = np.where(conf >= config.min_confidence, conf, 0.0)
    if config.method == "dlt":
        return triangulate_dlt(rig, xy, weight, min_views=config.min_views)
    limbs = left_right_limbs(joint_names) if config.swap_check else None
    tau = view_thresholds(person, config.min_confidence, config.threshold_px, config.threshold_fraction)
    tau = np.broadcast_to(tau[..., None, :], weight.shape)  # (T, ..., J, C)
    tri = triangulate_robust(rig, xy, weight, threshold_px=tau, max_hypotheses=config.max_hypotheses,
                             refine=config.refine, limbs=limbs or None,
                             temporal=temporal and bool(limbs) and config.temporal_swap_check,
                             min_views=config.min_views,
                             reference=reference if config.temporal_swap_check else None)
    if config.method == "learned":
        return learned_module().triangulate_learned(rig, person, tri, joint_names, config, temporal)
    if config.method == "volumetric":
        learned_module()  # a one-line error without torch
        from mocap.triangulation.volumetric import triangulate_volumetric

        return triangulate_volumetric(rig, person, tri, joint_names, config, temporal)
    return tri


TORCH_HINT = "pip install 'torch==2.13.0' --index-url https://download.pytorch.org/whl/cpu, or use --triangulation robust"


def check_learned_available(weights: str, method: str = "learned") -> None:
    """One-line errors, without importing torch, when the learned (or ``method``) mode cannot run:
    torch missing, or the weights file ``weights`` ("" = the shipped one) not there."""
    import importlib.util
    from pathlib import Path

    if importlib.util.find_spec("torch") is None:
        raise MocapError(f"triangulate.method={method} needs torch: {TORCH_HINT}")
    if weights and not Path(weights).is_file():
        field, kind = ("learned_weights", "algebraic") if method == "learned" else (f"{method}_weights", method)
        raise MocapError(f"triangulate.{field}: {weights}: file not found; "
                         f"make one with 'mocap train {kind} --out {weights}' or leave it empty for the shipped weights")


def learned_module():
    """:mod:`mocap.triangulation.learned`, imported on first use (torch is needed by the learned mode only)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise MocapError(f"triangulate.method=learned needs torch: {TORCH_HINT}") from None
    from mocap.triangulation import learned

    return learned


def triangulate_single_person(data: np.ndarray, joint_names, rig: Rig,
                              config: TriangulateConfig | None = None) -> Triangulation:
    """Triangulate the most confident person of every view.

    Args:
        data: ``(T, C, P, J, 3)`` detections with cameras in ``rig`` order.
        joint_names: ``(J,)`` names.
        rig: the calibration.
        config: method and thresholds; defaults if None.

    Returns:
        :class:`~mocap.triangulation.Triangulation` over ``(T, J)``: ``points (T, J, 3)``,
        ``reproj_error_px (T, J, C)``, ...
    """
    return triangulate_people(rig, most_confident_person(data), joint_names, config or TriangulateConfig())
