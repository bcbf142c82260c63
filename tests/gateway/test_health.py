"""The gateway's own status reading (gateway/observability/health.py) against real files: a real
SQLite event log, a corrupt one, and one locked by a writer."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from gateway.config import Settings
from gateway.observability.health import GatewayReadings
from gateway.runtime import Runtime
from orchestration.agents.agent import basic_agent_factory
from orchestration.log.events import EventBus
from orchestration.patterns.bulkhead import Bulkhead
from orchestration.service import Orchestrator
from voice.services import VoiceServices


def readings(data_dir: Path, ready: bool = True) -> GatewayReadings:
    settings = Settings(data_dir=data_dir)
    voice = VoiceServices.create(settings.voice, data_dir, Bulkhead)  # pools only: nothing loaded
    runtime = Runtime(settings, voice, EventBus(), basic_agent_factory)
    if ready:
        runtime.ready.set()  # what the app's start-up does once the models are loaded
    found = GatewayReadings(data_dir)
    found.attach(runtime)
    return found


def test_starting_until_the_models_are_loaded(tmp_path: Path) -> None:
    assert GatewayReadings(tmp_path)().status == "starting"
    reading = readings(tmp_path, ready=False)()
    assert reading.status == "starting" and reading.metrics["models_loaded"] == 0.0


def test_up_with_a_writable_event_log(tmp_path: Path) -> None:
    log = Orchestrator(tmp_path)  # opens events.db as the gateway does
    reading = readings(tmp_path)()
    log.close()
    assert reading.status == "up", reading
    assert reading.metrics["event_log_writable"] == 1.0
    assert reading.metrics["live_calls"] == 0.0 and reading.metrics["stt_busy"] == 0.0
    assert reading.detail.startswith("0 live calls, speech recognition idle, speech "
                                     "synthesis idle; the event log is writable, ")


def test_a_corrupt_event_log_is_degraded(tmp_path: Path) -> None:
    (tmp_path / "events.db").write_bytes(b"not a database" * 100)
    reading = readings(tmp_path)()
    assert reading.status == "degraded"
    assert reading.metrics["event_log_writable"] == 0.0
    assert reading.detail.endswith("The event log is not writable.")


def test_a_log_locked_by_a_writer_is_writable_and_not_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")
    try:
        started = time.perf_counter()
        reading = readings(tmp_path)()
        took = time.perf_counter() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert reading.status == "up" and reading.metrics["event_log_writable"] == 1.0
    assert took < 1.0  # a busy wait would have blocked the event loop
