"""benchmarks/idle_streams.py's own parts: its streams speak Twilio's protocol as the
gateway reads it, its raised policies are settings the gateway takes, its medians, and a
few streams held open on a real `voxgate serve` (no timings asserted)."""

from __future__ import annotations

import asyncio
import base64
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.idle_client import Crowd, Stream, hiss
from benchmarks.idle_streams import add_marginal, headline, medians, raised_policies
from gateway.config import Settings
from gateway.servers.serve_process import ServeProcess
from gateway.transports.twilio_protocol import MediaMessage, parse_inbound
from voice.audio import ulaw_codes_under, ulaw_decode


def test_a_silence_frame_is_a_twilio_media_message_of_20_ms_line_silence() -> None:
    stream = Stream(0, None)  # type: ignore[arg-type]  # no socket needed to format
    first, second = parse_inbound(stream.media()), parse_inbound(stream.media())
    assert isinstance(first, MediaMessage) and isinstance(second, MediaMessage)
    assert first.payload == b"\xff" * 160 and first.track == "inbound"
    assert first.stream_sid == stream.stream_sid
    assert (second.sequence_number, second.chunk, second.timestamp) == (
        first.sequence_number + 1, first.chunk + 1, first.timestamp + 20)


def test_a_hissing_line_carries_faint_noise_that_the_gateways_gate_takes() -> None:
    stream = Stream(0, None)  # type: ignore[arg-type]
    stream.payloads = hiss(-70.0)
    frames = [parse_inbound(stream.media()) for _ in range(50)]
    payloads = [f.payload for f in frames if isinstance(f, MediaMessage)]
    assert len(set(payloads)) == 50  # a second of noise, not one frame repeated
    pcm = np.frombuffer(ulaw_decode(b"".join(payloads)), "<i2").astype(float)
    assert -72 < 20 * np.log10(np.sqrt(np.mean(pcm**2)) / 32768) < -68
    quiet = ulaw_codes_under(10 ** (-56 / 20))  # voice/line_in.py's gate at the default floor
    assert sum(not p.translate(None, quiet) for p in payloads) >= 45
    louder = [base64.b64decode(p) for p in hiss(-60.0)]
    assert not any(not p.translate(None, quiet) for p in louder)


def test_the_raised_policies_are_settings_the_gateway_takes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in raised_policies(500, 60).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.max_sessions >= 500 and settings.limits.live_calls_per_address >= 500
    assert settings.voice.turn.reprompt_after_s > 60 and settings.idle_timeout_s > 60


def test_medians_per_step_and_the_live_caller_over_runs() -> None:
    def row(cpu: float, ms: int | None) -> dict[str, Any]:
        return {"mode": "silent", "asked": 100, "server_cpu_pct": cpu,
                "live_call": {"answered": ms is not None, "response_ms": ms}}

    out = medians([[row(10.0, 900)], [row(30.0, None)], [row(20.0, 1100)]])
    assert out[0]["server_cpu_pct"] == 20.0 and out[0]["asked"] == 100
    assert out[0]["live_call"]["answered_runs"] == 2
    assert out[0]["live_call"]["response_ms"] == 1000


def test_the_headline_is_the_largest_step_of_each_mode() -> None:
    def row(mode: str, asked: int, open_at_end: int) -> dict[str, Any]:
        return {"mode": mode, "asked": asked, "connected": asked, "open_at_end": open_at_end,
                "server_cpu_pct": 1.0, "server_rss_kb_per_stream": 200,
                "healthz_p95_ms": 5, "live_call": {"answered": True},
                "server_rss_mb": 600.0 + open_at_end / 10}

    steps = [row("silent", 100, 100), row("silent", 500, 90), row("held", 500, 500)]
    add_marginal(steps)
    top = headline(steps)
    assert top["streams"] == 500 and steps[0]["server_rss_kb_per_stream_marginal"] is None
    assert top["silent"]["open_at_end"] == 90 and top["held"]["open_at_end"] == 500


def _heard(stream: Stream) -> bool:
    """The greeting arrived and its mark went back once it had played."""
    return stream.first_audio_at is not None and stream.marks_echoed > 0


async def _greeted(crowd: Crowd) -> None:
    while not all(_heard(s) for s in crowd.streams):  # noqa: ASYNC110
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("mode", ["silent", "held"])
def test_streams_are_greeted_and_held_open_on_a_real_server(mode: str) -> None:
    async def hold(node: ServeProcess) -> None:
        crowd = Crowd(node.url.replace("http://", "ws://") + "/ws/twilio",
                      "silent" if mode == "silent" else "held")
        await crowd.open(3)
        try:
            await asyncio.wait_for(_greeted(crowd), 120)  # a bound, not a measurement
            assert len(crowd.streams) == 3 and not crowd.failures
            assert crowd.open_count() == 3
            if crowd.sender is not None:
                assert crowd.sender.sent > 0
        finally:
            await crowd.close()

    with tempfile.TemporaryDirectory() as tmp, ServeProcess(
            Path(tmp), **raised_policies(3, 10)) as node:
        asyncio.run(hold(node))
