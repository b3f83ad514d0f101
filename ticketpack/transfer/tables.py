"""The tables of a transfer report, built once as plain data and rendered twice: to markdown here
(:func:`to_markdown`, ``table.md`` of the examples) and to a rich table by the CLI (``ticketpack.cli.report``).

A :class:`Table` is a title, columns, rows of :class:`Cell` and a caption. A cell's text is plain; ``mark`` is a
plain-text suffix that every rendering prints as is (:data:`~ticketpack.transfer.pooling.RESOLVED`, `` *``, on a
resolved difference, with its legend in the caption), ``bold`` a style a renderer may show. A cell's text may hold a
line break where a narrow rendering wants one; markdown joins the lines with a space. Torch-free, no rich.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ticketpack.transfer.pooling import RESOLVED
from ticketpack.transfer.strategies import ordered

if TYPE_CHECKING:
    from ticketpack.transfer.records import PairedDifference, TransferReport

RESOLVED_LEGEND = f"{RESOLVED.strip()} resolved: the interval excludes 0"


@dataclass(frozen=True)
class Column:
    """``header`` in full; ``narrow``, a shorter one for a terminal (the full one when not given; ``""``: a terminal
    leaves the column out); ``wrap``: a narrow rendering may break the column's cells over lines."""

    header: str
    narrow: str | None = None
    align: Literal["left", "right"] = "right"
    wrap: bool = False


@dataclass(frozen=True)
class Cell:
    text: str
    bold: bool = False
    mark: str = ""  # plain text after the cell's text, in every rendering (RESOLVED)


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    caption: str = ""


def fmt_pct(mean: float, std: float, sep: str = " ± ") -> str:
    """An accuracy and its spread in percent: ``81.2 ± 1.3``."""
    return f"{100 * mean:.1f}{sep}{100 * std:.1f}"


def pct(x: float) -> str:
    """A share in percent with the digits it needs: ``100``, ``51.2``, ``0.64``."""
    p = 100 * x
    return f"{p:.0f}" if p >= 99.5 or p == round(p) else (f"{p:.1f}" if p >= 1 else f"{p:.2f}")


def fmt_interval(p: PairedDifference, sep: str = " ") -> str:
    """``+1.2 [-0.8, +3.1]`` in points (no interval from one pair)."""
    if p.low is None:
        return f"{100 * p.mean:+.1f}"
    return f"{100 * p.mean:+.1f}{sep}[{100 * p.low:+.1f}, {100 * p.high:+.1f}]"


def _cpu(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


def accuracy_table(report: TransferReport) -> Table:
    """Target test accuracy (%), mean ± std over seeds, per level (rows) and strategy (columns), the best strategy
    of each level in bold; the dense reference, the seeds, the jobs and the split's standard error in the caption."""
    inits = [i for i in ordered(report.inits) if any(c.init == i for c in report.cells)]
    table = Table(
        title=f"{report.model.name} ticket {report.source} → {report.target}: test accuracy on {report.target} (%)",
        columns=[Column("level"), Column("weights remaining", "weights"), *(Column(i) for i in inits)],
    )
    for level in sorted({c.level for c in report.cells}):
        row = {c.init: c for c in report.cells if c.level == level}
        wr = (row.get("ticket") or next(iter(row.values()))).weights_remaining
        best = max(row.values(), key=lambda c: c.target_test_mean).init
        table.rows.append([Cell(str(level)), Cell(f"{pct(wr)}%"), *(
            Cell(fmt_pct(row[i].target_test_mean, row[i].target_test_std), bold=i == best and len(row) > 1)
            if i in row else Cell("") for i in inits)])
    n = max((c.n for c in report.cells), default=report.dense.n if report.dense else 0)
    d = report.dense
    dense = f"dense (100%): {fmt_pct(d.target_test_mean, d.target_test_std)} · " if d else ""
    ref = d or (report.cells[0] if report.cells else None)
    split = (f" · test split {report.target_test_n} examples: SE {100 * ref.target_test_se:.1f} pts"
             if ref is not None and ref.target_test_se is not None else "")
    table.caption = (f"{dense}mean ± std over {n} seed{'s' if n != 1 else ''} · "
                     f"{report.jobs_finished}/{report.jobs_total} jobs{split}")
    return table


def paired_table_of(paired: list[PairedDifference]) -> Table:
    """``reference − other`` in points per level: mean and 95% interval over the seed pairs, marked where resolved."""
    others = ordered(p.other for p in paired)
    ref = paired[0].reference
    table = Table(
        title=f"Paired differences in points, {ref} − other, over seeds",
        columns=[Column("level"), Column("weights remaining", ""), *(Column(f"{ref} − {o}", o) for o in others)],
        caption=f"mean [95% t-interval] over {max(p.n for p in paired)} seed pairs; {RESOLVED_LEGEND}",
    )
    for level in sorted({p.level for p in paired}):
        row = {p.other: p for p in paired if p.level == level}
        wr = next(iter(row.values())).weights_remaining
        table.rows.append([Cell(str(level)), Cell(f"{pct(wr)}%"), *(
            Cell(fmt_interval(row[o], sep="\n"), bold=row[o].resolved, mark=RESOLVED if row[o].resolved else "")
            if o in row else Cell("") for o in others)])
    return table


def cost_note(report: TransferReport) -> str:
    """What the cost figures cover: threads, the machine's load, the workers' start-up left out."""
    threads = {c.threads for c in report.costs} - {None}
    m = report.machine
    parts = [f"{threads.pop()} torch thread(s) per job" if len(threads) == 1 else "threads per job vary"]
    if m.get("load_mean") is not None:
        cores = f"{m['cores']} cores, " if m.get("cores") is not None else ""
        parts.append(f"{cores}1-minute load {m['load_mean']:.1f} on average (at most {m['load_max']:.1f}) while the "
                     "jobs ran")
    startup = next((c.startup_seconds for c in report.costs if c.startup_seconds is not None), None)
    if startup is not None:
        parts.append(f"a worker's first job took {startup:+.1f} s longer than the others (its start-up), and is left "
                     "out of the per-model figures")
    return "; ".join(parts) + "."


def cost_table_of(report: TransferReport) -> Table:
    """Training cost per strategy: steps, wall and CPU seconds per trained model, plus any search it needs first."""
    table = Table(title="Training cost per strategy", columns=[
        Column("strategy", align="left"), Column("models trained", "models"), Column("steps per model", "steps/model"),
        Column("seconds per model", "s/model"), Column("CPU-seconds per model", "CPU-s/model"),
        Column("search first", wrap=True),
    ])
    for c in report.costs:
        search = (f"{c.search_iterations:,} steps, {c.search_seconds:.1f} s, {_cpu(c.search_cpu_seconds)} CPU-s"
                  if c.search_iterations else "none")
        table.rows.append([Cell(c.init), Cell(str(c.jobs)), Cell(f"{c.iterations_mean:.0f}"),
                           Cell(f"{c.seconds_mean:.2f}"), Cell(_cpu(c.cpu_seconds_mean)), Cell(search)])
    table.caption = cost_note(report)
    if report.source_search is not None:
        s = report.source_search
        table.caption += (f" The source ticket's own search ({s.search_iterations:,} steps, {s.search_seconds:.1f} s, "
                          f"{_cpu(s.search_cpu_seconds)} CPU-s, setup included) is paid once and shared by every "
                          "target it is transferred to; a target-ticket pays its search again in every target domain.")
    return table


def _md_cell(cell: Cell) -> str:
    text = cell.text.replace("\n", " ").replace("|", "\\|")
    return (f"**{text}**" if cell.bold and text else text) + cell.mark


def to_markdown(table: Table) -> str:
    """The table in markdown (GitHub's pipe tables), then its title and caption as one paragraph below it."""
    lines = ["| " + " | ".join(c.header for c in table.columns) + " |",
             "|" + "".join(" --- |" if c.align == "left" else " ---: |" for c in table.columns)]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in table.rows]
    note = ": ".join(part for part in (table.title, table.caption) if part)
    return "\n".join(lines + (["", note] if note else []))
