"""What a workflow run needs unmasked, kept out of the event log while the run is active.

A run's events are redacted before they are written (``Sealing``; docs/security.md), but
the run itself may need the real values to carry on: a card number in its input goes to
the payment tool two steps later, perhaps after a restart. So when redaction changes an
event, the event log gets the masked copy plus a ``sealed`` key, and the vault keeps the
original under that key. A run loaded again (``instance.load_run``) folds its events with
the originals put back; the stored view, the REST API, the dashboard and ``voxgate
replay`` only ever see the masked log. When the run ends its originals are deleted.

The vault is its own SQLite file beside the log (``vault.db``, mode 0600, rollback journal
and ``secure_delete`` so a deleted value is overwritten, not left in a free page or a
WAL), so the log can be copied, inspected or shipped without personal data in it.
Written before the log (a crash in between leaves an unreferenced entry, deleted with
the run's others), keyed by a random id (two writers cannot overwrite each other's).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orchestration.log.store import EventStore, NewEvent, decode, encode
from orchestration.log.views import TERMINAL

log = logging.getLogger(__name__)

SEALED = "sealed"  # the key, in a masked event's data, of its original in the vault

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sealed(
    key TEXT PRIMARY KEY,
    stream TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sealed_stream ON sealed(stream);
"""


class SealedValues(Protocol):
    """Where originals are kept: ``Vault`` (SQLite) or ``pg_vault.PostgresVault``."""

    @property
    def path(self) -> str | Path: ...

    def put(self, stream: str, data: Mapping[str, Any]) -> str: ...

    def get(self, stream: str) -> dict[str, dict[str, Any]]: ...

    def forget(self, stream: str) -> int: ...

    def streams(self) -> list[str]: ...

    def close(self) -> None: ...


class Vault:
    """Originals by key; ``path=":memory:"`` keeps them in memory (tests, benchmarks)."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))  # never readable by others
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(_SCHEMA)

    def put(self, stream: str, data: Mapping[str, Any]) -> str:
        key = uuid.uuid4().hex
        with self._lock:
            self._db.execute("INSERT INTO sealed VALUES(?,?,?)", (key, stream, encode(data)))
        return key

    def get(self, stream: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, data FROM sealed WHERE stream = ?", (stream,)).fetchall()
        return {str(key): decode(str(data)) for key, data in rows}

    def forget(self, stream: str) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM sealed WHERE stream = ?", (stream,)).rowcount

    def streams(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT stream FROM sealed ORDER BY stream")
            return [str(row[0]) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass(frozen=True, slots=True)
class Sealing:
    """How a run's events are masked for the log (``redact``) and where the originals go."""

    redact: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    vault: SealedValues

    def seal(self, event: NewEvent) -> NewEvent:
        """The event as the log gets it; its original goes to the vault if it differs."""
        if not event.data:
            return event
        masked = dict(self.redact(event.data))
        if masked == dict(event.data):
            return event
        key = self.vault.put(event.stream, event.data)
        return NewEvent(event.stream, event.type, {**masked, SEALED: key}, event.ts)

    def unseal(self, stream: str) -> Callable[[Mapping[str, Any]], Mapping[str, Any]] | None:
        """Puts a stream's originals back into its logged event data (None: it has none)."""
        originals = self.vault.get(stream)
        if not originals:
            return None

        def original(data: Mapping[str, Any]) -> Mapping[str, Any]:
            key = data.get(SEALED)
            if not isinstance(key, str):
                return data
            if key not in originals:
                log.warning("%s: the original of a masked event is not in the vault %s; the "
                            "run goes on with the masked values", stream, self.vault.path)
                return data
            return originals[key]

        return original

    def prune(self, store: EventStore) -> int:
        """Forget the originals of runs that ended (a crash can come between the run's
        last event and ``forget``); returns how many runs were pruned."""
        done = 0
        for stream in self.vault.streams():
            view = store.view(stream)
            if view is None or view.get("status") in TERMINAL:
                self.vault.forget(stream)
                done += 1
        return done
