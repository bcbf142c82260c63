"""Live agent state for viewers: ``WS /ws/state`` and ``/api/sessions`` (docs/dashboard.md).

    WS  /ws/state[?session=ID]          a snapshot, then every call event as it happens,
                                        and workflow-run events as they reach the log
    GET /api/sessions[?limit=&status=]  sessions, live first, then newest first
    GET /api/sessions/{id}              one session's summary (its derived view)
    GET /api/sessions/{id}/events       its events in order (?after=SEQ&limit=N)
    GET /api/flows[/{name}]             the voice agents' dialogue flows as graphs

Live sessions come from the bus (``SessionTracker``), finished ones from the event log
(``SessionLog``). The app mounts this router behind the admin check (``gateway.auth``):
the bearer header, or for ``/ws/state`` a ticket or the ``bearer.<token>`` subprotocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, WebSocket
from starlette.websockets import WebSocketDisconnect

from gateway.api.flows import flows_router
from gateway.api.sessions import EventDict, SessionLog, SessionTracker, Summary
from gateway.auth import ws_subprotocol
from orchestration.log.backends import database_url as env_database_url
from orchestration.log.events import EventBus
from orchestration.log.store import encode
from orchestration.log.views import TERMINAL

log = logging.getLogger(__name__)

QUEUE_LIMIT = 5000  # messages a slow viewer may lag behind before it is resynchronised


async def viewer() -> None:
    """A hook for checks of this router's own; who may watch at all is the admin check the
    app mounts the router behind (``gateway/app.py``)."""


class _Viewer:
    """One ``/ws/state`` connection's outgoing queue, fed from the bus's threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop, session: str | None) -> None:
        self.loop = loop
        self.session = session
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.overflowed = False
        self.skip: dict[str, int] = {}  # session -> last seq already in the snapshot

    def on_event(self, event: EventDict) -> None:
        if self.session is None or event["session_id"] == self.session:
            self.loop.call_soon_threadsafe(self._offer, {"type": "event", "event": event})

    def on_run(self, message: dict[str, Any]) -> None:
        if self.session is None or self.session in (message["run"]["id"], message.get("call")):
            self._offer(message)

    def _offer(self, message: dict[str, Any]) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.overflowed = True  # the sender drops the queue and sends a fresh snapshot
            return
        self.queue.put_nowait(message)


class RunTail:
    """Workflow runs are written to the log by the engine, not put on the bus: poll the log
    for new ``wf:*`` events while someone watches, and hand them to the viewers."""

    def __init__(self, sessions: SessionLog, poll_s: float) -> None:
        self.sessions = sessions
        self.poll_s = poll_s
        self.viewers: set[_Viewer] = set()
        self.after = 0

    def runs(self) -> list[dict[str, Any]]:
        views = self.sessions.store.views("wf:")
        briefs = sorted((_brief(v) for v in views.values()), key=lambda r: -r["updated_ts"])
        active = [r for r in briefs if r["status"] not in TERMINAL]
        done = [r for r in briefs if r["status"] in TERMINAL][:20]
        return active + done

    def poll(self) -> list[dict[str, Any]]:
        store = self.sessions.store
        messages: list[dict[str, Any]] = []
        for event in store.read(self.after, None, 2000):
            self.after = event.seq
            if not event.stream.startswith("wf:"):
                continue
            view = store.view(event.stream)
            if view is None:
                continue
            brief = _brief(view)
            messages.append({"type": "run", "run": brief, "call": brief["session"],
                             "event": event.to_dict()})
        return messages

    async def run(self) -> None:
        self.after = await asyncio.to_thread(self.sessions.store.last_seq)
        while True:
            await asyncio.sleep(self.poll_s)
            if not self.viewers:
                self.after = await asyncio.to_thread(self.sessions.store.last_seq)
                continue
            try:
                messages = await asyncio.to_thread(self.poll)
            except Exception:
                log.exception("state: reading workflow runs from the log failed")
                continue
            for message in messages:
                for v in list(self.viewers):
                    v.on_run(message)


def _brief(view: dict[str, Any]) -> dict[str, Any]:
    inp = view.get("ctx", {}).get("input", {})
    session = inp.get("session_id") if isinstance(inp, dict) else None
    return {"id": view["id"], "name": view.get("name"), "status": view.get("status"),
            "state": view.get("state"), "updated_ts": view.get("updated_ts", 0.0),
            "session": session if isinstance(session, str) else None}


def state_router(
    bus: EventBus, data_dir: Path, *, poll_s: float = 0.25, database_url: str | None = None,
) -> APIRouter:
    tracker = SessionTracker(bus)
    holder: dict[str, Any] = {}  # the event log's sessions and run tail, once open
    lifespan = _lifespan(tracker, holder, data_dir, database_url, poll_s)
    router = APIRouter(tags=["state"], lifespan=lifespan, dependencies=[Depends(viewer)])
    router.include_router(flows_router())  # the diagrams of the calls' dialogue flows

    def session_log() -> SessionLog:
        found: SessionLog | None = holder.get("log")
        if found is None:
            raise HTTPException(503, "the event log is not open yet")
        return found

    _session_routes(router, tracker, session_log)

    @router.websocket("/ws/state")
    async def ws_state(ws: WebSocket) -> None:
        # the router's dependencies have checked the viewer; a browser that offered
        # voxgate.v1 (with its bearer subprotocol) needs it selected
        await ws.accept(subprotocol=ws_subprotocol(ws))
        session = ws.query_params.get("session") or None
        v = _Viewer(asyncio.get_running_loop(), session)
        tail: RunTail | None = holder.get("tail")
        if tail is not None:
            tail.viewers.add(v)
        try:
            await _stream(ws, v, tracker, tail)
        finally:
            if tail is not None:
                tail.viewers.discard(v)

    return router


def _lifespan(tracker: SessionTracker, holder: dict[str, Any], data_dir: Path,
              database_url: str | None, poll_s: float,
              ) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Open the event log's sessions and tail its workflow runs while the app runs."""
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        where = database_url or env_database_url() or Path(data_dir) / "events.db"
        sessions = await asyncio.to_thread(SessionLog, where)
        tail = RunTail(sessions, poll_s)
        holder["log"], holder["tail"] = sessions, tail
        task = asyncio.create_task(tail.run(), name="state-run-tail")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            tracker.close()
            sessions.close()

    return lifespan


def _session_routes(router: APIRouter, tracker: SessionTracker,
                    session_log: Callable[[], SessionLog]) -> None:
    @router.get("/api/sessions")
    async def list_sessions(
        limit: int = Query(100, ge=1, le=1000),
        status: Literal["live", "ended"] | None = None,
    ) -> list[Summary]:
        live = tracker.summaries()
        logged = await asyncio.to_thread(session_log().summaries, limit)
        seen = {s["id"] for s in live}
        every = live + [s for s in logged if s["id"] not in seen]
        every.sort(key=lambda s: (not s["live"], -s["started_at"]))
        if status is not None:
            every = [s for s in every if s["live"] == (status == "live")]
        return every[:limit]

    @router.get("/api/sessions/{session_id}")
    async def get_session(session_id: str) -> Summary:
        found = tracker.summary(session_id)
        if found is None:
            found = await asyncio.to_thread(session_log().summary, session_id)
        if found is None:
            raise HTTPException(404, f"unknown session {session_id!r}")
        return found

    @router.get("/api/sessions/{session_id}/events")
    async def session_events(
        session_id: str,
        after: int = Query(0, ge=0),
        limit: int = Query(10_000, ge=1, le=100_000),
    ) -> list[EventDict]:
        memory = tracker.events(session_id) or []
        logged = await asyncio.to_thread(session_log().events, session_id)
        if not memory and not logged:
            raise HTTPException(404, f"unknown session {session_id!r}")
        # the log lags the bus by a batch, and memory keeps only the last events: join both
        by_seq = {e["seq"]: e for e in memory}
        by_seq.update({e["seq"]: e for e in logged})
        return [by_seq[k] for k in sorted(by_seq) if k > after][:limit]


async def _stream(ws: WebSocket, v: _Viewer, tracker: SessionTracker,
                  tail: RunTail | None) -> None:
    """A snapshot, then every event until the viewer goes; pings answered, a viewer that
    fell behind resynced with a fresh snapshot."""
    unsubscribe: Callable[[], None] = _nothing
    receiver = asyncio.ensure_future(ws.receive())
    try:
        unsubscribe = await _resync(ws, v, tracker, tail)
        while True:
            getter = asyncio.ensure_future(v.queue.get())
            done, _ = await asyncio.wait({getter, receiver}, return_when="FIRST_COMPLETED")
            if receiver in done:
                getter.cancel()
                message = receiver.result()
                if message["type"] == "websocket.disconnect":
                    return
                if _is_ping(message.get("text")):
                    await ws.send_text('{"type":"pong"}')
                receiver = asyncio.ensure_future(ws.receive())
                continue
            item = getter.result()
            if v.overflowed:
                unsubscribe()
                unsubscribe = await _resync(ws, v, tracker, tail)
                continue
            if item["type"] == "event":
                event = item["event"]
                if event["seq"] <= v.skip.get(event["session_id"], 0):
                    continue  # already in the snapshot
            await ws.send_text(encode(item))
    except (WebSocketDisconnect, RuntimeError):
        return  # the viewer went away mid-send
    finally:
        unsubscribe()
        receiver.cancel()


def _nothing() -> None:
    pass


async def _resync(
    ws: WebSocket, v: _Viewer, tracker: SessionTracker, tail: RunTail | None
) -> Callable[[], None]:
    """(Re)start a viewer: subscribe, then send the snapshot that subscription starts from."""
    v.queue = asyncio.Queue()
    v.overflowed = False
    snapshot, unsubscribe = tracker.subscribe(v.on_event)
    runs = await asyncio.to_thread(tail.runs) if tail is not None else []
    if v.session is not None:
        snapshot["sessions"] = [s for s in snapshot["sessions"] if s["id"] == v.session]
        snapshot["ended"] = [s for s in snapshot["ended"] if s["id"] == v.session]
        runs = [r for r in runs if v.session in (r["id"], r["session"])]
    v.skip = {s["id"]: s["last_seq"] for s in snapshot["sessions"]}
    await ws.send_text(encode({"type": "snapshot", **snapshot, "runs": runs}))
    return unsubscribe


def _is_ping(text: str | None) -> bool:
    if not text:
        return False
    try:
        message = json.loads(text)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("type") == "ping"
