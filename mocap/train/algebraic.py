"""Training the learned algebraic triangulation end to end on the 3D error (torch, CPU).

Data: :func:`mocap.train.data.evidence_set` of :func:`~mocap.train.data.training_scenarios`
(robust triangulation first, as at inference). Loss: the mean Euclidean distance (metres) between
the weighted-DLT point and the truth (MPJPE), over random mini-batches of points. Adam with a
cosine learning-rate decay. Seeded and reproducible: the same config on the same number of
threads gives the same weights bit for bit (``torch.manual_seed``, a numpy generator for the
batches, a fixed thread count).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

import numpy as np
import torch

from mocap.train.config import TrainConfig
from mocap.train.loop import fit_minibatches, optimizer_step
from mocap.triangulation.learned import ViewWeightNet, solve_points

__all__ = ["TrainConfig", "batch_loss", "fit", "to_tensors", "train_algebraic", "training_step"]

log = logging.getLogger(__name__)


def to_tensors(data: dict, idx: np.ndarray | None = None) -> dict:
    """The arrays of :func:`~mocap.train.data.evidence_set` (rows ``idx``) as tensors."""
    sel = slice(None) if idx is None else idx
    return {k: torch.from_numpy(np.ascontiguousarray(v[sel])) for k, v in data.items()}


def batch_loss(model: ViewWeightNet, batch: dict) -> torch.Tensor:
    """Mean 3D error (metres) of the learned points of ``batch``."""
    X, _ = solve_points(model, batch["features"], batch["valid"], batch["rows"])
    return (torch.linalg.vector_norm(X - batch["gt_cond"], dim=-1) / batch["scale"]).mean()


def training_step(model: ViewWeightNet, optimizer: torch.optim.Optimizer, batch: dict) -> float:
    """One optimiser step on ``batch``; returns the loss before the step."""
    return optimizer_step(model, optimizer, batch, batch_loss)


def fit(model: ViewWeightNet, data: dict, cfg: TrainConfig, report_every: int = 250) -> list[float]:
    """Train ``model`` on ``data`` for ``cfg.steps`` steps -> the loss per step."""
    return fit_minibatches(model, len(data["scale"]), lambda idx: to_tensors(data, idx), batch_loss,
                           steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, seed=cfg.seed, report_every=report_every)


def train_algebraic(cfg: TrainConfig) -> tuple[ViewWeightNet, dict]:
    """Build the training set and train -> ``(model, meta)``; ``meta`` says what made the weights
    (config, sizes, time, final training loss and the robust error on the same points)."""
    from mocap.train.data import evidence_set, training_scenarios

    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        t0 = time.perf_counter()
        data = evidence_set(training_scenarios(cfg.scenes, cfg.frames, cfg.seed), calibration_rate=cfg.calibration_rate,
                            bias_rate=cfg.bias_rate, detector_bias_rate=cfg.detector_bias_rate)
        t_data = time.perf_counter() - t0
        log.info("training set: %d points from %d scenes (%.1f s); robust MPJPE on them %.2f mm",
                 len(data["scale"]), cfg.scenes, t_data, 1000 * data["robust_err"].mean())
        torch.manual_seed(cfg.seed)
        model = ViewWeightNet(hidden=cfg.hidden, layers=cfg.layers)
        losses = fit(model, data, cfg)
        with torch.no_grad():
            final = float(batch_loss(model, to_tensors(data)))
    finally:
        torch.set_num_threads(threads)
    meta = {"config": asdict(cfg), "points": int(len(data["scale"])), "data_seconds": round(t_data, 1),
            "seconds": round(time.perf_counter() - t0, 1), "train_mpjpe_mm": round(1000 * final, 3),
            "train_robust_mpjpe_mm": round(1000 * float(data["robust_err"].mean()), 3),
            "torch": str(torch.__version__), "first_loss_mm": round(1000 * losses[0], 3)}
    return model.eval(), meta
