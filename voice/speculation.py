"""Speculative transcription of the turn in progress.

Whisper costs a fixed ~0.25-0.4 s per utterance, so the session starts transcribing at
every pause instead of waiting for the turn to end: one job per call at a time, rerun on
the newer audio when the caller paused again meanwhile, its result used only if it was
given the audio the turn has now (same utterance, same earlier pieces).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from voice.vad import Segmenter, VadState

log = logging.getLogger(__name__)


class SpeechToText(Protocol):
    # -> voice.stt.Transcript; ``prompt``: domain phrases the recogniser should expect
    async def transcribe(self, pcm: bytes, prompt: str | None = None) -> Any: ...


Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


@dataclass(slots=True)
class Speculation:
    version: int
    task: asyncio.Task[Any]
    carried: int  # bytes of earlier pieces of the turn it was given


class Speculator:
    def __init__(self, stt: SpeechToText, segmenter: Segmenter, spawn: Spawn,
                 prompt: Callable[[], str | None], on_done: Callable[[], None]) -> None:
        self.stt = stt
        self.segmenter = segmenter
        self.spawn = spawn
        self.prompt = prompt
        self.on_done = on_done  # a job finished and no newer one was started
        # audio of this turn's earlier pieces: the caller went on after a pause, before we
        # answered; whisper hears them again with the new piece, as one sentence
        self.carry = b""
        self.current: Speculation | None = None
        self.wanted = False  # the caller paused again while a job ran: rerun it
        self.runs = 0  # whisper jobs started since the last delivered turn (Listener.tally)

    def request(self) -> None:
        if self.current is not None and not self.current.task.done():
            self.wanted = True
            return
        self._start()

    def _start(self) -> None:
        self.wanted = False
        self.runs += 1
        audio = self.carry + self.segmenter.utterance()
        task = self.spawn(self._transcribe(audio), "stt")
        spec = Speculation(self.segmenter.version, task, len(self.carry))
        self.current = spec
        task.add_done_callback(lambda _t: self._done(spec))

    async def _transcribe(self, audio: bytes) -> Any | None:
        try:
            return await self.stt.transcribe(audio, self.prompt())
        except Exception as exc:  # the turn's end transcribes again: a blip costs no turn
            log.warning("speculative transcription failed: %r", exc)
            return None

    def _done(self, spec: Speculation) -> None:
        if spec is not self.current or spec.task.cancelled():  # cancelled: the call is over
            return
        if self.wanted and self.segmenter.state is VadState.PAUSED:
            self._start()
        else:
            self.on_done()

    def fits(self, spec: Speculation) -> bool:
        """Was ``spec`` given the audio the turn has now?"""
        return spec.version == self.segmenter.version and spec.carried == len(self.carry)

    def fresh(self) -> Any | None:
        """The transcript of the turn as it is now, if one is ready."""
        spec = self.current
        if spec is None or not self.fits(spec) or not spec.task.done():
            return None
        if spec.task.cancelled() or spec.task.exception() is not None:
            return None
        return spec.task.result()  # None if it failed

    def take(self) -> tuple[Speculation | None, bytes]:
        """At the end of a turn: the job that fits it (if any) and the turn's whole audio,
        and start afresh."""
        spec = self.current if self.current is not None and self.fits(self.current) else None
        audio = self.carry + self.segmenter.end_utterance()
        self.carry = b""
        self.current = None
        return spec, audio
