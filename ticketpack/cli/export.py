"""`ticketpack export`: parse flags → ticketpack.export.exporter.export_model → summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ticketpack.cli.common import (
    AllowChangedModelOpt,
    JsonOpt,
    ThreadsOpt,
    err,
    out,
    pct,
    print_json,
)


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def export_cmd(
    source: Annotated[Path, typer.Argument(help="A ticket directory (ticketpack search) or a transfer run (ticketpack transfer).")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write.")],
    level: Annotated[Optional[str], typer.Option(help="Round number or weights-remaining percentage (10%); default: the sparsest level within --max-accuracy-drop of dense.")] = None,
    init: Annotated[Optional[str], typer.Option(help="Transfer runs: initialization strategy of the job to export.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", min=0, help="Transfer runs: seed index of the job to export.")] = None,
    format: Annotated[str, typer.Option("--format", help="dense, compact (dead units/rows removed) or sparse (compact + bit-mask storage).")] = "compact",
    quantize: Annotated[str, typer.Option(help="none or int8 (ONNX Runtime dynamic quantization).")] = "none",
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
    max_accuracy_drop: Annotated[float, typer.Option(help="Accuracy points below dense allowed when choosing the level.")] = 1.0,
    atol: Annotated[float, typer.Option(help="Largest accepted |ONNX Runtime - PyTorch| logit difference.")] = 1e-4,
    threads: ThreadsOpt = None,
    force: Annotated[bool, typer.Option(help="Replace --out if it already exists.")] = False,
    allow_changed_model: AllowChangedModelOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Export a ticket or a transferred model to one ONNX file with an embedded model card, checked before writing."""
    from ticketpack.errors import TicketpackError
    from ticketpack.export.exporter import export_model
    from ticketpack.fileio import check_writable_file
    from ticketpack.transfer.config import level_error

    if level is not None and (why := level_error(level)):
        raise TicketpackError(f"--level: {why}")
    check_writable_file(out_path, "--out", force=force)

    with err.status("exporting", spinner="dots") as status:
        result = export_model(
            source, out_path, level=level, init=init, seed=seed, format=format, quantize=quantize, opset=opset,
            max_accuracy_drop=max_accuracy_drop, atol=atol, threads=threads,
            on_stage=lambda s: status.update(s), allow_changed_model=allow_changed_model,
        )
    if json_out:
        print_json(result)
        return
    card = result.card
    err.print(f"level: {result.level_reason}")
    table = Table(title=f"{result.path} ({card.model.name}, {card.export.format}"
                        f"{', int8' if card.export.quantize == 'int8' else ''})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("file size", f"{_size(result.file_bytes)} = {result.size_ratio:.3f} × the unpruned dense export ({_size(result.dense_bytes)})")
    table.add_row("weights remaining", f"{pct(card.sparsity.weights_remaining)} as exported ({pct(result.weights_remaining)} in the mask); "
                  f"MACs of nonzero weights: {pct(result.mac_fraction)} of dense")
    if card.export.compacted:
        table.add_row("compacted", ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in card.export.compacted.items()))
    m, p = card.metrics, card.parity
    table.add_row("test accuracy", f"{m.test_accuracy:.4f} ONNX, {m.reference_test_accuracy:.4f} PyTorch"
                  + (f", dense {m.dense_test_accuracy:.4f}" if m.dense_test_accuracy is not None else "")
                  + f" ({m.evaluated_on}, {m.test_examples} examples)")
    table.add_row("parity", f"max |ORT - PyTorch| {p.max_abs_diff:.2e}, argmax agreement {p.argmax_agreement:.1%}"
                  + (f" (float graph {p.float_max_abs_diff:.2e}, atol {p.atol:g})" if p.float_max_abs_diff is not None else f" (atol {p.atol:g})"))
    table.add_row("checks", "onnx.checker full check, ONNX Runtime load, parity: passed")
    table.add_row("weights digest", card.weights_digest)
    out.print(table)
