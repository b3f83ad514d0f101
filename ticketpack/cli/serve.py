"""`ticketpack serve`: parse flags → ServeConfig → ticketpack.serve.app.serve (needs the `serve` extra)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from ticketpack.cli.common import ConfigOpt, err, out, pct
from ticketpack.config_files import build_config
from ticketpack.errors import TicketpackError


def serve_cmd(
    models: Annotated[
        Optional[list[str]],
        typer.Argument(help="Exported ONNX files to serve; NAME=PATH sets the URL name (default: the file stem).", show_default=False),
    ] = None,
    host: Annotated[Optional[str], typer.Option(help="Interface to listen on (default 127.0.0.1; 0.0.0.0 for all).")] = None,
    port: Annotated[Optional[int], typer.Option(help="TCP port (default 8000; 0 picks a free one).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Server processes, each with its own ONNX Runtime sessions (default 1).")] = None,
    max_batch: Annotated[Optional[int], typer.Option(help="Most inputs per request; more is answered 413 (default 256).")] = None,
    max_text_chars: Annotated[Optional[int], typer.Option(help="Longest text in characters; longer is answered 413 (default 20000).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="ONNX Runtime threads per inference run (default 1).")] = None,
    provider: Annotated[Optional[str], typer.Option(help="ONNX Runtime provider: auto, cpu or cuda (default auto).")] = None,
    shutdown_timeout: Annotated[
        Optional[float], typer.Option(help="Seconds in-flight requests may take to finish after SIGTERM (default 30).")
    ] = None,
    access_log: Annotated[Optional[bool], typer.Option("--access-log/--no-access-log", help="Log each request on stderr (default on).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve exported models over HTTP: /v1/models, /v1/models/NAME/predict, /healthz, /readyz, /metrics."""
    from ticketpack.serve.config import ModelSource, ServeConfig, require_serve_extra

    require_serve_extra()
    if not models and config is None:
        raise TicketpackError("give at least one exported model: ticketpack serve model.onnx [name=other.onnx ...]")
    cfg = build_config(
        ServeConfig,
        config,
        {
            "models": [ModelSource.parse(s).model_dump(mode="json") for s in models] if models else None,
            "host": host, "port": port, "workers": workers, "max_batch": max_batch, "max_text_chars": max_text_chars,
            "threads": threads, "provider": provider,
            "shutdown_timeout_s": shutdown_timeout, "access_log": access_log,
        },
    )
    from ticketpack.serve.app import serve

    def on_ready(url: str, served: dict) -> None:
        table = Table(title=f"serving {len(served)} model{'s' * (len(served) != 1)} on {url}")
        for col in ("name", "kind", "labels", "weights remaining", "provider", "file"):
            table.add_column(col)
        for m in served.values():
            i = m.info
            labels = ", ".join(i.labels[:6]) + (f" (+{len(i.labels) - 6})" if len(i.labels) > 6 else "")
            table.add_row(i.name, i.kind, labels, pct(i.weights_remaining), i.provider, str(m.predictor.path))
        out.print(table)
        err.print(f"POST {url}/v1/models/{next(iter(served))}/predict · docs {url}/docs · SIGTERM or Ctrl-C stops")

    err.print(f"validating {len(cfg.models)} model{'s' * (len(cfg.models) != 1)}…")
    serve(cfg, on_ready=on_ready)
