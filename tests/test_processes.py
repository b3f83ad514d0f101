"""Processes die with their parent, and a crash leaves no debris for long: SIGKILL the `transfer --jobs 2` driver or the
`serve --workers 2` parent and no child of theirs is alive 5 s later; stale temp files and metrics directories
of a dead writer are removed by the next run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")

GRACE_S = 5.0  # the bar: no child alive this long after the parent's SIGKILL
START_S = 180.0  # generous: only bounds how long we wait for the children to appear on a busy machine


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])  # state, ppid


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            children.setdefault(st[1], []).append(int(entry.name))
    out, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return {p for p in out if alive(p)}


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"the parent exited ({proc.returncode}) before its children were seen:\n{out[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("children did not appear in time")
        time.sleep(0.2)


def kill_parent_and_count_survivors(proc: subprocess.Popen, children: set[int]) -> set[int]:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and any(alive(p) for p in children):
        time.sleep(0.1)
    survivors = {p for p in children if alive(p)}
    for p in survivors:  # do not leave them behind for the rest of the suite
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return survivors


def _cli(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"} | {"PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "ticketpack.cli.app", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env)


def test_transfer_workers_die_with_a_killed_driver(digits_ticket, tmp_path):
    proc = _cli("transfer", str(digits_ticket), "--target", "rot30", "--jobs", "2", "--seeds", "3", "--epochs", "3",
                "--out", str(tmp_path / "run"))
    workers = lambda: {p for p in descendants(proc.pid) if "multiprocessing" in cmdline(p)}  # noqa: E731
    wait_for(lambda: len([p for p in workers() if "spawn_main" in cmdline(p)]) >= 2, START_S, proc)
    for p in workers():  # the command asked for huge pages before starting them (ticketpack/core/hugepages.py)
        assert b"THP_MEM_ALLOC_ENABLE=1\0" in Path(f"/proc/{p}/environ").read_bytes()
    children = descendants(proc.pid)  # the two workers and multiprocessing's resource tracker
    assert len(children) >= 2
    survivors = kill_parent_and_count_survivors(proc, children)
    print(f"transfer --jobs 2: {len(children)} children at the kill, {len(survivors)} alive {GRACE_S:g}s later")
    assert not survivors, [cmdline(p) for p in survivors]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def test_serve_workers_die_with_a_killed_parent_and_the_next_serve_removes_its_metrics_dir(exported_digits):
    pytest.importorskip("uvicorn")
    from ticketpack.serve.app import METRICS_PREFIX, clean_stale_metrics_dirs

    port = _free_port()
    proc = _cli("serve", str(exported_digits), "--workers", "2", "--port", str(port), "--no-access-log")
    wait_for(lambda: _answers(port) and len(descendants(proc.pid)) >= 2, START_S, proc)
    children = descendants(proc.pid)
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    left = [d for d in tmp.glob(f"{METRICS_PREFIX}{proc.pid}-*")]
    assert left, "serve --workers 2 keeps its metrics in a directory named after its pid"
    survivors = kill_parent_and_count_survivors(proc, children)
    print(f"serve --workers 2: {len(children)} children at the kill, {len(survivors)} alive {GRACE_S:g}s later")
    assert not survivors, [cmdline(p) for p in survivors]
    assert not _answers(port)
    assert all(d.exists() for d in left)  # SIGKILL left it behind ...
    removed = clean_stale_metrics_dirs(str(tmp))  # ... and the next `serve` removes it first
    assert {d.name for d in left} <= set(removed) and not any(d.exists() for d in left)


def test_a_temp_file_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    from ticketpack.core.fileio import atomic_write_text

    target = tmp_path / "model.onnx"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    stale = tmp_path / f".model.onnx.{dead.pid}-abcd1234.tmp"
    stale.write_bytes(b"half a model")
    live = tmp_path / f".model.onnx.{os.getppid()}-efgh5678.tmp"  # a writer that still runs: left alone
    live.write_bytes(b"in progress")
    other = tmp_path / f".model.onnx.b.{dead.pid}-abcd1234.tmp"  # another file's temporary: left alone
    other.write_bytes(b"x")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert not stale.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == sorted([live.name, other.name])


def test_an_unreachable_ray_address_fails_within_the_timeout(digits_ticket, tmp_path):
    """Ray itself retries "Failed to connect to GCS" for minutes; a closed port fails at once (the TCP probe is
    refused), and --ray-timeout bounds a port that accepts TCP but never speaks Ray (in a subprocess: Ray's
    connecting thread is abandoned)."""
    pytest.importorskip("ray")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        silent = f"127.0.0.1:{listener.getsockname()[1]}"
        for address, why in (("127.0.0.1:1", "connection refused"), (silent, "within 2s")):
            done = subprocess.run(
                [sys.executable, "-m", "ticketpack.cli.app", "transfer", str(digits_ticket), "--target", "rot30",
                 "--init", "dense", "--executor", "ray", "--ray-address", address, "--ray-timeout", "2",
                 "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
            assert done.returncode == 2, done.stderr
            lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
            assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach the Ray cluster at {address}")
            assert why in lines[0], lines[0]
            assert not (tmp_path / "run").exists()


def test_a_local_ray_instance_dies_with_a_killed_driver(digits_ticket, tmp_path):
    """Ray ties raylet and GCS to the driver, but its agents outlive a SIGKILLed driver by about a minute without
    the reaper that `--executor ray` starts for a local instance."""
    pytest.importorskip("ray")
    out = tmp_path / "run"
    proc = _cli("transfer", str(digits_ticket), "--target", "rot30", "--executor", "ray", "--jobs", "2", "--seeds", "3",
                "--epochs", "3", "--out", str(out))
    wait_for(lambda: any(out.glob("jobs/*/result.json")), START_S, proc)
    children = descendants(proc.pid)
    assert any("ray" in cmdline(p) for p in children)
    survivors = kill_parent_and_count_survivors(proc, children)
    print(f"transfer --executor ray: {len(children)} children at the kill, {len(survivors)} alive {GRACE_S:g}s later")
    assert not survivors, [cmdline(p)[:80] for p in survivors]
