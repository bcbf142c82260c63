"""The other nodes on the live bus, as this node has heard them: their live calls, and
when each last spoke.

A view must not show a call as live forever because the node that held it died, or
because this node lost the bus and missed its end. So a remote call is given up -- ended
in the local views with a ``session.ended`` of this node's making (``data.lost``) -- when
its node's heartbeat no longer lists it, when its node has missed ``missed_beats``
heartbeats in a row, or when this node itself loses the bus.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.cluster.wire import Beat
from orchestration.log.events import Event


@dataclass
class Peer:
    node: str
    heard: float  # monotonic
    every_s: float = 2.0
    live: dict[str, int] = field(default_factory=dict)  # session -> the last seq seen


class Peers:
    """Fed on the bridge's thread, read by the HTTP handlers: every method holds the lock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, missed_beats: int = 3,
                 wall: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._wall = wall
        self._missed = missed_beats
        self._peers: dict[str, Peer] = {}
        self._lock = threading.Lock()

    def _peer(self, node: str) -> Peer:
        peer = self._peers.get(node)
        if peer is None:
            peer = self._peers[node] = Peer(node, self._clock())
        peer.heard = self._clock()
        return peer

    def saw(self, event: Event) -> None:
        """A remote node's event: its call is live until its end (or given up)."""
        assert event.node is not None
        with self._lock:
            peer = self._peer(event.node)
            if event.type == "session.ended":
                peer.live.pop(event.session_id, None)
            else:
                peer.live[event.session_id] = max(event.seq, peer.live.get(event.session_id, 0))

    def beat(self, beat: Beat) -> list[Event]:
        """A heartbeat: the ends to give the calls it no longer lists."""
        with self._lock:
            peer = self._peer(beat.node)
            peer.every_s = beat.every_s
            gone = [s for s in peer.live if s not in beat.live]
            return [self._lost(peer, s, f"node {peer.node} no longer holds the call")
                    for s in gone]

    def expired(self) -> list[Event]:
        """Ends for the calls of every node that has missed its heartbeats; forgets it."""
        now = self._clock()
        ends: list[Event] = []
        with self._lock:
            late = [p for p in self._peers.values() if now - p.heard > self._missed * p.every_s]
            for peer in late:
                del self._peers[peer.node]
                ends += [self._lost(peer, s, f"node {peer.node} went silent on the live bus")
                         for s in list(peer.live)]
        return ends

    def forget_all(self, why: str) -> list[Event]:
        """This node lost the bus: every remote call is ended in the local views."""
        with self._lock:
            ends = [self._lost(p, s, why) for p in list(self._peers.values())
                    for s in list(p.live)]
            self._peers.clear()
        return ends

    def _lost(self, peer: Peer, session: str, why: str) -> Event:
        seq = peer.live.pop(session, 0) + 1
        data: dict[str, Any] = {"reason": why, "lost": True}
        return Event(seq, self._wall(), session, "session.ended", MappingProxyType(data),
                     node=peer.node)

    def describe(self) -> list[dict[str, Any]]:
        now = self._clock()
        with self._lock:
            return [{"node": p.node, "heard_s_ago": round(now - p.heard, 2), "every_s": p.every_s,
                     "live_calls": sorted(p.live)} for p in self._peers.values()]
