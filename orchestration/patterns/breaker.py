"""Circuit breakers, one per tool or dependency: closed -> open -> half-open -> closed.

Closed, calls flow and consecutive failures are counted; at ``failure_threshold`` the
breaker opens and calls fail at once with ``BreakerOpen`` (the caller's fallback runs
instead of waiting on a dead dependency). After ``cooldown`` seconds the next call is let
through as a probe (half-open, at most ``half_open_max`` at once); ``success_threshold``
probe successes close it, any probe failure opens it again for another cool-down.
Every change of state is emitted as ``breaker.state`` with ``from`` and ``to``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from orchestration.clock import Clock
from orchestration.errors import OrchestrationError

T = TypeVar("T")
BreakerState = Literal["closed", "open", "half_open"]
Emit = Callable[[str, str, dict[str, Any]], None]  # (breaker name, type, data)

# The declared machine; _move() refuses anything else, so a bug cannot skip half-open.
TRANSITIONS: Mapping[BreakerState, frozenset[BreakerState]] = {
    "closed": frozenset({"open"}),
    "open": frozenset({"half_open"}),
    "half_open": frozenset({"closed", "open"}),
}


class BreakerOpen(OrchestrationError):
    transient = False

    def __init__(self, name: str, retry_at: float) -> None:
        super().__init__(f"circuit breaker {name!r} is open until t={retry_at:.3f}")
        self.name = name
        self.retry_at = retry_at


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 5
    cooldown: float = 30.0
    half_open_max: int = 1
    success_threshold: int = 1

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.half_open_max < 1 or self.success_threshold < 1:
            raise ValueError("breaker thresholds must be >= 1")
        if self.cooldown < 0:
            raise ValueError("breaker cooldown must be >= 0")


def _no_emit(name: str, type: str, data: dict[str, Any]) -> None:
    pass


class CircuitBreaker:
    def __init__(
        self, name: str, clock: Clock, policy: BreakerPolicy | None = None, emit: Emit = _no_emit
    ) -> None:
        self.name = name
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._emit = emit
        self.state: BreakerState = "closed"
        self.failures = 0
        self.successes = 0
        self.probes = 0
        self.opened_at = 0.0

    def _move(self, to: BreakerState) -> None:
        if to not in TRANSITIONS[self.state]:
            raise OrchestrationError(f"breaker {self.name!r}: no transition {self.state} -> {to}")
        self._emit(self.name, "breaker.state", {"from": self.state, "to": to,
                                                "failures": self.failures})
        self.state = to
        self.failures = self.successes = self.probes = 0
        if to == "open":
            self.opened_at = self._clock.now()

    def before_call(self) -> None:
        """Raise ``BreakerOpen`` unless a call may go through now."""
        if self.state == "open":
            retry_at = self.opened_at + self.policy.cooldown
            if self._clock.now() < retry_at:
                raise BreakerOpen(self.name, retry_at)
            self._move("half_open")
        if self.state == "half_open":
            if self.probes >= self.policy.half_open_max:
                raise BreakerOpen(self.name, self._clock.now())
            self.probes += 1

    def on_success(self) -> None:
        if self.state == "half_open":
            self.successes += 1
            self.probes = max(0, self.probes - 1)
            if self.successes >= self.policy.success_threshold:
                self._move("closed")
        else:
            self.failures = 0

    def on_failure(self) -> None:
        if self.state == "half_open":
            self._move("open")
        elif self.state == "closed":
            self.failures += 1
            if self.failures >= self.policy.failure_threshold:
                self._move("open")

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        self.before_call()
        try:
            result = await fn()
        except Exception:
            self.on_failure()
            raise
        self.on_success()
        return result


class Breakers:
    """One breaker per name, made on first use, with per-name policy overrides."""

    def __init__(
        self, clock: Clock, default: BreakerPolicy | None = None,
        policies: Mapping[str, BreakerPolicy] | None = None, emit: Emit = _no_emit,
    ) -> None:
        self._clock = clock
        self._default = default or BreakerPolicy()
        self._policies = dict(policies or {})
        self._emit = emit
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(
                name, self._clock, self._policies.get(name, self._default), self._emit
            )
            self._breakers[name] = breaker
        return breaker

    def states(self) -> dict[str, BreakerState]:
        return {n: b.state for n, b in sorted(self._breakers.items())}
