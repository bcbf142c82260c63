"""The vault (``orchestration/log/vault.py``) on PostgreSQL, beside the shared event log.

With replicas, a run started on one may be signalled, ticked or taken over on another,
which needs the run's unmasked originals too; so they live in the log's database, in a
``sealed`` table of their own (migration 2), lent the store's connection pool. The log
itself stays masked, as on SQLite.

Unlike SQLite's ``secure_delete``, PostgreSQL leaves a deleted row's bytes in its page
until VACUUM reuses the space (autovacuum does, in time); deployments that must erase at
once run ``VACUUM sealed`` after runs end, and keep the database's disk encrypted.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import psycopg

from orchestration.log.pg_store import PostgresEventStore
from orchestration.log.store import LogError, decode, encode


class PostgresVault:
    def __init__(self, store: PostgresEventStore) -> None:
        self._pool = store.pool
        self.path = f"{store.where} (table sealed)"

    def _run(self, sql: Any, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            with self._pool.connection() as conn:
                cur = conn.execute(sql, args)
                return cur.fetchall() if cur.description is not None else [(cur.rowcount,)]
        except psycopg.Error as exc:
            raise LogError(f"vault {self.path}: {exc}") from exc

    def put(self, stream: str, data: Mapping[str, Any]) -> str:
        key = uuid.uuid4().hex
        self._run("INSERT INTO sealed VALUES (%s, %s, %s)", (key, stream, encode(data)))
        return key

    def restore(self, key: str, stream: str, data: Mapping[str, Any]) -> None:
        """Keep an original under its existing key (copying a vault in)."""
        self._run("INSERT INTO sealed VALUES (%s, %s, %s) ON CONFLICT (key) DO NOTHING",
                  (key, stream, encode(data)))

    def get(self, stream: str) -> dict[str, dict[str, Any]]:
        rows = self._run("SELECT key, data FROM sealed WHERE stream = %s", (stream,))
        return {str(key): decode(str(data)) for key, data in rows}

    def forget(self, stream: str) -> int:
        return int(self._run("DELETE FROM sealed WHERE stream = %s", (stream,))[0][0])

    def streams(self) -> list[str]:
        rows = self._run("SELECT DISTINCT stream FROM sealed ORDER BY stream", ())
        return [str(row[0]) for row in rows]

    def close(self) -> None:
        pass  # the connections are the store's, closed with it
