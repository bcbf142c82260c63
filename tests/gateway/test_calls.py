"""Whole calls against the real gateway on a loopback port, with the real models and real
human speech, over both protocols."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.client import CallResult, Segment, run_call
from gateway.evaluation.speech import load_prompt, word_error_rate
from gateway.server import ServerThread

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), agent="basic")
    settings.voice.turn.reprompt_after_s = 2.5
    settings.voice.turn.max_reprompts = 1
    with ServerThread(create_app(settings)) as running:
        yield running


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def event_types(result: CallResult) -> list[str]:
    return [e.event.type for e in result.events]


def assert_answered(result: CallResult, reference: str) -> None:
    heard = result.user_transcripts()
    assert heard, f"no transcript; events: {event_types(result)}"
    assert word_error_rate(reference, heard[0].text) <= 0.2, (reference, heard[0].text)
    replies = [u.text for u in result.agent_replies()]
    assert any(r.startswith("Hello, this is voxgate") for r in replies)
    assert any("I heard" in r for r in replies), replies
    assert rms(result.agent_audio) > 300, "the agent's audio is silent"
    types = event_types(result)
    for expected in (
        "session.started",
        "vad.speech_started",
        "vad.speech_stopped",
        "stt.final",
        "agent.state",
        "agent.reply",
        "tts.started",
    ):
        assert expected in types, expected


@pytest.mark.parametrize("protocol", ["twilio", "browser"])
@pytest.mark.parametrize("prompt", ["conf-locked", "vm-enter-num-to-call"])
def test_call_is_transcribed_and_answered(server: ServerThread, protocol: str, prompt: str) -> None:
    pcm, reference = load_prompt(prompt)
    result = asyncio.run(run_call(pcm, protocol, server.url, tail_s=10.0))  # type: ignore[arg-type]
    assert_answered(result, reference)
    stt = result.events_of("stt.final")[0].event.data
    assert stt["audio_ms"] > 500 and stt["latency_ms"] > 0
    if protocol == "twilio":
        started = result.events_of("session.started")[0].event.data
        assert started["call_sid"] == result.call_sid
        assert started["caller"] == "[phone ...0006]"  # masked in every event
    assert result.ended_by == "caller"


def test_twilio_barge_in_clears_and_stops_the_agent(server: ServerThread) -> None:
    pcm, _ = load_prompt("vm-enter-num-to-call")
    script = [Segment(pcm, after_agent_audio_ms=700)]  # talk over the greeting
    result = asyncio.run(run_call(None, "twilio", server.url, script=script, tail_s=10.0))
    barge = result.barge_ins()
    assert barge and barge[0].cleared, result.timeline
    assert barge[0].stopped_at is not None
    interrupted = result.events_of("tts.interrupted")[0].event.data
    assert interrupted["cleared"] is True
    # the greeting's first sentence had not finished when the caller spoke
    assert "How can I help" not in interrupted["played_text"]
    assert "How can I help" in interrupted["unplayed_text"]
    # the caller then had the floor and was answered
    assert result.user_transcripts()
    assert not result.events_of("tts.resumed")


def test_browser_backchannel_resumes_the_reply(server: ServerThread) -> None:
    pcm, _ = load_prompt("vm-enter-num-to-call")
    short = pcm[8000 : 8000 + 32 * 350]  # ~350 ms of speech: an "mm-hmm"
    script = [Segment(short, after_agent_audio_ms=600)]
    result = asyncio.run(run_call(None, "browser", server.url, script=script, tail_s=10.0))
    assert result.barge_ins() and result.barge_ins()[0].cleared
    resumed = result.events_of("tts.resumed")
    assert resumed, event_types(result)
    assert "How can I help" in resumed[0].event.data["text"]
    assert not result.user_transcripts()


def test_silence_reprompts_then_hangs_up(server: ServerThread, tmp_path: Path) -> None:
    quiet = b"\0" * 32_000  # one second of silence, then the line stays quiet
    result = asyncio.run(
        run_call(quiet, "browser", server.url, tail_s=20.0, hangup_after_reply=False)
    )
    types = event_types(result)
    assert types.count("silence.reprompt") == 1
    assert "silence.timeout" in types
    assert result.ended_by == "agent"
    replies = [u.text for u in result.agent_replies()]
    assert "Are you still there?" in replies
    assert any("Goodbye" in r for r in replies)
    assert result.events_of("session.ended")[0].event.data["reason"].startswith("agent hung up")


def test_twilio_dtmf_zero_transfers_the_call(server: ServerThread) -> None:
    script = [Segment(b"\0" * 3200, after_agent_quiet_ms=300, dtmf="0")]
    result = asyncio.run(run_call(None, "twilio", server.url, script=script, tail_s=10.0))
    assert result.events_of("dtmf.received")[0].event.data["digit"] == "0"
    transfer = result.events_of("call.transfer")
    assert transfer and transfer[0].event.data["target"] == "operator"
    assert result.ended_by == "agent"
    # Twilio will ask /twilio/after-stream what to do next: dial the transfer
    assert server.runtime.transfers.pop(result.call_sid or "") == "operator"
