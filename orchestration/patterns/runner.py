"""Running one tool call under the patterns: breaker, retry with backoff, time box,
chaining and ordered fallbacks.

A call names a tool (or a chain: each tool's output is the next one's input) and may list
fallback tools. Each tool gets its own circuit breaker; each attempt is time-boxed; only
transient errors are retried. If the primary still fails, times out or finds its breaker
open, the fallbacks are tried in order with the original input, each switch recorded as
``tool.fallback``. Input that fails its schema or a missing permission is the caller's
fault: it does not count against the tool's breaker and is never retried. A tool that acts
waits, for an early turn, until the turn is confirmed (``orchestration.patterns.hold``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestration.clock import Clock
from orchestration.patterns import hold
from orchestration.patterns.breaker import BreakerOpen, Breakers
from orchestration.patterns.bulkhead import BulkheadFull
from orchestration.patterns.policy import Policy, PolicyDenied
from orchestration.patterns.retry import Emit, RetryBudget, RetryPolicy, retry
from orchestration.patterns.tools import PermissionDenied, ToolError, ToolInputInvalid, ToolRegistry


@dataclass(frozen=True, slots=True)
class CallResult:
    output: dict[str, Any]
    tool: str  # the tool (or last tool of the chain) that produced the output
    fallback: bool


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class ToolRunner:
    def __init__(
        self, registry: ToolRegistry, clock: Clock, rng: random.Random, breakers: Breakers,
        budget: RetryBudget | None = None, policy: Policy | None = None,
    ) -> None:
        self.registry = registry
        self.policy = policy
        self.clock = clock
        self.rng = rng
        self.breakers = breakers
        self.budget = budget

    async def run(
        self, tools: Sequence[str], raw: Mapping[str, Any], *, emit: Emit,
        fallbacks: Sequence[str] = (), retry_spec: RetryPolicy | None = None,
        time_box: float | None = None, granted: Iterable[str] | None = None,
        who: Mapping[str, Any] | None = None,
    ) -> CallResult:
        candidates: list[Sequence[str]] = [tools, *([f] for f in fallbacks)]
        for i, chain in enumerate(candidates):
            try:
                data: Mapping[str, Any] = raw
                for name in chain:
                    data = await self.one(name, data, emit=emit, retry_spec=retry_spec,
                                          time_box=time_box, granted=granted, who=who)
                return CallResult(dict(data), chain[-1], i > 0)
            except (ToolError, BreakerOpen, BulkheadFull) as exc:
                # a denial is final: a fallback must not do what policy just refused
                if i + 1 == len(candidates) or isinstance(
                        exc, PermissionDenied | PolicyDenied | hold.TurnDiscarded):
                    raise
                emit("tool.fallback", {"from": chain[-1], "to": candidates[i + 1][0],
                                       "reason": describe(exc)})
        raise AssertionError("unreachable")

    def gate(
        self, name: str, raw: Mapping[str, Any], *, emit: Emit,
        granted: Iterable[str] | None = None, who: Mapping[str, Any] | None = None,
    ) -> None:
        """Least privilege, then the policy rules, before the tool runs; both recorded."""
        if granted is not None:
            missing = self.registry.get(name).permissions - set(granted)
            if missing:
                message = f"needs permissions not granted: {sorted(missing)}"
                emit("policy.denied", {"tool": name, "rule": "least_privilege",
                                       "message": message, "approval": False})
                raise PermissionDenied(name, message)
        if self.policy is None:
            return
        who = who or {}
        decision = self.policy.check(
            name, raw, agent=str(who.get("agent", "")), caller=who.get("caller"),
            granted=list(granted or []))
        emit("policy.allowed" if decision.allowed else "policy.denied",
             {"tool": name, "rule": decision.rule, "message": decision.message,
              "approval": decision.approval})
        if not decision.allowed:
            raise PolicyDenied(name, decision.rule or "?", decision.message, decision.approval)

    async def one(
        self, name: str, raw: Mapping[str, Any], *, emit: Emit,
        retry_spec: RetryPolicy | None = None, time_box: float | None = None,
        granted: Iterable[str] | None = None, who: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        if not self.registry.get(name).reads_only and hold.pending() is not None:
            emit("tool.held", {"tool": name})  # an early turn: acts once it is confirmed
            await hold.hold_tool(name)
        self.gate(name, raw, emit=emit, granted=granted, who=who)
        breaker = self.breakers.get(name)

        async def attempt(n: int) -> dict[str, Any]:
            breaker.before_call()
            try:
                out = await self.registry.invoke(name, raw, granted, time_box)
            except (ToolInputInvalid, PermissionDenied) as exc:
                breaker.on_success()  # the tool did nothing wrong
                emit("tool.failed", {"tool": name, "attempt": n, "error": describe(exc),
                                     "transient": False})
                raise
            except Exception as exc:
                breaker.on_failure()
                emit("tool.failed", {"tool": name, "attempt": n, "error": describe(exc),
                                     "transient": bool(getattr(exc, "transient", False))})
                raise
            breaker.on_success()
            return out

        if retry_spec is None or retry_spec.max_attempts == 1:
            return await attempt(1)

        def retry_emit(type: str, data: dict[str, Any]) -> None:
            emit(type, {"tool": name, **data})

        return await retry(attempt, retry_spec, clock=self.clock, rng=self.rng,
                           budget=self.budget, emit=retry_emit)
