"""Reading one call's WebSocket until it disconnects, goes idle, or the call ends."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal

from starlette.websockets import WebSocket

Why = Literal["disconnected", "idle", "stopped"]
# RFC 6455 7.1.5: no close frame with a status arrived. uvicorn reports a TCP connection
# lost after the handshake as 1005 (its websockets-sansio protocol) or 1006 (the others).
NO_CLOSE_STATUS = (1005, 1006)


VANISHED = "caller vanished (connection lost, no close frame)"


def disconnect_reason(code: int | None) -> str:
    """Why a call ended when its client's connection did, for ``session.ended``."""
    if code is None or code in NO_CLOSE_STATUS:
        return VANISHED
    return f"client closed the connection (close code {code})"


class Inbox:
    """``async with Inbox(...) as inbox: async for message in inbox`` yields ASGI receive
    messages (with ``text`` or ``bytes``). When the loop ends, ``why`` says whether the
    client disconnected, sent nothing for ``idle_timeout_s``, or one of the ``stops``
    events was set (the agent hung up, the call was transferred).

    A phone stream brings 50 messages a second and a node holds hundreds of streams, so
    a message costs one plain ``await ws.receive()``: no task, no ``asyncio.wait`` and no
    timer of its own (benchmarks/idle_streams.py). A stop or the idle timer cancels the
    reader's wait instead, as ``asyncio.timeout`` does, and one timer per idle period
    checks the time of the last message."""

    def __init__(self, ws: WebSocket, idle_timeout_s: float, *stops: asyncio.Event) -> None:
        self._ws = ws
        self._idle_timeout_s = idle_timeout_s
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._stops = [asyncio.ensure_future(stop.wait()) for stop in stops]
        for fut in self._stops:
            fut.add_done_callback(self._on_stop)
        self._timer: asyncio.TimerHandle | None = self._loop.call_at(
            self._last + idle_timeout_s, self._check_idle)
        self._ending: Why | None = None  # set by a stop or the idle timer
        self._reader: asyncio.Task[Any] | None = None  # waiting in receive()
        self._cancelled = False  # we cancelled the reader's wait
        self.why: Why = "disconnected"
        self.close_code: int | None = None  # the client's, when why is "disconnected"

    def __aiter__(self) -> Inbox:
        return self

    async def __anext__(self) -> Mapping[str, Any]:
        if self._ending is not None:
            self.why = self._ending
            raise StopAsyncIteration
        task = asyncio.current_task()
        self._reader = task
        try:
            message: Mapping[str, Any] = await self._ws.receive()
        except asyncio.CancelledError:
            if not self._cancelled or task is None:
                raise
            self._cancelled = False
            if task.uncancel() > 0:  # cancelled by someone else as well
                raise
            assert self._ending is not None
            self.why = self._ending
            raise StopAsyncIteration from None
        finally:
            self._reader = None
        self._last = self._loop.time()
        if message["type"] == "websocket.disconnect":
            self.why = "disconnected"
            self.close_code = message.get("code")
            raise StopAsyncIteration
        return message

    def _end(self, why: Why) -> None:
        if self._ending is not None:
            return
        self._ending = why
        if self._reader is not None and not self._cancelled:
            self._cancelled = True
            self._reader.cancel()

    def _on_stop(self, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled():
            self._end("stopped")

    def _check_idle(self) -> None:
        due = self._last + self._idle_timeout_s
        if self._loop.time() >= due:
            self._timer = None
            self._end("idle")
        else:  # a message came since the timer was set: wait from that one
            self._timer = self._loop.call_at(due, self._check_idle)

    async def __aenter__(self) -> Inbox:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for fut in self._stops:
            fut.remove_done_callback(self._on_stop)
            fut.cancel()
