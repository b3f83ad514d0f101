"""Executors: how the independent jobs of a transfer run get run. Each takes the same plain job descriptions and
calls the same :func:`ticketpack.transfer.jobs.execute`, and yields each job's result as it finishes.

- ``local``: ``jobs`` processes on this machine (``spawn`` start method; one job runs in-process when jobs is 1).
- ``ray``: Ray tasks on the cluster at ``ray_address``, or on a local Ray instance started for the run
  (``pip install 'ticketpack[ray]'``). Workers read the ticket and data and write job files at the same paths as
  the driver, so on a multi-node cluster put them on storage every node mounts at the same path.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol

from ticketpack.errors import TicketpackError
from ticketpack.registry import Registry
from ticketpack.transfer.records import Job

Finished = tuple[Job, dict[str, Any] | None]


class Executor(Protocol):
    """A context manager that runs batches of jobs and yields (job, result dict or None) as each finishes."""

    def __enter__(self) -> "Executor": ...
    def __exit__(self, *exc: object) -> None: ...
    def run(self, jobs: list[Job]) -> Iterator[Finished]: ...


EXECUTORS: Registry[type] = Registry("executor")


def _init_worker(threads: int, parent: int | None = None) -> None:
    from ticketpack.lifeline import die_with_parent

    die_with_parent(parent)  # a killed driver must not leave its workers training (and holding memory) for minutes
    import torch

    torch.set_num_threads(threads)


@EXECUTORS("local")
class LocalExecutor:
    def __init__(self, root: Path, workers: int, threads: int, address: str | None = None,
                 connect_timeout_s: float = 30.0) -> None:
        if address:
            raise TicketpackError("--ray-address only applies to --executor ray")
        self.root, self.workers, self.threads = str(root), workers, threads
        self._pool: ProcessPoolExecutor | None = None
        self._threads_before: int | None = None

    def __enter__(self) -> "LocalExecutor":
        if self.workers > 1:
            from ticketpack.lifeline import ENV

            os.environ[ENV] = str(os.getpid())  # workers arm their lifeline on `import ticketpack` (until __exit__)
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(self.threads, os.getpid()),
            )
        else:
            import torch

            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            from ticketpack.lifeline import ENV

            self._pool.shutdown(wait=True, cancel_futures=True)
            os.environ.pop(ENV, None)
        if self._threads_before is not None:
            import torch

            torch.set_num_threads(self._threads_before)

    def run(self, jobs: list[Job]) -> Iterator[Finished]:
        from ticketpack.transfer.jobs import execute

        if self._pool is None:
            for job in jobs:
                yield job, execute(self.root, job)
            return
        pending: dict[Future, Job] = {self._pool.submit(execute, self.root, job.model_dump()): job for job in jobs}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = pending.pop(fut)
                    yield job, fut.result()
        finally:
            for fut in pending:
                fut.cancel()


def _ray_job(root: str, job: dict[str, Any], threads: int) -> dict[str, Any] | None:
    import torch

    from ticketpack.transfer.jobs import execute

    torch.set_num_threads(threads)
    return execute(root, job)


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise TicketpackError("--executor ray needs Ray: pip install 'ticketpack[ray]'") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """``host:port``, ``[v6]:port`` or ``ray://host:port`` → (host, port); None for ``auto``/``local`` and the like."""
    rest = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def _unreachable(address: str, timeout_s: float, why: str) -> TicketpackError:
    return TicketpackError(f"cannot reach the Ray cluster at {address} within {timeout_s:g}s ({why}); check "
                           "--ray-address, or raise --ray-timeout")


def wait_for_port(address: str, deadline: float, timeout_s: float) -> None:
    """Wait until ``address`` accepts a TCP connection, until ``deadline`` (time.monotonic)."""
    hp = _host_port(address)
    if hp is None:
        return
    why = "no answer"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _unreachable(address, timeout_s, why)
        try:
            with socket.create_connection(hp, timeout=min(left, 2.0)):
                return
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def _init_within(ray: Any, kwargs: dict[str, Any], deadline: float, address: str | None, timeout_s: float) -> None:
    """``ray.init`` that gives up at ``deadline``: Ray itself retries an unreachable GCS for minutes.

    A local instance (no address) starts in this thread: Ray ties the processes it starts to the thread that
    started them. Connecting to a running cluster starts none, so that happens in a helper thread, with a deadline."""
    if not address:
        ray.init(**kwargs)
        return
    outcome: dict[str, BaseException | None] = {}

    def target() -> None:
        try:
            ray.init(**kwargs)
            outcome["error"] = None
        except BaseException as exc:  # reported in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="ticketpack-ray-init", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        raise _unreachable(address, timeout_s, "Ray did not connect")
    exc = outcome.get("error")
    if isinstance(exc, ConnectionError):
        raise TicketpackError(f"cannot reach the Ray cluster at {address}: {exc}") from None
    if exc is not None:
        raise exc


@EXECUTORS("ray")
class RayExecutor:
    def __init__(self, root: Path, workers: int, threads: int, address: str | None = None,
                 connect_timeout_s: float = 30.0) -> None:
        self.ray = require_ray()
        self.root, self.workers, self.threads, self.address = str(root), workers, threads, address
        self.connect_timeout_s = connect_timeout_s
        self._started = False
        self._reaper = None

    def __enter__(self) -> "RayExecutor":
        ray = self.ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
            if self.address:
                kwargs["address"] = self.address
            else:
                kwargs["num_cpus"] = self.workers * self.threads  # a local instance sized like --jobs
            deadline = time.monotonic() + self.connect_timeout_s
            if self.address:
                wait_for_port(self.address, deadline, self.connect_timeout_s)
            else:
                from ticketpack.lifeline import start_reaper

                self._reaper = start_reaper()  # a killed driver leaves none of the local instance's processes
            _init_within(ray, kwargs, deadline, self.address, self.connect_timeout_s)
            self._started = True
        self._task = ray.remote(num_cpus=self.threads)(_ray_job)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self.ray.shutdown()
        if self._reaper is not None:  # a normal end: Ray stopped its own processes
            self._reaper.kill()
            self._reaper.wait()
            self._reaper = None

    def run(self, jobs: list[Job]) -> Iterator[Finished]:
        ray = self.ray
        refs = {self._task.remote(self.root, job.model_dump(), self.threads): job for job in jobs}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    yield refs[ref], ray.get(ref)
        finally:
            for ref in pending:
                ray.cancel(ref)
