"""`ticketpack list models|datasets|strategies|inits|kinds [PATTERN]`: what each registry holds, with its documentation."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rich import box
from rich.markup import escape
from rich.table import Table

from ticketpack.cli.common import JsonOpt, out
from ticketpack.cli.flags import ConfigFlags, Flag


class ListConfig(BaseModel):
    """What `ticketpack list` shows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(description="What to list: models, datasets, strategies, inits or kinds (of input).")
    pattern: str = Field("*", description="Shell-style pattern over the names, e.g. 'random*'.")


FLAGS = ConfigFlags("ticketpack.cli.listing:ListConfig", Flag("kind", "kind", argument=True),
                    Flag("pattern", "pattern", argument=True))


def _options(entry: Any) -> dict[str, Any]:
    """A pydantic entry's options and their defaults (strategies and inits); other entries have none to show.
    Fields that only state something (``readOnly``, such as the text featurization's recipe) are no options."""
    fields = getattr(entry, "model_fields", None)
    if not isinstance(fields, dict):
        return {}
    return {name: None if f.is_required() else f.get_default(call_default_factory=True) for name, f in fields.items()
            if not (isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("readOnly"))}


@FLAGS.command
def list_cmd(cfg: ListConfig, json_out: JsonOpt = False) -> None:
    """List the registered models, datasets, pruning strategies, transfer inits or input kinds, with what each one is."""
    from ticketpack import get_registry

    kind, pattern = cfg.kind, cfg.pattern
    registry = get_registry(kind)
    rows = [{"name": n, "doc": registry.doc(n), "options": _options(registry.get(n))} for n in registry.list(pattern)]
    if json_out:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    table = Table(box=box.SIMPLE_HEAD, title=f"{registry.kind}s matching {pattern!r}" if pattern != "*" else None)
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("what it is")
    with_options = any(r["options"] for r in rows)
    if with_options:
        table.add_column("options")
    for r in rows:
        opts = ", ".join(f"{k}={v!r}" for k, v in r["options"].items() if k != "kind")
        table.add_row(escape(r["name"]), escape(r["doc"]), *([escape(opts)] if with_options else []))
    out.print(table)
