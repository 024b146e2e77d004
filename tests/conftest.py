"""Shared fixtures. Each block is self-contained; add new ones below the others."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from storage import Database
from tests.postgres import PostgresCluster, PostgresMissing
from tests.servers import EchoServer

# NiceGUI's simulated user for the studio's page tests (tests/studio_pages.py).
pytest_plugins = ["nicegui.testing.user_plugin"]

# -- a real HTTP server on loopback (tests/servers.py) ----------------------------------------


@pytest.fixture(scope="session")
def _echo_server_for_session() -> Iterator[EchoServer]:
    server = EchoServer().start()
    yield server
    server.stop()


@pytest.fixture
def echo_server(_echo_server_for_session: EchoServer) -> EchoServer:
    """The session's loopback EchoServer, with its record of requests emptied for this test."""
    _echo_server_for_session.reset()
    return _echo_server_for_session


# -- databases for storage tests: SQLite files and a throwaway PostgreSQL (tests/postgres.py)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the whole session, started on first use."""
    try:
        cluster = PostgresCluster().start()
    except PostgresMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """`postgresql+asyncpg://postgres@127.0.0.1:PORT/flowloom_test` (trust auth)."""
    return postgres_cluster.create_database("flowloom_test")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind: an SQLite file in tmp_path, or a database of the
    session's PostgreSQL cluster (wiped and reused after the test)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'flowloom.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    database = cluster.borrow_database()
    yield cluster.url(database)
    cluster.give_back(database)


@pytest.fixture
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    """An open Database on `database_url` (so on each kind), with its data dir in tmp_path."""
    database = await Database.open(database_url, data_dir=tmp_path / "data")
    yield database
    await database.close()
