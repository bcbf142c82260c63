"""`make run` answers its own demo question: a whole call with real speech over
/ws/twilio to a gateway built exactly as `voxgate serve` builds it (create_app with the
default agents configuration, no ops url, no status file). Piper speaks the caller,
whisper hears it; the answers come from the shipped sample (said to be sample data) and,
for the gateway itself, from the running gateway's own readings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.client import Segment, run_call
from gateway.server import ServerThread
from voice.audio import resample
from voice.tts import PiperTTS

pytestmark = pytest.mark.slow


def turn(tts: PiperTTS, text: str) -> Segment:
    pcm = resample(tts.synthesize_sync(text), tts.sample_rate, 16000)
    return Segment(pcm, after_agent_quiet_ms=600, wait_limit_s=25)


def test_out_of_the_box_status_answers(tmp_path: Path, piper_joe: PiperTTS) -> None:
    settings = Settings(data_dir=tmp_path)
    settings.voice.turn.reprompt_after_s = 10
    with ServerThread(create_app(settings)) as gateway:
        result = asyncio.run(run_call(None, "twilio", gateway.url, script=[
            turn(piper_joe, "What's the status of the payments service?"),
            turn(piper_joe, "And how is the gateway doing?"),
        ], caller="+15550100009", tail_s=6.0, max_call_s=90))
    said = " ".join(u.text for u in result.agent_replies())
    heard = " | ".join(u.text for u in result.user_transcripts())
    assert "In the sample data, payments is up." in said, (said, heard)
    assert "The gateway is up. 1 live call, " in said, (said, heard)
    assert "can't get that status" not in said, (said, heard)
