"""``voxgate replay --copy-to``: a single process's SQLite log and vault, moved to
PostgreSQL, carry on there (the server comes from tests/pg_server.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from gateway.cli.workflow import replay_command
from orchestration.clock import FakeClock
from orchestration.service import Orchestrator

T0 = 1_700_000_000.0
TICKET = "printer jammed, mail me at jane.doe@example.com"


def _cli(*args: str) -> tuple[int, str, str]:
    app = typer.Typer()
    app.command()(replay_command)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_sqlite_log_and_vault_move_to_postgresql_and_carry_on(
        pg_url: str, tmp_path: Path) -> None:
    local = Orchestrator(tmp_path, clock=FakeClock(T0))  # one process, SQLite
    run = asyncio.run(local.start("support_workflow", {"ticket": TICKET}))
    done = asyncio.run(local.start("lead_qualification", {"lead_id": "umbrella"}))
    local.close()
    code, out, err = _cli("--data-dir", str(tmp_path), "--copy-to", pg_url)
    assert code == 0, err
    report = json.loads(out)
    assert report["copied"] > 10 and report["sealed"] >= 1
    replica = Orchestrator(tmp_path / "replica", database_url=pg_url,
                           clock=FakeClock(T0 + 2 * 86400))
    assert replica.status(done["id"])["state"] == done["state"]
    assert replica.replay().ok
    due = len(run["timers"]) + len(done["timers"])  # both runs' SLA timers are due
    assert due >= 1 and asyncio.run(replica.tick())["timers_fired"] == due
    assert [n["message"] for n in replica.systems.notifications] == [TICKET]  # unsealed
    assert replica.status(run["id"])["status"] == "succeeded"
    replica.close()
    code, _, err = _cli("--data-dir", str(tmp_path), "--copy-to", pg_url)
    assert code == 1 and "already holds events; copy into an empty database" in err
    code, _, err = _cli("--data-dir", str(tmp_path), "--copy-to", "sqlite:///x")
    assert code == 2 and "--copy-to takes a postgresql:// URL" in err
