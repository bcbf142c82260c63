"""Raw audio only when enabled; retention deletes old calls and nothing else."""

from __future__ import annotations

import asyncio
import os
import time
import wave
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.client import run_call
from gateway.evaluation.speech import load_prompt
from gateway.retention import apply_retention
from gateway.server import ServerThread
from orchestration.log.replay import replay
from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.store import NewEvent
from orchestration.log.views import project


@pytest.mark.slow
@pytest.mark.parametrize("record", [False, True])
def test_raw_audio_is_stored_only_when_enabled(tmp_path: Path, record: bool) -> None:
    settings = Settings(data_dir=tmp_path, agent="basic", record_audio=record)
    pcm, _ = load_prompt("conf-locked")
    with ServerThread(create_app(settings)) as server:
        result = asyncio.run(run_call(pcm, "browser", server.url, tail_s=10.0))
    assert result.user_transcripts()
    recordings = tmp_path / "recordings"
    wavs = sorted(recordings.rglob("*.wav")) if recordings.exists() else []
    if not record:
        assert wavs == []
        return
    assert [w.name for w in wavs] == ["agent.wav", "caller.wav"]
    for path in wavs:
        with wave.open(str(path)) as wav:
            assert wav.getframerate() == 16000
            assert wav.getnframes() > 16000  # more than a second each


def test_retention_deletes_old_calls_only(tmp_path: Path) -> None:
    now = time.time()
    old, recent = now - 10 * 86400, now - 3600
    store = SQLiteEventStore(tmp_path / "events.db", project)
    store.append(
        [
            NewEvent("call:old", "session.started", {"protocol": "twilio"}, old),
            NewEvent("call:old", "session.ended", {"reason": "x"}, old + 60),
            NewEvent("call:new", "session.started", {"protocol": "twilio"}, recent),
            NewEvent("wf:run1", "workflow.started", {"name": "x", "input": {}}, old),
        ]
    )
    store.close()
    for name, age in (("old", old), ("new", recent)):
        folder = tmp_path / "recordings" / name
        folder.mkdir(parents=True)
        (folder / "caller.wav").write_bytes(b"RIFF")
        os.utime(folder, (age, age))

    deleted = apply_retention(tmp_path, days=7, now=now)
    assert deleted == {"events": 2, "recordings": 1}
    store = SQLiteEventStore(tmp_path / "events.db", project)
    try:
        streams = {e.stream for e in store.read(0)}
        assert streams == {"call:new", "wf:run1"}  # workflow runs are business records
        assert replay(store).ok  # what remains still replays to the stored views
    finally:
        store.close()
    assert sorted(p.name for p in (tmp_path / "recordings").iterdir()) == ["new"]
