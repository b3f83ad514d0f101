"""The main job on the embedded default: search → transfer → export → evaluate, on digits, in a few minutes.

    from ticketpack.demo import DemoConfig, run_demo
    summary = run_demo(DemoConfig(), "ticketpack-demo")

1. **search** a ticket for lenet-300-100 on ``digits/clean`` (IMP, 20% per round, rewinding to θ0);
2. **transfer** it to a shifted domain (``rot30`` by default) under ticket, random-reinit, finetune, random-mask
   and dense, over two seeds, in parallel jobs;
3. **export** the transferred ``ticket`` at the sparsest level within one point of dense (compact and sparse
   formats), and the dense job as the reference (dense format);
4. **evaluate** each export against the dense export on ONNX Runtime, side by side in one process.

Every stage writes into ``out`` and is skipped when its output already exists, so a rerun resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ticketpack.core.errors import FieldError
from ticketpack.core.events import OnEvent, resolve_on_event, status
from ticketpack.core.fileio import write_model

DEMO_INITS = ["ticket", "random-reinit", "finetune", "random-mask", "dense"]


class DemoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str = Field("rot30", description="Shifted digits domain the ticket is transferred to.")
    rounds: int = Field(10, ge=1, le=30, description="Pruning rounds at 20% (10 rounds: about 10% of weights remain).")
    granularity: Literal["weight", "neuron"] = Field(
        "neuron", description="neuron: prune whole units, which export compacts into smaller, faster layers."
    )
    seeds: int = Field(2, ge=1, le=10, description="Transfer seeds per level and strategy.")
    levels: list[str] = Field(default_factory=lambda: ["50%", "20%", "10%"], description="Transfer levels.")
    jobs: int = Field(2, ge=1, description="Parallel transfer jobs.")
    threads: int = Field(1, ge=1, description="ONNX Runtime threads for the latency comparison.")
    seed: int = Field(0, ge=0, description="Seed of the whole pipeline.")


class DemoRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: str
    path: str
    weights_remaining: float
    accuracy: float = Field(description="Test accuracy on the target domain, on ONNX Runtime.")
    accuracy_delta_pts: float = Field(description="Accuracy minus the dense export's, in points.")
    file_bytes: int
    size_ratio: float = Field(description="This file's bytes / the dense export's.")
    latency_ratio: dict[int, float] = Field(description="p50 latency / the dense export's, per batch size.")


class DemoSummary(BaseModel):
    """`summary.json` of a demo run: the exported variants against the dense export."""

    model_config = ConfigDict(extra="forbid")

    config: DemoConfig
    ticket_dir: str
    transfer_dir: str
    level: int
    level_reason: str
    threads: int
    rows: list[DemoRow]


def run_demo(config: DemoConfig, out: Path | str, on_event: OnEvent | None = None, *,
             on_stage: Callable[[str], None] | None = None) -> DemoSummary:
    """Search, transfer, export and evaluate on digits into ``out``. ``on_event`` is called with
    ``Event("status", stage="demo", message="1/4 search: ...")`` as each stage starts; ``on_stage``, its deprecated
    name, with the message alone."""
    from ticketpack.evaluate import evaluate_model
    from ticketpack.export.exporter import export_model
    from ticketpack.pruning.granularity import get_granularity
    from ticketpack.search import SearchConfig, search
    from ticketpack.transfer import TransferConfig, run_transfer

    say = status(resolve_on_event(on_event, "demo", on_stage=on_stage), "demo")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FieldError(f"`out` {out} exists and is not a directory", fields=["out"])
    ticket_dir, run_dir = out / "ticket", out / "transfer"
    from ticketpack.data.digits import apply_shift

    apply_shift(np.zeros((1, 8, 8), dtype=np.float32), config.target)  # an unknown target fails before the search

    say(f"1/4 search: lenet-300-100 on digits/clean, {config.rounds} rounds at 20% ({config.granularity} granularity)")
    prune = {"rounds": config.rounds, "rate": 0.2, "granularity": config.granularity}
    search(SearchConfig(seed=config.seed, threads=1, prune=prune), ticket_dir, resume=True)

    say(f"2/4 transfer to digits/{config.target}: {', '.join(DEMO_INITS)} × levels {', '.join(config.levels)} × {config.seeds} seeds")
    transfer_cfg = TransferConfig(ticket=str(ticket_dir), target=config.target, inits=DEMO_INITS, levels=config.levels,
                                  seeds=config.seeds, seed=config.seed)
    run_transfer(transfer_cfg, run_dir, resume=True, jobs=config.jobs)

    # a neuron ticket's kept units are dense: compact removes the rest, and --format sparse would store the same graph
    sparse_too = not get_granularity(config.granularity).needs_structure
    say("3/4 export: dense reference, ticket compact" + (" and sparse" if sparse_too else
        " (a neuron ticket keeps whole units: --format sparse would store the same graph)"))
    dense = export_model(run_dir, out / "dense.onnx", init="dense", format="dense")
    variants = [("ticket compact", export_model(run_dir, out / "ticket-compact.onnx", init="ticket", format="compact"))]
    compact = variants[0][1]
    if sparse_too:
        variants.append(("ticket sparse", export_model(run_dir, out / "ticket-sparse.onnx", init="ticket",
                                                       level=compact.level, format="sparse")))

    say(f"4/4 evaluate on ONNX Runtime ({config.threads} thread(s)), side by side with the dense export")
    rows = []
    for variant, exp in variants:
        ev = evaluate_model(exp.path, dataset="digits", domain=config.target, baseline=dense.path,
                            threads=config.threads, batch_sizes=(1, 256), latency_budget_s=1.5)
        if not rows:
            rows.append(_row("dense", dense, ev.baseline, ev.baseline))
        rows.append(_row(variant, exp, ev.model, ev.baseline))
    summary = DemoSummary(config=config, ticket_dir=str(ticket_dir), transfer_dir=str(run_dir), level=compact.level,
                          level_reason=compact.level_reason, threads=config.threads, rows=rows)
    write_model(out / "summary.json", summary)
    return summary


def _row(variant: str, exported, measured, dense) -> DemoRow:
    return DemoRow(
        variant=variant, path=exported.path, weights_remaining=exported.weights_remaining,
        accuracy=measured.accuracy, accuracy_delta_pts=100 * (measured.accuracy - dense.accuracy),
        file_bytes=measured.file_bytes, size_ratio=measured.file_bytes / dense.file_bytes,
        latency_ratio={m.batch_size: m.p50_ms / d.p50_ms for m, d in zip(measured.latency, dense.latency)},
    )
