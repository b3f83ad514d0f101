"""Progress on stderr: without a terminal, a plain line every few seconds inside a long round (round, epoch,
step/total, elapsed, ETA) and per finished transfer job; on a terminal, bars with an ETA. Status lines ("opening …")
only on a terminal or with --verbose, so that a failing command in CI prints its error alone. A fake clock or a zero
interval stands in for waiting."""

from __future__ import annotations

import io
import threading

import pytest
from rich.console import Console
from typer.testing import CliRunner

from ticketpack.cli import progress
from ticketpack.cli.app import app
from ticketpack.cli.progress import Heartbeat, Ticker, duration, eta
from ticketpack.cli.search import SearchProgress
from ticketpack.cli.transfer import TransferProgress
from ticketpack.search import SearchEvent
from ticketpack.transfer import TransferEvent
from ticketpack.transfer.records import Job

runner = CliRunner()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _plain_console() -> Console:
    return Console(file=io.StringIO(), force_terminal=False, width=300)


def test_durations_and_etas_read_as_people_write_them():
    assert [duration(s) for s in (0, 7.4, 65, 3725)] == ["0s", "7s", "1m05s", "1h02m"]
    assert eta(20.0, 10, 40) == "ETA 1m00s"  # 2 s per step, 30 steps left
    assert eta(5.0, 0, 40) == "ETA ?"  # no rate before the first step


def test_without_a_terminal_a_search_prints_one_line_per_interval_inside_a_round():
    console, clock = _plain_console(), FakeClock()
    with SearchProgress(4, console, Ticker(console, interval=5.0, clock=clock)) as on_event:
        on_event(SearchEvent("round_start", 1, 3))
        for step in range(1, 41):  # 1 s per step, 10 steps per epoch, an evaluation at the end of each
            clock.now += 1
            val = 0.5 + step / 100 if step % 10 == 0 else None
            on_event(SearchEvent("step", 1, 3, step, 40, val, epoch=(step + 9) // 10, epochs=4))
    lines = console.file.getvalue().splitlines()
    assert len(lines) == 8  # one every 5 s of a 40 s round, not one per step
    assert lines[0] == "round 1/3 · epoch 1/4 · step 5/40 · 5s elapsed · ETA 35s (this round)"
    assert lines[1] == "round 1/3 · epoch 1/4 · step 10/40 · 10s elapsed · ETA 30s (this round) · val acc 0.600"
    assert lines[5] == "round 1/3 · epoch 3/4 · step 30/40 · 30s elapsed · ETA 10s (this round) · val acc 0.800"
    assert "\x1b" not in console.file.getvalue()  # plain text for a log


def test_a_finished_round_is_a_line_and_restarts_the_interval():
    from ticketpack.search.manifest import RoundRecord

    console, clock = _plain_console(), FakeClock()
    record = RoundRecord.model_construct(round=0, weights_remaining=1.0, val_accuracy=0.8, test_accuracy=0.75,
                                         seconds=12.0)
    with SearchProgress(2, console, Ticker(console, interval=5.0, clock=clock)) as on_event:
        on_event(SearchEvent("round_start", 0, 1))
        clock.now += 12
        on_event(SearchEvent("round_end", 0, 1, record=record))
        on_event(SearchEvent("round_start", 1, 1))
        clock.now += 1
        on_event(SearchEvent("step", 1, 1, 1, 10, None, epoch=1, epochs=1))  # 1 s after the round's line: not due
    assert console.file.getvalue().splitlines() == [
        "round 0: 100.0% weights remaining, val 0.800, test 0.750 (12.0s)"]


def test_on_a_terminal_the_search_bars_show_an_eta():
    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    with SearchProgress(2, console) as on_event:
        on_event(SearchEvent("round_start", 0, 1))
        on_event(SearchEvent("step", 0, 1, 3, 10, 0.5, epoch=1, epochs=2))
        shown = Console(file=io.StringIO(), width=200, record=True)
        shown.print(on_event.progress.make_tasks_table(on_event.progress.tasks))
    text = shown.export_text()
    assert "ETA" in text and "3/10" in text and "epoch 1/2, val acc 0.500" in text


def _job(i: int) -> Job:
    return Job(job_id=f"L01-dense-s{i}", level=1, init="dense", seed=i, phase=0)


def test_without_a_terminal_transfer_lines_carry_elapsed_time_and_an_eta():
    console, clock = _plain_console(), FakeClock()
    show = TransferProgress(console, Ticker(console, interval=5.0, clock=clock))
    show(TransferEvent("planned", 1, 5))  # one job already done (a resumed run): the rate counts this run's jobs
    assert show.line() == "jobs 1/5 done · 0s elapsed · ETA ?"
    clock.now += 30
    show(TransferEvent("job_end", 2, 5, _job(2), None))
    clock.now += 30
    show(TransferEvent("job_end", 3, 5, _job(3), None))
    assert console.file.getvalue().splitlines() == [
        "job 2/5 L01-dense-s2 done · 30s elapsed · ETA 1m30s",
        "job 3/5 L01-dense-s3 done · 1m00s elapsed · ETA 1m00s",
    ]
    assert show.line() == "jobs 3/5 done · 1m00s elapsed · ETA 1m00s"


def test_the_heartbeat_prints_between_events_but_not_before_the_work_starts():
    console = _plain_console()
    said, lines = threading.Event(), iter([None, "jobs 0/2 done"])

    def line():
        text = next(lines, "jobs 0/2 done")
        if text is not None:
            said.set()
        return text

    with Heartbeat(Ticker(console, interval=0.0), line, poll_s=0.001):
        assert said.wait(10)
    out = console.file.getvalue().splitlines()
    assert out and set(out) == {"jobs 0/2 done"}  # the None (nothing started yet) printed nothing


def test_a_piped_search_prints_periodic_lines_with_an_eta(tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)  # every step is due: no waiting in a test
    result = runner.invoke(app, ["search", "--out", str(tmp_path / "t"), "--rounds", "1", "--iterations", "4",
                                 "--threads", "1"])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if " · step " in ln]
    assert [ln.split(" · ")[2] for ln in lines] == [f"step {s}/4" for s in range(1, 5)] * 2  # rounds 0 and 1
    assert lines[0].startswith("round 0/1 · epoch 1/") and lines[-1].startswith("round 1/1 · epoch ")
    assert all(" elapsed · ETA " in ln and "(this round)" in ln for ln in lines)
    assert "\x1b" not in result.stderr


def test_a_failing_command_without_a_terminal_prints_only_its_error(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "missing.onnx")])
    assert result.exit_code == 2
    assert [ln for ln in result.stderr.splitlines() if ln.strip()] == [
        f"error: model file not found: {tmp_path / 'missing.onnx'}"]


def test_verbose_shows_the_status_lines_without_a_terminal(tmp_path):
    result = runner.invoke(app, ["evaluate", "--verbose", str(tmp_path / "missing.onnx")])
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines[0] == f"opening {tmp_path / 'missing.onnx'}" and lines[-1].startswith("error: model file not found")


def test_serve_says_validating_only_on_a_terminal_or_with_verbose(tmp_path):
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    missing = str(tmp_path / "missing.onnx")
    quiet = runner.invoke(app, ["serve", missing])
    loud = runner.invoke(app, ["serve", "-v", missing])
    assert quiet.exit_code == loud.exit_code == 2
    quiet_lines = [ln for ln in quiet.stderr.splitlines() if ln.strip()]
    assert len(quiet_lines) == 1 and quiet_lines[0].startswith("error:"), quiet.stderr
    assert "validating 1 model" in loud.stderr.splitlines()[0]
