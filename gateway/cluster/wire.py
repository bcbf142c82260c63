"""What gateway nodes say to each other on the live bus (NATS core subjects, JSON bodies).

    voxgate.events   {"v": 1, "node": ID, "events": [{seq, ts, session_id, type, data}, ...]}
                     a batch of one node's bus events, oldest first, already redacted
    voxgate.nodes    {"v": 1, "node": ID, "live": [SESSION, ...], "every_s": 2.0}
                     a node's heartbeat: the calls it holds now, and how often it beats

A message that does not parse is refused whole with ``WireError`` (the receiver logs it
and drops it; it never reaches a view).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from orchestration.log.events import Event

VERSION = 1
EVENTS = "voxgate.events"
NODES = "voxgate.nodes"


class WireError(ValueError):
    """A live-bus message that is not one of ours."""


def _object(raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError("not a JSON object")
    if obj.get("v") != VERSION:
        raise WireError(f"unknown version {obj.get('v')!r} (this node speaks {VERSION})")
    node = obj.get("node")
    if not isinstance(node, str) or not node:
        raise WireError("'node' must be a non-empty string")
    return obj


def _event(node: str, raw: Any) -> Event:
    if not isinstance(raw, dict):
        raise WireError("an event must be an object")
    seq, ts, session, type_, data = (raw.get(k) for k in
                                     ("seq", "ts", "session_id", "type", "data"))
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise WireError("event 'seq' must be an integer")
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        raise WireError("event 'ts' must be a number")
    if not isinstance(session, str) or not isinstance(type_, str) or not type_:
        raise WireError("event 'session_id' and 'type' must be strings")
    if not isinstance(data, dict):
        raise WireError("event 'data' must be an object")
    return Event(seq, float(ts), session, type_, MappingProxyType(data), node=node)


@dataclass(frozen=True, slots=True)
class Batch:
    node: str
    events: tuple[Event, ...]

    @classmethod
    def parse(cls, raw: bytes) -> Batch:
        obj = _object(raw)
        events = obj.get("events")
        if not isinstance(events, list):
            raise WireError("'events' must be a list")
        node: str = obj["node"]
        return cls(node, tuple(_event(node, e) for e in events))

    @staticmethod
    def encode(node: str, events: Sequence[Event]) -> bytes:
        body = {"v": VERSION, "node": node, "events": [
            {"seq": e.seq, "ts": e.ts, "session_id": e.session_id, "type": e.type,
             "data": dict(e.data)} for e in events]}
        return json.dumps(body, separators=(",", ":"), default=str).encode()


@dataclass(frozen=True, slots=True)
class Beat:
    node: str
    live: frozenset[str]
    every_s: float

    @classmethod
    def parse(cls, raw: bytes) -> Beat:
        obj = _object(raw)
        live, every = obj.get("live"), obj.get("every_s")
        if not isinstance(live, list) or not all(isinstance(s, str) for s in live):
            raise WireError("'live' must be a list of session ids")
        if not isinstance(every, int | float) or isinstance(every, bool) or every <= 0:
            raise WireError("'every_s' must be a positive number")
        return cls(obj["node"], frozenset(live), float(every))

    def encode(self) -> bytes:
        body: Mapping[str, Any] = {"v": VERSION, "node": self.node, "live": sorted(self.live),
                                   "every_s": self.every_s}
        return json.dumps(body, separators=(",", ":")).encode()
