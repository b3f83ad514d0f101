"""One training run of a (possibly masked) model, selected by validation accuracy.

Pruned weights stay exactly zero whatever the optimizer: the mask is re-applied right after every optimizer
step, so neither momentum, Adam moments nor weight decay can revive them, and every forward pass sees zeros.
(Masking gradients too would change nothing that the model computes, and costs a second pass per step.) The
row-sparse tables of a lazy optimizer are the exception in how, not in what: their step multiplies its update of
the touched rows by the mask before adding it, so a pruned weight gets a zero added and no pass over the rows
follows.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ticketpack.data.base import DomainData, Split
from ticketpack.pruning.mask import Mask, bind_layers
from ticketpack.training.batches import batches, in_order, shuffled
from ticketpack.training.config import TrainConfig
from ticketpack.training.device import deterministic_scope
from ticketpack.training.schedule import lr_factor, set_lr


@dataclass(frozen=True)
class TrainProgress:
    """Where a training run is, after each optimizer step: ``step`` of ``steps`` (fewer once early stopping ends
    the run), in epoch ``epoch`` of ``epochs`` (1-based); ``val_accuracy`` on the steps that evaluated, else None."""

    step: int
    steps: int
    epoch: int
    epochs: int
    val_accuracy: float | None = None


ProgressCallback = Callable[[TrainProgress], None]


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


class _RowAdam:
    """Adam for row-sparse gradients (``nn.Embedding(sparse=True)``), with SparseAdam's lazy semantics: the moments
    and weights of a row change only on the steps whose batch touches it, with bias correction by the global step.

    The update is torch's ``SparseAdam`` arithmetic, written with index ops on the touched rows: SparseAdam's
    sparse-tensor path runs ``sparse_mask`` over the whole table every step, this touches only the batch's rows."""

    def __init__(self, params: list[nn.Parameter], lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
        self.steps = 0

    @torch.no_grad()
    def step(self, rows: list[torch.Tensor | None], grads: list[torch.Tensor | None],
             keep: list[torch.Tensor | None]) -> None:
        """One step on the touched ``rows`` of each table; ``keep``: each table's mask, if any (its update of a
        pruned weight is multiplied by 0)."""
        self.steps += 1
        b1, b2 = self.betas
        step_size = self.lr * math.sqrt(1 - b2**self.steps) / (1 - b1**self.steps)
        for p, (m, v), idx, g, mask in zip(self.params, self.moments, rows, grads, keep):
            if idx is None:
                continue
            m_rows = m.index_select(0, idx).mul_(b1).add_(g, alpha=1 - b1)
            v_rows = v.index_select(0, idx).mul_(b2).addcmul_(g, g, value=1 - b2)
            m.index_copy_(0, idx, m_rows)
            v.index_copy_(0, idx, v_rows)
            update = m_rows.div_(v_rows.sqrt_().add_(self.eps)).mul_(-step_size)
            p.index_add_(0, idx, update if mask is None else update.mul_(mask.index_select(0, idx)))


class _WithSparse:
    """The configured optimizer for dense parameters, and a lazy one for the tables of ``nn.Embedding(sparse=True)``
    (a large hashed n-gram embedding): a step then costs the rows a batch touches, not the whole table.

    Sparse tables get lazy Adam (:class:`_RowAdam`; plain SGD on the touched rows when the optimizer is ``sgd``),
    with weight decay applied decoupled (AdamW-style) to the touched rows only. A table given a mask
    (:meth:`keep_masked`) gets its update multiplied by it, so its pruned weights stay zero with no pass after the
    step (decay only scales a zero)."""

    def __init__(self, dense: list[nn.Parameter], sparse: list[nn.Parameter], cfg: TrainConfig) -> None:
        self.sparse, self.lr, self.decay, self.sgd = sparse, cfg.lr, cfg.weight_decay, cfg.optimizer == "sgd"
        self.row_adam = None if self.sgd else _RowAdam(sparse, cfg.lr)
        self.dense = _dense_optimizer(dense, cfg) if dense else None
        self.masks: list[torch.Tensor | None] = [None] * len(sparse)

    def keep_masked(self, param: nn.Parameter, mask: torch.Tensor) -> bool:
        """Keep ``param``'s pruned weights at zero from now on (its update is multiplied by ``mask``); False when
        ``param`` is not one of the row-sparse tables."""
        for i, p in enumerate(self.sparse):
            if p is param:
                self.masks[i] = mask.bool()  # a quarter of a float copy: less memory traffic per row gathered
                return True
        return False

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.sparse:
            p.grad = None
        if self.dense is not None:
            self.dense.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        rows, values = [], []
        for p in self.sparse:
            g = p.grad.coalesce() if p.grad is not None else None
            rows.append(g.indices()[0] if g is not None else None)
            values.append(g.values() if g is not None else None)
        for p, idx in zip(self.sparse, rows):
            if idx is not None and self.decay:
                p.index_copy_(0, idx, p.index_select(0, idx).mul_(1.0 - self.lr * self.decay))
        if self.sgd:
            for p, idx, g, mask in zip(self.sparse, rows, values, self.masks):
                if idx is not None:
                    p.index_add_(0, idx, g if mask is None else g * mask.index_select(0, idx), alpha=-self.lr)
        else:
            self.row_adam.step(rows, values, self.masks)
        if self.dense is not None:
            self.dense.step()


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer | _WithSparse:
    sparse_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse}
    params = list(model.parameters())
    if not sparse_ids:
        return _dense_optimizer(params, cfg)
    return _WithSparse([p for p in params if id(p) not in sparse_ids], [p for p in params if id(p) in sparse_ids], cfg)


def total_steps(cfg: TrainConfig, n_train: int) -> int:
    return cfg.iterations or cfg.epochs * math.ceil(n_train / cfg.batch_size)


@torch.no_grad()
def accuracy(model: nn.Module, split: Split, batch_size: int = 512, workers: int = 0, bf16: bool = False) -> float:
    """Accuracy on ``split``; a streamed split is read in batches of 256, one ahead per worker (evaluation runs
    while the training loader's workers wait, so it keeps its own memory small)."""
    was_training = model.training
    model.eval()
    device = _device_of(model)
    correct = 0
    if split.streamed:
        batch_size = min(batch_size, 256)
    for x, y in batches(split, in_order(len(split), batch_size), workers, prefetch=1):
        with _autocast(device, bf16):
            correct += int((model(x.to(device, non_blocking=True)).argmax(1).cpu() == y).sum())
    model.train(was_training)
    return correct / max(len(split), 1)


def _device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)


class _Masker:
    """Re-applies a mask to the weights after every step, in one fused call; the row-sparse tables of a lazy
    optimizer are masked once here and then kept at zero by the optimizer itself (:meth:`_WithSparse.keep_masked`)."""

    def __init__(self, model: nn.Module, mask: Mask, opt: torch.optim.Optimizer | _WithSparse) -> None:
        named = dict(model.named_parameters())
        self.params, self.masks, self.rowwise = [], [], []
        for name, m in mask.items():
            p = named[name]
            m = m.to(p.device)  # masks live where the weights do: no copy to the host per step
            if isinstance(opt, _WithSparse) and opt.keep_masked(p, m):
                self.rowwise.append((p, m))
            else:
                self.params.append(p)
                self.masks.append(m.to(p.dtype))

    @torch.no_grad()
    def weights(self, everything: bool = False) -> None:
        if self.params:
            torch._foreach_mul_(self.params, self.masks)
        if everything:
            for p, m in self.rowwise:
                p.mul_(m)


@torch.no_grad()
def _copy_into(kept: dict[str, torch.Tensor] | None, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of ``state``, written into ``kept`` (an earlier copy of the same model) when there is one: a new
    best-validation state costs a memcpy, not a fresh allocation of the whole model."""
    if kept is None:
        return {k: v.detach().clone() for k, v in state.items()}
    torch._foreach_copy_(list(kept.values()), [v.detach() for v in state.values()])
    return kept


def _deterministic_if_asked(fn: Callable[..., TrainResult]) -> Callable[..., TrainResult]:
    """Run ``fn(model, data, cfg, ...)`` on deterministic kernels when ``cfg.deterministic`` asks for them."""

    @functools.wraps(fn)
    def run(model: nn.Module, data: DomainData, cfg: TrainConfig, *args, **kwargs) -> TrainResult:
        with deterministic_scope(cfg.deterministic):
            return fn(model, data, cfg, *args, **kwargs)

    return run


@_deterministic_if_asked
def train(
    model: nn.Module,
    data: DomainData,
    cfg: TrainConfig,
    seed: int,
    mask: Mask | None = None,
    capture_at: int | None = None,
    on_progress: ProgressCallback | None = None,
    schedule_from: int = 0,
    fixed_lr: float | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data.train`` (on the device it is on); return the best-validation weights (on
    the CPU) and their metrics; with ``cfg.deterministic``, on deterministic kernels.

    ``schedule_from``: replay the learning-rate schedule from this step, for the steps left of it (learning-rate
    rewinding); ``fixed_lr``: train at this rate whatever the schedule (fine-tuning). ``on_progress`` is called after
    every step (cheap: a progress display decides how often to show it)."""
    start = time.perf_counter()
    torch.manual_seed(seed)  # dropout
    gen = torch.Generator().manual_seed(seed)
    n = len(data.train)
    full = total_steps(cfg, n)
    steps = max(full - schedule_from, 1)
    device, bf16 = _device_of(model), cfg.precision == "bf16"
    scheduled = fixed_lr is not None or cfg.schedule != "constant" or cfg.warmup_steps > 0
    per_epoch = math.ceil(n / cfg.batch_size)
    eval_every = min(per_epoch, steps)
    workers = cfg.loader_workers
    opt = make_optimizer(model, cfg)
    if fixed_lr is not None:
        set_lr(opt, fixed_lr)
    if mask is not None:
        bind_layers(model, mask)  # e.g. a LayerNorm with pruned units normalizes over its live ones
    masker = _Masker(model, mask, opt) if mask is not None else None
    if masker:
        masker.weights(everything=True)
    loss_fn = nn.CrossEntropyLoss()
    captured = {k: v.detach().clone() for k, v in model.state_dict().items()} if capture_at == 0 else None
    best: tuple[float, int, dict[str, torch.Tensor] | None] = (-1.0, 0, None)  # every run ends on an evaluation
    step = 0
    stale = 0  # evaluations since the best validation accuracy
    model.train()
    feed = batches(data.train, shuffled(n, cfg.batch_size, gen), workers)
    try:
        for xb, yb in feed:
            if scheduled and fixed_lr is None:
                set_lr(opt, cfg.lr * lr_factor(cfg, schedule_from + step, full))
            opt.zero_grad(set_to_none=True)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with _autocast(device, bf16):
                loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            if masker:
                masker.weights()
            step += 1
            if capture_at is not None and step == capture_at:
                captured = {k: v.detach().clone() for k, v in model.state_dict().items()}
            val = None
            if step % eval_every == 0 or step == steps:
                val = accuracy(model, data.val, workers=workers, bf16=bf16)
                if val > best[0]:
                    best = (val, step, _copy_into(best[2], model.state_dict()))
                    stale = 0
                else:
                    stale += 1
                if cfg.patience is not None and stale >= cfg.patience and step > (capture_at or 0):
                    steps = step  # early stop: nothing better for `patience` evaluations
            if on_progress:
                on_progress(TrainProgress(step, steps, math.ceil(step / per_epoch), math.ceil(steps / per_epoch), val))
            if step >= steps:
                break
    finally:
        feed.close()  # stops the loader's workers when training ends early
    model.load_state_dict(best[2])
    test = accuracy(model, data.test, workers=workers, bf16=bf16)
    return _result(best, test, steps, captured, device, time.perf_counter() - start)


def _result(best: tuple[float, int, dict[str, torch.Tensor]], test: float, steps: int,
            captured: dict[str, torch.Tensor] | None, device: torch.device, seconds: float) -> TrainResult:
    """The best-validation weights (and the captured θk) on the CPU, with their figures."""
    on_cpu = device.type == "cpu"
    return TrainResult(
        state=best[2] if on_cpu else {k: v.cpu() for k, v in best[2].items()},
        val_accuracy=best[0],
        test_accuracy=test,
        best_iteration=best[1],
        iterations=steps,
        seconds=seconds,
        captured=captured if on_cpu or captured is None else {k: v.cpu() for k, v in captured.items()},
    )
