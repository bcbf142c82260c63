"""What a leak hunt needs from inside the process: ``GET /api/debug/runtime`` (admin only).

Live asyncio tasks (by coroutine), threads (by name), open file descriptors (by kind),
live sessions, pending transfers, bulkhead slots and resident memory. The soak benchmark
and the fault tests compare these before and after calls: /proc shows a process's fds
and threads from outside, but not its event loop's tasks.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query

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


def malloc_trim() -> bool:
    """Hand the C heap's free pages back to the OS (glibc); False where there is no glibc.

    Resident memory that falls after this was free heap kept by the allocator, not
    memory anything still holds: the soak tells the two apart this way."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def object_census() -> Counter[str]:
    """gc-tracked objects by type (``module.Class``): what piles up, when something does."""
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        counts[f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', '?')}"] += 1
    return counts


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
        # objects the cycle collector tracks: flat while resident memory grows means the
        # growth is native (the models, the allocator), not Python objects piling up
        "py_objects": len(gc.get_objects()),
        "sessions": len(runtime.sessions),
        "transfers": len(runtime.transfers),
        "draining": runtime.draining,
        "pools": {p.name: {"active": p.active, "queued": p.queued} for p in pools},
    }


def debug_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["debug"])

    @router.get("/api/debug/runtime")
    async def runtime_figures(
        objects: int = Query(0, ge=0, le=1000, description="the N most common object types"),
        trim: bool = Query(False, description="malloc_trim first, and say what it freed"),
    ) -> dict[str, Any]:
        before = rss_kb()
        if trim:
            gc.collect()
            malloc_trim()
        figures = snapshot(runtime)
        figures["rss_untrimmed_kb"] = before
        if objects:
            figures["object_types"] = dict(object_census().most_common(objects))
        return figures

    return router
