"""``voxgate workflow ...`` and ``voxgate replay``: the orchestration core from a shell.

Mounted by ``gateway/cli/main.py``::

    app.add_typer(workflow_app, name="workflow")
    app.command("replay")(replay_command)

Every command takes ``--data-dir`` (default: ``$VOXGATE_DATA_DIR`` or ``./.voxgate``),
whose ``events.db`` is the event log the gateway writes too. Output is JSON; errors go to
stderr with exit status 2 for bad input (unknown workflow, input failing its schema) and
1 for everything else (a rejected signal, a damaged log).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestration.errors import OrchestrationError
from orchestration.log.backends import database_url as env_database_url
from orchestration.log.backends import is_postgres_url, open_store
from orchestration.log.copy_to_pg import copy_data_dir
from orchestration.log.replay import replay, salvage
from orchestration.log.views import project
from orchestration.service import Orchestrator
from orchestration.workflow.engine import InputInvalid, WorkflowError

workflow_app = typer.Typer(
    no_args_is_help=True, add_completion=False,
    help="Declarative workflows: list, run, status, signal, diagram, tick.",
)

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar="VOXGATE_DATA_DIR",
                 help="directory holding events.db (and workflows/*.yaml)"),
]
DEFAULT_DIR = Path(".voxgate")


def _echo(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _json_object(text: str | None, option: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint=option) from None
    if not isinstance(value, dict):
        raise typer.BadParameter("must be a JSON object", param_hint=option)
    return value


@contextmanager
def _orchestrator(data_dir: Path) -> Iterator[Orchestrator]:
    try:
        orch = Orchestrator(data_dir)
    except OrchestrationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        yield orch
    except (InputInvalid, WorkflowError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OrchestrationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        orch.close()


def summary(view: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "name", "status", "state", "output", "error", "timers", "rejected")
    return {k: view.get(k) for k in keys}


@workflow_app.command("list")
def list_workflows(data_dir: DataDir = DEFAULT_DIR) -> None:
    """List the workflows that can be run."""
    with _orchestrator(data_dir) as orch:
        for wf in orch.workflows():
            sched = f"  [cron {wf['schedule']}]" if wf["schedule"] else ""
            first = wf["description"].split(". ")[0].rstrip(".")
            typer.echo(f"{wf['name']:<22} {wf['states']:>2} states{sched}  {first}")


@workflow_app.command()
def run(
    name: Annotated[str, typer.Argument(help="workflow name (see `list`)")],
    input: Annotated[str | None, typer.Option("--input", help="input as a JSON object")] = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Start a workflow and run it until it ends or waits for a signal or timer."""
    data = _json_object(input, "--input")
    with _orchestrator(data_dir) as orch:
        _echo(summary(asyncio.run(orch.start(name, data))))


@workflow_app.command()
def status(
    instance_id: Annotated[str, typer.Argument(metavar="ID")],
    events: Annotated[bool, typer.Option("--events", help="also print its events")] = False,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Show an instance's state (its derived view)."""
    with _orchestrator(data_dir) as orch:
        view = orch.status(instance_id)
        _echo({**view, "events": orch.events(instance_id)} if events else view)


@workflow_app.command()
def signal(
    instance_id: Annotated[str, typer.Argument(metavar="ID")],
    event: Annotated[str, typer.Argument(help="signal name, e.g. intent.book, dtmf, approve")],
    data: Annotated[str | None, typer.Option("--data", help="signal data as JSON")] = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Send a signal; a transition it does not allow is rejected (exit status 1)."""
    payload = _json_object(data, "--data")
    with _orchestrator(data_dir) as orch:
        result = asyncio.run(orch.signal(instance_id, event, payload))
        _echo({"accepted": result.accepted, "status": result.status, "state": result.state,
               "reason": result.reason})
    if not result.accepted:
        raise typer.Exit(1)


@workflow_app.command()
def diagram(
    name: str,
    json_graph: Annotated[bool, typer.Option("--json", help="the JSON graph")] = False,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Print a workflow as Mermaid text (or as the dashboard's JSON graph)."""
    with _orchestrator(data_dir) as orch:
        drawn = orch.workflow(name)
        if json_graph:
            _echo(drawn["graph"])
        else:
            typer.echo(drawn["mermaid"], nl=False)


@workflow_app.command()
def tick(data_dir: DataDir = DEFAULT_DIR) -> None:
    """Resume crashed instances, fire due timers and start due scheduled runs."""
    with _orchestrator(data_dir) as orch:
        resumed = asyncio.run(orch.recover())
        _echo({"resumed": resumed, **asyncio.run(orch.tick())})


def _copy(data_dir: Path, url: str) -> None:
    if not is_postgres_url(url):
        typer.echo("error: --copy-to takes a postgresql:// URL", err=True)
        raise typer.Exit(2)
    try:
        report = copy_data_dir(data_dir, url)
    except OrchestrationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    _echo({"copied": report.events, "views": report.views, "sealed": report.sealed,
           "stores": dict(report.stores)})


def replay_command(
    data_dir: DataDir = DEFAULT_DIR,
    fix: Annotated[bool, typer.Option("--fix", help="store the rebuilt views")] = False,
    salvage_to: Annotated[Path | None, typer.Option(
        "--salvage", help="copy the intact events of a damaged log to a new log here")] = None,
    copy_to: Annotated[str | None, typer.Option(
        "--copy-to", help="copy events.db and vault.db (views rebuilt there), agents.db, "
                          "outbox.db and memory.db into an empty PostgreSQL database "
                          "(postgresql://...)")] = None,
) -> None:
    """Rebuild every derived view from the event log and check it matches the stored one
    (the log on PostgreSQL when VOXGATE_DATABASE_URL is set; salvage is SQLite's)."""
    path = data_dir / "events.db"
    if copy_to is not None:
        _copy(data_dir, copy_to)
        return
    try:
        url = env_database_url() if salvage_to is None else None
    except OrchestrationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if url is None and not path.exists():
        typer.echo(f"error: no event log at {path}", err=True)
        raise typer.Exit(1)
    if salvage_to is not None:
        if salvage_to.exists():
            typer.echo(f"error: {salvage_to} exists; salvage writes a new log", err=True)
            raise typer.Exit(1)
        try:
            rescued = salvage(path, salvage_to)
        except OrchestrationError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        _echo({"copied": rescued.copied, "expected": rescued.expected, "lost": rescued.lost,
               "unreadable_ranges": rescued.unreadable_ranges, "salvaged_to": str(salvage_to)})
        return
    try:
        store = open_store(url or path, project)
        report = replay(store, fix=fix)
        store.close()
    except OrchestrationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    _echo({"ok": report.ok, "events": report.events, "views": report.views,
           "seconds": round(report.seconds, 4), "events_per_s": round(report.events_per_s),
           "mismatched": report.mismatched, "missing": report.missing, "extra": report.extra,
           "fixed": fix and not report.ok})
    if not report.ok and not fix:
        raise typer.Exit(1)
