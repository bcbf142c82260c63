"""Read one stream of an event log for an audit, without being able to change it.

The log is opened read-only (``mode=ro``), so an evaluation run against a live gateway's
data directory cannot write to it; every row's CRC is checked as the store itself does.
Events reach the log through the bus writer thread a moment after they happen, so
``wait_for_stream`` polls until the stream's closing event is there.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from orchestration.log.sqlite_store import row_crc
from orchestration.log.store import LogCorruptedError, StoredEvent, decode


def read_stream(db: Path, stream: str) -> list[StoredEvent]:
    if not db.is_file():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10.0)
    try:
        rows = conn.execute(
            "SELECT seq, ts, stream, version, type, data, crc FROM events WHERE stream = ? "
            "ORDER BY seq", (stream,)).fetchall()
    finally:
        conn.close()
    out = []
    for seq, ts, st, version, type_, data, crc in rows:
        if row_crc(seq, ts, st, version, type_, data) != crc:
            raise LogCorruptedError(f"event log {db}: event seq {seq} fails its checksum")
        out.append(StoredEvent(seq, ts, st, version, type_, decode(data)))
    return out


def wait_for_stream(db: Path, stream: str, closing: str, timeout_s: float = 5.0,
                    sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> list[StoredEvent]:
    """The stream once its ``closing`` event is logged, or as it is at ``timeout_s``."""
    deadline = clock() + timeout_s
    while True:
        events = read_stream(db, stream)
        if any(e.type == closing for e in events) or clock() >= deadline:
            return events
        sleep(0.05)
