"""Loading the piper voice with an onnxruntime session whose memory does not ratchet.

onnxruntime's CPU arena keeps, for the life of the process, the memory of the largest
run it has served: after piper has read one long sentence (a note dictated without a
pause, read back) the process holds about 5 MB more per word of it, until it exits
(benchmarks/soak.py found resident memory growing call after call this way; a 54-word
sentence left 320 MB behind). A run on an input longer than ``SHRINK_ABOVE_IDS`` phoneme
ids (a sentence of ~15 words; the agents' longest is ~330) therefore hands the arena's
free chunks back when it ends. Shorter runs keep the arena: reusing it makes them about
20 % faster than shrinking after every run (measured on the 2-core machine). The arena is
grown to that ceiling when the voice is loaded, so the memory the process holds is known
at start-up and does not creep up as longer sentences come along.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import onnxruntime
from piper import PiperVoice
from piper.config import PiperConfig

SHRINK_ABOVE_IDS = 160
# onnxruntime's run option (onnxruntime_run_options_config_keys.h)
_SHRINK_KEY = "memory.enable_memory_arena_shrinkage"


class ShrinkingSession(onnxruntime.InferenceSession):  # type: ignore[misc]  # untyped
    """An InferenceSession that shrinks its CPU arena after runs on long inputs."""

    def __init__(self, model: str, shrink_above_ids: int = SHRINK_ABOVE_IDS) -> None:
        super().__init__(model, sess_options=onnxruntime.SessionOptions(),
                         providers=["CPUExecutionProvider"])
        self.shrink_above_ids = shrink_above_ids
        self._shrink = onnxruntime.RunOptions()
        self._shrink.add_run_config_entry(_SHRINK_KEY, "cpu:0")
        self.shrinks = 0

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any],
            run_options: onnxruntime.RunOptions | None = None) -> Any:
        ids = input_feed.get("input")
        if run_options is None and ids is not None and ids.shape[-1] > self.shrink_above_ids:
            self.shrinks += 1
            run_options = self._shrink
        return super().run(output_names, input_feed, run_options)


# read (cut to SHRINK_ABOVE_IDS ids) once at load time to grow the arena to its ceiling
_RESERVE_TEXT = ("Thank you for calling; I can check the status of our services, book or move "
                 "an appointment, take a note and read it back, or put you through to a person "
                 "at any time of the day.")


def load_voice(model_path: Path, config_path: Path) -> PiperVoice:
    """``PiperVoice.load`` for the CPU, with a ``ShrinkingSession`` whose arena is already
    as large as it will get."""
    with config_path.open(encoding="utf-8") as f:
        config = PiperConfig.from_dict(json.load(f))
    session = ShrinkingSession(str(model_path))
    voice = PiperVoice(session=session, config=config)
    ids = [i for phonemes in voice.phonemize(_RESERVE_TEXT)
           for i in voice.phonemes_to_ids(phonemes)]
    voice.phoneme_ids_to_audio(ids[:session.shrink_above_ids])
    return voice
