"""The agents' side of a call's boundary: what a call hands to the brain, and what comes back.

A call's session gives the agent each final user turn (and DTMF digits) and the agent
streams back actions: text to speak, a hang-up, or a transfer. The session speaks text as
it arrives, sentence by sentence, so an agent should yield early. The voice core declares
the same values as its port (``voice/ports.py``); orchestration imports nothing of voice,
and the gateway translates between the two (``gateway/agents.py``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CallInfo:
    session_id: str
    protocol: str  # "twilio", "browser", ...
    caller: str | None = None
    call_sid: str | None = None
    # the session id of an earlier call whose conversation this one carries on (its state
    # rebuilt from the event log): no greeting, the question it waited on asked again
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
    # an early turn (given before the caller's closing silence had passed): True once it
    # ended with these words, False if the caller went on (orchestration.patterns.hold)
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
    """What a voice session talks to. An agent may also have a ``stt_prompt`` attribute
    (str or None): domain phrases the session hands to the recogniser with each turn."""

    def greeting(self) -> AsyncIterator[AgentAction]: ...

    def respond(self, item: AgentInput) -> AsyncIterator[AgentAction]: ...


AgentFactory = Callable[[CallInfo], Agent]

_GOODBYE = re.compile(r"\b(good ?bye|bye|hang up|that's all|that is all)\b", re.I)
_HUMAN = re.compile(r"\b(human|operator|representative|real person|transfer me)\b", re.I)
_TIME = re.compile(r"\bwhat(?:'s| is)? the time\b|\bwhat time is it\b", re.I)


class BasicAgent:
    """The minimal built-in agent: greets, answers a few things, repeats what it heard.

    It exists so a fresh ``make run`` can hold a conversation; the orchestration core's
    agents replace it.
    """

    def __init__(self, call: CallInfo, clock: Callable[[], datetime] = datetime.now) -> None:
        self._call = call
        self._clock = clock
        self.transfer_target = "operator"

    async def greeting(self) -> AsyncIterator[AgentAction]:
        yield Say("Hello, this is voxgate. How can I help you today?")

    async def respond(self, item: AgentInput) -> AsyncIterator[AgentAction]:
        if isinstance(item, Dtmf):
            if item.digit == "0":
                yield Say("Transferring you to an operator.")
                yield Transfer(self.transfer_target, reason="dtmf 0")
            else:
                yield Say(f"You pressed {item.digit}.")
            return
        text = item.text.strip()
        if _GOODBYE.search(text):
            yield Say("Thank you for calling. Goodbye!")
            yield HangUp("caller said goodbye")
        elif _HUMAN.search(text):
            yield Say("Let me transfer you to a person.")
            yield Transfer(self.transfer_target, reason="caller asked for a human")
        elif _TIME.search(text):
            yield Say(f"It is {self._clock():%-I:%M %p}.")
        else:
            yield Say(f"I heard: {text.rstrip('.?!')}.")
            yield Say("What else can I do for you?")


def basic_agent_factory(call: CallInfo) -> Agent:
    return BasicAgent(call)
