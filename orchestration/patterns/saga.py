"""Sagas: steps with compensating actions, undone in reverse order when a step fails.

Each compensation is retried under its own policy (compensations must be idempotent:
an "undo" that half-ran is run again), and recorded as ``compensation.started``,
``compensation.completed`` or ``compensation.failed``. A compensation that still fails
after its retries does not stop the others: the saga undoes everything it can and reports
what it could not, so an operator knows exactly what to clean up by hand.

``Saga`` is the pattern on its own, for code outside workflows; the workflow engine uses
``compensate`` for workflows declared with ``saga: true``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestration.clock import Clock
from orchestration.errors import OrchestrationError
from orchestration.patterns.retry import Backoff, Emit, RetryPolicy, retry

COMPENSATION_RETRY = Backoff(max_attempts=3, base=0.5, cap=5.0, jitter="equal")


def _always(exc: BaseException) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Compensation:
    step: str
    undo: Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class CompensationReport:
    compensated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class SagaFailed(OrchestrationError):
    def __init__(self, step: str, error: BaseException, report: CompensationReport) -> None:
        left = f"; could not undo {sorted(report.failed)}" if report.failed else ""
        super().__init__(
            f"saga step {step!r} failed ({error}); undid {report.compensated}{left}"
        )
        self.step = step
        self.error = error
        self.report = report


async def compensate(
    done: Sequence[Compensation], *, clock: Clock, rng: random.Random, emit: Emit,
    policy: RetryPolicy = COMPENSATION_RETRY,
) -> CompensationReport:
    """Undo ``done`` (given in the order the steps ran) in reverse order."""
    report = CompensationReport()
    for comp in reversed(done):
        emit("compensation.started", {"step": comp.step})

        def sub_emit(type: str, data: dict[str, Any], step: str = comp.step) -> None:
            emit(type, {"step": step, "compensation": True, **data})

        async def attempt(n: int, comp: Compensation = comp) -> Any:
            return await comp.undo()

        try:
            # every failure of an undo is worth another try: it must be idempotent
            await retry(attempt, policy, clock=clock, rng=rng, emit=sub_emit, transient=_always)
        except Exception as exc:
            report.failed[comp.step] = f"{type(exc).__name__}: {exc}"
            emit("compensation.failed", {"step": comp.step, "error": report.failed[comp.step]})
            continue
        report.compensated.append(comp.step)
        emit("compensation.completed", {"step": comp.step})
    return report


@dataclass
class Saga:
    clock: Clock
    rng: random.Random
    emit: Emit
    policy: RetryPolicy = COMPENSATION_RETRY
    _done: list[Compensation] = field(default_factory=list)

    async def step(
        self, name: str, action: Callable[[], Awaitable[Any]],
        undo: Callable[[], Awaitable[Any]] | None = None,
    ) -> Any:
        """Run ``action``; on failure undo earlier steps and raise ``SagaFailed``."""
        self.emit("step.started", {"step": name})
        try:
            result = await action()
        except Exception as exc:
            self.emit("step.failed", {"step": name, "error": f"{type(exc).__name__}: {exc}"})
            report = await compensate(
                self._done, clock=self.clock, rng=self.rng, emit=self.emit, policy=self.policy
            )
            raise SagaFailed(name, exc, report) from exc
        self.emit("step.completed", {"step": name})
        if undo is not None:
            self._done.append(Compensation(name, undo))
        return result
