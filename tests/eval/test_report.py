"""The report: figures per suite, tier and variant, gates against thresholds, and the
HTML page with its plots."""

from __future__ import annotations

from typing import Any

from gateway.evaluation.html import bar_chart, render_html, strip_plot
from gateway.evaluation.load import parse_suite
from gateway.evaluation.report import RunRecord, summarize
from gateway.evaluation.scenario import VoiceSuite


def suite(**thresholds: Any) -> VoiceSuite:
    data = {"suite": "s", "kind": "voice", "variants": ["clean", "telephone"],
            "tiers": {"rt": {"latency_p50_ms": 800, "latency_p95_ms": 900,
                             "cpu_s_per_call": 5}},
            "thresholds": thresholds,
            "scenarios": [{"name": "a", "tier": "rt", "turns": [{"say": "hi"}]}]}
    parsed = parse_suite(data)
    assert isinstance(parsed, VoiceSuite)
    return parsed


def run(variant: str, latencies: list[float], outcome: list[str] | None = None,
        sig: str = "same", **extra: Any) -> RunRecord:
    return RunRecord("s", "a", "rt", variant, 0, latencies_ms=latencies, cpu_s=2.0,
                     wer_errors=1, wer_words=10, intents_expected=2, intents_correct=2,
                     required=4, done=4, outcome=outcome or [], signature=sig, **extra)


def gates(report: dict[str, Any], name: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = report["suites"][0]["gates"] + report["tiers"][0]["gates"]
    return {g["name"]: g for g in rows}[name]


def test_all_gates_hold() -> None:
    report = summarize([suite(wer_max=0.2, consistency_min=1.0)],
                       [run("clean", [500, 600]), run("telephone", [550, 700])])
    assert report["ok"] and report["failures"] == []
    tier = report["tiers"][0]
    assert (tier["n"], tier["latency_p50_ms"], tier["cpu_s_per_call"]) == (4, 575.0, 2.0)
    assert report["suites"][0]["figures"]["wer"] == 0.1
    assert gates(report, "slot_accuracy")["ok"] is None  # no threshold: reported only


def test_failures_are_listed_with_their_limits() -> None:
    report = summarize(
        [suite(wer_max=0.05, consistency_min=1.0, slot_accuracy_min=0.9)],
        [run("clean", [500, 1200]),
         run("telephone", [900], outcome=["tool calendar.book did not happen"], sig="other",
             audit=["call:x: does not close with exactly one session.ended"])])
    assert not report["ok"]
    assert report["failures"][:6] == [
        "suite s: wer 0.1 (limit <= 0.05)",
        "suite s: slot_accuracy None (limit >= 0.9)",  # asked for, never measured
        "suite s: outcome 0.5 (limit >= 1.0)",
        "suite s: consistency 0.5 (limit >= 1.0)",
        "suite s: audit_complete 1 (limit == 2)",
        "tier rt: latency_p50_ms 900.0 (limit <= 800.0)",
    ]
    assert report["suites"][0]["variants"]["telephone"]["consistency_vs_clean"] == 0.0
    assert any(f.startswith("run s/a [telephone #1]: outcome: tool calendar.book")
               for f in report["failures"])


def test_html_has_plots_and_escapes() -> None:
    report = summarize([suite()], [run("clean", [500, 600],
                                       transcripts=[("<b>hi</b>", "hi")]),
                                   run("telephone", [650])])
    page = render_html(report)
    assert page.startswith("<!doctype html>") and page.count("<svg") >= 3
    assert "&lt;b&gt;hi&lt;/b&gt;" in page and "<b>hi</b>" not in page
    assert "<script" not in page
    assert "limit 800" in strip_plot([1.0, 2.0], [("limit", 800.0, "#000")], "ms")
    assert "no figure" in bar_chart([("x", None), ("y", 0.5)], "share", 0.4, pct=True)
