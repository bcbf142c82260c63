"""One queue of transcriptions per process, for every call: finals first, batched.

Whisper is the bottleneck with many callers (a fixed ~0.25-0.4 s per utterance on two
cores shared by all calls), so the order in which waiting jobs run matters more than how
fast each one is:

* a final transcript (a caller who stopped talking and waits for the answer) runs before
  any speculative one (a transcript started at a pause, in case the turn ends there);
* a speculative job the caller made useless while it waited (they went on talking, or the
  turn ended on other audio) is dropped instead of run (``Ticket.dropped``);
* a speculative job whose turn ended on its audio becomes a final (``Ticket.final``);
* up to ``max_batch`` waiting jobs run as one batch when the recogniser supports it.

Jobs run on the worker pool the gateway plugs in (the STT bulkhead), so its limits and
figures still hold: each job asks the pool for one slot and, once it has it, serves the
queue in priority order until its own job is done (whoever's jobs those are). So every
queued job always has a slot coming; a job that another slot ran gives its own place in
the pool's queue up, and a caller who hangs up takes its job out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from voice.errors import VoiceError
from voice.ports import WorkerPool

R = TypeVar("R")


class SttSkipped(VoiceError):
    """A speculative transcription was dropped before it ran: its result had no use."""


@dataclass(slots=True)
class Ticket:
    """A job's standing, changed by its call while it waits (on the event loop's thread;
    the pool's thread reads it when it picks the next batch)."""

    final: bool = False
    dropped: bool = False


@dataclass(eq=False, slots=True)
class _Job(Generic[R]):
    pcm: bytes
    prompt: str | None
    ticket: Ticket
    future: concurrent.futures.Future[R] = field(default_factory=concurrent.futures.Future)
    self_served: bool = False  # run by the slot it asked for (not another job's)


class SttJobs(Generic[R]):
    def __init__(self, run_batch: Callable[[Sequence[tuple[bytes, str | None]]],
                                           Sequence[R | Exception]],
                 pool: WorkerPool, max_batch: int = 1) -> None:
        """``run_batch`` runs (pcm, prompt) jobs on a pool thread and returns one result
        or exception per job, in order."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.run_batch = run_batch
        self.pool = pool
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Job[R]] = []
        self.runs = 0  # jobs run, batched or not (for benchmarks)
        self.batches = 0
        self.skipped = 0  # speculative jobs dropped before they ran

    def backlog(self) -> int:
        """Jobs waiting (not running), every call's."""
        with self._lock:
            return len(self._queue)

    async def transcribe(self, pcm: bytes, prompt: str | None = None,
                         ticket: Ticket | None = None) -> R:
        """The result of one job; without a ``ticket`` it is a final transcript. Raises
        ``SttSkipped`` if its ticket was dropped before it ran, and whatever the pool
        raises when full."""
        job = _Job[R](pcm, prompt, ticket or Ticket(final=True))
        with self._lock:
            self._queue.append(job)
        serve: asyncio.Future[Any] = asyncio.ensure_future(
            self.pool.run_in_thread(self._serve, job))
        result: asyncio.Future[Any] = asyncio.wrap_future(job.future)
        try:
            # another job's slot may run this one first: then this one's place in the
            # pool's queue is given up at once, not waited for
            await asyncio.wait([serve, result], return_when=asyncio.FIRST_COMPLETED)
            if not result.done():
                serve.result()  # what the pool raised (full), or it ran: result is due
            elif job.self_served:
                await serve  # it is returning: its slot is free when this call returns
            done: R = await result
            return done
        except BaseException:
            self._withdraw(job)
            raise
        finally:
            serve.cancel()
            if serve.done() and not serve.cancelled():
                serve.exception()  # retrieved: it was raised above if it mattered

    def _withdraw(self, job: _Job[R]) -> None:
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
        job.future.cancel()  # no effect once it runs: its result is dropped

    def _take(self) -> list[_Job[R]]:
        """The next batch: finals in arrival order, then speculative ones."""
        with self._lock:
            for job in [j for j in self._queue if j.ticket.dropped and not j.ticket.final]:
                self._queue.remove(job)
                if job.future.set_running_or_notify_cancel():
                    job.future.set_exception(SttSkipped("speculative transcript not needed"))
                    self.skipped += 1
            ordered = sorted(self._queue, key=lambda j: not j.ticket.final)  # stable
            batch: list[_Job[R]] = []
            for job in ordered:
                if len(batch) == self.max_batch:
                    break
                self._queue.remove(job)
                if job.future.set_running_or_notify_cancel():
                    batch.append(job)
            return batch

    def _serve(self, own: _Job[R]) -> None:
        """On a pool thread: run batches until ``own`` is done."""
        while not own.future.done():
            batch = self._take()
            if not batch:  # ``own`` runs in another thread's batch (several workers)
                concurrent.futures.wait([own.future])
                return
            if own in batch:
                own.self_served = True
            self._run(batch)

    def _run(self, batch: list[_Job[R]]) -> None:
        try:
            results = self.run_batch([(job.pcm, job.prompt) for job in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
        except Exception as exc:
            results = [exc] * len(batch)
        with self._lock:
            self.runs += len(batch)
            self.batches += 1
        for job, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)
