"""The long-term store on a real SQLite file: profiles, items, FTS5 search, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from memory.errors import MemoryStoreError, SecretRefused
from memory.store import MemoryStore, caller_key


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    return MemoryStore(tmp_path / "memory.db", clock=FakeClock())


def test_caller_key_normalizes_phone_numbers() -> None:
    assert caller_key("+1 (500) 555-0006") == "+15005550006"
    assert caller_key("browser-abc") == "browser-abc"
    assert caller_key("  ") is None
    assert caller_key(None) is None


def test_touch_counts_calls_and_keeps_the_name(store: MemoryStore) -> None:
    first = store.touch("+15005550006")
    assert first.calls == 0 and first.name is None
    store.set_name("+15005550006", "Ada")
    again = store.touch("+15005550006")
    assert again.calls == 1 and again.name == "Ada"
    profile = store.profile("+15005550006")
    assert profile is not None and profile.calls == 2


def test_items_newest_first_per_caller_and_kind(store: MemoryStore) -> None:
    store.add("a", "note", "first note")
    store.add("a", "note", "second note")
    store.add("a", "booking", "Tuesday at 3 PM", {"date": "2026-12-01"})
    store.add("b", "note", "someone else's note")
    assert [i.text for i in store.items("a", "note")] == ["second note", "first note"]
    booking = store.items("a", "booking")[0]
    assert booking.data == {"date": "2026-12-01"}
    assert len(store.items("a")) == 3


def test_full_text_search_is_stemmed_and_per_caller(store: MemoryStore) -> None:
    store.add("a", "note", "Call Anna about the budget")
    store.add("a", "note", "Order new laptops")
    store.add("b", "note", "budgets for b")
    found = store.search("a", "budgets", "note")
    assert [i.text for i in found] == ["Call Anna about the budget"]
    assert store.search("a", "   ") == []


def test_secrets_are_refused_and_nothing_is_written(store: MemoryStore) -> None:
    with pytest.raises(SecretRefused, match="card number"):
        store.add("a", "note", "my card is 4111 1111 1111 1111")
    with pytest.raises(SecretRefused):
        store.add("a", "fact", "ok", {"pin": "the pin is 1234"})
    with pytest.raises(SecretRefused):
        store.set_name("a", "password is hunter2")
    assert store.items("a") == []
    assert "4111" not in store.dump_text() and "hunter2" not in store.dump_text()


def test_forget_erases_a_caller(store: MemoryStore) -> None:
    store.touch("a")
    store.add("a", "note", "x")
    assert store.forget("a") == 2
    assert store.profile("a") is None and store.items("a") == []


def test_survives_reopen(tmp_path: Path) -> None:
    MemoryStore(tmp_path / "m.db").add("a", "note", "kept")
    assert [i.text for i in MemoryStore(tmp_path / "m.db").items("a")] == ["kept"]


def test_unopenable_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(MemoryStoreError, match="cannot open memory store"):
        MemoryStore(tmp_path / "dir.db")
