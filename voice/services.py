"""The process-wide voice resources shared by every call: the models and their pools.

The recogniser (whisper or Moonshine) and piper are loaded once per process and reached
through worker pools the gateway plugs in (orchestration's bulkheads), so many calls share
two CPU cores without one call's burst starving the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from voice.config import SttConfig, VoiceConfig
from voice.moonshine import MoonshineSTT
from voice.ports import WorkerPool
from voice.replies import keep
from voice.stt import WhisperSTT
from voice.tts import PiperTTS, split_sentences

P = TypeVar("P", bound=WorkerPool)
Recogniser = WhisperSTT | MoonshineSTT


def recogniser(config: SttConfig, data_dir: Path, pool: WorkerPool) -> Recogniser:
    """The speech-to-text model ``config.model`` names, not loaded yet."""
    if config.moonshine:
        return MoonshineSTT(config, data_dir, pool)
    return WhisperSTT(config, data_dir, pool)


# makes a pool: (name, jobs running at most, jobs waiting at most)
PoolFactory = Callable[[str, int, int], P]


@dataclass
class VoiceServices(Generic[P]):
    config: VoiceConfig
    stt: Recogniser
    tts: PiperTTS
    stt_pool: P
    tts_pool: P
    load_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def create(cls, config: VoiceConfig, data_dir: Path, pool: PoolFactory[P],
               ) -> VoiceServices[P]:
        """The models (not loaded yet) on two pools made by ``pool``: "stt" and "tts"."""
        stt_pool = pool("stt", config.stt.workers, config.stt.queue)
        tts_pool = pool("tts", config.tts.workers, config.tts.queue)
        return cls(
            config=config,
            stt=recogniser(config.stt, data_dir, stt_pool),
            tts=PiperTTS(config.tts, tts_pool),
            stt_pool=stt_pool,
            tts_pool=tts_pool,
        )

    def load(self) -> None:
        """Load and warm both models (blocking; call from a thread at start-up)."""
        for name, part in (("stt", self.stt), ("tts", self.tts)):
            started = time.perf_counter()
            part.load()
            part.warmup()
            self.load_ms[name] = round((time.perf_counter() - started) * 1000, 1)
        self.prepare_lines()

    def prepare_lines(self) -> None:
        """Synthesise the session's own lines once, at start-up: the apology for a sentence
        piper cannot synthesise (it must not need piper then), and the lines every call may
        hear, kept in piper's cache so they cost no synthesis and start at once."""
        turn = self.config.turn
        keep(self.tts, turn.tts_error_text, self.tts.synthesize_sync(turn.tts_error_text))
        for line in (turn.reprompt_text, turn.goodbye_text, turn.stt_error_text,
                     turn.no_reply_text):
            for sentence in self.split(line, self.config.tts.first_chunk_chars):
                self.tts.pin(sentence)

    def split(self, text: str, first_chunk_chars: int) -> list[str]:
        return split_sentences(text, first_chunk_chars, self.config.tts.first_chunk_words)
