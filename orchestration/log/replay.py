"""Replay: rebuild every derived view from the log and check it against the stored one,
and salvage the intact events of a damaged log into a new one.

``voxgate replay`` runs ``replay``: a view that differs from its rebuild means a bug in a
projection or a log edited behind the store's back, and ``--fix`` stores the rebuilt
views. ``voxgate replay --salvage NEW`` runs ``salvage``.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.log.sqlite_store import SQLiteEventStore, row_crc
from orchestration.log.store import (
    EventStore,
    LogCorruptedError,
    Projector,
    StoredEvent,
    View,
    decode,
    encode,
)
from orchestration.log.views import project


@dataclass(frozen=True, slots=True)
class ReplayReport:
    events: int
    views: int
    seconds: float
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # rebuilt, but not stored
    extra: list[str] = field(default_factory=list)  # stored, but nothing rebuilds it

    @property
    def ok(self) -> bool:
        return not (self.mismatched or self.missing or self.extra)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def rebuild(store: EventStore, projector: Projector = project) -> tuple[dict[str, View], int]:
    views: dict[str, View] = {}
    count = 0
    for event in store.read():
        count += 1
        view = projector(views.get(event.stream), event)
        if view is not None:
            views[event.stream] = view
    return views, count


def replay(store: EventStore, fix: bool = False, projector: Projector = project) -> ReplayReport:
    started = time.perf_counter()
    rebuilt, count = rebuild(store, projector)
    seconds = time.perf_counter() - started
    stored = store.views()
    # compare as stored (through JSON), the form both sides are read back in
    normal = {k: decode(encode(v)) for k, v in rebuilt.items()}
    report = ReplayReport(
        events=count,
        views=len(normal),
        seconds=seconds,
        mismatched=sorted(k for k in normal if k in stored and stored[k] != normal[k]),
        missing=sorted(k for k in normal if k not in stored),
        extra=sorted(k for k in stored if k not in normal),
    )
    if fix and not report.ok:
        store.replace_views(normal)
    return report


@dataclass(frozen=True, slots=True)
class SalvageReport:
    copied: int
    expected: int | None  # events the damaged log's stream table accounts for, if readable
    lost: list[int]  # seqs that were present but unreadable or failed their checksum
    unreadable_ranges: list[tuple[int, int]]  # seq windows SQLite could not read at all
    replay: ReplayReport | None


_WINDOW = 500


def salvage(source: str | Path, dest: str | Path) -> SalvageReport:
    """Copy every intact event of ``source`` into a new log at ``dest``, keeping seqs."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "source.db"
        _padded_copy(Path(source), copy)
        return _salvage(copy, Path(dest), Path(source))


def _padded_copy(source: Path, copy: Path) -> None:
    # A truncated file is refused whole by SQLite ("disk image is malformed") because the
    # header promises more pages than exist. Padding the copy with zero pages lets SQLite
    # read every page that survived; the zeroed ones surface as unreadable rows.
    shutil.copyfile(source, copy)
    for suffix in ("-wal",):
        side = source.with_name(source.name + suffix)
        if side.exists():
            shutil.copyfile(side, copy.with_name(copy.name + suffix))
    header = source.read_bytes()[:100]
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    want = page_size * pages
    if copy.stat().st_size < want:
        with copy.open("r+b") as f:
            f.truncate(want)


def _salvage(source: Path, dest: Path, original: Path) -> SalvageReport:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        src.execute("SELECT name FROM sqlite_master").fetchall()
    except sqlite3.DatabaseError as exc:
        src.close()
        raise LogCorruptedError(
            f"nothing can be salvaged from {original}: its database header or schema is "
            f"unreadable ({exc}); restore it from a backup"
        ) from None
    lost: list[int] = []
    unreadable: list[tuple[int, int]] = []
    rows: list[tuple[int, float, str, int, str, str, int]] = []
    try:
        expected: int | None = int(
            src.execute("SELECT COALESCE(SUM(version), 0) FROM streams").fetchone()[0])
    except sqlite3.DatabaseError:
        expected = None
    try:
        top = int(src.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
    except sqlite3.DatabaseError:
        top = -1  # the index page is gone: walk windows until the log runs out
    start, empty = 1, 0
    while (top >= 0 and start <= top) or (top < 0 and empty < 20):
        end = start + _WINDOW
        try:
            window = src.execute(
                "SELECT seq, ts, stream, version, type, data, crc FROM events "
                "WHERE seq >= ? AND seq < ? ORDER BY seq", (start, end)).fetchall()
        except sqlite3.DatabaseError:
            window = []
            for seq in range(start, end):
                try:
                    window += src.execute(
                        "SELECT seq, ts, stream, version, type, data, crc FROM events "
                        "WHERE seq = ?", (seq,)).fetchall()
                except sqlite3.DatabaseError:
                    unreadable.append((seq, seq))
        empty = empty + 1 if not window else 0
        for row in window:
            if row_crc(*row[:6]) == row[6]:
                rows.append(row)
            else:
                lost.append(row[0])
        start = end
    src.close()
    if top < 0 and unreadable:
        last = max(r[0] for r in rows) if rows else 0
        unreadable = [u for u in unreadable if u[0] <= last]
    out = SQLiteEventStore(dest, project)
    out.restore([StoredEvent(r[0], r[1], r[2], r[3], r[4], decode(r[5])) for r in rows])
    replay(out, fix=True)
    report = replay(out)
    out.close()
    return SalvageReport(len(rows), expected, lost, _merge(unreadable), report)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out
