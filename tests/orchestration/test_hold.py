"""Effects held for an early turn (orchestration.patterns.hold): under ``TURN_CONFIRMED``
a tool that acts waits for the turn and is never run for a dropped one (no breaker
failure, no fallback); a tool that only reads runs at once."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from pydantic import BaseModel

from orchestration.clock import FakeClock
from orchestration.patterns import hold
from orchestration.patterns.breaker import Breakers
from orchestration.patterns.runner import ToolRunner
from orchestration.patterns.tools import ToolRegistry


class In(BaseModel):
    x: int = 0


class Out(BaseModel):
    x: int


def runner() -> tuple[ToolRunner, list[str], Breakers]:
    ran: list[str] = []
    registry = ToolRegistry()
    for name, permissions in (("book", ["calendar.write"]), ("check", ["calendar.read"]),
                              ("backup", ["calendar.write"]), ("plain", [])):
        def fn(inp: In, name: str = name) -> Out:
            ran.append(name)
            return Out(x=inp.x)
        registry.register_fn(name, fn, In, Out, permissions=permissions)
    breakers = Breakers(FakeClock())
    return ToolRunner(registry, FakeClock(), random.Random(1), breakers), ran, breakers


def emitted() -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    seen: list[tuple[str, dict[str, Any]]] = []
    return seen, lambda type, data: seen.append((type, data))


def test_only_tools_that_declare_reading_alone_are_readers() -> None:
    run, _, _ = runner()
    assert [n for n in ("book", "check", "backup", "plain")
            if run.registry.get(n).reads_only] == ["check"]


async def test_a_tool_that_acts_waits_for_the_turn_and_one_that_reads_does_not() -> None:
    run, ran, _ = runner()
    seen, emit = emitted()
    confirmed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    hold.TURN_CONFIRMED.set(confirmed)
    assert (await run.run(["check"], {"x": 1}, emit=emit)).output == {"x": 1}
    booking = asyncio.create_task(run.run(["book"], {"x": 2}, emit=emit))
    plain = asyncio.create_task(run.run(["plain"], {"x": 3}, emit=emit))
    await asyncio.sleep(0.05)
    assert ran == ["check"] and not booking.done() and not plain.done()
    assert [d["tool"] for t, d in seen if t == "tool.held"] == ["book", "plain"]
    confirmed.set_result(True)
    assert (await booking).output == {"x": 2} and (await plain).output == {"x": 3}
    assert ran == ["check", "book", "plain"]


async def test_a_dropped_turn_runs_no_tool_that_acts_and_no_fallback() -> None:
    run, ran, breakers = runner()
    seen, emit = emitted()
    confirmed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    hold.TURN_CONFIRMED.set(confirmed)
    booking = asyncio.create_task(run.run(["book"], {"x": 2}, emit=emit, fallbacks=["backup"]))
    await asyncio.sleep(0.01)
    confirmed.set_result(False)
    with pytest.raises(hold.TurnDiscarded):
        await booking
    assert ran == [] and not [t for t, _ in seen if t in ("tool.fallback", "tool.failed")]
    assert breakers.get("book").state == "closed"


async def test_without_an_early_turn_nothing_waits() -> None:
    run, ran, _ = runner()
    seen, emit = emitted()
    hold.TURN_CONFIRMED.set(None)
    await run.run(["book"], {"x": 1}, emit=emit)
    assert ran == ["book"] and "tool.held" not in [t for t, _ in seen]
