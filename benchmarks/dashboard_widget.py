"""The voice widget's own delays, in Debian's chromium against the real gateway.

    python -m benchmarks.dashboard_widget [--seconds 45]

The demo page's widget places a call with a fake microphone looping real speech (an
Asterisk prompt every 5.5 s), so the agent answers some turns and is talked over in others.
The server is wrapped in an ASGI layer that timestamps every binary frame of /ws/browser
as the server receives or sends it; the widget's worklets timestamp the same frames
(Date.now(), 1 ms resolution, the same machine's clock):

* capture -> server: the capture worklet has the 20 ms frame's last sample -> the server
  receives that frame (the microphone's own input buffering, before the worklet, is not
  visible to a page and is not included);
* server -> speaker: the server writes the first audio chunk of a reply -> the playback
  worklet hands its first sample to the audio output, plus the output latency the
  AudioContext reports (baseLatency + outputLatency);
* clear -> silence: a barge-in's ``clear`` reaches the page -> the playback worklet has
  dropped its queue (the next render quantum, <= 8 ms later, is silent).

Prints a table and writes benchmarks/results/dashboard_widget.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from benchmarks.browser import launch, speech_wav
from gateway.app import create_app
from gateway.config import Settings
from gateway.server import ServerThread

RESULTS = Path(__file__).parent / "results"
REPLY_GAP_S = 0.3  # a chunk sent after this much quiet starts a new reply


class WireClock:
    """Timestamps /ws/browser binary frames as the application receives and sends them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.received: list[float] = []
        self.sent: list[float] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or scope["path"] != "/ws/browser":
            await self.app(scope, receive, send)
            return

        async def timed_receive() -> Message:
            message = await receive()
            if message["type"] == "websocket.receive" and message.get("bytes") is not None:
                self.received.append(time.time())
            return message

        async def timed_send(message: Message) -> None:
            if message["type"] == "websocket.send" and message.get("bytes") is not None:
                self.sent.append(time.time())
            await send(message)

        await self.app(scope, timed_receive, timed_send)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
        "max_ms": round(ordered[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=45.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # speech every 5.5 s: some turns are answered, some talk over the agent (barge-ins)
        mic = speech_wav(Path(tmp) / "caller.wav", "conf-locked", 1.0, silence_after_s=2.5)
        settings = Settings(data_dir=Path(tmp))
        settings.voice.turn.reprompt_after_s = 60.0
        app = create_app(settings)
        clock = WireClock(app)
        app_any: Any = clock
        app_any.state = app.state  # ServerThread reads the runtime from app.state
        with ServerThread(app_any) as server, sync_playwright() as p:
            browser = launch(p, mic)
            page = browser.new_page()
            page.goto(f"{server.url}/")
            page.locator("voxgate-call button.call").click()
            time.sleep(args.seconds)
            stats: dict[str, Any] = page.evaluate(
                "() => document.querySelector('voxgate-call').stats"
            )
            page.locator("voxgate-call button.call").click()
            time.sleep(1.0)
            browser.close()
    captured = stats["captureTimes"]
    n = min(len(captured), len(clock.received))
    capture_to_server = [clock.received[i] * 1000 - captured[i] for i in range(n)]
    starts = {s["index"]: s["at"] for s in stats["chunkStarts"]}
    first_chunks = [
        i for i, t in enumerate(clock.sent) if i == 0 or t - clock.sent[i - 1] > REPLY_GAP_S
    ]
    server_to_worklet = [starts[i] - clock.sent[i] * 1000 for i in first_chunks if i in starts]
    output_ms = float(stats["outputLatencyMs"])
    result = {
        "seconds": args.seconds,
        "turns": sum(1 for c in stats["captions"] if c["who"] == "user"),
        "context_sample_rate": stats["contextRate"],
        "sent_sample_rate": stats["sampleRate"],
        "capture_to_server": summary(capture_to_server),
        "server_to_playback_start": summary(server_to_worklet),
        "audio_output_latency_ms": round(output_ms, 1),
        "server_to_speaker_p50_ms": round(
            statistics.median(server_to_worklet) + output_ms, 1
        ),
        # a barge-in's clear arriving in the page -> the speaker worklet dropping the audio
        "clear_to_worklet_dropped": (
            summary(stats["clearDelaysMs"]) if stats["clearDelaysMs"] else None
        ),
        "marks_echoed": stats["marksEchoed"],
        "frames_sent": stats["framesSent"],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dashboard_widget.json").write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
