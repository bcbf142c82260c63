"""The short voice suite ``make test`` runs: ``voxgate eval evals/smoke.yaml`` starts the
real gateway in-process, streams real human speech in real time (clean and over a
telephone band), and scores transcript, replies, latency, CPU and the event log. Then
the same scoring against a gateway given by URL, over Twilio, with its log tampered.

About 35 s on two busy cores: three real-time calls of ~10 s each."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gateway.app import create_app
from gateway.cli.main import app
from gateway.config import Settings
from gateway.evaluation.checks import audit_call
from gateway.evaluation.gateway import Credentials, RemoteGateway, SubprocessGateway
from gateway.evaluation.load import parse_suite
from gateway.evaluation.log import read_stream
from gateway.evaluation.scenario import Agents, VoiceSuite
from gateway.evaluation.voice import CallerVoice, run_voice
from gateway.server import ServerThread
from tests.eval.untimed import untimed

pytestmark = pytest.mark.slow
EVALS = Path(__file__).parents[2] / "evals"


def test_smoke_suite_through_the_real_audio_path(tmp_path: Path) -> None:
    out, page = tmp_path / "smoke.json", tmp_path / "smoke.html"
    suite_file = untimed(EVALS / "smoke.yaml", tmp_path)
    result = CliRunner().invoke(app, ["eval", str(suite_file), "--json", str(out),
                                      "--html", str(page)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    (suite,) = report["suites"]
    assert (suite["runs"], suite["runs_ok"]) == (2, 2)
    assert set(suite["variants"]) == {"clean", "telephone"}
    assert suite["figures"]["wer"] <= 0.25 and suite["figures"]["completeness"] == 1.0
    assert suite["consistency"]["per_variant"] == {"clean": 1.0, "telephone": 1.0}
    for run in report["runs"]:
        assert run["ok"] and run["audit"] == [] and run["policy"] == []
        assert len(run["latencies_ms"]) == 1 and run["cpu_s"] > 0
        ((expected, heard),) = run["transcripts"]
        assert expected == "This conference is locked." and "locked" in heard.lower()
        assert json.loads(run["signature"])[0]["ended_by"] == "caller"
    (tier,) = report["tiers"]
    assert tier["tier"] == "realtime_ci" and tier["n"] == 2
    assert page.read_text().count("<svg") >= 2


def test_a_remote_gateway_over_twilio_and_a_tampered_log(tmp_path: Path) -> None:
    suite = parse_suite({
        "suite": "remote", "kind": "voice", "tiers": {"rt": {}},
        "scenarios": [{"name": "bye", "tier": "rt", "protocol": "twilio",
                       "turns": [{"say": "Goodbye."}],
                       "expect": {"replies": ["Goodbye"], "ended_by": "agent",
                                  "events": ["call.hangup", "session.ended"]}}]})
    assert isinstance(suite, VoiceSuite)
    with ServerThread(create_app(Settings(data_dir=tmp_path, agent="basic"))) as server:
        gateway = RemoteGateway(server.url, tmp_path, os.getpid())
        record = asyncio.run(run_voice(suite, suite.scenarios[0], "clean", 0, gateway,
                                       CallerVoice()))
    assert record.ok, record.problems()
    assert record.cpu_s is not None and record.cpu_s > 0
    assert record.wer_errors == 0 and record.transcripts[0][0] == "Goodbye."
    # the audit reads the log itself: remove one event and it notices
    stream = f"call:{record.ids[0]}"
    with sqlite3.connect(tmp_path / "events.db") as db:
        db.execute("DELETE FROM events WHERE stream = ? AND version = 3", (stream,))
    assert audit_call(read_stream(tmp_path / "events.db", stream)) == [
        f"{stream}: versions not contiguous (missing [3])"]


def test_a_production_gateway_needs_the_callers_credentials(tmp_path: Path) -> None:
    """``voxgate eval --url`` against a production gateway: Twilio streams signed with
    the auth token, browser calls with a widget token, transcripts with the admin token."""
    from tests.security.test_auth import ADMIN, TWILIO, secure_settings

    scenarios = [{"name": f"bye_{p}", "tier": "rt", "protocol": p, "turns": [{"say": "Goodbye."}],
                  "expect": {"replies": ["Goodbye"], "ended_by": "agent"}}
                 for p in ("twilio", "browser")]
    suite = parse_suite({"suite": "prod", "kind": "voice", "tiers": {"rt": {}},
                         "scenarios": scenarios})
    assert isinstance(suite, VoiceSuite)
    with ServerThread(create_app(secure_settings(tmp_path, agent="basic"))) as server:
        widget = httpx.post(f"{server.url}/api/tokens", json={},
                            headers={"authorization": f"Bearer {ADMIN}"}).json()["token"]
        bare = RemoteGateway(server.url, tmp_path)
        signed = RemoteGateway(server.url, tmp_path, credentials=Credentials(
            token=widget, admin_token=ADMIN, twilio_auth_token=TWILIO))
        refused = [asyncio.run(run_voice(suite, s, "clean", 0, bare, CallerVoice()))
                   for s in suite.scenarios]
        let_in = [asyncio.run(run_voice(suite, s, "clean", 0, signed, CallerVoice()))
                  for s in suite.scenarios]
    twilio, browser = (r.error or "" for r in refused)
    assert "refused the WebSocket: HTTP 403" in twilio
    assert "the gateway closed it (4401: widget token required" in browser
    for record in let_in:  # heard, answered, hung up by the agent; transcripts came
        assert record.ok, record.problems()
        assert record.transcripts and record.transcripts[0][0] == "Goodbye."


def test_a_gateway_in_a_child_process_reports_its_cpu(tmp_path: Path) -> None:
    gateway = SubprocessGateway(tmp_path, Agents())
    try:
        assert httpx.get(f"{gateway.url}/healthz", timeout=10).json()["status"] == "ok"
        cpu = gateway.server_cpu_s()
        assert cpu is not None and cpu > 0.1  # at least the models' load and warm-up
    finally:
        gateway.close()
    assert gateway.server_cpu_s() is None  # the child has exited
