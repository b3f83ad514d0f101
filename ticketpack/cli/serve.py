"""`ticketpack serve`: flags and --config → ServeConfig → ticketpack.serve.app.serve (needs the `serve` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from ticketpack.cli.common import VerboseOpt, err, out, pct
from ticketpack.cli.flags import ConfigFlags, Flag

if TYPE_CHECKING:
    from ticketpack.serve.config import ServeConfig


def _sources(specs: list[str]) -> list[dict]:
    from ticketpack.serve.config import ModelSource

    return [ModelSource.parse(s).model_dump(mode="json") for s in specs]


FLAGS = ConfigFlags(
    "ticketpack.serve.config:ServeConfig",
    Flag("models", "models", list[str], parse=_sources, metavar="[NAME=]MODEL.onnx...", argument=True),
    Flag("--host", "host"),
    Flag("--port", "port", int),
    Flag("--workers", "workers", int),
    Flag("--max-batch", "max_batch", int),
    Flag("--max-text-chars", "max_text_chars", int),
    Flag("--threads", "threads", int),
    Flag("--provider", "provider"),
    Flag("--shutdown-timeout", "shutdown_timeout_s", float),
    Flag("--access-log/--no-access-log", "access_log", bool),
    Flag("--verify", "verify", Path, metavar="PUBLIC_KEY.pem"),
)


@FLAGS.command
def serve_cmd(cfg: ServeConfig, verbose: VerboseOpt = False) -> None:
    """Serve exported models over HTTP: /v1/models, /v1/models/NAME/predict, /healthz, /readyz, /metrics, and the
    Open Inference Protocol (KServe v2): /v2/health/ready, /v2/models/NAME, /v2/models/NAME/infer."""
    from ticketpack.cli.progress import status_printer
    from ticketpack.serve.config import require_serve_extra

    require_serve_extra()
    if cfg.verify is not None:  # the sign extra and the key, before anything loads
        from ticketpack.runtime.signing import verifier

        verifier(cfg.verify)
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

    serve(config=cfg, on_ready=on_ready, on_event=status_printer(err, verbose))
