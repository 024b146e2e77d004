"""The REST API of `flowloom serve`, over real HTTP on loopback, with a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.documents import chain, flow, manual, step
from tests.flowloom_process import FlowLoomProcess

SECRET = "sk-test-7f3c9a1b2d4e6f80"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowLoomProcess]:
    process = FlowLoomProcess(tmp_path_factory.mktemp("api") / "data").start()
    yield process
    process.stop()


@pytest.fixture
def api(server: FlowLoomProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=15) as client:
        yield client


def greeter(name: str = "Greeter") -> dict[str, Any]:
    document = chain(manual(), step("greet", "data.template", {"template": "Hi {{ input.who }}"}))
    document["name"] = name
    return document


def create(api: httpx.Client, document: dict[str, Any]) -> dict[str, Any]:
    answer = api.post("/flows", json={"document": document})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_health_and_readiness(server: FlowLoomProcess) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"


def test_openapi_documents_the_api(server: FlowLoomProcess) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()

    for path in (
        "/api/v1/flows",
        "/api/v1/flows/{flow_id}/runs",
        "/api/v1/runs/{run_id}",
        "/api/v1/credentials",
    ):
        assert path in spec["paths"]
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_create_get_and_list_flows(api: httpx.Client) -> None:
    created = create(api, greeter("Listed"))

    assert created["version"] == 1
    assert created["document"]["name"] == "Listed"
    assert api.get(f"/flows/{created['id']}").json()["document"] == created["document"]
    listed = api.get("/flows").json()
    assert created["id"] in [item["id"] for item in listed["items"]]
    assert listed["total"] >= 1
    assert "document" not in listed["items"][0]


def test_invalid_document_gets_422_listing_every_problem_by_node(api: httpx.Client) -> None:
    document = flow(
        [manual(), step("a", "data.sett", {}), step("b", "logic.condition", {"expression": "x >"})],
        [("start", "a"), ("start", "b")],
    )

    answer = api.post("/flows", json={"document": document})

    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_flow"
    assert {(d["node_id"], d["code"]) for d in error["details"]} >= {
        ("a", "unknown_type"),
        ("b", "expression"),
    }


def test_malformed_json_gets_400(api: httpx.Client) -> None:
    answer = api.post(
        "/flows", content=b'{"document": {', headers={"content-type": "application/json"}
    )

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "malformed_json"
    run = api.post("/flows/whatever/runs", content=b"{nope")
    assert run.status_code == 400
    assert "not valid JSON" in run.json()["error"]["message"]


def test_unknown_flow_gets_404_in_the_error_shape(api: httpx.Client) -> None:
    answer = api.get("/flows/nope")

    assert answer.status_code == 404
    assert set(answer.json()["error"]) == {"code", "message", "details"}


def test_saving_over_a_newer_version_gets_409(api: httpx.Client) -> None:
    created = create(api, greeter("Two tabs"))
    first_tab = api.put(
        f"/flows/{created['id']}", json={"document": greeter("Two tabs, edited"), "base_version": 1}
    )
    assert first_tab.status_code == 200
    assert first_tab.json()["version"] == 2

    second_tab = api.put(
        f"/flows/{created['id']}",
        json={"document": greeter("Two tabs, other edit"), "base_version": 1},
    )

    assert second_tab.status_code == 409
    error = second_tab.json()["error"]
    assert error["code"] == "version_conflict"
    assert "changed elsewhere" in error["message"]
    assert error["details"] == {"base_version": 1, "current_version": 2}


def test_versions_newest_first_and_restore_makes_a_new_version(api: httpx.Client) -> None:
    created = create(api, greeter("v1"))
    api.put(f"/flows/{created['id']}", json={"document": greeter("v2"), "message": "renamed"})

    versions = api.get(f"/flows/{created['id']}/versions").json()["items"]
    assert [(v["version"], v["document"]["name"]) for v in versions] == [(2, "v2"), (1, "v1")]
    assert versions[0]["message"] == "renamed"

    restored = api.post(f"/flows/{created['id']}/versions/1/restore").json()
    assert (restored["version"], restored["document"]["name"]) == (3, "v1")


def test_a_run_is_stored_and_its_steps_recorded(api: httpx.Client, server: FlowLoomProcess) -> None:
    created = create(api, greeter("Runner"))

    started = api.post(f"/flows/{created['id']}/runs", json={"who": "Ada"})

    assert started.status_code == 202
    run_id = started.json()["run_id"]
    run = server.wait_for_run(run_id, lambda r: r["status"] == "succeeded")
    assert run["output"] == {"text": "Hi Ada"}
    assert run["input"] == {"who": "Ada"}
    assert [(s["node_id"], s["status"]) for s in run["steps"]] == [
        ("start", "succeeded"),
        ("greet", "succeeded"),
    ]
    assert run["steps"][1]["output"] == {"text": "Hi Ada"}


def test_waiting_for_a_run_returns_its_result(api: httpx.Client) -> None:
    created = create(api, greeter("Waiter"))

    answer = api.post(f"/flows/{created['id']}/runs?wait=10", json={"who": "Bo"})

    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["output"]) == ("succeeded", {"text": "Hi Bo"})


def test_runs_list_filters_by_flow_and_status(api: httpx.Client) -> None:
    good = create(api, greeter("Filter ok"))
    bad_doc = chain(manual(), step("boom", "data.set", {"values": {"n": "{{ 1 // input.zero }}"}}))
    bad_doc["name"] = "Filter bad"
    bad = create(api, bad_doc)
    for _ in range(2):
        api.post(f"/flows/{good['id']}/runs?wait=10", json={"who": "x"})
    api.post(f"/flows/{bad['id']}/runs?wait=10", json={"zero": 0})

    mine = api.get("/runs", params={"flow_id": good["id"]}).json()
    failed = api.get("/runs", params={"flow_id": bad["id"], "status": "failed"}).json()

    assert mine["total"] == 2
    assert {r["status"] for r in mine["items"]} == {"succeeded"}
    assert failed["total"] == 1
    assert "boom" in failed["items"][0]["error"]["message"]
    assert api.get("/runs", params={"flow_id": good["id"], "limit": 1}).json()["total"] == 2


def test_cancel_stops_a_running_run(api: httpx.Client, server: FlowLoomProcess) -> None:
    document = chain(manual(), step("wait", "flow.delay", {"seconds": 30}))
    document["name"] = "Waits long"
    created = create(api, document)
    run_id = api.post(f"/flows/{created['id']}/runs").json()["run_id"]
    server.wait_for_run(run_id, lambda r: r["status"] == "running")

    answer = api.post(f"/runs/{run_id}/cancel")

    assert answer.json() == {"run_id": run_id, "status": "cancelled"}
    assert api.get(f"/runs/{run_id}").json()["steps"][-1]["status"] == "cancelled"
    again = api.post(f"/runs/{run_id}/cancel")
    assert again.status_code == 409


def test_credentials_never_come_back(api: httpx.Client, server: FlowLoomProcess) -> None:
    saved = api.post(
        "/credentials", json={"name": "openai-main", "type": "openai", "data": {"api_key": SECRET}}
    )

    assert saved.status_code == 201
    assert SECRET not in saved.text
    assert saved.json()["fields"] == ["api_key"]
    listed = api.get("/credentials")
    assert "openai-main" in listed.text
    assert SECRET not in listed.text
    assert api.delete("/credentials/openai-main").status_code == 204
    assert api.delete("/credentials/openai-main").status_code == 404
    assert SECRET not in server.log()


def test_activate_answers_webhook_urls_and_next_schedule_fires(api: httpx.Client) -> None:
    document = flow(
        [
            step("hook", "trigger.webhook"),
            step("tick", "trigger.schedule", {"cron": "*/5 * * * *"}),
            step("set", "data.set", {"values": {"ok": True}}),
        ],
        [("hook", "set"), ("tick", "set")],
    )
    document["name"] = "Listens"
    created = create(api, document)

    answer = api.post(f"/flows/{created['id']}/activate").json()

    assert answer["active"] is True
    (hook,) = answer["webhooks"]
    assert hook["node_id"] == "hook"
    assert "/hooks/" in hook["url"]
    assert len(hook["url"].rsplit("/", 1)[1]) >= 32
    (tick,) = answer["schedules"]
    assert tick["node_id"] == "tick"
    minute = int(tick["next_run_at"][14:16])
    assert minute % 5 == 0
    again = api.post(f"/flows/{created['id']}/activate").json()
    assert again["webhooks"] == answer["webhooks"]  # the URL stays the same
    assert api.get(f"/flows/{created['id']}").json()["active"] is True
    assert api.post(f"/flows/{created['id']}/deactivate").json()["active"] is False


def test_delete_flow(api: httpx.Client) -> None:
    created = create(api, greeter("Doomed"))

    assert api.delete(f"/flows/{created['id']}").status_code == 204
    assert api.get(f"/flows/{created['id']}").status_code == 404


def test_two_flows_cannot_share_a_name(api: httpx.Client) -> None:
    create(api, greeter("Unique"))

    answer = api.post("/flows", json={"document": greeter("Unique")})

    assert answer.status_code == 409
    assert "already called 'Unique'" in answer.json()["error"]["message"]


def test_document_round_trips_unknown_keys_through_the_api(api: httpx.Client) -> None:
    document = greeter("Keeps keys")
    document["x_canvas"] = {"zoom": 2}

    created = create(api, document)

    assert api.get(f"/flows/{created['id']}").json()["document"]["x_canvas"] == {"zoom": 2}


def test_data_dir_is_used(server: FlowLoomProcess) -> None:
    assert (Path(server.data_dir) / "flowloom.db").exists()


def test_metrics_count_the_runs_and_logs_are_json_lines_with_ids(
    api: httpx.Client, server: FlowLoomProcess
) -> None:
    document = chain(manual(), step("fail", "data.set", {"values": {"n": "{{ 1 // input.zero }}"}}))
    document["name"] = "Counted"
    created = create(api, document)
    for _ in range(2):
        api.post(f"/flows/{created['id']}/runs?wait=10", json={"zero": 0})

    metrics = httpx.get(f"{server.url}/metrics")

    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert f'flowloom_runs_total{{flow="{created["id"]}",status="failed"}} 2.0' in metrics.text
    log_lines = (server.data_dir / "logs" / "flowloom.log").read_text().splitlines()
    ended = [json.loads(line) for line in log_lines if '"run ended"' in line]
    mine = [line for line in ended if line.get("flow_id") == created["id"]]
    assert len(mine) == 2
    assert all(line["run_id"] and line["node_id"] == "fail" for line in mine)


def test_agent_health_and_usage_come_through_the_api(api: httpx.Client) -> None:
    assert api.get("/stats/agents").json()["items"] == []  # no agent has run on this server
    runs = api.get("/stats/runs", params={"minutes": 60}).json()["items"]
    assert sum(r["runs"] for r in runs) >= 1
    assert api.get("/stats/usage", params={"hours": 1}).status_code == 200
    assert api.get("/stats/agents", params={"hours": 0}).status_code == 422
