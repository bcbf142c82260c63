"""One call's voice core: VAD, turn-taking, barge-in, silence handling, STT, agent, TTS.

The session is fed 20 ms frames of PCM16 at 16 kHz by a transport and speaks back through
the same transport; it knows nothing of WebSockets or telephony. Everything it decides is
an event on the bus.

Latency is spent as follows: speculative transcription starts at the first pause (100 ms
of unvoiced audio), so by the time the turn's closing silence has passed the transcript
is usually ready; a transcript that reads as a finished sentence closes the turn after a
short silence, anything else after a longer one. Replies are synthesised sentence by
sentence and sent as soon as each is ready; marks after each sentence say what was heard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestration.agent import (
    Agent,
    AgentAction,
    CallInfo,
    Dtmf,
    HangUp,
    Say,
    Transfer,
    UserTurn,
)
from orchestration.events import EventBus
from voice.audio import levels, ms_of, resample
from voice.config import VoiceConfig
from voice.recorder import CallRecorder
from voice.transport import Transport
from voice.turns import TurnMachine, TurnState, is_backchannel, sounds_finished
from voice.vad import Pause, Resume, Segmenter, SpeechStart, VadState

log = logging.getLogger(__name__)

LEVEL_HOP_MS = 40  # two frames
LEVEL_EVENT_HOPS = 6  # one audio.levels event per 240 ms of caller speech


class SpeechToText(Protocol):
    # -> voice.stt.Transcript; ``prompt``: domain phrases the recogniser should expect
    async def transcribe(self, pcm: bytes, prompt: str | None = None) -> Any: ...


class TextToSpeech(Protocol):
    @property
    def sample_rate(self) -> int: ...

    async def synthesize(self, text: str) -> bytes: ...


SentenceSplitter = Callable[[str, int], list[str]]


@dataclass(slots=True)
class _Segment:
    """One synthesised piece of a reply and the mark that says it was heard."""

    text: str
    mark: str
    ms: int


@dataclass(slots=True)
class _Reply:
    id: str
    pending: deque[AgentAction] = field(default_factory=deque)
    sent: list[_Segment] = field(default_factory=list)
    played: set[str] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    feeder: asyncio.Task[None] | None = None
    agent_done: bool = False
    cleared: bool = False
    speaking: str | None = None  # the sentence being synthesised right now
    marks: int = 0
    # when it answers a turn: wall time of the turn's last voiced frame, and STT figures
    turn_voiced_at: float | None = None
    # the caller's words this reply answers, and when (audio time) that turn ended
    turn_text: str | None = None
    turn_audio: bytes = b""  # the audio of that turn, kept in case the caller goes on
    turn_ended_ms: int = 0
    turn_stt_ms: float = 0.0

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


@dataclass(slots=True)
class _Speculation:
    version: int
    task: asyncio.Task[Any]
    carried: int  # bytes of earlier pieces of the turn it was given (see _carry)


class CallSession:
    def __init__(
        self,
        call: CallInfo,
        transport: Transport,
        agent: Agent,
        stt: SpeechToText,
        tts: TextToSpeech,
        splitter: SentenceSplitter,
        bus: EventBus,
        config: VoiceConfig,
        recorder: CallRecorder | None = None,
    ) -> None:
        self.call = call
        self.recorder = recorder
        self.id = call.session_id
        self.transport = transport
        self.agent = agent
        self.stt = stt
        self.tts = tts
        self.split = splitter
        self.bus = bus
        self.config = config
        self.segmenter = Segmenter(config.vad)
        self.turns = TurnMachine(self._state_changed)
        self.ended = asyncio.Event()
        self.end_reason = ""
        self.turn_count = 0
        self._reply: _Reply | None = None
        self._interrupted: _Reply | None = None  # a reply cut by a barge-in, maybe resumed
        self._speaker: asyncio.Task[None] | None = None
        # audio of this turn's earlier pieces: the caller went on after a pause, before we
        # answered; whisper hears them again with the new piece, as one sentence
        self._carry = b""
        self._last_voiced_at = 0.0  # wall time of the last voiced frame seen
        self._level_audio = bytearray()  # caller audio not yet measured for audio.levels
        self._committing: asyncio.Task[None] | None = None
        self._silence_task: asyncio.Task[None] | None = None
        self._spec: _Speculation | None = None
        self._spec_wanted = False
        self._mark_waiters: dict[str, asyncio.Future[None]] = {}
        self._reply_seq = 0
        self._reprompts = 0
        self._started = time.monotonic()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- events ----------------------------------------------------------------------

    def emit(self, type: str, **data: Any) -> None:
        self.bus.emit(self.id, type, data)

    def _state_changed(self, old: TurnState, new: TurnState) -> None:
        self.emit("agent.state", state=new.value, previous=old.value)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("session %s task %s failed: %r", self.id, task.get_name(), exc)
            self.emit("session.error", task=task.get_name(), error=repr(exc))

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        # the agent's name for viewers: the supervisor says "supervisor", the echo agent
        # its class name
        agent = getattr(self.agent, "name", None) or type(self.agent).__name__
        data: dict[str, Any] = {"protocol": self.call.protocol, "agent": str(agent)}
        if self.call.call_sid is not None:
            data["call_sid"] = self.call.call_sid
        if self.call.caller is not None:
            data["caller"] = self.call.caller
        self.emit("session.started", **data)
        self.turns.go(TurnState.THINKING)
        self._start_reply(self.agent.greeting())

    async def close(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self.end_reason = reason
        self.ended.set()
        for task in list(self._tasks):
            task.cancel()
        for fut in self._mark_waiters.values():
            if not fut.done():
                fut.cancel()
        if self.turns.state is not TurnState.IDLE:
            self.turns.go(TurnState.IDLE)
        if self.recorder is not None:
            self.recorder.close()
        self.emit(
            "session.ended",
            reason=reason,
            duration_ms=int((time.monotonic() - self._started) * 1000),
            turns=self.turn_count,
        )

    # --- input from the transport -----------------------------------------------------

    def feed(self, frame: bytes) -> None:
        """One 20 ms frame of caller audio (PCM16, 16 kHz)."""
        if self.ended.is_set():
            return
        if self.recorder is not None:
            self.recorder.caller(frame)
        seg = self.segmenter
        event = seg.process(frame)
        if seg.state is not VadState.SILENCE and seg.last_voiced_ms == seg.now_ms:
            self._last_voiced_at = time.monotonic()
        self._meter(frame, seg.state is not VadState.SILENCE or event is not None)
        if isinstance(event, SpeechStart):
            self._on_speech_start(event)
        elif isinstance(event, Pause):
            self._request_speculation()
        elif isinstance(event, Resume):
            self._spec_wanted = False
        if self.segmenter.state is not VadState.SILENCE and self._committing is None:
            self._maybe_end_turn()

    def _meter(self, frame: bytes, speaking: bool) -> None:
        """Caller loudness for the dashboard, only while the caller is not silent."""
        if not speaking:
            self._level_audio.clear()
            return
        self._level_audio += frame
        if len(self._level_audio) >= LEVEL_EVENT_HOPS * LEVEL_HOP_MS * 32:
            values = levels(bytes(self._level_audio), 16000, LEVEL_HOP_MS)
            self._level_audio.clear()
            self.emit("audio.levels", dir="in", hop_ms=LEVEL_HOP_MS, levels=values)

    def on_mark(self, name: str) -> None:
        reply = self._reply
        # marks echoed for audio we cleared were never heard: Twilio returns them on clear
        if reply is not None and not reply.cleared and name.startswith(reply.id + ":"):
            reply.played.add(name)
        fut = self._mark_waiters.pop(name, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def on_dtmf(self, digit: str) -> None:
        self.emit("dtmf.received", digit=digit)
        self._drop_interrupted()
        self._cancel_silence_timer()
        self._goto(TurnState.THINKING)
        self._start_reply(self.agent.respond(Dtmf(digit)))

    def on_text(self, text: str) -> None:
        """A typed turn (browser widgets): skips STT, otherwise a normal turn."""
        self._drop_interrupted()
        self._cancel_silence_timer()
        self._goto(TurnState.THINKING)
        self.turn_count += 1
        self.emit("stt.final", text=text, audio_ms=0, latency_ms=0.0, source="text")
        self._start_reply(self.agent.respond(UserTurn(text, 0, self.turn_count)))

    # --- speech start and barge-in ----------------------------------------------------

    def _drop_interrupted(self) -> None:
        """Give up on resuming a cut reply: its agent stops streaming into it."""
        reply, self._interrupted = self._interrupted, None
        if reply is not None and reply.feeder is not None:
            reply.feeder.cancel()

    def _on_speech_start(self, event: SpeechStart) -> None:
        self.emit("vad.speech_started", onset_ms=event.onset_ms, at_ms=event.at_ms)
        self._cancel_silence_timer()
        self._reprompts = 0
        reply = self._reply
        if reply is not None:
            if not self.config.turn.barge_in:
                return  # the caller waits for the agent; their turn is heard afterwards
            audible = reply.audible()
            unplayed = " ".join(reply.unplayed_sentences())
            gap_ms = event.onset_ms - reply.turn_ended_ms
            if reply.turn_text is not None and gap_ms <= self.config.turn.merge_window_ms:
                # they carried on almost at once: it was a pause inside one sentence, so the
                # next piece joins this one instead of answering a half sentence
                self._carry = reply.turn_audio
                self._stop_reply()
                self.emit("turn.merged", reply_id=reply.id, gap_ms=gap_ms)
            else:
                self._interrupted = self._stop_reply(keep_for_resume=True)
            self.emit(
                "tts.interrupted",
                reply_id=reply.id,
                played_text=reply.played_text(),
                unplayed_text=unplayed,
                cleared=audible,
                # speech onset -> agent stopped, in audio time
                detect_ms=event.at_ms - event.onset_ms,
            )
        self._goto(TurnState.USER_SPEAKING)

    def _stop_reply(self, keep_for_resume: bool = False) -> _Reply | None:
        """Stop speaking now; clear the far end only if it still holds our audio.

        Returns the reply when it was audible and ``keep_for_resume`` asks to keep it (its
        agent keeps streaming into it) so that a backchannel can resume it.
        """
        reply = self._reply
        if reply is None:
            return None
        self._reply = None
        if self._speaker is not None:
            self._speaker.cancel()
        audible = reply.audible()
        if audible:
            reply.cleared = True
            self._spawn(self.transport.clear(), "clear")
        for segment in reply.sent:
            fut = self._mark_waiters.pop(segment.mark, None)
            if fut is not None:
                fut.cancel()
        if keep_for_resume and audible:
            return reply
        if reply.feeder is not None:
            reply.feeder.cancel()
        return None

    # --- end of turn ------------------------------------------------------------------

    def _request_speculation(self) -> None:
        if self._spec is not None and not self._spec.task.done():
            self._spec_wanted = True  # rerun on the newer audio once this one finishes
            return
        self._start_speculation()

    def _start_speculation(self) -> None:
        seg = self.segmenter
        self._spec_wanted = False
        task = self._spawn(
            self.stt.transcribe(self._carry + seg.utterance(), self._stt_prompt()), "stt")
        spec = _Speculation(seg.version, task, len(self._carry))
        self._spec = spec
        task.add_done_callback(lambda _t: self._speculation_done(spec))

    def _speculation_done(self, spec: _Speculation) -> None:
        if self.ended.is_set() or spec is not self._spec:
            return
        if self._spec_wanted and self.segmenter.state is VadState.PAUSED:
            self._start_speculation()
        elif self.segmenter.state is VadState.PAUSED and self._committing is None:
            self._maybe_end_turn()

    def _fresh_transcript(self) -> Any | None:
        spec = self._spec
        if spec is None or not self._current(spec) or not spec.task.done():
            return None
        if spec.task.cancelled() or spec.task.exception() is not None:
            return None
        return spec.task.result()

    def _current(self, spec: _Speculation) -> bool:
        """Was ``spec`` given the audio the turn has now (same utterance, same carry)?"""
        return spec.version == self.segmenter.version and spec.carried == len(self._carry)

    def _stt_prompt(self) -> str | None:
        """The agent's vocabulary for the recogniser (an optional ``stt_prompt``)."""
        prompt = getattr(self.agent, "stt_prompt", None)
        return prompt if isinstance(prompt, str) and prompt.strip() else None

    def _maybe_end_turn(self) -> None:
        seg = self.segmenter
        turn = self.config.turn
        if seg.state is VadState.SPEECH:
            if seg.now_ms - seg.onset_ms >= turn.max_turn_s * 1000:
                self._end_turn(forced=True)
            return
        silence = seg.silence_ms
        if silence >= turn.end_silence_max_ms:
            self._end_turn()
            return
        if silence < turn.end_silence_ms:
            return
        if self._interrupted is not None and seg.span_ms < turn.backchannel_max_ms:
            self._end_turn()  # a short sound over the agent: no need for words
            return
        transcript = self._fresh_transcript()
        if transcript is not None and (not transcript.text or sounds_finished(transcript.text)):
            self._end_turn()

    def _end_turn(self, forced: bool = False) -> None:
        seg = self.segmenter
        span_ms = seg.span_ms
        speech_ms = seg.speech_ms
        silence_ms = seg.silence_ms
        spec = self._spec if self._spec is not None and self._current(self._spec) else None
        audio = self._carry + seg.end_utterance()
        self._carry = b""
        self._spec = None
        self.emit(
            "vad.speech_stopped",
            speech_ms=speech_ms,
            span_ms=span_ms,
            silence_ms=silence_ms,
            forced=forced,
        )
        self._committing = self._spawn(
            self._commit(audio, span_ms, spec, forced, self._last_voiced_at, seg.now_ms),
            "commit",
        )

    async def _commit(
        self,
        audio: bytes,
        span_ms: int,
        spec: _Speculation | None,
        forced: bool,
        voiced_at: float,
        ended_ms: int,
    ) -> None:
        try:
            interrupted = self._interrupted
            self._interrupted = None
            turn = self.config.turn
            if interrupted is not None and span_ms < turn.backchannel_max_ms:
                self._resume(interrupted, why="short")
                return
            if interrupted is not None and interrupted.feeder is not None:
                interrupted.feeder.cancel()
            waited = time.monotonic()
            if spec is not None and not forced:
                transcript = await spec.task
            else:
                transcript = await self.stt.transcribe(audio, self._stt_prompt())
            wait_ms = (time.monotonic() - waited) * 1000
            text = transcript.text.strip()
            if interrupted is not None and is_backchannel(text, set(turn.backchannel_words)):
                self.emit("stt.backchannel", text=text, audio_ms=ms_of(audio))
                self._resume(interrupted, why="backchannel")
                return
            if text and self.segmenter.state is not VadState.SILENCE and not forced:
                # the caller went on talking while we transcribed: one turn, not two
                self._carry = audio  # already holds any earlier piece
                self.emit("stt.partial", text=text, audio_ms=ms_of(audio))
                if self.segmenter.state is VadState.PAUSED:
                    self._request_speculation()  # the pause's transcript lacked this piece
                return
            if not text:
                self.emit("stt.empty", audio_ms=ms_of(audio))
                self._goto(TurnState.LISTENING)
                self._arm_silence_timer()
                return
            self.turn_count += 1
            self.emit(
                "stt.final",
                text=text,
                audio_ms=ms_of(audio),
                latency_ms=round(transcript.latency_ms, 1),
                wait_ms=round(wait_ms, 1),
                turn=self.turn_count,
            )
            self._goto(TurnState.THINKING)
            reply = self._start_reply(
                self.agent.respond(UserTurn(text, ms_of(audio), self.turn_count))
            )
            reply.turn_voiced_at = voiced_at
            reply.turn_stt_ms = transcript.latency_ms
            reply.turn_text = text
            reply.turn_audio = audio
            reply.turn_ended_ms = ended_ms
        except Exception as exc:
            log.exception("session %s: turn failed", self.id)
            self.emit("stt.error", error=str(exc))
            self._goto(TurnState.THINKING)
            self._start_reply(_say("Sorry, I didn't catch that. Could you say it again?"))
        finally:
            self._committing = None

    def _resume(self, reply: _Reply, why: str) -> None:
        """Carry on with a reply cut by a backchannel, from its first unheard sentence."""
        left = reply.unplayed_sentences()
        reply.sent = [s for s in reply.sent if s.mark in reply.played]
        reply.pending.extendleft(Say(t) for t in reversed(left))
        reply.speaking = None
        reply.cleared = False
        self.emit("tts.resumed", reply_id=reply.id, why=why, text=" ".join(left))
        self._goto(TurnState.THINKING)
        self._reply = reply
        self._speaker = self._spawn(self._speak(reply), "speaker")

    # --- replies ----------------------------------------------------------------------

    def _next_reply_id(self) -> str:
        self._reply_seq += 1
        return f"r{self._reply_seq}"

    def _goto(self, state: TurnState) -> None:
        self.turns.go(state)

    def _start_reply(self, actions: AsyncIterator[AgentAction]) -> _Reply:
        self._stop_reply()
        reply = _Reply(id=self._next_reply_id())
        self._reply = reply
        reply.feeder = self._spawn(self._feed(reply, actions), "agent")
        self._speaker = self._spawn(self._speak(reply), "speaker")
        return reply

    async def _feed(self, reply: _Reply, actions: AsyncIterator[AgentAction]) -> None:
        try:
            async for action in actions:
                if isinstance(action, Say):
                    self.emit("agent.reply", reply_id=reply.id, text=action.text)
                    for sentence in self.split(action.text, self.config.tts.first_chunk_chars):
                        reply.pending.append(Say(sentence))
                else:
                    reply.pending.append(action)
                reply.wake.set()
        finally:
            reply.agent_done = True
            reply.wake.set()

    async def _speak(self, reply: _Reply) -> None:
        while True:
            if not reply.pending:
                if reply.agent_done:
                    break
                reply.wake.clear()
                await reply.wake.wait()
                continue
            action = reply.pending.popleft()
            if isinstance(action, Say):
                await self._say(reply, action.text)
            elif isinstance(action, HangUp):
                await self._drain(reply)
                self.emit("call.hangup", reason=action.reason)
                await self.transport.end(action.reason)
                await self.close(f"agent hung up: {action.reason}")
                return
            elif isinstance(action, Transfer):
                await self._drain(reply)
                self.emit("call.transfer", target=action.target, reason=action.reason)
                await self.transport.transfer(action.target)
                await self.close(f"transferred to {action.target}")
                return
        await self._drain(reply)
        if self._reply is reply:
            self._reply = None
            if self.turns.state in (TurnState.AGENT_SPEAKING, TurnState.THINKING):
                self._goto(TurnState.LISTENING)
                self._arm_silence_timer()

    async def _say(self, reply: _Reply, text: str) -> None:
        reply.speaking = text
        started = time.monotonic()
        pcm = await self.tts.synthesize(text)
        pcm = resample(pcm, self.tts.sample_rate, self.transport.out_rate)
        reply.marks += 1
        mark = f"{reply.id}:{reply.marks}"
        segment = _Segment(text, mark, ms_of(pcm, self.transport.out_rate))
        self._mark_waiters[mark] = asyncio.get_running_loop().create_future()
        reply.sent.append(segment)
        reply.speaking = None
        self.emit(
            "tts.started",
            reply_id=reply.id,
            text=text,
            audio_ms=segment.ms,
            synth_ms=round((time.monotonic() - started) * 1000, 1),
        )
        self.emit(
            "audio.levels",
            dir="out",
            hop_ms=LEVEL_HOP_MS,
            levels=levels(pcm, self.transport.out_rate, LEVEL_HOP_MS),
            reply_id=reply.id,
        )
        if self.turns.state is not TurnState.AGENT_SPEAKING:
            self._goto(TurnState.AGENT_SPEAKING)
        await self.transport.send_audio(pcm)
        await self.transport.send_mark(mark)
        if self.recorder is not None:
            self.recorder.agent(pcm, self.transport.out_rate)
        if reply.turn_voiced_at is not None:
            # the server's view of the response latency, split into its parts
            self.emit(
                "turn.latency",
                reply_id=reply.id,
                total_ms=round((time.monotonic() - reply.turn_voiced_at) * 1000, 1),
                stt_ms=round(reply.turn_stt_ms, 1),
                tts_ms=round((time.monotonic() - started) * 1000, 1),
            )
            reply.turn_voiced_at = None

    async def _drain(self, reply: _Reply) -> None:
        """Wait until the far end has played everything sent for this reply."""
        # a far end that never echoes marks must not hold the call forever
        budget = sum(s.ms for s in reply.sent if s.mark not in reply.played) / 1000 + 5.0
        for segment in list(reply.sent):
            fut = self._mark_waiters.get(segment.mark)
            if fut is None:
                continue
            try:
                await asyncio.wait_for(asyncio.shield(fut), timeout=budget)
            except TimeoutError:
                log.warning("session %s: mark %s never came back", self.id, segment.mark)
                reply.played.add(segment.mark)
            finally:
                self._mark_waiters.pop(segment.mark, None)

    # --- silence ----------------------------------------------------------------------

    def _arm_silence_timer(self) -> None:
        self._cancel_silence_timer()
        self._silence_task = self._spawn(self._silence_timer(), "silence")

    def _cancel_silence_timer(self) -> None:
        if self._silence_task is not None:
            self._silence_task.cancel()
            self._silence_task = None

    async def _silence_timer(self) -> None:
        turn = self.config.turn
        await asyncio.sleep(turn.reprompt_after_s)
        if self.turns.state is not TurnState.LISTENING:
            return
        self._silence_task = None
        if self._reprompts < turn.max_reprompts:
            self._reprompts += 1
            self.emit("silence.reprompt", count=self._reprompts)
            self._goto(TurnState.THINKING)
            self._start_reply(_say(turn.reprompt_text))
        else:
            self.emit("silence.timeout", reprompts=self._reprompts)
            self._goto(TurnState.THINKING)
            self._start_reply(_say(turn.goodbye_text, HangUp("silence")))


async def _say(text: str, *then: AgentAction) -> AsyncIterator[AgentAction]:
    yield Say(text)
    for action in then:
        yield action


__all__ = ["CallSession", "SpeechToText", "TextToSpeech"]
