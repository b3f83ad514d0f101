"""Progress of long work (search rounds, transfer jobs) on stderr: live bars with an ETA on a terminal; without one
(a log file, CI, a pipe), one plain line every :data:`INTERVAL_S` seconds at most, naming where the work is, how long
it has taken and how long it has left.

Status lines of short work ("opening …", "validating 1 model…") are another matter: :func:`status_printer` shows
them on a terminal or with ``--verbose`` only, so that a command that fails in CI prints one line, its error.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Self

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

INTERVAL_S = 5.0  # seconds between plain progress lines (no terminal)


def status_printer(console: Console, verbose: bool) -> Callable[[object], None]:
    """A ``say(msg)`` that prints a dim status line on ``console`` when it is a terminal or ``verbose`` is set, and
    otherwise nothing; ``msg`` is a line or a stage's progress event (an ``on_event`` callback: its message)."""
    show = verbose or console.is_terminal

    def say(msg: object) -> None:
        if show:
            console.print(f"[dim]{escape(str(msg))}[/]", highlight=False, soft_wrap=True)

    return say


def duration(seconds: float) -> str:
    """``7s``, ``3m05s``, ``1h02m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def eta(elapsed: float, done: float, total: float) -> str:
    """``ETA 1m20s`` at the rate so far; ``ETA ?`` before any of the work is done."""
    if done <= 0 or total <= 0 or not math.isfinite(elapsed):
        return "ETA ?"
    return f"ETA {duration(elapsed / done * max(0.0, total - done))}"


def bar(console: Console, *columns: ProgressColumn | str) -> Progress:
    """A transient rich progress display on ``console`` ending in elapsed time and an ETA."""
    return Progress(*columns, BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True)


class Ticker:
    """Says when a plain progress line is due: at most one every ``interval`` seconds of ``clock`` (the first one an
    interval after the start), so that a log gets a line every few seconds, not one per training step."""

    def __init__(self, console: Console, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.interval = INTERVAL_S if interval is None else interval
        self.clock = clock
        self.last = clock()

    def due(self) -> bool:
        now = self.clock()
        if now - self.last < self.interval:
            return False
        self.last = now
        return True

    def print(self, line: str) -> None:
        """A plain line (no markup, no terminal codes), which restarts the interval."""
        self.last = self.clock()
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


class Heartbeat:
    """A daemon thread that prints ``line()`` through ``ticker`` whenever a line is due, for work whose own events
    are too far apart (a transfer job may train for minutes); ``line()`` None: nothing to say yet (the work has not
    started: a command that fails while checking its inputs prints its error alone). Stopped on leaving the ``with``
    block."""

    def __init__(self, ticker: Ticker, line: Callable[[], str | None], poll_s: float = 0.5) -> None:
        self.ticker, self.line, self.poll_s = ticker, line, min(poll_s, ticker.interval or poll_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ticketpack-progress", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            if self.ticker.due() and (text := self.line()) is not None:
                self.ticker.print(text)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
