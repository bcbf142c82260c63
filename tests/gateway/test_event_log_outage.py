"""A real call while the event log cannot be written: locked by another connection, or
its disk full (a tmpfs). The call is answered as usual, the writer holds its events, says
so once in the log and in /metrics, and writes each of them exactly once afterwards."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.client import CallResult, run_call
from gateway.evaluation.speech import load_prompt, word_error_rate
from gateway.server import ServerThread
from orchestration.log.events import EventRecorder

pytestmark = pytest.mark.slow


def scrape(server: ServerThread) -> dict[str, float]:
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def logged(db: Path, session_id: str) -> list[int]:
    """The bus seqs of a call's events in the log, read by a connection of our own."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT data FROM events WHERE stream = ? ORDER BY seq",
                            (f"call:{session_id}",)).fetchall()
    finally:
        conn.close()
    return [int(json.loads(data)["bus_seq"]) for (data,) in rows]


def answered_call(server: ServerThread) -> CallResult:
    pcm, reference = load_prompt("conf-locked")
    # a long tail: a loaded machine can take seconds to transcribe, and the call must not
    # end before the answer for that
    result = asyncio.run(run_call(pcm, "browser", server.url, tail_s=20.0))
    heard = result.user_transcripts()
    assert heard and word_error_rate(reference, heard[0].text) <= 0.2, (
        heard, [e.event.type for e in result.events], result.errors)
    assert any("I heard" in u.text for u in result.agent_replies())
    assert result.ended_by == "caller" and result.session_id is not None
    return result


def outage_is_seen(server: ServerThread) -> dict[str, float]:
    until(lambda: scrape(server)["voxgate_event_log_write_failures_total{}"] >= 1)
    metrics = scrape(server)
    assert metrics["voxgate_event_log_backlog{}"] > 0
    return metrics


def assert_written_once(db: Path, recorder: EventRecorder, session_id: str) -> None:
    emitted = [e.seq for e in recorder.events if e.session_id == session_id]
    assert emitted
    until(lambda: len(logged(db, session_id)) >= len(emitted))
    time.sleep(0.5)  # a duplicate would come right after
    assert logged(db, session_id) == emitted  # every event, once, in order


def assert_said_once(caplog: pytest.LogCaptureFixture, why: str) -> None:
    errors = [r.getMessage() for r in caplog.records
              if r.levelno >= logging.ERROR and "event log cannot be written" in r.getMessage()]
    assert len(errors) == 1, errors
    assert why in errors[0]
    assert sum("event log writable again" in r.getMessage() for r in caplog.records) == 1


def test_a_call_goes_on_while_another_process_holds_the_log_locked(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "events.db"
    with ServerThread(create_app(Settings(data_dir=tmp_path, agent="basic"))) as server:
        recorder = EventRecorder(server.runtime.bus)
        other = sqlite3.connect(db, isolation_level=None, timeout=30)
        other.execute("BEGIN EXCLUSIVE")
        try:
            result = answered_call(server)
            assert result.session_id is not None
            during = outage_is_seen(server)
            assert logged(db, result.session_id) == []  # nothing got through the lock
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert_written_once(db, recorder, result.session_id)
        until(lambda: scrape(server)["voxgate_event_log_backlog{}"] == 0)
        after = scrape(server)
    assert during["voxgate_event_log_dropped_total{reason=backlog_full}"] == 0
    assert after["voxgate_event_log_dropped_total{reason=poison}"] == 0
    assert_said_once(caplog, "is locked by another writer")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs for the data directory, when this process may mount one (root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; tests/orchestration/test_buslog_faults.py "
                    "fills a database for real with max_page_count instead")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_a_call_goes_on_while_the_disk_of_the_log_is_full(
        small_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = small_disk / "events.db"
    with ServerThread(create_app(Settings(data_dir=small_disk, agent="basic"))) as server:
        recorder = EventRecorder(server.runtime.bus)
        with sqlite3.connect(db) as conn:  # so that taking more events means growing the WAL
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filler = fill(small_disk)
        try:
            result = answered_call(server)
            assert result.session_id is not None
            during = outage_is_seen(server)
        finally:
            filler.unlink()
        assert_written_once(db, recorder, result.session_id)
        until(lambda: scrape(server)["voxgate_event_log_backlog{}"] == 0)
    assert during["voxgate_event_log_dropped_total{reason=backlog_full}"] == 0
    assert_said_once(caplog, "the disk holding the event log is full")
