"""The default event store: one SQLite file in WAL mode.

Why these choices:
- WAL lets readers (the dashboard, ``voxgate workflow status``) read while a writer
  appends, and ``synchronous=NORMAL`` in WAL mode keeps every committed transaction
  across a process crash (only an OS crash can lose the last ones).
- Every append is one ``BEGIN IMMEDIATE`` transaction, so two processes writing one file
  are serialised by SQLite's own lock; ``seq`` is taken inside that lock and
  ``UNIQUE(stream, version)`` plus the ``expected`` check turn a lost update into a
  ``ConcurrentWriteError`` instead of a silent overwrite.
- Each row carries a CRC-32 of its content: SQLite notices a torn page, but not a flipped
  byte inside a JSON string, and a replayed log must be exactly what was written.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

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

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    crc INTEGER NOT NULL,
    UNIQUE(stream, version)
);
CREATE TABLE IF NOT EXISTS streams(
    stream TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    view TEXT
);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_PAGE = 2000
_IN_CHUNK = 500  # streams per "IN (...)" query, well under SQLite's variable limit


def row_crc(seq: int, ts: float, stream: str, version: int, type: str, data: str) -> int:
    return zlib.crc32(f"{seq}|{ts!r}|{stream}|{version}|{type}|{data}".encode())


class SQLiteEventStore:
    def __init__(
        self,
        path: str | Path,
        projector: Projector,
        clock: Callable[[], float] = time.time,
        busy_timeout_s: float = 10.0,
        check: bool = True,
    ) -> None:
        self.path = Path(path)
        self._project = projector
        self._clock = clock
        self._lock = threading.RLock()
        # stream -> (version, view) as last written by this process; saves decoding a
        # view on every append, and is dropped whenever another writer moved the stream
        self._cache: dict[str, tuple[int, View | None]] = {}
        # called with every committed batch (metrics); an observer's error never undoes
        # or fails a write
        self._observers: list[Callable[[list[StoredEvent]], None]] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if check:
                problem = self._db.execute("PRAGMA quick_check").fetchone()[0]
                if problem != "ok":
                    raise sqlite3.DatabaseError(problem)
            self._db.executescript(_SCHEMA)
            found = self._db.execute(
                "SELECT value FROM meta WHERE key='schema'"
            ).fetchone()
            if found is None:
                self._db.execute(
                    "INSERT OR IGNORE INTO meta VALUES('schema', ?)", (SCHEMA_VERSION,)
                )
            elif found[0] != SCHEMA_VERSION:
                raise LogError(
                    f"{self.path}: log schema {found[0]} is not the supported {SCHEMA_VERSION}"
                )
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise LogBusyError(f"{self.path}: {exc}") from exc
            raise self._corrupted(exc) from exc
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise self._corrupted(exc) from exc

    def _corrupted(self, exc: Exception) -> LogCorruptedError:
        return LogCorruptedError(
            f"event log {self.path} is damaged ({exc}); its intact events can be copied to a "
            f"new log with `voxgate replay --salvage {self.path}.salvaged`"
        )

    # --- writing -------------------------------------------------------------------

    def append(
        self, events: Sequence[NewEvent], expected: Mapping[str, int] | None = None
    ) -> list[StoredEvent]:
        if not events:
            return []
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._unwritable(exc) from exc
            try:
                self._pending_cache: dict[str, tuple[int, View | None]] = {}
                out = self._append_locked(events, expected or {})
                self._db.execute("COMMIT")
                self._cache.update(self._pending_cache)
                if len(self._cache) > 10_000:
                    self._cache.clear()
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.IntegrityError):
                    raise LogError(f"{self.path}: {exc}; nothing was written") from exc
                if isinstance(exc, sqlite3.OperationalError):
                    raise self._unwritable(exc) from exc
                if isinstance(exc, sqlite3.DataError | OverflowError):
                    raise EventRejected(f"{self.path}: {exc}; nothing was written") from exc
                if isinstance(exc, sqlite3.DatabaseError):
                    raise self._corrupted(exc) from exc
                raise
        for observer in tuple(self._observers):
            try:
                observer(out)
            except Exception:  # a broken observer must not look like a failed write
                log.exception("event log observer %r failed", observer)
        return out

    def _unwritable(self, exc: sqlite3.OperationalError) -> LogError:
        """Why the log cannot be written just now: busy (locked), full, or its disk."""
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return LogBusyError(
                f"{self.path} is locked by another writer ({exc}); nothing was written")
        if name == "SQLITE_FULL":
            return LogFullError(
                f"{self.path}: the disk holding the event log is full ({exc}); nothing was "
                "written")
        return LogError(f"{self.path}: cannot write the event log ({name}: {exc}); nothing "
                        "was written")

    def _rollback(self) -> None:
        # SQLite has rolled back already after some errors (a full disk): ROLLBACK would
        # then fail, and its error would hide the one that matters
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.warning("event log %s: rollback failed (%s)", self.path, exc)

    def observe(self, observer: Callable[[list[StoredEvent]], None]) -> Callable[[], None]:
        """Call ``observer`` with each batch once committed; returns the unsubscribe."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def _current(self, touched: list[str]) -> tuple[dict[str, int], dict[str, View | None]]:
        """The streams' versions and views now: views from the cache when still current,
        else from the database."""
        db = self._db
        versions: dict[str, int] = {}
        views: dict[str, View | None] = {}
        for i in range(0, len(touched), _IN_CHUNK):
            chunk = touched[i : i + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            for stream, version in db.execute(
                f"SELECT stream, version FROM streams WHERE stream IN ({marks})", chunk
            ):
                versions[stream] = version
        stale = []
        for stream in touched:
            cached = self._cache.pop(stream, None)  # popped: a failed append leaves no trace
            if cached is not None and cached[0] == versions.get(stream, 0):
                views[stream] = cached[1]
            elif stream in versions:
                stale.append(stream)
        for i in range(0, len(stale), _IN_CHUNK):
            chunk = stale[i : i + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            for stream, view in db.execute(
                f"SELECT stream, view FROM streams WHERE stream IN ({marks})", chunk
            ):
                views[stream] = None if view is None else decode(view)
        return versions, views

    def _append_locked(
        self, events: Sequence[NewEvent], expected: Mapping[str, int]
    ) -> list[StoredEvent]:
        db = self._db
        seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        touched = list(dict.fromkeys(e.stream for e in events))
        versions, views = self._current(touched)
        for stream, version in expected.items():
            if versions.get(stream, 0) != version:
                raise ConcurrentWriteError(stream, version, versions.get(stream, 0))
        rows = []
        out = []
        project = self._project
        for i, new in enumerate(events):
            seq += 1
            version = versions.get(new.stream, 0) + 1
            versions[new.stream] = version
            ts = self._clock() if new.ts is None else new.ts
            text = encode_event(new, i)
            rows.append(
                (seq, ts, new.stream, version, new.type, text,
                 row_crc(seq, ts, new.stream, version, new.type, text))
            )
            stored = StoredEvent(seq, ts, new.stream, version, new.type, decode(text))
            out.append(stored)
            try:
                view = project(views.get(new.stream), stored)
            except Exception as exc:
                raise projection_failed(stored, i, exc) from exc
            if view is not None:
                views[new.stream] = view
        db.executemany("INSERT INTO events VALUES(?,?,?,?,?,?,?)", rows)
        db.executemany(
            "INSERT OR REPLACE INTO streams VALUES(?,?,?)",
            [
                (s, versions[s], None if views.get(s) is None else encode(views[s] or {}))
                for s in touched
            ],
        )
        self._pending_cache = {s: (versions[s], views.get(s)) for s in touched}
        return out

    def restore(self, events: Sequence[StoredEvent]) -> None:
        """Insert events keeping their own seq and version (salvage, migration).

        Views are not touched: rebuild them with ``replay(store, fix=True)`` afterwards.
        """
        rows = []
        for e in events:
            text = encode(e.data)
            rows.append((e.seq, e.ts, e.stream, e.version, e.type, text,
                         row_crc(e.seq, e.ts, e.stream, e.version, e.type, text)))
        with self._lock:
            self._cache.clear()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO events VALUES(?,?,?,?,?,?,?)", rows)
                self._db.execute(
                    "INSERT OR REPLACE INTO streams(stream, version, view) "
                    "SELECT stream, MAX(version), NULL FROM events GROUP BY stream")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # --- reading -------------------------------------------------------------------

    def read(
        self, after: int = 0, stream: str | None = None, limit: int | None = None
    ) -> Iterator[StoredEvent]:
        left = limit
        while left is None or left > 0:
            page = _PAGE if left is None else min(_PAGE, left)
            rows = self._query(
                "SELECT seq, ts, stream, version, type, data, crc FROM events WHERE seq > ?"
                + (" AND stream = ?" if stream is not None else "")
                + " ORDER BY seq LIMIT ?",
                (after, stream, page) if stream is not None else (after, page),
            )
            for seq, ts, st, version, type_, data, crc in rows:
                if row_crc(seq, ts, st, version, type_, data) != crc:
                    raise LogCorruptedError(
                        f"event log {self.path}: event seq {seq} fails its checksum; "
                        f"run `voxgate replay --salvage NEW_PATH` to copy the intact events"
                    )
                yield StoredEvent(seq, ts, st, version, type_, decode(data))
            if len(rows) < page:
                return
            after = rows[-1][0]
            if left is not None:
                left -= len(rows)

    def _query(self, sql: str, args: Sequence[object]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                raise LogBusyError(f"{self.path}: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                raise self._corrupted(exc) from exc

    def last_seq(self) -> int:
        return int(self._query("SELECT COALESCE(MAX(seq), 0) FROM events", ())[0][0])

    def version(self, stream: str) -> int:
        rows = self._query("SELECT version FROM streams WHERE stream = ?", (stream,))
        return int(rows[0][0]) if rows else 0

    def view(self, stream: str) -> View | None:
        rows = self._query("SELECT view FROM streams WHERE stream = ?", (stream,))
        if not rows or rows[0][0] is None:
            return None
        return decode(str(rows[0][0]))

    def views(self, prefix: str = "") -> dict[str, View]:
        rows = self._query(
            "SELECT stream, view FROM streams WHERE view IS NOT NULL AND stream >= ? "
            "AND stream < ? ORDER BY stream",
            (prefix, prefix + "\U0010ffff"),
        )
        return {str(s): decode(str(v)) for s, v in rows}

    def purge(self, prefix: str, before_ts: float) -> int:
        """Delete whole streams under ``prefix`` whose newest event is older than
        ``before_ts`` (data retention). Streams go whole, so every stream that remains is
        complete and replay still rebuilds exactly the views that remain."""
        with self._lock:
            self._cache.clear()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                old = [
                    str(row[0])
                    for row in self._db.execute(
                        "SELECT stream FROM events WHERE stream >= ? AND stream < ? "
                        "GROUP BY stream HAVING MAX(ts) < ?",
                        (prefix, prefix + "\U0010ffff", before_ts),
                    )
                ]
                deleted = 0
                for i in range(0, len(old), _IN_CHUNK):
                    chunk = old[i : i + _IN_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    cur = self._db.execute(f"DELETE FROM events WHERE stream IN ({marks})", chunk)
                    deleted += cur.rowcount
                    self._db.execute(f"DELETE FROM streams WHERE stream IN ({marks})", chunk)
                self._db.execute("COMMIT")
                return deleted
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def replace_views(self, views: Mapping[str, View]) -> None:
        with self._lock:
            self._cache.clear()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("UPDATE streams SET view = NULL")
                self._db.executemany(
                    "UPDATE streams SET view = ? WHERE stream = ?",
                    [(encode(v), s) for s, v in views.items()],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()
