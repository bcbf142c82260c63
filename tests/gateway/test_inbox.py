"""The call WebSockets' reader (gateway/transports/inbox.py): why it stops, and that a
message costs no task of its own (a node reads 50 a second from each of hundreds of
phone streams: benchmarks/idle_streams.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

import pytest

from gateway.transports.inbox import Inbox


class FakeSocket:
    """A fake WebSocket: ``receive()`` hands out what the test queued, as uvicorn does."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def text(self, text: str) -> None:
        self.queue.put_nowait({"type": "websocket.receive", "text": text})

    def disconnect(self, code: int) -> None:
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code})

    async def receive(self) -> dict[str, Any]:
        return await self.queue.get()


async def read_all(inbox: Inbox) -> list[str]:
    return [str(message["text"]) async for message in inbox]


async def test_messages_then_the_client_disconnects() -> None:
    ws = FakeSocket()
    for i in range(3):
        ws.text(str(i))
    ws.disconnect(1000)
    async with Inbox(ws, 30.0) as inbox:  # type: ignore[arg-type]
        assert await read_all(inbox) == ["0", "1", "2"]
    assert inbox.why == "disconnected" and inbox.close_code == 1000


async def test_a_stop_ends_the_wait_for_the_next_message() -> None:
    ws, stop = FakeSocket(), asyncio.Event()
    ws.text("hello")
    async with Inbox(ws, 30.0, asyncio.Event(), stop) as inbox:  # type: ignore[arg-type]
        reader = asyncio.create_task(read_all(inbox))
        await asyncio.sleep(0.05)
        assert not reader.done()
        stop.set()
        assert await asyncio.wait_for(reader, 10) == ["hello"]
    assert inbox.why == "stopped"


async def test_a_stop_set_between_messages_ends_before_the_next() -> None:
    ws, stop = FakeSocket(), asyncio.Event()
    ws.text("a")
    ws.text("b")
    async with Inbox(ws, 30.0, stop) as inbox:  # type: ignore[arg-type]
        got = [str((await anext(inbox))["text"])]
        stop.set()
        await asyncio.sleep(0.01)  # the stop's waiter runs
        got += await read_all(inbox)
    assert got == ["a"] and inbox.why == "stopped"


async def test_a_silent_client_goes_idle() -> None:
    async with Inbox(FakeSocket(), 0.05) as inbox:  # type: ignore[arg-type]
        assert await asyncio.wait_for(read_all(inbox), 10) == []
    assert inbox.why == "idle"


async def test_messages_keep_the_client_from_going_idle() -> None:
    ws = FakeSocket()

    async def talk() -> None:
        for i in range(30):
            ws.text(str(i))
            await asyncio.sleep(0.05)
        ws.disconnect(1000)

    talker = asyncio.create_task(talk())
    async with Inbox(ws, 1.0) as inbox:  # type: ignore[arg-type]
        got = await read_all(inbox)
    await talker
    assert len(got) == 30 and inbox.why == "disconnected"


async def test_cancelling_the_reader_from_outside_still_cancels_it() -> None:
    async with Inbox(FakeSocket(), 30.0, asyncio.Event()) as inbox:  # type: ignore[arg-type]
        reader = asyncio.create_task(read_all(inbox))
        await asyncio.sleep(0.02)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader


async def test_a_message_costs_no_task() -> None:
    loop = asyncio.get_running_loop()
    created = 0

    def counting(loop: asyncio.AbstractEventLoop,
                 coro: Generator[Any, None, Any] | Coroutine[Any, Any, Any],
                 **kwargs: Any) -> asyncio.Task[Any]:
        nonlocal created
        created += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    ws = FakeSocket()
    for i in range(500):
        ws.text(str(i))
    ws.disconnect(1000)
    loop.set_task_factory(counting)
    try:
        async with Inbox(ws, 30.0, asyncio.Event(), asyncio.Event()) as inbox:  # type: ignore[arg-type]
            assert len(await read_all(inbox)) == 500
    finally:
        loop.set_task_factory(None)
    assert created <= 2, f"{created} tasks for 500 messages"  # the two stop waiters
