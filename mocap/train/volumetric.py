"""Training the volumetric triangulation on the synthetic studio (torch, CPU).

Data: :func:`~mocap.train.data.training_scenarios` (held out from ``mocap bench triangulate``),
each with a second performer (occlusion) and outlier rates up to 25 %; robust triangulation
first and its left/right relabelling of the detections, as at inference; every ``stride``-th
frame whose cube passes the inference checks is a sample; its aggregated volume is built once (:func:`mocap.triangulation.volumetric.volume_inputs`).
Loss: the mean Euclidean distance (metres) between the soft-argmax points and the truth, over the
joints with a truth and a robust point. Adam with a cosine learning-rate decay. Seeded and
reproducible: the same config on the same thread count gives the same weights.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace

import numpy as np
import torch

from mocap.train.config import VolumetricTrainConfig
from mocap.train.loop import fit_minibatches, optimizer_step
from mocap.triangulation.volumetric import (CUBE_M, RESOLUTION, VolumetricNet, cube_coords, frame_checks, pelvis,
                                            soft_argmax, volume_inputs)

__all__ = ["VolumetricTrainConfig", "batch_loss", "fit", "train_volumetric", "training_step", "volume_set"]

log = logging.getLogger(__name__)

#: Outlier rates of the volumetric training scenes (heavier than the algebraic ones).
TRAIN_OUTLIERS = (0.05, 0.15, 0.25)


def volumetric_scenarios(cfg: VolumetricTrainConfig) -> list:
    """The training scenarios: the algebraic ones' rigs, clips and noise, two performers, heavier outliers."""
    from mocap.train.data import TRAIN_CLIPS, training_scenarios

    rng = np.random.default_rng(cfg.seed + 1)
    out = []
    for i, sc in enumerate(training_scenarios(cfg.scenes, cfg.frames, cfg.seed)):
        other = TRAIN_CLIPS[(i + 1) % len(TRAIN_CLIPS)]
        out.append(replace(sc, other_clip=other, outlier_rate=float(rng.choice(TRAIN_OUTLIERS))))
    return out


def volume_set(scenarios, stride: int = 1, config=None) -> dict:
    """Volumes and targets of the scenarios' sampled person-frames: ``volumes (N, J, D, D, D)``
    float32, ``target (N, J, 3)`` truth relative to the cube centre (0 where masked), ``mask (N, J)``,
    ``robust_err (M,)`` metres of the robust points on the masked-in joints."""
    from mocap.train.data import scenario_person
    from mocap.triangulation.features import learned_inputs
    from mocap.triangulation.people import TriangulateConfig, triangulate_people

    config = config or TriangulateConfig()
    parts = []
    for sc in scenarios:
        scene, person, gt = scenario_person(sc)
        tri = triangulate_people(scene.rig, person, scene.joint_names, config, temporal=sc.temporal)
        person, _ = learned_inputs(scene.rig, person, tri.points, scene.joint_names, config, temporal=False)
        sl = slice(None, None, stride)
        X0, gt, person = tri.points[sl], gt[sl], person[sl]
        inputs = volume_inputs(scene.rig, person, pelvis(X0, scene.joint_names), config.min_confidence)
        keep = ~np.any(list(frame_checks(inputs, X0, len(scene.rig)).values()), axis=0)
        mask = (np.isfinite(gt).all(-1) & np.isfinite(X0).all(-1))[keep]
        rel = np.where(mask[..., None], gt[keep] - inputs.centers[keep, None], 0.0)
        parts.append(dict(volumes=inputs.volumes[torch.from_numpy(keep)], target=torch.from_numpy(rel.astype(np.float32)),
                          mask=torch.from_numpy(mask), robust_err=np.linalg.norm(X0[keep] - gt[keep], axis=-1)[mask]))
    out = {k: torch.cat([p[k] for p in parts]) for k in ("volumes", "target", "mask")}
    out["robust_err"] = np.concatenate([p["robust_err"] for p in parts])
    return out


def batch_loss(model: VolumetricNet, batch: dict) -> torch.Tensor:
    """Mean 3D error (metres) of the soft-argmax points of ``batch`` over its masked-in joints."""
    coords = torch.from_numpy(cube_coords(batch["volumes"].shape[-1]).astype(np.float32))
    X = soft_argmax(model(batch["volumes"]), coords)
    err = torch.linalg.vector_norm(X - batch["target"], dim=-1)
    m = batch["mask"].to(err.dtype)
    return (err * m).sum() / m.sum().clamp_min(1.0)


def training_step(model: VolumetricNet, optimizer: torch.optim.Optimizer, batch: dict) -> float:
    """One optimiser step on ``batch``; returns the loss before the step."""
    return optimizer_step(model, optimizer, batch, batch_loss)


def fit(model: VolumetricNet, data: dict, cfg: VolumetricTrainConfig, report_every: int = 50) -> list[float]:
    """Train ``model`` on ``data`` for ``cfg.steps`` steps -> the loss per step."""

    def take(idx):
        idx = torch.from_numpy(idx)
        return {k: data[k][idx] for k in ("volumes", "target", "mask")}

    return fit_minibatches(model, len(data["mask"]), take, batch_loss,
                           steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, seed=cfg.seed, report_every=report_every)


def eval_loss(model: VolumetricNet, data: dict, chunk: int = 64) -> float:
    """Mean 3D error (metres) over all masked-in joints of ``data``."""
    tot, cnt = 0.0, 0.0
    with torch.no_grad():
        for s in range(0, len(data["mask"]), chunk):
            b = {k: data[k][s:s + chunk] for k in ("volumes", "target", "mask")}
            m = float(b["mask"].sum())
            tot, cnt = tot + float(batch_loss(model, b)) * m, cnt + m
    return tot / max(cnt, 1.0)


def train_volumetric(cfg: VolumetricTrainConfig) -> tuple[VolumetricNet, dict]:
    """Build the training set and train -> ``(model, meta)``; ``meta`` says what made the weights."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        t0 = time.perf_counter()
        data = volume_set(volumetric_scenarios(cfg), cfg.stride)
        t_data = time.perf_counter() - t0
        log.info("training set: %d person-frames from %d scenes (%.1f s); robust MPJPE on them %.2f mm",
                 len(data["mask"]), cfg.scenes, t_data, 1000 * data["robust_err"].mean())
        torch.manual_seed(cfg.seed)
        model = VolumetricNet(data["volumes"].shape[1], cfg.width)
        losses = fit(model, data, cfg)
        final = eval_loss(model, data)
    finally:
        torch.set_num_threads(threads)
    meta = {"config": asdict(cfg), "person_frames": int(len(data["mask"])), "data_seconds": round(t_data, 1),
            "seconds": round(time.perf_counter() - t0, 1), "train_mpjpe_mm": round(1000 * final, 3),
            "train_robust_mpjpe_mm": round(1000 * float(data["robust_err"].mean()), 3), "resolution": RESOLUTION,
            "cube_m": CUBE_M, "torch": str(torch.__version__), "first_loss_mm": round(1000 * losses[0], 3)}
    return model.eval(), meta
