"""ai.router: the model picks the path, by a tool call, JSON or plain words."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine import Engine, RunResult, validate
from nodes.ai import pick_route
from nodes.ai.vendors import ModelAnswer, ToolCall
from tests.documents import flow, manual, step
from tests.fake_llm import (
    ANTHROPIC,
    OPENAI,
    FakeLLM,
    ai_engine_fixture,  # noqa: F401 (pytest fixture)
    fake_fixture,  # noqa: F401 (pytest fixture)
    fake_llm_server_fixture,  # noqa: F401 (pytest fixture)
    text,
    tool_call,
)

ROUTES = [
    {"port": "billing", "description": "Invoices, refunds and payments."},
    {"port": "technical", "description": "Bugs, errors and outages."},
]


def triage(config: dict[str, Any]) -> dict[str, Any]:
    """start → triage (ai.router) → one data.set per route (and the default, when set)."""
    config = {"prompt": "{{ input.text }}", "routes": ROUTES, **config}
    ports = [r["port"] for r in config["routes"]]
    if config.get("default") and config["default"] not in ports:
        ports.append(config["default"])
    branches = [step(port, "data.set", {"values": {"handled_by": port}}) for port in ports]
    return flow(
        [manual(), step("triage", "ai.router", config), *branches],
        [("start", "triage"), *(("triage", port, port) for port in ports)],
    )


def taken(result: RunResult) -> list[str]:
    return [
        s.node_id
        for s in result.steps
        if s.status == "succeeded" and s.node_id not in ("start", "triage")
    ]


@pytest.mark.parametrize("vendor", [OPENAI, ANTHROPIC], ids=["openai", "anthropic"])
async def test_the_model_chooses_a_route_by_tool_call(
    fake: FakeLLM, ai_engine: Engine, vendor: dict[str, Any]
) -> None:
    fake.script(tool_call("choose_route", {"route": "billing"}))

    result = await ai_engine.run(triage(vendor), {"text": "I was charged twice", "id": 3})

    assert result.status == "succeeded", result.error
    assert taken(result) == ["billing"]
    assert result.step("triage").port == "billing"
    assert result.output == {
        "text": "I was charged twice",
        "id": 3,
        "route": "billing",
        "handled_by": "billing",
    }
    body = fake.requests[0].body
    system = body["system"] if vendor is ANTHROPIC else body["messages"][0]["content"]
    assert (
        "- billing: Invoices, refunds and payments.\n- technical: Bugs, errors and outages."
        in system
    )
    if vendor is OPENAI:
        assert body["messages"][1] == {"role": "user", "content": "I was charged twice"}
        assert body["tools"][0]["function"]["parameters"]["properties"]["route"]["enum"] == [
            "billing",
            "technical",
        ]
        assert body["tool_choice"] == {"type": "function", "function": {"name": "choose_route"}}
        assert "stream" not in body
    else:
        assert body["messages"] == [{"role": "user", "content": "I was charged twice"}]
        assert body["tools"][0]["input_schema"]["properties"]["route"]["enum"] == [
            "billing",
            "technical",
        ]
        assert body["tool_choice"] == {"type": "tool", "name": "choose_route"}
    assert result.step("triage").input_tokens == 11


@pytest.mark.parametrize(
    ("answer", "route"),
    [
        ('{"route": "technical"}', "technical"),
        ('```json\n{"route": "Technical"}\n```', "technical"),
        ("billing", "billing"),
        ("**Billing.**", "billing"),
        ("This is clearly a technical problem with the app.", "technical"),
    ],
)
async def test_a_json_or_plain_text_answer_naming_a_route_is_accepted(
    fake: FakeLLM, ai_engine: Engine, answer: str, route: str
) -> None:
    fake.script(text(answer))

    result = await ai_engine.run(triage(ANTHROPIC), {"text": "help"})

    assert result.status == "succeeded", result.error
    assert taken(result) == [route]


async def test_an_openai_compatible_server_is_asked_for_json_without_tools(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.script(text('{"route": "technical"}'))
    config = {"provider": "openai_compatible", "model": "qwen2.5:7b", "base_url": fake.openai_url}

    result = await ai_engine.run(triage(config), {"text": "the app crashes"})

    assert taken(result) == ["technical"]
    body = fake.requests[0].body
    assert "tools" not in body and "tool_choice" not in body
    assert body["messages"][0]["content"].endswith(
        'Answer; answer only with JSON such as {"route": "<route name>"}.'
    )


@pytest.mark.parametrize(
    "answer",
    [
        text("I cannot decide between billing and technical."),
        text('{"route": "sales"}'),
        tool_call("choose_route", {"route": "sales"}),
        text(""),
    ],
)
async def test_an_answer_naming_no_route_takes_the_default_route(
    fake: FakeLLM, ai_engine: Engine, answer: Any
) -> None:
    fake.script(answer)

    result = await ai_engine.run(triage({**OPENAI, "default": "other"}), {"text": "hello"})

    assert result.status == "succeeded", result.error
    assert taken(result) == ["other"]
    assert result.output["route"] == "other"
    assert any(
        "the model chose none of the routes" in line["message"]
        and "Taking the default route 'other'" in line["message"]
        for line in result.step("triage").logs
    )


async def test_without_a_default_an_answer_naming_no_route_fails_clearly(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.script(text("Maybe ask the sales team?"))

    result = await ai_engine.run(triage(OPENAI), {"text": "hello"})

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["message"] == (
        "Step 'triage' failed: the model chose none of the routes (billing, technical); it "
        "answered «Maybe ask the sales team?». Set a 'default' route to catch such answers."
    )


async def test_an_input_that_is_not_an_object_is_handed_on_under_input(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.script(text("billing"))
    document = flow(
        [manual(), step("triage", "ai.router", {**OPENAI, "routes": ROUTES})],
        [("start", "triage")],
    )

    result = await ai_engine.run(document, "refund please")

    assert result.output == {"input": "refund please", "route": "billing"}
    assert fake.requests[0].body["messages"][1] == {"role": "user", "content": "refund please"}


def test_the_routes_and_the_default_are_the_routers_ports() -> None:
    document = triage({**OPENAI, "default": "other"})
    document["edges"].append({"source": "triage", "source_port": "sales", "target": "billing"})

    problems = [p for p in validate(document) if p.level == "error"]

    assert len(problems) == 1
    assert "leaves from output 'sales'" in problems[0].message
    assert "(it has: billing, error, other, technical)" in problems[0].message


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"routes": [*ROUTES, {"port": "billing"}]}, "two routes are called 'billing'"),
        ({"routes": [{"port": "error"}]}, "that name is kept for errors"),
        ({"routes": []}, "at least 1 item"),
        ({"provider": None}, "choose a provider and a model"),
    ],
)
def test_route_mistakes_are_validation_problems(config: dict[str, Any], words: str) -> None:
    document = flow(
        [manual(), step("triage", "ai.router", {**OPENAI, "routes": ROUTES, **config})],
        [("start", "triage")],
    )

    problems = [p for p in validate(document) if p.level == "error"]

    assert [p.node_id for p in problems] == ["triage"]
    assert words in problems[0].message


def test_a_tool_call_wins_over_text_and_only_known_routes_count() -> None:
    ports = ["a", "b"]

    assert (
        pick_route(ModelAnswer("b", [ToolCall("1", "choose_route", {"route": "a"})]), ports) == "a"
    )
    assert pick_route(ModelAnswer("a or b"), ports) is None
    assert pick_route(ModelAnswer(json.dumps("B")), ports) == "b"
    assert pick_route(ModelAnswer("route: a-team"), ["a", "a-team"]) == "a-team"
