"""Training the volumetric triangulation's per-joint network on the synthetic studio (torch, CPU).

Data: :func:`~mocap.train.data.training_scenarios` (held out from ``mocap bench triangulate``),
each with a second performer (every other one a third too: occlusion) and outlier rates up to
25 %; robust triangulation, then
the learned algebraic stage with its shipped weights (its points are the cube centres, its view
weights aggregate the heatmaps), as at inference; every ``stride``-th frame whose person passes
the inference checks gives its joints as samples (:class:`~mocap.triangulation.volumetric.JointViews`,
views padded to :data:`~mocap.train.data.MAX_CAMERAS`; the volumes are built per batch).
Loss: the mean Euclidean distance (metres) between the refined points and the truth. Adam with a
cosine learning-rate decay. Seeded and reproducible: the same config on the same thread count
gives the same weights.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace

import numpy as np
import torch

from mocap.train.config import VolumetricTrainConfig
from mocap.train.loop import fit_minibatches, optimizer_step
from mocap.triangulation.volumetric import (FINE_M, RESOLUTION, VolumetricNet, algebraic_stage, frame_checks,
                                            joint_views, refine)

__all__ = ["VolumetricTrainConfig", "batch_loss", "fit", "train_volumetric", "training_step", "volume_set"]

log = logging.getLogger(__name__)

#: Outlier rates of the volumetric training scenes (heavier than the algebraic ones).
TRAIN_OUTLIERS = (0.05, 0.15, 0.25)
#: The per-point arrays of a training set that a batch carries.
BATCH_KEYS = ("residual", "jacobian", "voxel_px", "weight", "anchors", "target")


def volumetric_scenarios(cfg: VolumetricTrainConfig) -> list:
    """The training scenarios: the algebraic ones' rigs, clips and noise, two performers, heavier
    outliers; ``(scenario, performers)`` pairs, a third performer (more occlusion) in every other one."""
    from mocap.train.data import TRAIN_CLIPS, training_scenarios

    rng = np.random.default_rng(cfg.seed + 1)
    out = []
    for i, sc in enumerate(training_scenarios(cfg.scenes, cfg.frames, cfg.seed)):
        other = TRAIN_CLIPS[(i + 1) % len(TRAIN_CLIPS)]
        out.append((replace(sc, other_clip=other, outlier_rate=float(rng.choice(TRAIN_OUTLIERS))), 2 + i % 2))
    return out


def crowded_person(sc, performers: int):
    """:func:`~mocap.train.data.scenario_person` of ``sc`` with ``performers`` people in the scene
    (the clips of ``sc`` in turn): ``(scene, person (T, C, J, 3), gt (T, J, 3))`` of person 0."""
    from mocap.synthetic import make_scene

    scene = make_scene(replace(sc.synthetic_config(), num_people=performers))
    is_p0 = scene.gt_person_index == 0  # (T, C, P')
    data = np.take_along_axis(scene.keypoints.data, np.argmax(is_p0, -1)[..., None, None, None], axis=2)[:, :, 0]
    data[~is_p0.any(-1)] = np.nan
    return scene, data, scene.gt_positions[:, 0]


def scenario_samples(sc, stride: int, config, performers: int = 2, calibration_rate: float = 0.0,
                     bias_rate: float = 0.0, detector_bias_rate: float = 0.0) -> dict:
    """One scenario's samples (``performers`` in the scene, person 0 measured, its confidences
    re-calibrated in a share ``calibration_rate`` of the scenarios, a systematic detector error
    in a share ``bias_rate`` and a viewpoint-dependent detector bias in a share
    ``detector_bias_rate``, :func:`~mocap.train.data.training_detections`): :class:`JointViews` arrays
    (views padded to ``MAX_CAMERAS``), ``target (M, 3)`` truth minus cube centre,
    ``robust_err``/``algebraic_err (M,)`` metres."""
    from mocap.train.data import MAX_CAMERAS, pad_views, training_detections
    from mocap.triangulation.people import triangulate_people

    scene, person, gt = crowded_person(sc, performers)
    person = training_detections(scene, person, gt, sc.seed, config.min_confidence, calibration_rate, bias_rate,
                                 detector_bias_rate)
    tri = triangulate_people(scene.rig, person, scene.joint_names, config, temporal=sc.temporal)
    centres, W, relabelled, anchors = algebraic_stage(scene.rig, person, tri, scene.joint_names, config, sc.temporal)
    C = len(scene.rig)
    keep = ~np.any(list(frame_checks(person, centres, config.min_confidence).values()), axis=0)
    keep[np.arange(len(keep)) % stride != 0] = False
    X0, Xa, gt = tri.points[keep].reshape(-1, 3), centres[keep].reshape(-1, 3), gt[keep].reshape(-1, 3)
    xy = np.moveaxis(relabelled[keep, ..., :2], 1, 2).reshape(-1, C, 2)
    pts = np.isfinite(gt).all(-1) & np.isfinite(X0).all(-1) & np.isfinite(Xa).all(-1)
    views = joint_views(scene.rig, xy[pts], W[keep].reshape(-1, C)[pts], Xa[pts], anchors[keep].reshape(-1, 2, 3)[pts])
    out = {k: pad_views(getattr(views, k), MAX_CAMERAS, 1.0 if k == "voxel_px" else 0.0)
           for k in ("residual", "jacobian", "voxel_px", "weight")}
    out["anchors"] = views.anchors
    out["target"] = (gt[pts] - Xa[pts]).astype(np.float32)
    out["robust_err"] = np.linalg.norm(X0[pts] - gt[pts], axis=-1)
    out["algebraic_err"] = np.linalg.norm(Xa[pts] - gt[pts], axis=-1)
    return out


def volume_set(scenarios, stride: int = 1, config=None, calibration_rate: float = 0.0, bias_rate: float = 0.0,
               detector_bias_rate: float = 0.0) -> dict:
    """The samples of all ``scenarios`` (each a scenario with two performers, or a ``(scenario,
    performers)`` pair; :func:`scenario_samples`) concatenated: the arrays of :data:`BATCH_KEYS`
    as tensors, ``robust_err`` and ``algebraic_err`` as numpy."""
    from mocap.triangulation.people import TriangulateConfig

    config = config or TriangulateConfig()
    pairs = [sc if isinstance(sc, tuple) else (sc, 2) for sc in scenarios]
    parts = [scenario_samples(sc, stride, config, n, calibration_rate, bias_rate, detector_bias_rate) for sc, n in pairs]
    out = {k: torch.from_numpy(np.concatenate([p[k] for p in parts])) for k in BATCH_KEYS}
    for k in ("robust_err", "algebraic_err"):
        out[k] = np.concatenate([p[k] for p in parts])
    return out


def batch_loss(model: VolumetricNet, batch: dict) -> torch.Tensor:
    """Mean 3D error (metres) of the refined points of ``batch``."""
    return torch.linalg.vector_norm(refine(model, batch) - batch["target"], dim=-1).mean()


def training_step(model: VolumetricNet, optimizer: torch.optim.Optimizer, batch: dict) -> float:
    """One optimiser step on ``batch``; returns the loss before the step."""
    return optimizer_step(model, optimizer, batch, batch_loss)


def fit(model: VolumetricNet, data: dict, cfg: VolumetricTrainConfig, report_every: int = 50) -> list[float]:
    """Train ``model`` on ``data`` for ``cfg.steps`` steps -> the loss per step."""

    def take(idx):
        idx = torch.from_numpy(idx)
        return {k: data[k][idx] for k in BATCH_KEYS}

    return fit_minibatches(model, len(data["target"]), take, batch_loss,
                           steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, seed=cfg.seed, report_every=report_every)


def eval_loss(model: VolumetricNet, data: dict, chunk: int = 512) -> float:
    """Mean 3D error (metres) over all samples of ``data``."""
    tot = 0.0
    with torch.no_grad():
        for s in range(0, len(data["target"]), chunk):
            b = {k: data[k][s:s + chunk] for k in BATCH_KEYS}
            tot += float(batch_loss(model, b)) * len(b["target"])
    return tot / max(len(data["target"]), 1)


def train_volumetric(cfg: VolumetricTrainConfig) -> tuple[VolumetricNet, dict]:
    """Build the training set and train -> ``(model, meta)``; ``meta`` says what made the weights."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        t0 = time.perf_counter()
        data = volume_set(volumetric_scenarios(cfg), cfg.stride, calibration_rate=cfg.calibration_rate,
                          bias_rate=cfg.bias_rate, detector_bias_rate=cfg.detector_bias_rate)
        t_data = time.perf_counter() - t0
        log.info("training set: %d points from %d scenes (%.1f s); MPJPE on them: robust %.2f mm, algebraic %.2f mm",
                 len(data["target"]), cfg.scenes, t_data, 1000 * data["robust_err"].mean(),
                 1000 * data["algebraic_err"].mean())
        torch.manual_seed(cfg.seed)
        model = VolumetricNet(cfg.width)
        losses = fit(model, data, cfg)
        final = eval_loss(model, data)
    finally:
        torch.set_num_threads(threads)
    meta = {"config": asdict(cfg), "points": int(len(data["target"])), "data_seconds": round(t_data, 1),
            "seconds": round(time.perf_counter() - t0, 1), "train_mpjpe_mm": round(1000 * final, 3),
            "train_robust_mpjpe_mm": round(1000 * float(data["robust_err"].mean()), 3),
            "train_algebraic_mpjpe_mm": round(1000 * float(data["algebraic_err"].mean()), 3),
            "resolution": RESOLUTION, "fine_m": FINE_M, "torch": str(torch.__version__),
            "first_loss_mm": round(1000 * losses[0], 3)}
    return model.eval(), meta
