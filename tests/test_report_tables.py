"""One table model for a transfer report's tables, rendered to markdown (library) and to rich (CLI)."""

from __future__ import annotations

from rich.console import Console

from ticketpack.cli.report import rich_table
from ticketpack.transfer.pooling import RESOLVED
from ticketpack.transfer.tables import Cell, Column, Table, to_markdown


def _table() -> Table:
    return Table(
        title="Paired differences",
        columns=[Column("level"), Column("weights remaining", ""), Column("ticket − random-mask", "random-mask")],
        rows=[[Cell("3"), Cell("51.6%"), Cell("+2.0\n[+1.0, +3.0]", bold=True, mark=RESOLVED)],
              [Cell("7"), Cell("21.5%"), Cell("")]],
        caption=f"mean [95% t-interval]; {RESOLVED.strip()} resolved: the interval excludes 0",
    )


def test_markdown_joins_lines_bolds_inside_the_mark_and_puts_title_and_caption_below():
    text = to_markdown(_table())
    lines = text.splitlines()
    assert lines[0] == "| level | weights remaining | ticket − random-mask |"
    assert lines[1] == "| ---: | ---: | ---: |"
    assert lines[2] == "| 3 | 51.6% | **+2.0 [+1.0, +3.0]** * |"
    assert lines[3] == "| 7 | 21.5% |  |"
    assert lines[5] == "Paired differences: mean [95% t-interval]; * resolved: the interval excludes 0"


def test_rich_shows_narrow_headers_drops_unwanted_columns_and_keeps_the_plain_mark():
    console = Console(record=True, width=80, color_system=None, force_terminal=False)
    console.print(rich_table(_table()))
    text = console.export_text()
    assert "random-mask" in text and "weights" not in text and "51.6%" not in text
    assert "[+1.0, +3.0] *" in text and text.count("*") == 2  # the cell's mark and the legend
    assert [line.split() for line in text.splitlines() if line.strip().startswith("7")] == [["7", "-"]]  # empty: "-"
