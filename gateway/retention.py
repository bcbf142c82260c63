"""Data retention: calls' events and recordings older than ``retention_days`` go.

Workflow runs, schedules and long-term memory are kept: they are business records and
the caller's own memory, which have their own lifecycles (docs/security.md).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from orchestration.log.backends import database_url as env_database_url
from orchestration.log.backends import open_store
from orchestration.log.views import project

log = logging.getLogger(__name__)

CALL_STREAMS = "call:"


def apply_retention(data_dir: Path, days: float, now: float | None = None,
                    database_url: str | None = None) -> dict[str, int]:
    """``database_url`` (default ``VOXGATE_DATABASE_URL``): purge the log on PostgreSQL
    instead of ``events.db``; recordings are always the data directory's."""
    cutoff = (time.time() if now is None else now) - days * 86400
    events = 0
    url = database_url or env_database_url()
    log_path = data_dir / "events.db"
    if url or log_path.exists():
        store = open_store(url or log_path, project)
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
