"""The `ticketpack` command: a thin Typer shell over the library. Each command lives in its own module."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ticketpack.cli.common import err
from ticketpack.errors import TicketpackError
from ticketpack.version import __version__

app = typer.Typer(
    name="ticketpack",
    help="Find lottery tickets, transfer them across domains, export them to ONNX, and check and serve them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ticketpack {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """Find lottery tickets, transfer them across domains, export them to ONNX, and check and serve them."""


def _register() -> None:
    from ticketpack.cli import search

    app.command("search")(search.search_cmd)
    from ticketpack.cli import report, transfer

    app.command("transfer")(transfer.transfer_cmd)
    app.command("report")(report.report_cmd)
    from ticketpack.cli import export

    app.command("export")(export.export_cmd)
    from ticketpack.cli import evaluate, predict, validate

    app.command("evaluate")(evaluate.evaluate_cmd)
    app.command("validate")(validate.validate_cmd)
    app.command("predict")(predict.predict_cmd)
    from ticketpack.cli import serve

    app.command("serve")(serve.serve_cmd)
    from ticketpack.cli import demo

    app.command("demo")(demo.demo_cmd)


def _user_errors_exit(fn: Callable) -> Callable:
    """User mistakes become one red line and exit 2 (a failed gate: exit 1), in the app itself, so that the
    console script and in-process runners (typer.testing.CliRunner) behave the same. The exception stays
    attached to the Exit for tests. Typer/click already answer usage errors (bad flags) with exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TicketpackError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(getattr(exc, "exit_code", 2)) from exc
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]: finished rounds and jobs are saved; rerun with --resume to continue")
            raise typer.Exit(130) from None

    return wrapper


_register()
for _info in app.registered_commands:
    _info.callback = _user_errors_exit(_info.callback)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:  # outside a command (e.g. while parsing)
        sys.exit(130)


if __name__ == "__main__":
    main()
