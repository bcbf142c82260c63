"""Call sessions as the dashboard and ``/api/sessions`` see them.

A session's summary is folded from its events by ``fold`` -- for a live call as its events
come off the bus (``SessionTracker``), for a finished one from its ``call:<id>`` stream in
the event log (``SessionLog``) -- so both give the same answer. The dashboard's reducer
(``web/static/dashboard/reducer.js``) folds the same events into the same fields;
``tests/web/test_reducer_parity.py`` checks the two agree.

Events are handled as plain dicts ``{seq, ts, session_id, type, data}`` (the bus's
``Event.to_dict()``); from the log, ``seq`` is the bus's ``seq`` (kept there as
``data.bus_seq``) and ``log_seq`` the log's.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from orchestration.log.backends import open_store
from orchestration.log.events import Event, EventBus
from orchestration.log.store import StoredEvent
from orchestration.log.views import project

EventDict = dict[str, Any]
Summary = dict[str, Any]
Listener = Callable[[EventDict], None]

# the agent a session starts with when no event names it (the built-in agent names none)
DEFAULT_AGENT = "agent"
ESCALATIONS = frozenset({"call.escalated", "call.transfer"})
TOOL_CALLS = frozenset({"tool.called"})


def is_denial(type: str, data: dict[str, Any]) -> bool:
    """Policy denials: any ``*.denied``; a tool refused for a permission the agent lacks
    (``tool.failed`` / ``tool.gave_up`` with a ``PermissionDenied`` error); a secret the
    memory router would not store (``memory.refused``)."""
    if type.endswith(".denied") or type == "memory.refused":
        return True
    error = data.get("error")
    return type in ("tool.failed", "tool.gave_up") and str(error).startswith("PermissionDenied")


def new_summary(session_id: str, ts: float) -> Summary:
    return {
        "id": session_id,
        "protocol": None,
        "call_sid": None,
        "caller": None,
        "started_at": ts,
        "ended_at": None,
        "end_reason": None,
        "state": "idle",
        "agent": DEFAULT_AGENT,
        "agents": [DEFAULT_AGENT],
        "supervisor": DEFAULT_AGENT,
        "workflow": None,
        "turns": 0,
        "barge_ins": 0,
        "escalations": 0,
        "denials": 0,
        "tool_calls": 0,
        "latency": None,
        "events": 0,
        "last_seq": 0,
        "updated_at": ts,
        "live": True,
    }


def _agent_named(data: dict[str, Any]) -> str | None:
    for key in ("to", "agent", "target"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def fold(summary: Summary | None, event: EventDict) -> Summary:
    """Fold one event into its session's summary (in place; returns it)."""
    s = summary if summary is not None else new_summary(event["session_id"], event["ts"])
    t: str = event["type"]
    d: dict[str, Any] = event.get("data") or {}
    if t == "session.started":
        s["protocol"] = d.get("protocol")
        s["call_sid"] = d.get("call_sid")
        s["caller"] = d.get("caller")
        s["started_at"] = event["ts"]
        if isinstance(d.get("agent"), str):
            s["agent"] = s["supervisor"] = d["agent"]
            s["agents"] = [d["agent"]]
    elif t == "agent.state":
        s["state"] = d.get("state", s["state"])
    elif t == "stt.final":
        s["turns"] += 1
    elif t == "agent.handoff":
        source = d.get("from")
        if isinstance(source, str) and source and s["agents"] == [DEFAULT_AGENT]:
            s["agent"] = s["supervisor"] = source  # the first handoff names the supervisor
            s["agents"] = [source]
        target = _agent_named(d)
        if target is not None:
            s["agent"] = target
            if target not in s["agents"]:
                s["agents"].append(target)
    elif t in ESCALATIONS:
        s["escalations"] += 1
    elif t == "tts.interrupted":
        s["barge_ins"] += 1
    elif t in TOOL_CALLS:
        s["tool_calls"] += 1
    elif is_denial(t, d):
        s["denials"] += 1
    elif t in ("workflow.transition", "workflow.started"):
        # a transition names its workflow, a run's start its definition as `name`; a call's
        # runs also name their agent
        name = (d.get("workflow") or d.get("name") or d.get("agent")
                or (s["workflow"] or {}).get("name"))
        state = d.get("to") or (s["workflow"] or {}).get("state")
        s["workflow"] = {"name": name, "state": state}
    elif t == "turn.latency":
        s["latency"] = {k: d.get(k) for k in ("total_ms", "stt_ms", "tts_ms")}
    elif t == "session.ended":
        s["ended_at"] = event["ts"]
        s["end_reason"] = d.get("reason")
        s["state"] = "ended"
        s["live"] = False
    s["events"] += 1
    s["last_seq"] = max(s["last_seq"], int(event.get("seq") or 0))
    s["updated_at"] = event["ts"]
    return s


def fold_all(events: Iterable[EventDict]) -> Summary | None:
    summary: Summary | None = None
    for event in events:
        summary = fold(summary, event)
    return summary


def from_stored(event: StoredEvent) -> EventDict:
    """A ``call:<id>`` log event in the bus's shape (``seq`` = the bus's seq)."""
    data = dict(event.data)
    bus_seq = data.pop("bus_seq", None)
    return {
        "seq": bus_seq if isinstance(bus_seq, int) else event.seq,
        "ts": event.ts,
        "session_id": event.stream.removeprefix("call:"),
        "type": event.type,
        "data": data,
        "log_seq": event.seq,
    }


class _Tracked:
    __slots__ = ("events", "summary")

    def __init__(self, summary: Summary, keep: int) -> None:
        self.summary = summary
        self.events: deque[EventDict] = deque(maxlen=keep)


class SessionTracker:
    """Every session seen on the bus since start-up: live ones, and the last ended ones.

    Bus handlers run on the emitting thread, so everything here is under one lock; a
    listener is called under it too, which keeps its events in fold order and lets
    ``subscribe`` hand out a snapshot with no gap and no overlap with what follows.
    Listeners must be quick and must not block (they hand the event to an event loop).
    """

    def __init__(
        self, bus: EventBus, keep_ended: int = 200, keep_events: int = 5000, recent: int = 200
    ) -> None:
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, _Tracked] = OrderedDict()
        self._ended: deque[str] = deque()
        self._listeners: list[Listener] = []
        self._keep_ended = keep_ended
        self._keep_events = keep_events
        self._recent = recent
        # remote: the live bus also brings the calls of the other nodes (gateway/cluster)
        self.close = bus.subscribe(self._on_event, remote=True)

    def _on_event(self, event: Event) -> None:
        item = event.to_dict()
        with self._lock:
            tracked = self._sessions.get(event.session_id)
            # a call ends once in the list of ended ones, though its end may come twice: a
            # remote call ended as lost, then its own end once the live bus is back
            ends = event.type == "session.ended" and (tracked is None or tracked.summary["live"])
            if tracked is None:
                tracked = _Tracked(fold(None, item), self._keep_events)
                self._sessions[event.session_id] = tracked
            else:
                fold(tracked.summary, item)
            tracked.events.append(item)
            if ends:
                self._ended.append(event.session_id)
                while len(self._ended) > self._keep_ended:
                    self._sessions.pop(self._ended.popleft(), None)
            for listener in self._listeners:
                listener(item)

    def subscribe(self, listener: Listener) -> tuple[dict[str, Any], Callable[[], None]]:
        """Register ``listener`` and return (the snapshot it starts from, unsubscribe)."""
        with self._lock:
            self._listeners.append(listener)
            snapshot = self._snapshot_locked()

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return snapshot, unsubscribe

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._snapshot_locked()

    def _snapshot_locked(self) -> dict[str, Any]:
        live = [
            {**_copy(t.summary), "recent": list(t.events)[-self._recent :]}
            for t in self._sessions.values()
            if t.summary["live"]
        ]
        ended = [_copy(self._sessions[i].summary) for i in list(self._ended)[-20:]]
        return {"sessions": live, "ended": ended[::-1]}

    def summaries(self) -> list[Summary]:
        with self._lock:
            return [_copy(t.summary) for t in self._sessions.values()]

    def summary(self, session_id: str) -> Summary | None:
        with self._lock:
            tracked = self._sessions.get(session_id)
            return None if tracked is None else _copy(tracked.summary)

    def events(self, session_id: str) -> list[EventDict] | None:
        with self._lock:
            tracked = self._sessions.get(session_id)
            return None if tracked is None else list(tracked.events)


def _copy(summary: Summary) -> Summary:
    copied = dict(summary)
    copied["agents"] = list(summary["agents"])
    for key in ("workflow", "latency"):
        if summary[key] is not None:
            copied[key] = dict(summary[key])
    return copied


class SessionLog:
    """Finished sessions, read from the event log (a reader beside the log's writer).

    A finished session's summary never changes, so it is folded once and cached by the
    stream's version.
    """

    def __init__(self, location: str | Path) -> None:
        # a SQLite file (WAL mode lets this connection read while the bus writer appends)
        # or a postgresql:// URL
        self.store = open_store(location, project, check=False)
        self._cache: dict[str, tuple[int, Summary]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.store.close()

    def events(
        self, session_id: str, after: int = 0, limit: int | None = None
    ) -> list[EventDict]:
        return [
            from_stored(e) for e in self.store.read(after, f"call:{session_id}", limit)
        ]

    def summaries(self, limit: int) -> list[Summary]:
        """The ``limit`` most recently started sessions in the log, newest first."""
        views = self.store.views("call:")
        newest = sorted(views.items(), key=lambda kv: -float(kv[1].get("started_ts", 0)))
        out: list[Summary] = []
        for stream, view in newest[:limit]:
            summary = self.summary(stream.removeprefix("call:"), int(view.get("events", 0)))
            if summary is not None:
                out.append(summary)
        return out

    def summary(self, session_id: str, version: int | None = None) -> Summary | None:
        stream = f"call:{session_id}"
        if version is None:
            version = self.store.version(stream)
        if version == 0:
            return None
        with self._lock:
            cached = self._cache.get(stream)
        if cached is not None and cached[0] == version:
            return _copy(cached[1])
        summary = fold_all(self.events(session_id))
        if summary is None:
            return None
        if summary["ended_at"] is None:
            summary["live"] = False  # in the log, not on this process's bus: not ours to call live
            summary["state"] = "unknown"
        with self._lock:
            self._cache[stream] = (version, summary)
        return _copy(summary)
