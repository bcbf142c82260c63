"""Two orchestrators on one PostgreSQL database behave as two nodes sharing their workflow
runs, timers and call events (the server comes from tests/pg_server.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import typer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from gateway.api.sessions import SessionLog
from gateway.api.workflows import workflows_router
from gateway.cli.workflow import replay_command
from gateway.config import Settings
from gateway.retention import apply_retention
from orchestration.clock import FakeClock
from orchestration.log.events import EventBus
from orchestration.log.pg_store import PostgresEventStore
from orchestration.log.store import LogError, NewEvent
from orchestration.log.views import project
from orchestration.service import Orchestrator

ROOT = Path(__file__).resolve().parents[2]


async def test_a_run_started_on_one_node_is_signalled_from_another(
        pg_url: str, tmp_path: Path) -> None:
    a = Orchestrator(tmp_path / "a", database_url=pg_url)
    b = Orchestrator(tmp_path / "b", database_url=pg_url)
    assert isinstance(a.store, PostgresEventStore)
    assert not (tmp_path / "a" / "events.db").exists()  # nothing of the log is local
    run = await a.start("lead_qualification", {"lead_id": "umbrella"})
    assert run["status"] == "waiting" and run["state"] == "review"
    assert [r["id"] for r in b.runs(status="waiting")] == [run["id"]]
    result = await b.signal(run["id"], "decision", {"role": "sales_manager",
                                                    "approve": False})
    assert result.status == "succeeded"
    view = a.status(run["id"])
    assert view["status"] == "succeeded" and view["output"]["verdict"] == "nurture"
    assert a.replay().ok and b.replay().ok  # the stored views are what the log folds to
    a.close()
    b.close()


def test_the_environment_variable_picks_postgresql(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXGATE_DATABASE_URL", pg_url)
    orch = Orchestrator(tmp_path)
    assert isinstance(orch.store, PostgresEventStore) and orch.store_location == pg_url
    orch.close()
    monkeypatch.setenv("VOXGATE_DATABASE_URL", "sqlite:///x.db")
    with pytest.raises(LogError, match="VOXGATE_DATABASE_URL must start with postgresql://"):
        Orchestrator(tmp_path)


def test_call_events_from_the_bus_land_in_postgresql(pg_url: str, tmp_path: Path) -> None:
    bus = EventBus()
    app = FastAPI()
    app.include_router(workflows_router(tmp_path, bus=bus, tick_s=0, database_url=pg_url))
    with TestClient(app) as client:
        bus.emit("call-1", "call.started", {"protocol": "browser"})
        bus.emit("call-1", "call.ended", {"reason": "hangup"})
        assert client.get("/api/workflows").status_code == 200
    sessions = SessionLog(pg_url)  # what /api/sessions reads, on another node
    assert [e["type"] for e in sessions.events("call-1")] == ["call.started", "call.ended"]
    view = sessions.store.view("call:call-1")
    assert view is not None and view["status"] == "ended" and view["events"] == 2
    sessions.close()


def test_retention_purges_old_calls_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    store = PostgresEventStore(pg_url, project)
    store.append([NewEvent("call:old", "session.started", {}, 1000.0),
                  NewEvent("call:new", "session.started", {}, 9 * 86400.0),
                  NewEvent("wf:run1", "workflow.started", {"name": "x", "input": {}}, 1000.0)])
    deleted = apply_retention(tmp_path, days=7, now=10 * 86400.0, database_url=pg_url)
    assert deleted == {"events": 1, "recordings": 0}
    assert {e.stream for e in store.read()} == {"call:new", "wf:run1"}
    store.close()


T0 = 1_700_000_000.0
TICKER = """
import asyncio, sys
from orchestration.clock import FakeClock
from orchestration.service import Orchestrator
url, data_dir, now = sys.argv[1], sys.argv[2], float(sys.argv[3])
orch = Orchestrator(data_dir, database_url=url, clock=FakeClock(now))
print(asyncio.run(orch.engine.tick()))
orch.close()
"""


def _wait_for_blocked_append(url: str, procs: list[subprocess.Popen[str]]) -> None:
    """Until a session waits on a lock (the log head), bounded."""
    deadline = time.monotonic() + 120
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                               "current_database() AND wait_event_type = 'Lock'").fetchone()
            if row is not None and row[0] >= 1:
                return
            if any(p.poll() is not None for p in procs):
                raise AssertionError([p.communicate() for p in procs])
            time.sleep(0.05)
    raise AssertionError("no append reached the log head within 120 s")


def test_a_due_timer_fires_once_when_two_nodes_tick_at_once(
        pg_url: str, tmp_path: Path) -> None:
    orch = Orchestrator(tmp_path / "a", database_url=pg_url, clock=FakeClock(T0))
    run = asyncio.run(orch.start("support_workflow", {"ticket": "the printer is jammed"}))
    assert run["state"] == "confirm" and len(run["timers"]) == 1
    # a third session holds the log head: the node holding the run's lease waits there
    # to append the timer's firing, the other waits for the lease (or has not read the
    # timer yet); released, one fires it and the other finds it fired
    with psycopg.connect(pg_url) as holder:
        holder.execute("SELECT seq FROM log_head FOR UPDATE")
        procs = [subprocess.Popen(
            [sys.executable, "-c", TICKER, pg_url, str(tmp_path / f"node{i}"),
             str(T0 + 2 * 86400)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True) for i in range(2)]
        _wait_for_blocked_append(pg_url, procs)
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert sorted(out.strip() for out, _ in outs) == ["0", "1"]  # one node fired it
    types = [e["type"] for e in orch.events(run["id"], limit=None)]
    assert types.count("timer.fired") == 1 and types.count("sla.escalated") == 1
    assert orch.status(run["id"])["status"] == "succeeded"
    orch.close()


def test_replay_command_checks_and_fixes_the_views_on_postgresql(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = typer.Typer()
    app.command()(replay_command)
    store = PostgresEventStore(pg_url, project)
    store.append([NewEvent("wf:a", "workflow.started", {"name": "x", "input": {}})])
    store.close()
    with psycopg.connect(pg_url) as conn:  # a view that no longer matches its events
        conn.execute("UPDATE streams SET view = '{\"state\": \"forged\"}' WHERE stream = 'wf:a'")
    monkeypatch.setenv("VOXGATE_DATABASE_URL", pg_url)
    args = ["--data-dir", str(tmp_path)]  # no events.db there: the log is PostgreSQL's
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and json.loads(result.stdout)["mismatched"] == ["wf:a"]
    assert CliRunner().invoke(app, [*args, "--fix"]).exit_code == 0
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and json.loads(result.stdout)["ok"] is True


def test_the_database_url_setting_is_checked_at_the_edge(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXGATE_DATABASE_URL", "mysql://db/voxgate")
    with pytest.raises(ValidationError, match="database_url must start with postgresql://"):
        Settings()
    monkeypatch.setenv("VOXGATE_DATABASE_URL", "")
    assert Settings().database_url is None  # empty: the SQLite file, as unset
    monkeypatch.setenv("VOXGATE_DATABASE_URL", "postgresql://u@db:5432/voxgate")
    assert Settings().database_url == "postgresql://u@db:5432/voxgate"


def test_a_masked_value_reaches_a_tool_on_another_replica(pg_url: str, tmp_path: Path) -> None:
    # redaction on (the default): the log is masked, the originals are in the vault, which
    # on PostgreSQL every replica shares
    a = Orchestrator(tmp_path / "a", database_url=pg_url, clock=FakeClock(T0))
    b = Orchestrator(tmp_path / "b", database_url=pg_url, clock=FakeClock(T0 + 2 * 86400))
    ticket = "printer jammed, mail me at jane.doe@example.com"
    run = asyncio.run(a.start("support_workflow", {"ticket": ticket}))
    assert run["ctx"]["input"]["ticket"] != ticket  # the view (and log) is masked
    assert asyncio.run(b.tick())["timers_fired"] == 1  # the SLA escalates on replica b
    assert [n["message"] for n in b.systems.notifications] == [ticket]
    assert b.status(run["id"])["status"] == "succeeded"
    logged = json.dumps([e.to_dict() for e in a.store.read()])
    assert "jane.doe@example.com" not in logged
    with psycopg.connect(pg_url) as conn:  # the run ended: its originals are gone
        assert conn.execute("SELECT count(*) FROM sealed").fetchone() == (0,)
    a.close()
    b.close()
