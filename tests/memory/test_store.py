"""The long-term store, one set of tests on both backends: a real SQLite file (FTS5) and a
real PostgreSQL server (tsvector; started by tests/pg_server.py, VOXGATE_SKIP_PG=1 skips
it): profiles, items, full-text search, secrets, forgetting, reopening."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from memory.errors import MemoryStoreError, SecretRefused
from memory.pg_store import LATEST, PostgresMemoryStore
from memory.store import LongTermMemory, MemoryStore, caller_key
from tests.pg_server import PostgresServer


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


Opener = Callable[..., LongTermMemory]


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the store of this test (a SQLite file, or a new PostgreSQL database); every
    store it opened is closed at the end."""
    opened: list[LongTermMemory] = []
    url = str(request.getfixturevalue("pg_url")) if request.param == "postgresql" else ""

    def open_store(**kwargs: object) -> LongTermMemory:
        s: LongTermMemory = (PostgresMemoryStore(url, **kwargs) if url  # type: ignore[arg-type]
                             else MemoryStore(tmp_path / "memory.db", **kwargs))  # type: ignore[arg-type]
        opened.append(s)
        return s

    yield open_store
    for s in opened:
        s.close()


@pytest.fixture
def store(opener: Opener) -> LongTermMemory:
    return opener(clock=FakeClock())


def test_caller_key_normalizes_phone_numbers() -> None:
    assert caller_key("+1 (500) 555-0006") == "+15005550006"
    assert caller_key("browser-abc") == "browser-abc"
    assert caller_key("  ") is None
    assert caller_key(None) is None


def test_touch_counts_calls_and_keeps_the_name(store: LongTermMemory) -> None:
    first = store.touch("+15005550006")
    assert first.calls == 0 and first.name is None
    store.set_name("+15005550006", "Ada")
    again = store.touch("+15005550006")
    assert again.calls == 1 and again.name == "Ada"
    profile = store.profile("+15005550006")
    assert profile is not None and profile.calls == 2


def test_items_newest_first_per_caller_and_kind(store: LongTermMemory) -> None:
    store.add("a", "note", "first note")
    store.add("a", "note", "second note")
    store.add("a", "booking", "Tuesday at 3 PM", {"date": "2026-12-01"})
    store.add("b", "note", "someone else's note")
    assert [i.text for i in store.items("a", "note")] == ["second note", "first note"]
    booking = store.items("a", "booking")[0]
    assert booking.data == {"date": "2026-12-01"}
    assert len(store.items("a")) == 3


def test_full_text_search_is_stemmed_and_per_caller(store: LongTermMemory) -> None:
    store.add("a", "note", "Call Anna about the budget")
    store.add("a", "note", "Order new laptops")
    store.add("b", "note", "budgets for b")
    found = store.search("a", "budgets", "note")
    assert [i.text for i in found] == ["Call Anna about the budget"]
    assert store.search("a", "   ") == []


def test_secrets_are_refused_and_nothing_is_written(store: LongTermMemory) -> None:
    with pytest.raises(SecretRefused, match="card number"):
        store.add("a", "note", "my card is 4111 1111 1111 1111")
    with pytest.raises(SecretRefused):
        store.add("a", "fact", "ok", {"pin": "the pin is 1234"})
    with pytest.raises(SecretRefused):
        store.set_name("a", "password is hunter2")
    assert store.items("a") == []
    assert "4111" not in store.dump_text() and "hunter2" not in store.dump_text()


def test_forget_erases_a_caller(store: LongTermMemory) -> None:
    store.touch("a")
    store.add("a", "note", "x")
    assert store.forget("a") == 2
    assert store.profile("a") is None and store.items("a") == []


def test_survives_reopen(opener: Opener) -> None:
    opener().add("a", "note", "kept")
    assert [i.text for i in opener().items("a")] == ["kept"]


def test_search_ranks_the_closer_match_first_and_forgets(store: LongTermMemory) -> None:
    store.add("a", "note", "The dentist moved my appointment to Friday")
    store.add("a", "note", "Order new laptops for the team")
    store.add("a", "booking", "Dentist on Friday", {"date": "2026-12-04"})
    found = store.search("a", "dentists appointments")
    assert [i.text for i in found] == ["The dentist moved my appointment to Friday",
                                       "Dentist on Friday"]
    assert found[0].score > found[1].score > 0
    [booking] = store.search("a", "dentist", "booking")
    assert booking.data == {"date": "2026-12-04"}
    store.update(booking.id, {"date": "2026-12-11"})
    assert store.items("a", "booking")[0].data == {"date": "2026-12-11"}
    store.delete(booking.id)
    assert store.search("a", "dentist", "booking") == []
    assert store.forget("a") == 2 and store.search("a", "dentist") == []


def test_two_stores_on_one_database_see_each_other(opener: Opener) -> None:
    one, two = opener(), opener()
    one.touch("+15550100001")
    two.set_name("+15550100001", "Ada")
    two.add("+15550100001", "note", "Prefers mornings")
    profile = one.touch("+15550100001")
    assert (profile.name, profile.calls) == ("Ada", 1)
    assert [i.text for i in one.search("+15550100001", "morning")] == ["Prefers mornings"]


def test_unopenable_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(MemoryStoreError, match="cannot open memory store"):
        MemoryStore(tmp_path / "dir.db")


# --- PostgreSQL only ---------------------------------------------------------------


def test_postgresql_migrates_once_into_its_own_version_table(pg_url: str) -> None:
    PostgresMemoryStore(pg_url).close()
    PostgresMemoryStore(pg_url).close()  # again: nothing to do
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT version FROM memory_schema_version").fetchall()
        assert [r[0] for r in rows] == list(range(1, LATEST + 1))
        conn.execute("INSERT INTO memory_schema_version VALUES (99, 'from the future', 0)")
    with pytest.raises(MemoryStoreError, match="memory schema is at version 99, newer"):
        PostgresMemoryStore(pg_url)


def test_an_unreachable_server_is_a_clear_error(pg_server: PostgresServer) -> None:
    url = pg_server.url("postgres").replace(str(pg_server.port), "1")
    with pytest.raises(MemoryStoreError, match=r"cannot open memory store "
                                               r"postgresql://postgres@127.0.0.1:1/postgres"):
        PostgresMemoryStore(url, connect_timeout_s=2)


def test_postgresql_drops_stop_words_where_fts5_keeps_them(pg_url: str, tmp_path: Path) -> None:
    """The one documented difference (docs/deployment.md): ts_rank has no inverse document
    frequency, so the english configuration's stop words are left out of the search."""
    pg, lite = PostgresMemoryStore(pg_url), MemoryStore(tmp_path / "m.db")
    for s in (pg, lite):
        s.add("a", "note", "the car is at the garage")
    assert [i.text for i in lite.search("a", "the")] == ["the car is at the garage"]
    assert pg.search("a", "the") == []
    assert [i.text for i in pg.search("a", "the garages")] == ["the car is at the garage"]
    pg.close()
    lite.close()


def test_a_failing_database_is_a_memory_error_the_router_can_report(pg_url: str) -> None:
    store = PostgresMemoryStore(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE items")
    with pytest.raises(MemoryStoreError, match=r"memory store postgresql://postgres@127\.0\.0\.1"
                                               r":\d+/\w+: relation \"items\" does not exist"):
        store.add("a", "note", "kept?")
    store.touch("a")  # the pool's connection is fine for the next call
    assert store.profile("a") is not None
    store.close()
