"""Child processes that die with their parent: a process that ticketpack starts (a transfer worker, a `serve`
worker) arms :func:`die_with_parent` itself, first thing, with the pid its parent handed it, so that a parent killed by
SIGKILL (which cannot clean up) leaves no process behind. Nothing is armed on ``import ticketpack``: a process that
was not started for ticketpack keeps its own signals and threads.

Two mechanisms, belt and braces: on Linux the kernel sends the child SIGKILL when its parent exits
(``prctl(PR_SET_PDEATHSIG)``); everywhere, a daemon thread polls the parent pid and exits the process once the
child has been re-parented. Both watch the parent *process* that was alive when the child started: if it is
already gone by then, the child exits at once.

:func:`call_with_parent` is the entry point of such a child: it arms the lifeline, then imports and calls the real
worker function, so that nothing heavy (torch) is imported before the child is tied to its parent.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

PR_SET_PDEATHSIG = 1
POLL_S = 0.5
_armed: list[int] = []  # the parents this process already dies with (only ever set in a process that armed itself)


def _set_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    import time

    while True:
        if os.getppid() != parent:
            os._exit(0)  # the parent is gone: nobody is waiting for this process's work
        time.sleep(POLL_S)


def die_with_parent(parent: int | None = None) -> None:
    """Make this process exit when ``parent`` (default: the current parent) exits, however it exits."""
    parent = os.getppid() if parent is None else int(parent)
    if parent in _armed:
        return
    _armed.append(parent)
    _set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(0)
    threading.Thread(target=_watch, args=(parent,), name="ticketpack-lifeline", daemon=True).start()


def call_with_parent(parent: int, target: str, *args: Any) -> Any:
    """A child process's entry point: die with ``parent`` (armed before anything else is imported), then import
    ``target`` (``"package.module:function"``) and call it with ``args``. Give it as the ``target`` of a
    ``multiprocessing`` process, with ``os.getpid()`` of the parent as ``parent``."""
    die_with_parent(parent)
    module, _, name = target.partition(":")
    import importlib

    return getattr(importlib.import_module(module), name)(*args)


def _proc_stat(pid: int) -> tuple[str, int, str] | None:
    """(state, ppid, start time) of ``pid`` from /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return fields[0].decode(), int(fields[1]), fields[19].decode()


def descendants(root: int) -> dict[int, str]:
    """Every live descendant of ``root`` → its start time (to tell it from a later process with a reused pid)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := _proc_stat(int(name))) is not None and st[0] not in ("Z", "X"):
            children.setdefault(st[1], []).append(int(name))
    out: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out and (st := _proc_stat(child)) is not None:
                out[child] = st[2]
                todo.append(child)
    return out


def start_reaper(parent: int | None = None):
    """Start a watcher (its own session, so it outlives ``parent``) that SIGKILLs every process that descended from
    ``parent`` once ``parent`` is gone: for process trees we do not start ourselves, such as a local Ray instance's
    agents, which outlive a killed driver for about a minute. Linux only (reads /proc); returns the Popen or None."""
    import subprocess

    if not os.path.isdir("/proc/self"):
        return None
    parent = os.getpid() if parent is None else parent
    return subprocess.Popen([sys.executable, "-m", "ticketpack.core.lifeline", str(parent)], start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _reap(parent: int) -> None:
    import time

    me = os.getpid()
    seen: dict[int, str] = {}
    while (st := _proc_stat(parent)) is not None and st[0] not in ("Z", "X"):
        seen.update({p: s for p, s in descendants(parent).items() if p != me})
        time.sleep(POLL_S)
    for pid, started in seen.items():
        st = _proc_stat(pid)
        if st is not None and st[2] == started and st[0] not in ("Z", "X"):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


if __name__ == "__main__":
    _reap(int(sys.argv[1]))
