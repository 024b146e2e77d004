"""Readiness follows the database: `/readyz` fails when the database is gone."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.flowloom_process import FlowLoomProcess
from tests.postgres import PostgresCluster


def test_readiness_fails_when_the_database_is_gone(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    url = postgres_cluster.create_database("readiness")
    server = FlowLoomProcess(tmp_path / "data", env={"FLOWLOOM_DATABASE_URL": url}).start()
    try:
        ready = httpx.get(f"{server.url}/readyz").json()
        postgres_cluster.run_client(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(postgres_cluster.port),
            "-U",
            "postgres",
            "-q",
            "-c",
            "DROP DATABASE readiness WITH (FORCE)",
        )
        gone = httpx.get(f"{server.url}/readyz")
        alive = httpx.get(f"{server.url}/healthz")
    finally:
        server.stop()

    assert ready["status"] == "ready"
    assert ready["checks"]["migrations"] == "ok"
    assert gone.status_code == 503
    assert gone.json()["checks"]["database"].startswith("unreachable")
    assert alive.status_code == 200  # the process itself is fine
