"""The gateway's own status, as a reading the ops agent speaks ("how is the gateway?").

``GatewayReadings`` is the readings provider ``gateway`` (orchestration/agents/ops_readings.py)
that ``create_app`` plugs into the agents: every probe looks at the live process, not at
a file: the calls in progress, the speech worker pools (jobs running, waiting,
rejected), the event log (``events.db``: writable, its size, free disk) and whether the
models have loaded. Cheap enough to run on the event loop: a few attribute reads, two
``stat`` calls, one ``statvfs`` and one SQLite write transaction rolled back at once
(it never waits for a lock).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from gateway.runtime import Runtime
from orchestration.agents.ops_readings import Reading
from orchestration.patterns.bulkhead import Bulkhead

# under this much free disk the event log will soon stop taking events
LOW_DISK_MB = 200.0


@dataclass(frozen=True, slots=True)
class _EventLog:
    writable: bool
    size_mb: float
    free_mb: float


def _takes_writes(path: Path) -> bool:
    """Whether SQLite can start a write transaction on the log (rolled back at once):
    a read-only file system, a corrupt file or a missing directory say no, where a
    permission check says yes to root. A writer holding the lock means yes: it is writing."""
    if not path.exists():
        return path.parent.is_dir() and os.access(path.parent, os.W_OK)
    try:
        db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=0)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        finally:
            db.close()
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc)
    except sqlite3.DatabaseError:
        return False
    return True


def _event_log(data_dir: Path) -> _EventLog:
    path = data_dir / "events.db"
    size = sum(p.stat().st_size for p in (path, path.with_name("events.db-wal")) if p.exists())
    free = shutil.disk_usage(data_dir).free if data_dir.exists() else 0
    return _EventLog(_takes_writes(path), size / 1e6, free / 1e6)


def _pool(label: str, pool: Bulkhead) -> str:
    if pool.active == 0 and pool.queued == 0:
        return f"{label} idle"
    return f"{label} {pool.active} busy, {pool.queued} waiting"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class GatewayReadings:
    """``provider()`` -> the gateway's Reading; attach the runtime once it exists."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.runtime: Runtime | None = None

    def attach(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def __call__(self) -> Reading:
        rt = self.runtime
        if rt is None or not rt.ready.is_set():
            return Reading("starting", {"models_loaded": 0.0},
                           "Its speech models are still loading.")
        log = _event_log(self.data_dir)
        stt, tts = rt.voice.stt_pool, rt.voice.tts_pool
        calls, limit = len(rt.sessions), rt.settings.max_sessions
        metrics = {
            "live_calls": float(calls), "max_calls": float(limit), "models_loaded": 1.0,
            "stt_busy": float(stt.active), "stt_waiting": float(stt.queued),
            "stt_rejected": float(stt.rejected), "tts_busy": float(tts.active),
            "tts_waiting": float(tts.queued), "tts_rejected": float(tts.rejected),
            "event_log_writable": float(log.writable), "event_log_mb": round(log.size_mb, 2),
            "disk_free_mb": round(log.free_mb, 1),
            **{f"{name}_load_ms": ms for name, ms in rt.voice.load_ms.items()},
        }
        problems = []
        if not log.writable:
            problems.append("the event log is not writable")
        if log.free_mb < LOW_DISK_MB:
            problems.append(f"only {log.free_mb:.0f} megabytes of disk are free")
        if calls >= limit:
            problems.append("it is at its limit of calls")
        for label, pool in (("speech recognition", stt), ("speech synthesis", tts)):
            if pool.max_queue and pool.queued >= pool.max_queue:
                problems.append(f"the {label} queue is full")
        detail = (f"{_plural(calls, 'live call')}, {_pool('speech recognition', stt)}, "
                  f"{_pool('speech synthesis', tts)}; the event log is "
                  f"{'writable' if log.writable else 'not writable'}, "
                  f"{log.size_mb:.1f} megabytes.")
        if problems:
            trouble = "; ".join(problems)
            detail += f" {trouble[0].upper()}{trouble[1:]}."
        return Reading("degraded" if problems else "up", metrics, detail)
