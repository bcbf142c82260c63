"""One call's voice core: VAD, turn-taking, barge-in, silence handling, STT, agent, TTS.

The session is fed 20 ms frames of PCM16 at 16 kHz by a transport and speaks back through
the same transport; it knows nothing of WebSockets or telephony. Everything it decides is
an event on the bus.

Latency is spent as follows: speculative transcription starts at the first pause (100 ms
of unvoiced audio, ``voice.speculation``), so by the time the turn's closing silence has
passed the transcript is usually ready; a transcript that reads as a finished sentence
closes the turn after a short silence, anything else after a longer one. Replies are
synthesised sentence by sentence and sent as soon as each is ready; marks after each
sentence say what was heard (``voice.replies``).

Every turn gets an answer or a deliberate action: a turn merged after its answer had
started replaces the cut one (``UserTurn.supersedes``); a reply cut by a backchannel
resumes with the hang-up or transfer it still held; a turn the agent answers with nothing
is answered with ``no_reply_text``; a failed transcription or synthesis is an apology.
The agent may get a turn early, before its closing silence has passed (``voice.early``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from voice.audio import ms_of
from voice.config import VoiceConfig
from voice.early import EarlyTurns, Held
from voice.listener import Cut, Heard, Listener
from voice.ports import (
    Agent,
    AgentAction,
    CallInfo,
    Dtmf,
    EventSink,
    HangUp,
    UserTurn,
)
from voice.recorder import CallRecorder
from voice.replies import Reply, Speaker, TextToSpeech, carry_out, say_then, stream, text_of
from voice.silence import SilenceWatch
from voice.speculation import SpeechToText
from voice.transport import Transport
from voice.turns import TurnMachine, TurnState, is_backchannel
from voice.vad import SpeechStart

log = logging.getLogger(__name__)

SentenceSplitter = Callable[[str, int], list[str]]


class CallSession:
    def __init__(self, call: CallInfo, transport: Transport, agent: Agent, stt: SpeechToText,
                 tts: TextToSpeech, splitter: SentenceSplitter, bus: EventSink,
                 config: VoiceConfig, recorder: CallRecorder | None = None) -> None:
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
        self.turns = TurnMachine(self._state_changed)
        self.listener = Listener(config, stt, self.emit, self._spawn, self._stt_prompt,
                                 lambda: self._interrupted is not None,
                                 self._on_speech_start, self._commit)
        self.speaker = Speaker(self.id, transport, tts, self.emit, recorder,
                               config.turn.tts_error_text, self._speaking)
        self.silence = SilenceWatch(config.turn, self._spawn,
                                    lambda: self.turns.state is TurnState.LISTENING,
                                    self.emit, self.say)
        self.early = EarlyTurns(config.turn, agent, self.emit, self._start_reply,
                                self._drop_reply, self._idle, self._next_reply_id)
        self.early.listen(self.listener, lambda: self.turn_count + 1)
        self.ended = asyncio.Event()
        self.end_reason = ""
        self.turn_count = 0
        self._reply: Reply | None = None
        self._interrupted: Reply | None = None  # a reply cut by a barge-in, maybe resumed
        self._speaking_task: asyncio.Task[None] | None = None
        self._deferred: list[Dtmf | str] = []  # keys and typed text during a transcription
        self._reply_seq = 0
        self._started = time.monotonic()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- events ----------------------------------------------------------------------

    def emit(self, type: str, **data: Any) -> None:
        self.bus.emit(self.id, type, data)

    def _state_changed(self, old: TurnState, new: TurnState) -> None:
        self.emit("agent.state", state=new.value, previous=old.value)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("session %s task %s failed: %r", self.id, task.get_name(), exc)
            self.emit("session.error", task=task.get_name(), error=repr(exc))

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        # the agent's name for viewers: the supervisor says "supervisor", the echo agent
        # its class name
        agent = getattr(self.agent, "name", None) or type(self.agent).__name__
        phone = {"call_sid": self.call.call_sid, "caller": self.call.caller}
        self.emit("session.started", protocol=self.call.protocol, agent=str(agent),
                  **{k: v for k, v in phone.items() if v is not None})
        self.turns.go(TurnState.THINKING)
        self._start_reply(self.agent.greeting())
        self._spawn(self.speaker.prepare(), "prepare")

    async def close(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self.end_reason = reason
        self.early.drop("the call ended")
        self.ended.set()
        for task in list(self._tasks):
            task.cancel()
        self.speaker.close()
        if self.turns.state is not TurnState.IDLE:
            self.turns.go(TurnState.IDLE)
        if self.recorder is not None:
            self.recorder.close()
        seg, ms = self.listener.segmenter, int((time.monotonic() - self._started) * 1000)
        self.emit("session.ended", reason=reason, turns=self.turn_count, duration_ms=ms,
                  frames=seg.frames, frames_gated=seg.quiet_frames)  # caller audio, gated

    # --- input from the transport -----------------------------------------------------

    def feed(self, frame: bytes, quiet: bool = False) -> None:
        """One 20 ms frame of caller audio (PCM16, 16 kHz); ``quiet``: under the VAD's floor."""
        if self.ended.is_set():
            return
        if self.recorder is not None:
            self.recorder.caller(frame)
        self.listener.feed(frame, quiet)

    def on_mark(self, name: str) -> None:
        self.speaker.on_mark(self._reply, name)

    def on_dtmf(self, digit: str) -> None:
        self.emit("dtmf.received", digit=digit)
        self._answer(Dtmf(digit))

    def on_text(self, text: str) -> None:
        """A typed turn (browser widgets): skips STT, otherwise a normal turn."""
        self._answer(text)

    def _answer(self, item: Dtmf | str) -> None:
        """A key or typed text cuts the agent short, like speech. While a spoken turn is
        being transcribed it waits for that turn's answer to start, so the agent hears
        the caller's inputs in the order they gave them and the last one's answer is
        the one left standing."""
        self.early.drop("a key or text came")
        if self.listener.committing is not None or self._deferred:
            self._deferred.append(item)
            return
        self._forget(self._interrupted)  # no resuming it now
        self._interrupted = None
        self.silence.cancel()
        self.turns.go(TurnState.THINKING)
        if isinstance(item, Dtmf):
            self._start_reply(self.agent.respond(item), Reply(self._next_reply_id(), "dtmf"))
            return
        self.turn_count += 1
        self.emit("stt.final", text=item, audio_ms=0, latency_ms=0.0, source="text",
                  turn=self.turn_count)
        self._start_reply(self.agent.respond(UserTurn(item, 0, self.turn_count)),
                          Reply(self._next_reply_id(), "text"))

    # --- speech start and barge-in ----------------------------------------------------

    def _on_speech_start(self, event: SpeechStart) -> None:
        self.emit("vad.speech_started", onset_ms=event.onset_ms, at_ms=event.at_ms)
        self.silence.heard()
        reply = self._reply
        if reply is not None:
            if not self.config.turn.barge_in:
                return  # the caller waits for the agent; their turn is heard afterwards
            audible = reply.audible()
            unplayed = " ".join(reply.unplayed_sentences())
            gap_ms = event.onset_ms - reply.turn_ended_ms
            window = self.config.turn.merge_window_ms
            if reply.turn_index is not None and gap_ms <= window:
                # they carried on almost at once: it was a pause inside one sentence, so the
                # next piece joins this one and the whole replaces the turn we answered
                self.listener.merge(reply.turn_audio, Cut(reply.turn_index, reply.turn_text))
                self._stop_reply()
                self.emit("turn.merged", reply_id=reply.id, gap_ms=gap_ms,
                          turn=reply.turn_index)
            else:
                self._interrupted = self._stop_reply(keep_for_resume=True)
                if reply.rejoin_audio and event.onset_ms - reply.rejoin_ms <= window:
                    self.listener.rejoin(reply.rejoin_audio)
                    self.emit("turn.rejoined", reply_id=reply.id,
                              gap_ms=event.onset_ms - reply.rejoin_ms)
                reply.rejoin_audio = b""
            # detect_ms: speech onset -> agent stopped, in audio time
            self.emit("tts.interrupted", reply_id=reply.id, played_text=reply.played_text(),
                      unplayed_text=unplayed, cleared=audible,
                      detect_ms=event.at_ms - event.onset_ms)
        self.turns.go(TurnState.USER_SPEAKING)

    def _stop_reply(self, keep_for_resume: bool = False) -> Reply | None:
        """Stop speaking now; clear the far end only if it still holds our audio.

        With ``keep_for_resume`` the reply is returned, its agent still streaming into it,
        so that a backchannel or a cough can resume it, heard or not yet.
        """
        reply = self._reply
        if reply is None:
            return None
        self._reply = None
        if self._speaking_task is not None:
            self._speaking_task.cancel()
        if reply.audible():
            reply.cleared = True
            self._spawn(self.transport.clear(), "clear")
        self.speaker.forget(reply)
        if keep_for_resume:
            return reply
        self._forget(reply)
        return None

    # --- end of turn ------------------------------------------------------------------

    def _stt_prompt(self) -> str | None:
        """The agent's vocabulary for the recogniser (an optional ``stt_prompt``)."""
        prompt = getattr(self.agent, "stt_prompt", None)
        return prompt if isinstance(prompt, str) and prompt.strip() else None

    async def _commit(self, turn: Heard) -> None:
        """What a turn that ended means: a backchannel (the cut reply resumes), the start
        of a longer turn (the caller went on), nothing, or a turn to answer."""
        interrupted, self._interrupted = self._interrupted, None
        held = self.early.take()
        config = self.config.turn
        try:
            if interrupted is not None and turn.span_ms < config.backchannel_max_ms:
                self._resume(interrupted, "short", turn)
                return
            waited = time.monotonic()
            transcript = await self.listener.transcribe(turn)
            wait_ms = (time.monotonic() - waited) * 1000
            text = transcript.text.strip()
            if interrupted is not None:
                if is_backchannel(text, set(config.backchannel_words)):
                    self.emit("stt.backchannel", text=text, audio_ms=ms_of(turn.audio))
                    self._resume(interrupted, "backchannel", turn)
                    return
                self._forget(interrupted)  # the caller has the floor
                interrupted = None
            if text and not self.listener.silent and not turn.forced:
                self.emit("stt.partial", text=text, audio_ms=ms_of(turn.audio))
                self.listener.carry_on(turn)
                return
            # the merged audio read as nothing: the words of the cut turn still stand
            text = text or (turn.cut.text if turn.cut is not None else "")
            if not text:
                self.emit("stt.empty", audio_ms=ms_of(turn.audio))
                self.turns.go(TurnState.LISTENING)
                self.silence.arm()
                return
            self._deliver(turn, text, transcript.latency_ms, wait_ms, held)
        except Exception as exc:
            log.exception("session %s: turn failed", self.id)
            self.emit("stt.error", error=str(exc))
            self._forget(interrupted)
            self.listener.cut = turn.cut  # the next turn still replaces the cut one
            self.turns.go(TurnState.THINKING)
            self._start_reply(say_then(config.stt_error_text))
        finally:
            self.early.drop_held("the turn ended otherwise", held)  # unless it was confirmed
            self.listener.committing = None
            if self._deferred:
                self._spawn(self._answer_deferred(), "deferred")

    async def _answer_deferred(self) -> None:
        reply = self._reply
        if reply is not None and reply.feeder is not None:
            await asyncio.wait([reply.feeder])  # the agent hears the turn before the key
        deferred, self._deferred = self._deferred, []
        for item in deferred:
            self._answer(item)

    def _idle(self) -> bool:
        """Nothing in flight that an early turn could get in the way of."""
        return (self._reply is None and self._interrupted is None and not self._deferred
                and self.listener.cut is None and self.listener.committing is None
                and not self.ended.is_set())

    def _drop_reply(self, reply: Reply) -> None:
        if self._reply is reply:
            self._stop_reply()
        else:
            self._forget(reply)

    def _forget(self, reply: Reply | None) -> None:
        """Give up on a cut reply: its agent stops streaming into it."""
        if reply is not None and reply.feeder is not None:
            reply.feeder.cancel()

    def _deliver(self, turn: Heard, text: str, stt_ms: float, wait_ms: float,
                 held: Held | None = None) -> None:
        """Hand a transcribed turn to the agent and start speaking its answer (or let the
        answer it got early be heard, if it got these words)."""
        self.turn_count += 1
        supersedes = turn.cut.index if turn.cut is not None else None
        early = None if supersedes is not None else held and held.fits(text, self.turn_count,
                                                                          self._reply)
        extra = self.listener.tally() | ({} if supersedes is None else {"supersedes": supersedes})
        if early is not None:
            extra["early_ms"] = round((time.monotonic() - early.started) * 1000)
        self.emit("stt.final", text=text, audio_ms=ms_of(turn.audio), turn=self.turn_count,
                  latency_ms=round(stt_ms, 1), wait_ms=round(wait_ms, 1), **extra)
        self.turns.go(TurnState.THINKING)
        reply = early.reply if early is not None else Reply(self._next_reply_id(), "turn")
        reply.answering(turn.voiced_at, stt_ms, self.turn_count, text, turn.audio, turn.ended_ms)
        if early is not None:
            self.early.confirm(reply)
            return
        self.early.drop_held("the turn ended with other words", held)
        user_turn = UserTurn(text, ms_of(turn.audio), self.turn_count, supersedes)
        self._start_reply(self.agent.respond(user_turn), reply)

    def _resume(self, reply: Reply, why: str, piece: Heard) -> None:
        """Carry on with a reply cut by a backchannel, from its first unheard sentence."""
        reply.rejoin_audio, reply.rejoin_ms = piece.audio, piece.ended_ms
        left = reply.rewind()
        self.emit("tts.resumed", reply_id=reply.id, why=why, text=" ".join(left))
        self.turns.go(TurnState.THINKING)
        self._reply = reply
        self._speaking_task = self._spawn(self._speak(reply), "speaker")

    # --- replies ----------------------------------------------------------------------

    def _next_reply_id(self) -> str:
        self._reply_seq += 1
        return f"r{self._reply_seq}"

    def _speaking(self) -> None:
        if self.turns.state is not TurnState.AGENT_SPEAKING:
            self.turns.go(TurnState.AGENT_SPEAKING)

    def _start_reply(self, actions: AsyncIterator[AgentAction],
                     reply: Reply | None = None) -> Reply:
        self._stop_reply()
        reply = reply or Reply(self._next_reply_id())
        self._reply = reply
        reply.feeder = self._spawn(self._feed(reply, actions), "agent")
        self._speaking_task = self._spawn(self._speak(reply), "speaker")
        return reply

    async def _feed(self, reply: Reply, actions: AsyncIterator[AgentAction]) -> None:
        chunk = self.config.tts.first_chunk_chars
        await stream(reply, actions, text_of, lambda text: self.split(text, chunk), self.emit,
                     self.config.turn.no_reply_text)

    async def _speak(self, reply: Reply) -> None:
        if not await self.speaker.play(
                reply, lambda action: carry_out(action, self.transport, self.emit, self.close)):
            return
        if self._reply is reply:
            self._reply = None
            if self.turns.state in (TurnState.AGENT_SPEAKING, TurnState.THINKING):
                self.turns.go(TurnState.LISTENING)
                self.silence.arm()

    def say(self, text: str, hang_up: str | None = None) -> None:
        """Cut whatever is being said and say ``text`` (a reprompt, a goodbye), then hang
        up if ``hang_up`` gives a reason (the silence timeout, a server draining)."""
        if self.ended.is_set():
            return
        self.early.drop("the session spoke")
        self._forget(self._interrupted)
        self._interrupted = None
        self.silence.cancel()
        self.turns.go(TurnState.THINKING)
        self._start_reply(say_then(text, HangUp(hang_up)) if hang_up else say_then(text))


__all__ = ["CallSession", "SpeechToText", "TextToSpeech"]
