"""Least privilege and policy rules before every tool call, with their decisions recorded."""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from gateway.evaluation.line import Line, make_system
from orchestration.clock import FakeClock
from orchestration.patterns.breaker import Breakers
from orchestration.patterns.policy import Policy, PolicyDenied, PolicyFileError
from orchestration.patterns.runner import ToolRunner
from orchestration.patterns.tools import PermissionDenied, ToolRegistry
from orchestration.service import Orchestrator


class Refund(BaseModel):
    amount: float


class Done(BaseModel):
    ok: bool


def refund_runner(policy: Policy) -> tuple[ToolRunner, list[float]]:
    registry = ToolRegistry()
    paid: list[float] = []

    @registry.tool("billing.refund", permissions=["billing.write"])
    def refund(inp: Refund) -> Done:
        paid.append(inp.amount)
        return Done(ok=True)

    clock = FakeClock()
    return ToolRunner(registry, clock, random.Random(1), Breakers(clock), policy=policy), paid


class Events:
    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, type: str, data: dict[str, Any]) -> None:
        self.items.append((type, dict(data)))

    def of(self, type: str) -> list[dict[str, Any]]:
        return [d for t, d in self.items if t == type]


async def test_refund_above_the_limit_needs_approval_and_does_not_run() -> None:
    runner, paid = refund_runner(Policy.load())
    events = Events()
    await runner.run(["billing.refund"], {"amount": 40}, emit=events, granted=["billing.write"])
    with pytest.raises(PolicyDenied) as denied:
        await runner.run(
            ["billing.refund"], {"amount": 250}, emit=events, granted=["billing.write"]
        )
    assert denied.value.rule == "refund_limit" and denied.value.approval
    assert paid == [40]
    assert events.of("policy.allowed")[0]["tool"] == "billing.refund"
    assert events.of("policy.denied") == [
        {
            "tool": "billing.refund",
            "rule": "refund_limit",
            "message": "refunds over 100 need a supervisor's approval",
            "approval": True,
        }
    ]


async def test_a_tool_outside_the_agents_permissions_is_denied_before_it_runs() -> None:
    runner, paid = refund_runner(Policy([]))
    events = Events()
    with pytest.raises(PermissionDenied):
        await runner.run(["billing.refund"], {"amount": 1}, emit=events, granted=["calendar.read"])
    assert paid == []
    assert events.of("policy.denied")[0]["rule"] == "least_privilege"
    assert not events.of("tool.failed") or all(
        "PermissionDenied" in e["error"] for e in events.of("tool.failed")
    )


async def test_no_booking_outside_business_hours(tmp_path: Path) -> None:
    system, _ = make_system(tmp_path)
    events = Events()
    args = {"date": "2026-12-01", "time": "18:00", "caller": "+15550001", "name": "Ada"}
    with pytest.raises(PolicyDenied) as denied:
        await system.runner.run(["calendar.book"], args, emit=events, granted=["calendar.write"])
    assert denied.value.rule == "business_hours"
    assert not system.calendar.all()
    ok = await system.runner.run(
        ["calendar.book"], {**args, "time": "10:00"}, emit=events, granted=["calendar.write"]
    )
    assert ok.output["time"] == "10:00"


async def test_internal_kb_only_for_callers_with_the_role(tmp_path: Path) -> None:
    orch = Orchestrator(tmp_path)
    try:
        runner = orch.engine.runner
        events = Events()
        staff = {"agent": "kb_qa", "caller": {"roles": ["kb.internal"]}}
        public = {"agent": "kb_qa", "caller": {"roles": []}}
        query = {"query": "vpn", "source": "internal"}
        await runner.run(
            ["kb.search_internal"], query, emit=events, granted=["kb.internal"], who=staff
        )
        with pytest.raises(PolicyDenied):
            await runner.run(
                ["kb.search_internal"], query, emit=events, granted=["kb.internal"], who=public
            )
        # a fallback must not do what policy refused
        with pytest.raises(PolicyDenied):
            await runner.run(
                ["kb.search_internal"],
                query,
                emit=events,
                fallbacks=["kb.search"],
                granted=["kb.internal"],
                who=public,
            )
        assert [d["rule"] for d in events.of("policy.denied")] == ["kb_internal_sources"] * 2
    finally:
        orch.close()


async def test_memory_needs_a_declared_scope(tmp_path: Path) -> None:
    system, recorder = make_system(tmp_path)
    flow = system.flows["workspace"]
    system.flows["workspace"] = flow.model_copy(update={"permissions": ["notes.read"]})
    line = Line(system, recorder)
    await line.greet()
    await line.say("Take a note.")
    await line.say("Call the plumber tomorrow.")
    denied = line.events("policy.denied")
    assert denied and denied[0]["rule"] == "least_privilege"
    assert denied[0]["tool"] == "memory.remember"
    assert not system.memory.search(line.agent.call.caller or "+15005550006", "plumber")


def test_bad_policy_files_are_rejected_naming_file_and_path(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("rules:\n  - {name: x, tools: [a], when: 'input.amount >', message: m}\n")
    with pytest.raises(PolicyFileError, match=r"p\.yaml: rules\.0\.when"):
        Policy.load(bad)
    bad.write_text("rules:\n  - {name: x, tools: [a], when: 'secrets.key == 1', message: m}\n")
    with pytest.raises(PolicyFileError, match=r"rules\.0\.when"):
        Policy.load(bad)
    bad.write_text("rules: [{name: Bad Name, tools: [a], when: 'true', message: m}]\n")
    with pytest.raises(PolicyFileError, match=r"rules\.0\.name"):
        Policy.load(bad)


def test_time_rules_use_the_injected_clock() -> None:
    policy = Policy.load(clock=lambda: datetime(2026, 11, 28, 12, 0))
    assert policy.check("calendar.book", {"time": "12:00"}).allowed
    assert not policy.check("calendar.book", {"time": "08:30"}).allowed
    assert policy.check("calendar.find", {"time": "08:30"}).allowed  # not governed
