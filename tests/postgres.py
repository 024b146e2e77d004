"""A throwaway PostgreSQL cluster for tests and benchmarks, from Debian's `postgresql` package.

    with PostgresCluster() as cluster:
        url = cluster.create_database("flowloom_test")   # postgresql+asyncpg://postgres@127.0.0.1:PORT/…

The cluster lives in a temporary directory, listens on a free port on 127.0.0.1 (its unix
socket stays in that directory too) and trusts every local connection. When the tests run
as root, it belongs to the `postgres` user, as PostgreSQL refuses to run as root. It is
stopped and deleted on exit.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

INSTALL_HINT = (
    "PostgreSQL's server binaries (initdb, pg_ctl) were not found in /usr/lib/postgresql/*/bin. "
    "`make test` installs them (it runs `make system-deps`: apt-get install postgresql)."
)


class PostgresMissing(RuntimeError):
    """PostgreSQL is not installed; the message says how to install it."""


def find_binaries() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl."""
    candidates = sorted(
        (Path(found).parent for found in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda folder: int(folder.parent.name) if folder.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in candidates:
        if (folder / "pg_ctl").exists():
            return folder
    raise PostgresMissing(INSTALL_HINT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """initdb + pg_ctl start in a temporary directory; `stop()` (or leaving `with`) deletes it.

    `durable=False` (for tests) turns off fsync and friends: much faster, and a throwaway
    cluster has nothing to lose. Benchmarks keep PostgreSQL's durable defaults.
    """

    def __init__(self, *, durable: bool = False) -> None:
        self.binaries = find_binaries()
        self.durable = durable
        self.port = 0
        self.directory: Path | None = None
        self._as_postgres: list[str] = []
        self._created = 0
        self._returned: list[str] = []

    @property
    def data_dir(self) -> Path:
        assert self.directory is not None, "the cluster is not started"
        return self.directory / "data"

    def start(self) -> PostgresCluster:
        self.directory = Path(tempfile.mkdtemp(prefix="flowloom-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
            self.port = free_port()
            settings = [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-c unix_socket_directories={self.directory}",
                "-c max_connections=200",
            ]
            if not self.durable:
                settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            self._run(
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.directory / "server.log"),
                "-o",
                " ".join(settings),
                "-w",
                "start",
            )
        except BaseException:
            self.stop()
            raise
        return self

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its asyncpg URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def borrow_database(self) -> str:
        """The name of an empty database: a returned one wiped clean, else a new one.

        Wiping (dropping the public schema) takes a few milliseconds; CREATE DATABASE ~0.2 s.
        """
        if self._returned:
            return self._returned.pop()
        self._created += 1
        name = f"test_{self._created}"
        self.create_database(name)
        return name

    def give_back(self, database: str) -> None:
        """Wipe a borrowed database for the next borrower (every connection must be closed)."""
        try:
            self._run(
                "psql",
                *("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database),
                *("-v", "ON_ERROR_STOP=1", "-q"),
                "-c",
                "SET lock_timeout = '5s'; DROP SCHEMA public CASCADE; CREATE SCHEMA public;",
            )
        except RuntimeError:
            return  # something still holds it: leave it be, the next borrower gets a new one
        self._returned.append(database)

    def run_client(self, program: str, *args: str) -> None:
        """Run one of the cluster's client programs (psql, createdb…) as its owner."""
        self._run(program, *args)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.directory is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as_postgres, str(self.binaries / program), *args]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=120, cwd=self.directory
        )
        if result.returncode != 0:
            log = self.directory / "server.log" if self.directory else None
            server_log = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(
                f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{server_log}"
            )
