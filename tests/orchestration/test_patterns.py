"""Retry, circuit breaker, bulkhead events, saga and fan-out, with an injected clock."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from orchestration.clock import FakeClock
from orchestration.errors import OrchestrationError
from orchestration.patterns.breaker import BreakerOpen, BreakerPolicy, Breakers, CircuitBreaker
from orchestration.patterns.bulkhead import BulkheadFull
from orchestration.patterns.fanout import FanOutFailed, fan_out
from orchestration.patterns.pools import ObservedBulkhead
from orchestration.patterns.retry import RetryBudget, delays, retry
from orchestration.patterns.saga import Saga, SagaFailed
from orchestration.patterns.tools import TransientToolError
from orchestration.workflow.definition import RetrySpec


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, type: str, data: dict[str, Any]) -> None:
        self.events.append((type, data))

    def types(self) -> list[str]:
        return [t for t, _ in self.events]


class _Rng(random.Random):
    """A fake random source: ``uniform`` always returns the top of its range."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_schedules_without_jitter_are_exact() -> None:
    exp = RetrySpec(max_attempts=6, backoff="exponential", base=0.5, cap=4, jitter="none")
    assert list(delays(exp, random.Random(0))) == [0.5, 1.0, 2.0, 4.0, 4.0]
    lin = RetrySpec(max_attempts=5, backoff="linear", base=1.5, cap=4, jitter="none")
    assert list(delays(lin, random.Random(0))) == [1.5, 3.0, 4.0, 4.0]


def test_jitter_schemes_stay_in_their_bounds() -> None:
    for seed in range(20):
        rng = random.Random(seed)
        full = list(delays(RetrySpec(max_attempts=5, base=1, cap=8, jitter="full"), rng))
        assert all(0 <= d <= raw for d, raw in zip(full, [1, 2, 4, 8], strict=True))
        equal = list(delays(RetrySpec(max_attempts=5, base=1, cap=8, jitter="equal"), rng))
        assert all(raw / 2 <= d <= raw for d, raw in zip(equal, [1, 2, 4, 8], strict=True))
        dec = list(delays(RetrySpec(max_attempts=8, base=1, cap=10, jitter="decorrelated"), rng))
        assert all(1 <= d <= 10 for d in dec)
    # decorrelated: each delay is drawn up to three times the previous one, capped
    top = list(delays(RetrySpec(max_attempts=5, base=1, cap=20, jitter="decorrelated"), _Rng()))
    assert top == [3, 9, 20, 20]


async def test_retry_retries_transient_errors_with_the_clock() -> None:
    clock, emit = FakeClock(), Recorder()
    calls: list[int] = []

    async def flaky(attempt: int) -> str:
        calls.append(attempt)
        if attempt < 3:
            raise TransientToolError("svc", "503")
        return "ok"

    spec = RetrySpec(max_attempts=4, base=1, jitter="none")
    assert await retry(flaky, spec, clock=clock, rng=random.Random(), emit=emit) == "ok"
    assert calls == [1, 2, 3] and clock.sleeps == [1, 2]
    assert emit.types() == ["retry.scheduled", "retry.scheduled"]
    assert emit.events[0][1] == {"attempt": 2, "delay": 1, "error": "TransientToolError: "
                                 "tool 'svc': 503"}


async def test_permanent_errors_are_not_retried_and_exhaustion_is_reported() -> None:
    clock, emit = FakeClock(), Recorder()

    async def broken(attempt: int) -> str:
        raise ValueError("bad request")

    with pytest.raises(ValueError):
        await retry(broken, RetrySpec(), clock=clock, rng=random.Random(), emit=emit)
    assert clock.sleeps == [] and emit.events == []

    async def down(attempt: int) -> str:
        raise TransientToolError("svc", "down")

    with pytest.raises(TransientToolError):
        await retry(down, RetrySpec(max_attempts=3, jitter="none"), clock=clock,
                    rng=random.Random(), emit=emit)
    assert emit.types() == ["retry.scheduled", "retry.scheduled", "retry.exhausted"]


async def test_retry_budget_stops_a_retry_storm_and_refills_with_time() -> None:
    clock = FakeClock()
    budget = RetryBudget(clock, ratio=0.1, min_per_s=0.5, capacity=2)
    emit = Recorder()

    async def down(attempt: int) -> str:
        raise TransientToolError("svc", "down")

    spec = RetrySpec(max_attempts=10, base=0, jitter="none")
    with pytest.raises(TransientToolError):
        await retry(down, spec, clock=clock, rng=random.Random(), budget=budget, emit=emit)
    # 2 tokens + 0.1 earned by the first attempt: two retries, then the budget is empty
    assert emit.types() == ["retry.scheduled", "retry.scheduled", "retry.budget_exhausted"]
    clock.advance(2.0)  # refills one token
    assert budget.try_spend() and not budget.try_spend()


async def test_breaker_opens_cools_down_probes_and_closes() -> None:
    clock = FakeClock()
    seen: list[tuple[str, str]] = []
    breaker = CircuitBreaker("crm", clock, BreakerPolicy(failure_threshold=3, cooldown=30),
                             emit=lambda n, t, d: seen.append((d["from"], d["to"])))
    ok = True

    async def call() -> str:
        if not ok:
            raise ConnectionError("refused")
        return "fine"

    ok = False
    for _ in range(3):
        with pytest.raises(ConnectionError):
            await breaker.call(call)
    assert breaker.state == "open"
    with pytest.raises(BreakerOpen, match="circuit breaker 'crm' is open until"):
        await breaker.call(call)
    clock.advance(29.9)
    with pytest.raises(BreakerOpen):
        await breaker.call(call)
    clock.advance(0.1)
    with pytest.raises(ConnectionError):  # the probe fails: open again for a new cool-down
        await breaker.call(call)
    assert breaker.state == "open"
    clock.advance(30)
    ok = True
    assert await breaker.call(call) == "fine"
    assert str(breaker.state) == "closed"
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "open"),
                    ("open", "half_open"), ("half_open", "closed")]


def test_breaker_machine_refuses_undeclared_moves_and_bad_policies() -> None:
    breaker = CircuitBreaker("x", FakeClock())
    with pytest.raises(OrchestrationError, match="no transition closed -> half_open"):
        breaker._move("half_open")
    with pytest.raises(ValueError):
        BreakerPolicy(failure_threshold=0)


def test_breakers_are_per_name() -> None:
    breakers = Breakers(FakeClock(), BreakerPolicy(failure_threshold=1),
                        {"slow": BreakerPolicy(failure_threshold=5)})
    breakers.get("a").on_failure()
    breakers.get("slow").on_failure()
    assert breakers.states() == {"a": "open", "slow": "closed"}


async def test_bulkhead_rejects_beyond_its_queue_and_reports_it() -> None:
    seen: list[str] = []
    pool = ObservedBulkhead("tools", 1, 1, lambda n, t, d: seen.append(t))
    other = ObservedBulkhead("stt", 1, 0, lambda n, t, d: seen.append(t))
    gate = asyncio.Event()

    async def work() -> int:
        await gate.wait()
        return 1

    first = asyncio.create_task(pool.run(work))
    await asyncio.sleep(0)
    second = asyncio.create_task(pool.run(work))
    await asyncio.sleep(0)
    with pytest.raises(BulkheadFull, match="bulkhead 'tools' is full"):
        await pool.run(work)
    assert await other.run_in_thread(lambda: 7) == 7  # another pool is unaffected
    gate.set()
    assert [await first, await second] == [1, 1]
    assert seen == ["bulkhead.queued", "bulkhead.rejected"]


async def test_saga_compensates_in_reverse_order_retrying_each() -> None:
    clock, emit = FakeClock(), Recorder()
    undone: list[str] = []
    attempts = {"hotel": 0}

    def undo(name: str, fails: int = 0) -> Any:
        async def go() -> None:
            if name in attempts:
                attempts[name] += 1
                if attempts[name] <= fails:
                    raise ConnectionError("try again")
            undone.append(name)
        return go

    async def ok() -> str:
        return "ok"

    async def boom() -> str:
        raise RuntimeError("card declined")

    saga = Saga(clock, random.Random(0), emit)
    await saga.step("flight", ok, undo("flight"))
    await saga.step("hotel", ok, undo("hotel", fails=2))
    await saga.step("car", ok, undo("car"))
    with pytest.raises(SagaFailed) as err:
        await saga.step("payment", boom)
    assert undone == ["car", "hotel", "flight"]
    assert err.value.report.compensated == ["car", "hotel", "flight"]
    assert attempts["hotel"] == 3
    comp = [(t, d.get("step")) for t, d in emit.events if t.startswith(("compensation", "retry"))]
    assert comp == [
        ("compensation.started", "car"), ("compensation.completed", "car"),
        ("compensation.started", "hotel"), ("retry.scheduled", "hotel"),
        ("retry.scheduled", "hotel"), ("compensation.completed", "hotel"),
        ("compensation.started", "flight"), ("compensation.completed", "flight"),
    ]


async def test_a_failing_compensation_is_recorded_and_the_rest_still_run() -> None:
    emit = Recorder()
    undone: list[str] = []

    async def ok() -> None:
        pass

    async def undo_a() -> None:
        undone.append("a")

    async def never() -> None:
        raise ConnectionError("gone")

    async def boom() -> None:
        raise RuntimeError("x")

    saga = Saga(FakeClock(), random.Random(0), emit)
    await saga.step("a", ok, undo_a)
    await saga.step("b", ok, never)
    with pytest.raises(SagaFailed, match=r"could not undo \['b'\]"):
        await saga.step("c", boom)
    assert ("compensation.failed", {"step": "b", "error": "ConnectionError: gone"}) in emit.events
    assert undone == ["a"]


async def test_fan_out_limits_concurrency_and_keeps_every_outcome() -> None:
    running, peak = 0, 0

    def branch(i: int) -> Any:
        async def go() -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0)
            running -= 1
            if i % 3 == 0:
                raise ValueError(f"source {i} down")
            return i * 10
        return go

    branches = {f"b{i}": branch(i) for i in range(1, 10)}
    best = await fan_out(branches, limit=2, policy="best_effort")
    assert peak <= 2 and best.ok and best.succeeded == 6
    assert best.outcomes["b3"].error == "ValueError: source 3 down"
    assert best.outcomes["b4"].output == 40
    assert not (await fan_out(branches, limit=3, policy="all")).ok
    assert (await fan_out(branches, limit=3, policy="quorum", quorum=6)).ok
    result = await fan_out(branches, limit=3, policy="quorum", quorum=7)
    assert not result.ok
    assert "needed 7 successes, got 6" in str(FanOutFailed(result, 7))
