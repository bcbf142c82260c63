"""Move a data directory's SQLite log (and its vault) to PostgreSQL, for a deployment that
grows from one process to replicas: ``voxgate replay --data-dir DIR --copy-to URL``.

Events keep their seq, version, timestamp and data (checksums are verified on the way
out, written again on the way in); the views are rebuilt from them on PostgreSQL
(``replay(fix=True)``) rather than copied; the originals of active runs' masked values
keep their keys, so the copied runs unseal them on any replica. The target log must be
empty: copying twice, or into a live log, is refused. The agents' stores (bookings,
tickets, ops, the outbox, long-term memory) follow (``copy_stores.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.log.copy_stores import copy_stores
from orchestration.log.pg_store import PostgresEventStore
from orchestration.log.pg_vault import PostgresVault
from orchestration.log.replay import replay
from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.store import LogError, StoredEvent
from orchestration.log.vault import Vault
from orchestration.log.views import project

_BATCH = 5000


@dataclass(frozen=True, slots=True)
class CopyReport:
    events: int
    views: int
    sealed: int
    stores: Mapping[str, int] = field(default_factory=dict)  # rows copied per table


def copy_data_dir(data_dir: Path, url: str) -> CopyReport:
    source = data_dir / "events.db"
    if not source.exists():
        raise LogError(f"no event log at {source}")
    src = SQLiteEventStore(source, project)
    dst = PostgresEventStore(url, project)
    try:
        if dst.last_seq() != 0:
            raise LogError(f"{dst.where} already holds events; copy into an empty database")
        events = 0
        chunk: list[StoredEvent] = []
        for event in src.read():
            chunk.append(event)
            if len(chunk) == _BATCH:
                dst.restore(chunk)
                events += len(chunk)
                chunk = []
        dst.restore(chunk)
        events += len(chunk)
        report = replay(dst, fix=True)
        sealed = _copy_vault(data_dir / "vault.db", PostgresVault(dst))
        return CopyReport(events, report.views, sealed, copy_stores(data_dir, url))
    finally:
        src.close()
        dst.close()


def _copy_vault(path: Path, into: PostgresVault) -> int:
    if not path.exists():
        return 0
    vault = Vault(path)
    try:
        copied = 0
        for stream in vault.streams():
            for key, data in vault.get(stream).items():
                into.restore(key, stream, data)
                copied += 1
        return copied
    finally:
        vault.close()
