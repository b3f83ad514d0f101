"""`ticketpack predict`: texts or an input file → ticketpack.load(model).predict_proba → label and probabilities per row."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ticketpack.cli.common import JsonOpt, out, print_json
from ticketpack.cli.flags import ConfigFlags, Flag

if TYPE_CHECKING:
    from ticketpack.evaluate.config import PredictConfig

_MAX_PROB_COLUMNS = 10


FLAGS = ConfigFlags(
    "ticketpack.evaluate.config:PredictConfig",
    Flag("--provider", "provider"),
    Flag("--threads", "threads", int),
)


@FLAGS.command
def predict_cmd(
    cfg: PredictConfig,
    model: Annotated[Path, typer.Argument(help="Exported ticketpack ONNX model.")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts to classify (text models).")] = None,
    input_file: Annotated[Optional[Path], typer.Option("--input", "-i", help="Inputs: .jsonl/.csv/.txt for text models; .npy/.npz/.jsonl/.csv, an image file or a folder of images for image models; .csv/.parquet/.jsonl for table models.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Classify raw inputs with an exported model (ONNX Runtime only): a label and class probabilities per row."""
    from ticketpack.evaluate.predict import predict_rows

    result = predict_rows(model, texts=texts or None, input_file=input_file, config=cfg)
    if json_out:
        print_json(result)
        return
    labels = result.labels
    shown = labels if len(labels) <= _MAX_PROB_COLUMNS else None
    table = Table(title=f"{escape(str(model))} ({result.provider})")
    table.add_column("#", justify="right")
    shows = any(row.text is not None for row in result.rows)
    if shows:
        table.add_column("input", overflow="ellipsis", max_width=48)
    table.add_column("label")
    table.add_column("p(label)", justify="right")
    for name in shown or ["top 3"]:
        table.add_column(f"p({escape(name)})" if shown else name, justify="right")
    for i, row in enumerate(result.rows):
        cells = [str(i)] + ([escape(row.text or "")] if shows else [])
        cells += [escape(row.label), f"{row.probability:.3f}"]
        if shown:
            cells += [f"{p:.3f}" for p in row.probabilities]
        else:
            top = sorted(zip(labels, row.probabilities), key=lambda t: -t[1])[:3]
            cells.append(", ".join(f"{escape(n)} {p:.2f}" for n, p in top))
        table.add_row(*cells)
    out.print(table)
