"""Callers who pause after "Yes," or "Okay," and go on: are they cut off?

    python -m benchmarks.comma_pauses [--trusted]   # needs festival festvox-kallpc16k espeak-ng

Twelve two-part answers ("Yes, please book it.", "Okay, thanks, bye.", "No, the other
one.") in four development voices (festival kal, espeak-ng RP, New York and Caribbean
English; no held-out voice) pause 100-360 ms at their commas. Each is synthesised, sent
through the telephone line, and spoken to `voxgate serve` (default settings) in calls of
four turns over the Twilio protocol, in real time. Counted from the server's events: turns
cut at the comma and merged with what followed (``turn.merged``), and replies made early
and dropped unheard (``agent.early_dropped``); and the caller's response latency.
``--trusted`` runs the server with ``stt.crosscheck_trusted`` set to the usual answers
(``VOXGATE_VOICE__STT__CROSSCHECK_TRUSTED``). Writes benchmarks/results/comma_pauses.json
(comma_pauses_trusted.json with ``--trusted``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx

from benchmarks.call_latency import Server
from benchmarks.heldout_caller import from_line, phone_turn
from gateway.evaluation.caller_audio import Segment
from gateway.evaluation.client import run_call
from voice.config import USUAL_ANSWERS

RESULTS = Path(__file__).parent / "results"
TEXTS = ("Yes, that's fine.", "Yes, please book it.", "No, not that one.",
         "Okay, thanks, bye.", "Yes, I think so.", "No, thank you, that's all.",
         "Great, thank you.", "Sure, go ahead.", "Yes, cancel it.", "No, the other one.",
         "Thank you, I will.", "Okay, so what now?")
VOICES = ("festival:kal_diphone", "espeak:en-gb-x-rp@150", "espeak:en-us-nyc@160",
          "espeak:en-029@150")


async def calls(url: str, turns: list[bytes]) -> dict[str, Any]:
    merged = dropped = 0
    latencies: list[float] = []
    async with httpx.AsyncClient() as client:
        for first in range(0, len(turns), 4):
            script = [Segment(pcm, after_agent_quiet_ms=700) for pcm in turns[first:first + 4]]
            result = await run_call(None, "twilio", url, script=script, tail_s=5.0)
            events = (await client.get(f"{url}/api/sessions/{result.session_id}/events")).json()
            merged += sum(e["type"] == "turn.merged" for e in events)
            dropped += sum(e["type"] == "agent.early_dropped" for e in events)
            latencies += [r.latency_s * 1000 for r in result.response_latencies()
                          if r.latency_s is not None]
    return {"turns": len(turns), "merged": merged, "early_dropped": dropped,
            "response_p50_ms": round(statistics.median(latencies)),
            "response_min_ms": round(min(latencies)), "response_max_ms": round(max(latencies))}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trusted", action="store_true",
                        help="trust Moonshine's usual answers without whisper's cross-check")
    args = parser.parse_args()
    turns = [from_line(phone_turn(text, voice)) for voice in VOICES for text in TEXTS]
    if args.trusted:
        os.environ["VOXGATE_VOICE__STT__CROSSCHECK_TRUSTED"] = json.dumps(USUAL_ANSWERS)
    with tempfile.TemporaryDirectory() as data:
        server = Server(Path(data))
        try:
            report = asyncio.run(calls(server.url, turns))
        finally:
            server.stop()
    report["trusted"] = args.trusted
    print(json.dumps(report))
    name = "comma_pauses_trusted.json" if args.trusted else "comma_pauses.json"
    (RESULTS / name).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
