"""What every connection handler shares: settings, the voice models, the bus, the agent
factory and the registry of live calls; and the drain that ends them on shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field

from gateway.call_log import CallLog
from gateway.config import Settings
from orchestration.log.events import EventBus
from orchestration.patterns.bulkhead import Bulkhead
from voice.ports import AgentFactory, CallInfo
from voice.recorder import CallRecorder
from voice.services import VoiceServices
from voice.session import CallSession
from voice.transport import Transport

log = logging.getLogger(__name__)

DRAIN_REASON = "server shutting down"


class CallRefused(Exception):
    """The gateway will not take a new call now. ``code`` names why (the browser
    protocol's error code) and ``close_code`` is the WebSocket close status to send."""

    code = "refused"
    close_code = 1013  # RFC 6455 registry: Try Again Later


class CapacityError(CallRefused):
    """The gateway already carries ``max_sessions`` calls."""

    code = "capacity"


class Draining(CallRefused):
    """The gateway is shutting down: it finishes its calls and takes no new ones."""

    code = "draining"
    close_code = 1012  # Service Restart: what uvicorn itself sends when it shuts down

    def __init__(self, message: str = "the gateway is shutting down; call again") -> None:
        super().__init__(message)


@dataclass
class Runtime:
    settings: Settings
    voice: VoiceServices[Bulkhead]
    bus: EventBus
    agent_factory: AgentFactory  # the voice side's: gateway/agents.py plugs agents in
    sessions: dict[str, CallSession] = field(default_factory=dict)
    # Twilio CallSids whose stream ended in a transfer, with the target; read by the
    # <Connect action> webhook to decide between <Dial> and <Hangup>
    transfers: dict[str, str] = field(default_factory=dict)
    # the event log as calls need it: a dropped call resumed, its events flushed
    call_log: CallLog = field(default_factory=CallLog)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # set by drain(): /healthz answers 503, new calls are refused
    draining: bool = False
    # phone calls promised a stream (reserve()), by session id -> when the promise lapses
    reserved: dict[str, float] = field(default_factory=dict)
    # Twilio calls whose stream was refused (full, draining): the <Connect action> says so
    refused_streams: dict[str, str] = field(default_factory=dict)
    # calls refused because the node was full (/metrics: voxgate_limit_refusals{capacity})
    capacity_refusals: int = 0

    def reserve(self) -> str | None:
        """A session id for a phone call whose stream is about to open, counted among the
        live calls until it opens (or twice ``start_timeout_s`` passes); None when the node is
        full or draining, so a call is refused before anything of it starts."""
        if self.draining or not self._room():
            self.capacity_refusals += not self.draining
            return None
        session_id = new_session_id()
        self.reserved[session_id] = time.monotonic() + 2 * self.settings.start_timeout_s
        return session_id

    def _room(self) -> bool:
        now = time.monotonic()
        for session_id, deadline in list(self.reserved.items()):
            if deadline <= now:  # its stream never came
                del self.reserved[session_id]
        return len(self.sessions) + len(self.reserved) < self.settings.max_sessions

    def new_session(
        self,
        transport: Transport,
        protocol: str,
        caller: str | None = None,
        call_sid: str | None = None,
        resume_from: str | None = None,
        session_id: str | None = None,
    ) -> CallSession:
        """A new call; ``resume_from`` carries on the conversation of an earlier session
        (the agents rebuild it from the event log, or refuse with a clear error);
        ``session_id`` is one the edge chose beforehand (a Twilio call's TwiML names it),
        else a fresh one."""
        if self.draining:
            raise Draining()
        # a session promised in TwiML was counted when it was promised
        if self.reserved.pop(session_id or "", None) is None and not self._room():
            self.capacity_refusals += 1
            raise CapacityError(
                f"the gateway is at capacity ({self.settings.max_sessions} calls)"
            )
        if session_id is not None and session_id in self.sessions:
            raise CallRefused(f"session {session_id} is already live")
        session_id = session_id or new_session_id()
        call = CallInfo(session_id=session_id, protocol=protocol, caller=caller,
                        call_sid=call_sid, resume_from=resume_from)
        session = CallSession(
            call=call,
            transport=transport,
            agent=self.agent_factory(call),
            stt=self.voice.stt,
            tts=self.voice.tts,
            splitter=self.voice.split,
            bus=self.bus,
            config=self.settings.voice,
            recorder=(
                CallRecorder(self.settings.data_dir / "recordings", session_id)
                if self.settings.record_audio
                else None
            ),
        )
        self.sessions[session_id] = session
        return session

    async def end_session(self, session: CallSession, reason: str) -> None:
        try:
            await session.close(reason)
        finally:
            self.sessions.pop(session.id, None)

    async def drain(self) -> None:
        """Refuse new calls, have every live call say goodbye and hang up, and force-end
        whatever is still live after ``settings.drain_timeout_s``."""
        if self.draining:
            return
        self.draining = True
        started = time.monotonic()
        live = list(self.sessions.values())
        log.warning("draining: %d live call(s) get a goodbye, then the process exits", len(live))
        for session in live:
            session.say(self.settings.drain_goodbye_text, hang_up=DRAIN_REASON)
        ended = [asyncio.create_task(s.ended.wait(), name="drain-wait") for s in live]
        if ended:
            _, waiting = await asyncio.wait(ended, timeout=self.settings.drain_timeout_s)
            for task in waiting:
                task.cancel()
        left = [s for s in live if not s.ended.is_set()]
        for session in left:
            await self.end_session(session, f"{DRAIN_REASON}: no goodbye in time")
        log.warning("drained in %.1f s (%d call(s) cut at the deadline)",
                    time.monotonic() - started, len(left))


def new_session_id() -> str:
    return uuid.uuid4().hex[:16]
