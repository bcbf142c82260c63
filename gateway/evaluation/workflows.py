"""Workflow scenarios: catalog runs driven directly on a real ``Orchestrator`` (no audio).

Every run gets its own data directory (a fresh event log and fresh sample systems) and a
``FakeClock`` at a fixed epoch, so a repeated run starts from the same state and timed
steps ("advance: 1d") take no real time; the random source is seeded with the repeat
number, so retries jitter differently on each repeat while the outcome must not change.
Latency is the wall time from the start to the last scripted step handled; CPU is this
process's CPU time over the same span (nothing else runs in it meanwhile).
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.evaluation.checks import (
    audit_run,
    is_denial,
    missing_in_order,
    policy_violations,
    tokens_used,
)
from gateway.evaluation.report import RunRecord, signature
from gateway.evaluation.scenario import RunExpect, WorkflowScenario, WorkflowSuite
from orchestration.clock import FakeClock
from orchestration.errors import OrchestrationError
from orchestration.log.store import StoredEvent
from orchestration.service import Orchestrator

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: schedules and SLAs fall on known times


def subset_problems(expected: Any, actual: Any, path: str = "output") -> list[str]:
    """Where ``expected`` is not contained in ``actual`` (mappings recursively, other
    values equal)."""
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [f"{path} is {actual!r}, expected a mapping"]
        out: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{path}.{key} missing")
            else:
                out += subset_problems(value, actual[key], f"{path}.{key}")
        return out
    return [] if expected == actual else [f"{path} is {actual!r}, expected {expected!r}"]


def unknown_workflows(suites: list[WorkflowSuite]) -> list[str]:
    """Scenarios naming a workflow the catalog (and the data dir's own) does not have."""
    with tempfile.TemporaryDirectory(prefix="voxgate-eval-") as tmp:
        orch = Orchestrator(tmp, clock=FakeClock(EPOCH))
        try:
            known = set(orch.engine.definitions)
        finally:
            orch.close()
    return [f"{s.source}: scenario {sc.name}: unknown workflow {sc.workflow!r}"
            for s in suites for sc in s.scenarios if sc.workflow not in known]


async def run_workflow(suite: WorkflowSuite, scenario: WorkflowScenario, repeat: int,
                       data_dir: Path) -> RunRecord:
    record = RunRecord(suite.suite, scenario.name, scenario.tier, "clean", repeat)
    clock = FakeClock(EPOCH)
    orch = Orchestrator(data_dir, clock=clock, rng=random.Random(repeat))
    try:
        view, events = await _drive(orch, clock, scenario, record)
    except OrchestrationError as exc:
        record.error = str(exc)
        return record
    finally:
        orch.close()
    _score(record, scenario.expect, view, events)
    return record


async def _drive(orch: Orchestrator, clock: FakeClock, scenario: WorkflowScenario,
                 record: RunRecord) -> tuple[dict[str, Any], list[StoredEvent]]:
    """Start the run, play its script (signals, time passing), audit and replay its log."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    view = await orch.start(scenario.workflow, scenario.input)
    run_id = str(view["id"])
    record.ids.append(run_id)
    for i, step in enumerate(scenario.script):
        if step.signal is not None:
            result = await orch.signal(run_id, step.signal, step.data)
            if step.accepted is not None and result.accepted != step.accepted:
                record.outcome.append(
                    f"script[{i}] {step.signal}: accepted={result.accepted}, expected "
                    f"{step.accepted}" + (f" ({result.reason})" if result.reason else ""))
        elif step.advance is not None:
            clock.advance(step.advance)
            await orch.tick()
    record.duration_s = time.perf_counter() - t0
    record.cpu_s = time.process_time() - cpu0
    record.latencies_ms.append(round(record.duration_s * 1000, 3))
    view = orch.status(run_id)
    events = list(orch.store.read(stream=f"wf:{run_id}"))
    record.audit += audit_run(events, orch.store.view(f"wf:{run_id}"))
    replayed = orch.replay()
    if not replayed.ok:
        record.audit.append(f"replay differs from the stored views: mismatched "
                            f"{replayed.mismatched[:3]}, missing {replayed.missing[:3]}")
    return view, events


def _score(record: RunRecord, expect: RunExpect, view: dict[str, Any],
           events: list[StoredEvent]) -> None:
    """What the run did against what the scenario expects."""
    pairs = [(e.type, e.data) for e in events]
    types = [e.type for e in events]
    completed = [str(d.get("step")) for t, d in pairs if t == "step.completed"]
    started = {str(d.get("step")) for t, d in pairs if t == "step.started"}
    tools = [str(d["tool"]) for t, d in pairs if t == "step.completed" and d.get("tool")]
    denials = [t for t, d in pairs if is_denial(t, d)]
    record.denials = len(denials)
    record.policy = policy_violations(pairs)
    record.tokens = tokens_used(d for _, d in pairs)

    missing = {
        "step": [s for s in dict.fromkeys(expect.steps) if s not in completed],
        "tool": missing_in_order(expect.tools, tools),
        "event": missing_in_order(expect.events, types),
        "denial": [d for d in expect.denials if d not in denials],
    }
    record.required = len(set(expect.steps)) + len(expect.tools) + len(expect.events) + len(
        expect.denials)
    record.done = record.required - sum(len(v) for v in missing.values())
    for kind, items in missing.items():
        record.outcome += [f"{kind} {item} did not happen" for item in items]
    if expect.status is not None and view["status"] != expect.status:
        record.outcome.append(f"status {view['status']}, expected {expect.status}")
    if expect.state is not None and view["state"] != expect.state:
        record.outcome.append(f"state {view['state']}, expected {expect.state}")
    if expect.output:
        record.outcome += subset_problems(expect.output, view.get("output") or {})
    record.outcome += [f"step {s} ran but is forbidden" for s in expect.forbid_steps
                       if s in started]
    record.outcome += [f"event {t} happened but is forbidden" for t in expect.forbid_events
                       if t in types]
    record.signature = signature({"status": view["status"], "state": view["state"],
                                  "steps": sorted(set(completed)), "output": view.get("output")})
