"""The `ticketpack` command: a thin Typer shell over the library. Each command lives in its own module."""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from ticketpack.cli.common import err
from ticketpack.cli.flags import in_flags
from ticketpack.core.errors import TicketpackError
from ticketpack.version import __version__


def _click_exceptions() -> tuple[type[Exception], type[Exception]]:
    """click's ``UsageError`` (a bad flag: exit 2) and ``ClickException`` (its base), which typer raises but does not
    export: typer 0.26 and later vendor click in a private module, older ones depend on click. Both are bases of the
    public ``typer.BadParameter`` whichever it is, so they are found there, by name, in this one place."""
    bases = {cls.__name__: cls for cls in typer.BadParameter.__mro__}
    return bases["UsageError"], bases["ClickException"]


_UsageError, _ClickException = _click_exceptions()


class _BareFlags:
    """Flags without a value placeholder in help. typer 0.29's rich help prints one for every option, flags
    included (``--force <bool>``, ``--help <bool>``; 0.28 left flags bare): a flag takes no value, so its metavar is
    empty."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False):
                param.metavar = ""
        return params


class _Command(_BareFlags, TyperCommand):
    """A ticketpack command: its config-backed flags take their help from the config's fields when help is shown,
    and what goes wrong while it runs is reported as :func:`_reporting_errors` says."""

    def format_help(self, ctx, formatter) -> None:
        flags = getattr(self.callback, "config_flags", None)
        if flags is not None:
            flags.describe(self.params)
        super().format_help(ctx, formatter)

    def invoke(self, ctx):
        return _reporting_errors(ctx, functools.partial(super().invoke, ctx))


class _OneLineErrors(_BareFlags, TyperGroup):
    """Usage errors (an unknown flag, ``--seed -3``) as one line on stderr and exit 2, like every other user error,
    instead of click's usage box; in the app itself, so that the console script and CliRunner behave the same."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "ticketpack"
            err.print(f"[bold red]error:[/] {escape(exc.format_message())} (see `{escape(where)} --help`)",
                      highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except _ClickException as exc:
            err.print(f"[bold red]error:[/] {escape(exc.format_message())}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            err.print("[red]aborted[/]")
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="ticketpack",
    help="Find lottery tickets, transfer them across domains, export them to ONNX, and check and serve them.",
    no_args_is_help=True,
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
    from ticketpack.cli import (
        demo,
        evaluate,
        export,
        listing,
        predict,
        report,
        search,
        serve,
        transfer,
        validate,
    )

    for name, fn in [("search", search.search_cmd), ("transfer", transfer.transfer_cmd), ("report", report.report_cmd),
                     ("export", export.export_cmd), ("evaluate", evaluate.evaluate_cmd),
                     ("validate", validate.validate_cmd), ("predict", predict.predict_cmd), ("serve", serve.serve_cmd),
                     ("demo", demo.demo_cmd), ("list", listing.list_cmd)]:
        app.command(name, cls=_Command)(fn)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """ticketpack's own warnings (documents cut, classes unbalanced across splits) as one yellow line on stderr;
    anyone else's in Python's usual form."""
    if category.__module__.startswith("ticketpack"):
        err.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _reporting_errors(ctx, run: Callable[[], Any]) -> Any:
    """Run a command (``run``, in its context ``ctx``): user mistakes become one red line and exit 2 (a failed gate:
    exit 1), in the app itself, so that the console script and in-process runners (typer.testing.CliRunner) behave
    the same. The exception stays attached to the Exit for tests. Typer/click already answer usage errors (bad
    flags) with exit 2."""
    try:
        _check_finite(ctx)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return run()
    except TicketpackError as exc:  # the library names fields (`level`); the user typed flags (--level)
        message = in_flags(exc, ctx.command if ctx is not None else None)
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(getattr(exc, "exit_code", 2)) from exc
    except (PermissionError, NotADirectoryError, IsADirectoryError) as exc:  # a path the user gave
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"[bold red]error:[/] {escape(exc.strerror or str(exc))}{escape(str(where))}", highlight=False,
                  soft_wrap=True)
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]: finished rounds and jobs are saved; rerun with --resume to continue")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, _ClickException):
        raise
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        err.print(f"[bold red]error:[/] {escape(_missing_extra(exc.name or '', extra, ctx))}", highlight=False,
                  soft_wrap=True)
        raise typer.Exit(2) from exc
    except Exception as exc:  # a bug, not the user's mistake: keep the traceback and say what to do with it
        import traceback

        traceback.print_exc()
        err.print(f"[bold red]internal error[/] ({escape(type(exc).__name__)}): this is a bug in ticketpack "
                  f"{__version__}, not a problem with your input; please report it on the ticketpack issue tracker "
                  "with the command you ran and the traceback above", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc


# Modules a runtime-only install (`pip install ticketpack`) leaves out → the extra that brings them.
EXTRAS = {"torch": "train", "sklearn": "train", "scipy": "train", "safetensors": "train", "yaml": "train",
          "matplotlib": "train", "fastapi": "serve", "uvicorn": "serve", "prometheus_client": "serve", "ray": "ray"}


def _missing_extra(module: str, extra: str, ctx) -> str:
    command = f"ticketpack {ctx.info_name}" if ctx is not None and ctx.info_name else "this command"
    hint = " (evaluate: or give a labelled --data-file, which needs no dataset split)" if module.startswith("sklearn") else ""
    name = {"sklearn": "scikit-learn", "yaml": "pyyaml", "prometheus_client": "prometheus-client"}.get(
        module.split(".")[0], module.split(".")[0])
    return f"`{command}` needs {name}, which is in the {extra} extra: pip install 'ticketpack[{extra}]'{hint}"


def _check_finite(ctx) -> None:
    """Every number a user gives must be finite: ``--lr inf`` or ``--latency-budget nan`` is a usage error, before
    any work (click's FLOAT type accepts both)."""
    import math

    flags = {p.name: (p.opts[0] if p.opts else p.name) for p in ctx.command.params}
    for name, value in ctx.params.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise TicketpackError(f"{flags.get(name, '--' + name.replace('_', '-'))}: {v} is not a finite number")


_register()


def main() -> None:
    """Console entry point."""
    from ticketpack.core.hugepages import prefer_huge_pages

    prefer_huge_pages()  # before any tensor; transfer workers inherit it
    try:
        app()
    except KeyboardInterrupt:  # outside a command (e.g. while parsing)
        sys.exit(130)
    except SystemExit as done:
        import threading

        if any(t.name == "ticketpack-ray-init" and t.is_alive() for t in threading.enumerate()):
            # an abandoned Ray connection attempt would go on logging to stderr while the interpreter winds down,
            # after the one-line error: leave now (nothing is open: the attempt failed before anything was written)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(done.code if isinstance(done.code, int) else 1)
        raise


if __name__ == "__main__":
    main()
