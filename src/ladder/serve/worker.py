"""One thread owns the local model: requests queue (bounded) and run in batches.

A local model (and the LoRA adapters loaded on it) is not safe to call from several threads, and
it is much faster on a batch than on one request at a time (FACTS.md: 4.1 vs 2.0 prompts/s at
batch 8). So every call on a local engine becomes a job on this worker: the thread takes the
oldest job, adds the queued jobs with the same batch key (same solution or model view) up to
`max_batch`, and runs them in one call. Jobs with other keys keep their place in line. When the
engine was idle, it first waits `max_wait_s` (a few ms) for the rest of a burst to arrive.

The queue is bounded: when `max_queue` jobs are waiting, `submit` raises `Overloaded` at once
(the gateway answers 503 with Retry-After) instead of letting latency grow without limit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


class Overloaded(Exception):
    """Too many requests are already waiting (the gateway answers 503 with Retry-After)."""


class Gate:
    """At most `limit` calls in flight on one event loop; the next is refused at once."""

    def __init__(self, limit: int, what: str):
        self.limit, self.what, self.inflight = limit, what, 0

    @contextmanager
    def slot(self):
        if self.inflight >= self.limit:
            raise Overloaded(f"{self.inflight} requests are already waiting for {self.what}")
        self.inflight += 1
        try:
            yield
        finally:
            self.inflight -= 1


@dataclass
class Job:
    key: Hashable
    item: Any
    run: Callable[[list[Any]], list[Any]]  # items -> results, same order and length
    future: Future


class Worker:
    def __init__(
        self,
        *,
        max_queue: int = 256,
        max_batch: int = 8,
        max_wait_s: float = 0.005,
        name: str = "ladder-engine",
    ):
        self.max_queue, self.max_batch = max_queue, max_batch
        # when the engine was idle, wait this long for a burst of requests to fill the batch:
        # 5 ms against batches of 0.1-10 s; without it the first request of a burst runs alone
        self.max_wait_s = max_wait_s
        # requests the gateway is handling now (`expecting`): when every one of them is already
        # queued, no burst is coming and the batch runs at once instead of waiting max_wait_s
        self.incoming = 0
        self.counts_incoming = False  # set by the first `expecting`; without it, always wait
        self._jobs: deque[Job] = deque()
        self._cv = threading.Condition()
        self._stop = False
        self.batches = 0  # for /metrics and tests: how many engine calls ran
        self.busy_s = 0.0  # seconds the engine spent on batches (utilisation = busy / elapsed)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @contextmanager
    def expecting(self):
        """Around a request the gateway handles: it may reach this worker."""
        self.counts_incoming = True
        self.incoming += 1
        try:
            yield
        finally:
            self.incoming -= 1

    def _more_coming(self) -> bool:
        return not self.counts_incoming or self.incoming > len(self._jobs)

    def depth(self) -> int:
        with self._cv:
            return len(self._jobs)

    def submit(self, key: Hashable, item: Any, run: Callable[[list[Any]], list[Any]]) -> Future:
        fut: Future = Future()
        with self._cv:
            if self._stop:
                raise Overloaded("the server is shutting down")
            if len(self._jobs) >= self.max_queue:
                raise Overloaded(f"{len(self._jobs)} requests are already waiting for the model")
            self._jobs.append(Job(key, item, run, fut))
            self._cv.notify()
        return fut

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout=30)

    def _next_batch(self) -> list[Job] | None:
        with self._cv:
            if not self._jobs and not self._stop:
                while not self._jobs and not self._stop:
                    self._cv.wait()
                deadline = time.monotonic() + self.max_wait_s
                while len(self._jobs) < self.max_batch and self._more_coming() and not self._stop:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
            if not self._jobs:
                return None
            first = self._jobs.popleft()
            batch, rest = [first], deque[Job]()
            while self._jobs and len(batch) < self.max_batch:
                job = self._jobs.popleft()
                (batch if job.key == first.key else rest).append(job)
            rest.extend(self._jobs)
            self._jobs = rest
            return batch

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            batch = [j for j in batch if j.future.set_running_or_notify_cancel()]
            if batch:
                t0 = time.perf_counter()
                self._run(batch)
                self.busy_s += time.perf_counter() - t0
        with self._cv:  # shutting down: nothing queued is left hanging
            for job in self._jobs:
                job.future.set_exception(Overloaded("the server is shutting down"))
            self._jobs.clear()

    def _run(self, batch: list[Job]) -> None:
        self.batches += 1
        try:
            results = batch[0].run([j.item for j in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            # one bad request must not fail the others: retry each alone
            for job in batch:
                self._run([job])
            return
        for job, res in zip(batch, results):
            job.future.set_result(res)
