"""`flowloom flows list|import|export` and `flowloom runs list|show|cancel`, on the settings'
database, with and without a server running."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import structlog

from engine.settings import get_settings
from storage import Database
from studio.cli import main
from tests.documents import chain, manual, step
from tests.flowloom_process import FlowLoomProcess, free_port
from tests.servers import LoopbackServer

T = TypeVar("T")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """FLOWLOOM_DATA_DIR for `main` (and a port nobody listens on), settings and logging
    restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    for name in ("FLOWLOOM_DATABASE_URL", "FLOWLOOM_SECRET_KEY", "FLOWLOOM_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLOWLOOM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FLOWLOOM_PORT", str(free_port()))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def in_database(data_dir: Path, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        db = await Database.open(
            f"sqlite+aiosqlite:///{data_dir / 'flowloom.db'}", data_dir=data_dir
        )
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(run())


def greeter(name: str = "Greeter") -> dict[str, Any]:
    document = chain(manual(), step("greet", "data.template", {"template": "Hi {{ input.who }}"}))
    document["name"] = name
    return document


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_import_list_and_export_round_trip(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = greeter("Round trip")
    document["x_canvas"] = {"zoom": 1.5}

    assert main(["flows", "import", str(write(tmp_path / "in.json", document)), "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert main(["flows", "list"]) == 0
    table = capsys.readouterr().out
    assert main(["flows", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert main(["flows", "export", imported["id"], "-o", str(tmp_path / "out.json")]) == 0
    assert main(["flows", "export", imported["id"]]) == 0
    printed = json.loads(capsys.readouterr().out)

    assert imported["name"] == "Round trip"
    assert "Round trip" in table and imported["id"] in table
    assert listed["total"] == 1
    assert listed["items"][0]["id"] == imported["id"]
    assert json.loads((tmp_path / "out.json").read_text()) == document
    assert printed == document


def test_import_refuses_an_invalid_or_duplicate_flow(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = chain(manual(), step("x", "data.sett"))
    path = write(tmp_path / "greeter.json", greeter("Twice"))

    assert main(["flows", "import", str(write(tmp_path / "bad.json", broken))]) == 2
    invalid = capsys.readouterr().err
    assert main(["flows", "import", str(path)]) == 0
    assert main(["flows", "import", str(path)]) == 2
    duplicate = capsys.readouterr().err

    assert "cannot be imported" in invalid and "data.sett" in invalid
    assert "already called 'Twice'" in duplicate


def test_export_of_an_unknown_flow_says_so(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["flows", "export", "nope"]) == 1
    assert "no flow with id nope" in capsys.readouterr().err


def stored_runs(data_dir: Path) -> tuple[str, list[str]]:
    """A flow with three runs: succeeded, failed, and one left running; (flow id, run ids)."""

    async def make(db: Database) -> tuple[str, list[str]]:
        flow = await db.flows.create(greeter("Has runs"))
        ids = []
        for n, (status, error) in enumerate(
            [("succeeded", None), ("failed", {"message": "step boom failed"}), ("running", None)]
        ):
            run_id = f"run-{n}"
            await db.runs.create(
                run_id=run_id, flow_id=flow.id, flow_version=1, trigger="start", input={"n": n}
            )
            await db.runs.record(
                [{"id": run_id, "status": status, "error": error, "started_at": 1.0e9}],
                [
                    {
                        "run_id": run_id,
                        "seq": 0,
                        "node_id": "start",
                        "node_name": "start",
                        "node_type": "trigger.manual",
                        "status": "succeeded",
                        "started_at": 1.0e9,
                        "finished_at": 1.0e9 + 0.002,
                    }
                ],
            )
            ids.append(run_id)
        return flow.id, ids

    return in_database(data_dir, make)


def test_runs_list_filters_and_shows(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow_id, ids = stored_runs(data_dir)

    assert main(["runs", "list", "--json"]) == 0
    everything = json.loads(capsys.readouterr().out)
    assert main(["runs", "list", "--flow", flow_id, "--status", "failed", "--json"]) == 0
    failed = json.loads(capsys.readouterr().out)
    assert main(["runs", "list", "--status", "failed"]) == 0
    table = capsys.readouterr().out
    assert main(["runs", "show", ids[1], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert main(["runs", "show", ids[1]]) == 0
    text = capsys.readouterr().out
    assert main(["runs", "list", "--status", "exploded"]) == 2

    assert everything["total"] == 3
    assert [r["id"] for r in failed["items"]] == [ids[1]]
    assert ids[1] in table and ids[0] not in table
    assert shown["status"] == "failed"
    assert [s["node_id"] for s in shown["steps"]] == ["start"]
    assert "step boom failed" in text and "trigger.manual" in text


def test_cancel_without_a_server_marks_the_run_cancelled(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, ids = stored_runs(data_dir)

    assert main(["runs", "cancel", ids[2], "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert main(["runs", "cancel", ids[0]]) == 1
    refused = capsys.readouterr().err
    assert main(["runs", "cancel", "nope"]) == 1

    run = in_database(data_dir, lambda db: db.runs.get(ids[2]))
    assert answer == {"run_id": ids[2], "status": "cancelled", "cancelled": True}
    assert run.status == "cancelled"
    assert run.finished_at is not None and run.finished_at <= datetime.now(UTC)
    assert "no FlowLoom process was running it" in (run.error or {})["message"]
    assert "not running (it is succeeded)" in refused


def test_cancel_reaches_a_server_on_another_port_through_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The server running the run is not the one FLOWLOOM_PORT names (nothing answers there):
    # the request goes through the database, and the server stops its own run.
    server = FlowLoomProcess(tmp_path / "data", env={"FLOWLOOM_SYNC_S": "0.1"}).start()
    try:
        code, run_id, run = cancel_a_running_run(server, monkeypatch, port=free_port())
    finally:
        server.stop()

    assert code == 0
    assert f"Cancelled run {run_id}." in capsys.readouterr().out
    assert run["status"] == "cancelled"
    assert run["steps"][-1]["status"] == "cancelled"  # the server stopped the step itself


def cancel_a_running_run(
    server: FlowLoomProcess, monkeypatch: pytest.MonkeyPatch, *, port: int
) -> tuple[int, str, dict[str, Any]]:
    """Start a 30-second run on `server`, then `flowloom runs cancel` it with the settings of
    a server on `port`: (the exit code, the run's id, the run afterwards)."""
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=15) as api:
        document = chain(manual(), step("wait", "flow.delay", {"seconds": 30}))
        document["name"] = "Waits"
        created = api.post("/flows", json={"document": document}).json()
        run_id = api.post(f"/flows/{created['id']}/runs").json()["run_id"]
        server.wait_for_run(run_id, lambda r: r["status"] == "running")
        for name in ("FLOWLOOM_DATABASE_URL", "FLOWLOOM_SECRET_KEY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("FLOWLOOM_DATA_DIR", str(server.data_dir))
        monkeypatch.setenv("FLOWLOOM_HOST", "127.0.0.1")
        monkeypatch.setenv("FLOWLOOM_PORT", str(port))
        get_settings.cache_clear()
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            code = main(["runs", "cancel", run_id])
        finally:
            get_settings.cache_clear()
            structlog.reset_defaults()
            root.handlers[:] = handlers
            root.setLevel(level)
        return code, run_id, api.get(f"/runs/{run_id}").json()


def test_cancel_asks_the_server_that_runs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = FlowLoomProcess(tmp_path / "data").start()
    try:
        code, _, run = cancel_a_running_run(server, monkeypatch, port=server.port)
    finally:
        server.stop()

    assert code == 0
    assert "by the server" in capsys.readouterr().out
    assert run["status"] == "cancelled"
    assert run["steps"][-1]["status"] == "cancelled"  # the server stopped the step itself


def cancel_through_a_fake_server(
    monkeypatch: pytest.MonkeyPatch, status: int, body: bytes, token: str | None = None
) -> tuple[int, list[str]]:
    """`flowloom runs cancel r1` against a server answering `status`, `body`: (the exit
    code, the Authorization header of each call the server got)."""
    seen: list[str] = []

    async def server_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append(dict(scope["headers"]).get(b"authorization", b"").decode())
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    server = LoopbackServer(server_app, name="a FlowLoom server").start()
    try:
        monkeypatch.setenv("FLOWLOOM_PORT", str(server.port))
        if token is not None:
            monkeypatch.setenv("FLOWLOOM_API_TOKEN", token)
        get_settings.cache_clear()
        return main(["runs", "cancel", "r1"]), seen
    finally:
        server.stop()


def test_cancel_sends_the_api_token_to_the_server(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A server started with FLOWLOOM_API_TOKEN answers the API only to callers showing it.
    answer = b'{"run_id": "r1", "status": "cancelled"}'
    code, seen = cancel_through_a_fake_server(monkeypatch, 200, answer, token="cli-token")

    assert code == 0
    assert seen == ["Bearer cli-token"]
    assert "by the server" in capsys.readouterr().out


def test_cancel_says_when_the_run_has_not_stopped_yet(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The server asked another process to stop the run; that one has not yet.
    answer = b'{"run_id": "r1", "status": "running", "message": "asked"}'
    code, seen = cancel_through_a_fake_server(monkeypatch, 202, answer)

    assert code == 0
    assert len(seen) == 1  # the server's 202 is the answer: not asked again elsewhere
    assert "it is still running" in capsys.readouterr().out
