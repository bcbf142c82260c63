"""Where the event log benchmarks put their logs: ``--backend sqlite`` (a file in a
temporary folder) or ``--backend postgresql`` (a new database per log on a throwaway
server started here with PostgreSQL's durable defaults, fsync at every commit; or on
``--database-url``'s server when given)."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg

from gateway.servers.postgres import running


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--database-url", default=None,
                        help="an existing PostgreSQL server to use (a database per log is "
                             "created on it); default: start one in a temporary folder")


def results_name(stem: str, backend: str) -> str:
    return f"{stem}.json" if backend == "sqlite" else f"{stem}_{backend}.json"


@contextlib.contextmanager
def fresh_logs(args: argparse.Namespace) -> Iterator[Callable[[], str]]:
    """Yields a function returning the location of a new empty log at each call."""
    names = itertools.count(1)
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "sqlite":
            yield lambda: str(Path(tmp) / f"log{next(names)}.db")
            return
        with contextlib.ExitStack() as stack:
            admin: str = args.database_url or stack.enter_context(
                running(durable=True)).admin_url

            def new() -> str:
                name = f"bench_{next(names)}"
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                    conn.execute(f'CREATE DATABASE "{name}"')
                return admin.rsplit("/", 1)[0] + "/" + name

            yield new
