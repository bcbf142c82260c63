"""``voxgate workflow``/``voxgate replay`` and the REST endpoints, on a real log."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import typer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gateway.api.workflows import workflows_router
from gateway.cli.workflow import replay_command, workflow_app
from orchestration.log.events import EventBus
from orchestration.service import Orchestrator

runner = CliRunner()


def cli(tmp: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(workflow_app, [*args, "--data-dir", str(tmp)])
    return result.exit_code, result.stdout, result.stderr


def replay_cli(*args: str) -> tuple[int, str, str]:
    app = typer.Typer()
    app.command()(replay_command)
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_workflow_cli_end_to_end(tmp_path: Path) -> None:
    code, out, _ = cli(tmp_path, "list")
    assert code == 0 and "lead_qualification" in out and "[cron 0 * * * *]" in out
    code, out, _ = cli(tmp_path, "run", "lead_qualification", "--input",
                       '{"lead_id": "umbrella"}')
    run = json.loads(out)
    assert code == 0 and run["status"] == "waiting" and run["state"] == "review"
    code, out, _ = cli(tmp_path, "signal", run["id"], "decision", "--data", '{"role": "x"}')
    assert code == 1 and json.loads(out)["reason"].startswith("guard failed")
    code, out, _ = cli(tmp_path, "signal", run["id"], "decision", "--data",
                       '{"role": "sales_manager", "approve": false}')
    assert code == 0 and json.loads(out)["status"] == "succeeded"
    code, out, _ = cli(tmp_path, "status", run["id"], "--events")
    view = json.loads(out)
    assert view["output"]["verdict"] == "nurture" and view["events"][0]["type"] == (
        "workflow.started")
    code, out, _ = cli(tmp_path, "diagram", "kb_qa")
    assert out.startswith("stateDiagram-v2")
    code, out, _ = cli(tmp_path, "tick")
    assert code == 0 and json.loads(out)["resumed"] == []
    code, out, _ = replay_cli("--data-dir", str(tmp_path))
    assert code == 0 and json.loads(out)["ok"] is True


def test_workflow_cli_errors_are_clear(tmp_path: Path) -> None:
    code, _, err = cli(tmp_path, "run", "nope")
    assert code == 2 and err.startswith("error: unknown workflow 'nope'; known: ")
    code, _, err = cli(tmp_path, "run", "kb_qa", "--input", '{"question": 5}')
    assert code == 2 and "question: Input should be a valid string" in err
    code, _, err = cli(tmp_path, "run", "kb_qa", "--input", "{oops")
    assert code == 2 and "not JSON" in err
    code, _, err = cli(tmp_path, "status", "missing")
    assert code == 2 and "no workflow instance 'missing'" in err
    code, _, err = replay_cli("--data-dir", str(tmp_path / "empty"))
    assert code == 1 and "no event log at" in err


def test_replay_cli_reports_a_damaged_log_and_salvages_it(tmp_path: Path) -> None:
    cli(tmp_path, "run", "document_drafting", "--input", '{"topic": "x"}')
    db = tmp_path / "events.db"
    con = sqlite3.connect(db)
    con.execute("UPDATE events SET data = replace(data, 'x', 'y') WHERE seq = 3")
    con.commit()
    con.close()
    code, _, err = replay_cli("--data-dir", str(tmp_path))
    assert code == 1 and "event seq 3 fails its checksum" in err and "--salvage" in err
    code, out, _ = replay_cli("--data-dir", str(tmp_path), "--salvage", str(tmp_path / "s.db"))
    rescued = json.loads(out)
    assert code == 0 and rescued["lost"] == [3] and rescued["copied"] == rescued["expected"] - 1
    with db.open("r+b") as f:  # now wreck the header of the database file
        f.write(b"garbage!" * 4)
    code, _, err = replay_cli("--data-dir", str(tmp_path))
    assert code == 1 and "is damaged" in err
    code, _, err = replay_cli("--data-dir", str(tmp_path), "--salvage", str(tmp_path / "t.db"))
    assert code == 1 and "nothing can be salvaged from" in err


async def test_rest_endpoints(tmp_path: Path) -> None:
    orch = Orchestrator(tmp_path)
    app = FastAPI()
    app.include_router(workflows_router(orchestrator=orch, tick_s=0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        listed = (await client.get("/api/workflows")).json()
        assert len(listed) == 16 and listed[0]["input"]["type"] == "object"
        drawn = (await client.get("/api/workflows/kb_qa")).json()
        assert drawn["graph"]["start"] == "sources"
        assert (await client.get("/api/workflows/nope")).status_code == 404
        bad = await client.post("/api/workflows/kb_qa/runs", json={"input": {}})
        assert bad.status_code == 422 and "question: Field required" in bad.json()["detail"]
        started = await client.post("/api/workflows/proposal_generation/runs",
                                    json={"input": {"lead_id": "acme"}})
        assert started.status_code == 201
        run_id = started.json()["id"]
        assert (await client.get(f"/api/runs/{run_id}")).json()["state"] == "approval"
        no = await client.post(f"/api/runs/{run_id}/signals",
                               json={"event": "approve", "data": {"role": "intern"}})
        assert no.status_code == 409 and no.json()["accepted"] is False
        yes = await client.post(f"/api/runs/{run_id}/signals",
                                json={"event": "approve", "data": {"role": "approver"}})
        assert yes.status_code == 200 and yes.json()["status"] == "succeeded"
        events = (await client.get(f"/api/runs/{run_id}/events?after=0&limit=3")).json()
        assert [e["type"] for e in events] == ["workflow.started", "workflow.transition",
                                               "step.started"]
        assert (await client.get("/api/runs/missing")).status_code == 404
        assert [r["id"] for r in (await client.get("/api/runs?status=succeeded")).json()] == [
            run_id]
    orch.close()


def test_router_lifespan_logs_bus_events_and_ticks(tmp_path: Path) -> None:
    bus = EventBus()
    app = FastAPI()
    app.include_router(workflows_router(tmp_path, bus=bus, tick_s=0.01))
    with TestClient(app) as client:
        bus.emit("call-1", "call.started", {"protocol": "browser"})
        bus.emit("call-1", "call.ended", {"reason": "hangup"})
        assert client.get("/api/workflows").status_code == 200
    orch = Orchestrator(tmp_path)  # after shutdown everything is flushed to the log
    assert orch.store.view("call:call-1") == {**(orch.store.view("call:call-1") or {}),
                                              "status": "ended", "events": 2}
    assert orch.store.view("sched:data_quality") is not None  # the ticker armed schedules
    orch.close()
