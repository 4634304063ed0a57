"""Settings of ``mocap train algebraic`` (no torch: the command line reads its defaults)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Settings of ``mocap train algebraic`` (the defaults made the shipped weights)."""

    seed: int = 0
    """Seed of the scenes, the initial weights and the batches."""
    scenes: int = 48
    """Synthetic captures to train on."""
    frames: int = 150
    """Frames per capture."""
    steps: int = 2000
    """Optimiser steps."""
    batch: int = 2048
    """Points per step."""
    lr: float = 3e-3
    """Adam learning rate (cosine decay to 0)."""
    hidden: int = 32
    """Width of the network's hidden layers."""
    layers: int = 2
    """Hidden layers."""
    threads: int = 1
    """torch threads (the same count gives the same weights)."""

    def __post_init__(self):
        for name in ("scenes", "frames", "steps", "batch", "hidden", "layers", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected > 0, got {self.lr}")

