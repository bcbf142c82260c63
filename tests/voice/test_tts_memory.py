"""Piper's memory does not ratchet up with the longest sentence it ever read
(voice/piper_session.py). Measured in a fresh process: resident memory after a long
sentence, with the C heap's free pages handed back, against the same after a short one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

PROBE = textwrap.dedent("""
    import ctypes, gc, json
    from voice.config import TtsConfig
    from voice.tts import PiperTTS
    from orchestration.patterns.bulkhead import shared_bulkhead

    def held_mb():
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    tts = PiperTTS(TtsConfig(), shared_bulkhead("tts", 1, 4))
    tts.load()
    tts.synthesize_sync("Payments is up. Is there anything else I can help with?")
    short = held_mb()
    note = " ".join(["send the quarterly report to the finance team by friday"] * 6)
    tts.synthesize_sync(f"Your note says: {note}.")
    tts.synthesize_sync("Payments is up.")
    print(json.dumps({"short": short, "after_long": held_mb()}))
""")


def test_a_long_sentence_leaves_no_memory_behind() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=300, check=True)
    held = json.loads(done.stdout.strip().splitlines()[-1])
    # without shrinking, the 60-word sentence kept ~300 MB in onnxruntime's arena
    assert held["after_long"] - held["short"] < 50, held
