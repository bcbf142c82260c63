"""A process that runs a workflow until it blocks in step ``b``; the test SIGKILLs it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.views import project
from orchestration.workflow.engine import Engine
from orchestration.workflow.loader import from_dict
from tests.orchestration.toolkit import Toolkit

FLOW = from_dict({
    "name": "crashy", "start": "a", "states": {
        "a": {"tool": "inc", "input": {"x": 1, "tag": "a"}, "next": "b", "checkpoint": True},
        "b": {"tool": "wait_for_file", "input": {"step": "b", "x": "$steps.a.x"}, "next": "c"},
        "c": {"tool": "inc", "input": {"x": "$steps.b.x", "tag": "c"}, "next": "done"},
        "done": {"kind": "end", "output": {"x": "$steps.c.x"}},
    },
})


async def main(db: Path, trace: Path) -> None:
    kit = Toolkit(trace, block=True)
    store = SQLiteEventStore(db, project)
    await Engine(store, kit.registry, [FLOW], ids=lambda: "victim").start("crashy")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
