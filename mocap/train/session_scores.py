"""Scores of the session adaptation (:mod:`mocap.train.adapt`) without 3D ground truth: every camera
left out in turn, each person triangulated from the others and reprojected into it (the median px
to its detections), and the bone-length CV of the all-camera points; per person, per frame for a
block bootstrap of the change between two methods; and the learned mode of a model in memory."""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from mocap.evaluate import bone_length_cv
from mocap.geometry import Rig, project_rig
from mocap.triangulation.people import TriangulateConfig, triangulate_people


def left_out_camera_errors(rig: Rig, people: np.ndarray, joint_names, config: TriangulateConfig, camera: int,
                           min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Every person of ``people (T, P, C, J, 3)`` triangulated without ``camera`` -> (px ``(T, P, J)``
    from its projection into ``camera`` to that camera's detections, ``(T, P, J)`` where the
    detection's confidence is >= ``min_confidence``)."""
    seen = people.copy()
    seen[:, :, camera] = np.nan
    pts = triangulate_people(rig, seen, joint_names, config).points  # (T, P, J, 3)
    with np.errstate(invalid="ignore"):
        err = np.linalg.norm(project_rig(rig, pts)[..., camera, :] - people[:, :, camera, :, :2], axis=-1)
        use = people[:, :, camera, :, 2] >= min_confidence
    return err, use


def held_out_view_errors(rig: Rig, people: np.ndarray, joint_names, config: TriangulateConfig,
                         min_confidence: float) -> tuple[list[float], float]:
    """Every camera left out in turn, every person of ``people (T, P, C, J, 3)`` triangulated from
    the others with ``config`` -> (median px per camera to the left-out detections with confidence
    >= ``min_confidence``, mean over people of the mean bone-length CV of the all-camera points)."""
    per_camera = []
    for c in range(len(rig)):
        err, use = left_out_camera_errors(rig, people, joint_names, config, c, min_confidence)
        err = err[use]
        per_camera.append(float(np.nanmedian(err)) if np.isfinite(err).any() else float("nan"))
    pts = triangulate_people(rig, people, joint_names, config).points
    cvs = [np.nanmean(list(bone_length_cv(pts[:, p], joint_names).values())) for p in range(pts.shape[1])
           if np.isfinite(pts[:, p]).all(-1).sum() >= 10]
    return per_camera, float(np.mean(cvs)) if cvs else float("nan")


def held_out_view_frames(rig: Rig, people: np.ndarray, joint_names, config: TriangulateConfig,
                         min_confidence: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Every camera left out in turn, every person of ``people (T, P, C, J, 3)`` triangulated from the
    others with ``config`` -> (px ``(C, T, P, J)`` into the left-out camera, NaN where its detection is
    missing or below ``min_confidence``; the all-camera points ``(T, P, J, 3)``)."""
    out = []
    for c in range(len(rig)):
        err, use = left_out_camera_errors(rig, people, joint_names, config, c, min_confidence)
        out.append(np.where(use, err, np.nan))
    return np.stack(out), triangulate_people(rig, people, joint_names, config).points


def median_per_person(err: np.ndarray) -> np.ndarray:
    """px ``(C, T, P, J)`` (NaN: no target) -> median ``(P, C)`` over the frames and joints (NaN: none)."""
    C, T, P, J = err.shape
    flat = np.moveaxis(err, 2, 0).reshape(P, C, T * J)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a person never seen by a camera
        return np.nanmedian(flat, axis=-1)


def person_bone_cv(points: np.ndarray, joint_names) -> np.ndarray:
    """Mean bone-length CV ``(P,)`` of each person of ``points (T, P, J, 3)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.array([np.nanmean(list(bone_length_cv(points[:, p], joint_names).values()))
                         for p in range(points.shape[1])])


def block_bootstrap_change(before: tuple, after: tuple, joint_names, block: int = 5, draws: int = 1000,
                           seed: int = 0) -> dict:
    """95 % intervals of the changes ``after - before`` of two methods' :func:`held_out_view_frames`
    results on the same frames, with the frames resampled in blocks of ``block`` consecutive frames
    and, for the px, the joints resampled too (a performer who hardly moves gives nearly the same
    frame over and over: the joints are then the independent evidence); the same draws for both
    methods (paired) -> ``{"px": (P, C, 2), "bone_cv": (P, 2)}``."""
    C, T, P, J = before[0].shape
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, T - block + 1, size=(draws, -(-T // block)))
    frames = (starts[..., None] + np.arange(block)).reshape(draws, -1)[:, :T]
    joints = rng.integers(0, J, size=(draws, J))
    px = np.stack([median_per_person(after[0][:, f][..., j]) - median_per_person(before[0][:, f][..., j])
                   for f, j in zip(frames, joints)])
    cv = np.stack([person_bone_cv(after[1][f], joint_names) - person_bone_cv(before[1][f], joint_names)
                   for f in frames])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"px": np.moveaxis(np.nanpercentile(px, [2.5, 97.5], axis=0), 0, -1),
                "bone_cv": np.moveaxis(np.nanpercentile(cv, [2.5, 97.5], axis=0), 0, -1)}


def scores_of(model, rig: Rig, people: np.ndarray, joint_names, config: TriangulateConfig,
              min_confidence: float = 0.3) -> dict:
    """:func:`held_out_view_errors` of the learned mode with ``model`` (a
    :class:`~mocap.triangulation.learned.ViewWeightNet`, through a temporary weights file)."""
    from mocap.triangulation.learned import save_weights

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.pt"
        save_weights(model, path, {})
        per_camera, cv = held_out_view_errors(rig, people, joint_names,
                                              replace(config, method="learned", learned_weights=str(path)),
                                              min_confidence)
    return {"held_out_view_px": float(np.nanmean(per_camera)), "per_camera_px": per_camera, "bone_cv": cv}
