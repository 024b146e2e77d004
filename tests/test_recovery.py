"""Kill -9 the server mid-run and start it again: nothing accepted is lost, nothing stays running."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.documents import chain, manual, step
from tests.flowloom_process import FlowLoomProcess
from tests.servers import EchoServer

FINAL = ("succeeded", "failed", "cancelled", "interrupted")


def slow_flow(echo_url: str) -> dict[str, Any]:
    """Call a web service (once!), wait, then finish."""
    document = chain(
        manual(),
        step(
            "call",
            "http.request",
            {"method": "POST", "url": f"{echo_url}/echo", "body": {"order": "{{ input.order }}"}},
        ),
        step("wait", "flow.delay", {"seconds": 1.5}),
        step(
            "done",
            "data.set",
            {
                "values": {"finished": True, "order": "{{ input.body.json.order }}"},
                "keep_input": False,
            },
        ),
    )
    document["name"] = "Slow order"
    return document


def start_runs(
    server: FlowLoomProcess, document: dict[str, Any], orders: list[int]
) -> tuple[str, list[str]]:
    """Save the flow on `server` and start one run per order: (flow id, run ids)."""
    with server.client() as client:
        flow_id = client.post("/api/v1/flows", json={"document": document}).json()["id"]
        runs = [
            client.post(f"/api/v1/flows/{flow_id}/runs", json={"order": n}).json()["run_id"]
            for n in orders
        ]
    return flow_id, runs


def start_slow_runs(
    server: FlowLoomProcess, echo_server: EchoServer, orders: list[int]
) -> tuple[str, list[str]]:
    return start_runs(server, slow_flow(echo_server.url), orders)


def test_killed_mid_run_resumes_from_the_last_finished_step(
    tmp_path: Path, echo_server: EchoServer
) -> None:
    server = FlowLoomProcess(tmp_path / "data").start()
    _, (run_id,) = start_slow_runs(server, echo_server, [42])
    before = server.wait_for_run(
        run_id,
        lambda r: any(s["node_id"] == "wait" and s["status"] == "running" for s in r["steps"]),
    )
    call_before = next(s for s in before["steps"] if s["node_id"] == "call")

    server.kill()
    restarted = FlowLoomProcess(tmp_path / "data")
    restarted.port, restarted.url = server.port, server.url
    restarted.start()
    try:
        run = restarted.wait_for_run(run_id, lambda r: r["status"] in FINAL)
    finally:
        restarted.stop()

    assert run["status"] == "succeeded", run
    assert run["output"] == {"finished": True, "order": 42}
    assert len([r for r in echo_server.requests if r.path == "/echo"]) == 1  # not called again
    call_after = next(s for s in run["steps"] if s["node_id"] == "call")
    assert call_after["started_at"] == call_before["started_at"]
    assert [s["node_id"] for s in run["steps"]] == ["start", "call", "wait", "done"]


def test_an_accepted_submit_survives_an_immediate_kill(
    tmp_path: Path, echo_server: EchoServer
) -> None:
    server = FlowLoomProcess(tmp_path / "data").start()
    _, accepted = start_slow_runs(server, echo_server, list(range(5)))
    server.kill()

    restarted = FlowLoomProcess(tmp_path / "data").start()
    try:
        runs = [
            restarted.wait_for_run(run_id, lambda r: r["status"] in FINAL) for run_id in accepted
        ]
        with restarted.client() as client:
            still_running = client.get("/api/v1/runs", params={"status": "running"}).json()["total"]
    finally:
        restarted.stop()

    assert [r["status"] for r in runs] == ["succeeded"] * 5
    assert sorted(r["output"]["order"] for r in runs) == [0, 1, 2, 3, 4]
    assert still_running == 0


def test_a_run_whose_flow_is_gone_is_marked_interrupted(
    tmp_path: Path, echo_server: EchoServer
) -> None:
    server = FlowLoomProcess(tmp_path / "data").start()
    flow_id, (run_id,) = start_slow_runs(server, echo_server, [1])
    server.wait_for_run(run_id, lambda r: r["status"] == "running")
    server.kill()

    import sqlite3

    with sqlite3.connect(tmp_path / "data" / "flowloom.db") as connection:
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("DELETE FROM flow_versions WHERE flow_id = ?", (flow_id,))
    restarted = FlowLoomProcess(tmp_path / "data").start()
    try:
        run = restarted.wait_for_run(run_id, lambda r: r["status"] in FINAL)
    finally:
        restarted.stop()

    assert run["status"] == "interrupted"
    assert "FlowLoom stopped during this run" in run["error"]["message"]


def delay_then_call(echo_url: str) -> dict[str, Any]:
    """Wait, then call a web service: a run resumed twice would call it twice."""
    document = chain(
        manual(),
        step("wait", "flow.delay", {"seconds": 1.5}),
        step(
            "call",
            "http.request",
            {"method": "POST", "url": f"{echo_url}/echo", "body": {"order": "{{ input.order }}"}},
        ),
    )
    document["name"] = "Wait, then call"
    return document


def test_a_second_process_on_the_database_leaves_the_first_ones_runs_alone(
    tmp_path: Path, echo_server: EchoServer
) -> None:
    # The studio and `flowloom serve` may share a database: the one starting second must not
    # take the runs the other is running for runs a killed process left behind.
    first = FlowLoomProcess(tmp_path / "data").start()
    second = FlowLoomProcess(tmp_path / "data")
    try:
        _, (run_id,) = start_runs(first, delay_then_call(echo_server.url), [7])
        first.wait_for_run(run_id, lambda r: any(s["node_id"] == "wait" for s in r["steps"]))
        second.start()  # recovers at start
        first.wait_for_run(run_id, lambda r: r["status"] in FINAL)
        # Had the second one resumed the run, it would call the service 1.5 s after its start.
        time.sleep(2.5)
        with second.client() as client:  # the second one is up and about meanwhile
            assert client.get("/readyz").status_code == 200
        run = first.wait_for_run(run_id, lambda r: r["status"] in FINAL)
    finally:
        first.stop()
        second.stop()

    assert run["status"] == "succeeded", run
    assert len([r for r in echo_server.requests if r.path == "/echo"]) == 1
    assert [s["node_id"] for s in run["steps"]] == ["start", "wait", "call"]


def test_the_runs_of_a_killed_process_are_taken_over_by_a_live_one(
    tmp_path: Path, echo_server: EchoServer
) -> None:
    beat = {"FLOWLOOM_HEARTBEAT_S": "0.2"}
    doomed = FlowLoomProcess(tmp_path / "data", env=beat).start()
    survivor = FlowLoomProcess(tmp_path / "data", env=beat).start()
    try:
        _, (run_id,) = start_runs(doomed, delay_then_call(echo_server.url), [8])
        doomed.wait_for_run(run_id, lambda r: any(s["node_id"] == "wait" for s in r["steps"]))
        doomed.kill()
        run = survivor.wait_for_run(run_id, lambda r: r["status"] in FINAL)
    finally:
        survivor.stop()

    assert run["status"] == "succeeded", run
    assert run["output"]["body"]["json"] == {"order": 8}
    assert len([r for r in echo_server.requests if r.path == "/echo"]) == 1
