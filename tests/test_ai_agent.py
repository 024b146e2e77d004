"""ai.agent through the real OpenAI and Anthropic SDKs against the fake vendor (tests/fake_llm.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine import Engine, Event, RunResult, TokenStreamed, validate
from nodes.ai import PRICES, register_agent, register_prices
from nodes.ai.library import _default_library
from tests.documents import flow, manual, step
from tests.fake_llm import (
    ANTHROPIC,
    OPENAI,
    FakeLLM,
    SeenCall,
    StaticCredentials,
    ai_engine_fixture,  # noqa: F401 (pytest fixture)
    fake_fixture,  # noqa: F401 (pytest fixture)
    fake_llm_server_fixture,  # noqa: F401 (pytest fixture)
    text,
    tool_call,
)

VENDORS = {"openai": OPENAI, "anthropic": ANTHROPIC}


def agent_flow(config: dict[str, Any], *tools: dict[str, Any]) -> dict[str, Any]:
    """start → ask (an ai.agent), with `tools` wired to its tools port."""
    nodes = [manual(), step("ask", "ai.agent", config), *tools]
    edges: list[Any] = [("start", "ask"), *(("ask", "tools", t["id"]) for t in tools)]
    return flow(nodes, edges)


def tool(
    node_id: str, node_type: str, config: dict[str, Any], name: str, **spec: Any
) -> dict[str, Any]:
    node = step(node_id, node_type, config, name=name)
    return {**node, "tool": spec} if spec else node


async def run(
    engine: Engine, document: dict[str, Any], input: Any = None
) -> tuple[RunResult, list[Event]]:
    events: list[Event] = []
    result = await engine.run(document, input, on_event=events.append)
    return result, events


def tokens(events: list[Event]) -> list[str]:
    return [e.text for e in events if isinstance(e, TokenStreamed)]


def sent_key(seen: SeenCall) -> str:
    """The API key a request carried (Anthropic's SDK sends it as x-api-key or a bearer token)."""
    return seen.headers.get("x-api-key") or seen.headers["authorization"].removeprefix("Bearer ")


def messages_of(fake: FakeLLM, index: int = -1) -> list[dict[str, Any]]:
    return fake.requests[index].body["messages"]


# -- answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_openai_answer_reaches_the_output_with_the_request_as_sent(
    fake: FakeLLM, ai_engine: Engine, stream: bool
) -> None:
    fake.script(
        text("Bonjour, Ada!", chunks=("Bon", "jour, ", "Ada!"), input_tokens=20, output_tokens=5)
    )
    document = agent_flow(
        {
            **OPENAI,
            "system": "You translate to French.",
            "prompt": "Hello {{ input.name }}",
            "stream": stream,
        }
    )

    result, events = await run(ai_engine, document, {"name": "Ada"})

    assert result.status == "succeeded", result.error
    assert result.output == {
        "text": "Bonjour, Ada!",
        "json": None,
        "usage": {"input_tokens": 20, "output_tokens": 5},
        "cost_usd": pytest.approx((20 * 0.15 + 5 * 0.6) / 1e6),
        "model": "gpt-4o-mini",
    }
    (seen,) = fake.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer sk-test-openai"
    assert seen.body["model"] == "gpt-4o-mini"
    assert seen.body["messages"] == [
        {"role": "system", "content": "You translate to French."},
        {"role": "user", "content": "Hello Ada"},
    ]
    assert seen.body["max_completion_tokens"] == 1024
    assert "tools" not in seen.body
    if stream:
        assert seen.body["stream"] is True
        assert seen.body["stream_options"] == {"include_usage": True}
        assert tokens(events) == ["Bon", "jour, ", "Ada!"]
    else:
        assert "stream" not in seen.body
        assert tokens(events) == []
    step_record = result.step("ask")
    assert (step_record.input_tokens, step_record.output_tokens) == (20, 5)
    assert step_record.model == "gpt-4o-mini"
    (exchange,) = step_record.exchanges
    assert exchange["provider"] == "openai"
    assert exchange["request"] == seen.body
    assert exchange["response"]["text"] == "Bonjour, Ada!"
    assert "sk-test" not in json.dumps(exchange)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_anthropic_answer_reaches_the_output_with_the_request_as_sent(
    fake: FakeLLM, ai_engine: Engine, stream: bool
) -> None:
    fake.script(text("Guten Tag", chunks=("Guten", " Tag"), input_tokens=30, output_tokens=4))
    document = agent_flow(
        {
            **ANTHROPIC,
            "system": "Translate to German.",
            "prompt": "{{ input }}",
            "stream": stream,
            "temperature": 0.2,
            "max_tokens": 300,
        }
    )

    result, events = await run(ai_engine, document, "Good day")

    assert result.status == "succeeded", result.error
    assert result.output["text"] == "Guten Tag"
    assert result.output["usage"] == {"input_tokens": 30, "output_tokens": 4}
    assert result.output["cost_usd"] == pytest.approx((30 * 1.0 + 4 * 5.0) / 1e6)
    (seen,) = fake.requests
    assert seen.path == "/v1/messages"
    assert sent_key(seen) == "sk-ant-test"
    assert seen.body["model"] == "claude-haiku-4-5"
    assert seen.body["system"] == "Translate to German."
    assert seen.body["messages"] == [{"role": "user", "content": "Good day"}]
    assert (seen.body["max_tokens"], seen.body["temperature"]) == (300, 0.2)
    assert seen.body.get("stream", False) is stream
    assert tokens(events) == (["Guten", " Tag"] if stream else [])
    assert result.step("ask").exchanges[0]["request"] == seen.body


async def test_without_a_prompt_the_input_is_asked_as_json(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.script(text("ok"))

    result, _ = await run(ai_engine, agent_flow({**OPENAI}), {"question": "why?"})

    assert result.status == "succeeded", result.error
    assert messages_of(fake) == [{"role": "user", "content": '{"question": "why?"}'}]


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_an_answer_cut_off_at_max_tokens_is_flagged(
    fake: FakeLLM, ai_engine: Engine, vendor: str, stream: bool
) -> None:
    fake.script(text("The first half of", cut_off=True), text("", cut_off=True))
    document = agent_flow({**VENDORS[vendor], "prompt": "x", "max_tokens": 5, "stream": stream})

    cut, _ = await run(ai_engine, document)
    empty, _ = await run(ai_engine, document)

    assert cut.output["text"] == "The first half of"
    assert any("cut off at 'max_tokens' (5)" in line["message"] for line in cut.step("ask").logs)
    assert empty.error is not None
    assert "used up 'max_tokens' (5) before it wrote an answer" in empty.error["message"]


# -- tools -------------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_parallel_tool_calls_run_at_once_and_their_results_go_back(
    fake: FakeLLM, ai_engine: Engine, vendor: str, stream: bool
) -> None:
    fake.script(
        tool_call(
            "Look_up_order",
            {"id": 7},
            ("Wetter-Abfrage", {"city": "Oslo"}),
            ("Wetter-Abfrage_2", {"city": "Rome"}),
            input_tokens=50,
        ),
        text("Order 7 has shipped; Oslo is cold.", input_tokens=80, output_tokens=9),
    )
    lookup = tool(
        "lookup",
        "data.set",
        {"values": {"order": "{{ args.id }}", "status": "shipped"}, "keep_input": False},
        "Look up order",
        description="Finds an order by id.",
        parameters={"type": "object", "properties": {"id": {"type": "integer"}}},
    )
    weather = tool(
        "weather",
        "flow.delay",
        {"seconds": 0.3},
        "Wetter-Abfrage ☀",
        description="Weather in a city.",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
    )
    slow = tool("slow", "flow.delay", {"seconds": 0.3}, "Wetter-Abfrage")
    document = agent_flow(
        {**VENDORS[vendor], "prompt": "Where is order 7, and the weather?", "stream": stream},
        lookup,
        weather,
        slow,
    )

    result, _ = await run(ai_engine, document)

    assert result.status == "succeeded", result.error
    assert result.output["text"] == "Order 7 has shipped; Oslo is cold."
    assert result.output["usage"] == {"input_tokens": 130, "output_tokens": 16}
    weather_step, slow_step = result.step("weather"), result.step("slow")
    assert weather_step.started_at < slow_step.finished_at, "the tools ran one after the other"
    assert slow_step.started_at < weather_step.finished_at, "the tools ran one after the other"
    assert {r.node_id for r in result.steps} == {"start", "ask", "lookup", "weather", "slow"}
    first, second = fake.bodies()
    if vendor == "openai":
        offered = [(t["function"]["name"], t["function"]["description"]) for t in first["tools"]]
        assert first["tools"][0]["function"]["parameters"] == {
            "type": "object",
            "properties": {"id": {"type": "integer"}},
        }
        calls = second["messages"][-4]["tool_calls"]
        assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
            ("Look_up_order", {"id": 7}),
            ("Wetter-Abfrage", {"city": "Oslo"}),
            ("Wetter-Abfrage_2", {"city": "Rome"}),
        ]
        results = [(m["tool_call_id"], json.loads(m["content"])) for m in second["messages"][-3:]]
        assert [m["role"] for m in second["messages"][-3:]] == ["tool", "tool", "tool"]
        ids = [c["id"] for c in calls]
    else:
        offered = [(t["name"], t["description"]) for t in first["tools"]]
        assert first["tools"][0]["input_schema"]["properties"] == {"id": {"type": "integer"}}
        asked, answered = second["messages"][-2:]
        uses = [(b["name"], b["input"]) for b in asked["content"] if b["type"] == "tool_use"]
        assert uses == [
            ("Look_up_order", {"id": 7}),
            ("Wetter-Abfrage", {"city": "Oslo"}),
            ("Wetter-Abfrage_2", {"city": "Rome"}),
        ]
        assert answered["role"] == "user"
        results = [(b["tool_use_id"], json.loads(b["content"])) for b in answered["content"]]
        ids = [b["id"] for b in asked["content"] if b["type"] == "tool_use"]
    assert results == [
        (ids[0], {"order": 7, "status": "shipped"}),
        (ids[1], {"city": "Oslo"}),
        (ids[2], {"city": "Rome"}),
    ]
    assert offered == [
        ("Look_up_order", "Finds an order by id."),
        ("Wetter-Abfrage", "Weather in a city."),
        ("Wetter-Abfrage_2", "Waits a while, then passes its input on unchanged."),
    ]


async def test_tool_failures_go_back_to_the_model_as_error_text(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.script(
        tool_call("Broken", {}, ("Nonexistent", {}), ("Loop", {"n": 1})),
        text("Sorry, the tools failed."),
    )
    broken = tool("broken", "logic.loop", {"items": "{{ args.missing }}"}, "Broken")
    loop = tool("loop", "logic.loop", {"items": "{{ args.n }}"}, "Loop")
    document = agent_flow({**OPENAI, "prompt": "try"}, broken, loop)

    result, _ = await run(ai_engine, document)

    assert result.status == "succeeded", result.error
    assert result.output["text"] == "Sorry, the tools failed."
    errors = [json.loads(m["content"])["error"] for m in messages_of(fake)[-3:]]
    assert "Broken" in errors[0]
    assert errors[1] == "there is no tool named 'Nonexistent' (tools: Broken, Loop)"
    assert "'items' must be a list to loop over, but it is a number (1)" in errors[2]


async def test_the_model_asking_for_tools_round_after_round_stops_at_max_tool_rounds(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.script(*[tool_call("Echo", {"n": i}) for i in range(3)])
    echo = tool("echo", "data.set", {"values": {"n": "{{ args.n }}"}}, "Echo")
    document = agent_flow({**OPENAI, "prompt": "go", "max_tool_rounds": 2}, echo)

    result, _ = await run(ai_engine, document)

    assert result.status == "failed"
    assert result.error is not None
    assert "still asked for tools after 2 round(s)" in result.error["message"]
    assert len(fake.requests) == 3


async def test_an_agent_can_be_another_agents_tool(fake: FakeLLM, ai_engine: Engine) -> None:
    fake.script(
        tool_call("Researcher", {"task": "Find the boiling point of water"}, input_tokens=10),
        text("100 °C at sea level", input_tokens=5, output_tokens=6),
        text("Water boils at 100 °C.", input_tokens=20, output_tokens=7),
    )
    researcher = tool(
        "researcher",
        "ai.agent",
        {
            **ANTHROPIC,
            "system": "You research facts.",
            "prompt": "{{ args.task }}",
            "stream": False,
        },
        "Researcher",
        description="Researches one question.",
        parameters={
            "type": "object",
            "properties": {"task": {"type": "string"}},
            "required": ["task"],
        },
    )
    document = agent_flow(
        {**OPENAI, "system": "You delegate.", "prompt": "{{ input }}"}, researcher
    )

    result, _ = await run(ai_engine, document, "At what temperature does water boil?")

    assert result.status == "succeeded", result.error
    assert result.output["text"] == "Water boils at 100 °C."
    assert [r.vendor for r in fake.requests] == ["openai", "anthropic", "openai"]
    worker_request = fake.requests[1].body
    assert worker_request["system"] == "You research facts."
    assert worker_request["messages"] == [
        {"role": "user", "content": "Find the boiling point of water"}
    ]
    answer = json.loads(messages_of(fake)[-1]["content"])
    assert answer["text"] == "100 °C at sea level"
    assert result.step("researcher").output["text"] == "100 °C at sea level"
    assert result.step("researcher").input_tokens == 5
    assert result.step("ask").input_tokens == 30


# -- JSON answers ------------------------------------------------------------------------------

PLAN_SCHEMA = {
    "type": "object",
    "properties": {"subtasks": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
    "required": ["subtasks"],
}


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
async def test_a_json_answer_is_parsed_and_checked_against_the_schema(
    fake: FakeLLM, ai_engine: Engine, vendor: str
) -> None:
    fake.script(text('```json\n{"subtasks": ["research", "write"]}\n```'))
    document = agent_flow(
        {
            **VENDORS[vendor],
            "system": "Plan.",
            "prompt": "Plan a blog post",
            "output": "json",
            "json_schema": PLAN_SCHEMA,
        }
    )

    result, _ = await run(ai_engine, document)

    assert result.status == "succeeded", result.error
    assert result.output["json"] == {"subtasks": ["research", "write"]}
    body = fake.requests[0].body
    system = body["messages"][0]["content"] if vendor == "openai" else body["system"]
    assert system.startswith("Plan.\n\nAnswer with one JSON value only")
    assert '"required": ["subtasks"]' in system
    if vendor == "openai":
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": PLAN_SCHEMA},
        }


async def test_json_output_without_a_schema_asks_for_a_json_object(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.script(text('Here you go: {"ok": true} — enjoy'))

    result, _ = await run(ai_engine, agent_flow({**OPENAI, "prompt": "x", "output": "json"}))

    assert result.output["json"] == {"ok": True}
    assert fake.requests[0].body["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ("Sure! The subtasks are research and writing.", "its answer is not JSON"),
        ('{"subtasks": []}', "'subtasks' should have at least 1 item(s), not 0"),
        ('{"steps": ["a"]}', "the answer lacks the required key 'subtasks'"),
        ('{"subtasks": [1]}', "'subtasks[0]' should be string, not a number (1)"),
    ],
)
async def test_an_answer_that_does_not_fit_fails_quoting_its_start(
    fake: FakeLLM, ai_engine: Engine, answer: str, words: str
) -> None:
    fake.script(text(answer))
    document = agent_flow(
        {**OPENAI, "prompt": "Plan", "output": "json", "json_schema": PLAN_SCHEMA}
    )

    result, _ = await run(ai_engine, document)

    assert result.status == "failed"
    assert result.error is not None
    assert words in result.error["message"]
    assert f"The answer began: «{answer}»" in result.error["message"]


# -- memory ------------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
async def test_memory_carries_a_conversation_across_runs_by_key(
    fake: FakeLLM, ai_engine: Engine, vendor: str
) -> None:
    fake.script(text("Nice to meet you, Ada."), text("Your name is Ada."), text("I don't know."))
    document = agent_flow(
        {
            **VENDORS[vendor],
            "system": "Be brief.",
            "prompt": "{{ input.message }}",
            "memory": {"key": "{{ trigger.chat_id }}", "window": 10},
        }
    )

    first, _ = await run(ai_engine, document, {"chat_id": "c-1", "message": "I am Ada."})
    second, _ = await run(ai_engine, document, {"chat_id": "c-1", "message": "Who am I?"})
    other, _ = await run(ai_engine, document, {"chat_id": "c-2", "message": "Who am I?"})

    assert [r.output["text"] for r in (first, second, other)] == [
        "Nice to meet you, Ada.",
        "Your name is Ada.",
        "I don't know.",
    ]
    conversation = messages_of(fake, 1)
    if vendor == "openai":
        conversation = conversation[1:]  # after the system message
    assert conversation == [
        {"role": "user", "content": "I am Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "Who am I?"},
    ]
    assert messages_of(fake, 2)[-1:] == [{"role": "user", "content": "Who am I?"}]
    assert len(messages_of(fake, 2)) == (2 if vendor == "openai" else 1)
    assert await ai_engine.memory.load_messages("c-1", 10) == [
        *conversation,
        {"role": "assistant", "content": "Your name is Ada."},
    ]


async def test_the_memory_window_limits_what_the_model_sees(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    await ai_engine.memory.append_messages(
        "w", [{"role": "user" if i % 2 == 0 else "assistant", "content": str(i)} for i in range(6)]
    )
    fake.script(text("ok"))
    document = agent_flow({**OPENAI, "prompt": "next", "memory": {"key": "w", "window": 2}})

    await run(ai_engine, document)

    assert [m["content"] for m in messages_of(fake)] == ["4", "5", "next"]


# -- usage and cost ----------------------------------------------------------------------------


async def test_usage_and_cost_add_up_over_every_round(fake: FakeLLM, ai_engine: Engine) -> None:
    fake.script(
        tool_call("Echo", {"n": 1}, input_tokens=1000, output_tokens=100),
        text("done", input_tokens=2000, output_tokens=300),
    )
    echo = tool("echo", "data.set", {"values": {"n": "{{ args.n }}"}}, "Echo")

    result, _ = await run(ai_engine, agent_flow({**ANTHROPIC, "prompt": "go"}, echo))

    cost = (3000 * 1.0 + 400 * 5.0) / 1e6
    assert result.output["usage"] == {"input_tokens": 3000, "output_tokens": 400}
    assert result.output["cost_usd"] == pytest.approx(cost)
    record = result.step("ask")
    assert (record.input_tokens, record.output_tokens, record.model) == (
        3000,
        400,
        "claude-haiku-4-5",
    )
    assert record.cost_usd == pytest.approx(cost)


async def test_a_model_without_a_price_costs_nothing_and_the_step_says_so(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.script(text("hi", input_tokens=100, output_tokens=100))
    document = agent_flow(
        {"provider": "openai_compatible", "model": "llama3.2:3b", "base_url": fake.openai_url}
    )

    result, _ = await run(ai_engine, document, "hello")

    assert result.status == "succeeded", result.error
    assert result.output["cost_usd"] == 0
    assert result.output["model"] == "llama3.2:3b"
    assert any(
        line["message"] == "no price known for model llama3.2:3b; its cost counts as 0"
        for line in result.step("ask").logs
    )
    body = fake.requests[0].body
    assert body["max_tokens"] == 1024  # local servers know max_tokens
    assert fake.requests[0].headers["authorization"] == "Bearer none"


async def test_registered_prices_win_over_the_shipped_list(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    fake.script(text("hi", input_tokens=1_000_000, output_tokens=1_000_000))
    register_prices({"gpt-4o-mini": {"input": 1.0, "output": 2.0}})
    try:
        result, _ = await run(ai_engine, agent_flow({**OPENAI}), "x")
    finally:
        PRICES.reset_overrides()

    assert result.output["cost_usd"] == pytest.approx(3.0)


# -- credentials -------------------------------------------------------------------------------


async def test_the_sdks_environment_variables_are_the_default_credentials(
    fake: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    fake.script(text("one"), text("two"))
    engine = Engine()
    try:
        first, _ = await run(engine, agent_flow({"provider": "openai", "model": "gpt-4o"}), "a")
        second, _ = await run(
            engine, agent_flow({"provider": "anthropic", "model": "claude-haiku-4-5"}), "b"
        )
    finally:
        await engine.aclose()

    assert (first.output["text"], second.output["text"]) == ("one", "two")
    assert fake.requests[0].headers["authorization"] == "Bearer sk-from-env"
    assert sent_key(fake.requests[1]) == "sk-ant-from-env"


async def test_a_missing_key_names_the_environment_variable(
    fake: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    engine = Engine()
    try:
        result, _ = await run(
            engine, agent_flow({"provider": "anthropic", "model": "claude-haiku-4-5"}), "a"
        )
    finally:
        await engine.aclose()

    assert result.status == "failed"
    assert result.error is not None
    assert (
        "there is no API key to call Anthropic model 'claude-haiku-4-5'" in result.error["message"]
    )
    assert "ANTHROPIC_API_KEY" in result.error["message"]
    assert fake.requests == []


async def test_an_unknown_credential_is_named(fake: FakeLLM, ai_engine: Engine) -> None:
    result, _ = await run(ai_engine, agent_flow({**OPENAI, "credential": "nope"}), "a")

    assert result.error is not None
    assert "there is no credential named 'nope'" in result.error["message"]


async def test_base_url_in_the_config_wins_over_the_credentials(fake: FakeLLM) -> None:
    engine = Engine(
        credentials=StaticCredentials(
            {"main": {"api_key": "sk-main", "base_url": "http://127.0.0.1:9/v1"}}
        )
    )
    fake.script(text("reached"))
    document = agent_flow({**OPENAI, "credential": "main", "base_url": fake.openai_url})
    try:
        result, _ = await run(engine, document, "a")
    finally:
        await engine.aclose()

    assert result.output["text"] == "reached"
    assert fake.requests[0].headers["authorization"] == "Bearer sk-main"


# -- the agent library -------------------------------------------------------------------------


async def test_a_library_agent_supplies_defaults_the_step_can_override(
    fake: FakeLLM, ai_engine: Engine
) -> None:
    register_agent(
        {
            "name": "support-bot",
            "description": "Answers customers.",
            **ANTHROPIC,
            "system": "You are a friendly support agent.",
            "temperature": 0.7,
            "max_tokens": 500,
        }
    )
    fake.script(text("Happy to help!"))
    try:
        result, _ = await run(
            ai_engine, agent_flow({"agent": "support-bot", "prompt": "Help!", "temperature": 0.1})
        )
    finally:
        _default_library.remove("support-bot")

    assert result.status == "succeeded", result.error
    body = fake.requests[0].body
    assert (body["model"], body["system"], body["max_tokens"]) == (
        "claude-haiku-4-5",
        "You are a friendly support agent.",
        500,
    )
    assert body["temperature"] == 0.1


async def test_an_unknown_library_agent_fails_naming_it(fake: FakeLLM, ai_engine: Engine) -> None:
    result, _ = await run(ai_engine, agent_flow({"agent": "ghost", "prompt": "hi"}))

    assert result.error is not None
    assert "there is no agent named 'ghost' in the agent library" in result.error["message"]


def test_an_agent_needs_a_model_or_a_library_agent() -> None:
    missing = [p for p in validate(agent_flow({"prompt": "hi"})) if p.level == "error"]
    library = [p for p in validate(agent_flow({"agent": "support-bot"})) if p.level == "error"]

    assert [p.node_id for p in missing] == ["ask"]
    assert "choose a provider and a model" in missing[0].message
    assert library == []
