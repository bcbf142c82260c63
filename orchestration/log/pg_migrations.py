"""The PostgreSQL schema as numbered migrations, applied when a store opens.

``schema_version`` holds one row per applied migration. Every start-up runs ``migrate``:
it takes a transaction-scoped advisory lock first, so two processes starting at once
apply each migration exactly once (the second waits, then finds nothing left to do),
and each migration commits together with its ``schema_version`` row, so a crash half-way
leaves the database at the previous version, never between two. A database migrated by
a newer voxgate (a version this one does not know) is refused rather than misread.

Append a migration to ``MIGRATIONS`` to change the schema; never edit a shipped one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg

from orchestration.log.store import LogError

# pg_advisory_xact_lock's key: any constant bigint; this one is "voxgate" in ASCII
MIGRATION_LOCK = 0x766F78676174


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    sql: LiteralString


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "event log: events, streams and their views, the log head", """
CREATE TABLE events(
    seq BIGINT PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    stream TEXT NOT NULL COLLATE "C",
    version INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    crc BIGINT NOT NULL,
    UNIQUE(stream, version)
);
CREATE TABLE streams(
    stream TEXT PRIMARY KEY COLLATE "C",
    version INTEGER NOT NULL,
    view TEXT
);
-- one row: the last seq handed out. Every append updates it first, so appends are
-- serialised by its row lock: seq is gapless and in commit order, as with SQLite
CREATE TABLE log_head(
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    seq BIGINT NOT NULL
);
INSERT INTO log_head(seq) VALUES (0);
"""),
    Migration(2, "vault: the originals of masked events, for active runs on any replica", """
CREATE TABLE sealed(
    key TEXT PRIMARY KEY,
    stream TEXT NOT NULL COLLATE "C",
    data TEXT NOT NULL
);
CREATE INDEX sealed_stream ON sealed(stream);
"""),
)

LATEST = MIGRATIONS[-1].version


def migrate(conn: psycopg.Connection[Any], where: str) -> int:
    """Bring the database on ``conn`` (in autocommit mode) to
    ``LATEST``; returns the version it was at before."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version("
            "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
            "applied_ts DOUBLE PRECISION NOT NULL)")
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    before = int(row[0]) if row is not None else 0
    if before > LATEST:
        raise LogError(
            f"{where}: the database schema is at version {before}, newer than this voxgate "
            f"knows ({LATEST}); upgrade voxgate, or point VOXGATE_DATABASE_URL elsewhere")
    for migration in MIGRATIONS:
        if migration.version <= before:
            continue
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            done = conn.execute(
                "SELECT 1 FROM schema_version WHERE version = %s", (migration.version,)
            ).fetchone()
            if done is None:  # another process applied it while this one waited
                conn.execute(migration.sql)
                conn.execute("INSERT INTO schema_version VALUES (%s, %s, %s)",
                              (migration.version, migration.description, time.time()))
    return before
