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
    events was set (the agent hung up, the call was transferred)."""

    def __init__(self, ws: WebSocket, idle_timeout_s: float, *stops: asyncio.Event) -> None:
        self._ws = ws
        self._idle_timeout_s = idle_timeout_s
        self._stops = [asyncio.ensure_future(stop.wait()) for stop in stops]
        self._receive: asyncio.Future[Any] | None = None
        self.why: Why = "disconnected"
        self.close_code: int | None = None  # the client's, when why is "disconnected"

    def __aiter__(self) -> Inbox:
        return self

    async def __anext__(self) -> Mapping[str, Any]:
        if self._receive is None:
            self._receive = asyncio.ensure_future(self._ws.receive())
        done, _ = await asyncio.wait(
            {self._receive, *self._stops},
            timeout=self._idle_timeout_s,
            return_when="FIRST_COMPLETED",
        )
        if not done:
            self.why = "idle"
            raise StopAsyncIteration
        if self._receive not in done:
            self.why = "stopped"
            raise StopAsyncIteration
        message: Mapping[str, Any] = self._receive.result()
        self._receive = None
        if message["type"] == "websocket.disconnect":
            self.why = "disconnected"
            self.close_code = message.get("code")
            raise StopAsyncIteration
        return message

    async def __aenter__(self) -> Inbox:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for fut in (self._receive, *self._stops):
            if fut is not None:
                fut.cancel()
