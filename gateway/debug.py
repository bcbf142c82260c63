"""What a leak hunt needs from inside the process: ``GET /api/debug/runtime`` (admin only).

Live asyncio tasks (by coroutine), threads (by name), open file descriptors (by kind),
live sessions, pending transfers, bulkhead slots and resident memory. The soak benchmark
and the fault tests compare these before and after calls: /proc shows a process's fds
and threads from outside, but not its event loop's tasks.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from gateway.runtime import Runtime

_DIGITS = re.compile(r"\d+")


def task_name(task: asyncio.Task[Any]) -> str:
    """The coroutine a task runs (``Task-123`` names say nothing)."""
    coro = task.get_coro()
    qualname = getattr(coro, "__qualname__", None)
    return str(qualname) if qualname else _DIGITS.sub("N", task.get_name())


def fd_kinds() -> Counter[str]:
    """Open descriptors of this process: ``socket``, ``pipe``, ``anon_inode:...`` or the
    file's path."""
    kinds: Counter[str] = Counter()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # the descriptor listing the directory itself, already closed
        kind = target.split(":", 1)[0] if target.startswith(("socket:", "pipe:")) else target
        kinds[_DIGITS.sub("N", kind) if kind.startswith("anon_inode") else kind] += 1
    return kinds


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def snapshot(runtime: Runtime) -> dict[str, Any]:
    tasks = Counter(task_name(t) for t in asyncio.all_tasks())
    threads = Counter(_DIGITS.sub("N", t.name) for t in threading.enumerate())
    fds = fd_kinds()
    pools = (runtime.voice.stt_pool, runtime.voice.tts_pool)
    return {
        "pid": os.getpid(),
        "tasks": sum(tasks.values()),
        "task_names": dict(tasks.most_common()),
        "threads": sum(threads.values()),
        "thread_names": dict(threads.most_common()),
        "fds": sum(fds.values()),
        "fd_kinds": dict(fds.most_common()),
        "rss_kb": rss_kb(),
        "sessions": len(runtime.sessions),
        "transfers": len(runtime.transfers),
        "draining": runtime.draining,
        "pools": {p.name: {"active": p.active, "queued": p.queued} for p in pools},
    }


def debug_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["debug"])

    @router.get("/api/debug/runtime")
    async def runtime_figures() -> dict[str, Any]:
        return snapshot(runtime)

    return router
