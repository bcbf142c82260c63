"""The process-wide voice resources shared by every call: the models and their pools.

Whisper and piper are loaded once per process and reached through bulkheads, so many
calls share two CPU cores without one call's burst starving the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.patterns.bulkhead import Bulkhead
from voice.config import VoiceConfig
from voice.replies import keep
from voice.stt import WhisperSTT
from voice.tts import PiperTTS, split_sentences


@dataclass
class VoiceServices:
    config: VoiceConfig
    stt: WhisperSTT
    tts: PiperTTS
    stt_pool: Bulkhead
    tts_pool: Bulkhead
    load_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def create(cls, config: VoiceConfig, data_dir: Path) -> VoiceServices:
        stt_pool = Bulkhead("stt", config.stt.workers, config.stt.queue)
        tts_pool = Bulkhead("tts", config.tts.workers, config.tts.queue)
        return cls(
            config=config,
            stt=WhisperSTT(config.stt, data_dir, stt_pool),
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
        # the apology for a sentence piper cannot synthesise must not need piper then
        apology = self.config.turn.tts_error_text
        keep(self.tts, apology, self.tts.synthesize_sync(apology))

    @staticmethod
    def split(text: str, first_chunk_chars: int) -> list[str]:
        return split_sentences(text, first_chunk_chars)
