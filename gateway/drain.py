"""``voxgate serve``'s uvicorn server, with a drain on SIGTERM.

uvicorn 0.54 treats SIGTERM like SIGINT: ``handle_exit`` sets ``should_exit``, the main
loop stops at its next 0.1 s tick, ``shutdown`` closes the listening sockets, sends every
WebSocket close 1012 and waits for the connections; once ``serve`` returns it restores the
old handlers and raises the captured signal again, so the process dies *by* SIGTERM
(status -15). A phone call would be cut mid-word and a load balancer would see refused
connections rather than a failing health check.

Here SIGTERM starts ``Runtime.drain`` instead: the sockets stay open so ``/healthz``
can answer 503 "draining", new calls are refused (WebSocket close 1012, busy TwiML), live
calls hear a goodbye and hang up; when the drain is over (``drain_timeout_s`` at most)
uvicorn's own shutdown runs and the process exits 0. SIGINT (Ctrl+C) keeps uvicorn's
behaviour: stop now.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType

import uvicorn

from gateway.runtime import Runtime

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.drain_requested = False
        self._drain: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self.should_exit:
            super().handle_exit(sig, frame)
            return
        # A signal handler runs between two bytecodes of whatever the loop was doing: only
        # set a flag here; on_tick (every 0.1 s) starts the drain. The signal is not
        # recorded, so uvicorn does not re-raise it after a clean exit.
        self.drain_requested = True

    async def on_tick(self, counter: int) -> bool:
        if self.drain_requested and self._drain is None:
            self._drain = asyncio.create_task(self.runtime.drain(), name="drain")
        if self._drain is not None and self._drain.done():
            if not self._drain.cancelled() and self._drain.exception() is not None:
                log.error("drain failed: %r", self._drain.exception())
            self.should_exit = True
        return await super().on_tick(counter)
