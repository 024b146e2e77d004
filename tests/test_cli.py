"""The `flowloom` command line, run as a real subprocess on flow files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLOWLOOM_")}
    env["FLOWLOOM_DATA_DIR"] = str(tmp_path / "data")
    # NiceGUI switches to its own test mode when it sees pytest's variable.
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def flowloom(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "studio", *args],
        cwd=REPO,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_flow(tmp_path: Path, document: dict[str, Any], name: str = "flow.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def greeting_flow() -> dict[str, Any]:
    return {
        "schema": "flowloom/1",
        "name": "Greeter",
        "nodes": [
            {"id": "start", "type": "trigger.manual", "name": "Start"},
            {
                "id": "greet",
                "type": "data.set",
                "name": "Greet",
                "config": {"values": {"greeting": "Hello {{ input.name }}"}},
            },
        ],
        "edges": [{"source": "start", "target": "greet"}],
    }


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nothing else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def unreachable_http_flow(port: int) -> dict[str, Any]:
    return {
        "schema": "flowloom/1",
        "name": "Unreachable",
        "nodes": [
            {"id": "start", "type": "trigger.manual", "name": "Start"},
            {
                "id": "fetch",
                "type": "http.request",
                "name": "Fetch",
                "config": {
                    "method": "GET",
                    "url": f"http://127.0.0.1:{port}/nothing-listens-here",
                    "timeout_s": 5,
                },
            },
        ],
        "edges": [{"source": "start", "target": "fetch"}],
    }


def test_validate_accepts_a_valid_flow(tmp_path: Path) -> None:
    result = flowloom(tmp_path, "validate", write_flow(tmp_path, greeting_flow()))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "OK: Greeter is valid"


def test_validate_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    document = greeting_flow()
    document["nodes"].append({"id": "mystery", "type": "nope.nothing", "name": "Mystery"})
    document["edges"].append({"source": "greet", "target": "ghost"})

    result = flowloom(tmp_path, "validate", write_flow(tmp_path, document))

    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert len(lines) >= 2
    assert all(line.startswith(("error: ", "warning: ")) for line in lines)
    assert lines[0].startswith("error: ")
    assert "nope.nothing" in result.stdout
    assert "ghost" in result.stdout


def test_validate_json_prints_problems_as_json(tmp_path: Path) -> None:
    document = greeting_flow()
    document["nodes"].append({"id": "mystery", "type": "nope.nothing", "name": "Mystery"})

    result = flowloom(tmp_path, "validate", "--json", write_flow(tmp_path, document))

    assert result.returncode == 2
    problems = json.loads(result.stdout)
    assert any(problem["level"] == "error" for problem in problems)
    assert any(problem["node_id"] == "mystery" for problem in problems)


def test_run_prints_the_output_as_json(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, greeting_flow())

    result = flowloom(tmp_path, "run", flow, "--input", '{"name": "Ada"}')

    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["greeting"] == "Hello Ada"


def test_run_reads_input_from_a_file(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, greeting_flow())
    (tmp_path / "input.json").write_text('{"name": "Grace"}', encoding="utf-8")

    result = flowloom(tmp_path, "run", flow, "--input", f"@{tmp_path / 'input.json'}")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["greeting"] == "Hello Grace"


def test_failed_run_exits_1_with_the_error_on_stderr(tmp_path: Path, closed_port: int) -> None:
    result = flowloom(tmp_path, "run", write_flow(tmp_path, unreachable_http_flow(closed_port)))

    assert result.returncode == 1
    assert "error: the run failed" in result.stderr
    assert "Fetch" in result.stderr


def test_run_events_are_json_lines_ending_with_the_output(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, greeting_flow())

    result = flowloom(tmp_path, "run", flow, "--input", '{"name": "Ada"}', "--events")

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [line.get("event") for line in lines[:-1]]
    assert kinds[0] == "run.started"
    assert "step.finished" in kinds
    assert kinds[-1] == "run.finished"
    assert lines[-2]["status"] == "succeeded"
    assert lines[-1]["greeting"] == "Hello Ada"


def test_bad_input_json_names_the_option_and_exits_2(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, greeting_flow())

    result = flowloom(tmp_path, "run", flow, "--input", "{not json")

    assert result.returncode == 2
    assert "--input" in result.stderr
    assert result.stdout == ""


def test_missing_input_file_exits_2(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, greeting_flow())

    result = flowloom(tmp_path, "run", flow, "--input", f"@{tmp_path / 'absent.json'}")

    assert result.returncode == 2
    assert "absent.json" in result.stderr


@pytest.mark.parametrize("command", ["validate", "run"])
def test_newer_schema_is_refused_with_a_message(tmp_path: Path, command: str) -> None:
    document = greeting_flow()
    document["schema"] = "flowloom/2"

    result = flowloom(tmp_path, command, write_flow(tmp_path, document))

    assert result.returncode == 2
    assert "flowloom/1" in result.stdout + result.stderr


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_file_that_is_not_json_exits_2(tmp_path: Path, command: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{ this is not json", encoding="utf-8")

    result = flowloom(tmp_path, command, str(path))

    assert result.returncode == 2
    assert "broken.json" in result.stderr


def test_running_an_invalid_flow_lists_its_problems_and_exits_2(tmp_path: Path) -> None:
    document = greeting_flow()
    document["nodes"].append({"id": "mystery", "type": "nope.nothing", "name": "Mystery"})

    result = flowloom(tmp_path, "run", write_flow(tmp_path, document))

    assert result.returncode == 2
    assert "nope.nothing" in result.stderr
    assert result.stdout == ""


def test_studio_serves_the_start_page(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "studio.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "studio", "studio", "--port", str(port)],
            cwd=tmp_path,
            env={**cli_env(tmp_path), "PYTHONPATH": str(REPO)},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        body = wait_for_page(f"http://127.0.0.1:{port}/", process, log_path, timeout_s=30)
        assert "FlowLoom" in body
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode is not None


def wait_for_page(
    url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float
) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"the studio exited early with code {process.returncode}:\n"
                f"{log_path.read_text(errors='replace')}"
            )
        try:
            response = httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if response.status_code == 200:
            return response.text
        time.sleep(0.2)
    pytest.fail(
        f"{url} did not answer 200 within {timeout_s} s:\n{log_path.read_text(errors='replace')}"
    )


@pytest.mark.parametrize("command", ["serve", "studio"])
def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path, command: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = flowloom(tmp_path, command, "--port", str(port))

    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "choose another port with --port or FLOWLOOM_PORT" in result.stderr
    assert not (tmp_path / "data" / "flowloom.db").exists()  # nothing started


def test_invalid_settings_are_named_in_plain_words(tmp_path: Path) -> None:
    env = {**cli_env(tmp_path), "FLOWLOOM_PORT": "abc", "FLOWLOOM_SYNC_S": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "studio", "serve"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "FLOWLOOM_PORT: input should be a valid integer" in result.stderr
    assert "(it is 'abc')" in result.stderr
    assert "FLOWLOOM_SYNC_S: input should be greater than 0" in result.stderr
    assert "pydantic.dev" not in result.stderr  # no library's help links
