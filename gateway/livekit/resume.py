"""A LiveKit call that survives its worker.

Self-hosted LiveKit does not dispatch a room again when the worker of its agent dies: the
caller is left alone in the room. voxgate does it itself:

* every worker writes its calls' events to the shared event log (``VOXGATE_DATABASE_URL``
  on PostgreSQL for several workers; ``events.db`` in the data directory otherwise), as
  ``voxgate serve`` does, and names the call's session in the room's metadata;
* every agent stamps its participant attribute ``voxgate.alive`` with the time, every
  ``HEARTBEAT_S``. livekit-server keeps a participant whose connection vanished for its
  ping timeout (15 s) in case it reconnects; the stamp shows a dead worker's agent sooner;
* every worker watches the rooms (the room service API, every ``interval_s``): a room whose
  metadata names a session, that still has a caller and has no live agent (none, or only
  ones whose stamp is ``STALE_S`` old), lost its worker. The first worker to see it
  removes the dead agent, marks the room (metadata ``redispatched``) and asks the server
  for a new agent (``create_dispatch``) whose job metadata says ``resume_from``; the
  agent that takes it carries the call on from the log ("Sorry, we were cut off." and
  the pending question, as a Twilio call resumed on another node).

Two workers seeing the same room at once could both dispatch; the second agent to arrive
finds another voxgate agent in the room and leaves (gateway/livekit/worker.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from livekit import api

from gateway.call_log import CallLog, bus_writer
from gateway.config import Settings
from orchestration.log.backends import open_store
from orchestration.log.events import EventBus
from orchestration.log.views import project

log = logging.getLogger(__name__)

SESSION_KEY = "voxgate.session"  # room metadata: the session the room's call runs as
REDISPATCHED_KEY = "voxgate.redispatched"  # room metadata: the session already resumed
RESUME_KEY = "resume_from"  # job metadata: the session a dispatched agent carries on
ALIVE_ATTRIBUTE = "voxgate.alive"  # on the agent participant: its last heartbeat (epoch s)
HEARTBEAT_S = 1.0
# an agent whose stamp is this old is dead: four beats missed. An event loop that stalls
# this long on a live call would be cut over to another worker; none does on two cores
STALE_S = 4.0


def alive(attributes: Mapping[str, str], now: float | None = None) -> bool:
    """Whether an agent's heartbeat is fresh (an agent that has not stamped yet is)."""
    stamp = attributes.get(ALIVE_ATTRIBUTE)
    if stamp is None:
        return True
    try:
        return (now if now is not None else time.time()) - float(stamp) < STALE_S
    except ValueError:
        return True


async def heartbeat(set_attributes: Callable[[dict[str, str]], Any]) -> None:
    """Stamp ``voxgate.alive`` every HEARTBEAT_S until cancelled."""
    while True:
        with contextlib.suppress(Exception):  # a room going away ends the call anyway
            await set_attributes({ALIVE_ATTRIBUTE: f"{time.time():.2f}"})
        await asyncio.sleep(HEARTBEAT_S)


def open_log(settings: Settings, bus: EventBus, call_log: CallLog) -> Callable[[], None]:
    """Write the bus's events to the event log and give ``call_log`` the log to resume
    calls from; returns what closes both."""
    location = settings.database_url or settings.data_dir / "events.db"
    store = open_store(location, project)
    sink, writer = bus_writer(bus, location)
    call_log.attach(store, sink)

    def close() -> None:
        call_log.detach()
        sink.close()
        writer.close()
        store.close()

    return close


def room_metadata(session_id: str) -> str:
    return json.dumps({SESSION_KEY: session_id})


def resume_from(job_metadata: str) -> str | None:
    """The session a dispatch asked this job to carry on, if any."""
    try:
        data = json.loads(job_metadata) if job_metadata else {}
    except ValueError:
        return None
    value = data.get(RESUME_KEY) if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def _metadata(room: Any) -> dict[str, Any]:
    try:
        data = json.loads(room.metadata) if room.metadata else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class Redispatcher:
    """Watches the rooms and dispatches a new agent to one whose agent died."""

    def __init__(self, url: str, api_key: str, api_secret: str, agent_name: str,
                 interval_s: float = 1.0) -> None:
        self.url, self.api_key, self.api_secret = url, api_key, api_secret
        self.agent_name = agent_name
        self.interval_s = interval_s
        self.dispatched: list[str] = []  # rooms this worker dispatched again

    async def run(self) -> None:
        async with api.LiveKitAPI(self.url, self.api_key, self.api_secret) as lk:
            while True:
                try:
                    await self.check(lk)
                except Exception as exc:  # the server restarting: try again next round
                    log.warning("room watch failed: %r", exc)
                await asyncio.sleep(self.interval_s)

    async def check(self, lk: api.LiveKitAPI) -> None:
        rooms = await lk.room.list_rooms(api.ListRoomsRequest())
        for room in rooms.rooms:
            meta = _metadata(room)
            session = meta.get(SESSION_KEY)
            if not session or meta.get(REDISPATCHED_KEY) == session:
                continue
            people = (await lk.room.list_participants(api.ListParticipantsRequest(
                room=room.name))).participants
            kind = api.ParticipantInfo.Kind.AGENT
            agents = [p for p in people if p.kind == kind]
            if any(alive(p.attributes) for p in agents) or len(agents) == len(people):
                continue  # answered, or nobody left to answer
            for dead in agents:  # its worker is gone: it would only hold the room's audio
                with contextlib.suppress(Exception):
                    await lk.room.remove_participant(api.RoomParticipantIdentity(
                        room=room.name, identity=dead.identity))
            await self._dispatch(lk, room.name, str(session), meta)

    async def _dispatch(self, lk: api.LiveKitAPI, room: str, session: str,
                        meta: dict[str, Any]) -> None:
        await lk.room.update_room_metadata(api.UpdateRoomMetadataRequest(
            room=room, metadata=json.dumps({**meta, REDISPATCHED_KEY: session})))
        await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(
            room=room, agent_name=self.agent_name,
            metadata=json.dumps({RESUME_KEY: session})))
        self.dispatched.append(room)
        log.warning("room %s lost its agent (session %s): a new one is dispatched to "
                    "carry the call on", room, session)


async def stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
