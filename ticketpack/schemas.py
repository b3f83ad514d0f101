"""JSON Schemas of every file ticketpack writes and of every command's ``--config`` file, generated from their
pydantic models into ``schemas/``.

``python -m ticketpack.schemas`` rewrites them; a test fails when a model and its committed schema drift.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

# schema file stem → "module:Model" of the pydantic model that file holds (imported lazily).
FILE_MODELS: dict[str, str] = {
    "demo-config": "ticketpack.demo:DemoConfig",
    "demo-summary": "ticketpack.demo:DemoSummary",
    "ticket-manifest": "ticketpack.search.manifest:TicketManifest",
    "search-config": "ticketpack.search.config:SearchConfig",
    "model-card": "ticketpack.runtime.card:ModelCard",
    "export-config": "ticketpack.export.exporter:ExportConfig",
    "export-result": "ticketpack.export.exporter:ExportResult",
    "transfer-config": "ticketpack.transfer.config:TransferConfig",
    "transfer-plan": "ticketpack.transfer.records:TransferPlan",
    "transfer-job-result": "ticketpack.transfer.records:JobResult",
    "transfer-report": "ticketpack.transfer.records:TransferReport",
    "evaluate-config": "ticketpack.evaluate.config:EvaluateConfig",
    "evaluation-report": "ticketpack.evaluate.report:EvaluationReport",
    "predict-config": "ticketpack.evaluate.config:PredictConfig",
    "validate-config": "ticketpack.runtime.config:ValidateConfig",
    "validation-report": "ticketpack.runtime.validate:ValidationReport",
    "serve-config": "ticketpack.serve.config:ServeConfig",
}


def model_for(stem: str):
    module, name = FILE_MODELS[stem].split(":")
    return getattr(importlib.import_module(module), name)


def schema_text(stem: str) -> str:
    return json.dumps(model_for(stem).model_json_schema(), indent=2, sort_keys=True) + "\n"


def write_all(directory: Path) -> list[Path]:
    from ticketpack.core.fileio import atomic_write_text

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for stem in FILE_MODELS:
        path = directory / f"{stem}.schema.json"
        atomic_write_text(path, schema_text(stem))
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "schemas"
    for p in write_all(target):
        print(p)
