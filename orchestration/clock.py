"""Clocks: every timing decision in orchestration reads time through one of these.

Backoff delays, breaker cool-downs, SLA timers and cron schedules all take a ``Clock`` so
tests can drive time by hand (``FakeClock``) instead of sleeping. ``now()`` is wall time in
seconds since the epoch because timers are persisted and must survive a restart, where a
monotonic clock would restart from an arbitrary origin.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock for tests: time moves only when told, and ``sleep`` advances it at once.

    Every sleep is recorded in ``sleeps`` so a test can assert the exact backoff schedule.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds

    def set(self, t: float) -> None:
        self._now = t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now += max(0.0, seconds)
        await asyncio.sleep(0)
