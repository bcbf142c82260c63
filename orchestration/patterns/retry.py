"""Retry with backoff and jitter, a cap, and a retry budget; only transient errors retry.

Jitter follows the three schemes of the AWS Architecture Blog's "Exponential Backoff And
Jitter" (Brooker, 2015): *full* draws the delay uniformly in [0, d], *equal* keeps half of
d and draws the other half, *decorrelated* draws in [base, 3 * previous delay]. Every delay
is capped. The randomness and the clock are injected, so a test can check the exact
schedule with a seeded ``random.Random`` and a ``FakeClock`` without sleeping.

The retry budget stops a retry storm: each first attempt earns ``ratio`` of a token, each
retry spends a whole one, and ``min_per_s`` tokens a second trickle in so a quiet service
can still retry. When the budget is empty, failures are returned at once.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from orchestration.clock import Clock

T = TypeVar("T")
Emit = Callable[[str, dict[str, Any]], None]


class RetryPolicy(Protocol):
    """How a call is retried. A workflow definition's ``retry:`` (``RetrySpec``, checked
    when the definition is loaded) is one; ``Backoff`` is one made in code."""

    @property
    def max_attempts(self) -> int: ...
    @property
    def backoff(self) -> str: ...  # "exponential" or "linear"
    @property
    def base(self) -> float: ...
    @property
    def cap(self) -> float: ...
    @property
    def jitter(self) -> str: ...  # "none", "full", "equal" or "decorrelated"


@dataclass(frozen=True, slots=True)
class Backoff:
    max_attempts: int = 3
    backoff: str = "exponential"
    base: float = 0.5
    cap: float = 30.0
    jitter: str = "full"


def _no_emit(type: str, data: dict[str, Any]) -> None:
    pass


def delays(policy: RetryPolicy, rng: random.Random) -> Iterator[float]:
    """The delay before each retry: ``max_attempts - 1`` values."""
    prev = policy.base
    for n in range(1, policy.max_attempts):
        raw = policy.base * (2 ** (n - 1)) if policy.backoff == "exponential" else policy.base * n
        raw = min(policy.cap, raw)
        if policy.jitter == "full":
            delay = rng.uniform(0, raw)
        elif policy.jitter == "equal":
            delay = raw / 2 + rng.uniform(0, raw / 2)
        elif policy.jitter == "decorrelated":
            delay = min(policy.cap, rng.uniform(policy.base, max(policy.base, prev * 3)))
            prev = delay
        else:
            delay = raw
        yield delay


class RetryBudget:
    def __init__(
        self, clock: Clock, ratio: float = 0.2, min_per_s: float = 1.0, capacity: float = 10.0
    ) -> None:
        self._clock = clock
        self.ratio = ratio
        self.min_per_s = min_per_s
        self.capacity = capacity
        self.tokens = capacity
        self._last = clock.now()

    def _refill(self) -> None:
        now = self._clock.now()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.min_per_s)
        self._last = now

    def on_attempt(self) -> None:
        self._refill()
        self.tokens = min(self.capacity, self.tokens + self.ratio)

    def try_spend(self) -> bool:
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def is_transient(exc: BaseException) -> bool:
    return bool(getattr(exc, "transient", False))


async def retry(
    fn: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    *,
    clock: Clock,
    rng: random.Random,
    budget: RetryBudget | None = None,
    emit: Emit = _no_emit,
    transient: Callable[[BaseException], bool] = is_transient,
) -> T:
    """Call ``fn(attempt)`` until it succeeds, a permanent error, or the attempts run out."""
    schedule = delays(policy, rng)
    attempt = 1
    if budget is not None:
        budget.on_attempt()
    while True:
        try:
            return await fn(attempt)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if not transient(exc):
                raise
            delay = next(schedule, None)
            if delay is None:
                emit("retry.exhausted", {"attempts": attempt, "error": error})
                raise
            if budget is not None and not budget.try_spend():
                emit("retry.budget_exhausted", {"attempt": attempt, "error": error})
                raise
            emit("retry.scheduled", {"attempt": attempt + 1, "delay": delay, "error": error})
            await clock.sleep(delay)
            attempt += 1
