"""Executors: how the independent jobs of a transfer run get run. Each takes the same plain job descriptions and
calls the same :func:`ticketpack.transfer.jobs.execute`, and yields each job's result as it finishes.

- ``local``: ``jobs`` worker processes on this machine (``spawn`` start method), each a loop over the jobs it is
  handed; in-process when jobs is 1.
- ``ray``: ``jobs`` Ray actors on the cluster at ``ray_address``, or on a local Ray instance started for the run
  (``pip install 'ticketpack[ray]'``). Workers read the ticket and data and write job files at the same paths as
  the driver, so on a multi-node cluster put them on storage every node mounts at the same path.

An executor lives as long as its ``with`` block: one transfer run by default, or several when a caller opens one
(:func:`open_executor`) and hands it to each :func:`~ticketpack.transfer.run_transfer` (a study of many runs then
starts its workers, and imports torch in them, once). A worker loads a run's context on its first job of that run
and keeps it while it serves the run; a job of another run (or of the same directory planned anew) loads that one
instead. No worker outlives its executor: a long-lived process (Ray reuses its own) never holds an old run's ticket
and data. Each worker, and the executor itself on the driver's side, owns a
:class:`~ticketpack.data.domain.FeatureCache` (at most 1 GiB): a domain featurized for one run serves the next runs
it is handed, and goes with its owner.

Settings reach a worker as arguments, never through the parent's environment: a local worker is started as
:func:`ticketpack.core.lifeline.call_with_parent` with the driver's pid, arms its lifeline (it dies with the driver) and
only then imports torch.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import queue
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ticketpack.core.errors import FieldError, TicketpackError
from ticketpack.core.registry import Registry
from ticketpack.data.domain import FeatureCache
from ticketpack.transfer.ray_address import (  # noqa: F401 (RAY_ADDRESS_FORMS, parse_ray_address: read from here)
    RAY_ADDRESS_FORMS,
    parse_ray_address,
    unreachable,
    wait_for_port,
)
from ticketpack.transfer.records import Job

if TYPE_CHECKING:
    from ticketpack.transfer.jobs import JobContext

Finished = tuple[Job, dict[str, Any] | None]


class Executor(Protocol):
    """A context manager that runs batches of jobs and yields (job, result dict or None) as each finishes.

    ``ctx`` is the driver's own loaded context of the run, which an in-process executor reuses; workers elsewhere
    load their own from the run directory."""

    in_process: bool  # jobs run in the caller's process (and can use a model object that lives only there)
    threads: int  # torch threads of each worker
    features: FeatureCache  # the driver's featurized domains, kept as long as the executor (run after run)

    def __enter__(self) -> "Executor": ...
    def __exit__(self, *exc: object) -> None: ...
    def run(self, jobs: list[Job], ctx: JobContext) -> Iterator[Finished]: ...


EXECUTORS: Registry[type] = Registry("executor")


def _portable(exc: Exception) -> Exception:
    """``exc`` with the worker's traceback as a note, as something that survives pickling to the driver."""
    exc.add_note("in a transfer worker process:\n" + traceback.format_exc())
    try:
        pickle.dumps(exc)
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    return exc


class _Contexts:
    """A worker's context of the run it serves: loaded on the run's first job, replaced when a job of another run
    (another directory, or the same one planned anew: another plan digest) arrives. Its :class:`FeatureCache`
    outlives the contexts: a domain the worker featurized for one run serves the next (as long as the worker)."""

    def __init__(self, features: FeatureCache | None = None) -> None:
        self.key: tuple[str, str] | None = None
        self.ctx: JobContext | None = None
        self.jobs_run = 0  # over the worker's life: its first job also pays the process's start-up
        self.features = FeatureCache() if features is None else features

    def execute(self, root: str, plan_digest: str, job: dict[str, Any]) -> dict[str, Any] | None:
        """Run ``job`` of the run in ``root`` in this worker."""
        from ticketpack.transfer.jobs import execute

        with self.features.using():  # the run's data, and a target search's, load through the worker's cache
            ctx = self.get(root, plan_digest)
            self.jobs_run += 1
            return execute(ctx, job, first_in_worker=self.jobs_run == 1)

    def get(self, root: str, plan_digest: str) -> JobContext:
        from ticketpack.transfer.jobs import JobContext

        if self.ctx is None or self.key != (root, plan_digest):
            self.ctx = None  # the old run's ticket and data go before the new ones load
            self.ctx, self.key = JobContext.load(Path(root)), (root, plan_digest)
        return self.ctx


def _messages(jobs: list[Job], ctx: JobContext) -> list[tuple[str, str, dict[str, Any]]]:
    """What a worker is sent for each job: the run's directory, its plan's digest (hashed once) and the job."""
    root, digest = str(ctx.root), ctx.plan_digest
    return [(root, digest, job.model_dump()) for job in jobs]


def use_gpu_slot(slot: int) -> int | None:
    """Make GPU ``slot % count`` this process's current CUDA device (what ``--device cuda``/``auto`` then means),
    so that local workers spread over the visible GPUs; None where there is none."""
    import torch

    if not torch.cuda.is_available():
        return None
    index = slot % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return index


def _job_loop(threads: int, parent: int, inbox: Any, outbox: Any, slot: int = 0) -> None:
    """A local worker process: runs the jobs from ``inbox`` until None, each with its run's context (loaded once
    per run, :class:`_Contexts`), and answers each with (job id, result, error) on ``outbox``. It dies with the
    process ``parent`` (the driver's pid): :class:`LocalExecutor` starts it through
    :func:`ticketpack.core.lifeline.call_with_parent`, which arms that before this module (and torch) is imported."""
    from ticketpack.core.lifeline import die_with_parent

    die_with_parent(parent)  # a killed driver must not leave its workers training (and holding memory) for minutes
    from ticketpack.core.hugepages import prefer_huge_pages

    prefer_huge_pages()  # before the first tensor (a driver in a notebook may not have asked)
    import torch

    torch.set_num_threads(threads)
    use_gpu_slot(slot)
    contexts = _Contexts()
    try:
        for root, digest, job in iter(inbox.get, None):
            try:
                outbox.put((job["job_id"], contexts.execute(root, digest, job), None))
            except Exception as exc:
                outbox.put((job["job_id"], None, _portable(exc)))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the driver reports it, once
        pass


@EXECUTORS("local")
class LocalExecutor:
    def __init__(self, workers: int, threads: int, address: str | None = None, connect_timeout_s: float = 30.0,
                 gpus_per_job: float = 0.0) -> None:
        if address:
            raise FieldError("`ray_address` only applies to `executor` ray")
        self.workers, self.threads = workers, threads
        self.in_process = workers == 1
        self.features = FeatureCache()
        self._procs: list[Any] = []
        self._threads_before: int | None = None
        self._jobs_run = 0  # in-process jobs (workers == 1)

    def __enter__(self) -> "LocalExecutor":
        if self.workers == 1:
            import torch

            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.workers > 1:
            self._stop(failed=exc[0] is not None)
        if self._threads_before is not None:
            import torch

            torch.set_num_threads(self._threads_before)

    def _start(self) -> None:
        """The worker processes, started on the first batch."""
        from ticketpack.core.lifeline import call_with_parent

        mp = multiprocessing.get_context("spawn")
        self._inbox, self._outbox = mp.Queue(), mp.Queue()
        parent = os.getpid()
        for i in range(self.workers):  # armed to die with this process first, then the worker loop is imported
            p = mp.Process(target=call_with_parent, name=f"ticketpack-worker-{i}", args=(
                parent, f"{__name__}:_job_loop", self.threads, parent, self._inbox, self._outbox, i))
            p.start()
            self._procs.append(p)  # only started ones: _stop must not wait for a process that never ran

    def _stop(self, failed: bool) -> None:
        """Let the workers finish (after the last batch) or, on a failure, stop them and the jobs they run."""
        for p in self._procs:
            if failed:
                p.terminate()
            else:
                self._inbox.put(None)
        for p in self._procs:
            p.join()
        if self._procs:
            self._inbox.cancel_join_thread()  # jobs a failure left in the queue are dropped, not waited for
            self._inbox.close()
            self._outbox.close()
        self._procs = []

    def run(self, jobs: list[Job], ctx: JobContext) -> Iterator[Finished]:
        from ticketpack.transfer.jobs import execute

        if self.workers == 1:
            for job in jobs:
                self._jobs_run += 1
                yield job, execute(ctx, job, first_in_worker=self._jobs_run == 1)
            return
        if not self._procs:
            self._start()
        pending = {job.job_id: job for job in jobs}
        try:
            for message in _messages(jobs, ctx):
                self._inbox.put(message)
            while pending:
                try:
                    jid, result, error = self._outbox.get(timeout=1.0)
                except queue.Empty:
                    if dead := [p for p in self._procs if not p.is_alive()]:
                        raise FieldError(
                            f"a worker process died (exit code {dead[0].exitcode}; out of memory?); the finished "
                            "jobs are saved: rerun with `resume`, perhaps with fewer `jobs`"
                        ) from None
                    continue
                if error is not None:
                    raise error
                yield pending.pop(jid), result
        except BaseException:
            self._stop(failed=True)  # what is queued or running belongs to a failed run: a next run starts afresh
            raise


class _RayWorker:
    """A Ray actor: one worker of the executor, which keeps the context of the run it serves (:class:`_Contexts`).
    Actors end with the executor; the processes that run Ray tasks outlive it."""

    def __init__(self, threads: int) -> None:
        from ticketpack.core.hugepages import prefer_huge_pages

        prefer_huge_pages()  # effective unless this Ray process made a large tensor before
        import torch

        torch.set_num_threads(threads)
        self.contexts = _Contexts()  # and its featurized domains, for as long as the actor serves the executor

    def execute(self, root: str, digest: str, job: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        return job["job_id"], self.contexts.execute(root, digest, job)


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise FieldError("`executor` ray needs Ray: pip install 'ticketpack[ray]'") from None
    return ray


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
        raise unreachable(address, timeout_s, "Ray did not connect")
    exc = outcome.get("error")
    if isinstance(exc, ConnectionError):
        raise TicketpackError(f"cannot reach the Ray cluster at {address}: {exc}") from None
    if exc is not None:
        raise exc


@EXECUTORS("ray")
class RayExecutor:
    in_process = False

    def __init__(self, workers: int, threads: int, address: str | None = None, connect_timeout_s: float = 30.0,
                 gpus_per_job: float = 0.0) -> None:
        if address:
            parse_ray_address(address)  # a malformed address: one line, before Ray is imported
        self.gpus_per_job = gpus_per_job
        self.ray = require_ray()
        self.workers, self.threads, self.address = workers, threads, address
        self.connect_timeout_s = connect_timeout_s
        self.features = FeatureCache()
        self._started = False
        self._reaper = None
        self._actors: list[Any] = []

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
                from ticketpack.core.lifeline import start_reaper

                self._reaper = start_reaper()  # a killed driver leaves none of the local instance's processes
            _init_within(ray, kwargs, deadline, self.address, self.connect_timeout_s)
            self._started = True
        self._worker = ray.remote(num_cpus=self.threads, num_gpus=self.gpus_per_job)(_RayWorker)  # Ray sets each
        # actor's CUDA_VISIBLE_DEVICES: a fraction (0.5) puts several jobs on one GPU
        return self

    def __exit__(self, *exc: object) -> None:
        self._kill_actors()  # no worker outlives the executor
        if self._started:
            self.ray.shutdown()
        if self._reaper is not None:  # a normal end: Ray stopped its own processes
            self._reaper.kill()
            self._reaper.wait()
            self._reaper = None

    def run(self, jobs: list[Job], ctx: JobContext) -> Iterator[Finished]:
        from ray.util import ActorPool

        if not self._actors:  # started on the first batch
            self._actors = [self._worker.remote(self.threads) for _ in range(self.workers)]
        pool = ActorPool(self._actors)
        pending = {job.job_id: job for job in jobs}
        for message in _messages(jobs, ctx):
            pool.submit(lambda actor, m: actor.execute.remote(*m), message)
        try:
            while pool.has_next():
                jid, result = pool.get_next_unordered()
                yield pending.pop(jid), result
        except BaseException:
            self._kill_actors()  # what is queued or running belongs to a failed run: a next run starts afresh
            raise

    def _kill_actors(self) -> None:
        for actor in self._actors:  # with the jobs they still run
            self.ray.kill(actor)
        self._actors = []


def open_executor(name: str = "local", jobs: int = 1, threads: int = 1, ray_address: str | None = None,
                  ray_timeout_s: float = 30.0, gpus_per_job: float = 0.0) -> Executor:
    """An executor to use as a context manager and hand to several runs, so that its workers start once::

        with open_executor("local", jobs=2) as ex:
            for target in ("dvd", "electronics"):
                run_transfer(TransferConfig(ticket="tickets/books", target=target), f"runs/{target}", executor=ex)

    ``jobs`` workers of ``threads`` torch threads each ("local": processes on this machine, in-process when
    ``jobs`` is 1; "ray": actors on ``ray_address`` or on a local Ray instance, which fails after
    ``ray_timeout_s`` seconds when unreachable). Local workers spread over the visible GPUs (worker i on GPU
    i mod count); Ray gives each job ``gpus_per_job`` GPUs (0.5: two jobs per GPU). A missing Ray extra or an
    unknown name fails here."""
    if jobs < 1:
        raise FieldError("`jobs` must be at least 1")
    if gpus_per_job < 0:
        raise FieldError("`gpus_per_job` must be at least 0")
    return EXECUTORS.get(name)(jobs, threads, ray_address, connect_timeout_s=ray_timeout_s, gpus_per_job=gpus_per_job)
