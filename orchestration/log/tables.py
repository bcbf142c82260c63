"""The agents' tables beside the event log: bookings, tickets, ops status and alerts, the
confirmation outbox. One small interface over the two backends:

* ``SQLiteTables``: a file in the data directory (``agents.db``, ``outbox.db``), the
  embedded default; each store creates its own tables on it (``ensure``);
* ``PostgresTables`` (``orchestration/log/pg_tables.py``): the database of
  ``VOXGATE_DATABASE_URL``, shared by every replica; the tables come from the log's
  versioned migrations (``pg_migrations.py``, migration 3), applied when it opens.

Statements are written once, in the SQL both engines speak (``INSERT ... ON CONFLICT``,
``RETURNING``), with psycopg's ``%s`` placeholders (SQLite gets ``?``); so they hold no
other ``%`` and no ``?``. A transaction holds several statements that must commit
together (``with tables.transaction() as tx``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, LiteralString, Protocol

from orchestration.log.backends import is_postgres_url

Row = tuple[Any, ...]


class Transaction(Protocol):
    def rows(self, sql: LiteralString, args: Sequence[Any] = ()) -> list[Row]:
        """The statement's rows (a SELECT, or an INSERT ... RETURNING)."""
        ...

    def change(self, sql: LiteralString, args: Sequence[Any] = ()) -> int:
        """Rows the statement changed."""
        ...


class Tables(Protocol):
    dialect: str  # "sqlite" or "postgresql"

    def transaction(self) -> contextlib.AbstractContextManager[Transaction]: ...

    def rows(self, sql: LiteralString, args: Sequence[Any] = ()) -> list[Row]: ...

    def change(self, sql: LiteralString, args: Sequence[Any] = ()) -> int: ...

    def ensure(self, sqlite_schema: str) -> None:
        """Create a store's tables on SQLite (``CREATE ... IF NOT EXISTS``); PostgreSQL's
        come from the migrations, so nothing is done there."""
        ...

    def close(self) -> None: ...


class _SQLiteTx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def rows(self, sql: LiteralString, args: Sequence[Any] = ()) -> list[Row]:
        return [tuple(r) for r in self._db.execute(sql.replace("%s", "?"), tuple(args))]

    def change(self, sql: LiteralString, args: Sequence[Any] = ()) -> int:
        return int(self._db.execute(sql.replace("%s", "?"), tuple(args)).rowcount)


class SQLiteTables:
    """One connection (WAL, a 5 s busy timeout) guarded by a lock, usable from any thread;
    other processes on the same file are serialised by SQLite's file lock."""

    dialect = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._tx = _SQLiteTx(self._db)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._tx
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def rows(self, sql: LiteralString, args: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            return self._tx.rows(sql, args)

    def change(self, sql: LiteralString, args: Sequence[Any] = ()) -> int:
        with self._lock:
            return self._tx.change(sql, args)

    def ensure(self, sqlite_schema: str) -> None:
        with self._lock:
            self._db.executescript(sqlite_schema)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_tables(location: Path | str | Tables, *, pool_size: int = 2) -> Tables:
    """Tables at ``location``: already open ones as they are, a ``postgresql://`` URL (its
    migrations applied), or a SQLite file path."""
    if isinstance(location, Path | str):
        if is_postgres_url(location):
            from orchestration.log.pg_tables import PostgresTables

            return PostgresTables(str(location), pool_size=pool_size)
        return SQLiteTables(location)
    return location
