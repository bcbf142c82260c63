"""``voxgate eval`` on the workflow catalog suite: the real orchestrator and event log,
JSON and HTML out, exit 1 when a threshold fails and 2 for bad input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli.main import app
from tests.eval.untimed import untimed

EVALS = Path(__file__).parents[2] / "evals"
runner = CliRunner()


def test_catalog_suite_passes_with_reports(tmp_path: Path) -> None:
    out, page = tmp_path / "report.json", tmp_path / "report.html"
    suite_file = untimed(EVALS / "catalog.yaml", tmp_path)
    result = runner.invoke(app, ["eval", str(suite_file), "--repeat", "2",
                                 "--json", str(out), "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert "PASSED: every gate held" in result.output
    report = json.loads(out.read_text())
    (suite,) = report["suites"]
    assert suite["runs"] == suite["runs_ok"] == 2 * 21
    assert suite["figures"] == {"wer": None, "intent_accuracy": None, "slot_accuracy": None,
                                "outcome": 1.0, "completeness": 1.0, "consistency": 1.0}
    assert {t["tier"] for t in report["tiers"]} == {"back_office", "human_in_loop"}
    assert all(r["cpu_s"] is not None and r["latencies_ms"] for r in report["runs"])
    saga = next(r for r in report["runs"] if r["scenario"] == "incident_response_compensated")
    assert json.loads(saga["signature"])["status"] == "compensated"
    assert "<svg" in page.read_text()


def test_a_failed_threshold_exits_1(tmp_path: Path) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text(
        "suite: strict\nkind: workflow\n"
        "tiers: {instant: {latency_p50_ms: 0.000001}}\n"
        "scenarios:\n"
        "  - {name: lead, tier: instant, workflow: lead_qualification, input: {lead_id: acme},"
        " expect: {output: {verdict: disqualified}, steps: [notify_sales]}}\n")
    result = runner.invoke(app, ["eval", str(strict)])
    assert result.exit_code == 1, result.output
    assert "tier instant: latency_p50_ms" in result.output
    assert "output.verdict is 'qualified', expected 'disqualified'" in result.output


def test_bad_input_exits_2(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("suite: wrong\nkind: workflow\ntiers: {t: {}}\n"
                     "scenarios: [{name: a, tier: t, workflow: no_such_flow}]\n")
    result = runner.invoke(app, ["eval", str(wrong)])
    assert result.exit_code == 2
    assert "scenario a: unknown workflow 'no_such_flow'" in result.output
    result = runner.invoke(app, ["eval", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "cannot read" in result.output
    result = runner.invoke(app, ["eval", str(EVALS / "catalog.yaml"), "--scenario", "nope"])
    assert result.exit_code == 2 and "no scenario matches" in result.output
