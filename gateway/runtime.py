"""What every connection handler shares: settings, the voice models, the bus, the agent
factory and the registry of live calls."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from gateway.config import Settings
from orchestration.agent import AgentFactory, CallInfo
from orchestration.events import EventBus
from voice.recorder import CallRecorder
from voice.services import VoiceServices
from voice.session import CallSession
from voice.transport import Transport

log = logging.getLogger(__name__)


class CapacityError(Exception):
    """The gateway already carries ``max_sessions`` calls."""


@dataclass
class Runtime:
    settings: Settings
    voice: VoiceServices
    bus: EventBus
    agent_factory: AgentFactory
    sessions: dict[str, CallSession] = field(default_factory=dict)
    # Twilio CallSids whose stream ended in a transfer, with the target; read by the
    # <Connect action> webhook to decide between <Dial> and <Hangup>
    transfers: dict[str, str] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def new_session(
        self,
        transport: Transport,
        protocol: str,
        caller: str | None = None,
        call_sid: str | None = None,
    ) -> CallSession:
        if len(self.sessions) >= self.settings.max_sessions:
            raise CapacityError(
                f"the gateway is at capacity ({self.settings.max_sessions} calls)"
            )
        session_id = uuid.uuid4().hex[:16]
        call = CallInfo(session_id=session_id, protocol=protocol, caller=caller, call_sid=call_sid)
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
