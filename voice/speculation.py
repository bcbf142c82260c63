"""Speculative transcription of the turn in progress.

Whisper costs a fixed ~0.25-0.4 s per utterance, so the session starts transcribing at
every pause instead of waiting for the turn to end: one job per call at a time, rerun on
the newer audio when the caller paused again meanwhile, its result used only if it was
given the audio the turn has now (same utterance, same earlier pieces).

With a recogniser that queues every call's jobs (``Queued``: voice.stt.WhisperSTT) a
speculative job costs the other calls nothing it need not: it waits behind their final
transcripts, it is dropped unrun when the caller goes on talking (its audio is then out of
date), it becomes a final one when the turn ends on its audio, and none is started while
``max_queue`` jobs already wait (the turn's end is then judged on silence alone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from voice.stt_jobs import SttSkipped, Ticket
from voice.vad import Segmenter, VadState

log = logging.getLogger(__name__)


class SpeechToText(Protocol):
    # -> voice.stt.Transcript; ``prompt``: domain phrases the recogniser should expect
    async def transcribe(self, pcm: bytes, prompt: str | None = None) -> Any: ...


@runtime_checkable
class Queued(Protocol):
    """A recogniser that queues every call's jobs: speculative ones wait behind finals."""

    async def speculate(self, pcm: bytes, prompt: str | None, ticket: Ticket) -> Any: ...

    def backlog(self) -> int: ...


Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


@dataclass(slots=True)
class Speculation:
    version: int
    task: asyncio.Task[Any]
    carried: int  # bytes of earlier pieces of the turn it was given
    ticket: Ticket


class Speculator:
    def __init__(self, stt: SpeechToText, segmenter: Segmenter, spawn: Spawn,
                 prompt: Callable[[], str | None], on_done: Callable[[], None],
                 max_queue: int = 1000) -> None:
        self.stt = stt
        self.max_queue = max_queue
        self.segmenter = segmenter
        self.spawn = spawn
        self.prompt = prompt
        self.on_done = on_done  # a job finished and no newer one was started
        # audio of this turn's earlier pieces: the caller went on after a pause, before we
        # answered; whisper hears them again with the new piece, as one sentence
        self.carry = b""
        self.current: Speculation | None = None
        self.wanted = False  # the caller paused again while a job ran: rerun it
        self.runs = 0  # whisper jobs run since the last delivered turn (Listener.tally)
        self.skipped = 0  # speculative jobs not started or dropped unrun (for benchmarks)

    def request(self) -> None:
        spec = self.current
        if spec is not None and not spec.task.done() and not spec.ticket.dropped:
            self.wanted = True
            return
        self._start()

    def _start(self) -> bool:
        self.wanted = False
        if isinstance(self.stt, Queued) and self.stt.backlog() >= self.max_queue:
            self.skipped += 1  # other calls' turns wait: this one's end waits for silence
            return False
        audio = self.carry + self.segmenter.utterance()
        ticket = Ticket()
        task = self.spawn(self._transcribe(audio, ticket), "stt")
        spec = Speculation(self.segmenter.version, task, len(self.carry), ticket)
        self.current = spec
        task.add_done_callback(lambda _t: self._done(spec))
        return True

    async def _transcribe(self, audio: bytes, ticket: Ticket) -> Any | None:
        try:
            if isinstance(self.stt, Queued):
                result = await self.stt.speculate(audio, self.prompt(), ticket)
            else:
                result = await self.stt.transcribe(audio, self.prompt())
        except SttSkipped:
            self.skipped += 1
            return None
        except Exception as exc:  # the turn's end transcribes again: a blip costs no turn
            self.runs += 1
            log.warning("speculative transcription failed: %r", exc)
            return None
        self.runs += 1
        return result

    def _done(self, spec: Speculation) -> None:
        if spec is not self.current or spec.task.cancelled():  # cancelled: the call is over
            return
        if not (self.wanted and self.segmenter.state is VadState.PAUSED and self._start()):
            self.on_done()

    def resumed(self) -> None:
        """The caller went on talking: the job under way has out-of-date audio."""
        self.wanted = False
        if self.current is not None and not self.current.task.done():
            self.current.ticket.dropped = True

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
        if spec is not None:
            spec.ticket.final = True  # the caller now waits for it
        elif self.current is not None:
            self.current.ticket.dropped = True
        audio = self.carry + self.segmenter.end_utterance()
        self.carry = b""
        self.current = None
        return spec, audio
