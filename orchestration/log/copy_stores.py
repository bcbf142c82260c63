"""The agents' stores of a data directory, copied into PostgreSQL with its log (``voxgate
replay --copy-to``, ``copy_to_pg.py``): ``agents.db`` (bookings, tickets, ops status and
alerts), ``outbox.db`` (booking confirmations) and ``memory.db`` (callers and what was
remembered about them, embeddings included; the full-text index is PostgreSQL's own,
computed from the text).

Rows keep their ids (a booking's ``ref`` names its confirmation; ticket numbers are made
from ids), and each identity sequence is moved past the highest copied id, so the next
booking or ticket made on a replica does not collide. Every table is copied in one
transaction after both schemas are migrated; a target table that already holds rows is
refused, as a log that holds events is, and nothing is written.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from memory.pg_store import PostgresMemoryStore
from orchestration.log.pg_store import describe
from orchestration.log.pg_tables import PostgresTables
from orchestration.log.store import LogError

# (file in the data directory, table, columns): the same names in SQLite and PostgreSQL
TABLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("agents.db", "bookings",
     ("id", "caller", "name", "day", "time", "status", "created", "key")),
    ("agents.db", "tickets", ("id", "ref", "caller", "category", "summary", "status", "created")),
    ("agents.db", "ops_status", ("service", "status", "metrics", "ts")),
    ("agents.db", "ops_alerts",
     ("id", "service", "metric", "value", "threshold", "severity", "message", "ts")),
    ("outbox.db", "outbox", ("id", "key", "recipient", "text", "created")),
    ("memory.db", "callers", ("caller", "name", "calls", "first_seen", "last_seen")),
    ("memory.db", "items", ("id", "caller", "kind", "text", "data", "ts", "vec")),
)


def _read(path: Path, table: str, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """The table's rows in ``columns``' order; a column an older file lacks (a calendar
    from before idempotency keys) reads as NULL; a missing file or table, no rows."""
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if not have:
            return []
        picked = ", ".join(c if c in have else "NULL" for c in columns)
        return [tuple(r) for r in db.execute(f"SELECT {picked} FROM {table}")]
    except sqlite3.Error as exc:
        raise LogError(f"cannot read {table} from {path}: {exc}") from None
    finally:
        db.close()


def copy_stores(data_dir: Path, url: str) -> dict[str, int]:
    """Copy the stores under ``data_dir`` into the database at ``url``; rows per table."""
    PostgresTables(url).close()  # the log's migrations: the agents' tables
    PostgresMemoryStore(url).close()  # memory's own
    found = {table: _read(data_dir / file, table, columns) for file, table, columns in TABLES}
    copied: dict[str, int] = {}
    try:
        with psycopg.connect(url) as conn, conn.transaction():
            for _, table, columns in TABLES:
                name = sql.Identifier(table)
                if conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(name)).fetchone():
                    raise LogError(f"{describe(url)}: table {table} already holds rows; copy "
                                   "into an empty database")
                rows = found[table]
                with conn.cursor() as cur:
                    cur.executemany(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                        name, sql.SQL(", ").join(map(sql.Identifier, columns)),
                        sql.SQL(", ").join(sql.Placeholder() * len(columns))), rows)
                if rows and "id" in columns:  # the next id made here follows the copied ones
                    conn.execute(sql.SQL(
                        "SELECT setval(pg_get_serial_sequence({}, 'id'), max(id)) FROM {}"
                    ).format(sql.Literal(table), name))
                copied[table] = len(rows)
    except psycopg.Error as exc:
        raise LogError(f"{describe(url)}: cannot copy the agents' stores "
                       f"({type(exc).__name__}: {exc}); nothing was copied") from exc
    return copied
