"""The event store on PostgreSQL, for several gateway nodes sharing one log.

Chosen when ``VOXGATE_DATABASE_URL=postgresql://...`` is set (``orchestration/log/backends.py``);
the same contract as ``SQLiteEventStore``, the same tests (tests/orchestration/
test_store_backends.py). Why it is built this way:

- psycopg 3, synchronous, with a ``psycopg_pool.ConnectionPool``: the store is called from
  threads (the bus writer, ``asyncio.to_thread``) exactly like the SQLite one, and each
  call borrows a connection for one transaction, so threads never share a connection.
- Every append first updates the one row of ``log_head``. Its row lock serialises appends
  across processes and nodes as SQLite's file lock does: ``seq`` is gapless and increases
  in commit order, so a reader tailing ``read(after=seq)`` never skips an event that
  commits late, and the ``expected`` version check cannot race. ``UNIQUE(stream, version)``
  stays as a second guard.
- The schema is versioned (``orchestration/log/pg_migrations.py``) and migrated on open under
  an advisory lock.
- Rows keep the same CRC-32 as in SQLite, so a log copied between the two backends (or
  damaged by hand) is checked the same way on read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import errors as pgerr
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from orchestration.log.pg_migrations import migrate
from orchestration.log.sqlite_store import row_crc
from orchestration.log.store import (
    ConcurrentWriteError,
    EventRejected,
    LogBusyError,
    LogCorruptedError,
    LogError,
    LogFullError,
    NewEvent,
    Projector,
    StoredEvent,
    View,
    decode,
    encode,
    encode_event,
    projection_failed,
)

log = logging.getLogger(__name__)

_PAGE = 2000
Conn = psycopg.Connection[Any]


def describe(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise LogError(f"VOXGATE_DATABASE_URL is not a PostgreSQL URL: {exc}") from exc
    host = info.get("host") or "localhost"
    return f"postgresql://{info.get('user') or ''}@{host}:{info.get('port') or 5432}/" \
           f"{info.get('dbname') or ''}"


class PostgresEventStore:
    def __init__(
        self,
        url: str,
        projector: Projector,
        clock: Callable[[], float] = time.time,
        pool_size: int = 4,
        busy_timeout_s: float = 10.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.where = describe(url)
        self._project = projector
        self._clock = clock
        self._busy_ms = max(1, int(busy_timeout_s * 1000))
        self._lock = threading.Lock()  # guards the cache and the observers, not the database
        # stream -> (version, view) as last written by this process; only used when the
        # stream's version in the database still matches (another node may have moved it)
        self._cache: dict[str, tuple[int, View | None]] = {}
        self._observers: list[Callable[[list[StoredEvent]], None]] = []
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            url, min_size=1, max_size=max(1, pool_size), open=False,
            configure=self._configure, timeout=connect_timeout_s,
            # a connection the server dropped (restart, failover, idle timeout) is replaced
            # when lent rather than failing the next append: one round trip per borrow
            check=ConnectionPool.check_connection,
            kwargs={"connect_timeout": max(1, int(connect_timeout_s))},
            name="voxgate-log",
        )
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
            raise LogError(f"cannot reach the event log's database {self.where} within "
                           f"{connect_timeout_s:g} s ({exc})") from exc
        except BaseException:
            self._pool.close()
            raise

    def _configure(self, conn: Conn) -> None:
        # waiting on another writer's lock longer than this is an outage, as SQLite's
        # busy timeout is: the caller (the bus writer) keeps the batch and retries
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{self._busy_ms}ms",))
        conn.commit()

    # --- writing -------------------------------------------------------------------

    def append(
        self, events: Sequence[NewEvent], expected: Mapping[str, int] | None = None
    ) -> list[StoredEvent]:
        if not events:
            return []
        touched = list(dict.fromkeys(e.stream for e in events))
        with self._lock:  # popped: a failed append leaves no trace in the cache
            cached = {s: c for s in touched if (c := self._cache.pop(s, None)) is not None}
        try:
            with self._pool.connection() as conn, conn.transaction():
                out, written = self._append_tx(conn, events, expected or {}, touched, cached)
        except LogError:
            raise
        except psycopg.Error as exc:
            raise self._failed(exc) from exc
        with self._lock:
            self._cache.update(written)
            if len(self._cache) > 10_000:
                self._cache.clear()
            observers = tuple(self._observers)
        for observer in observers:
            try:
                observer(out)
            except Exception:  # a broken observer must not look like a failed write
                log.exception("event log observer %r failed", observer)
        return out

    def _failed(self, exc: psycopg.Error) -> LogError:
        if isinstance(exc, pgerr.LockNotAvailable | pgerr.QueryCanceled):
            return LogBusyError(f"{self.where} is locked by another writer ({exc}); nothing "
                                "was written")
        if isinstance(exc, pgerr.DiskFull | pgerr.OutOfMemory | pgerr.ProgramLimitExceeded):
            return LogFullError(f"{self.where}: the disk holding the event log is full "
                                f"({exc}); nothing was written")
        if isinstance(exc, psycopg.DataError):
            return EventRejected(f"{self.where}: {exc}; nothing was written")
        return LogError(f"{self.where}: cannot write the event log ({type(exc).__name__}: "
                        f"{exc}); nothing was written")

    def _append_tx(
        self, conn: Conn, events: Sequence[NewEvent], expected: Mapping[str, int],
        touched: list[str], cached: dict[str, tuple[int, View | None]],
    ) -> tuple[list[StoredEvent], dict[str, tuple[int, View | None]]]:
        head = conn.execute(
            "UPDATE log_head SET seq = seq + %s RETURNING seq - %s", (len(events), len(events))
        ).fetchone()
        assert head is not None
        seq = int(head[0])
        versions: dict[str, int] = {
            str(s): int(v) for s, v in conn.execute(
                "SELECT stream, version FROM streams WHERE stream = ANY(%s)", (touched,))
        }
        views: dict[str, View | None] = {}
        stale = []
        for stream in touched:
            hit = cached.get(stream)
            if hit is not None and hit[0] == versions.get(stream, 0):
                views[stream] = hit[1]
            elif stream in versions:
                stale.append(stream)
        if stale:
            for stream, view in conn.execute(
                    "SELECT stream, view FROM streams WHERE stream = ANY(%s)", (stale,)):
                views[str(stream)] = None if view is None else decode(str(view))
        for stream, version in expected.items():
            if versions.get(stream, 0) != version:
                raise ConcurrentWriteError(stream, version, versions.get(stream, 0))
        out, rows = self._fold(events, seq, versions, views)
        conn.execute(
            # binary parameters (%b): psycopg quotes text arrays with a regular expression
            # per element otherwise, which costs more than the insert itself
            "INSERT INTO events SELECT * FROM unnest("
            "%b::bigint[], %b::float8[], %b::text[], %b::int[], %b::text[], %b::text[], "
            "%b::bigint[])", [list(col) for col in zip(*rows, strict=True)])
        conn.execute(
            "INSERT INTO streams SELECT * FROM unnest(%b::text[], %b::int[], %b::text[]) "
            "ON CONFLICT (stream) DO UPDATE SET version = EXCLUDED.version, "
            "view = EXCLUDED.view",
            (touched, [versions[s] for s in touched],
             [None if views.get(s) is None else encode(views[s] or {}) for s in touched]))
        return out, {s: (versions[s], views.get(s)) for s in touched}

    def _fold(
        self, events: Sequence[NewEvent], seq: int, versions: dict[str, int],
        views: dict[str, View | None],
    ) -> tuple[list[StoredEvent], list[tuple[Any, ...]]]:
        """Number, encode and project ``events``; updates ``versions`` and ``views``."""
        rows: list[tuple[Any, ...]] = []
        out = []
        for i, new in enumerate(events):
            seq += 1
            version = versions.get(new.stream, 0) + 1
            versions[new.stream] = version
            ts = float(self._clock() if new.ts is None else new.ts)
            text = encode_event(new, i)
            rows.append((seq, ts, new.stream, version, new.type, text,
                         row_crc(seq, ts, new.stream, version, new.type, text)))
            stored = StoredEvent(seq, ts, new.stream, version, new.type, decode(text))
            out.append(stored)
            try:
                view = self._project(views.get(new.stream), stored)
            except Exception as exc:
                raise projection_failed(stored, i, exc) from exc
            if view is not None:
                views[new.stream] = view
        return out, rows

    def observe(self, observer: Callable[[list[StoredEvent]], None]) -> Callable[[], None]:
        """Call ``observer`` with each batch once committed; returns the unsubscribe."""
        with self._lock:
            self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def restore(self, events: Sequence[StoredEvent]) -> None:
        """Insert events keeping their own seq and version (copying a log in).

        Views are not touched: rebuild them with ``replay(store, fix=True)`` afterwards.
        """
        rows = []
        for e in events:
            text = encode(e.data)
            rows.append((e.seq, e.ts, e.stream, e.version, e.type, text,
                         row_crc(e.seq, e.ts, e.stream, e.version, e.type, text)))
        with self._lock:
            self._cache.clear()
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT seq FROM log_head FOR UPDATE")
            if rows:
                conn.execute(
                    "INSERT INTO events SELECT * FROM unnest(%s::bigint[], %s::float8[], "
                    "%s::text[], %s::int[], %s::text[], %s::text[], %s::bigint[])",
                    [list(col) for col in zip(*rows, strict=True)])
            conn.execute(
                "INSERT INTO streams SELECT stream, MAX(version), NULL FROM events "
                "WHERE stream = ANY(%s) GROUP BY stream ON CONFLICT (stream) DO UPDATE SET "
                "version = EXCLUDED.version, view = NULL", (list({r[2] for r in rows}),))
            conn.execute("UPDATE log_head SET seq = (SELECT COALESCE(MAX(seq), 0) FROM events)")

    # --- reading -------------------------------------------------------------------

    def read(
        self, after: int = 0, stream: str | None = None, limit: int | None = None
    ) -> Iterator[StoredEvent]:
        left = limit
        while left is None or left > 0:
            page = _PAGE if left is None else min(_PAGE, left)
            if stream is None:
                rows = self._query(
                    "SELECT seq, ts, stream, version, type, data, crc FROM events "
                    "WHERE seq > %s ORDER BY seq LIMIT %s", (after, page))
            else:
                rows = self._query(
                    "SELECT seq, ts, stream, version, type, data, crc FROM events "
                    "WHERE seq > %s AND stream = %s ORDER BY seq LIMIT %s",
                    (after, stream, page))
            for seq, ts, st, version, type_, data, crc in rows:
                if row_crc(seq, ts, st, version, type_, data) != crc:
                    raise LogCorruptedError(
                        f"event log {self.where}: event seq {seq} fails its checksum")
                yield StoredEvent(seq, ts, st, version, type_, decode(data))
            if len(rows) < page:
                return
            after = rows[-1][0]
            if left is not None:
                left -= len(rows)

    def _query(self, sql: Any, args: Sequence[object]) -> list[tuple[Any, ...]]:
        try:
            with self._pool.connection() as conn:
                return conn.execute(sql, args).fetchall()
        except PoolTimeout as exc:
            raise LogBusyError(f"{self.where}: no free connection ({exc})") from exc
        except psycopg.Error as exc:
            raise LogError(f"{self.where}: cannot read the event log ({exc})") from exc

    def last_seq(self) -> int:
        return int(self._query("SELECT COALESCE(MAX(seq), 0) FROM events", ())[0][0])

    def version(self, stream: str) -> int:
        rows = self._query("SELECT version FROM streams WHERE stream = %s", (stream,))
        return int(rows[0][0]) if rows else 0

    def view(self, stream: str) -> View | None:
        rows = self._query("SELECT view FROM streams WHERE stream = %s", (stream,))
        if not rows or rows[0][0] is None:
            return None
        return decode(str(rows[0][0]))

    def views(self, prefix: str = "") -> dict[str, View]:
        # streams.stream has the "C" collation: code point order, as SQLite compares
        rows = self._query(
            "SELECT stream, view FROM streams WHERE view IS NOT NULL AND stream >= %s "
            "AND stream < %s ORDER BY stream", (prefix, prefix + "\U0010ffff"))
        return {str(s): decode(str(v)) for s, v in rows}

    def purge(self, prefix: str, before_ts: float) -> int:
        """Delete whole streams under ``prefix`` whose newest event is older than
        ``before_ts`` (data retention), as ``SQLiteEventStore.purge`` does."""
        with self._lock:
            self._cache.clear()
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT seq FROM log_head FOR UPDATE")
            old = [str(r[0]) for r in conn.execute(
                "SELECT stream FROM events WHERE stream >= %s AND stream < %s "
                "GROUP BY stream HAVING MAX(ts) < %s",
                (prefix, prefix + "\U0010ffff", before_ts))]
            cur = conn.execute("DELETE FROM events WHERE stream = ANY(%s)", (old,))
            conn.execute("DELETE FROM streams WHERE stream = ANY(%s)", (old,))
            return int(cur.rowcount)

    def replace_views(self, views: Mapping[str, View]) -> None:
        with self._lock:
            self._cache.clear()
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT seq FROM log_head FOR UPDATE")
            conn.execute("UPDATE streams SET view = NULL")
            if views:
                conn.execute(
                    "UPDATE streams SET view = v.view FROM unnest(%s::text[], %s::text[]) "
                    "AS v(stream, view) WHERE streams.stream = v.stream",
                    (list(views), [encode(v) for v in views.values()]))

    @property
    def pool(self) -> ConnectionPool[Conn]:
        """The store's connections, lent to what lives in the same database (the vault)."""
        return self._pool

    def close(self) -> None:
        self._pool.close()
