"""Dynamic micro-batching: concurrent requests to one model that arrive within a short window are merged into
one ONNX Runtime run, up to a row limit, and each request gets its own rows back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np


class MicroBatcher:
    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        executor: Executor,
        window_s: float,
        max_rows: int,
        on_run: Callable[[int], None] | None = None,
    ) -> None:
        self._run = run
        self._executor = executor
        self._window_s = window_s
        self._max_rows = max_rows
        self._on_run = on_run
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future]] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._runs: set[asyncio.Task] = set()
        self._pending = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._collect())

    async def stop(self) -> None:
        """Finish every submitted request, then stop collecting."""
        while self._pending:
            await asyncio.sleep(0.005)
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def submit(self, x: np.ndarray) -> np.ndarray:
        fut = asyncio.get_running_loop().create_future()
        self._pending += 1
        try:
            await self._queue.put((x, fut))
            return await fut
        finally:
            self._pending -= 1

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        held: tuple[np.ndarray, asyncio.Future] | None = None
        while True:
            first = held or await self._queue.get()
            held = None
            items, rows = [first], len(first[0])
            deadline = loop.time() + self._window_s
            while rows < self._max_rows:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
                if rows + len(item[0]) > self._max_rows:
                    held = item  # starts the next batch
                    break
                items.append(item)
                rows += len(item[0])
            task = loop.create_task(self._execute(items))
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)

    async def _execute(self, items: list[tuple[np.ndarray, asyncio.Future]]) -> None:
        loop = asyncio.get_running_loop()
        try:
            x = items[0][0] if len(items) == 1 else np.concatenate([i[0] for i in items])
            if self._on_run:
                self._on_run(len(x))
            y = await loop.run_in_executor(self._executor, self._run, x)
        except Exception as exc:  # one failed run fails each of its requests, not the batcher
            for _, fut in items:
                if not fut.done():
                    fut.set_exception(exc)
            return
        start = 0
        for xi, fut in items:
            if not fut.done():  # the client may have gone away
                fut.set_result(y[start : start + len(xi)])
            start += len(xi)
