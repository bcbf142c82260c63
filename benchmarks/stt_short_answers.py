"""Short answers over the phone line: is whisper's cross-check worth its ~300 ms on the
usual answers Moonshine is sure of (``stt.crosscheck_trusted`` set to ``USUAL_ANSWERS``;
off by default, for the cut-offs it causes: docs/voice-models.md)?

    python -m benchmarks.stt_short_answers   # needs festival festvox-kallpc16k espeak-ng

Synthesises 22 usual answers ("Yes.", "Nope.", "Thank you, goodbye.") and 30 other short
turns that sound like them or are easily misheard ("Know.", "Buy it.", "Not yet.",
"Nancy.") in six development voices (festival kal, five espeak-ng accents; no held-out
voice), sends each through the telephone line with the 300 ms pre-roll and 100 ms pause
a turn carries, and hears it with Moonshine alone and with the gateway's recogniser as a
call on an idle node does (``MoonshineSTT.transcribe_sync``: whisper tiny.en's second
opinion on short turns, given the call's words), with and without the usual answers
trusted. Scores the three against what was said (punctuation and case aside; "yeah",
"yep" and "yes" count as one answer): Moonshine alone, the cross-check on every short
turn (the default), and the cross-check skipped when Moonshine
confidently writes a usual answer. Writes benchmarks/results/stt_short_answers.json.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.heldout_caller import from_line, phone_turn
from orchestration.patterns.bulkhead import Bulkhead
from voice.config import USUAL_ANSWERS, SttConfig
from voice.moonshine import MoonshineSTT

RESULTS = Path(__file__).parent / "results" / "stt_short_answers.json"
USUAL = ("Yes.", "Yeah.", "Yep.", "No.", "Nope.", "Okay.", "Sure.", "Great.", "Thanks.",
         "Thank you.", "Goodbye.", "Bye.", "Bye bye.", "That's right.", "Correct.",
         "Yes, please.", "No, thanks.", "No, thank you.", "Thank you, goodbye.",
         "That's all.", "That's it.", "Perfect.")
OTHER = ("Now.", "Know.", "Go.", "Yes, but.", "Not yet.", "Hi.", "Hello?", "Tuesday.",
         "Nine.", "Wait.", "Maybe.", "Sorry?", "What?", "Hold on.", "Pardon?", "Nancy.",
         "Tennis.", "Good night.", "Not really.", "No idea.", "Rebook it.", "Noon.",
         "Yesterday.", "Thirty.", "The bay.", "Buy it.", "Cancel.", "Agent.", "Repeat.",
         "Help.")
VOICES = ("festival:kal_diphone", "espeak:en-gb-x-rp@150", "espeak:en-us-nyc@160",
          "espeak:en-029@150", "espeak:en-gb-scotland@160", "espeak:en-gb@170")
PREROLL, PAUSE = bytes(9600), bytes(3200)  # 300 ms and 100 ms of PCM16 16 kHz


def words(text: str) -> str:
    """What was said, for scoring: lower case, no punctuation, one spelling per answer."""
    out = re.sub(r"[^a-z' ]+", " ", text.lower().replace("good-bye", "goodbye"))
    out = " ".join(out.replace("-", " ").split())
    return {"yeah": "yes", "yep": "yes", "ok": "okay", "byebye": "bye bye"}.get(out, out)


def recogniser(trusted: tuple[str, ...]) -> MoonshineSTT:
    """The gateway's recogniser, always with time to spare for the cross-check (an idle
    node: back-to-back clips would otherwise fill its busy meter and turn it off)."""
    stt = MoonshineSTT(SttConfig(model="moonshine-base", crosscheck_trusted=trusted),
                       Path(".voxgate"), Bulkhead("short-answers", 1, 1))
    stt.load()
    stt.busy.fraction = lambda now=None: 0.0  # type: ignore[method-assign]
    return stt


def hear(checking: MoonshineSTT, trusting: MoonshineSTT, pcm: bytes) -> dict[str, Any]:
    """Moonshine alone, and the two recognisers' transcripts as a call gets them."""
    assert checking._model is not None
    moon = checking._model.decode(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0)
    checks, trusts = checking.fallbacks, trusting.fallbacks
    row: dict[str, Any] = {"moonshine": moon.text, "checked": checking.transcribe_sync(pcm).text,
                           "trusted": trusting.transcribe_sync(pcm).text}
    # whisper heard it for the checking recogniser, not for the trusting one
    row["skipped"] = checking.fallbacks > checks and trusting.fallbacks == trusts
    return row


def main() -> None:
    checking, trusting = recogniser(()), recogniser(USUAL_ANSWERS)
    rows = []
    for voice in VOICES:
        for text in USUAL + OTHER:
            pcm = PREROLL + from_line(phone_turn(text, voice)) + PAUSE
            row = {"voice": voice, "text": text, "usual": text in USUAL,
                   **hear(checking, trusting, pcm)}
            rows.append(row)
            print(f"{voice:26} {text!r:24} M {row['moonshine']!r:24} checked "
                  f"{row['checked']!r:24} skipped={row['skipped']}", flush=True)
    right = {policy: sum(words(r[policy]) == words(r["text"]) for r in rows)
             for policy in ("moonshine", "checked", "trusted")}
    skipped = [r for r in rows if r["skipped"]]
    report = {"turns": len(rows), "right": right, "skipped": len(skipped),
              "skipped_usual": sum(r["usual"] for r in skipped),
              "skipped_wrong": [(r["text"], r["moonshine"]) for r in skipped
                                if words(r["moonshine"]) != words(r["text"])],
              "rows": rows}
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=1))
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
