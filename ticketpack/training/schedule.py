"""Learning-rate schedules (constant, step, cosine, each with an optional linear warm-up) and where a run sits in
one: learning-rate rewinding (Renda, Frankle & Carbin 2020) replays a schedule from step k."""

from __future__ import annotations

import math

from ticketpack.training.config import TrainConfig


def lr_factor(cfg: TrainConfig, step: int, total: int) -> float:
    """The factor on ``cfg.lr`` at ``step`` (0-based) of a ``total``-step schedule."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    after = step - cfg.warmup_steps
    span = max(total - cfg.warmup_steps, 1)
    if cfg.schedule == "step":
        every = cfg.step_every or max(span // 3, 1)
        return cfg.gamma ** (after // every)
    return 0.5 * (1.0 + math.cos(math.pi * min(after, span) / span))  # cosine


def set_lr(opt, lr: float) -> None:
    """Set the learning rate of a torch optimizer, or of ticketpack's optimizer with row-sparse tables."""
    groups = getattr(opt, "param_groups", None)
    if groups is not None:
        for g in groups:
            g["lr"] = lr
        return
    opt.lr = lr
    if opt.row_adam is not None:
        opt.row_adam.lr = lr
    if opt.dense is not None:
        set_lr(opt.dense, lr)
