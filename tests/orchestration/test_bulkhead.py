"""Bulkhead limits, queueing, rejection and cancellation, driven with events, not sleeps."""

from __future__ import annotations

import asyncio
import threading

import pytest

from orchestration.errors import OrchestrationError
from orchestration.patterns.bulkhead import Bulkhead, BulkheadFull, shared_bulkhead


async def _settle() -> None:
    """Let every ready task run until it blocks again (no wall-clock waiting)."""
    for _ in range(5):
        await asyncio.sleep(0)


class _Gate:
    """An async job that records its start and blocks until released."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> str:
        self.started.set()
        await self.release.wait()
        return "done"


async def test_limits_concurrency_and_queues_in_fifo_order() -> None:
    bulkhead = Bulkhead("test", max_concurrent=2, max_queue=3)
    gates = [_Gate() for _ in range(5)]
    tasks = [asyncio.create_task(bulkhead.run(gate)) for gate in gates]
    await _settle()

    assert [g.started.is_set() for g in gates] == [True, True, False, False, False]
    assert (bulkhead.active, bulkhead.queued) == (2, 3)

    gates[1].release.set()
    await _settle()
    assert [g.started.is_set() for g in gates] == [True, True, True, False, False]
    assert (bulkhead.active, bulkhead.queued) == (2, 2)

    for gate in gates:
        gate.release.set()
    assert await asyncio.gather(*tasks) == ["done"] * 5
    assert (bulkhead.active, bulkhead.queued, bulkhead.rejected) == (0, 0, 0)


async def test_rejects_at_once_when_full_and_names_the_pool() -> None:
    bulkhead = Bulkhead("stt", max_concurrent=1, max_queue=1)
    running, waiting = _Gate(), _Gate()
    tasks = [asyncio.create_task(bulkhead.run(g)) for g in (running, waiting)]
    await _settle()

    with pytest.raises(BulkheadFull) as caught:
        await bulkhead.run(_Gate())
    assert str(caught.value) == (
        "bulkhead 'stt' is full: 1 running and 1 waiting "
        "(max_concurrent=1, max_queue=1); try again later"
    )
    assert caught.value.name == "stt"
    assert isinstance(caught.value, OrchestrationError)
    assert bulkhead.rejected == 1

    running.release.set()
    waiting.release.set()
    await asyncio.gather(*tasks)


async def test_zero_queue_rejects_anything_beyond_the_running_slots() -> None:
    bulkhead = Bulkhead("tts", max_concurrent=1, max_queue=0)
    gate = _Gate()
    task = asyncio.create_task(bulkhead.run(gate))
    await gate.started.wait()
    with pytest.raises(BulkheadFull):
        await bulkhead.run(_Gate())
    gate.release.set()
    await task
    assert await bulkhead.run(_done) == "ok"


async def _done() -> str:
    return "ok"


async def test_cancelling_a_queued_task_frees_its_queue_slot() -> None:
    bulkhead = Bulkhead("test", max_concurrent=1, max_queue=1)
    running = _Gate()
    first = asyncio.create_task(bulkhead.run(running))
    queued = asyncio.create_task(bulkhead.run(_Gate()))
    await _settle()
    assert bulkhead.queued == 1

    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert (bulkhead.active, bulkhead.queued) == (1, 0)

    # the freed place can be taken again, and the job behind it runs when the slot frees
    later = _Gate()
    later_task = asyncio.create_task(bulkhead.run(later))
    await _settle()
    assert bulkhead.queued == 1
    running.release.set()
    await later.started.wait()
    later.release.set()
    assert [await first, await later_task] == ["done", "done"]
    assert (bulkhead.active, bulkhead.queued) == (0, 0)


async def test_a_slot_handed_to_a_task_being_cancelled_moves_on() -> None:
    bulkhead = Bulkhead("test", max_concurrent=1, max_queue=2)
    running, second, third = _Gate(), _Gate(), _Gate()
    t1 = asyncio.create_task(bulkhead.run(running))
    t2 = asyncio.create_task(bulkhead.run(second))
    t3 = asyncio.create_task(bulkhead.run(third))
    await _settle()

    # release the slot and cancel its heir before the heir gets to run
    running.release.set()
    await running.started.wait()
    await t1
    t2.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t2
    await third.started.wait()
    assert not second.started.is_set()
    third.release.set()
    assert await t3 == "done"
    assert (bulkhead.active, bulkhead.queued) == (0, 0)


async def test_errors_propagate_and_free_the_slot() -> None:
    bulkhead = Bulkhead("test", max_concurrent=1, max_queue=0)

    async def boom() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await bulkhead.run(boom)
    assert bulkhead.active == 0
    assert await bulkhead.run(_done) == "ok"


async def test_run_in_thread_uses_at_most_max_concurrent_threads() -> None:
    bulkhead = Bulkhead("pool", max_concurrent=2, max_queue=4)
    release = threading.Event()
    entered = threading.Semaphore(0)
    lock = threading.Lock()
    busy = {"now": 0, "peak": 0}
    names: set[str] = set()

    def work(n: int) -> int:
        with lock:
            busy["now"] += 1
            busy["peak"] = max(busy["peak"], busy["now"])
            names.add(threading.current_thread().name)
        entered.release()
        release.wait()
        with lock:
            busy["now"] -= 1
        return n * n

    tasks = [asyncio.create_task(bulkhead.run_in_thread(work, n)) for n in range(6)]
    await asyncio.to_thread(entered.acquire)
    await asyncio.to_thread(entered.acquire)
    await _settle()
    assert (bulkhead.active, bulkhead.queued) == (2, 4)
    with pytest.raises(BulkheadFull):
        await bulkhead.run_in_thread(work, 99)

    release.set()
    assert await asyncio.gather(*tasks) == [0, 1, 4, 9, 16, 25]
    assert busy["peak"] == 2
    assert all(name.startswith("bulkhead-pool") for name in names)
    bulkhead.shutdown()


async def test_cancelling_while_the_thread_runs_keeps_the_slot_until_it_ends() -> None:
    bulkhead = Bulkhead("pool", max_concurrent=1, max_queue=1)
    started = threading.Event()
    release = threading.Event()
    finished = threading.Event()

    def slow() -> str:
        started.set()
        release.wait()
        finished.set()
        return "discarded"

    task = asyncio.create_task(bulkhead.run_in_thread(slow))
    await asyncio.to_thread(started.wait)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the thread is still busy, so the slot is still taken
    assert bulkhead.active == 1

    follow_up = asyncio.create_task(bulkhead.run_in_thread(lambda: "next"))
    await _settle()
    assert bulkhead.queued == 1
    release.set()
    assert await follow_up == "next"
    assert finished.is_set()
    assert (bulkhead.active, bulkhead.queued) == (0, 0)
    bulkhead.shutdown()


async def test_cancelling_a_thread_job_still_queued_never_runs_it() -> None:
    bulkhead = Bulkhead("pool", max_concurrent=1, max_queue=1)
    release = threading.Event()
    ran: list[str] = []

    def block() -> None:
        release.wait()

    first = asyncio.create_task(bulkhead.run_in_thread(block))
    queued = asyncio.create_task(bulkhead.run_in_thread(ran.append, "queued"))
    await _settle()
    assert bulkhead.queued == 1
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert bulkhead.queued == 0
    release.set()
    await first
    assert ran == []
    assert bulkhead.active == 0
    bulkhead.shutdown()


async def test_thread_errors_propagate_and_free_the_slot() -> None:
    bulkhead = Bulkhead("pool", max_concurrent=1, max_queue=0)

    def boom() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        await bulkhead.run_in_thread(boom)
    assert bulkhead.active == 0
    assert await bulkhead.run_in_thread(str.upper, "ok") == "OK"
    bulkhead.shutdown()


def test_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError, match="max_concurrent"):
        Bulkhead("x", max_concurrent=0, max_queue=1)
    with pytest.raises(ValueError, match="max_queue"):
        Bulkhead("x", max_concurrent=1, max_queue=-1)


def test_shared_bulkhead_is_one_per_name_with_the_first_limits() -> None:
    first = shared_bulkhead("test-shared", max_concurrent=1, max_queue=2)
    again = shared_bulkhead("test-shared", max_concurrent=4, max_queue=8)
    assert again is first
    assert (again.max_concurrent, again.max_queue) == (1, 2)
    assert shared_bulkhead("test-shared-other", 1, 2) is not first
