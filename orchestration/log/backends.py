"""Which event store to open: PostgreSQL when ``VOXGATE_DATABASE_URL`` names one, else the
embedded SQLite file in the data directory (the default; ``make run`` needs no server)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.store import LogError, Projector

if TYPE_CHECKING:
    from orchestration.log.pg_store import PostgresEventStore

DATABASE_URL_ENV = "VOXGATE_DATABASE_URL"
POOL_SIZE_ENV = "VOXGATE_DATABASE_POOL_SIZE"
_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(_SCHEMES)


def database_url() -> str | None:
    """``VOXGATE_DATABASE_URL`` if set (and not empty); a value that is not a PostgreSQL
    URL is refused here, at the edge, rather than opened as a file name."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if not url:
        return None
    if not is_postgres_url(url):
        raise LogError(f"{DATABASE_URL_ENV} must start with postgresql:// (got "
                       f"{url.split('://')[0]!r}://...); unset it to use the SQLite file")
    return url


def pool_size() -> int:
    text = os.environ.get(POOL_SIZE_ENV, "4").strip()
    if not text.isdigit() or int(text) < 1:
        raise LogError(f"{POOL_SIZE_ENV} must be a positive whole number, not {text!r}")
    return int(text)


def open_store(
    location: str | Path, projector: Projector, clock: Callable[[], float] = time.time,
    *, size: int | None = None, busy_timeout_s: float = 10.0, check: bool = True,
) -> SQLiteEventStore | PostgresEventStore:
    """The event store at ``location``: a ``postgresql://`` URL or a SQLite file path.
    ``size``: the PostgreSQL pool's connections (default ``VOXGATE_DATABASE_POOL_SIZE``);
    ``check``: SQLite's integrity check on open (PostgreSQL checks its own pages)."""
    if is_postgres_url(location):
        from orchestration.log.pg_store import PostgresEventStore

        return PostgresEventStore(str(location), projector, clock,
                                  pool_size=size or pool_size(),
                                  busy_timeout_s=busy_timeout_s)
    return SQLiteEventStore(Path(location), projector, clock, busy_timeout_s=busy_timeout_s,
                            check=check)
