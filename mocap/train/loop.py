"""The training loop both learned triangulations share: seeded minibatches, Adam, cosine schedule."""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch

log = logging.getLogger(__name__)


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict,
                   loss_fn: Callable[[torch.nn.Module, dict], torch.Tensor]) -> float:
    """One optimiser step on ``batch``; returns the loss (metres) before the step."""
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model, batch)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def fit_minibatches(model: torch.nn.Module, n: int, take: Callable[[np.ndarray], dict],
                    loss_fn: Callable[[torch.nn.Module, dict], torch.Tensor], *, steps: int, batch: int,
                    lr: float, seed: int, report_every: int) -> list[float]:
    """``steps`` Adam steps (cosine learning rate) on minibatches ``take(idx)`` of ``batch``
    samples out of ``n``, drawn with ``seed`` -> the loss per step."""
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    losses = []
    for step in range(steps):
        idx = rng.choice(n, size=min(batch, n), replace=False)
        losses.append(optimizer_step(model, optimizer, take(idx), loss_fn))
        schedule.step()
        if (step + 1) % report_every == 0:
            log.info("step %d/%d: loss %.2f mm (mean of the last %d)", step + 1, steps,
                     1000 * np.mean(losses[-report_every:]), report_every)
    return losses
