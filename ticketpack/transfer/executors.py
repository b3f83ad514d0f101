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


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


@EXECUTORS("local")
class LocalExecutor:
    def __init__(self, root: Path, workers: int, threads: int, address: str | None = None) -> None:
        if address:
            raise TicketpackError("--ray-address only applies to --executor ray")
        self.root, self.workers, self.threads = str(root), workers, threads
        self._pool: ProcessPoolExecutor | None = None
        self._threads_before: int | None = None

    def __enter__(self) -> "LocalExecutor":
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(self.threads,),
            )
        else:
            import torch

            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
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


@EXECUTORS("ray")
class RayExecutor:
    def __init__(self, root: Path, workers: int, threads: int, address: str | None = None) -> None:
        self.ray = require_ray()
        self.root, self.workers, self.threads, self.address = str(root), workers, threads, address
        self._started = False

    def __enter__(self) -> "RayExecutor":
        ray = self.ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
            if self.address:
                kwargs["address"] = self.address
            else:
                kwargs["num_cpus"] = self.workers * self.threads  # a local instance sized like --jobs
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise TicketpackError(f"cannot reach the Ray cluster at {self.address}: {exc}") from None
            self._started = True
        self._task = ray.remote(num_cpus=self.threads)(_ray_job)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self.ray.shutdown()

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
