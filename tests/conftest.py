"""Shared fixtures. Models are real and loaded once per test session.

Nothing may download a model at run time: the Hugging Face hub is switched to offline
mode before any test module imports faster-whisper.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

# pg_server (a PostgreSQL server for the session) and pg_url (a fresh database on it)
# bus_server (a NATS server of the test's own, for the live bus between gateway nodes)
pytest_plugins = ("tests.pg_server", "tests.bus_server")

if TYPE_CHECKING:
    from voice.stt import WhisperSTT
    from voice.tts import PiperTTS


@pytest.fixture(scope="session")
def whisper_tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WhisperSTT]:
    """tiny.en, loaded and warmed, with a bulkhead of its own."""
    from orchestration.patterns.bulkhead import Bulkhead
    from voice.config import SttConfig
    from voice.stt import WhisperSTT

    bulkhead = Bulkhead("test-stt", max_concurrent=1, max_queue=4)
    stt = WhisperSTT(SttConfig(model="tiny.en"), tmp_path_factory.mktemp("voxgate-data"), bulkhead)
    stt.load()
    stt.warmup()
    yield stt
    bulkhead.shutdown()


@pytest.fixture(scope="session")
def piper_joe() -> Iterator[PiperTTS]:
    """The piper joe voice, loaded and warmed, with a bulkhead of its own."""
    from orchestration.patterns.bulkhead import Bulkhead
    from voice.config import TtsConfig
    from voice.tts import PiperTTS

    bulkhead = Bulkhead("test-tts", max_concurrent=1, max_queue=4)
    tts = PiperTTS(TtsConfig(), bulkhead)
    tts.load()
    tts.warmup()
    yield tts
    bulkhead.shutdown()
