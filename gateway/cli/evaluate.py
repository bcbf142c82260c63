"""``voxgate eval SUITE...``: run evaluation suites, print a summary, gate CI.

Mounted by ``gateway/cli/main.py``. Progress goes to stderr, the summary to stdout; ``--json``
and ``--html`` write the full report. Exit status: 0 when every gate held, 1 when a
threshold or a run failed, 2 for bad input (an invalid suite, an unknown workflow or
scenario). docs/evaluation.md describes suites, checks and figures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gateway.cli.options import AdminToken, TwilioAuthToken, WidgetToken
from gateway.evaluation.gateway import Credentials
from gateway.evaluation.html import render_html
from gateway.evaluation.load import load_suites
from gateway.evaluation.report import RunRecord, summarize
from gateway.evaluation.run import Job, Options, evaluate, machine, plan
from gateway.evaluation.scenario import Suite, SuiteError, WorkflowSuite, variant_params
from gateway.evaluation.workflows import unknown_workflows


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    if pct:
        return f"{value * 100:.1f} %"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _cell(gate: dict[str, Any] | None, value: Any, pct: bool = False) -> str:
    """The figure, with a tick when its gate held and a cross when it failed (the limits
    are in the failure list and the reports)."""
    text = _fmt(value, pct)
    if gate is None or gate["ok"] is None:
        return text
    return f"[green]{text} ✓[/]" if gate["ok"] else f"[bold red]{text} ✗[/]"


def print_summary(report: dict[str, Any], console: Console) -> None:
    suites = Table(title="suites", title_justify="left")
    for col in ("suite", "runs ok", "WER", "intent", "slots", "outcome", "complete",
                "consistent", "audit ok", "policy ok"):
        suites.add_column(col, justify="left" if col == "suite" else "right")
    for s in report["suites"]:
        g = {x["name"]: x for x in s["gates"]}
        f = s["figures"]
        pct = [_cell(g[k], f[k], True) for k in ("wer", "intent_accuracy", "slot_accuracy",
                                                 "outcome", "completeness", "consistency")]
        suites.add_row(
            s["suite"], f"{s['runs_ok']}/{s['runs']}", *pct,
            _cell(g["audit_complete"], f"{g['audit_complete']['value']}/{s['runs']}"),
            _cell(g["policy_adherence"], f"{g['policy_adherence']['value']}/{s['runs']}"))
    console.print(suites)
    variants = [(s["suite"], v, row) for s in report["suites"] if s["kind"] == "voice"
                for v, row in s["variants"].items()]
    if len(variants) > len([s for s in report["suites"] if s["kind"] == "voice"]):
        table = Table(title="audio variants", title_justify="left")
        for col in ("suite", "variant", "WER", "intent", "outcome", "same outcome as clean"):
            table.add_column(col, justify="left" if col in ("suite", "variant") else "right")
        for suite, v, row in variants:
            table.add_row(suite, v, _fmt(row["wer"], True), _fmt(row["intent_accuracy"], True),
                          _fmt(row["outcome"], True), _fmt(row["consistency_vs_clean"], True))
        console.print(table)
    tiers = Table(title="tiers (latency: per turn for calls, per run for workflows)",
                  title_justify="left")
    for col in ("tier", "n", "p50 ms", "p95 ms", "CPU s/call", "tokens/call"):
        tiers.add_column(col, justify="left" if col == "tier" else "right")
    for t in report["tiers"]:
        g = {x["name"]: x for x in t["gates"]}
        tiers.add_row(t["tier"], str(t["n"]), _cell(g["latency_p50_ms"], t["latency_p50_ms"]),
                      _cell(g["latency_p95_ms"], t["latency_p95_ms"]),
                      _cell(g["cpu_s_per_call"], t["cpu_s_per_call"]),
                      _cell(g["tokens_per_call"], t["tokens_per_call"]))
    console.print(tiers)
    if report["failures"]:
        console.print(f"[bold red]FAILED[/] ({len(report['failures'])}):")
        for line in report["failures"][:30]:
            console.print(f"  - {line}", markup=False, highlight=False)
        if len(report["failures"]) > 30:
            console.print(f"  ... and {len(report['failures']) - 30} more (see --json)")
    else:
        console.print("[bold green]PASSED[/]: every gate held")


def eval_command(
    suites: Annotated[list[Path], typer.Argument(help="suite files (YAML) or folders of them")],
    url: Annotated[str | None, typer.Option(
        help="evaluate a running gateway (default: start one here per run)")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="the running gateway's data directory, to audit its event log")
    ] = None,
    server_pid: Annotated[int | None, typer.Option(
        help="the running gateway's process id, to measure its CPU time")] = None,
    subprocess: Annotated[bool, typer.Option(
        "--subprocess", help="start each gateway as a child process (exact CPU figures)")
    ] = False,
    repeat: Annotated[int | None, typer.Option(min=1, max=100,
                                                help="runs per scenario and variant")] = None,
    variant: Annotated[list[str] | None, typer.Option(
        help="audio variants instead of the suites' (clean, telephone, noise_20db, speed_1.1)")
    ] = None,
    scenario: Annotated[list[str] | None, typer.Option(
        help="only these scenarios (NAME or SUITE/NAME)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the report as JSON")
                        ] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="write an HTML report")
                        ] = None,
    keep: Annotated[Path | None, typer.Option(
        help="keep every run's data directory (event log, memory) here")] = None,
    token: WidgetToken = None,
    admin_token: AdminToken = None,
    twilio_auth_token: TwilioAuthToken = None,
) -> None:
    """Run evaluation suites through the real audio path (voice) or the orchestrator
    (workflows); exit 1 if any threshold fails."""
    # piped (CI logs): wide enough that the tables do not wrap
    out = Console() if sys.stdout.isatty() else Console(width=120)
    loaded = _load_or_exit(suites, variant or [])
    server: Literal["thread", "subprocess"] = "subprocess" if subprocess else "thread"
    options = Options(url=url, data_dir=data_dir, server_pid=server_pid, server=server,
                      repeat=repeat, variants=variant or None, scenarios=scenario or [],
                      keep=keep, credentials=Credentials(token, admin_token,
                                                         twilio_auth_token))
    jobs = plan(loaded, options)
    if not jobs:
        typer.echo("no scenario matches --scenario " + ", ".join(scenario or []), err=True)
        raise typer.Exit(2)
    started = time.monotonic()
    load_start = machine()
    records = _run_with_progress(loaded, options, len(jobs))
    mode = (f"remote gateway {url}" if url else
            "gateway in child processes" if subprocess else "gateway in this process")
    meta = {"mode": mode, "started": load_start, "ended": machine(),
            "duration_s": round(time.monotonic() - started, 1),
            "suites": [str(s.source) for s in loaded], "audited": url is None or bool(data_dir),
            "cpu_measured": url is None or server_pid is not None}
    report = summarize(loaded, records, meta)
    print_summary(report, out)
    _write_reports(report, out, json_out, html_out)
    if not report["ok"]:
        raise typer.Exit(1)


def _load_or_exit(suites: list[Path], variants: list[str]) -> list[Suite]:
    """The suites, checked; a bad suite, variant or workflow name exits 2 with its error."""
    try:
        loaded = load_suites(suites)
        for v in variants:
            variant_params(v)
    except (SuiteError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    unknown = unknown_workflows([s for s in loaded if isinstance(s, WorkflowSuite)])
    if unknown:
        typer.echo("\n".join(unknown), err=True)
        raise typer.Exit(2)
    return loaded


def _run_with_progress(loaded: list[Suite], options: Options, total: int) -> list[RunRecord]:
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task("evaluating", total=total)

        def on_start(job: Job) -> None:
            bar.update(task, description=f"running {job.label}")

        def on_run(job: Job, record: RunRecord) -> None:
            if not record.ok:
                bar.console.print(f"[red]x[/] {job.label}: "
                                  + "; ".join(record.problems())[:300], highlight=False)
            bar.advance(task)

        records = asyncio.run(evaluate(loaded, options, on_run, on_start))
        bar.update(task, description="done")
    return records


def _write_reports(report: dict[str, Any], out: Console, json_out: Path | None,
                   html_out: Path | None) -> None:
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=1, default=str) + "\n")
        out.print(f"report written to {json_out}")
    if html_out is not None:
        html_out.parent.mkdir(parents=True, exist_ok=True)
        html_out.write_text(render_html(report))
        out.print(f"HTML report written to {html_out}")
