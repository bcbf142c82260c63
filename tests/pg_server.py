"""pytest fixtures for a PostgreSQL server (gateway/servers/postgres.py): ``pg_server``, one
per test session, and ``pg_url``, a fresh database on it per test. ``VOXGATE_SKIP_PG=1``
skips the tests that need it; missing binaries fail them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from gateway.servers.postgres import MISSING, SKIP_ENV, PostgresServer, find_bindir, running

__all__ = ["PostgresServer", "pg_server", "pg_url"]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: the PostgreSQL tests are skipped")
    if find_bindir() is None:
        pytest.fail(MISSING)
    with running() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """The URL of a new empty database on the session's server."""
    return pg_server.new_database()
