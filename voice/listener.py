"""The caller's side of a call: VAD, speculative transcription, when a turn ends, and the
turn's audio (with the earlier pieces it continues).

A turn ends after ``end_silence_ms`` of silence when the speculative transcript reads as
a finished sentence, after ``end_silence_max_ms`` whatever it says, or at ``max_turn_s``.
The session decides what a finished turn means (a backchannel, a merge, an answer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from voice.audio import levels
from voice.config import VoiceConfig
from voice.replies import LEVEL_HOP_MS
from voice.speculation import Speculation, Speculator, SpeechToText
from voice.turns import sounds_finished
from voice.vad import Pause, Resume, Segmenter, SpeechStart, VadState

LEVEL_EVENT_HOPS = 6  # one audio.levels event per 240 ms of caller speech
Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


@dataclass(frozen=True, slots=True)
class Cut:
    """A turn whose answer was cut because the caller carried on: the turn now being
    heard replaces it (``UserTurn.supersedes``)."""

    index: int
    text: str


@dataclass(frozen=True, slots=True)
class Heard:
    """A turn as it ended: its audio and what is known about it."""

    audio: bytes
    span_ms: int
    spec: Speculation | None
    forced: bool
    voiced_at: float  # wall time of its last voiced frame
    ended_ms: int  # audio time
    cut: Cut | None


class Listener:
    def __init__(
        self,
        config: VoiceConfig,
        stt: SpeechToText,
        emit: Callable[..., None],
        spawn: Spawn,
        prompt: Callable[[], str | None],
        short_ends: Callable[[], bool],
        on_start: Callable[[SpeechStart], None],
        on_end: Callable[[Heard], Coroutine[Any, Any, None]],
    ) -> None:
        self.config = config.turn
        trust = config.turn.trust_punctuation
        self.trust_punctuation = not config.stt.moonshine if trust is None else trust
        self.stt = stt
        self.emit = emit
        self.spawn = spawn
        self.prompt = prompt
        self.short_ends = short_ends  # a short sound ends the turn (it cut the agent)
        self.on_start = on_start
        self.on_end = on_end  # runs as the "commit" task
        self.segmenter = Segmenter(config.vad)
        self.speculator = Speculator(stt, self.segmenter, spawn, prompt, self._speculated,
                                     config.stt.speculate_max_queue)
        self.cut: Cut | None = None
        self.committing: asyncio.Task[None] | None = None
        self.last_voiced_at = 0.0  # wall time of the last voiced frame seen
        # answering early (voice.early): a finished-looking transcript this far into a
        # pause (text, silence_ms), once per utterance version; and the caller going on
        self.on_early: Callable[[str, int], None] = lambda text, silence_ms: None
        self.on_resume: Callable[[], None] = lambda: None
        self._early_version = -1
        self._level_audio = bytearray()  # caller audio not yet measured for audio.levels

    def feed(self, frame: bytes, quiet: bool = False) -> None:
        seg = self.segmenter
        event = seg.process(frame, quiet)
        if seg.state is not VadState.SILENCE and seg.last_voiced_ms == seg.now_ms:
            self.last_voiced_at = time.monotonic()
        self._meter(frame, seg.state is not VadState.SILENCE or event is not None)
        if isinstance(event, SpeechStart):
            self.on_start(event)
        elif isinstance(event, Pause):
            # a short sound over the agent ends as a backchannel, without its words
            if not (seg.span_ms < self.config.backchannel_max_ms and self.short_ends()):
                self.speculator.request()
        elif isinstance(event, Resume):
            self.speculator.resumed()
            self.on_resume()
        if seg.state is not VadState.SILENCE and self.committing is None:
            self.maybe_end()

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

    @property
    def silent(self) -> bool:
        return self.segmenter.state is VadState.SILENCE

    def _speculated(self) -> None:
        if self.segmenter.state is VadState.PAUSED and self.committing is None:
            self.maybe_end()

    def maybe_end(self) -> None:
        seg = self.segmenter
        turn = self.config
        if seg.state is VadState.SPEECH:
            if seg.now_ms - seg.onset_ms >= turn.max_turn_s * 1000:
                self._end(forced=True)
            return
        silence = seg.silence_ms
        if silence >= turn.end_silence_max_ms:
            self._end()
            return
        if silence < turn.end_silence_ms:
            if 0 < turn.early_reply_ms <= silence and self._early_version != seg.version:
                self._maybe_early(silence, self.speculator.fresh())
            return
        if seg.span_ms < turn.backchannel_max_ms and self.short_ends():
            self._end()  # a short sound over the agent: no need for words
            return
        transcript = self.speculator.fresh()
        if transcript is not None and (not transcript.text or self._finished(transcript.text)):
            self._end()
        elif turn.early_reply_ms and self._early_version != seg.version and silence >= (
                turn.end_silence_max_ms - turn.end_silence_ms + turn.early_reply_ms):
            # a turn that does not read finished ends at end_silence_max_ms whatever it
            # says: it is answered early as long before that as a finished one is
            self._maybe_early(silence, transcript, finished=False)

    def _finished(self, text: str) -> bool:
        return sounds_finished(text, self.trust_punctuation)

    def _maybe_early(self, silence_ms: int, transcript: Any | None,
                     finished: bool = True) -> None:
        """Offer ``transcript`` (the fresh speculative one, if ready) as an early turn."""
        if self.short_ends():
            return  # over a reply the caller cut: a backchannel, maybe
        if transcript is not None and transcript.text.strip() and (
                not finished or self._finished(transcript.text)):
            self._early_version = self.segmenter.version
            self.on_early(transcript.text.strip(), silence_ms)

    def _end(self, forced: bool = False) -> None:
        seg = self.segmenter
        span_ms, speech_ms, silence_ms, now_ms = (seg.span_ms, seg.speech_ms, seg.silence_ms,
                                                  seg.now_ms)
        spec, audio = self.speculator.take()
        cut, self.cut = self.cut, None
        self.emit("vad.speech_stopped", speech_ms=speech_ms, span_ms=span_ms,
                  silence_ms=silence_ms, forced=forced)
        heard = Heard(audio, span_ms, spec, forced, self.last_voiced_at, now_ms, cut)
        self.committing = self.spawn(self.on_end(heard), "commit")

    async def transcribe(self, heard: Heard) -> Any:
        """The turn's transcript: the speculative one if it fits and did not fail."""
        if heard.spec is not None and not heard.forced:
            transcript = await heard.spec.task
            if transcript is not None:
                return transcript
        self.speculator.runs += 1
        return await self.stt.transcribe(heard.audio, self.prompt())

    def tally(self) -> dict[str, int]:
        """For the turn being delivered: the whisper runs it cost (speculative ones at its
        pauses, pieces it continues and noise since the last turn included) and how many
        of them were thrown away (all but the one whose transcript is delivered)."""
        runs, self.speculator.runs = self.speculator.runs, 0
        return {"stt_runs": runs, "stt_wasted": max(0, runs - 1)}

    def merge(self, audio: bytes, cut: Cut) -> None:
        """The caller carried on right after a turn we had started to answer: the turn
        being heard starts with that turn's audio and replaces it."""
        self.speculator.carry = audio
        self.cut = cut

    def rejoin(self, audio: bytes) -> None:
        """A short piece taken for a backchannel was the start of the turn now heard."""
        self.speculator.carry = audio

    def carry_on(self, heard: Heard) -> None:
        """The caller went on talking while ``heard`` was transcribed: one turn, not two."""
        self.speculator.carry = heard.audio  # already holds any earlier piece
        self.cut = heard.cut
        if self.segmenter.state is VadState.PAUSED:
            self.speculator.request()  # the pause's transcript lacked this piece
