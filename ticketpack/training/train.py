"""One training run of a (possibly masked) model, selected by validation accuracy.

Pruned weights stay exactly zero whatever the optimizer: the mask is re-applied right after every optimizer
step, so neither momentum, Adam moments nor weight decay can revive them, and every forward pass sees zeros.
(Masking gradients too would change nothing that the model computes, and costs a second pass per step.)
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ticketpack.data.base import DomainData, Split
from ticketpack.pruning.mask import Mask
from ticketpack.training.config import TrainConfig

EpochCallback = Callable[[int, int, float], None]  # (step done, total steps, val accuracy)


@dataclass
class TrainResult:
    state: dict[str, torch.Tensor]  # weights at the best validation accuracy
    val_accuracy: float
    test_accuracy: float
    best_iteration: int
    iterations: int
    seconds: float
    captured: dict[str, torch.Tensor] | None = None  # weights after `capture_at` steps (late rewinding)


def _dense_optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class _WithSparse:
    """The configured optimizer for dense parameters, and a lazy one for the tables of ``nn.Embedding(sparse=True)``
    (a large hashed n-gram embedding): a step then costs the rows a batch touches, not the whole table.

    Sparse tables get SparseAdam (plain SGD when the optimizer is ``sgd``), with weight decay applied decoupled
    (AdamW-style) to the touched rows only."""

    def __init__(self, dense: list[nn.Parameter], sparse: list[nn.Parameter], cfg: TrainConfig) -> None:
        self.sparse, self.lr, self.decay = sparse, cfg.lr, cfg.weight_decay
        self.optimizers = [torch.optim.SGD(sparse, lr=cfg.lr) if cfg.optimizer == "sgd"
                           else torch.optim.SparseAdam(sparse, lr=cfg.lr)]
        if dense:
            self.optimizers.append(_dense_optimizer(dense, cfg))

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        if self.decay:
            for p in self.sparse:
                if p.grad is not None:
                    rows = p.grad.coalesce().indices()[0]
                    p[rows] *= 1.0 - self.lr * self.decay
        for opt in self.optimizers:
            opt.step()


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer | _WithSparse:
    sparse_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse}
    params = list(model.parameters())
    if not sparse_ids:
        return _dense_optimizer(params, cfg)
    return _WithSparse([p for p in params if id(p) not in sparse_ids], [p for p in params if id(p) in sparse_ids], cfg)


def total_steps(cfg: TrainConfig, n_train: int) -> int:
    return cfg.iterations or cfg.epochs * math.ceil(n_train / cfg.batch_size)


def _tensors(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(split.x)), torch.from_numpy(split.y)


@torch.no_grad()
def accuracy(model: nn.Module, split: Split, batch_size: int = 512) -> float:
    x, y = _tensors(split)
    was_training = model.training
    model.eval()
    correct = sum(
        int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum()) for i in range(0, len(y), batch_size)
    )
    model.train(was_training)
    return correct / max(len(y), 1)


class _Masker:
    """Re-applies a mask to the weights with precomputed float masks, in one fused call per step."""

    def __init__(self, model: nn.Module, mask: Mask) -> None:
        named = dict(model.named_parameters())
        self.params = [named[name] for name in mask]
        self.masks = [m.to(named[name].dtype) for name, m in mask.items()]

    @torch.no_grad()
    def weights(self) -> None:
        torch._foreach_mul_(self.params, self.masks)


def train(
    model: nn.Module,
    data: DomainData,
    cfg: TrainConfig,
    seed: int,
    mask: Mask | None = None,
    capture_at: int | None = None,
    on_progress: EpochCallback | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data.train``; return the best-validation weights and their metrics."""
    start = time.perf_counter()
    torch.manual_seed(seed)  # dropout
    gen = torch.Generator().manual_seed(seed)
    x, y = _tensors(data.train)
    n = len(y)
    steps = total_steps(cfg, n)
    per_epoch = math.ceil(n / cfg.batch_size)
    eval_every = min(per_epoch, steps)
    masker = _Masker(model, mask) if mask is not None else None
    if masker:
        masker.weights()
    opt = make_optimizer(model, cfg)
    loss_fn = nn.CrossEntropyLoss()
    captured = {k: v.detach().clone() for k, v in model.state_dict().items()} if capture_at == 0 else None
    best = (-1.0, 0, copy.deepcopy(model.state_dict()))
    step = 0
    stale = 0  # evaluations since the best validation accuracy
    model.train()
    while step < steps:
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
            if masker:
                masker.weights()
            step += 1
            if capture_at is not None and step == capture_at:
                captured = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if step % eval_every == 0 or step == steps:
                val = accuracy(model, data.val)
                if val > best[0]:
                    best = (val, step, copy.deepcopy(model.state_dict()))
                    stale = 0
                else:
                    stale += 1
                if on_progress:
                    on_progress(step, steps, val)
                if cfg.patience is not None and stale >= cfg.patience and step > (capture_at or 0):
                    steps = step  # early stop: nothing better for `patience` evaluations
            if step >= steps:
                break
    model.load_state_dict(best[2])
    test = accuracy(model, data.test)
    return TrainResult(
        state=best[2],
        val_accuracy=best[0],
        test_accuracy=test,
        best_iteration=best[1],
        iterations=steps,
        seconds=time.perf_counter() - start,
        captured=captured,
    )
