"""Call recordings, only when enabled (``record_audio``): raw audio is personal data.

Each call gets ``<dir>/<session_id>/caller.wav`` (what the gateway heard) and
``agent.wav`` (what it sent), PCM16 mono 16 kHz, written as the call goes so a long call
costs no memory.
"""

from __future__ import annotations

import wave
from pathlib import Path

from voice.audio import SAMPLE_RATE, resample


class CallRecorder:
    def __init__(self, directory: Path, session_id: str) -> None:
        self.path = directory / session_id
        self.path.mkdir(parents=True, exist_ok=True)
        self._caller = self._open("caller.wav")
        self._agent = self._open("agent.wav")

    def _open(self, name: str) -> wave.Wave_write:
        out = wave.open(str(self.path / name), "wb")  # noqa: SIM115 - open for the whole call
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        return out

    def caller(self, frame: bytes) -> None:
        self._caller.writeframes(frame)

    def agent(self, pcm: bytes, rate: int) -> None:
        self._agent.writeframes(resample(pcm, rate, SAMPLE_RATE))

    def close(self) -> None:
        self._caller.close()
        self._agent.close()
