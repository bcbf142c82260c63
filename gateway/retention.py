"""Data retention: calls' events and recordings older than ``retention_days`` go.

Workflow runs, schedules and long-term memory are kept: they are business records and
the caller's own memory, which have their own lifecycles (docs/security.md).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from orchestration.sqlite_store import SQLiteEventStore
from orchestration.views import project

log = logging.getLogger(__name__)

CALL_STREAMS = "call:"


def apply_retention(data_dir: Path, days: float, now: float | None = None) -> dict[str, int]:
    cutoff = (time.time() if now is None else now) - days * 86400
    events = 0
    log_path = data_dir / "events.db"
    if log_path.exists():
        store = SQLiteEventStore(log_path, project)
        try:
            events = store.purge(CALL_STREAMS, cutoff)
        finally:
            store.close()
    recordings = 0
    for call_dir in (data_dir / "recordings").glob("*"):
        if call_dir.is_dir() and call_dir.stat().st_mtime < cutoff:
            shutil.rmtree(call_dir, ignore_errors=True)
            recordings += 1
    if events or recordings:
        log.info("retention: deleted %d call events and %d recordings", events, recordings)
    return {"events": events, "recordings": recordings}
