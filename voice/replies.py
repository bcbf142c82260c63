"""Speaking the agent's replies: one ``Reply`` per answer, and the ``Speaker`` that turns
its sentences into audio on the transport, a mark after each, and waits for the far end
to play them. A reply's queue holds sentences (``str``) and the agent's other actions
(hang up, transfer), which the session carries out once what came before was heard.

A reply that answers the caller always says something: an agent that yields no action
at all, or fails before saying anything, leaves the caller hearing ``fallback`` (with an
``agent.silent`` / ``agent.error`` event), not silence and a reprompt 7 s later.

A sentence piper cannot synthesise (it raised, or its pool refused the job) does not
leave the reply hanging: the speaker plays an apology synthesised when the voice was
loaded and kept (``keep``), so the caller hears it even when synthesis has stopped
working altogether, and the reply goes on to what the agent decided (hang up, transfer)
and back to listening.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from voice.audio import levels, ms_of, resample
from voice.ports import AgentAction, HangUp, Say, Transfer
from voice.recorder import CallRecorder
from voice.transport import Transport

log = logging.getLogger(__name__)

LEVEL_HOP_MS = 40  # two frames
Emit = Callable[..., None]


class TextToSpeech(Protocol):
    @property
    def sample_rate(self) -> int: ...

    async def synthesize(self, text: str) -> bytes: ...


# lines synthesised once per voice and kept: tts -> text -> PCM16 at the voice's rate
_kept: weakref.WeakKeyDictionary[Any, dict[str, bytes]] = weakref.WeakKeyDictionary()


def keep(tts: object, text: str, pcm: bytes) -> None:
    """Keep ``pcm`` (``text`` spoken by ``tts``) for when ``tts`` fails."""
    _kept.setdefault(tts, {})[text] = pcm


def kept(tts: object, text: str) -> bytes | None:
    return _kept.get(tts, {}).get(text)


@dataclass(slots=True)
class Segment:
    """One synthesised piece of a reply and the mark that says it was heard."""

    text: str
    mark: str
    ms: int


@dataclass(slots=True)
class Reply:
    id: str
    # the input it answers: "turn", "dtmf" or "text"; "" for the greeting and the
    # session's own lines (reprompts, apologies)
    answers: str = ""
    # sentences to speak (str) and the agent's other actions, in order
    pending: deque[Any] = field(default_factory=deque)
    sent: list[Segment] = field(default_factory=list)
    played: set[str] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    feeder: asyncio.Task[None] | None = None
    agent_done: bool = False
    cleared: bool = False
    speaking: str | None = None  # the sentence being synthesised right now
    marks: int = 0
    failed: bool = False  # a sentence could not be synthesised: the apology was played
    # when it answers a turn: wall time of the turn's last voiced frame, and STT figures
    turn_voiced_at: float | None = None
    turn_stt_ms: float = 0.0
    # the turn it answers (index and words), and when (audio time) that turn ended
    turn_index: int | None = None
    turn_text: str = ""
    turn_audio: bytes = b""  # the audio of that turn, kept in case the caller goes on
    turn_ended_ms: int = 0
    # a short piece over it taken for a backchannel (it resumed): if the caller goes on
    # at once it was the start of a turn ("Take a note: ..."), and joins the rest
    rejoin_audio: bytes = b""
    rejoin_ms: int = 0
    # an early reply (voice.early): synthesised at once, sent once this is True
    hold: asyncio.Future[bool] | None = None

    def answering(self, voiced_at: float, stt_ms: float, index: int, text: str, audio: bytes,
                  ended_ms: int) -> None:
        """Say which turn this reply answers (the turn_* fields)."""
        self.turn_voiced_at, self.turn_stt_ms, self.turn_index = voiced_at, stt_ms, index
        self.turn_text, self.turn_audio, self.turn_ended_ms = text, audio, ended_ms

    def audible(self) -> bool:
        """Has the far end got audio of ours that it has not played yet?"""
        return any(s.mark not in self.played for s in self.sent)

    def played_text(self) -> str:
        return " ".join(s.text for s in self.sent if s.mark in self.played)

    def unplayed_sentences(self) -> list[str]:
        left = [s.text for s in self.sent if s.mark not in self.played]
        if self.speaking is not None:
            left.append(self.speaking)
        return left

    def rewind(self) -> list[str]:
        """Queue again what the caller did not hear (a resume after a backchannel), before
        the hang-up or transfer that may still be queued; returns it."""
        left = self.unplayed_sentences()
        self.sent = [s for s in self.sent if s.mark in self.played]
        self.pending.extendleft(reversed(left))
        self.speaking = None
        self.cleared = False
        return left


async def stream(reply: Reply, actions: AsyncIterator[Any], text_of: Callable[[Any], str | None],
                 split: Callable[[str], list[str]], emit: Emit, fallback: str) -> None:
    """Queue the agent's actions on ``reply`` as they come, text cut into sentences
    (``text_of`` says what an action speaks, None for other actions)."""
    count = 0
    try:
        async for action in actions:
            count += 1
            text = text_of(action)
            if text is None:
                reply.pending.append(action)
            else:
                emit("agent.reply", reply_id=reply.id, text=text)
                if not reply.failed:
                    reply.pending.extend(split(text))
            reply.wake.set()
    except Exception as exc:  # the agent's bug must not leave the caller in silence
        log.exception("reply %s: the agent failed", reply.id)
        emit("agent.error", reply_id=reply.id, error=repr(exc)[:200], actions=count)
        if count == 0 and reply.answers:
            reply.pending.append(fallback)
    else:
        if count == 0 and reply.answers:
            emit("agent.silent", reply_id=reply.id, answers=reply.answers, turn=reply.turn_index)
            reply.pending.append(fallback)
    finally:
        reply.agent_done = True
        reply.wake.set()


class Speaker:
    def __init__(self, session_id: str, transport: Transport, tts: TextToSpeech, emit: Emit,
                 recorder: CallRecorder | None, apology: str,
                 on_audio: Callable[[], None]) -> None:
        self.id = session_id
        self.transport = transport
        self.tts = tts
        self.emit = emit
        self.recorder = recorder
        self.apology = apology
        self.on_audio = on_audio  # agent audio is about to go out
        self.waiters: dict[str, asyncio.Future[None]] = {}

    async def prepare(self) -> None:
        """Synthesise the apology now if this voice has none kept (normally it was made
        when the models were loaded)."""
        if kept(self.tts, self.apology) is None:
            try:
                keep(self.tts, self.apology, await self.tts.synthesize(self.apology))
            except Exception as exc:
                log.warning("session %s: cannot synthesise the apology: %r", self.id, exc)

    def on_mark(self, reply: Reply | None, name: str) -> None:
        # marks echoed for audio we cleared were never heard: Twilio returns them on clear
        if reply is not None and not reply.cleared and name.startswith(reply.id + ":"):
            reply.played.add(name)
        fut = self.waiters.pop(name, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def say(self, reply: Reply, text: str) -> bool:
        """Synthesise and send one sentence; False if it could not be synthesised (the
        apology was played instead)."""
        if not any(ch.isalnum() for ch in text):
            return True  # nothing to say is not a failure
        reply.speaking = text
        started = time.monotonic()
        try:
            pcm = resample(await self.tts.synthesize(text), self.tts.sample_rate,
                           self.transport.out_rate)
        except Exception as exc:  # piper raised, or its pool is full
            reply.speaking = None
            log.warning("session %s: synthesis failed for %r: %r", self.id, text, exc)
            self.emit("tts.error", reply_id=reply.id, text=text, error=repr(exc)[:200])
            await self._apologise(reply)
            return False
        reply.speaking = None
        await self._send(reply, text, pcm, started)
        return True

    async def _apologise(self, reply: Reply) -> None:
        reply.failed = True
        pcm = kept(self.tts, self.apology)
        if pcm is None:
            log.error("session %s: no apology audio kept; the caller hears nothing", self.id)
            return
        pcm = resample(pcm, self.tts.sample_rate, self.transport.out_rate)
        self.emit("tts.apology", reply_id=reply.id, text=self.apology,
                  audio_ms=ms_of(pcm, self.transport.out_rate))
        await self._send(reply, self.apology, pcm, time.monotonic())

    async def _send(self, reply: Reply, text: str, pcm: bytes, started: float) -> None:
        held = time.monotonic()
        await _released(reply)
        started += time.monotonic() - held  # synth_ms is the synthesis, not the hold
        rate = self.transport.out_rate
        reply.marks += 1
        mark = f"{reply.id}:{reply.marks}"
        segment = Segment(text, mark, ms_of(pcm, rate))
        self.waiters[mark] = asyncio.get_running_loop().create_future()
        reply.sent.append(segment)
        self.emit("tts.started", reply_id=reply.id, text=text, audio_ms=segment.ms,
                  synth_ms=round((time.monotonic() - started) * 1000, 1))
        self.emit("audio.levels", dir="out", hop_ms=LEVEL_HOP_MS,
                  levels=levels(pcm, rate, LEVEL_HOP_MS), reply_id=reply.id)
        self.on_audio()
        await self.transport.send_audio(pcm)
        await self.transport.send_mark(mark)
        if self.recorder is not None:
            self.recorder.agent(pcm, rate)
        if reply.turn_voiced_at is not None:
            # the server's view of the response latency, split into its parts
            self.emit("turn.latency", reply_id=reply.id,
                      total_ms=round((time.monotonic() - reply.turn_voiced_at) * 1000, 1),
                      stt_ms=round(reply.turn_stt_ms, 1),
                      tts_ms=round((time.monotonic() - started) * 1000, 1))
            reply.turn_voiced_at = None

    async def play(self, reply: Reply, act: Callable[[Any], Awaitable[bool]]) -> bool:
        """Speak ``reply`` as its actions come, until the agent is done and the far end has
        played it all; ``act`` carries out any other action once what came before it was
        heard (a barge-in meanwhile leaves the action queued, for a resume) and says
        whether that ended the call. True if the call goes on."""
        while True:
            if not reply.pending:
                if reply.agent_done:
                    break
                reply.wake.clear()
                await reply.wake.wait()
                continue
            item = reply.pending[0]
            if isinstance(item, str):
                reply.pending.popleft()
                if not await self.say(reply, item):
                    # the rest would not make sense without the lost sentence (the
                    # apology was played); what the agent decided still happens
                    reply.pending = deque(a for a in reply.pending if not isinstance(a, str))
                continue
            await self.drain(reply)
            reply.pending.popleft()
            await _released(reply)
            if await act(item):
                return False
        await self.drain(reply)
        return True

    async def drain(self, reply: Reply) -> None:
        """Wait until the far end has played everything sent for this reply."""
        # a far end that never echoes marks must not hold the call forever
        budget = sum(s.ms for s in reply.sent if s.mark not in reply.played) / 1000 + 5.0
        for segment in list(reply.sent):
            fut = self.waiters.get(segment.mark)
            if fut is None:
                continue
            try:
                await asyncio.wait_for(asyncio.shield(fut), timeout=budget)
            except TimeoutError:
                log.warning("session %s: mark %s never came back", self.id, segment.mark)
                reply.played.add(segment.mark)
            finally:
                self.waiters.pop(segment.mark, None)

    def forget(self, reply: Reply) -> None:
        """Stop waiting for the marks of a reply that was stopped."""
        for segment in reply.sent:
            fut = self.waiters.pop(segment.mark, None)
            if fut is not None:
                fut.cancel()

    def close(self) -> None:
        for fut in self.waiters.values():
            if not fut.done():
                fut.cancel()


__all__ = ["Reply", "Segment", "Speaker", "TextToSpeech", "keep", "kept", "stream"]


async def _released(reply: Reply) -> None:
    """An early reply waits here until its turn is confirmed; of a dropped one nothing is
    sent or done."""
    if reply.hold is not None and not await asyncio.shield(reply.hold):
        raise asyncio.CancelledError


def text_of(action: AgentAction) -> str | None:
    return action.text if isinstance(action, Say) else None


async def say_then(text: str, *then: AgentAction) -> AsyncIterator[AgentAction]:
    """``text``, then the actions ``then`` (a session's own lines: reprompts, goodbyes)."""
    yield Say(text)
    for action in then:
        yield action


async def carry_out(action: AgentAction, transport: Transport, emit: Callable[..., None],
                    close: Callable[[str], Awaitable[None]]) -> bool:
    """Carry out a hang-up or a transfer; True: the call is over."""
    if isinstance(action, HangUp):
        emit("call.hangup", reason=action.reason)
        await transport.end(action.reason)
        await close(f"agent hung up: {action.reason}")
        return True
    if isinstance(action, Transfer):
        emit("call.transfer", target=action.target, reason=action.reason)
        await transport.transfer(action.target)
        await close(f"transferred to {action.target}")
        return True
    return False
