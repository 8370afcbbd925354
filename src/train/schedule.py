"""The learning-rate schedule: linear warmup to lr_init, then cosine or exponential decay to
lr_final (or constant), over the run's optimizer steps."""

from __future__ import annotations

import math

from .config import TrainConfig


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The learning rate of optimizer step `step` (0-based)."""
    if step < cfg.warmup_steps:
        return cfg.lr_init * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr_init
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.total_steps - 1 - cfg.warmup_steps))
    if cfg.lr_schedule == "exp":
        return cfg.lr_init * (cfg.lr_final / cfg.lr_init) ** progress
    return cfg.lr_final + 0.5 * (cfg.lr_init - cfg.lr_final) * (1 + math.cos(math.pi * progress))
