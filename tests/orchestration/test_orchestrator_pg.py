"""Two orchestrators on one PostgreSQL database behave as two nodes sharing their workflow
runs, timers and call events (the server comes from tests/pg_server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.api_workflows import workflows_router
from gateway.sessions import SessionLog
from orchestration.events import EventBus
from orchestration.pg_store import PostgresEventStore
from orchestration.service import Orchestrator
from orchestration.store import LogError


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
