"""The memory router: what it reads at call start, what it writes, and that a secret is
never written (checked on the SQLite file itself)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from memory.router import MemoryRouter
from memory.store import MemoryStore


class Events:
    def __init__(self) -> None:
        self.log: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, type: str, data: Mapping[str, Any]) -> None:
        self.log.append((type, dict(data)))

    def of(self, type: str) -> list[dict[str, Any]]:
        return [d for t, d in self.log if t == type]


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    return MemoryStore(tmp_path / "memory.db")


def test_first_call_then_returning_caller(store: MemoryStore) -> None:
    events = Events()
    router = MemoryRouter(store, "+1 500 555 0006", events)
    recall = router.start()
    assert not recall.returning and recall.name is None
    assert router.set_name("Ada")
    assert router.remember("booking", "Tuesday at 3 PM", {"date": "2026-12-01"})
    assert router.remember("note", "Call Anna about the budget")
    assert [d["kind"] for d in events.of("memory.write")] == ["name", "booking", "note"]

    again = MemoryRouter(store, "+15005550006", Events())
    recall = again.start()
    assert recall.returning and recall.name == "Ada"
    assert recall.last_booking is not None and recall.last_booking.text == "Tuesday at 3 PM"
    assert recall.last_note is not None and recall.last_note.text == "Call Anna about the budget"


@pytest.mark.parametrize("secret", [
    "my card number is 4111 1111 1111 1111",
    "the alarm code is 4 3 2 1",
    "my password is correct horse battery staple",
    "four one one one one one one one one one one one one one one one",
])
def test_secrets_are_never_written(store: MemoryStore, secret: str) -> None:
    events = Events()
    router = MemoryRouter(store, "+15005550006", events)
    router.start()
    assert router.remember("note", secret) is None
    assert not router.set_name(secret)
    refused = events.of("memory.refused")
    assert len(refused) == 2 and all("text" not in d for d in refused)
    assert events.of("memory.write") == []
    assert store.items("+15005550006") == []
    on_disk = (store.path.read_bytes() + Path(f"{store.path}-wal").read_bytes()).lower()
    for word in ("4111", "horse", "4 3 2 1"):
        assert word.encode() not in on_disk


def test_no_caller_id_means_no_long_term_memory(store: MemoryStore) -> None:
    events = Events()
    router = MemoryRouter(store, None, events)
    assert router.start().calls == 0
    assert router.remember("note", "hello") is None
    assert router.recall("note") == []
    assert events.of("memory.skipped")[0]["reason"] == "no caller id"


def test_recall_by_query_uses_search(store: MemoryStore) -> None:
    router = MemoryRouter(store, "c", Events())
    router.remember("note", "Budget meeting with Anna")
    router.remember("note", "Order laptops")
    found = router.recall("note", query="laptop")
    assert [i.text for i in found] == ["Order laptops"]
