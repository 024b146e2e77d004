"""The bundled example flows (assets/examples/) are valid and run, against the fake vendor."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, validate
from tests.fake_llm import (
    FakeLLM,
    StaticCredentials,
    fake_fixture,  # noqa: F401 (pytest fixture)
    fake_llm_server_fixture,  # noqa: F401 (pytest fixture)
    text,
    tool_call,
)
from tests.servers import EchoServer

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return document


def webhook(body: dict[str, Any]) -> dict[str, Any]:
    return {"body": body, "headers": {}, "query": {}, "method": "POST"}


@pytest.fixture
async def engine(fake: FakeLLM) -> AsyncIterator[Engine]:
    """An engine whose credentials 'openai' and 'anthropic' (the examples' names) lead to the fake."""
    engine = Engine(
        credentials=StaticCredentials(
            {
                "openai": {"api_key": "sk-example", "base_url": fake.openai_url},
                "anthropic": {"api_key": "sk-ant-example", "base_url": fake.url},
            }
        )
    )
    yield engine
    await engine.aclose()


def test_there_are_examples() -> None:
    assert len(list(EXAMPLES.glob("*.json"))) >= 4


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_every_example_is_valid_without_warnings(path: Path) -> None:
    assert validate(json.loads(path.read_text(encoding="utf-8"))) == []


async def test_support_triage_routes_to_the_billing_agent_and_answers_the_caller(
    fake: FakeLLM, engine: Engine
) -> None:
    fake.script(
        tool_call("choose_route", {"route": "billing"}),
        text("A colleague will confirm your refund."),
    )

    result = await engine.run(example("support_triage"), webhook({"text": "I was charged twice"}))

    assert result.status == "succeeded", result.error
    assert result.response is not None
    assert result.response["body"] == {
        "reply": "A colleague will confirm your refund.",
        "route": "billing",
    }
    assert [r.vendor for r in fake.requests] == ["openai", "anthropic"]
    assert fake.requests[1].body["messages"] == [{"role": "user", "content": "I was charged twice"}]


async def test_support_triage_gives_a_holding_reply_for_anything_else(
    fake: FakeLLM, engine: Engine
) -> None:
    fake.script(text("I am not sure."))

    result = await engine.run(
        example("support_triage"), webhook({"text": "Do you sell gift cards?"})
    )

    assert result.response is not None
    assert result.response["body"]["route"] == "other"
    assert result.response["body"]["reply"].startswith("Thanks for your message!")


async def test_the_planner_splits_the_work_the_workers_do_it_and_the_editor_merges(
    fake: FakeLLM, engine: Engine
) -> None:
    plan = {
        "subtasks": [
            {"title": "History", "instructions": "Summarise the history."},
            {"title": "Today", "instructions": "Describe the present."},
        ]
    }
    fake.script(
        text(json.dumps(plan)),
        text("result one"),
        text("result two"),
        text("The merged answer."),
    )

    result = await engine.run(example("planner_workers"), {"request": "Explain tea."})

    assert result.status == "succeeded", result.error
    assert result.output["text"] == "The merged answer."
    worker_prompts = sorted(body["messages"][-1]["content"] for body in fake.bodies("anthropic"))
    assert worker_prompts == [
        "The whole request: Explain tea.\n\nYour subtask: History\nSummarise the history.",
        "The whole request: Explain tea.\n\nYour subtask: Today\nDescribe the present.",
    ]
    editor_prompt = fake.requests[-1].body["messages"][-1]["content"]
    results = sorted(editor_prompt.split("The workers' results:\n\n")[1].split("\n\n---\n\n"))
    assert results == ["result one", "result two"]


async def test_the_chat_remembers_earlier_messages_of_the_same_chat(
    fake: FakeLLM, engine: Engine
) -> None:
    fake.script(text("Hello Ada!"), text("You are Ada."))
    document = example("chat_with_memory")

    await engine.run(document, webhook({"chat_id": "42", "message": "I'm Ada."}))
    second = await engine.run(document, webhook({"chat_id": "42", "message": "Who am I?"}))

    assert second.response is not None
    assert second.response["body"] == {"reply": "You are Ada."}
    assert fake.requests[1].body["messages"] == [
        {"role": "user", "content": "I'm Ada."},
        {"role": "assistant", "content": "Hello Ada!"},
        {"role": "user", "content": "Who am I?"},
    ]


async def test_the_orchestrator_delegates_to_its_worker_agents(
    fake: FakeLLM, engine: Engine
) -> None:
    fake.script(
        tool_call("Researcher", {"task": "Height of Mont Blanc"}),
        text("- 4,806 m"),
        tool_call("Fact_checker", {"claim": "Mont Blanc is 4,806 m high"}),
        text('{"holds": true, "reason": "IGN survey"}'),
        text("Mont Blanc is about 4,806 m high."),
    )

    result = await engine.run(
        example("research_orchestrator"), {"question": "How high is Mont Blanc?"}
    )

    assert result.status == "succeeded", result.error
    assert result.output["text"] == "Mont Blanc is about 4,806 m high."
    assert result.step("checker").output["json"] == {"holds": True, "reason": "IGN survey"}
    report = json.loads(fake.requests[-1].body["messages"][-1]["content"])
    assert report["json"] == {"holds": True, "reason": "IGN survey"}


async def test_the_weather_assistant_calls_its_http_tool(
    fake: FakeLLM, engine: Engine, echo_server: EchoServer
) -> None:
    document = example("agent_http_tool")
    forecast = next(n for n in document["nodes"] if n["id"] == "forecast")
    forecast["config"]["url"] = f"{echo_server.url}/echo"  # loopback instead of open-meteo.com
    fake.script(
        tool_call("Get_forecast", {"latitude": 59.91, "longitude": 10.75}),
        text("It is 3 °C in Oslo."),
    )

    result = await engine.run(document, {"question": "How cold is Oslo now?"})

    assert result.status == "succeeded", result.error
    assert result.output["text"] == "It is 3 °C in Oslo."
    sent = json.loads(fake.requests[1].body["messages"][-1]["content"])
    assert sent["body"]["query"] == {
        "latitude": "59.91",
        "longitude": "10.75",
        "current": "temperature_2m,wind_speed_10m",
    }
