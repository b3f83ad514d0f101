"""Child processes that die with their parent: transfer workers and serve workers call :func:`die_with_parent`
first thing (on ``import ticketpack``, when the parent set ``TICKETPACK_LIFELINE_PARENT`` to its pid; again in the
pool initializer or app factory), so that a parent killed by SIGKILL (which cannot clean up) leaves no process behind.

Two mechanisms, belt and braces: on Linux the kernel sends the child SIGKILL when its parent exits
(``prctl(PR_SET_PDEATHSIG)``); everywhere, a daemon thread polls the parent pid and exits the process once the
child has been re-parented. Both watch the parent *process* that was alive when the child started: if it is
already gone by then, the child exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
POLL_S = 0.5
ENV = "TICKETPACK_LIFELINE_PARENT"  # set by a parent around the start of its workers: the pid they die with
_armed: list[int] = []


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


def arm_from_env() -> None:
    """Called when ``ticketpack`` is imported: in a worker started while its parent had set ``ENV`` to its own pid,
    arm at once (before torch or the models load). The variable is removed, so the worker's own children do not inherit it."""
    value = os.environ.pop(ENV, None)
    if value and value.isdigit() and int(value) != os.getpid():
        die_with_parent(int(value))



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
    return subprocess.Popen([sys.executable, "-m", "ticketpack.lifeline", str(parent)], start_new_session=True,
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
