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
    calibration_rate: float = 0.0
    """Share of the captures whose detector confidences are re-calibrated at random (saturated, constant, gamma, ...)."""
    bias_rate: float = 0.0
    """Share of the captures with a systematic detector error (one offset per view and joint)."""
    detector_bias_rate: float = 0.0
    """Share of the captures with a viewpoint-dependent detector bias (joint groups shifted together per view, confidence kept)."""

    def __post_init__(self):
        for name in ("calibration_rate", "bias_rate", "detector_bias_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected a value in [0, 1], got {getattr(self, name)}")
        for name in ("scenes", "frames", "steps", "batch", "hidden", "layers", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected > 0, got {self.lr}")



@dataclass(frozen=True)
class VolumetricTrainConfig:
    """Settings of ``mocap train volumetric`` (the defaults made the shipped weights)."""

    seed: int = 0
    """Seed of the scenes, the initial weights and the batches."""
    scenes: int = 24
    """Synthetic captures to train on (two performers, three in every other one; outlier rates up to 0.25)."""
    frames: int = 40
    """Frames per capture."""
    stride: int = 2
    """Every stride-th frame of a capture gives its joints as training samples."""
    steps: int = 600
    """Optimiser steps."""
    batch: int = 128
    """Points (joints of person-frames, one fine cube each) per step."""
    lr: float = 3e-3
    """Adam learning rate (cosine decay to 0)."""
    width: int = 8
    """Channels of the 3D network's first level (the second has twice as many)."""
    threads: int = 1
    """torch threads (the same count gives the same weights)."""
    calibration_rate: float = 0.0
    """Share of the captures whose detector confidences are re-calibrated at random (saturated, constant, gamma, ...)."""
    bias_rate: float = 0.0
    """Share of the captures with a systematic detector error (one offset per view and joint)."""
    detector_bias_rate: float = 0.0
    """Share of the captures with a viewpoint-dependent detector bias (joint groups shifted together per view, confidence kept)."""

    def __post_init__(self):
        for name in ("calibration_rate", "bias_rate", "detector_bias_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected a value in [0, 1], got {getattr(self, name)}")
        for name in ("scenes", "frames", "stride", "steps", "batch", "width", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if self.width % 4:
            raise ValueError(f"width: expected a multiple of 4 (group normalisation), got {self.width}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected > 0, got {self.lr}")
