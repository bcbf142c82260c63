"""The bridge between this node's event bus and the live bus (NATS) every node shares.

Out: every event emitted on this node's bus (already masked by the bus's redactor) goes
into a bounded queue -- the emitting thread only appends to it, whatever the bus is
doing; when full the oldest event is dropped and counted -- and a thread of its own
publishes the queue in batches. In: other nodes' batches are ``relay``-ed into this
node's bus, where only the live views (``SessionTracker``) see them: never this node's
log writer, metrics, or this bridge's own publisher, so nothing is logged twice and
nothing goes round in a loop (the server is also told not to echo our own messages).

Down: a server that is not running, or that dies, puts the bridge in ``down`` with one
warning line; the remote calls leave the views (ended as lost), calls go on untouched,
and the bridge reconnects with exponential backoff (and jitter) until the server is back,
then logs one line more.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from gateway.cluster.peers import Peers
from gateway.cluster.wire import EVENTS, NODES, Batch, Beat, WireError
from orchestration.log.events import Event, EventBus

log = logging.getLogger(__name__)

BATCH = 100  # events per published message at most


class Backoff:
    """Exponential waits between attempts: ``first`` doubling up to ``most``, +-20 %."""

    def __init__(self, first: float = 0.25, most: float = 5.0,
                 rng: Callable[[], float] = random.random) -> None:
        self.first, self.most, self._rng = first, most, rng
        self._next = first

    def wait(self) -> float:
        base, self._next = self._next, min(self.most, self._next * 2)
        return base * (0.8 + 0.4 * self._rng())

    def reset(self) -> None:
        self._next = self.first


class ClusterBus:
    def __init__(self, bus: EventBus, url: str, node: str, *, queue_limit: int = 10_000,
                 beat_s: float = 2.0, backoff: Backoff | None = None,
                 connect_timeout_s: float = 2.0) -> None:
        self.bus, self.url, self.node = bus, url, node
        self.queue_limit, self.beat_s = queue_limit, beat_s
        self.backoff = backoff or Backoff()
        self.connect_timeout_s = connect_timeout_s
        self.status = "starting"  # -> connected | down (-> connected ...) -> stopped
        self.counts = {"published": 0, "received": 0, "dropped": 0, "refused": 0,
                       "connects": 0}
        self.peers = Peers()
        # appends and pops of a deque are atomic; at maxlen an append drops the oldest
        self._queue: collections.deque[Event] = collections.deque(maxlen=queue_limit)
        self._own_live: set[str] = set()  # this node's calls, for its heartbeat
        self._lock = threading.Lock()  # the drop count, which two threads add to
        # the emitting thread only sets this (no system call, the GIL not given up); the
        # pump thread passes it on to the bridge's event loop
        self._signal = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._down_since: float | None = None
        self._threads: list[threading.Thread] = []
        self._unsubscribe: Callable[[], None] | None = None

    # --- the emitting side: never blocks, never raises ------------------------------

    def _outgoing(self, event: Event) -> None:
        if len(self._queue) == self.queue_limit:
            self._dropped(1)
        self._queue.append(event)
        if event.type == "session.ended":
            self._own_live.discard(event.session_id)
        else:
            self._own_live.add(event.session_id)
        if not self._signal.is_set():
            self._signal.set()

    def _dropped(self, n: int) -> None:
        with self._lock:
            self.counts["dropped"] += n

    def queued(self) -> int:
        return len(self._queue)

    def _pump(self) -> None:
        """Wake the bridge's loop when events wait (while it is connected to publish)."""
        while not self._stopping:
            self._signal.wait()
            self._signal.clear()
            loop, wake = self._loop, self._wake
            if loop is not None and wake is not None and self.status == "connected":
                with contextlib.suppress(RuntimeError):  # the loop closed: stopping
                    loop.call_soon_threadsafe(wake.set)

    # --- life ----------------------------------------------------------------------

    def start(self) -> None:
        """Attach to the bus and connect in the background (start-up never waits)."""
        self.bus.node = self.node
        self._unsubscribe = self.bus.subscribe(self._outgoing)
        self._threads = [threading.Thread(target=self._main, name="live-bus", daemon=True),
                         threading.Thread(target=self._pump, name="live-bus-pump", daemon=True)]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stopping = True
        self._signal.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)
        for thread in self._threads:
            thread.join(timeout_s)
        self.status = "stopped"

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                nc, lost = await self._connect()
            except Exception as exc:
                self._went_down(f"cannot connect: {_why(exc)}")
            else:
                self._came_up()
                reason = await self._serve(nc, lost)
                with contextlib.suppress(Exception):
                    await nc.close()
                if self._stopping:
                    break
                self._went_down(reason)
            await self._pause(self.backoff.wait())

    async def _pause(self, seconds: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped(), seconds)

    async def _stopped(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            self._wake.clear()
            await self._wake.wait()

    async def _connect(self) -> tuple[Any, asyncio.Event]:
        from nats.aio.client import Client as NATS

        lost = asyncio.Event()

        async def on_lost() -> None:
            lost.set()
            if self._wake is not None:
                self._wake.set()

        async def on_error(exc: Exception) -> None:
            log.debug("live bus: %s", _why(exc))

        nc = NATS()
        # one attempt (the client's own retrying is off: 0 would mean "for ever"), bounded;
        # the bridge's loop decides when to try again
        attempt = nc.connect(
            self.url, name=f"voxgate {self.node}", allow_reconnect=False,
            connect_timeout=max(1, round(self.connect_timeout_s)), max_reconnect_attempts=1,
            reconnect_time_wait=0, no_echo=True, disconnected_cb=on_lost, closed_cb=on_lost,
            error_cb=on_error, ping_interval=5, max_outstanding_pings=2)
        try:
            await asyncio.wait_for(attempt, self.connect_timeout_s + 1.0)
        except BaseException:
            with contextlib.suppress(Exception):
                await nc.close()
            raise
        return nc, lost

    # --- connected ---------------------------------------------------------------------

    async def _serve(self, nc: Any, lost: asyncio.Event) -> str:
        """Publish the queue and beat until the connection is lost (returns why) or the
        bridge stops."""
        await nc.subscribe(EVENTS, cb=self._on_batch)
        await nc.subscribe(NODES, cb=self._on_beat)
        assert self._wake is not None
        next_beat = 0.0
        while not self._stopping:
            if lost.is_set() or not nc.is_connected:
                return "connection lost"
            try:
                await self._publish(nc)
                if time.monotonic() >= next_beat:
                    await self._beat(nc)
                    next_beat = time.monotonic() + self.beat_s
            except Exception as exc:
                return f"publish failed: {_why(exc)}"
            self._wake.clear()  # an emit from now on wakes the loop again
            if self._queue:
                continue  # came in meanwhile
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_beat - time.monotonic()))
        await self._farewell(nc)
        return "stopping"

    async def _farewell(self, nc: Any) -> None:
        """Stopping: what is queued, then a heartbeat listing no call, so the other nodes
        end this node's calls in their views at once rather than after missed beats."""
        with contextlib.suppress(Exception):
            await self._publish(nc)
            await nc.publish(NODES, Beat(self.node, frozenset(), self.beat_s).encode())
            await nc.flush(timeout=1)

    async def _publish(self, nc: Any) -> None:
        while True:
            batch: list[Event] = []
            with contextlib.suppress(IndexError):  # emptied
                while len(batch) < BATCH:
                    batch.append(self._queue.popleft())
            if not batch:
                return
            try:
                await self._send(nc, batch, int(nc.max_payload))
            except Exception:
                self._dropped(len(batch))
                raise

    async def _send(self, nc: Any, batch: list[Event], most: int) -> None:
        """One message, or halves of it while it is over the server's payload limit; a
        single event over the limit is dropped and counted (the connection is fine)."""
        body = Batch.encode(self.node, batch)
        if len(body) > most and len(batch) > 1:
            half = len(batch) // 2
            await self._send(nc, batch[:half], most)
            await self._send(nc, batch[half:], most)
            return
        if len(body) > most:
            self._dropped(1)
            log.debug("live bus: a %s event of %d bytes is over the server's limit (%d)",
                      batch[0].type, len(body), most)
            return
        await nc.publish(EVENTS, body)
        self.counts["published"] += len(batch)

    async def _beat(self, nc: Any) -> None:
        live = frozenset(self._own_live)  # one C-level copy: no emit can interleave
        await nc.publish(NODES, Beat(self.node, live, self.beat_s).encode())
        for end in self.peers.expired():
            self.bus.relay(end)

    async def _on_batch(self, msg: Any) -> None:
        try:
            batch = Batch.parse(msg.data)
        except WireError as exc:
            self.counts["refused"] += 1
            log.warning("live bus: a message on %s refused: %s", EVENTS, exc)
            return
        if batch.node == self.node:
            return  # our own (the server does not echo them; a second node with our id?)
        for event in batch.events:
            self.peers.saw(event)
            self.bus.relay(event)
        self.counts["received"] += len(batch.events)

    async def _on_beat(self, msg: Any) -> None:
        try:
            beat = Beat.parse(msg.data)
        except WireError as exc:
            self.counts["refused"] += 1
            log.warning("live bus: a message on %s refused: %s", NODES, exc)
            return
        if beat.node != self.node:
            for end in self.peers.beat(beat):
                self.bus.relay(end)

    # --- state changes: one log line each way -------------------------------------------

    def _went_down(self, reason: str) -> None:
        for end in self.peers.forget_all("this node lost the live bus"):
            self.bus.relay(end)
        if self.status == "down":
            log.debug("live bus %s still unreachable: %s", self.url, reason)
            return
        self.status = "down"
        self._down_since = time.monotonic()
        log.warning("live bus %s unreachable from node %s (%s): the views show this node's "
                    "calls only; calls are not affected; reconnecting with backoff",
                    self.url, self.node, reason)

    def _came_up(self) -> None:
        self.backoff.reset()
        self.counts["connects"] += 1
        if self.status == "down" and self._down_since is not None:
            log.warning("live bus %s reachable again from node %s after %.1f s (events "
                        "dropped so far: %d)", self.url, self.node,
                        time.monotonic() - self._down_since, self.counts["dropped"])
        else:
            log.info("live bus %s connected as node %s", self.url, self.node)
        self.status = "connected"
        self._down_since = None

    def describe(self) -> dict[str, Any]:
        """For ``GET /api/cluster`` and the metrics."""
        return {"node": self.node, "url": self.url, "status": self.status,
                "queued": self.queued(), **self.counts, "peers": self.peers.describe()}


def _why(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
