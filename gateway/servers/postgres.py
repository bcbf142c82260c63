"""A throwaway PostgreSQL server: Debian's binaries, a temporary folder, a free loopback
port, stopped and removed at the end. The tests start one per test session
(tests/pg_server.py), the benchmarks one per run, `voxgate cluster` one for a person to try.

PostgreSQL refuses to run as root, so under root the server runs as the ``postgres``
user (Debian's package creates it). Its unix socket lives in the temporary folder too,
so it never meets a system server's ``/var/run/postgresql``.

Missing binaries raise ``RuntimeError(MISSING)``: the tests fail loudly (CI must not go
green without them); a developer without PostgreSQL sets ``VOXGATE_SKIP_PG=1`` to skip them.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gateway.servers.ports import free_port

SKIP_ENV = "VOXGATE_SKIP_PG"
_START_TIMEOUT_S = 60  # pg_ctl -w -t: bounded wait for the server to accept connections
_STOP_TIMEOUT_S = 30


class PostgresServer:
    def __init__(self, bindir: Path, root: Path, durable: bool = False) -> None:
        self.bindir = bindir
        self.root = root
        self.durable = durable
        self.data = root / "data"
        self.port = free_port()
        self._names = itertools.count(1)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): "
                               f"{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", timeout=120)
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self.root} -c max_connections=100")
        if not self.durable:
            # a test server's data need not survive a power cut, and the disk is shared
            # with other work; the log's guarantees under test are about concurrency.
            # Benchmarks use durable=True: PostgreSQL's defaults, fsync at every commit
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", opts, "-w", "-t", str(_START_TIMEOUT_S), "start",
                  timeout=_START_TIMEOUT_S + 10)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t",
                  str(_STOP_TIMEOUT_S), "stop", timeout=_STOP_TIMEOUT_S + 10)

    def new_database(self) -> str:
        """A fresh empty database; returns its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)



def find_bindir() -> Path | None:
    """The newest of Debian's ``/usr/lib/postgresql/<major>/bin``, or one on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


MISSING = ("PostgreSQL's server binaries (initdb, pg_ctl) are not installed: `make apt` "
           f"installs Debian's postgresql package; set {SKIP_ENV}=1 to skip these tests on "
           "a machine without it")


@contextlib.contextmanager
def running(durable: bool = False) -> Iterator[PostgresServer]:
    """A server in a temporary folder, stopped and removed on exit."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(MISSING)
    # under root the server runs as postgres, which must reach the folder: /tmp, not a
    # TMPDIR inside root's home
    root = Path(tempfile.mkdtemp(prefix="voxgate-pg-", dir="/tmp" if os.geteuid() == 0 else None))
    server = PostgresServer(bindir, root, durable)
    try:
        server.start()
        yield server
    finally:
        try:
            if (server.data / "postmaster.pid").exists():
                server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)
