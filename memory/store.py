"""Long-term memory per caller: SQLite with FTS5 full-text search, embeddings optional.

(The same store on PostgreSQL, for several gateway replicas: ``memory/pg_store.py``; both
satisfy ``LongTermMemory``, and share the checks and the vector ranking below.)

One file (default ``<data dir>/memory.db``) holds

* ``callers``: one row per caller key (a phone number in E.164, or a browser caller id):
  the name they gave, how many calls, first and last seen;
* ``items``: what was remembered about them, each with a ``kind`` ("note", "booking",
  "ticket", "fact"), its text, JSON data and time; ``items_fts`` indexes the text
  (kept in step by triggers). With an encoder, each item also carries its embedding.

Every write passes ``find_secret`` first and raises ``SecretRefused`` instead of storing a
card number, password or code: the router checks before writing, and this store checks
again so that no other path can put a secret on disk.

WAL mode; one connection guarded by a lock, usable from any thread (the gateway builds
the store on one thread and serves calls on the event loop's).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from memory.errors import MemoryStoreError, SecretRefused
from memory.secrets import find_secret

_SCHEMA = """
CREATE TABLE IF NOT EXISTS callers (
    caller TEXT PRIMARY KEY, name TEXT, calls INTEGER NOT NULL DEFAULT 0,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY, caller TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}', ts REAL NOT NULL, vec BLOB
);
CREATE INDEX IF NOT EXISTS items_caller ON items (caller, kind, ts);
CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5(
    text, content='items', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS items_ai AFTER INSERT ON items BEGIN
    INSERT INTO items_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS items_ad AFTER DELETE ON items BEGIN
    INSERT INTO items_fts (items_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
"""


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Profile:
    caller: str
    name: str | None
    calls: int
    first_seen: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class Item:
    id: int
    caller: str
    kind: str
    text: str
    ts: float
    data: Mapping[str, Any] = field(default_factory=dict)
    score: float = 0.0


def caller_key(caller: str | None) -> str | None:
    """A stable key: phone numbers lose spaces, dashes and brackets; None stays None."""
    if caller is None or not caller.strip():
        return None
    c = caller.strip()
    if re.fullmatch(r"\+?[\d\s().-]{5,}", c):
        return re.sub(r"[^\d+]", "", c)
    return c


class LongTermMemory(Protocol):
    """What the router and the agents use of a store (SQLite or PostgreSQL)."""

    encoder: Encoder | None

    def close(self) -> None: ...
    def touch(self, caller: str) -> Profile: ...
    def profile(self, caller: str) -> Profile | None: ...
    def set_name(self, caller: str, name: str) -> None: ...
    def add(self, caller: str, kind: str, text: str,
            data: Mapping[str, Any] | None = None) -> int: ...
    def update(self, item_id: int, data: Mapping[str, Any]) -> None: ...
    def items(self, caller: str, kind: str | None = None, limit: int = 10) -> list[Item]: ...
    def search(self, caller: str, query: str, kind: str | None = None,
               limit: int = 5) -> list[Item]: ...
    def delete(self, item_id: int) -> None: ...
    def forget(self, caller: str) -> int: ...
    def dump_text(self) -> str: ...


def checked_payload(text: str, data: Mapping[str, Any] | None) -> str:
    """``data`` as stored (sorted JSON); ``SecretRefused`` if it or ``text`` holds a secret."""
    payload = json.dumps(dict(data or {}), sort_keys=True)
    found = find_secret(text) or find_secret(payload)
    if found is not None:
        raise SecretRefused(found)
    return payload


def embedding(encoder: Encoder | None, text: str) -> bytes | None:
    """The stored form of ``text``'s embedding: float32 bytes (None without an encoder)."""
    if encoder is None:
        return None
    return np.asarray(encoder.encode([text])[0], dtype=np.float32).tobytes()


def query_words(query: str) -> list[str]:
    """The words a full-text search looks for (any of them)."""
    return re.findall(r"\w+", query.lower())


def nearest(encoder: Encoder, query: str, rows: list[Any], limit: int) -> list[Item]:
    """Rows ``(id, caller, kind, text, ts, data, vec)`` ranked by the dot product of their
    embedding with the query's (cosine: the encoder's vectors are L2-normalised)."""
    if not rows:
        return []
    q = encoder.encode([query])[0]
    mat = np.stack([np.frombuffer(bytes(r[6]), dtype=np.float32) for r in rows])
    sims = mat @ q
    order = np.argsort(-sims)[:limit]
    return [Item(rows[i][0], rows[i][1], rows[i][2], rows[i][3], rows[i][4],
                 json.loads(rows[i][5]), float(sims[i])) for i in order]


class MemoryStore:
    def __init__(
        self, path: Path | str, encoder: Encoder | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.encoder = encoder
        self.clock = clock
        self._lock = threading.Lock()
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise MemoryStoreError(f"cannot open memory store {path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- callers ----------------------------------------------------------------------

    def touch(self, caller: str) -> Profile:
        """Count a call from ``caller`` and return the profile as it was before it."""
        before = self.profile(caller)
        now = self.clock()
        with self._lock:
            self._db.execute(
                "INSERT INTO callers (caller, calls, first_seen, last_seen) VALUES (?, 1, ?, ?)"
                " ON CONFLICT(caller) DO UPDATE SET calls = calls + 1, last_seen = excluded"
                ".last_seen", (caller, now, now))
        return before or Profile(caller, None, 0, now, now)

    def profile(self, caller: str) -> Profile | None:
        with self._lock:
            row = self._db.execute(
                "SELECT caller, name, calls, first_seen, last_seen FROM callers WHERE caller=?",
                (caller,)).fetchone()
        return Profile(*row) if row else None

    def set_name(self, caller: str, name: str) -> None:
        kind = find_secret(name)
        if kind is not None:
            raise SecretRefused(kind)
        now = self.clock()
        with self._lock:
            self._db.execute(
                "INSERT INTO callers (caller, name, calls, first_seen, last_seen) "
                "VALUES (?, ?, 0, ?, ?) ON CONFLICT(caller) DO UPDATE SET name = excluded.name",
                (caller, name, now, now))

    # --- items ------------------------------------------------------------------------

    def add(self, caller: str, kind: str, text: str,
            data: Mapping[str, Any] | None = None) -> int:
        """Remember ``text`` about ``caller``; raises ``SecretRefused`` for a secret."""
        payload = checked_payload(text, data)
        vec = embedding(self.encoder, text)
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO items (caller, kind, text, data, ts, vec) VALUES (?, ?, ?, ?, ?, ?)",
                (caller, kind, text, payload, self.clock(), vec))
        return int(cur.lastrowid or 0)

    def update(self, item_id: int, data: Mapping[str, Any]) -> None:
        payload = checked_payload("", data)
        with self._lock:
            self._db.execute("UPDATE items SET data=? WHERE id=?", (payload, item_id))

    def items(self, caller: str, kind: str | None = None, limit: int = 10) -> list[Item]:
        """Newest first."""
        sql = "SELECT id, caller, kind, text, ts, data FROM items WHERE caller=?"
        args: list[Any] = [caller]
        if kind is not None:
            sql += " AND kind=?"
            args.append(kind)
        sql += " ORDER BY ts DESC, id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [Item(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def search(self, caller: str, query: str, kind: str | None = None,
               limit: int = 5) -> list[Item]:
        """Items of ``caller`` about ``query``: by embedding similarity when the store has
        an encoder, else FTS5 (porter-stemmed words, any of them, ranked by bm25)."""
        if self.encoder is not None:
            return self._search_vectors(caller, query, kind, limit)
        words = query_words(query)
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in words)
        sql = ("SELECT i.id, i.caller, i.kind, i.text, i.ts, i.data, bm25(items_fts) "
               "FROM items_fts JOIN items i ON i.id = items_fts.rowid "
               "WHERE items_fts MATCH ? AND i.caller = ?")
        args: list[Any] = [match, caller]
        if kind is not None:
            sql += " AND i.kind = ?"
            args.append(kind)
        sql += " ORDER BY bm25(items_fts) LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [Item(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), -float(r[6])) for r in rows]

    def _search_vectors(self, caller: str, query: str, kind: str | None,
                        limit: int) -> list[Item]:
        assert self.encoder is not None
        sql = "SELECT id, caller, kind, text, ts, data, vec FROM items WHERE caller=? " \
              "AND vec IS NOT NULL"
        args: list[Any] = [caller]
        if kind is not None:
            sql += " AND kind=?"
            args.append(kind)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return nearest(self.encoder, query, rows, limit)

    def delete(self, item_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM items WHERE id=?", (item_id,))

    def forget(self, caller: str) -> int:
        """Erase everything about ``caller`` (a data-subject request); rows removed."""
        with self._lock:
            n = self._db.execute("DELETE FROM items WHERE caller=?", (caller,)).rowcount
            n += self._db.execute("DELETE FROM callers WHERE caller=?", (caller,)).rowcount
        return int(n)

    def dump_text(self) -> str:
        """Every stored text and name, for tests that prove a secret never got in."""
        with self._lock:
            names = self._db.execute("SELECT coalesce(name, '') FROM callers").fetchall()
            texts = self._db.execute("SELECT text || ' ' || data FROM items").fetchall()
        return "\n".join(str(r[0]) for r in [*names, *texts])
