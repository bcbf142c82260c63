"""Fakes for the session's turn-taking tests: scripted STT, instant TTS, a transport that
records what it is sent and plays marks back only when told to, a scripted agent.

Real speech drives the VAD; only the models and the network are faked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from gateway.evaluation.speech import load_prompt
from orchestration.log.events import EventBus, EventRecorder
from voice.audio import FRAME_BYTES, ms_of
from voice.config import VoiceConfig
from voice.ports import AgentAction, AgentInput, CallInfo, Say, UserTurn
from voice.session import CallSession


@dataclass
class FakeTranscript:
    text: str
    latency_ms: float = 1.0


class FakeSTT:
    """Returns scripted texts in order; counts calls. ``gate`` holds every job until it is
    set; ``failing`` makes every job raise, ``fail_next`` the next so many."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.calls = 0
        self.prompts: list[str | None] = []
        self.audio_ms: list[int] = []
        self.gate: asyncio.Event | None = None
        self.failing = False
        self.fail_next = 0

    async def transcribe(self, pcm: bytes, prompt: str | None = None) -> FakeTranscript:
        self.calls += 1
        self.prompts.append(prompt)
        self.audio_ms.append(ms_of(pcm))
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        if self.failing or self.fail_next > 0:
            self.fail_next -= 1
            raise RuntimeError("fake recogniser failure")
        return FakeTranscript(self.texts[0] if self.texts else "")


class FakeTTS:
    """10 ms of silence per character, at 16 kHz; raises for the sentences ``fails`` picks;
    ``gate`` holds every synthesis until it is set."""

    sample_rate = 16000

    def __init__(self) -> None:
        self.fails: Callable[[str], bool] = lambda _text: False
        self.gate: asyncio.Event | None = None

    async def synthesize(self, text: str) -> bytes:
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        if self.fails(text):
            raise RuntimeError(f"fake synthesis failure on {text!r}")
        return b"\0\0" * 160 * len(text)


@dataclass
class FakeTransport:
    """Records what the session sends; plays marks back only when told to."""

    protocol: str = "test"
    out_rate: int = 16000
    log: list[tuple[str, object]] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    ended: str | None = None

    async def send_audio(self, pcm: bytes) -> None:
        self.log.append(("audio", len(pcm)))

    async def send_mark(self, name: str) -> None:
        self.log.append(("mark", name))
        self.marks.append(name)

    async def clear(self) -> None:
        self.log.append(("clear", None))

    async def transfer(self, target: str) -> None:
        self.log.append(("transfer", target))

    async def end(self, reason: str) -> None:
        self.ended = reason

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.log if k == kind)


class ScriptedAgent:
    """Says ``reply`` to every input, then does ``then`` (a hang-up, ...); ``error`` is
    raised instead once set. ``items`` keeps every input it was given."""

    def __init__(self, reply: list[str]) -> None:
        self.reply = reply
        self.then: list[AgentAction] = []
        self.error: Exception | None = None
        self.turns: list[str] = []
        self.items: list[AgentInput] = []

    async def greeting(self) -> AsyncIterator[AgentAction]:
        yield Say("Hello there.")

    async def respond(self, item: AgentInput) -> AsyncIterator[AgentAction]:
        self.items.append(item)
        if isinstance(item, UserTurn):
            self.turns.append(item.text)
        if self.error is not None:
            raise self.error
        for text in self.reply:
            yield Say(text)
        for action in self.then:
            yield action


def make_session(
    stt_texts: list[str], reply: list[str], agent: ScriptedAgent | None = None, **turn: object
) -> tuple[CallSession, FakeTransport, ScriptedAgent, EventRecorder]:
    config = VoiceConfig()
    config.turn = config.turn.model_copy(update=turn)
    bus = EventBus()
    recorder = EventRecorder(bus)
    transport = FakeTransport()
    agent = agent or ScriptedAgent(reply)
    session = CallSession(
        call=CallInfo("s1", "test"),
        transport=transport,
        agent=agent,
        stt=FakeSTT(stt_texts),
        tts=FakeTTS(),
        splitter=lambda text, _n: [t.strip() + "." for t in text.split(".") if t.strip()],
        bus=bus,
        config=config,
    )
    return session, transport, agent, recorder


async def feed(session: CallSession, pcm: bytes) -> None:
    for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
        session.feed(pcm[i : i + FRAME_BYTES])
        await asyncio.sleep(0)


def silence(ms: int) -> bytes:
    return b"\0" * (ms * 32)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def ack_all(session: CallSession, transport: FakeTransport) -> None:
    for name in list(transport.marks):
        session.on_mark(name)
    transport.marks.clear()
    await settle()


SPEECH, _ = load_prompt("conf-locked")  # "This conference is locked." ~1.5 s
