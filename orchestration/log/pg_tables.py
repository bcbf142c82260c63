"""The agents' tables on PostgreSQL (the ``Tables`` of ``orchestration/log/tables.py``):
bookings, tickets, ops status and alerts and the confirmation outbox, shared by every
replica on the database of ``VOXGATE_DATABASE_URL``.

A ``psycopg_pool.ConnectionPool`` as the event log's (``pg_store.py``): each call borrows
a connection for one transaction, a connection the server dropped is replaced when lent,
and a lock held longer than the busy timeout fails the statement (``LogBusyError``)
instead of hanging a call. Opening runs the log's migrations (``pg_migrations.py``),
which create these tables (migration 3). Database failures are ``LogError``s naming the
server (without its password); the tool runner turns them into a failed tool call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, LiteralString

import psycopg
from psycopg import errors as pgerr
from psycopg_pool import ConnectionPool, PoolTimeout

from orchestration.log.pg_migrations import migrate
from orchestration.log.pg_store import describe
from orchestration.log.store import LogBusyError, LogError

Conn = psycopg.Connection[Any]
Row = tuple[Any, ...]


class _PgTx:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def rows(self, sql: LiteralString, args: Sequence[Any] = ()) -> list[Row]:
        return [tuple(r) for r in self._conn.execute(sql, tuple(args)).fetchall()]

    def change(self, sql: LiteralString, args: Sequence[Any] = ()) -> int:
        return int(self._conn.execute(sql, tuple(args)).rowcount)


class PostgresTables:
    dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 2, busy_timeout_s: float = 10.0,
                 connect_timeout_s: float = 10.0) -> None:
        self.where = describe(url)
        self._busy_ms = max(1, int(busy_timeout_s * 1000))
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            url, min_size=1, max_size=max(1, pool_size), open=False,
            configure=self._configure, timeout=connect_timeout_s,
            check=ConnectionPool.check_connection,
            kwargs={"connect_timeout": max(1, int(connect_timeout_s))}, name="voxgate-agents")
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
            with self._pool.connection() as conn:
                conn.autocommit = True
                try:
                    migrate(conn, self.where)
                finally:
                    conn.autocommit = False
        except PoolTimeout as exc:
            self._pool.close()
            raise LogError(f"cannot reach the agents' database {self.where} within "
                           f"{connect_timeout_s:g} s ({exc})") from exc
        except BaseException:
            self._pool.close()
            raise

    def _configure(self, conn: Conn) -> None:
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{self._busy_ms}ms",))
        conn.commit()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_PgTx]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield _PgTx(conn)
        except PoolTimeout as exc:
            raise LogBusyError(f"{self.where}: no connection free in the agents' pool "
                               f"({exc})") from exc
        except (pgerr.LockNotAvailable, pgerr.QueryCanceled) as exc:
            raise LogBusyError(f"{self.where} is locked by another writer ({exc}); "
                               "nothing was written") from exc
        except psycopg.Error as exc:
            raise LogError(f"{self.where}: {type(exc).__name__}: {exc}") from exc

    def rows(self, sql: LiteralString, args: Sequence[Any] = ()) -> list[Row]:
        with self.transaction() as tx:
            return tx.rows(sql, args)

    def change(self, sql: LiteralString, args: Sequence[Any] = ()) -> int:
        with self.transaction() as tx:
            return tx.change(sql, args)

    def ensure(self, sqlite_schema: str) -> None:
        """Nothing: migration 3 created the tables when the pool opened."""

    def close(self) -> None:
        self._pool.close()
