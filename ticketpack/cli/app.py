"""The `ticketpack` command: a thin Typer shell over the library. Each command lives in its own module."""

from __future__ import annotations

import sys
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


_register()


def main() -> None:
    """Console entry point: user mistakes become one red line and exit 2 (a failed gate exits 1).

    Typer/click already answer usage errors (unknown flags, bad types) with exit 2 and the usage line.
    """
    try:
        app()
    except TicketpackError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]: finished rounds and jobs are saved; rerun with --resume to continue")
        sys.exit(130)


if __name__ == "__main__":
    main()
