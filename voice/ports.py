"""The ports of the voice core: what a call's session needs from outside, declared here.

Voice imports nothing of the project. The gateway plugs implementations in: the agents
(``gateway/agents.py`` adapts orchestration's), the event bus (orchestration's ``EventBus``
is an ``EventSink`` as it is) and the worker pools the models run on (orchestration's
``Bulkhead`` is a ``WorkerPool`` as it is).

The session hands the agent each final user turn (and DTMF digits) and the agent streams
back actions: text to speak, a hang-up, or a transfer. The session speaks text as it
arrives, sentence by sentence, so an agent should yield early.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, TypeVarTuple

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


@dataclass(frozen=True, slots=True)
class CallInfo:
    session_id: str
    protocol: str  # "twilio", "browser", ...
    caller: str | None = None
    call_sid: str | None = None
    # an earlier call whose conversation this one carries on (the agent rebuilds it)
    resume_from: str | None = None


@dataclass(frozen=True, slots=True)
class UserTurn:
    text: str
    audio_ms: int
    index: int
    # the index of an earlier turn this one replaces: the caller went on talking after the
    # agent had started answering that turn, the answer was cut, and ``text`` is the whole
    # sentence; the agent undoes what the cut turn did and answers this one instead
    supersedes: int | None = None
    # an early turn (``voice.early``): given while the caller's closing silence was still
    # being waited out; resolved True once the turn ends with these words, False if the
    # caller went on (the agent then puts back what the turn did, and acts on nothing)
    confirmed: asyncio.Future[bool] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Say:
    text: str


@dataclass(frozen=True, slots=True)
class HangUp:
    reason: str = "agent"


@dataclass(frozen=True, slots=True)
class Transfer:
    target: str
    reason: str = ""


AgentInput = UserTurn | Dtmf
AgentAction = Say | HangUp | Transfer


class Agent(Protocol):
    """What a voice session talks to. An agent may also have a ``name`` (for viewers), a
    ``stt_prompt`` attribute (str or None): domain phrases the session hands to the
    recogniser with each turn, and ``early_turns = True``: it takes early turns
    (``UserTurn.confirmed``), putting back what a dropped one did at its next input."""

    def greeting(self) -> AsyncIterator[AgentAction]: ...

    def respond(self, item: AgentInput) -> AsyncIterator[AgentAction]: ...


AgentFactory = Callable[[CallInfo], Agent]


class EventSink(Protocol):
    """Where a session's events go: one call per event, quick, never raising."""

    def emit(self, session_id: str, type: str, data: Mapping[str, Any] | None = None,
             ) -> object: ...


class WorkerPool(Protocol):
    """Where the CPU-bound model jobs of every call run: bounded and shared, so a burst of
    calls waits or is refused instead of making every call late. It may raise when full;
    the session treats that like any failed job."""

    async def run_in_thread(self, fn: Callable[[*Ts], T], *args: *Ts) -> T: ...
