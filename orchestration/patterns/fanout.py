"""Concurrent fan-out with a concurrency limit and a partial-failure policy.

Every branch runs to its end (or its own time box) and its result or error is kept,
whatever the policy, so a reviewer sees which facts were gathered and which source
failed. The policy only decides whether the whole succeeded:

- ``all``: every branch must succeed;
- ``quorum``: at least ``quorum`` branches must succeed;
- ``best_effort``: succeeds even if every branch failed (the caller reads the outcomes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from orchestration.errors import OrchestrationError

Policy = Literal["all", "quorum", "best_effort"]


@dataclass(frozen=True, slots=True)
class BranchOutcome:
    name: str
    ok: bool
    output: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FanOutResult:
    policy: Policy
    outcomes: dict[str, BranchOutcome]
    ok: bool

    @property
    def succeeded(self) -> int:
        return sum(1 for o in self.outcomes.values() if o.ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "policy": self.policy,
            "succeeded": self.succeeded,
            "failed": len(self.outcomes) - self.succeeded,
            "branches": {
                n: ({"ok": True, "output": o.output} if o.ok else {"ok": False, "error": o.error})
                for n, o in self.outcomes.items()
            },
        }


class FanOutFailed(OrchestrationError):
    def __init__(self, result: FanOutResult, needed: int) -> None:
        errors = {n: o.error for n, o in result.outcomes.items() if not o.ok}
        super().__init__(
            f"fan-out under policy {result.policy!r} needed {needed} successes, got "
            f"{result.succeeded}; failures: {errors}"
        )
        self.result = result


def needed(policy: Policy, total: int, quorum: int | None) -> int:
    if policy == "all":
        return total
    if policy == "quorum":
        return min(total, quorum or total)
    return 0


async def fan_out(
    branches: Mapping[str, Callable[[], Awaitable[Any]]],
    *,
    limit: int,
    policy: Policy = "all",
    quorum: int | None = None,
    on_done: Callable[[BranchOutcome], None] | None = None,
) -> FanOutResult:
    """Run ``branches`` with at most ``limit`` at once; never raises for a branch error."""
    gate = asyncio.Semaphore(limit)
    outcomes: dict[str, BranchOutcome] = {}

    async def one(name: str, fn: Callable[[], Awaitable[Any]]) -> None:
        async with gate:
            try:
                outcome = BranchOutcome(name, True, await fn())
            except Exception as exc:
                outcome = BranchOutcome(name, False, error=f"{type(exc).__name__}: {exc}")
        outcomes[name] = outcome
        if on_done is not None:
            on_done(outcome)

    async with asyncio.TaskGroup() as group:
        for name, fn in branches.items():
            group.create_task(one(name, fn))
    ordered = {n: outcomes[n] for n in branches}
    ok_count = sum(1 for o in ordered.values() if o.ok)
    return FanOutResult(policy, ordered, ok_count >= needed(policy, len(ordered), quorum))
