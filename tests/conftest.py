"""Shared fixtures. Each block is self-contained; add new ones below the others."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import EchoServer

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
