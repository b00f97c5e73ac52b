"""Dynamic micro-batching: concurrent requests are merged into one batched decode.

Requests wait in a bounded queue; one worker takes the first, then whatever else arrives within
``max_wait_s`` (up to ``max_batch``), and decodes them together in a thread (torch releases the GIL),
so the event loop keeps accepting requests meanwhile. A full queue refuses at once (``Overloaded``):
the queue never grows without bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


class Overloaded(Exception):
    """The request queue is full; retry later."""


class MicroBatcher:
    def __init__(self, run_batch: Callable[[list], list], max_batch: int = 32, max_wait_s: float = 0.002,
                 max_queue: int = 256, on_batch: Callable[[int, float], None] | None = None):
        self.run_batch, self.max_batch, self.max_wait_s = run_batch, max_batch, max_wait_s
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=max_queue)
        self.on_batch = on_batch
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oxy-decode")
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        self.executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    async def submit(self, item):
        fut = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((item, fut))
        except asyncio.QueueFull:
            raise Overloaded() from None
        return await fut

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0 and self.queue.empty():
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), max(remaining, 0)) if remaining > 0
                                 else self.queue.get_nowait())
                except (TimeoutError, asyncio.QueueEmpty):
                    break
            live = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not live:
                continue
            t0 = time.perf_counter()
            try:
                results = await loop.run_in_executor(self.executor, self.run_batch, [item for item, _ in live])
            except Exception as e:  # noqa: BLE001 - every waiting request gets the error, the loop goes on
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            if self.on_batch:
                self.on_batch(len(live), time.perf_counter() - t0)
            for (_, fut), res in zip(live, results):
                if not fut.done():
                    fut.set_result(res)
