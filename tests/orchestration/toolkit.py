"""Real tools for engine tests: they count their calls and fail on request.

Nothing here stands in for the engine; these are the engine's inputs. ``calls`` records
every invocation in order so a test can prove which steps ran, and how often.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from orchestration.patterns.tools import ToolRegistry, TransientToolError


class Num(BaseModel):
    x: int = 0
    tag: str = ""


class Note(BaseModel):
    step: str
    x: int = 0


class Crash(BaseException):
    """Escapes every ``except Exception``: stands for the process dying mid-step."""


class Toolkit:
    def __init__(self, trace: Path | None = None, block: bool = False) -> None:
        self.calls: list[str] = []
        self.block = block  # wait_for_file blocks forever (until the process is killed)
        self.trace = trace  # also append calls to a file (for subprocess tests)
        self.fail_times: dict[str, int] = {}
        self.crash_on: str | None = None
        self.registry = ToolRegistry()
        self._register()

    def _note(self, name: str) -> None:
        self.calls.append(name)
        if self.trace is not None:
            with self.trace.open("a") as f:
                f.write(name + "\n")

    def _register(self) -> None:
        reg = self.registry

        @reg.tool("inc")
        def inc(inp: Num) -> Num:
            self._note(f"inc:{inp.tag}")
            if self.crash_on == inp.tag:
                raise Crash()
            return Num(x=inp.x + 1, tag=inp.tag)

        @reg.tool("double")
        def double(inp: Num) -> Num:
            self._note("double")
            return Num(x=inp.x * 2)

        @reg.tool("flaky")
        def flaky(inp: Num) -> Num:
            self._note(f"flaky:{inp.tag}")
            left = self.fail_times.get(inp.tag, 0)
            if left > 0:
                self.fail_times[inp.tag] = left - 1
                raise TransientToolError("flaky", "service unavailable")
            return Num(x=inp.x, tag=inp.tag)

        @reg.tool("boom")
        def boom(inp: Num) -> Num:
            self._note("boom")
            raise RuntimeError("exploded")

        @reg.tool("hang", timeout=0.05)
        async def hang(inp: Num) -> Num:
            self._note("hang")
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        @reg.tool("garbage")
        def garbage(inp: Num) -> Num:
            self._note("garbage")
            bad: Any = {"x": "not a number"}
            return bad  # type: ignore[no-any-return]

        @reg.tool("undo")
        def undo(inp: Note) -> Note:
            self._note(f"undo:{inp.step}")
            return inp

        @reg.tool("secret", permissions=["vault.read"])
        def secret(inp: Num) -> Num:
            self._note("secret")
            return inp

        @reg.tool("wait_for_file", timeout=None)
        async def wait_for_file(inp: Note) -> Note:
            # used by the crash test: blocks until killed
            self._note(f"block:{inp.step}")
            if self.block:
                await asyncio.Event().wait()
            return inp
