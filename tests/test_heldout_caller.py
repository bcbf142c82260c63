"""The held-out caller set (benchmarks/data/heldout_caller/, benchmarks/heldout_caller.py):
complete, phone-length, real speech to the project's VAD, and sent by the call client as
the very bytes committed. Only the set's shape is checked here, never what it measures."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.heldout_caller import (
    DATA,
    KED,
    LINE_RATE,
    MAX_S,
    MIN_S,
    SCRIPTS,
    SLT,
    CallerTurn,
    HeldOutError,
    calls,
    load,
)
from gateway.evaluation.caller_audio import wire_frames
from voice.audio import FRAME_BYTES, pcm_to_array, ulaw_decode
from voice.config import VadConfig
from voice.vad import Segmenter, SpeechStart


@pytest.fixture(scope="module")
def turns() -> list[CallerTurn]:
    return load()


def test_the_index_matches_the_files(turns: list[CallerTurn]) -> None:
    names = [t.name for t in turns]
    assert len(names) == len(set(names)) == sum(len(s[2]) for s in SCRIPTS)
    assert {p.stem for p in DATA.glob("*.ulaw")} == set(names)
    assert [(t.script, t.voice, t.text) for t in turns] == [
        (script, voice, text) for script, voice, texts in SCRIPTS for text in texts]
    assert {t.voice for t in turns} == {KED, SLT}


def test_calls_are_short_scripts_in_order(turns: list[CallerTurn]) -> None:
    grouped = calls()
    assert [c[0].script for c in grouped] == [s[0] for s in SCRIPTS]
    assert all(3 <= len(c) <= 5 for c in grouped)
    assert [t.name for c in grouped for t in c] == [t.name for t in turns]
    assert all(t.name == f"{t.script}_{k}" for c in grouped for k, t in enumerate(c, 1))


def test_every_turn_is_a_phone_turn(turns: list[CallerTurn]) -> None:
    for turn in turns:
        line_s = (DATA / f"{turn.name}.ulaw").stat().st_size / LINE_RATE
        assert MIN_S <= line_s <= MAX_S, turn.name
        assert turn.seconds == pytest.approx(line_s, abs=0.01), turn.name


def test_the_projects_vad_hears_speech_in_every_turn(turns: list[CallerTurn]) -> None:
    for turn in turns:
        segmenter = Segmenter(VadConfig())
        frames = [turn.pcm[i:i + FRAME_BYTES]
                  for i in range(0, len(turn.pcm) - FRAME_BYTES + 1, FRAME_BYTES)]
        events = [segmenter.process(f) for f in frames]
        assert any(isinstance(e, SpeechStart) for e in events), turn.name
        # trimmed to the speech: most of a turn is voiced
        assert segmenter.voiced_frames >= 0.4 * len(frames), turn.name


def test_the_client_sends_the_committed_line(turns: list[CallerTurn]) -> None:
    # the loader decodes to 16 kHz, the Twilio caller encodes back to 8 kHz mu-law: the
    # same bytes but for one code step here and there (resampling rounds)
    for turn in turns:
        committed = (DATA / f"{turn.name}.ulaw").read_bytes()
        sent = b"".join(wire_frames(turn.pcm, "twilio"))
        assert len(committed) <= len(sent) < len(committed) + 160, turn.name
        a = pcm_to_array(ulaw_decode(committed)).astype(np.float64)
        b = pcm_to_array(ulaw_decode(sent[:len(committed)])).astype(np.float64)
        snr_db = 10 * np.log10(np.sum(a ** 2) / np.sum((a - b) ** 2))
        assert snr_db > 40, turn.name


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    shutil.copytree(DATA, tmp_path / "set")
    (tmp_path / "set" / "ops_ci_2.ulaw").unlink()
    missing = re.escape("names ops_ci_2, but there is no ops_ci_2.ulaw")
    with pytest.raises(HeldOutError, match=missing):
        load(tmp_path / "set")
    (tmp_path / "set" / "index.tsv").unlink()
    with pytest.raises(HeldOutError, match="heldout_caller --write"):
        load(tmp_path / "set")


def test_the_development_caller_shares_no_voice_or_words_with_the_held_out_one() -> None:
    """benchmarks/dev_caller.py is the set to tune on: its own voices and sentences, in
    the held-out caller's shape, so what is tuned on it says nothing of the held-out set."""
    from benchmarks import dev_caller

    dev = dev_caller.load()
    assert [(t.script, t.voice, t.text) for t in dev] == [
        (script, voice, text) for script, voice, texts in dev_caller.SCRIPTS for text in texts]
    assert {p.stem for p in dev_caller.DATA.glob("*.ulaw")} == {t.name for t in dev}
    assert all(MIN_S <= t.seconds <= MAX_S for t in dev)
    assert all(3 <= len(c) <= 5 for c in dev_caller.calls())
    held = load()
    assert not {t.voice for t in dev} & {t.voice for t in held}
    assert not {t.text.lower() for t in dev} & {t.text.lower() for t in held}
